#pragma once

// One sync run of one source (DESIGN §2, §4): plan, resolve what must be
// held, check the guards, then apply in one transaction that also replaces
// the source's mirror (when the source was fetched) and records the run.

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"

namespace orgsync::sync {

// The plan `make_plan` gives, with the changes that would remove a
// project's last admin either replaced by the mapping's fallback admin or
// moved to `held` (invariant 5). A plan that fails for another reason keeps
// its changes and says why in `problem`.
directory::Expected<Plan> prepare_plan(directory::Store& store, const mapping::Mapping& mapping,
                                       const SourceSpec& source, const SourceData& data);

// prepare_plan for a delta (make_delta_plan), with holds settled the same way.
directory::Expected<Plan> prepare_delta_plan(directory::Store& store,
                                             const mapping::Mapping& mapping,
                                             const SourceSpec& source, const SourceDelta& delta);

// The source's mirror as stored.
directory::Expected<SourceData> stored_mirror(const directory::Store& store,
                                              std::string_view source);

// Why a plan must not be applied without --force, or nothing: it would
// remove or deactivate more than an org's guard allows (share or count of
// the users the source asserts there).
std::optional<std::string> deletion_guard(const Plan& plan, const mapping::Mapping& mapping);

struct RunOptions {
    bool force = false;  // apply a plan the deletion guard blocks
    // Record an applied run in sync_runs. A SCIM push is one small delta
    // per request, audited change by change already; recording each as a
    // run would grow sync_runs by a row per request. Blocked and failed
    // runs are always recorded.
    bool record_applied = true;
};

struct RunResult {
    std::string result;   // applied | blocked | failed
    std::string message;  // why blocked or failed; empty when applied
    Plan plan;
};

// Runs one sync. `fetched` is what the connector just read from the source;
// without it the run re-derives from the stored mirror (a mapping change).
// A fetch that is incomplete, or that returned no users while the mirror
// has some, fails the run and changes nothing (an outage must never empty an
// org). Every run is recorded
// (Store::sync_runs); only an applied run changes org state.
// An applied run with `fetched` also stores fetched->cursor (or clears the
// stored one), in the same transaction; a run from the stored mirror leaves
// the cursor alone.
directory::Expected<RunResult> run_sync(directory::Store& store, const mapping::Mapping& mapping,
                                        const SourceSpec& source,
                                        const std::optional<SourceData>& fetched,
                                        const RunOptions& options);

// What a full run that plans compares a fetch with, to rewrite only the
// mirror records that changed: the digests of the stored mirror's records
// (Store::source_user_digests, source_group_digests) and the store
// generation read before them. A connector can read them on another thread
// while it reads the source, and hand them to run_sync. A settled source
// needs none (its fetch is compared with the digest of the last one), so a
// connector reads them only when source_settled says it is not.
struct StoredDigests {
    std::int64_t generation = 0;
    std::unordered_map<std::string, directory::MirrorDigest> users;
    std::unordered_map<std::string, directory::MirrorDigest> groups;
};
directory::Expected<StoredDigests> read_stored_digests(const directory::Store& store,
                                                       std::string_view source);

// Whether `source` is settled under `mapping` as the store stands now: a
// full run that fetches the records its last plan was made from will need
// no plan (Transaction::mark_settled). A write committed after this answer
// unsettles it again; run_sync checks for itself.
directory::Expected<bool> source_settled(const directory::Store& store,
                                         const mapping::Mapping& mapping, const SourceSpec& source);

// run_sync with `fetched` and the stored mirror's digests when they were
// read before (read_stored_digests). They are used when nothing was
// committed since they were read (the store generation is the same), and
// read again when the run plans otherwise.
directory::Expected<RunResult> run_sync(directory::Store& store, const mapping::Mapping& mapping,
                                        const SourceSpec& source, const SourceData& fetched,
                                        std::optional<StoredDigests> stored,
                                        const RunOptions& options);

// One incremental run: the plan of make_delta_plan, guarded like run_sync
// (an incomplete delta fails the run; the deletion guard applies), then one
// transaction patches the mirror with `delta`, applies the changes, stores
// delta.cursor (when set) and records the run as kind "delta". A blocked or
// failed run changes nothing but its record, and leaves the cursor as it was.
directory::Expected<RunResult> run_sync_delta(directory::Store& store,
                                              const mapping::Mapping& mapping,
                                              const SourceSpec& source, const SourceDelta& delta,
                                              const RunOptions& options);

}  // namespace orgsync::sync
