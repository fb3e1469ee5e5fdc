#include "directory/snapshot_builder.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace orgsync::directory {
namespace {

// One entry per user, the highest access any source asserts, sorted by
// user for binary search.
template <typename Access>
void normalise_user_grants(std::vector<std::pair<UserId, Access>>& grants) {
    std::sort(grants.begin(), grants.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    grants.erase(std::unique(grants.begin(), grants.end(),
                             [](const auto& a, const auto& b) { return a.first == b.first; }),
                 grants.end());
}

// Group grants collapse to one entry per group (the highest level any
// source asserts), sorted highest first so a decision can stop at the first
// group the user is in.
template <typename Access>
void normalise_group_grants(std::vector<std::pair<GroupIndex, Access>>& grants) {
    std::sort(grants.begin(), grants.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    grants.erase(std::unique(grants.begin(), grants.end(),
                             [](const auto& a, const auto& b) { return a.first == b.first; }),
                 grants.end());
    std::stable_sort(grants.begin(), grants.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
}

}  // namespace

std::shared_ptr<const OrgView> build_org_view(Db& db, OrgId org) {
    auto view = std::make_shared<OrgView>();
    view->id = org;
    {
        auto& q = db.query("SELECT slug FROM orgs WHERE id = ?", org);
        if (!q.executeStep()) {
            return nullptr;
        }
        view->slug = q.getColumn(0).getString();
    }

    // Built whole, then split into shards (moving nodes, not copying them).
    StringMap<MemberView> members;
    std::unordered_map<UserId, MemberView*> by_id;
    {
        auto& q = db.query(
            "SELECT u.id, u.email, u.active, m.user_type, m.role FROM memberships m "
            "JOIN users u ON u.id = m.user_id WHERE m.org_id = ?",
            org);
        while (q.executeStep()) {
            MemberView member;
            member.id = q.getColumn(0).getInt64();
            member.active = q.getColumn(2).getInt() != 0;
            member.user_type = parse_user_type(q.getColumn(3).getString()).value();
            member.role = parse_org_role(q.getColumn(4).getString()).value();
            auto [it, inserted] = members.emplace(q.getColumn(1).getString(), member);
            by_id.emplace(member.id, &it->second);
        }
    }

    auto groups = std::make_shared<GroupTable>();
    std::unordered_map<GroupId, GroupIndex> group_index;
    {
        auto& q = db.query("SELECT id, name FROM groups WHERE org_id = ? ORDER BY id", org);
        while (q.executeStep()) {
            group_index.emplace(q.getColumn(0).getInt64(),
                                static_cast<GroupIndex>(groups->names.size()));
            groups->ids.push_back(q.getColumn(0).getInt64());
            groups->names.push_back(q.getColumn(1).getString());
        }
    }
    view->groups = std::move(groups);
    {
        auto& q =
            db.query("SELECT DISTINCT group_id, user_id FROM group_members WHERE org_id = ?", org);
        while (q.executeStep()) {
            auto member = by_id.find(q.getColumn(1).getInt64());
            auto group = group_index.find(q.getColumn(0).getInt64());
            if (member != by_id.end() && group != group_index.end()) {
                member->second->groups.push_back(group->second);
            }
        }
        for (auto& [email, member] : members) {
            std::sort(member.groups.begin(), member.groups.end());
        }
    }
    view->members = ShardedMap<MemberView>::from(std::move(members), OrgView::k_members_per_shard);

    StringMap<ProjectView> projects;
    std::unordered_map<ProjectId, ProjectView*> project_by_id;
    {
        auto& q = db.query("SELECT id, slug, visibility FROM projects WHERE org_id = ?", org);
        while (q.executeStep()) {
            ProjectView project;
            project.id = q.getColumn(0).getInt64();
            project.visibility = parse_visibility(q.getColumn(2).getString()).value();
            auto [it, inserted] = projects.emplace(q.getColumn(1).getString(), project);
            project_by_id.emplace(project.id, &it->second);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.project_id, g.user_id, g.level FROM project_user_grants g "
            "JOIN projects p ON p.id = g.project_id WHERE p.org_id = ?",
            org);
        while (q.executeStep()) {
            auto project = project_by_id.find(q.getColumn(0).getInt64());
            if (project != project_by_id.end()) {
                project->second->grants.users.emplace_back(
                    q.getColumn(1).getInt64(), parse_level(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, project] : projects) {
            normalise_user_grants(project.grants.users);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.project_id, g.group_id, g.level FROM project_group_grants g "
            "JOIN projects p ON p.id = g.project_id WHERE p.org_id = ?",
            org);
        while (q.executeStep()) {
            auto project = project_by_id.find(q.getColumn(0).getInt64());
            auto group = group_index.find(q.getColumn(1).getInt64());
            if (project != project_by_id.end() && group != group_index.end()) {
                project->second->grants.groups.emplace_back(
                    group->second, parse_level(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, project] : projects) {
            normalise_group_grants(project.grants.groups);
        }
    }
    view->projects =
        ShardedMap<ProjectView>::from(std::move(projects), OrgView::k_projects_per_shard);

    StringMap<DatasetView> datasets;
    std::unordered_map<DatasetId, DatasetView*> dataset_by_id;
    {
        auto& q = db.query("SELECT id, slug FROM datasets WHERE org_id = ?", org);
        while (q.executeStep()) {
            DatasetView dataset;
            dataset.id = q.getColumn(0).getInt64();
            auto [it, inserted] = datasets.emplace(q.getColumn(1).getString(), dataset);
            dataset_by_id.emplace(dataset.id, &it->second);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.dataset_id, g.user_id, g.access FROM dataset_user_grants g "
            "JOIN datasets d ON d.id = g.dataset_id WHERE d.org_id = ?",
            org);
        while (q.executeStep()) {
            auto dataset = dataset_by_id.find(q.getColumn(0).getInt64());
            if (dataset != dataset_by_id.end()) {
                dataset->second->grants.users.emplace_back(
                    q.getColumn(1).getInt64(),
                    parse_dataset_access(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, dataset] : datasets) {
            normalise_user_grants(dataset.grants.users);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.dataset_id, g.group_id, g.access FROM dataset_group_grants g "
            "JOIN datasets d ON d.id = g.dataset_id WHERE d.org_id = ?",
            org);
        while (q.executeStep()) {
            auto dataset = dataset_by_id.find(q.getColumn(0).getInt64());
            auto group = group_index.find(q.getColumn(1).getInt64());
            if (dataset != dataset_by_id.end() && group != group_index.end()) {
                dataset->second->grants.groups.emplace_back(
                    group->second, parse_dataset_access(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, dataset] : datasets) {
            normalise_group_grants(dataset.grants.groups);
        }
    }
    view->datasets =
        ShardedMap<DatasetView>::from(std::move(datasets), OrgView::k_datasets_per_shard);
    return view;
}

std::shared_ptr<const Snapshot> build_snapshot(Db& db) {
    std::vector<OrgId> ids;
    {
        auto& q = db.query("SELECT id FROM orgs");
        while (q.executeStep()) {
            ids.push_back(q.getColumn(0).getInt64());
        }
    }
    StringMap<std::shared_ptr<const OrgView>> orgs;
    for (OrgId id : ids) {
        if (auto view = build_org_view(db, id)) {
            orgs.emplace(view->slug, std::move(view));
        }
    }
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->orgs = ShardedMap<std::shared_ptr<const OrgView>>::from(std::move(orgs),
                                                                      Snapshot::k_orgs_per_shard);
    return snapshot;
}

namespace {

// Re-reads the touched members into `members`. False when a member is in a
// group `groups` does not know.
bool update_members(Db& db, const OrgChanges& changes, const GroupTable& groups,
                    ShardedMapEditor<MemberView>& members) {
    // A changed address moves the entry to another key, an ended
    // membership removes it.
    for (const auto& [user, previous] : changes.previous_emails) {
        if (const MemberView* member = members.find(previous); member && member->id == user) {
            members.erase(previous);
        }
    }
    for (UserId user : changes.members) {
        std::string email;
        bool in_org = false;
        MemberView member;
        member.id = user;
        {
            auto& q = db.query(
                "SELECT u.email, u.active, m.user_type, m.role FROM users u LEFT JOIN memberships "
                "m ON m.user_id = u.id AND m.org_id = ? WHERE u.id = ?",
                changes.org, user);
            if (q.executeStep()) {
                email = q.getColumn(0).getString();
                in_org = !q.getColumn(2).isNull();
                if (in_org) {
                    member.active = q.getColumn(1).getInt() != 0;
                    member.user_type = parse_user_type(q.getColumn(2).getString()).value();
                    member.role = parse_org_role(q.getColumn(3).getString()).value();
                }
            }
        }
        if (!in_org) {
            // The membership ended (and with it, by cascade, the user's
            // groups and grants in the org: the caller names those grants).
            if (const MemberView* was = members.find(email); was && was->id == user) {
                members.erase(email);
            }
            continue;
        }
        auto& q =
            db.query("SELECT DISTINCT group_id FROM group_members WHERE org_id = ? AND user_id = ?",
                     changes.org, user);
        while (q.executeStep()) {
            GroupId group = q.getColumn(0).getInt64();
            auto found = std::lower_bound(groups.ids.begin(), groups.ids.end(), group);
            if (found == groups.ids.end() || *found != group) {
                return false;
            }
            member.groups.push_back(static_cast<GroupIndex>(found - groups.ids.begin()));
        }
        std::sort(member.groups.begin(), member.groups.end());
        members.insert_or_assign(std::move(email), std::move(member));
    }
    return true;
}

// The user's effective direct grant on one project or dataset (the highest
// any source asserts), or none.
template <typename Access>
std::optional<Access> read_user_grant(Db& db, const UserGrantKey& key) {
    const char* sql = key.target == GrantTarget::project
                          ? "SELECT level FROM project_user_grants WHERE project_id = ? AND "
                            "user_id = ?"
                          : "SELECT access FROM dataset_user_grants WHERE dataset_id = ? AND "
                            "user_id = ?";
    std::optional<Access> best;
    auto& q = db.query(sql, key.id, key.user);
    while (q.executeStep()) {
        Access access;
        if constexpr (std::is_same_v<Access, Level>) {
            access = parse_level(q.getColumn(0).getString()).value();
        } else {
            access = parse_dataset_access(q.getColumn(0).getString()).value();
        }
        best = best ? std::max(*best, access) : access;
    }
    return best;
}

template <typename Access>
void set_user_grant(GrantsView<Access>& grants, UserId user, std::optional<Access> access) {
    auto it = std::lower_bound(grants.users.begin(), grants.users.end(), user,
                               [](const auto& entry, UserId id) { return entry.first < id; });
    bool present = it != grants.users.end() && it->first == user;
    if (!access) {
        if (present) {
            grants.users.erase(it);
        }
    } else if (present) {
        it->second = *access;
    } else {
        grants.users.insert(it, {user, *access});
    }
}

// Re-reads one touched user grant into `projects` or `datasets`. False
// when its project or dataset is not in the view.
bool update_user_grant(Db& db, const OrgChanges& changes, const UserGrantKey& key,
                       ShardedMapEditor<ProjectView>& projects,
                       ShardedMapEditor<DatasetView>& datasets) {
    const char* sql = key.target == GrantTarget::project
                          ? "SELECT slug FROM projects WHERE id = ? AND org_id = ?"
                          : "SELECT slug FROM datasets WHERE id = ? AND org_id = ?";
    std::string slug;
    {
        auto& q = db.query(sql, key.id, changes.org);
        if (!q.executeStep()) {
            return false;
        }
        slug = q.getColumn(0).getString();
    }
    if (key.target == GrantTarget::project) {
        ProjectView* project = projects.find(slug);
        if (project == nullptr || project->id != key.id) {
            return false;
        }
        set_user_grant(project->grants, key.user, read_user_grant<Level>(db, key));
    } else {
        DatasetView* dataset = datasets.find(slug);
        if (dataset == nullptr || dataset->id != key.id) {
            return false;
        }
        set_user_grant(dataset->grants, key.user, read_user_grant<DatasetAccess>(db, key));
    }
    return true;
}

}  // namespace

std::shared_ptr<const OrgView> update_org_view(Db& db, const OrgView& old,
                                               const OrgChanges& changes) {
    // Copies one pointer per shard; the editors below replace only the
    // shards they write to.
    auto view = std::make_shared<OrgView>(old);
    if (!changes.members.empty() || !changes.previous_emails.empty()) {
        ShardedMapEditor<MemberView> members(view->members, OrgView::k_members_per_shard);
        if (!update_members(db, changes, *view->groups, members)) {
            return nullptr;
        }
        members.finish();
    }
    if (!changes.user_grants.empty()) {
        ShardedMapEditor<ProjectView> projects(view->projects, OrgView::k_projects_per_shard);
        ShardedMapEditor<DatasetView> datasets(view->datasets, OrgView::k_datasets_per_shard);
        for (const UserGrantKey& key : changes.user_grants) {
            if (!update_user_grant(db, changes, key, projects, datasets)) {
                return nullptr;
            }
        }
        projects.finish();
        datasets.finish();
    }
    return view;
}

std::shared_ptr<const Snapshot> next_snapshot(Db& db, const Snapshot& current,
                                              const std::vector<OrgChanges>& changes) {
    auto next = std::make_shared<Snapshot>(current);
    ShardedMapEditor<std::shared_ptr<const OrgView>> orgs(next->orgs, Snapshot::k_orgs_per_shard);
    for (const OrgChanges& change : changes) {
        // An org's slug never changes, so the old view is found by it.
        std::string slug;
        {
            auto& q = db.query("SELECT slug FROM orgs WHERE id = ?", change.org);
            if (!q.executeStep()) {
                continue;
            }
            slug = q.getColumn(0).getString();
        }
        std::shared_ptr<const OrgView> view;
        if (const OrgView* old = current.find_org(slug); old && !change.rebuild) {
            view = update_org_view(db, *old, change);
        }
        if (!view) {
            view = build_org_view(db, change.org);
        }
        if (view) {
            orgs.insert_or_assign(slug, std::move(view));
        }
    }
    orgs.finish();
    return next;
}

}  // namespace orgsync::directory
