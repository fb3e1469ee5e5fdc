#include "connectors/ldap/ldap_source.hpp"

#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <future>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "config/fingerprint.hpp"
#include "connectors/ldap/content_sync.hpp"
#include "connectors/ldap/dn.hpp"

namespace orgsync::ldap {
namespace {

using directory::Expected;
using directory::Store;

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string describe(const Failure& failure) {
    return fmt::format("{}: {}", to_string(failure.kind), failure.message);
}

std::string generalized_time(std::chrono::system_clock::time_point when) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

// Where a read that starts now resumes from next time: Active Directory's
// highestCommittedUSN as the server reported it on connecting; elsewhere
// the time now, less the configured clock_skew. "" when the server reports no
// USN (the next run then reads everything).
std::string start_marker(const Connection& connection, const LdapSourceConfig& config) {
    if (config.flavor == LdapFlavor::active_directory) {
        return connection.features().highest_committed_usn;
    }
    return generalized_time(std::chrono::system_clock::now() - config.clock_skew);
}

std::uint64_t to_number(std::string_view text) {
    std::uint64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

// Whether an entry whose change marker is `value` is read by a search from
// `marker`: uSNChanged past it, modifyTimestamp at or past it (compared to
// the second; fractions are ignored).
bool passes_marker(std::string_view value, std::string_view marker, bool numeric) {
    if (numeric) {
        return to_number(value) > to_number(marker);
    }
    return value.substr(0, 14) >= marker.substr(0, 14);
}

// A filter that matches nothing: a content sync refresh with it returns no
// entries, only the cookie of the directory's current state.
constexpr std::string_view k_match_nothing = "(!(objectClass=*))";

// A full read, with the cursor that lets the next run be incremental.
Result<sync::SourceData> full_read(Connection& connection, const LdapSourceConfig& config,
                                   std::string_view source, const std::string& settings,
                                   ReadStats& stats,
                                   const std::function<void(std::size_t)>& progress) {
    const EntryMapper mapper(config, std::string(source));
    Cursor cursor;
    cursor.full_at = unix_now();
    cursor.settings = settings;
    // Content sync: the cookies are taken before the read, so a change made
    // while it runs is seen again by the next incremental run (re-applying
    // it is harmless) rather than missed.
    const bool content_sync =
        config.flavor == LdapFlavor::openldap && connection.features().content_sync;
    if (content_sync) {
        auto users = refresh_changes(
            connection, user_request(config, mapper, std::string(k_match_nothing)), "");
        auto groups = refresh_changes(
            connection, group_request(config, mapper, std::string(k_match_nothing)), "");
        if (!users || !groups) {
            return std::unexpected(!users ? users.error() : groups.error());
        }
        cursor.mode = k_content_sync_mode;
        cursor.users = users->cookie;
        cursor.groups = groups->cookie;
    }
    // Change markers: the marker is taken before the read too (the read is
    // not a snapshot), with the groups it sees at or past it remembered.
    const std::string marker = content_sync ? std::string() : start_marker(connection, config);
    ChangeMarks marks;
    auto read = read_directory(connection, config, source, stats, content_sync ? nullptr : &marks,
                               progress);
    if (!read) {
        return std::unexpected(read.error());
    }
    if (!content_sync) {
        cursor.mode = k_change_marker_mode;
        cursor.marker = marker;
        cursor.server = connection.uri();
        const bool numeric = config.flavor == LdapFlavor::active_directory;
        for (const auto& group : marks.groups) {
            if (!marker.empty() && passes_marker(group.marker, marker, numeric)) {
                cursor.recent_groups.emplace(group.id, group.fingerprint);
            }
        }
    }
    sync::SourceData data;
    data.users = std::move(read->first);
    data.groups = std::move(read->second);
    data.cursor = cursor.to_text();
    return data;
}

}  // namespace

Result<Incremental> content_changes_to_delta(const Store& store, const LdapSourceConfig& config,
                                             std::string_view source, const ContentChanges* users,
                                             const ContentChanges* groups, const Cursor& cursor,
                                             ReadStats& stats) {
    const EntryMapper mapper(config, std::string(source));
    if (users->refresh_required || groups->refresh_required) {
        return Incremental{std::nullopt,
                           "the directory no longer has the changes since the "
                           "last run"};
    }
    if (!groups->changed.empty()) {
        return Incremental{std::nullopt, "groups changed"};
    }
    if (users->present_phase && users->present.empty() && users->changed.empty()) {
        // Every user gone at once reads like an outage or a changed ACL: a
        // full read decides, under the guard against empty sources.
        return Incremental{std::nullopt, "the server listed no users"};
    }
    if (!groups->deleted.empty()) {
        // syncprov reports every deletion since the cookie, whatever its
        // base: only a deleted group counts here.
        auto stored_groups = store.list_source_groups(source);
        if (!stored_groups) {
            return failure(FailureKind::local, stored_groups.error().message);
        }
        const std::unordered_set<std::string> deleted(groups->deleted.begin(),
                                                      groups->deleted.end());
        if (std::ranges::any_of(*stored_groups, [&](const auto& group) {
                return deleted.contains(group.external_id);
            })) {
            return Incremental{std::nullopt, "groups changed"};
        }
    }
    std::unordered_set<std::string> stored_ids;
    const bool need_stored = users->present_phase || groups->present_phase;
    if (need_stored) {
        auto stored = store.list_source_users(source);
        if (!stored) {
            return failure(FailureKind::local, stored.error().message);
        }
        for (auto& user : *stored) {
            stored_ids.insert(std::move(user.external_id));
        }
        if (groups->present_phase) {
            auto stored_groups = store.list_source_groups(source);
            if (!stored_groups) {
                return failure(FailureKind::local, stored_groups.error().message);
            }
            const bool all_present = std::ranges::all_of(*stored_groups, [&](const auto& group) {
                return groups->present.contains(group.external_id);
            });
            if (!all_present || groups->present.size() != stored_groups->size()) {
                return Incremental{std::nullopt, "groups changed"};
            }
        }
    }

    sync::SourceDelta delta;
    std::unordered_set<std::string> touched;
    for (const Entry& entry : users->changed) {
        if (auto user = mapper.user(entry, stats)) {
            touched.insert(user->external_id);
            delta.upsert_users.push_back(std::move(*user));
        } else if (auto id = mapper.stable_id(entry); !id.empty()) {
            // No longer a user orgsync can map (its address was removed).
            touched.insert(id);
            delta.removed_user_ids.push_back(std::move(id));
        }
    }
    for (auto& id : users->deleted) {
        if (touched.insert(id).second) {
            delta.removed_user_ids.push_back(std::move(id));
        }
    }
    if (users->present_phase) {
        for (const auto& id : stored_ids) {
            if (!users->present.contains(id) && !touched.contains(id)) {
                delta.removed_user_ids.push_back(id);
            }
        }
    }
    stats.users = delta.upsert_users.size();
    Cursor next = cursor;
    if (!users->cookie.empty()) {
        next.users = users->cookie;
    }
    if (!groups->cookie.empty()) {
        next.groups = groups->cookie;
    }
    delta.cursor = next.to_text();
    return Incremental{std::move(delta), {}};
}

namespace {

Result<Incremental> content_sync_read(Connection& connection, const Store& store,
                                      const LdapSourceConfig& config, std::string_view source,
                                      const Cursor& cursor, ReadStats& stats) {
    const EntryMapper mapper(config, std::string(source));
    // Content sync searches cannot be paged: more changes than the server's
    // size limit are read in full, with paging, instead.
    const Incremental too_many{std::nullopt, "more changes than the server's size limit"};
    auto users =
        refresh_changes(connection, user_request(config, mapper, config.user_filter), cursor.users);
    if (!users) {
        if (users.error().kind == FailureKind::size_limit) {
            return too_many;
        }
        return std::unexpected(users.error());
    }
    auto groups = refresh_changes(connection, group_request(config, mapper, config.group_filter),
                                  cursor.groups);
    if (!groups) {
        if (groups.error().kind == FailureKind::size_limit) {
            return too_many;
        }
        return std::unexpected(groups.error());
    }
    return content_changes_to_delta(store, config, source, &*users, &*groups, cursor, stats);
}

// The filter for entries a search from `marker` reads.
std::string changed_since(const std::string& filter, const std::string& attribute,
                          const std::string& marker, bool numeric) {
    const std::string from = numeric ? std::to_string(to_number(marker) + 1) : marker;
    return fmt::format("(&{}({}>={}))", filter, attribute, escape_filter_value(from));
}

Result<Incremental> change_marker_read(Connection& connection, const LdapSourceConfig& config,
                                       std::string_view source, const Cursor& cursor,
                                       ReadStats& stats) {
    if (cursor.marker.empty()) {
        return Incremental{std::nullopt, "no change marker from the last run"};
    }
    if (cursor.server != connection.uri()) {
        // uSNChanged counts per domain controller, and replicas apply
        // changes at their own times: markers from one server say nothing
        // about another.
        return Incremental{std::nullopt, "connected to another server than the last run"};
    }
    const EntryMapper mapper(config, std::string(source));
    const bool numeric = config.flavor == LdapFlavor::active_directory;
    const std::string& attribute = mapper.change_attribute();
    Cursor next = cursor;
    next.marker = start_marker(connection, config);
    next.recent_groups.clear();

    // A group found again is unchanged when its membership has the
    // fingerprint remembered for it; any other group found changed.
    bool groups_changed = false;
    auto groups = group_request(
        config, mapper, changed_since(config.group_filter, attribute, cursor.marker, numeric));
    groups.paged = true;
    auto searched = connection.search(groups, [&](Entry&& entry) -> Result<void> {
        auto values = membership_values(connection, config, entry);
        if (!values) {
            return std::unexpected(values.error());
        }
        std::string id = mapper.stable_id(entry);
        if (id.empty()) {
            id = normalize_dn(entry.dn).value_or(entry.dn);
        }
        const std::uint64_t fingerprint = membership_fingerprint(std::move(*values));
        const auto known = cursor.recent_groups.find(id);
        if (known == cursor.recent_groups.end() || known->second != fingerprint) {
            groups_changed = true;
        }
        if (!next.marker.empty() && passes_marker(entry.first(attribute), next.marker, numeric)) {
            next.recent_groups.emplace(std::move(id), fingerprint);
        }
        return {};
    });
    if (!searched) {
        return std::unexpected(searched.error());
    }
    if (groups_changed) {
        return Incremental{std::nullopt, "groups changed"};
    }

    sync::SourceDelta delta;
    auto users = user_request(config, mapper,
                              changed_since(config.user_filter, attribute, cursor.marker, numeric));
    users.paged = true;
    searched = connection.search(users, [&](Entry&& entry) -> Result<void> {
        if (auto user = mapper.user(entry, stats)) {
            delta.upsert_users.push_back(std::move(*user));
        } else if (auto id = mapper.stable_id(entry); !id.empty()) {
            delta.removed_user_ids.push_back(std::move(id));
        }
        return {};
    });
    if (!searched) {
        return std::unexpected(searched.error());
    }
    stats.users = delta.upsert_users.size();
    stats.pages += searched->pages;
    delta.cursor = next.to_text();
    return Incremental{std::move(delta), {}};
}

Expected<LdapSyncReport> record_failure(Store& store, const mapping::Mapping& mapping,
                                        const sync::SourceSpec& source, const Failure& failure,
                                        std::string mode, const ReadStats& stats) {
    spdlog::error("event=ldap_read_failed source={} kind={} message=\"{}\"", source.name,
                  to_string(failure.kind), failure.message);
    sync::SourceData failed;
    failed.incomplete = describe(failure);
    auto run = sync::run_sync(store, mapping, source, failed, {});
    if (!run) {
        return std::unexpected(run.error());
    }
    return LdapSyncReport{std::move(*run), std::move(mode), {}, stats};
}

}  // namespace

Result<Connection> connect_source(const LdapSourceConfig& config, int rounds) {
    std::string password;
    if (!config.bind_dn.empty()) {
        auto secret = read_secret_file(config.bind_password_file);
        if (!secret) {
            return std::unexpected(secret.error());
        }
        password = std::move(*secret);
    }
    return Connection::open(config, password, rounds);
}

SearchRequest user_request(const LdapSourceConfig& config, const EntryMapper& mapper,
                           std::string filter) {
    return SearchRequest{.base = config.user_base,
                         .filter = std::move(filter),
                         .attributes = mapper.user_attributes(),
                         .paged = false};
}

SearchRequest group_request(const LdapSourceConfig& config, const EntryMapper& mapper,
                            std::string filter) {
    return SearchRequest{.base = config.group_base.empty() ? config.user_base : config.group_base,
                         .filter = std::move(filter),
                         .attributes = mapper.group_attributes(),
                         .paged = false};
}

std::string Cursor::to_text() const {
    nlohmann::json recent = nlohmann::json::object();
    for (const auto& [id, fingerprint] : recent_groups) {
        recent[id] = fmt::format("{:016x}", fingerprint);
    }
    return nlohmann::json{{"mode", mode},       {"users", users},         {"groups", groups},
                          {"marker", marker},   {"server", server},       {"settings", settings},
                          {"full_at", full_at}, {"recent_groups", recent}}
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Cursor> Cursor::parse(std::string_view text) {
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object() || !json.contains("full_at") || !json["full_at"].is_number_integer()) {
        return std::nullopt;
    }
    const auto text_of = [&](const char* key) -> std::optional<std::string> {
        if (!json.contains(key)) {
            return std::string();
        }
        if (!json[key].is_string()) {
            return std::nullopt;
        }
        return json[key].get<std::string>();
    };
    Cursor cursor;
    const auto mode = text_of("mode");
    const auto users = text_of("users");
    const auto groups = text_of("groups");
    const auto marker = text_of("marker");
    const auto server = text_of("server");
    const auto settings = text_of("settings");
    if (!mode || mode->empty() || !users || !groups || !marker || !server || !settings) {
        return std::nullopt;
    }
    cursor.mode = *mode;
    cursor.users = *users;
    cursor.groups = *groups;
    cursor.marker = *marker;
    cursor.server = *server;
    cursor.settings = *settings;
    cursor.full_at = json["full_at"].get<std::int64_t>();
    if (json.contains("recent_groups")) {
        if (!json["recent_groups"].is_object()) {
            return std::nullopt;
        }
        for (const auto& [id, value] : json["recent_groups"].items()) {
            if (!value.is_string()) {
                return std::nullopt;
            }
            const std::string hex = value.get<std::string>();
            std::uint64_t fingerprint = 0;
            if (std::from_chars(hex.data(), hex.data() + hex.size(), fingerprint, 16).ec !=
                std::errc{}) {
                return std::nullopt;
            }
            cursor.recent_groups.emplace(id, fingerprint);
        }
    }
    return cursor;
}

std::string settings_digest(const LdapSourceConfig& config, const mapping::Mapping& mapping) {
    const std::string text = fmt::format(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}", to_string(config.flavor), config.user_base,
        config.user_filter, config.group_base, config.group_filter, config.group_member_attribute,
        config.member_uid_attribute, config.email_attribute, config.nested_groups, mapping.digest);
    return fmt::format("{:016x}", config::fnv1a(text));
}

Result<sync::SourceData> read_source(const LdapSourceConfig& config, std::string_view source,
                                     ReadStats& stats,
                                     const std::function<void(std::size_t)>& progress) {
    auto connection = connect_source(config);
    if (!connection) {
        return std::unexpected(connection.error());
    }
    return full_read(*connection, config, source, "", stats, progress);
}

Expected<LdapSyncReport> sync_ldap_source(Store& store, const mapping::Mapping& mapping,
                                          const sync::SourceSpec& source,
                                          const LdapSourceConfig& config,
                                          const LdapSyncOptions& options) {
    ReadStats stats;
    auto connection = connect_source(config);
    if (!connection) {
        return record_failure(store, mapping, source, connection.error(), "full", stats);
    }

    // Incremental when a cursor allows it and no full read is due.
    std::string reason;
    std::optional<Cursor> cursor;
    if (auto stored = store.source_cursor(source.name); !stored) {
        return std::unexpected(stored.error());
    } else if (*stored) {
        cursor = Cursor::parse(**stored);
    }
    const bool content_sync =
        config.flavor == LdapFlavor::openldap && connection->features().content_sync;
    const std::string_view wanted_mode = content_sync ? k_content_sync_mode : k_change_marker_mode;
    const std::string settings = settings_digest(config, mapping);
    if (options.full) {
        reason = "asked for";
    } else if (!cursor) {
        reason = "first run";
    } else if (cursor->settings != settings) {
        reason = "the source's settings or the mapping changed";
    } else if (cursor->mode != wanted_mode) {
        reason = "the directory's change tracking differs from the last run";
    } else if (unix_now() - cursor->full_at >= config.full_sync_interval.count()) {
        reason = "full_sync_interval elapsed";
    }

    const sync::RunOptions run_options{.force = options.force};
    if (reason.empty()) {
        auto incremental =
            content_sync
                ? content_sync_read(*connection, store, config, source.name, *cursor, stats)
                : change_marker_read(*connection, config, source.name, *cursor, stats);
        if (!incremental) {
            return record_failure(store, mapping, source, incremental.error(), "incremental",
                                  stats);
        }
        if (incremental->delta) {
            auto run =
                sync::run_sync_delta(store, mapping, source, *incremental->delta, run_options);
            if (!run) {
                return std::unexpected(run.error());
            }
            return LdapSyncReport{std::move(*run), "incremental", {}, stats};
        }
        reason = incremental->full_because;
        stats = {};
    }

    // The stored mirror's digests, which a run that plans compares the read
    // with, are read from the store while the directory is read; a settled
    // source is likely to need no plan, and its run reads them only if it
    // does (they are 100,000 rows that would compete with the read for CPU).
    auto settled = sync::source_settled(store, mapping, source);
    if (!settled) {
        return std::unexpected(settled.error());
    }
    std::future<Expected<sync::StoredDigests>> stored_digests;
    if (!*settled) {
        stored_digests = std::async(std::launch::async, [&store, &source] {
            return sync::read_stored_digests(store, source.name);
        });
    }
    auto data = full_read(*connection, config, source.name, settings, stats, options.progress);
    std::optional<sync::StoredDigests> stored;
    if (stored_digests.valid()) {
        auto digests = stored_digests.get();
        if (!digests) {
            return std::unexpected(digests.error());
        }
        stored = std::move(*digests);
    }
    if (!data) {
        return record_failure(store, mapping, source, data.error(), "full", stats);
    }
    spdlog::info(
        "event=ldap_read source={} mode=full reason=\"{}\" users={} groups={} pages={} "
        "skipped_without_id={} skipped_without_email={} unresolved_members={} nested={} cycles={}",
        source.name, reason, stats.users, stats.groups, stats.pages, stats.users_without_id,
        stats.users_without_email, stats.unresolved_members, stats.nested_groups, stats.cycles);
    auto run = sync::run_sync(store, mapping, source, *data, std::move(stored), run_options);
    // The read and the run's working sets are hundreds of thousands of small
    // blocks; glibc keeps freed ones resident, so the next read would come on
    // top of them. Their pages go back to the system.
    *data = {};
    malloc_trim(0);
    if (!run) {
        return std::unexpected(run.error());
    }
    return LdapSyncReport{std::move(*run), "full", std::move(reason), stats};
}

}  // namespace orgsync::ldap
