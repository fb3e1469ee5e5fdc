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
            auto [it, inserted] = view->members.emplace(q.getColumn(1).getString(), member);
            by_id.emplace(member.id, &it->second);
        }
    }

    std::unordered_map<GroupId, GroupIndex> group_index;
    {
        auto& q = db.query("SELECT id, name FROM groups WHERE org_id = ? ORDER BY id", org);
        while (q.executeStep()) {
            group_index.emplace(q.getColumn(0).getInt64(),
                                static_cast<GroupIndex>(view->group_names.size()));
            view->group_ids.push_back(q.getColumn(0).getInt64());
            view->group_names.push_back(q.getColumn(1).getString());
        }
    }
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
        for (auto& [email, member] : view->members) {
            std::sort(member.groups.begin(), member.groups.end());
        }
    }

    std::unordered_map<ProjectId, ProjectView*> projects;
    {
        auto& q = db.query("SELECT id, slug, visibility FROM projects WHERE org_id = ?", org);
        while (q.executeStep()) {
            ProjectView project;
            project.id = q.getColumn(0).getInt64();
            project.visibility = parse_visibility(q.getColumn(2).getString()).value();
            auto [it, inserted] = view->projects.emplace(q.getColumn(1).getString(), project);
            projects.emplace(project.id, &it->second);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.project_id, g.user_id, g.level FROM project_user_grants g "
            "JOIN projects p ON p.id = g.project_id WHERE p.org_id = ?",
            org);
        while (q.executeStep()) {
            auto project = projects.find(q.getColumn(0).getInt64());
            if (project != projects.end()) {
                project->second->grants.users.emplace_back(
                    q.getColumn(1).getInt64(), parse_level(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, project] : view->projects) {
            normalise_user_grants(project.grants.users);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.project_id, g.group_id, g.level FROM project_group_grants g "
            "JOIN projects p ON p.id = g.project_id WHERE p.org_id = ?",
            org);
        while (q.executeStep()) {
            auto project = projects.find(q.getColumn(0).getInt64());
            auto group = group_index.find(q.getColumn(1).getInt64());
            if (project != projects.end() && group != group_index.end()) {
                project->second->grants.groups.emplace_back(
                    group->second, parse_level(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, project] : view->projects) {
            normalise_group_grants(project.grants.groups);
        }
    }

    std::unordered_map<DatasetId, DatasetView*> datasets;
    {
        auto& q = db.query("SELECT id, slug FROM datasets WHERE org_id = ?", org);
        while (q.executeStep()) {
            DatasetView dataset;
            dataset.id = q.getColumn(0).getInt64();
            auto [it, inserted] = view->datasets.emplace(q.getColumn(1).getString(), dataset);
            datasets.emplace(dataset.id, &it->second);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.dataset_id, g.user_id, g.access FROM dataset_user_grants g "
            "JOIN datasets d ON d.id = g.dataset_id WHERE d.org_id = ?",
            org);
        while (q.executeStep()) {
            auto dataset = datasets.find(q.getColumn(0).getInt64());
            if (dataset != datasets.end()) {
                dataset->second->grants.users.emplace_back(
                    q.getColumn(1).getInt64(),
                    parse_dataset_access(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, dataset] : view->datasets) {
            normalise_user_grants(dataset.grants.users);
        }
    }
    {
        auto& q = db.query(
            "SELECT g.dataset_id, g.group_id, g.access FROM dataset_group_grants g "
            "JOIN datasets d ON d.id = g.dataset_id WHERE d.org_id = ?",
            org);
        while (q.executeStep()) {
            auto dataset = datasets.find(q.getColumn(0).getInt64());
            auto group = group_index.find(q.getColumn(1).getInt64());
            if (dataset != datasets.end() && group != group_index.end()) {
                dataset->second->grants.groups.emplace_back(
                    group->second, parse_dataset_access(q.getColumn(2).getString()).value());
            }
        }
        for (auto& [slug, dataset] : view->datasets) {
            normalise_group_grants(dataset.grants.groups);
        }
    }
    return view;
}

std::shared_ptr<const OrgView> update_members(Db& db, const OrgView& old,
                                              const std::vector<UserId>& users) {
    auto view = std::make_shared<OrgView>(old);
    // Where each touched user is in the old view: an address change moves
    // them to another key, a membership that ended removes them.
    std::unordered_map<UserId, std::string> old_email;
    for (UserId user : users) {
        old_email.emplace(user, std::string());
    }
    for (const auto& [email, member] : view->members) {
        if (auto found = old_email.find(member.id); found != old_email.end()) {
            found->second = email;
        }
    }
    for (UserId user : users) {
        if (const std::string& was = old_email[user]; !was.empty()) {
            view->members.erase(was);
        }
        std::string email;
        MemberView member;
        member.id = user;
        {
            auto& q = db.query(
                "SELECT u.email, u.active, m.user_type, m.role FROM memberships m JOIN users u ON "
                "u.id = m.user_id WHERE m.org_id = ? AND m.user_id = ?",
                old.id, user);
            if (!q.executeStep()) {
                // The membership ended, and with it (foreign keys) the
                // user's grants in the org.
                auto drop = [user](auto& grants) {
                    std::erase_if(grants.users,
                                  [user](const auto& entry) { return entry.first == user; });
                };
                for (auto& [slug, project] : view->projects) {
                    drop(project.grants);
                }
                for (auto& [slug, dataset] : view->datasets) {
                    drop(dataset.grants);
                }
                continue;
            }
            email = q.getColumn(0).getString();
            member.active = q.getColumn(1).getInt() != 0;
            member.user_type = parse_user_type(q.getColumn(2).getString()).value();
            member.role = parse_org_role(q.getColumn(3).getString()).value();
        }
        auto& q =
            db.query("SELECT DISTINCT group_id FROM group_members WHERE org_id = ? AND user_id = ?",
                     old.id, user);
        while (q.executeStep()) {
            GroupId group = q.getColumn(0).getInt64();
            auto found = std::lower_bound(view->group_ids.begin(), view->group_ids.end(), group);
            if (found == view->group_ids.end() || *found != group) {
                return nullptr;
            }
            member.groups.push_back(static_cast<GroupIndex>(found - view->group_ids.begin()));
        }
        std::sort(member.groups.begin(), member.groups.end());
        view->members.insert_or_assign(std::move(email), std::move(member));
    }
    return view;
}

}  // namespace orgsync::directory
