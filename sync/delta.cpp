// make_delta_plan: the full plan's diff (sync/diff.hpp), given only the
// records a delta affects. Which records that is follows from what the
// diff reads for one user:
//
// - the user's own record, and every mirrored user with the same canonical
//   address (the diff merges them into one member);
// - every group the user is in, and every group that shares a name with one
//   of those (of groups with the same name, the last by external id is the
//   org group);
// - what the store holds for the user's addresses: before and after the
//   delta, and the one the source's external id points at (a rename).
//
// A group whose name is unchanged affects only the members it gained or
// lost; a new, removed or renamed group affects every old and new member of
// every group with its old or new name, and the grants and org group of
// those names.

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "directory/email.hpp"
#include "sync/diff.hpp"
#include "sync/plan.hpp"

namespace orgsync::sync {
namespace {

using directory::Expected;
using directory::SourceGroup;
using directory::SourceUser;

std::vector<std::string> sorted_unique(std::vector<std::string> values) {
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

// The delta, indexed by external id.
struct DeltaIndex {
    std::map<std::string, const SourceUser*> users;
    std::set<std::string> removed_users;
    std::map<std::string, const SourceGroup*> groups;
    std::set<std::string> removed_groups;
};

Expected<DeltaIndex> index_delta(const SourceDelta& delta) {
    DeltaIndex index;
    for (const auto& user : delta.upsert_users) {
        if (user.external_id.empty()) {
            return directory::fail(directory::ErrorCode::invalid_argument,
                                   "a delta user needs an external id");
        }
        index.users[user.external_id] = &user;
    }
    for (const auto& group : delta.upsert_groups) {
        if (group.external_id.empty()) {
            return directory::fail(directory::ErrorCode::invalid_argument,
                                   "a delta group needs an external id");
        }
        index.groups[group.external_id] = &group;
    }
    for (const auto& id : delta.removed_user_ids) {
        if (index.users.contains(id)) {
            return directory::fail(
                directory::ErrorCode::invalid_argument,
                fmt::format("user {} is both changed and removed in one delta", id));
        }
        index.removed_users.insert(id);
    }
    for (const auto& id : delta.removed_group_ids) {
        if (index.groups.contains(id)) {
            return directory::fail(
                directory::ErrorCode::invalid_argument,
                fmt::format("group {} is both changed and removed in one delta", id));
        }
        index.removed_groups.insert(id);
    }
    return index;
}

}  // namespace

Expected<Plan> make_delta_plan(const directory::Store& store, const mapping::Mapping& mapping,
                               const SourceSpec& source, const SourceDelta& delta) {
    auto indexed = index_delta(delta);
    if (!indexed) {
        return std::unexpected(indexed.error());
    }
    const DeltaIndex& index = *indexed;
    const std::string& name = source.name;
    auto group_after = [&](const SourceGroup& stored) -> const SourceGroup* {
        if (index.removed_groups.contains(stored.external_id)) {
            return nullptr;
        }
        auto upserted = index.groups.find(stored.external_id);
        return upserted == index.groups.end() ? &stored : upserted->second;
    };

    // 1. Groups: which users and names they affect.
    std::set<std::string> affected;  // user external ids
    std::set<std::string> affected_names;
    {
        std::vector<std::string> ids;
        for (const auto& [id, group] : index.groups) {
            ids.push_back(id);
        }
        ids.insert(ids.end(), index.removed_groups.begin(), index.removed_groups.end());
        auto before = store.find_source_groups(name, ids, true);
        if (!before) {
            return std::unexpected(before.error());
        }
        std::map<std::string, const SourceGroup*> old_groups;
        for (const auto& group : *before) {
            old_groups.emplace(group.external_id, &group);
        }
        for (const auto& [id, group] : index.groups) {
            auto old = old_groups.find(id);
            if (old == old_groups.end() || old->second->name != group->name) {
                affected_names.insert(group->name);
                if (old != old_groups.end()) {
                    affected_names.insert(old->second->name);
                }
                continue;
            }
            auto was = sorted_unique(old->second->member_ids);
            auto now = sorted_unique(group->member_ids);
            std::set_symmetric_difference(was.begin(), was.end(), now.begin(), now.end(),
                                          std::inserter(affected, affected.end()));
        }
        for (const auto& id : index.removed_groups) {
            if (auto old = old_groups.find(id); old != old_groups.end()) {
                affected_names.insert(old->second->name);
            }
        }
        if (!affected_names.empty()) {
            auto named = store.source_groups_named(
                name, {affected_names.begin(), affected_names.end()}, true);
            if (!named) {
                return std::unexpected(named.error());
            }
            for (const auto& group : *named) {
                affected.insert(group.member_ids.begin(), group.member_ids.end());
            }
            for (const auto& [id, group] : index.groups) {
                if (affected_names.contains(group->name)) {
                    affected.insert(group->member_ids.begin(), group->member_ids.end());
                }
            }
        }
    }
    for (const auto& [id, user] : index.users) {
        affected.insert(id);
    }
    affected.insert(index.removed_users.begin(), index.removed_users.end());

    // 2. Users: the affected ones, closed over shared addresses.
    std::map<std::string, SourceUser> before_users;
    std::unordered_map<std::string, std::string> known;
    std::set<std::string> emails;  // every address the diff must see
    std::vector<std::string> pending(affected.begin(), affected.end());
    while (!pending.empty()) {
        auto stored = store.find_source_users(name, pending);
        auto ids = store.external_ids(name, "id", pending);
        if (!stored || !ids) {
            return std::unexpected(!stored ? stored.error() : ids.error());
        }
        for (auto& user : *stored) {
            before_users.emplace(user.external_id, std::move(user));
        }
        std::vector<std::string> new_emails;
        auto note = [&](const std::string& address) {
            auto canonical = directory::canonical_email(address);
            if (canonical && emails.insert(*canonical).second) {
                new_emails.push_back(*canonical);
            }
        };
        for (const auto& id : pending) {
            if (auto found = before_users.find(id); found != before_users.end()) {
                note(found->second.email);
            }
            if (auto upserted = index.users.find(id); upserted != index.users.end()) {
                note(upserted->second->email);
            }
            if (auto held = ids->find(id); held != ids->end()) {
                note(held->second);
                known.insert(*held);
            }
        }
        pending.clear();
        if (new_emails.empty()) {
            break;
        }
        auto sharing = store.source_users_with_email(name, new_emails);
        if (!sharing) {
            return std::unexpected(sharing.error());
        }
        for (const auto& user : *sharing) {
            if (affected.insert(user.external_id).second) {
                pending.push_back(user.external_id);
            }
        }
    }

    SourceData data;
    for (const auto& id : affected) {  // in external id order, as the stored mirror
        if (auto upserted = index.users.find(id); upserted != index.users.end()) {
            data.users.push_back(*upserted->second);
        } else if (auto stored = before_users.find(id);
                   stored != before_users.end() && !index.removed_users.contains(id)) {
            data.users.push_back(stored->second);
        }
    }

    // 3. The groups of the affected users after the delta, and every group
    // sharing a name with one of them, with their affected members only.
    std::map<std::string, SourceGroup> groups;  // by external id
    {
        auto pairs = store.source_memberships_of(name, {affected.begin(), affected.end()});
        if (!pairs) {
            return std::unexpected(pairs.error());
        }
        std::map<std::string, std::vector<std::string>> members_of;  // stored, not in the delta
        for (auto& [group, member] : *pairs) {
            if (!index.groups.contains(group) && !index.removed_groups.contains(group)) {
                members_of[group].push_back(std::move(member));
            }
        }
        for (const auto& [id, group] : index.groups) {
            for (const auto& member : group->member_ids) {
                if (affected.contains(member)) {
                    members_of[id].push_back(member);
                }
            }
        }
        std::vector<std::string> stored_ids;
        for (const auto& [id, members] : members_of) {
            if (!index.groups.contains(id)) {
                stored_ids.push_back(id);
            }
        }
        auto stored = store.find_source_groups(name, stored_ids, false);
        if (!stored) {
            return std::unexpected(stored.error());
        }
        std::set<std::string> names = affected_names;
        auto add = [&](const SourceGroup& group) {
            SourceGroup& entry = groups[group.external_id];
            if (entry.external_id.empty()) {
                entry =
                    SourceGroup{group.source, group.external_id, group.name, group.attributes, {}};
                if (auto members = members_of.find(group.external_id);
                    members != members_of.end()) {
                    entry.member_ids = sorted_unique(members->second);
                }
            }
            names.insert(group.name);
        };
        for (const auto& group : *stored) {
            add(group);
        }
        for (const auto& [id, group] : index.groups) {
            if (members_of.contains(id)) {
                add(*group);
            }
        }
        auto named = store.source_groups_named(name, {names.begin(), names.end()}, false);
        if (!named) {
            return std::unexpected(named.error());
        }
        for (const auto& group : *named) {
            if (const SourceGroup* after = group_after(group);
                after != nullptr && names.contains(after->name)) {
                add(*after);
            }
        }
        for (const auto& [id, group] : index.groups) {
            if (names.contains(group->name)) {
                add(*group);
            }
        }
        affected_names = std::move(names);
    }
    for (auto& [id, group] : groups) {
        data.groups.push_back(std::move(group));
    }

    // 4. What the store holds for those addresses and group names.
    std::vector<std::string> addresses(emails.begin(), emails.end());
    auto assertions = store.source_assertions_for(name, addresses,
                                                  {affected_names.begin(), affected_names.end()});
    auto users = store.find_users(addresses);
    auto disabled = store.disabled_elsewhere(name, addresses);
    auto counts = delta.guard_counts ? store.source_member_counts(name)
                                     : directory::Expected<std::map<std::string, std::size_t>>{};
    auto mirrored =
        delta.guard_counts ? store.source_user_count(name) : directory::Expected<std::size_t>{0};
    if (!assertions || !users || !disabled || !counts || !mirrored) {
        return std::unexpected(!assertions ? assertions.error()
                               : !users    ? users.error()
                               : !disabled ? disabled.error()
                               : !counts   ? counts.error()
                                           : mirrored.error());
    }
    detail::StoreState state;
    state.assertions = std::move(*assertions);
    state.known = std::move(known);
    for (const auto& user : *users) {
        if (!user.active) {
            state.inactive_now.insert(user.email);
        }
    }
    state.disabled = std::move(*disabled);
    state.members_by_org = std::move(*counts);
    auto plan = detail::diff(store, mapping, source, data, std::move(state));
    if (!plan) {
        return plan;
    }
    if (!delta.guard_counts) {
        return plan;
    }
    std::size_t mirror_users = *mirrored;
    for (const auto& [id, user] : index.users) {
        mirror_users += before_users.contains(id) ? 0U : 1U;
    }
    for (const auto& id : index.removed_users) {
        mirror_users -= before_users.contains(id) ? 1U : 0U;
    }
    plan->summary.mirror_users = mirror_users;
    return plan;
}

}  // namespace orgsync::sync
