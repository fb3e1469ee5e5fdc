#include "directory/policy.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "directory/email.hpp"

namespace orgsync::directory {
namespace {

constexpr ActionInfo org_action(Action action, std::string_view name, OrgRole min_role) {
    return ActionInfo{action, name, ActionScope::org, min_role, Level::none, DatasetAccess::read};
}
constexpr ActionInfo project_action(Action action, std::string_view name, Level min_level) {
    return ActionInfo{action,         name,      ActionScope::project,
                      OrgRole::guest, min_level, DatasetAccess::read};
}
constexpr ActionInfo dataset_action(Action action, std::string_view name, DatasetAccess access) {
    return ActionInfo{action, name, ActionScope::dataset, OrgRole::guest, Level::none, access};
}

// DESIGN §1's capability tables. Every org action is allowed to a role and
// every role above it, and every project action to a level and every level
// above it, so each row reduces to its lowest role or level.
constexpr std::array<ActionInfo, 23> k_actions{{
    org_action(Action::org_billing_manage, "org.billing.manage", OrgRole::owner),
    org_action(Action::org_edit, "org.edit", OrgRole::owner),
    org_action(Action::org_delete, "org.delete", OrgRole::owner),
    org_action(Action::org_users_invite, "org.users.invite", OrgRole::admin),
    org_action(Action::org_users_remove, "org.users.remove", OrgRole::admin),
    org_action(Action::org_roles_manage, "org.roles.manage", OrgRole::admin),
    org_action(Action::org_projects_access_all, "org.projects.access_all", OrgRole::admin),
    org_action(Action::org_projects_create, "org.projects.create", OrgRole::member),
    org_action(Action::org_datasets_manage, "org.datasets.manage", OrgRole::admin),
    org_action(Action::org_tags_manage, "org.tags.manage", OrgRole::admin),
    org_action(Action::org_groups_manage, "org.groups.manage", OrgRole::admin),
    org_action(Action::org_metrics_read, "org.metrics.read", OrgRole::member),
    project_action(Action::project_users_invite, "project.users.invite", Level::admin),
    project_action(Action::project_permissions_manage, "project.permissions.manage", Level::admin),
    project_action(Action::project_edit, "project.edit", Level::admin),
    project_action(Action::project_delete, "project.delete", Level::admin),
    project_action(Action::project_visibility_change, "project.visibility.change", Level::admin),
    project_action(Action::project_resources_write, "project.resources.write", Level::write),
    project_action(Action::project_resources_move, "project.resources.move", Level::write),
    project_action(Action::project_resources_read, "project.resources.read", Level::read),
    project_action(Action::project_predictions_create, "project.predictions.create", Level::read),
    dataset_action(Action::dataset_read, "dataset.read", DatasetAccess::read),
    dataset_action(Action::dataset_write, "dataset.write", DatasetAccess::write),
}};

struct Effective {
    Level level = Level::none;
    std::string via;  // what gave that level
};

// The highest level the member's groups are granted; `groups` is sorted
// highest first, so the first group the member is in wins.
template <typename Access>
std::optional<std::pair<Access, GroupIndex>> best_group_grant(
    const std::vector<std::pair<GroupIndex, Access>>& groups, const MemberView& member) {
    for (const auto& [group, access] : groups) {
        if (std::binary_search(member.groups.begin(), member.groups.end(), group)) {
            return std::pair{access, group};
        }
    }
    return std::nullopt;
}

Effective project_level(const OrgView& org, const ProjectView& project, const MemberView& member) {
    Effective best;
    auto consider = [&best](Level level, auto&& describe) {
        if (level > best.level) {
            best.level = level;
            best.via = describe();
        }
    };
    if (member.role == OrgRole::owner || member.role == OrgRole::admin) {
        consider(Level::admin, [&] { return fmt::format("org role {}", to_string(member.role)); });
    }
    if (auto direct = project.grants.user_grant(member.id)) {
        consider(*direct, [] { return std::string("direct grant"); });
    }
    if (auto group = best_group_grant(project.grants.groups, member)) {
        consider(group->first,
                 [&] { return fmt::format("group {}", org.groups->names[group->second]); });
    }
    if (project.visibility == Visibility::public_) {
        consider(Level::write, [] { return std::string("public project"); });
    }
    return best;
}

Effective dataset_access(const OrgView& org, const DatasetView& dataset, const MemberView& member) {
    if (member.role != OrgRole::guest) {
        return {Level::write, fmt::format("org role {}", to_string(member.role))};
    }
    Effective best;
    if (auto direct = dataset.grants.user_grant(member.id)) {
        best = {static_cast<Level>(*direct), "direct grant"};
    }
    if (auto group = best_group_grant(dataset.grants.groups, member)) {
        auto level = static_cast<Level>(group->first);
        if (level > best.level) {
            best = {level, fmt::format("group {}", org.groups->names[group->second])};
        }
    }
    return best;
}

Expected<void> check_scope(const ActionInfo& info, const Request& request) {
    bool has_project = request.project.has_value();
    bool has_dataset = request.dataset.has_value();
    switch (info.scope) {
        case ActionScope::org:
            if (has_project || has_dataset) {
                return fail(
                    ErrorCode::invalid_argument,
                    fmt::format("{} is an org action: give no project or dataset", info.name));
            }
            break;
        case ActionScope::project:
            if (!has_project || has_dataset) {
                return fail(ErrorCode::invalid_argument,
                            fmt::format("{} is a project action: give a project and no dataset",
                                        info.name));
            }
            break;
        case ActionScope::dataset:
            if (!has_dataset || has_project) {
                return fail(ErrorCode::invalid_argument,
                            fmt::format("{} is a dataset action: give a dataset and no project",
                                        info.name));
            }
            break;
    }
    return {};
}

}  // namespace

const std::array<ActionInfo, 23>& all_actions() {
    return k_actions;
}

std::optional<Action> parse_action(std::string_view name) {
    static const StringMap<Action> by_name = [] {
        StringMap<Action> names;
        for (const auto& info : k_actions) {
            names.emplace(info.name, info.action);
        }
        return names;
    }();
    auto it = by_name.find(name);
    return it == by_name.end() ? std::nullopt : std::optional<Action>(it->second);
}

const ActionInfo& action_info(Action action) {
    return k_actions[static_cast<std::size_t>(action)];
}

Expected<Decision> authorize(const Snapshot& snapshot, const Request& request) {
    auto action = parse_action(request.action);
    if (!action) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("unknown action \"{}\"", request.action));
    }
    const ActionInfo& info = action_info(*action);
    if (auto scoped = check_scope(info, request); !scoped) {
        return std::unexpected(scoped.error());
    }
    // Callers usually send canonical addresses: look those up as they are.
    std::string canonical;
    std::string_view email = request.user;
    if (!is_canonical_email(email)) {
        auto converted = canonical_email(request.user);
        if (!converted) {
            return fail(ErrorCode::invalid_argument, fmt::format("invalid user email \"{}\": {}",
                                                                 request.user, converted.error()));
        }
        canonical = std::move(*converted);
        email = canonical;
    }
    const OrgView* org = snapshot.find_org(request.org);
    if (org == nullptr) {
        return fail(ErrorCode::not_found, fmt::format("no org {}", request.org));
    }
    // The member's and the project's or dataset's shards load together.
    auto member_probe = org->members.probe(email);
    decltype(org->projects.probe({})) project_probe;
    if (request.project) {
        project_probe = org->projects.probe(*request.project);
    }
    decltype(org->datasets.probe({})) dataset_probe;
    if (request.dataset) {
        dataset_probe = org->datasets.probe(*request.dataset);
    }
    const ProjectView* project = nullptr;
    if (request.project) {
        project = org->projects.get(project_probe);
        if (project == nullptr) {
            return fail(ErrorCode::not_found,
                        fmt::format("no project {} in org {}", *request.project, org->slug));
        }
    }
    const DatasetView* dataset = nullptr;
    if (request.dataset) {
        dataset = org->datasets.get(dataset_probe);
        if (dataset == nullptr) {
            return fail(ErrorCode::not_found,
                        fmt::format("no dataset {} in org {}", *request.dataset, org->slug));
        }
    }

    Decision decision;
    const MemberView* found = org->members.get(member_probe);
    if (found == nullptr) {
        decision.reason = fmt::format("{} is not a member of org {}", email, org->slug);
        return decision;
    }
    const MemberView& member = *found;
    decision.role = member.role;
    if (!member.active) {
        decision.reason = fmt::format("{} is deactivated", email);
        return decision;
    }

    switch (info.scope) {
        case ActionScope::org:
            decision.allow = member.role >= info.min_role;
            decision.reason =
                decision.allow
                    ? fmt::format("org role {} allows {}", to_string(member.role), info.name)
                    : fmt::format("org role {} does not allow {} (needs {})",
                                  to_string(member.role), info.name, to_string(info.min_role));
            break;
        case ActionScope::project: {
            Effective effective = project_level(*org, *project, member);
            decision.level = effective.level;
            decision.allow = effective.level >= info.min_level;
            if (effective.level == Level::none) {
                decision.reason = fmt::format("no access to private project {}", *request.project);
            } else if (decision.allow) {
                decision.reason =
                    fmt::format("{} via {}", to_string(effective.level), effective.via);
            } else {
                decision.reason =
                    fmt::format("{} via {} is below {} needed for {}", to_string(effective.level),
                                effective.via, to_string(info.min_level), info.name);
            }
            break;
        }
        case ActionScope::dataset: {
            Effective effective = dataset_access(*org, *dataset, member);
            auto needed = static_cast<Level>(info.min_access);
            decision.level = effective.level;
            decision.allow = effective.level >= needed;
            if (effective.level == Level::none) {
                decision.reason = fmt::format("guest has no grant on dataset {}", *request.dataset);
            } else if (decision.allow) {
                decision.reason =
                    fmt::format("{} via {}", to_string(effective.level), effective.via);
            } else {
                decision.reason =
                    fmt::format("{} via {} is below {} needed for {}", to_string(effective.level),
                                effective.via, to_string(needed), info.name);
            }
            break;
        }
    }
    return decision;
}

}  // namespace orgsync::directory
