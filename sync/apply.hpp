#pragma once

// Applies a plan's changes through a store Transaction. Every change is one
// or a few store calls; the store enforces the invariants and records each
// change in the audit log and the outbox.

#include <string_view>
#include <vector>

#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"

namespace orgsync::sync {

// Applies `changes` in order as `source`; stops at the first error.
directory::Expected<void> apply_changes(directory::Transaction& tx, const mapping::Mapping& mapping,
                                        std::string_view source,
                                        const std::vector<Change>& changes);

}  // namespace orgsync::sync
