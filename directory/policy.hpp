#pragma once

// authorize(): "may this user do this action in this org / project /
// dataset?", decided from a Snapshot by the capability tables and
// effective-level rules of DESIGN §1, always with a reason.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/snapshot.hpp"

namespace orgsync::directory {

enum class Action : std::uint8_t {
    // org actions, by org role
    org_billing_manage,
    org_edit,
    org_delete,
    org_users_invite,
    org_users_remove,
    org_roles_manage,
    org_projects_access_all,
    org_projects_create,
    org_datasets_manage,
    org_tags_manage,
    org_groups_manage,
    org_metrics_read,
    // project actions, by effective project level
    project_users_invite,
    project_permissions_manage,
    project_edit,
    project_delete,
    project_visibility_change,
    project_resources_write,
    project_resources_move,
    project_resources_read,
    project_predictions_create,
    // dataset actions
    dataset_read,
    dataset_write,
};

enum class ActionScope : std::uint8_t { org, project, dataset };

struct ActionInfo {
    Action action;
    std::string_view name;  // e.g. "project.resources.write"
    ActionScope scope;
    OrgRole min_role;          // org scope: the lowest role allowed
    Level min_level;           // project scope: the lowest level allowed
    DatasetAccess min_access;  // dataset scope
};

// Every action, in declaration order.
const std::array<ActionInfo, 23>& all_actions();
std::optional<Action> parse_action(std::string_view name);
const ActionInfo& action_info(Action action);

struct Request {
    std::string user;  // email, canonicalised before lookup
    std::string org;   // slug
    std::optional<std::string> project;
    std::optional<std::string> dataset;
    std::string action;
};

struct Decision {
    bool allow = false;
    std::string reason;           // names what allowed or denied it
    std::optional<OrgRole> role;  // the user's org role, when a member
    std::optional<Level>
        level;  // project level, or dataset access as read/write; unset for org actions
};

// Errors (invalid_argument / not_found) are for questions that cannot be
// answered: an unknown action, an unknown org/project/dataset, a malformed
// email, an action given the wrong target (a project action needs a project
// and no dataset, a dataset action a dataset and no project, an org action
// neither).
// A user who is unknown or not a member of the org is a deny, not an error.
Expected<Decision> authorize(const Snapshot& snapshot, const Request& request);

}  // namespace orgsync::directory
