#include "connectors/ldap/ldap_source.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "connectors/ldap/content_sync.hpp"
#include "connectors/ldap/dn.hpp"

namespace orgsync::ldap {
namespace {

using directory::Expected;
using directory::Store;

constexpr std::string_view k_content_sync = "content_sync";
constexpr std::string_view k_change_marker = "change_marker";

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string describe(const Failure& failure) {
    return fmt::format("{}: {}", to_string(failure.kind), failure.message);
}

Result<Connection> connect(const LdapSourceConfig& config) {
    std::string password;
    if (!config.bind_dn.empty()) {
        auto secret = read_secret_file(config.bind_password_file);
        if (!secret) {
            return std::unexpected(secret.error());
        }
        password = std::move(*secret);
    }
    return Connection::open(config, password);
}

// A filter that matches nothing: a content sync refresh with it returns no
// entries, only the cookie of the directory's current state.
constexpr std::string_view k_match_nothing = "(!(objectClass=*))";

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

// A full read, with the cursor that lets the next run be incremental.
Result<sync::SourceData> full_read(Connection& connection, const LdapSourceConfig& config,
                                   std::string_view source, ReadStats& stats,
                                   const std::function<void(std::size_t)>& progress) {
    const EntryMapper mapper(config, std::string(source));
    Cursor cursor;
    cursor.full_at = unix_now();
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
        cursor.mode = k_content_sync;
        cursor.users = users->cookie;
        cursor.groups = groups->cookie;
    }
    ChangeMarks marks;
    auto read = read_directory(connection, config, source, stats, marks, progress);
    if (!read) {
        return std::unexpected(read.error());
    }
    if (!content_sync) {
        cursor.mode = k_change_marker;
        cursor.users = marks.users;
        cursor.groups = marks.groups;
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
    next.users = users->cookie;
    next.groups = groups->cookie;
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

bool is_newer(std::string_view value, std::string_view mark, bool numeric) {
    if (!numeric) {
        return value > mark;
    }
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::from_chars(value.data(), value.data() + value.size(), a);
    std::from_chars(mark.data(), mark.data() + mark.size(), b);
    return a > b;
}

// The filter for entries whose change marker is at or past `mark` (numeric
// markers: past it).
std::string changed_since(const std::string& filter, const std::string& attribute,
                          const std::string& mark, bool numeric) {
    std::string from = mark;
    if (numeric) {
        std::uint64_t value = 0;
        std::from_chars(mark.data(), mark.data() + mark.size(), value);
        from = std::to_string(value + 1);
    }
    return fmt::format("(&{}({}>={}))", filter, attribute, escape_filter_value(from));
}

Result<Incremental> change_marker_read(Connection& connection, const LdapSourceConfig& config,
                                       std::string_view source, const Cursor& cursor,
                                       ReadStats& stats) {
    const EntryMapper mapper(config, std::string(source));
    const bool numeric = config.flavor == LdapFlavor::active_directory;
    const std::string& attribute = mapper.change_attribute();
    Cursor next = cursor;

    bool groups_changed = false;
    if (!cursor.groups.empty()) {
        auto request = group_request(
            config, mapper, changed_since(config.group_filter, attribute, cursor.groups, numeric));
        request.paged = true;
        auto searched = connection.search(request, [&](Entry&& entry) -> Result<void> {
            const std::string_view value = entry.first(attribute);
            if (is_newer(value, cursor.groups, numeric)) {
                groups_changed = true;
            }
            return {};
        });
        if (!searched) {
            return std::unexpected(searched.error());
        }
    }
    if (groups_changed || cursor.groups.empty()) {
        return Incremental{std::nullopt, "groups changed"};
    }

    sync::SourceDelta delta;
    std::string highest = cursor.users;
    auto request = user_request(
        config, mapper, changed_since(config.user_filter, attribute, cursor.users, numeric));
    request.paged = true;
    auto searched = connection.search(request, [&](Entry&& entry) -> Result<void> {
        const std::string_view value = entry.first(attribute);
        if (is_newer(value, highest, numeric)) {
            highest = std::string(value);
        }
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
    next.users = highest;
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

std::string Cursor::to_text() const {
    return nlohmann::json{
        {"mode", mode}, {"users", users}, {"groups", groups}, {"full_at", full_at}}
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Cursor> Cursor::parse(std::string_view text) {
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object() || !json.contains("mode") || !json["mode"].is_string() ||
        !json.contains("full_at") || !json["full_at"].is_number_integer()) {
        return std::nullopt;
    }
    Cursor cursor;
    cursor.mode = json["mode"].get<std::string>();
    cursor.users = json.value("users", "");
    cursor.groups = json.value("groups", "");
    cursor.full_at = json["full_at"].get<std::int64_t>();
    return cursor;
}

Result<sync::SourceData> read_source(const LdapSourceConfig& config, std::string_view source,
                                     ReadStats& stats,
                                     const std::function<void(std::size_t)>& progress) {
    auto connection = connect(config);
    if (!connection) {
        return std::unexpected(connection.error());
    }
    return full_read(*connection, config, source, stats, progress);
}

Expected<LdapSyncReport> sync_ldap_source(Store& store, const mapping::Mapping& mapping,
                                          const sync::SourceSpec& source,
                                          const LdapSourceConfig& config,
                                          const LdapSyncOptions& options) {
    ReadStats stats;
    auto connection = connect(config);
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
    const std::string_view wanted_mode = content_sync ? k_content_sync : k_change_marker;
    if (options.full) {
        reason = "asked for";
    } else if (!cursor) {
        reason = "first run";
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

    auto data = full_read(*connection, config, source.name, stats, options.progress);
    if (!data) {
        return record_failure(store, mapping, source, data.error(), "full", stats);
    }
    spdlog::info(
        "event=ldap_read source={} mode=full reason=\"{}\" users={} groups={} pages={} "
        "skipped_without_id={} skipped_without_email={} unresolved_members={} nested={} cycles={}",
        source.name, reason, stats.users, stats.groups, stats.pages, stats.users_without_id,
        stats.users_without_email, stats.unresolved_members, stats.nested_groups, stats.cycles);
    auto run = sync::run_sync(store, mapping, source, *data, run_options);
    if (!run) {
        return std::unexpected(run.error());
    }
    return LdapSyncReport{std::move(*run), "full", std::move(reason), stats};
}

}  // namespace orgsync::ldap
