#pragma once

// Internal to directory/: builds the decision view of one org from SQLite.
// Called by the Store inside a write transaction (so the view matches what
// is about to be committed) and at open.

#include <memory>

#include "directory/db.hpp"
#include "directory/snapshot.hpp"

namespace orgsync::directory {

std::shared_ptr<const OrgView> build_org_view(Db& db, OrgId org);

}  // namespace orgsync::directory
