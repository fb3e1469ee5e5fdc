#include "connectors/ldap/directory_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "connectors/ldap/dn.hpp"

namespace orgsync::ldap {
namespace {

using directory::SourceGroup;
using directory::SourceUser;

bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           std::ranges::equal(text.substr(0, prefix.size()), prefix, [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && istarts_with(a, b);
}

// uniqueMember values are "DN [#'bits'B]": the optional unique identifier
// is not part of the DN.
std::string_view strip_unique_id(std::string_view value) {
    const auto hash = value.rfind("#'");
    if (hash != std::string_view::npos && value.ends_with("'B")) {
        return value.substr(0, hash);
    }
    return value;
}

// A group as read, before its members are resolved to users.
struct RawGroup {
    std::string id;
    std::string name;  // normalised DN
    std::string dn;
    std::vector<std::string> member_values;  // member/uniqueMember DNs or memberUid names
    std::vector<std::string> parent_dns;     // memberOf mode: the groups this group is in
};

}  // namespace

std::string format_guid(std::string_view bytes) {
    constexpr std::string_view k_digits = "0123456789abcdef";
    std::string out;
    const auto put = [&](std::size_t index) {
        const auto byte = static_cast<unsigned char>(bytes[index]);
        out.push_back(k_digits[byte >> 4]);
        out.push_back(k_digits[byte & 0xf]);
    };
    if (bytes.size() != 16) {
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            put(i);
        }
        return out;
    }
    for (const std::size_t i : {std::size_t{3}, std::size_t{2}, std::size_t{1}, std::size_t{0}}) {
        put(i);
    }
    out.push_back('-');
    put(5);
    put(4);
    out.push_back('-');
    put(7);
    put(6);
    out.push_back('-');
    put(8);
    put(9);
    out.push_back('-');
    for (std::size_t i = 10; i < 16; ++i) {
        put(i);
    }
    return out;
}

std::string next_range(std::string_view attribute) {
    const auto at = attribute.find(";range=");
    if (at == std::string_view::npos) {
        return {};
    }
    const auto dash = attribute.find('-', at);
    if (dash == std::string_view::npos) {
        return {};
    }
    const std::string_view high = attribute.substr(dash + 1);
    std::uint64_t last = 0;
    if (high == "*" ||
        std::from_chars(high.data(), high.data() + high.size(), last).ec != std::errc{}) {
        return {};
    }
    return fmt::format("{};range={}-*", attribute.substr(0, at), last + 1);
}

EntryMapper::EntryMapper(const LdapSourceConfig& config, std::string source)
    : m_config(config), m_source(std::move(source)) {
    switch (config.flavor) {
        case LdapFlavor::openldap:
            m_id_attribute = "entryUUID";
            m_change_attribute = "modifyTimestamp";
            break;
        case LdapFlavor::active_directory:
            m_id_attribute = "objectGUID";
            m_change_attribute = "uSNChanged";
            break;
        case LdapFlavor::ds389:
            m_id_attribute = "nsUniqueId";
            m_change_attribute = "modifyTimestamp";
            break;
    }
}

std::vector<std::string> EntryMapper::user_attributes() const {
    std::vector<std::string> out{m_id_attribute, m_config.email_attribute, "displayName", "cn",
                                 m_change_attribute};
    switch (m_config.flavor) {
        case LdapFlavor::openldap:
            out.emplace_back("pwdAccountLockedTime");
            out.emplace_back("uid");
            break;
        case LdapFlavor::active_directory:
            out.emplace_back("userAccountControl");
            out.emplace_back("sAMAccountName");
            out.emplace_back("userPrincipalName");
            break;
        case LdapFlavor::ds389:
            out.emplace_back("nsAccountLock");
            out.emplace_back("uid");
            break;
    }
    if (m_config.group_member_attribute == "memberUid") {
        out.push_back(m_config.member_uid_attribute);
    }
    if (m_config.group_member_attribute == "memberOf") {
        out.emplace_back("memberOf");
    }
    return out;
}

std::vector<std::string> EntryMapper::group_attributes() const {
    std::vector<std::string> out{m_id_attribute, "cn", m_change_attribute};
    if (m_config.group_member_attribute == "memberOf") {
        out.emplace_back("memberOf");
        out.emplace_back("member");  // where membership changes show (fingerprints)
    } else {
        out.push_back(m_config.group_member_attribute);
    }
    return out;
}

std::string EntryMapper::stable_id(const Entry& entry) const {
    const std::string_view id = entry.first(m_id_attribute);
    if (m_config.flavor == LdapFlavor::active_directory) {
        return id.empty() ? std::string() : format_guid(id);
    }
    std::string out(id);
    std::ranges::transform(out, out.begin(),
                           [](char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::optional<SourceUser> EntryMapper::user(const Entry& entry, ReadStats& stats) const {
    SourceUser user;
    user.source = m_source;
    user.external_id = stable_id(entry);
    if (user.external_id.empty()) {
        ++stats.users_without_id;
        return std::nullopt;
    }
    user.email = std::string(entry.first(m_config.email_attribute));
    if (user.email.empty()) {
        ++stats.users_without_email;
        return std::nullopt;
    }
    user.display_name = std::string(entry.first("displayName"));
    if (user.display_name.empty()) {
        user.display_name = std::string(entry.first("cn"));
    }
    nlohmann::json attributes = {{"dn", entry.dn}};
    switch (m_config.flavor) {
        case LdapFlavor::openldap:
            user.active = entry.find("pwdAccountLockedTime") == nullptr;
            attributes["login"] = entry.first("uid");
            break;
        case LdapFlavor::active_directory: {
            const std::string_view control = entry.first("userAccountControl");
            std::int64_t flags = 0;
            std::from_chars(control.data(), control.data() + control.size(), flags);
            constexpr std::int64_t k_account_disable = 0x2;
            user.active = (flags & k_account_disable) == 0;
            attributes["login"] = entry.first("sAMAccountName");
            if (const auto upn = entry.first("userPrincipalName"); !upn.empty()) {
                attributes["userPrincipalName"] = upn;
            }
            break;
        }
        case LdapFlavor::ds389:
            user.active = !iequals(entry.first("nsAccountLock"), "true");
            attributes["login"] = entry.first("uid");
            break;
    }
    if (m_config.group_member_attribute == "memberUid") {
        attributes["memberUid"] = entry.first(m_config.member_uid_attribute);
    }
    user.attributes = attributes.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return user;
}

namespace {

// Every value of `attribute` in `entry`, following Active Directory's range
// retrieval (`member;range=0-1499`, then base searches for the next ranges)
// when the server splits a large attribute. A follow-up that does not
// return the next range fails: a shortened member list would read as
// removals.
Result<std::vector<std::string>> all_values(Connection& connection, const Entry& entry,
                                            std::string_view attribute) {
    const std::string ranged = std::string(attribute) + ";range=";
    std::vector<std::string> values;
    std::string next;
    for (const auto& [name, found] : entry.attributes) {
        if (iequals(name, attribute)) {
            values.insert(values.end(), found.begin(), found.end());
        } else if (istarts_with(name, ranged)) {
            values.insert(values.end(), found.begin(), found.end());
            next = next_range(name);
        }
    }
    while (!next.empty()) {
        SearchRequest request{.base = entry.dn,
                              .scope = LDAP_SCOPE_BASE,
                              .filter = "(objectClass=*)",
                              .attributes = {next},
                              .paged = false};
        std::string following;
        bool answered = false;
        auto searched = connection.search(request, [&](Entry&& part) -> Result<void> {
            for (const auto& [name, found] : part.attributes) {
                if (istarts_with(name, ranged)) {
                    answered = true;
                    values.insert(values.end(), found.begin(), found.end());
                    following = next_range(name);
                }
            }
            return {};
        });
        if (!searched) {
            return std::unexpected(searched.error());
        }
        if (!answered) {
            return failure(FailureKind::partial_results,
                           fmt::format("{}: {} of {} stopped before its last range",
                                       connection.uri(), attribute, entry.dn));
        }
        next = std::move(following);
    }
    return values;
}

// Every user id reachable from `start` through nested groups. Cycles are
// cut at the first group seen twice.
void collect_members(std::size_t start, const std::vector<std::vector<std::size_t>>& children,
                     const std::vector<std::vector<std::string>>& direct,
                     std::vector<std::string>& out, ReadStats& stats) {
    std::vector<bool> seen(children.size(), false);
    std::vector<std::size_t> pending{start};
    seen[start] = true;
    while (!pending.empty()) {
        const std::size_t group = pending.back();
        pending.pop_back();
        out.insert(out.end(), direct[group].begin(), direct[group].end());
        for (const std::size_t child : children[group]) {
            if (child == start) {
                ++stats.cycles;
            }
            if (!seen[child]) {
                seen[child] = true;
                pending.push_back(child);
            }
        }
    }
    std::ranges::sort(out);
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace

Result<std::vector<std::string>> membership_values(Connection& connection,
                                                   const LdapSourceConfig& config,
                                                   const Entry& group) {
    if (config.group_member_attribute != "memberOf") {
        return all_values(connection, group, config.group_member_attribute);
    }
    // memberOf mode: a group's own memberOf (nesting), and its member list
    // where the server keeps one, which is where membership changes show.
    auto parents = all_values(connection, group, "memberOf");
    if (!parents) {
        return parents;
    }
    auto members = all_values(connection, group, "member");
    if (!members) {
        return members;
    }
    parents->insert(parents->end(), members->begin(), members->end());
    return parents;
}

std::uint64_t membership_fingerprint(std::vector<std::string> values) {
    std::ranges::sort(values);
    // FNV-1a: stable across runs and builds, unlike std::hash.
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const auto& value : values) {
        for (const char c : value) {
            hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
        }
        hash = (hash ^ 0xffU) * 0x100000001b3ULL;  // separator
    }
    return hash;
}

Result<std::pair<std::vector<SourceUser>, std::vector<SourceGroup>>> read_directory(
    Connection& connection, const LdapSourceConfig& config, std::string_view source,
    ReadStats& stats, ChangeMarks& marks, const std::function<void(std::size_t)>& progress) {
    const EntryMapper mapper(config, std::string(source));
    const std::string& member_attribute = config.group_member_attribute;
    const bool by_member_of = member_attribute == "memberOf";
    const bool by_uid = member_attribute == "memberUid";

    std::vector<SourceUser> users;
    std::unordered_map<std::string, std::size_t> user_by_dn;   // normalised DN → index
    std::unordered_map<std::string, std::size_t> user_by_uid;  // memberUid value → index
    std::vector<std::vector<std::string>> user_groups;         // memberOf mode: group DNs
    std::unordered_set<std::string> seen_ids;

    SearchRequest user_search{.base = config.user_base,
                              .filter = config.user_filter,
                              .attributes = mapper.user_attributes(),
                              .on_page = progress};
    auto read_users = connection.search(user_search, [&](Entry&& entry) -> Result<void> {
        auto user = mapper.user(entry, stats);
        if (!user || !seen_ids.insert(user->external_id).second) {
            return {};
        }
        const std::size_t index = users.size();
        if (auto dn = normalize_dn(entry.dn)) {
            user_by_dn.emplace(std::move(*dn), index);
        }
        if (by_uid) {
            if (const auto uid = entry.first(config.member_uid_attribute); !uid.empty()) {
                user_by_uid.emplace(std::string(uid), index);
            }
        }
        if (by_member_of) {
            auto groups = all_values(connection, entry, "memberOf");
            if (!groups) {
                return std::unexpected(groups.error());
            }
            user_groups.push_back(std::move(*groups));
        }
        users.push_back(std::move(*user));
        return {};
    });
    if (!read_users) {
        return std::unexpected(read_users.error());
    }
    stats.pages += read_users->pages;
    stats.references += read_users->references;
    stats.users = users.size();

    std::vector<RawGroup> raw_groups;
    std::unordered_map<std::string, std::size_t> group_by_dn;
    SearchRequest group_search{
        .base = config.group_base.empty() ? config.user_base : config.group_base,
        .filter = config.group_filter,
        .attributes = mapper.group_attributes()};
    auto read_groups = connection.search(group_search, [&](Entry&& entry) -> Result<void> {
        auto name = normalize_dn(entry.dn);
        if (!name || group_by_dn.contains(*name)) {
            return {};
        }
        RawGroup group{.id = mapper.stable_id(entry), .name = *name, .dn = entry.dn};
        if (group.id.empty()) {
            group.id = *name;
        }
        auto values = membership_values(connection, config, entry);
        if (!values) {
            return std::unexpected(values.error());
        }
        marks.groups.push_back({group.id, std::string(entry.first(mapper.change_attribute())),
                                membership_fingerprint(*values)});
        if (by_member_of) {
            auto parents = all_values(connection, entry, "memberOf");
            if (!parents) {
                return std::unexpected(parents.error());
            }
            group.parent_dns = std::move(*parents);
        } else {
            group.member_values = std::move(*values);
        }
        group_by_dn.emplace(*name, raw_groups.size());
        raw_groups.push_back(std::move(group));
        return {};
    });
    if (!read_groups) {
        return std::unexpected(read_groups.error());
    }
    stats.pages += read_groups->pages;
    stats.references += read_groups->references;
    stats.groups = raw_groups.size();

    // Direct user members and child groups of every group.
    const std::size_t count = raw_groups.size();
    std::vector<std::vector<std::string>> direct(count);
    std::vector<std::vector<std::size_t>> children(count);
    const auto group_index = [&](std::string_view dn) -> std::optional<std::size_t> {
        auto normal = normalize_dn(dn);
        if (!normal) {
            return std::nullopt;
        }
        auto found = group_by_dn.find(*normal);
        return found == group_by_dn.end() ? std::nullopt : std::optional(found->second);
    };
    if (by_member_of) {
        for (std::size_t u = 0; u < users.size(); ++u) {
            for (const auto& dn : user_groups[u]) {
                if (auto g = group_index(dn)) {
                    direct[*g].push_back(users[u].external_id);
                }
            }
        }
        for (std::size_t g = 0; g < count; ++g) {
            for (const auto& dn : raw_groups[g].parent_dns) {
                if (auto parent = group_index(dn)) {
                    children[*parent].push_back(g);
                }
            }
        }
    } else {
        for (std::size_t g = 0; g < count; ++g) {
            for (const auto& value : raw_groups[g].member_values) {
                if (by_uid) {
                    if (auto found = user_by_uid.find(value); found != user_by_uid.end()) {
                        direct[g].push_back(users[found->second].external_id);
                    } else {
                        ++stats.unresolved_members;
                    }
                    continue;
                }
                auto normal = normalize_dn(strip_unique_id(value));
                if (!normal) {
                    ++stats.unresolved_members;
                    continue;
                }
                if (auto user = user_by_dn.find(*normal); user != user_by_dn.end()) {
                    direct[g].push_back(users[user->second].external_id);
                } else if (auto child = group_by_dn.find(*normal); child != group_by_dn.end()) {
                    children[g].push_back(child->second);
                } else {
                    ++stats.unresolved_members;
                }
            }
        }
    }
    if (!config.nested_groups) {
        for (auto& edges : children) {
            edges.clear();
        }
    }
    for (const auto& edges : children) {
        stats.nested_groups += edges.size();
    }

    std::vector<SourceGroup> groups;
    groups.reserve(count);
    for (std::size_t g = 0; g < count; ++g) {
        SourceGroup group;
        group.source = std::string(source);
        group.external_id = raw_groups[g].id;
        group.name = raw_groups[g].name;
        group.attributes = nlohmann::json{{"dn", raw_groups[g].dn}}.dump(
            -1, ' ', false, nlohmann::json::error_handler_t::replace);
        collect_members(g, children, direct, group.member_ids, stats);
        groups.push_back(std::move(group));
    }
    return std::pair{std::move(users), std::move(groups)};
}

}  // namespace orgsync::ldap
