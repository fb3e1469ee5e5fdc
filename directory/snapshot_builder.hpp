#pragma once

// Internal to directory/: builds the decision view of one org from SQLite.
// Called by the Store inside a write transaction (so the view matches what
// is about to be committed) and at open.

#include <memory>

#include "directory/db.hpp"
#include "directory/snapshot.hpp"

namespace orgsync::directory {

std::shared_ptr<const OrgView> build_org_view(Db& db, OrgId org);

// `old` with the entries of `users` re-read, for a write that changed only
// those members' own rows (type, role, active flag, groups, address) or
// ended their membership (which also drops their user grants). Returns
// null when that is not enough (a member is in a group `old` does not
// know): the caller then rebuilds the whole view.
std::shared_ptr<const OrgView> update_members(Db& db, const OrgView& old,
                                              const std::vector<UserId>& users);

}  // namespace orgsync::directory
