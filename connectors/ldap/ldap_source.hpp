#pragma once

// One sync run of an LDAP source (DESIGN §2, §4): connect, read the
// directory (everything, or only what changed since the stored cursor),
// and hand the result to the sync pipeline. Connector failures never reach
// the pipeline as data: an unreachable server, a refused bind, a timeout, a
// size or time limit, partial results or a referral fail the run, which is
// recorded and changes nothing.
//
// Incremental reads:
// - OpenLDAP with syncprov (RFC 4533): refreshOnly from the stored cookies
//   (one for users, one for groups). Deletions are reported by the server.
// - Otherwise the flavor's change marker (`uSNChanged` on Active Directory,
//   `modifyTimestamp` elsewhere): entries changed since the highest marker
//   seen. Deletions cannot be seen this way; the periodic full sync
//   (`full_sync_interval`) catches them.
// When a group changed, the run reads everything: group changes move
// memberships of users the delta does not name, and nested groups pass
// them on.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "connectors/ldap/directory_reader.hpp"
#include "connectors/ldap/source_config.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"
#include "sync/run.hpp"

namespace orgsync::ldap {

struct LdapSyncOptions {
    bool force = false;  // apply a plan the deletion guard blocks
    bool full = false;   // read everything even when an incremental read is possible
    // Called after each page of a full read with the entries read so far
    // (progress for logs and the service status).
    std::function<void(std::size_t entries)> progress;
};

struct LdapSyncReport {
    sync::RunResult run;
    std::string mode;    // "full" | "incremental"
    std::string reason;  // why a full read was chosen, when incremental was possible to ask
    ReadStats stats;
};

// One run of `source` (an LDAP source configured as `config`).
directory::Expected<LdapSyncReport> sync_ldap_source(directory::Store& store,
                                                     const mapping::Mapping& mapping,
                                                     const sync::SourceSpec& source,
                                                     const LdapSourceConfig& config,
                                                     const LdapSyncOptions& options);

// The connection `config` describes (its bind password read from
// bind_password_file), or why there is none.
Result<Connection> connect_source(const LdapSourceConfig& config, int rounds = 3);

// Unpaged searches for the source's users and groups with `filter` (content
// sync requests; callers set `paged` for ordinary reads).
SearchRequest user_request(const LdapSourceConfig& config, const EntryMapper& mapper,
                           std::string filter);
SearchRequest group_request(const LdapSourceConfig& config, const EntryMapper& mapper,
                            std::string filter);

// Reads the whole directory as `source` (for `orgsyncd plan`): the data, or
// the failure.
Result<sync::SourceData> read_source(const LdapSourceConfig& config, std::string_view source,
                                     ReadStats& stats,
                                     const std::function<void(std::size_t)>& progress = {});

inline constexpr std::string_view k_content_sync_mode = "content_sync";
inline constexpr std::string_view k_change_marker_mode = "change_marker";

// The resume point stored with the mirror (Store::source_cursor): how
// changes are found, where the last read ended, and when the last full
// read happened.
struct Cursor {
    std::string mode;    // k_content_sync_mode | k_change_marker_mode
    std::string users;   // content sync: the users search's cookie
    std::string groups;  // content sync: the groups search's cookie
    // Change markers: where the next read starts (a USN, or a generalized
    // time), the server it counts on, and the membership fingerprints of
    // the groups at or past it, so finding them again is not a change.
    std::string marker;
    std::string server;
    std::map<std::string, std::uint64_t> recent_groups;
    std::string settings;      // settings_digest() of the run that stored it
    std::int64_t full_at = 0;  // unix seconds of the last full read

    std::string to_text() const;
    static std::optional<Cursor> parse(std::string_view text);
};

struct ContentChanges;

// A fingerprint of what a read depends on: the source's search settings
// and the mapping. When it differs from the stored cursor's, the next run
// reads everything, since users outside the changes may map differently.
std::string settings_digest(const LdapSourceConfig& config, const mapping::Mapping& mapping);

// An incremental read turned into a delta, or no delta and the reason only
// a full read can tell what changed (groups changed, the server lost the
// history of the cookie).
struct Incremental {
    std::optional<sync::SourceDelta> delta;
    std::string full_because;
};

// The delta that content sync `users` and `groups` changes describe,
// relative to the stored mirror and `cursor` (shared by refreshOnly runs and
// live mode).
Result<Incremental> content_changes_to_delta(const directory::Store& store,
                                             const LdapSourceConfig& config,
                                             std::string_view source, const ContentChanges* users,
                                             const ContentChanges* groups, const Cursor& cursor,
                                             ReadStats& stats);

}  // namespace orgsync::ldap
