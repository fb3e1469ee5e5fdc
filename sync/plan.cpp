#include "sync/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "directory/email.hpp"
#include "directory/snapshot.hpp"
#include "sync/diff.hpp"

namespace orgsync::sync {
namespace {

using directory::Level;
using directory::OrgRole;
using directory::UserType;
using nlohmann::json;

constexpr std::array<std::string_view, 18> k_change_names{
    "create_org",         "create_project",   "update_project",      "create_dataset",
    "attach_dataset",     "add_member",       "change_member",       "remove_member",
    "create_group",       "add_group_member", "remove_group_member", "add_grant",
    "change_grant",       "remove_grant",     "deactivate_user",     "reactivate_user",
    "add_fallback_admin", "change_email",
};

using directory::Names;
using Name = Names::Id;

// A membership's (org, address) as one integer.
std::uint64_t member_key(Name org, Name email) {
    return std::uint64_t{org} << 32 | email;
}
Name org_in(std::uint64_t key) {
    return static_cast<Name>(key >> 32);
}
Name email_in(std::uint64_t key) {
    return static_cast<Name>(key);
}

struct GroupMemberKey {
    Name org = 0;
    Name group = 0;
    Name email = 0;
    auto operator<=>(const GroupMemberKey&) const = default;
};

// Changes go out in the order of their fields' texts, org first, whatever
// the order of the names.
struct TextOrder {
    const Names& names;
    bool operator()(std::uint64_t a, std::uint64_t b) const {
        return std::pair(names[org_in(a)], names[email_in(a)]) <
               std::pair(names[org_in(b)], names[email_in(b)]);
    }
    bool operator()(const GroupMemberKey& a, const GroupMemberKey& b) const {
        return std::tuple(names[a.org], names[a.group], names[a.email]) <
               std::tuple(names[b.org], names[b.group], names[b.email]);
    }
};

// The address as the store keys it; most addresses a directory holds are
// canonical already, which is cheap to check.
std::optional<std::string> canonical(const std::string& email) {
    if (directory::is_canonical_email(email)) {
        return email;
    }
    auto checked = directory::canonical_email(email);
    return checked ? std::optional<std::string>(std::move(*checked)) : std::nullopt;
}

// The name of the address as the store keys it, without a copy of a
// canonical one.
std::optional<Name> canonical_name(Names& names, const std::string& email) {
    if (directory::is_canonical_email(email)) {
        return names.intern(email);
    }
    return canonical(email).transform([&](const std::string& text) { return names.intern(text); });
}

// Why a member is wanted; rendered as text only for the changes a plan
// emits.
struct Why {
    enum class Kind : std::uint8_t { domain, pushed, group };
    Kind kind = Kind::domain;
    const std::string* name = nullptr;  // the domain rule's, or the group's
    std::optional<UserType> capped;     // admin capped to member for this type

    std::string text(std::string_view source) const {
        std::string out = kind == Kind::domain   ? fmt::format("domain {}", *name)
                          : kind == Kind::pushed ? fmt::format("pushed by {}", source)
                                                 : fmt::format("group {}", *name);
        if (capped) {
            out += fmt::format(" (admin capped to member: {} user)", directory::to_string(*capped));
        }
        return out;
    }
};

struct DesiredMember {
    UserType user_type = UserType::external;
    OrgRole role = OrgRole::guest;
    const directory::SourceUser* user = nullptr;  // the first to join: id and name
    Why why;
};

// (org, group, project, dataset) → level
using GrantKey = std::tuple<std::string, std::string, std::string, std::string>;

struct Desired {
    std::unordered_map<std::uint64_t, DesiredMember> members;  // member_key(org, email)
    std::set<std::pair<std::string, std::string>> groups;      // (org, group)
    std::vector<GroupMemberKey> group_members;                 // sorted, unique
    std::map<GrantKey, Level> grants;
    std::unordered_map<Name, bool> active;  // address → active, for mapped users
};

// Joins `org` with at least `role`; the type is the highest seen.
DesiredMember* join(Desired& desired, Name org, Name email, const directory::SourceUser& user,
                    UserType type, OrgRole role, const Why& why) {
    auto [it, inserted] = desired.members.try_emplace(member_key(org, email));
    DesiredMember& member = it->second;
    if (inserted) {
        member = DesiredMember{type, role, &user, why};
        return &member;
    }
    member.user_type = std::max(member.user_type, type);
    if (role > member.role) {
        member.role = role;
        member.why = why;
    }
    return &member;
}

// The type a user has in an org their domain does not belong to: workforce
// when they are internal in a workforce org (invariant 8), else external.
UserType outside_type(const std::optional<mapping::DomainMatch>& home) {
    if (home && home->org->workforce && home->rule->user_type == UserType::internal) {
        return UserType::workforce;
    }
    return UserType::external;
}

// The memberships `data` should assert; its addresses, orgs and groups are
// named in `names`.
Desired derive(const mapping::Mapping& mapping, const SourceSpec& source, const SourceData& data,
               Names& names, PlanSummary& summary) {
    Desired desired;
    const bool scim = source.type == "scim";
    summary.mirror_users = data.users.size();

    // The rules of this source, by the group they name.
    struct RuleRef {
        const mapping::OrgMapping* org;
        OrgRole role;  // guest for a grant rule: it only brings the user in
    };
    std::unordered_map<std::string_view, std::vector<RuleRef>> rules_by_group;
    for (const auto& org : mapping.orgs) {
        for (const auto& rule : org.roles) {
            if (rule.source == source.name) {
                rules_by_group[rule.group].push_back({&org, rule.role});
            }
        }
        for (const auto& rule : org.grants) {
            if (rule.source == source.name) {
                rules_by_group[rule.group].push_back({&org, OrgRole::guest});
            }
        }
    }
    const mapping::OrgMapping* bound = scim ? mapping.find_org(source.org) : nullptr;
    std::vector<Name> org_names;  // by index in mapping.orgs
    org_names.reserve(mapping.orgs.size());
    for (const auto& org : mapping.orgs) {
        org_names.push_back(names.intern(org.slug));
    }
    auto name_of = [&](const mapping::OrgMapping* org) {
        return org_names[static_cast<std::size_t>(org - mapping.orgs.data())];
    };

    // Only groups that a rule names bring users in.
    std::unordered_map<std::string_view, std::vector<const directory::SourceGroup*>> groups_of;
    for (const auto& group : data.groups) {
        if (rules_by_group.contains(group.name)) {
            for (const auto& member : group.member_ids) {
                groups_of[member].push_back(&group);
            }
        }
    }

    // external id → canonical address
    std::unordered_map<std::string_view, Name> email_of;
    email_of.reserve(data.users.size());
    std::unordered_map<std::string, std::optional<mapping::DomainMatch>, directory::StringHash,
                       std::equal_to<>>
        domains;
    desired.members.reserve(data.users.size() + data.users.size() / 2);
    desired.active.reserve(data.users.size());
    std::vector<DesiredMember*> joined;
    for (const auto& user : data.users) {
        auto email = canonical_name(names, user.email);
        if (!email) {
            ++summary.invalid_emails;
            continue;
        }
        const Name address = *email;
        email_of.emplace(user.external_id, address);
        std::string_view domain = directory::email_domain(names[address]);
        auto found_domain = domains.find(domain);
        if (found_domain == domains.end()) {
            found_domain =
                domains.emplace(std::string(domain), mapping::resolve_domain(mapping, domain))
                    .first;
        }
        const auto& home = found_domain->second;
        // A tenant does not speak for another org's people: it can bring them
        // in as guests, or keep them out by disabling them, but their
        // account's state is not its to set (mapping::speaks_for_account).
        const bool speaks = mapping::speaks_for_account(source, home);
        if (!speaks && !user.active) {
            ++summary.unmapped_users;
            continue;
        }
        auto type_in = [&](const mapping::OrgMapping* org) {
            return home && home->org == org ? home->rule->user_type : outside_type(home);
        };
        joined.clear();
        const mapping::OrgMapping* first = scim ? bound : (home ? home->org : nullptr);
        if (first != nullptr) {
            bool home_org = home && home->org == first;
            joined.push_back(join(desired, name_of(first), address, user, type_in(first),
                                  home_org ? home->rule->role : OrgRole::guest,
                                  home_org ? Why{Why::Kind::domain, &home->rule->name, {}}
                                           : Why{Why::Kind::pushed, nullptr, {}}));
        }
        if (auto found = groups_of.find(user.external_id); found != groups_of.end()) {
            for (const auto* group : found->second) {
                for (const auto& rule : rules_by_group.find(group->name)->second) {
                    joined.push_back(join(desired, name_of(rule.org), address, user,
                                          type_in(rule.org), rule.role,
                                          Why{Why::Kind::group, &group->name, {}}));
                }
            }
        }
        // Invariant 2: only internal users can be admin; a rule cannot make
        // it otherwise, so the role is capped and the plan says why.
        for (DesiredMember* member : joined) {
            if (member->role == OrgRole::admin && member->user_type != UserType::internal) {
                member->role = OrgRole::member;
                member->why.capped = member->user_type;
            }
        }
        if (!joined.empty()) {
            ++summary.mapped_users;
            if (speaks) {
                desired.active.insert_or_assign(address, user.active);
            }
        } else {
            ++summary.unmapped_users;
        }
    }

    // Org groups: those a rule names (LDAP), or every group of an org-bound
    // SCIM source, with the members that join that org.
    std::map<std::pair<std::string, std::string>, const directory::SourceGroup*> by_name;
    for (const auto& group : data.groups) {
        if (auto rules = rules_by_group.find(group.name); rules != rules_by_group.end()) {
            for (const auto& rule : rules->second) {
                by_name[{rule.org->slug, group.name}] = &group;
            }
        }
        if (bound != nullptr) {
            by_name[{bound->slug, group.name}] = &group;
        }
    }
    std::size_t named_members = 0;
    for (const auto& [key, group] : by_name) {
        named_members += group->member_ids.size();
    }
    desired.group_members.reserve(named_members);
    for (const auto& [key, group] : by_name) {
        desired.groups.insert(key);
        const Name org = names.intern(key.first);
        const Name group_name = names.intern(key.second);
        for (const auto& member : group->member_ids) {
            auto email = email_of.find(member);
            if (email != email_of.end() &&
                desired.members.contains(member_key(org, email->second))) {
                desired.group_members.push_back({org, group_name, email->second});
            }
        }
    }
    std::sort(desired.group_members.begin(), desired.group_members.end());
    desired.group_members.erase(
        std::unique(desired.group_members.begin(), desired.group_members.end()),
        desired.group_members.end());
    for (const auto& org : mapping.orgs) {
        for (const auto& rule : org.grants) {
            if (rule.source != source.name || !by_name.contains({org.slug, rule.group})) {
                continue;
            }
            GrantKey key{org.slug, rule.group, rule.project.value_or(""),
                         rule.dataset.value_or("")};
            Level level = rule.project ? rule.level : static_cast<Level>(rule.access);
            auto [it, inserted] = desired.grants.try_emplace(key, level);
            it->second = std::max(it->second, level);
        }
    }
    return desired;
}

// Orgs, projects and datasets the mapping declares and the store lacks.
directory::Expected<void> plan_structure(const directory::Store& store,
                                         const mapping::Mapping& mapping, Plan& plan) {
    for (const auto& org : mapping.orgs) {
        auto found = store.find_org(org.slug);
        if (!found) {
            return std::unexpected(found.error());
        }
        if (!*found) {
            plan.changes.push_back(Change({.kind = ChangeKind::create_org,
                                           .org = org.slug,
                                           .email = org.owner,
                                           .display_name = org.name,
                                           .why = "declared in the mapping"}));
        }
        std::map<std::string, directory::Project> projects;
        if (*found) {
            auto listed = store.list_projects((*found)->id);
            if (!listed) {
                return std::unexpected(listed.error());
            }
            for (auto& project : *listed) {
                projects.emplace(project.slug, std::move(project));
            }
        }
        for (const auto& project : org.projects) {
            auto current = projects.find(project.slug);
            if (current == projects.end()) {
                // The first admin is the org's owner now (the mapping's owner
                // is only the initial one).
                plan.changes.push_back(Change({.kind = ChangeKind::create_project,
                                               .org = org.slug,
                                               .email = *found ? (*found)->owner_email : org.owner,
                                               .project = project.slug,
                                               .why = "declared in the mapping"}));
            } else {
                auto tags = project.tags;
                std::sort(tags.begin(), tags.end());
                tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
                if (current->second.visibility != project.visibility ||
                    current->second.tags != tags) {
                    plan.changes.push_back(Change({.kind = ChangeKind::update_project,
                                                   .org = org.slug,
                                                   .project = project.slug,
                                                   .why = "visibility or tags changed in the "
                                                          "mapping"}));
                }
            }
        }
        for (const auto& dataset : org.datasets) {
            std::optional<directory::Dataset> current;
            if (*found) {
                auto looked = store.find_dataset((*found)->id, dataset.slug);
                if (!looked) {
                    return std::unexpected(looked.error());
                }
                current = *looked;
            }
            if (!current) {
                plan.changes.push_back(Change({.kind = ChangeKind::create_dataset,
                                               .org = org.slug,
                                               .dataset = dataset.slug,
                                               .why = "declared in the mapping"}));
            }
            for (const auto& project : dataset.projects) {
                if (!current || std::find(current->projects.begin(), current->projects.end(),
                                          project) == current->projects.end()) {
                    plan.changes.push_back(Change({.kind = ChangeKind::attach_dataset,
                                                   .org = org.slug,
                                                   .project = project,
                                                   .dataset = dataset.slug,
                                                   .why = "declared in the mapping"}));
                }
            }
        }
    }
    return {};
}

}  // namespace

Change::Texts::Texts(const std::array<std::string_view, k_texts>& fields) {
    std::size_t size = 0;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        size += fields[i].size();
        end[i] = static_cast<std::uint32_t>(size);
    }
    if (size > 0) {
        bytes = std::make_unique_for_overwrite<char[]>(size);
        char* out = bytes.get();
        for (auto field : fields) {
            out = std::copy(field.begin(), field.end(), out);
        }
    }
}

Change::Texts::Texts(const Texts& other) : end(other.end) {
    if (other.bytes) {
        bytes = std::make_unique_for_overwrite<char[]>(end.back());
        std::copy_n(other.bytes.get(), end.back(), bytes.get());
    }
}

Change::Texts::Texts(Texts&& other) noexcept
    : bytes(std::move(other.bytes)), end(std::exchange(other.end, {})) {}

Change::Texts& Change::Texts::operator=(Texts&& other) noexcept {
    bytes = std::move(other.bytes);
    end = std::exchange(other.end, {});
    return *this;
}

Change::Texts& Change::Texts::operator=(const Texts& other) {
    if (this != &other) {
        *this = Texts(other);
    }
    return *this;
}

Change::Change(const Fields& fields)
    : kind(fields.kind),
      user_type(fields.user_type),
      role(fields.role),
      from_type(fields.from_type),
      from_role(fields.from_role),
      level(fields.level),
      from_level(fields.from_level),
      before_removal(fields.before_removal),
      m_texts({fields.org, fields.email, fields.group, fields.project, fields.dataset,
               fields.external_id, fields.previous_email, fields.display_name, fields.why}) {}

std::string_view to_string(ChangeKind kind) {
    auto index = static_cast<std::size_t>(kind);
    return index < k_change_names.size() ? k_change_names[index] : std::string_view("unknown");
}

directory::Expected<Plan> make_plan(const directory::Store& store, const mapping::Mapping& mapping,
                                    const SourceSpec& source, const SourceData& data) {
    auto current = store.source_assertions(source.name);
    if (!current) {
        return std::unexpected(current.error());
    }
    auto known = store.external_ids(source.name, "id");
    auto disabled = store.disabled_elsewhere(source.name);
    if (!known || !disabled) {
        return std::unexpected(!known ? known.error() : disabled.error());
    }
    detail::StoreState state;
    state.assertions = std::move(*current);
    state.known = std::move(*known);
    auto inactive = store.inactive_users();
    if (!inactive) {
        return std::unexpected(inactive.error());
    }
    state.inactive_now = std::move(*inactive);
    state.disabled = std::move(*disabled);
    std::unordered_map<Name, std::size_t> members_by_org;
    for (const auto& member : state.assertions.members) {
        ++members_by_org[member.org];
    }
    for (const auto& [org, count] : members_by_org) {
        state.members_by_org.emplace(state.assertions.names[org], count);
    }
    return detail::diff(store, mapping, source, data, std::move(state));
}

namespace detail {

directory::Expected<Plan> diff(const directory::Store& store, const mapping::Mapping& mapping,
                               const SourceSpec& source, const SourceData& data, StoreState state) {
    Plan plan;
    plan.source = source.name;
    if (auto structure = plan_structure(store, mapping, plan); !structure) {
        return std::unexpected(structure.error());
    }
    Names& names = state.assertions.names;
    const directory::SourceAssertions& current = state.assertions;
    for (const auto& [org, count] : state.members_by_org) {
        plan.summary.source_members += count;
    }
    plan.summary.source_members_by_org = state.members_by_org;
    const TextOrder in_text_order{names};

    // Users the source knows by id under another address: the address
    // changes first, and what the source asserted for them is compared
    // under the new one.
    std::vector<std::pair<const std::string*, std::string>> moves;  // old address, new
    for (const auto& user : data.users) {
        auto was = state.known.find(user.external_id);
        if (was == state.known.end()) {
            continue;
        }
        if (auto email = canonical(user.email); email && was->second != *email) {
            moves.emplace_back(&was->second, std::move(*email));
        }
    }
    std::unordered_map<Name, Name> renamed;  // old address → new
    if (!moves.empty()) {
        std::vector<std::string> targets;
        for (const auto& [was, now] : moves) {
            targets.push_back(now);
        }
        auto taken = store.find_users(targets);
        if (!taken) {
            return std::unexpected(taken.error());
        }
        directory::StringSet someone_elses;
        for (auto& user : *taken) {
            someone_elses.insert(std::move(user.email));
        }
        for (const auto& [was, now] : moves) {
            if (someone_elses.contains(now)) {
                continue;
            }
            renamed.emplace(names.intern(*was), names.intern(now));
            plan.changes.push_back(Change({.kind = ChangeKind::change_email,
                                           .email = now,
                                           .previous_email = *was,
                                           .why = fmt::format("new address in {}", source.name)}));
        }
    }
    state.known = {};  // a hundred thousand ids and addresses, not needed again
    Desired desired = derive(mapping, source, data, names, plan.summary);
    auto now_known_as = [&renamed](Name email) {
        auto found = renamed.find(email);
        return found == renamed.end() ? email : found->second;
    };

    // Memberships: add and change first, removals (with the demotion of an
    // admin recorded as its own step, invariant 4) after grants.
    std::unordered_map<std::uint64_t, const directory::SourceAssertions::Member*> asserted;
    asserted.reserve(current.members.size());
    for (const auto& member : current.members) {
        asserted[member_key(member.org, now_known_as(member.email))] = &member;
    }
    std::vector<std::uint64_t> keys;
    for (const auto& [key, want] : desired.members) {
        auto have = asserted.find(key);
        if (have == asserted.end() || have->second->user_type != want.user_type ||
            have->second->role != want.role) {
            keys.push_back(key);
        }
    }
    std::sort(keys.begin(), keys.end(), in_text_order);
    std::vector<std::pair<std::uint64_t, const directory::SourceAssertions::Member*>> gone;
    for (const auto& [key, have] : asserted) {
        if (!desired.members.contains(key)) {
            gone.emplace_back(key, have);
        }
    }
    std::sort(gone.begin(), gone.end(),
              [&](const auto& a, const auto& b) { return in_text_order(a.first, b.first); });
    std::vector<GroupMemberKey> have_group_members;
    have_group_members.reserve(current.group_members.size());
    for (const auto& member : current.group_members) {
        have_group_members.push_back({member.org, member.group, now_known_as(member.email)});
    }
    std::sort(have_group_members.begin(), have_group_members.end());
    have_group_members.erase(std::unique(have_group_members.begin(), have_group_members.end()),
                             have_group_members.end());
    std::vector<GroupMemberKey> group_adds;
    std::ranges::set_difference(desired.group_members, have_group_members,
                                std::back_inserter(group_adds));
    std::sort(group_adds.begin(), group_adds.end(), in_text_order);
    std::vector<GroupMemberKey> group_removals;
    std::ranges::set_difference(have_group_members, desired.group_members,
                                std::back_inserter(group_removals));
    std::sort(group_removals.begin(), group_removals.end(), in_text_order);
    // A first sync emits hundreds of thousands of changes: growing the
    // vector would hold two copies at once.
    plan.changes.reserve(plan.changes.size() + keys.size() + group_adds.size() +
                         group_removals.size() + desired.groups.size() + desired.grants.size() +
                         current.grants.size() + 2 * gone.size() + desired.active.size());
    for (std::uint64_t key : keys) {
        const DesiredMember& want = desired.members.find(key)->second;
        auto have = asserted.find(key);
        if (have == asserted.end()) {
            plan.changes.push_back(Change({.kind = ChangeKind::add_member,
                                           .org = names[org_in(key)],
                                           .email = names[email_in(key)],
                                           .user_type = want.user_type,
                                           .role = want.role,
                                           .external_id = want.user->external_id,
                                           .display_name = want.user->display_name,
                                           .why = want.why.text(source.name)}));
        } else {
            plan.changes.push_back(Change({.kind = ChangeKind::change_member,
                                           .org = names[org_in(key)],
                                           .email = names[email_in(key)],
                                           .user_type = want.user_type,
                                           .role = want.role,
                                           .from_type = have->second->user_type,
                                           .from_role = have->second->role,
                                           .why = want.why.text(source.name)}));
        }
    }
    std::vector<Change> removals;
    for (const auto& [key, have] : gone) {
        if (have->role == OrgRole::admin) {
            removals.push_back(Change({.kind = ChangeKind::change_member,
                                       .org = names[org_in(key)],
                                       .email = names[email_in(key)],
                                       .user_type = have->user_type,
                                       .role = OrgRole::member,
                                       .from_type = have->user_type,
                                       .from_role = have->role,
                                       .why = "demoted before removal",
                                       .before_removal = true}));
        }
        removals.push_back(Change({.kind = ChangeKind::remove_member,
                                   .org = names[org_in(key)],
                                   .email = names[email_in(key)],
                                   .user_type = have->user_type,
                                   .role = have->role,
                                   .why = fmt::format("no longer stated by {}", source.name)}));
    }

    // Groups and their members.
    std::set<std::pair<std::string, std::string>> existing_groups;
    for (const auto& org : mapping.orgs) {
        auto found = store.find_org(org.slug);
        if (!found) {
            return std::unexpected(found.error());
        }
        if (!*found) {
            continue;
        }
        auto groups = store.list_groups((*found)->id);
        if (!groups) {
            return std::unexpected(groups.error());
        }
        for (const auto& group : *groups) {
            existing_groups.insert({org.slug, group.name});
        }
    }
    for (const auto& key : desired.groups) {
        if (!existing_groups.contains(key)) {
            plan.changes.push_back(
                Change({.kind = ChangeKind::create_group,
                        .org = key.first,
                        .group = key.second,
                        .why = fmt::format("named by the mapping for {}", source.name)}));
        }
    }
    const std::string member_why = fmt::format("member in {}", source.name);
    for (const auto& key : group_adds) {
        plan.changes.push_back(Change({.kind = ChangeKind::add_group_member,
                                       .org = names[key.org],
                                       .email = names[key.email],
                                       .group = names[key.group],
                                       .why = member_why}));
    }

    // Grants.
    std::map<GrantKey, Level> have_grants;
    for (const auto& grant : current.grants) {
        have_grants[{grant.org, grant.group, grant.project, grant.dataset}] = grant.level;
    }
    for (const auto& [key, level] : desired.grants) {
        auto have = have_grants.find(key);
        Change change({.kind = ChangeKind::add_grant,
                       .org = std::get<0>(key),
                       .group = std::get<1>(key),
                       .project = std::get<2>(key),
                       .dataset = std::get<3>(key),
                       .level = level,
                       .why = "grant rule in the mapping"});
        if (have == have_grants.end()) {
            plan.changes.push_back(std::move(change));
        } else if (have->second != level) {
            change.kind = ChangeKind::change_grant;
            change.from_level = have->second;
            plan.changes.push_back(std::move(change));
        }
    }
    for (const auto& [key, level] : have_grants) {
        if (!desired.grants.contains(key)) {
            plan.changes.push_back(Change({.kind = ChangeKind::remove_grant,
                                           .org = std::get<0>(key),
                                           .group = std::get<1>(key),
                                           .project = std::get<2>(key),
                                           .dataset = std::get<3>(key),
                                           .from_level = level,
                                           .why = "no grant rule in the mapping"}));
        }
    }
    const std::string not_member_why = fmt::format("not a member in {}", source.name);
    for (const auto& key : group_removals) {
        plan.changes.push_back(Change({.kind = ChangeKind::remove_group_member,
                                       .org = names[key.org],
                                       .email = names[key.email],
                                       .group = names[key.group],
                                       .why = not_member_why}));
    }
    plan.changes.insert(plan.changes.end(), std::make_move_iterator(removals.begin()),
                        std::make_move_iterator(removals.end()));

    // Accounts the source disables or enables again.
    for (const auto& [was, now] : renamed) {
        if (state.inactive_now.contains(names[was])) {
            state.inactive_now.emplace(names[now]);
        }
    }
    // An account is active only while no source that knows it, and speaks
    // for it, says it is disabled: a source never re-enables what another disables, so two
    // sources that disagree do not flip it back and forth.
    std::unordered_set<Name> disabled;
    for (const auto& [email, sources] : state.disabled) {
        auto name = names.find(email);
        if (name && std::ranges::any_of(sources, [&](const std::string& other) {
                return mapping::speaks_for_account(mapping, other, email);
            })) {
            disabled.insert(*name);
        }
    }
    std::vector<std::pair<Name, bool>> flips;  // address, stated active
    for (const auto& [email, stated] : desired.active) {
        bool active = stated && !disabled.contains(email);
        bool currently = !state.inactive_now.contains(names[email]);
        if (currently != active) {
            flips.emplace_back(email, stated);
        }
    }
    std::sort(flips.begin(), flips.end(),
              [&](const auto& a, const auto& b) { return names[a.first] < names[b.first]; });
    std::unordered_map<Name, std::vector<Name>> orgs_of;
    if (!flips.empty()) {
        for (const auto& member : current.members) {
            orgs_of[now_known_as(member.email)].push_back(member.org);
        }
    }
    for (const auto& [email, stated] : flips) {
        bool active = stated && !disabled.contains(email);
        if (!active) {
            for (Name org : orgs_of[email]) {
                ++plan.summary.deactivations_by_org[std::string(names[org])];
            }
        }
        plan.changes.push_back(
            Change({.kind = active ? ChangeKind::reactivate_user : ChangeKind::deactivate_user,
                    .email = names[email],
                    .why = active   ? fmt::format("enabled in {}", source.name)
                           : stated ? "disabled in another source"
                                    : fmt::format("disabled in {}", source.name)}));
    }
    return plan;
}

}  // namespace detail

json to_json(const Change& change) {
    json out{{"kind", to_string(change.kind)}};
    auto put = [&out](const char* key, std::string_view value) {
        if (!value.empty()) {
            out[key] = value;
        }
    };
    put("org", change.org());
    put("user", change.email());
    put("group", change.group());
    put("project", change.project());
    put("dataset", change.dataset());
    switch (change.kind) {
        case ChangeKind::add_member:
        case ChangeKind::remove_member:
            out["user_type"] = directory::to_string(change.user_type);
            out["role"] = directory::to_string(change.role);
            break;
        case ChangeKind::change_member:
            out["user_type"] = directory::to_string(change.user_type);
            out["role"] = directory::to_string(change.role);
            out["from_user_type"] = directory::to_string(change.from_type);
            out["from_role"] = directory::to_string(change.from_role);
            break;
        case ChangeKind::add_grant:
        case ChangeKind::change_grant:
        case ChangeKind::remove_grant:
            if (change.level != Level::none) {
                out["level"] = directory::to_string(change.level);
            }
            if (change.from_level != Level::none) {
                out["from_level"] = directory::to_string(change.from_level);
            }
            break;
        default:
            break;
    }
    put("why", change.why());
    return out;
}

json to_json(const Plan& plan) {
    json changes = json::array();
    for (const auto& change : plan.changes) {
        changes.push_back(to_json(change));
    }
    json held = json::array();
    for (const auto& item : plan.held) {
        json entry = to_json(item.change);
        entry["held_because"] = item.reason;
        held.push_back(std::move(entry));
    }
    json out{{"source", plan.source},
             {"changes", std::move(changes)},
             {"held", std::move(held)},
             {"summary",
              {{"mirror_users", plan.summary.mirror_users},
               {"mapped_users", plan.summary.mapped_users},
               {"unmapped_users", plan.summary.unmapped_users},
               {"invalid_emails", plan.summary.invalid_emails},
               {"source_members", plan.summary.source_members}}}};
    if (!plan.problem.empty()) {
        out["problem"] = plan.problem;
    }
    return out;
}

namespace {

std::string describe(const Change& change) {
    using directory::to_string;
    switch (change.kind) {
        case ChangeKind::create_org:
            return fmt::format("+ org {} ({}), owner {}", change.org(), change.display_name(),
                               change.email());
        case ChangeKind::create_project:
            return fmt::format("+ project {}/{}, first admin {}", change.org(), change.project(),
                               change.email());
        case ChangeKind::update_project:
            return fmt::format("~ project {}/{}: visibility or tags", change.org(),
                               change.project());
        case ChangeKind::create_dataset:
            return fmt::format("+ dataset {}/{}", change.org(), change.dataset());
        case ChangeKind::attach_dataset:
            return fmt::format("+ dataset {}/{} attached to project {}", change.org(),
                               change.dataset(), change.project());
        case ChangeKind::add_member:
            return fmt::format("+ member {} in {} as {} {}", change.email(), change.org(),
                               to_string(change.user_type), to_string(change.role));
        case ChangeKind::change_member:
            return fmt::format("~ member {} in {}: {} {} -> {} {}", change.email(), change.org(),
                               to_string(change.from_type), to_string(change.from_role),
                               to_string(change.user_type), to_string(change.role));
        case ChangeKind::remove_member:
            return fmt::format("- member {} from {} (was {} {})", change.email(), change.org(),
                               to_string(change.user_type), to_string(change.role));
        case ChangeKind::create_group:
            return fmt::format("+ group {} in {}", change.group(), change.org());
        case ChangeKind::add_group_member:
            return fmt::format("+ {} to group {} in {}", change.email(), change.group(),
                               change.org());
        case ChangeKind::remove_group_member:
            return fmt::format("- {} from group {} in {}", change.email(), change.group(),
                               change.org());
        case ChangeKind::add_grant:
        case ChangeKind::change_grant:
        case ChangeKind::remove_grant: {
            std::string target = change.project().empty()
                                     ? fmt::format("dataset {}", change.dataset())
                                     : fmt::format("project {}", change.project());
            if (change.kind == ChangeKind::add_grant) {
                return fmt::format("+ grant {} on {}/{} to group {}", to_string(change.level),
                                   change.org(), target, change.group());
            }
            if (change.kind == ChangeKind::change_grant) {
                return fmt::format("~ grant on {}/{} to group {}: {} -> {}", change.org(), target,
                                   change.group(), to_string(change.from_level),
                                   to_string(change.level));
            }
            return fmt::format("- grant {} on {}/{} from group {}", to_string(change.from_level),
                               change.org(), target, change.group());
        }
        case ChangeKind::deactivate_user:
            return fmt::format("- deactivate {}", change.email());
        case ChangeKind::reactivate_user:
            return fmt::format("+ reactivate {}", change.email());
        case ChangeKind::change_email:
            return fmt::format("~ address {} -> {}", change.previous_email(), change.email());
        case ChangeKind::add_fallback_admin:
            return fmt::format("+ grant admin on {}/project {} to {}", change.org(),
                               change.project(), change.email());
    }
    return std::string(to_string(change.kind));
}

}  // namespace

std::string to_text(const Plan& plan) {
    std::string out =
        fmt::format("plan for source {}: {} change{}, {} held\n", plan.source, plan.changes.size(),
                    plan.changes.size() == 1 ? "" : "s", plan.held.size());
    for (const auto& change : plan.changes) {
        out += fmt::format("  {}  [{}]\n", describe(change), change.why());
    }
    for (const auto& item : plan.held) {
        out += fmt::format("  held: {}  [{}]\n", describe(item.change), item.reason);
    }
    if (!plan.problem.empty()) {
        out += fmt::format("  cannot be applied: {}\n", plan.problem);
    }
    out += fmt::format(
        "  users: {} in the mirror, {} mapped, {} unmapped, {} with an invalid address\n",
        plan.summary.mirror_users, plan.summary.mapped_users, plan.summary.unmapped_users,
        plan.summary.invalid_emails);
    return out;
}

}  // namespace orgsync::sync
