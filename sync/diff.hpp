#pragma once

// Internal to sync/: the diff at the heart of every plan. make_plan gives it
// the whole mirror and everything the source asserts; make_delta_plan gives
// it only the records a delta touches (and what the store holds about
// them), so that a delta costs time in proportion to its size. For the
// records it is given, the diff is the same either way.

#include <map>
#include <string>
#include <unordered_map>

#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"

namespace orgsync::sync::detail {

// What the store holds that the diff compares with.
struct StoreState {
    directory::SourceAssertions assertions;              // what the source asserts
    std::unordered_map<std::string, std::string> known;  // the source's user ids → address
    directory::StringSet inactive_now;      // addresses of the existing accounts that are disabled
    directory::Store::DisabledBy disabled;  // addresses other sources mirror disabled, by whom
    // Every membership the source asserts, by org (for the deletion guard,
    // whatever part of the mirror is diffed).
    std::map<std::string, std::size_t> members_by_org;
};

// The plan for `data` against `state`: structure the mapping declares, then
// the changes for every user and group in `data`, and removals of what
// `state.assertions` holds that `data` does not give.
directory::Expected<Plan> diff(const directory::Store& store, const mapping::Mapping& mapping,
                               const SourceSpec& source, const SourceData& data, StoreState state);

}  // namespace orgsync::sync::detail
