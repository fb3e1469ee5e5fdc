#include "connectors/ldap/directory_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_set>

#include "config/fingerprint.hpp"
#include "connectors/ldap/dn.hpp"
#include "connectors/ldap/text.hpp"

namespace orgsync::ldap {
namespace {

using directory::SourceGroup;
using directory::SourceUser;

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
    std::vector<std::uint32_t> users;        // direct user members (indexes into the users)
    std::vector<std::string> other_members;  // normalised member DNs that name no user
    std::vector<std::string> parent_dns;     // memberOf mode: the groups this group is in
};

// Whether nlohmann::json::dump() writes `text` as it is between its quotes.
bool is_plain_json(std::string_view text) {
    return std::ranges::all_of(text, [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\';
    });
}

using JsonMember = std::pair<std::string_view, std::string_view>;

// A JSON object of string members, byte for byte what nlohmann::json::dump()
// gives for it (keys sorted, no spaces), written directly when no value
// needs escaping (every user of a read goes through here).
std::string json_object(std::span<JsonMember> members) {
    std::ranges::sort(members);
    if (!std::ranges::all_of(members, [](const JsonMember& m) {
            return is_plain_json(m.first) && is_plain_json(m.second);
        })) {
        nlohmann::json object = nlohmann::json::object();
        for (const auto& [key, value] : members) {
            object[std::string(key)] = value;
        }
        return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    std::size_t size = 2;
    for (const auto& [key, value] : members) {
        size += key.size() + value.size() + 6;
    }
    std::string out;
    out.reserve(size);
    out.push_back('{');
    for (const auto& [key, value] : members) {
        if (out.size() > 1) {
            out.push_back(',');
        }
        out.push_back('"');
        out.append(key);
        out.append("\":\"");
        out.append(value);
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

}  // namespace

std::string format_guid(std::string_view bytes) {
    std::string out;
    const auto put = [&](std::size_t index) {
        append_hex_byte(out, static_cast<unsigned char>(bytes[index]));
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
    std::ranges::transform(out, out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
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
    std::array<JsonMember, 4> attributes;
    std::size_t count = 0;
    attributes[count++] = {"dn", entry.dn};
    switch (m_config.flavor) {
        case LdapFlavor::openldap:
            user.active = entry.find("pwdAccountLockedTime") == nullptr;
            attributes[count++] = {"login", entry.first("uid")};
            break;
        case LdapFlavor::active_directory: {
            const std::string_view control = entry.first("userAccountControl");
            std::int64_t flags = 0;
            std::from_chars(control.data(), control.data() + control.size(), flags);
            constexpr std::int64_t k_account_disable = 0x2;
            user.active = (flags & k_account_disable) == 0;
            attributes[count++] = {"login", entry.first("sAMAccountName")};
            if (const auto upn = entry.first("userPrincipalName"); !upn.empty()) {
                attributes[count++] = {"userPrincipalName", upn};
            }
            break;
        }
        case LdapFlavor::ds389:
            user.active = !iequals(entry.first("nsAccountLock"), "true");
            attributes[count++] = {"login", entry.first("uid")};
            break;
    }
    if (m_config.group_member_attribute == "memberUid") {
        attributes[count++] = {"memberUid", entry.first(m_config.member_uid_attribute)};
    }
    user.attributes = json_object(std::span(attributes.data(), count));
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

// Every user reachable from `start` through nested groups, as indexes into
// the users, sorted by `rank` (the users' order by id) and each once. Cycles
// are cut at the first group seen twice.
void collect_members(std::size_t start, const std::vector<std::vector<std::size_t>>& children,
                     const std::vector<RawGroup>& groups, const std::vector<std::uint32_t>& rank,
                     std::vector<std::uint32_t>& out, std::vector<bool>& seen, ReadStats& stats) {
    out.clear();
    if (children[start].empty()) {
        out = groups[start].users;
    } else {
        seen.assign(children.size(), false);
        std::vector<std::size_t> pending{start};
        seen[start] = true;
        while (!pending.empty()) {
            const std::size_t group = pending.back();
            pending.pop_back();
            out.insert(out.end(), groups[group].users.begin(), groups[group].users.end());
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
    }
    std::ranges::sort(out, [&](std::uint32_t a, std::uint32_t b) { return rank[a] < rank[b]; });
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

// The users' normalised DNs by user index, in one buffer rather than a
// string each: a read has one per user, and resolving group members looks
// them up at random.
class DnList {
  public:
    void push_back(std::string_view dn) {
        m_text.append(dn);
        m_ends.push_back(m_text.size());
    }
    std::size_t size() const { return m_ends.size(); }
    std::string_view operator[](std::size_t i) const {
        const std::size_t start = i == 0 ? 0 : m_ends[i - 1];
        return std::string_view(m_text).substr(start, m_ends[i] - start);
    }

  private:
    std::string m_text;
    std::vector<std::size_t> m_ends;
};

// Users by normalised DN, built once every user is read (the groups are
// read after the users): open addressing over a flat array, sized once,
// instead of a node per DN grown while reading. Each slot holds a user
// index and part of its DN's hash, so a probe rarely compares a DN. The
// first user of a DN keeps it.
class DnIndex {
  public:
    // `dns[i]` is user i's normalised DN, or empty when it has none.
    explicit DnIndex(DnList dns) : m_dns(std::move(dns)) {
        std::size_t capacity = 16;
        while (capacity < m_dns.size() * 2) {
            capacity *= 2;
        }
        m_slots.assign(capacity, 0);
        m_mask = capacity - 1;
        for (std::size_t i = 0; i < m_dns.size(); ++i) {
            if (m_dns[i].empty()) {
                continue;
            }
            const std::uint64_t hash = std::hash<std::string_view>{}(m_dns[i]);
            for (std::size_t slot = hash & m_mask;; slot = (slot + 1) & m_mask) {
                if (m_slots[slot] == 0) {
                    m_slots[slot] = entry(hash, i);
                    break;
                }
                if (matches(m_slots[slot], hash, m_dns[i])) {
                    break;  // a second user with this DN
                }
            }
        }
    }

    std::optional<std::uint32_t> find(std::string_view dn) const {
        const std::uint64_t hash = std::hash<std::string_view>{}(dn);
        for (std::size_t slot = hash & m_mask; m_slots[slot] != 0; slot = (slot + 1) & m_mask) {
            if (matches(m_slots[slot], hash, dn)) {
                return static_cast<std::uint32_t>(m_slots[slot] & 0xffffffffU) - 1;
            }
        }
        return std::nullopt;
    }

  private:
    // High half: the hash's high bits; low half: index + 1 (0 is empty).
    static std::uint64_t entry(std::uint64_t hash, std::size_t index) {
        return (hash & 0xffffffff00000000ULL) | (static_cast<std::uint64_t>(index) + 1);
    }
    bool matches(std::uint64_t slot, std::uint64_t hash, std::string_view dn) const {
        return (slot >> 32) == (hash >> 32) && m_dns[(slot & 0xffffffffU) - 1] == dn;
    }

    DnList m_dns;
    std::vector<std::uint64_t> m_slots;
    std::size_t m_mask = 0;
};

// membership_fingerprint over views of `values`: no copies.
std::uint64_t fingerprint_of(const std::vector<std::string>& values) {
    std::vector<std::string_view> sorted(values.begin(), values.end());
    std::ranges::sort(sorted);
    std::uint64_t hash = config::k_fnv_basis;
    for (const auto value : sorted) {
        hash = config::fnv1a(value, hash);
        hash = (hash ^ 0xffU) * 0x100000001b3ULL;  // separator
    }
    return hash;
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
    return fingerprint_of(values);
}

Result<std::pair<std::vector<SourceUser>, std::vector<SourceGroup>>> read_directory(
    Connection& connection, const LdapSourceConfig& config, std::string_view source,
    ReadStats& stats, ChangeMarks* marks, const std::function<void(std::size_t)>& progress) {
    const EntryMapper mapper(config, std::string(source));
    const std::string& member_attribute = config.group_member_attribute;
    const bool by_member_of = member_attribute == "memberOf";
    const bool by_uid = member_attribute == "memberUid";

    std::vector<SourceUser> users;
    DnList user_dns;         // normalised, by index
    std::string scratch_dn;  // normalize_dn_into's buffer, reused
    std::unordered_map<std::string, std::uint32_t> user_by_uid;  // memberUid value → index
    std::vector<std::vector<std::string>> user_groups;           // memberOf mode: group DNs
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
        const auto index = static_cast<std::uint32_t>(users.size());
        user_dns.push_back(normalize_dn_into(entry.dn, scratch_dn) ? scratch_dn
                                                                   : std::string_view());
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
    seen_ids = {};
    const DnIndex user_by_dn(std::move(user_dns));

    // Member values are resolved to users as each group arrives (the users
    // are all known by then), so the server sends the next groups while
    // this one is resolved, and only values naming something else (nested
    // groups, or nothing that was read) are kept for after the read.
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
        if (marks != nullptr) {
            marks->groups.push_back({group.id, std::string(entry.first(mapper.change_attribute())),
                                     fingerprint_of(*values)});
        }
        if (by_member_of) {
            auto parents = all_values(connection, entry, "memberOf");
            if (!parents) {
                return std::unexpected(parents.error());
            }
            group.parent_dns = std::move(*parents);
        } else {
            for (const auto& value : *values) {
                if (by_uid) {
                    if (auto found = user_by_uid.find(value); found != user_by_uid.end()) {
                        group.users.push_back(found->second);
                    } else {
                        ++stats.unresolved_members;
                    }
                    continue;
                }
                if (!normalize_dn_into(strip_unique_id(value), scratch_dn)) {
                    ++stats.unresolved_members;
                } else if (auto user = user_by_dn.find(scratch_dn)) {
                    group.users.push_back(*user);
                } else {
                    group.other_members.push_back(scratch_dn);
                }
            }
        }
        group_by_dn.emplace(std::move(*name), raw_groups.size());
        raw_groups.push_back(std::move(group));
        return {};
    });
    if (!read_groups) {
        return std::unexpected(read_groups.error());
    }
    stats.pages += read_groups->pages;
    stats.references += read_groups->references;
    stats.groups = raw_groups.size();

    // Child groups of every group (and, for memberOf, the direct users).
    const std::size_t count = raw_groups.size();
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
                    raw_groups[*g].users.push_back(static_cast<std::uint32_t>(u));
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
            for (const auto& normal : raw_groups[g].other_members) {
                if (auto child = group_by_dn.find(normal); child != group_by_dn.end()) {
                    children[g].push_back(child->second);
                } else {
                    ++stats.unresolved_members;
                }
            }
            raw_groups[g].other_members = {};
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

    // Members come out sorted by id: rank the users by id once.
    std::vector<std::uint32_t> by_id(users.size());
    for (std::size_t u = 0; u < users.size(); ++u) {
        by_id[u] = static_cast<std::uint32_t>(u);
    }
    std::ranges::sort(by_id, [&](std::uint32_t a, std::uint32_t b) {
        return users[a].external_id < users[b].external_id;
    });
    std::vector<std::uint32_t> rank(users.size());
    for (std::size_t r = 0; r < by_id.size(); ++r) {
        rank[by_id[r]] = static_cast<std::uint32_t>(r);
    }
    by_id = {};

    std::vector<SourceGroup> groups;
    groups.reserve(count);
    std::vector<std::uint32_t> members;
    std::vector<bool> seen;
    const std::string source_name(source);
    for (std::size_t g = 0; g < count; ++g) {
        SourceGroup group;
        group.source = source_name;
        group.external_id = std::move(raw_groups[g].id);
        group.name = std::move(raw_groups[g].name);
        std::array<JsonMember, 1> attributes{JsonMember{"dn", raw_groups[g].dn}};
        group.attributes = json_object(attributes);
        collect_members(g, children, raw_groups, rank, members, seen, stats);
        group.member_ids.reserve(members.size());
        for (const std::uint32_t user : members) {
            group.member_ids.push_back(users[user].external_id);
        }
        groups.push_back(std::move(group));
    }
    return std::pair{std::move(users), std::move(groups)};
}

}  // namespace orgsync::ldap
