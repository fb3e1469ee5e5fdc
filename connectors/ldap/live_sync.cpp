#include "connectors/ldap/live_sync.hpp"

#include <spdlog/spdlog.h>

#include "connectors/ldap/content_sync.hpp"

namespace orgsync::ldap {
namespace {

constexpr auto k_poll = std::chrono::milliseconds(50);
constexpr auto k_max_batch_age = std::chrono::milliseconds(500);
constexpr auto k_first_backoff = std::chrono::seconds(1);
constexpr auto k_max_backoff = std::chrono::seconds(60);

void merge(ContentChanges& into, ContentChanges&& from) {
    for (auto& entry : from.changed) {
        into.changed.push_back(std::move(entry));
    }
    for (auto& id : from.deleted) {
        into.deleted.push_back(std::move(id));
    }
    into.present.merge(from.present);
    into.present_phase = into.present_phase || from.present_phase;
    if (!from.cookie.empty()) {
        into.cookie = std::move(from.cookie);
    }
    into.refresh_required = into.refresh_required || from.refresh_required;
    into.references += from.references;
}

bool has_changes(const ContentChanges& changes) {
    return !changes.changed.empty() || !changes.deleted.empty();
}

}  // namespace

LiveSync::LiveSync(directory::Store& store, const mapping::Mapping& mapping,
                   sync::SourceSpec source, LdapSourceConfig config, OnRun on_run)
    : m_store(store),
      m_mapping(mapping),
      m_source(std::move(source)),
      m_config(std::move(config)),
      m_on_run(std::move(on_run)) {}

LiveSync::~LiveSync() {
    stop();
}

void LiveSync::start() {
    const std::lock_guard lock(m_mutex);
    if (m_thread.joinable()) {
        return;
    }
    m_stopping = false;
    m_thread = std::thread([this] { run(); });
}

void LiveSync::stop() {
    {
        const std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

bool LiveSync::wait(std::chrono::milliseconds duration) {
    std::unique_lock lock(m_mutex);
    return !m_wake.wait_for(lock, duration, [this] { return m_stopping; });
}

void LiveSync::report(const LdapSyncReport& report) {
    spdlog::info("event=ldap_live_run source={} mode={} result={} changes={} message=\"{}\"",
                 m_source.name, report.mode, report.run.result, report.run.plan.changes.size(),
                 report.run.message);
    if (m_on_run) {
        m_on_run(report);
    }
}

void LiveSync::run() {
    std::chrono::milliseconds backoff = k_first_backoff;
    while (wait(std::chrono::milliseconds(0))) {
        const auto started = std::chrono::steady_clock::now();
        // Nothing may end the thread but stop(): an exception here would
        // end the process.
        try {
            listen();
        } catch (const std::exception& error) {
            spdlog::error("event=ldap_live_failed source={} message=\"{}\"", m_source.name,
                          error.what());
        }
        // A session that lasted is a recovery: start the backoff over.
        if (std::chrono::steady_clock::now() - started > k_max_backoff) {
            backoff = k_first_backoff;
        }
        spdlog::info("event=ldap_live_retry source={} in_ms={}", m_source.name, backoff.count());
        if (!wait(backoff)) {
            return;
        }
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, k_max_backoff);
    }
}

// One session: catch up, then apply what the persistent searches report
// until something goes wrong or the thread is stopped.
void LiveSync::listen() {
    auto caught_up = sync_ldap_source(m_store, m_mapping, m_source, m_config, {});
    if (!caught_up) {
        spdlog::error("event=ldap_live_failed source={} message=\"{}\"", m_source.name,
                      caught_up.error().message);
        return;
    }
    report(*caught_up);
    if (caught_up->run.result != "applied") {
        return;
    }
    auto stored = m_store.source_cursor(m_source.name);
    std::optional<Cursor> cursor =
        stored && *stored ? Cursor::parse(**stored) : std::optional<Cursor>();
    if (!cursor || cursor->mode != k_content_sync_mode) {
        spdlog::error(
            "event=ldap_live_unavailable source={} message=\"the server does not offer content "
            "synchronisation (RFC 4533, OpenLDAP syncprov); live mode needs it\"",
            m_source.name);
        return;
    }

    auto connection = connect_source(m_config, 1);
    if (!connection) {
        spdlog::warn("event=ldap_live_disconnected source={} kind={} message=\"{}\"", m_source.name,
                     to_string(connection.error().kind), connection.error().message);
        return;
    }
    const EntryMapper mapper(m_config, m_source.name);
    auto users = PersistentSearch::start(
        *connection, user_request(m_config, mapper, m_config.user_filter), cursor->users);
    auto groups = PersistentSearch::start(
        *connection, group_request(m_config, mapper, m_config.group_filter), cursor->groups);
    if (!users || !groups) {
        const Failure& failure = !users ? users.error() : groups.error();
        spdlog::warn("event=ldap_live_disconnected source={} kind={} message=\"{}\"", m_source.name,
                     to_string(failure.kind), failure.message);
        return;
    }
    spdlog::info("event=ldap_live_listening source={} uri={}", m_source.name, connection->uri());

    ContentChanges pending_users;
    ContentChanges pending_groups;
    auto batch_started = std::chrono::steady_clock::now();
    while (wait(std::chrono::milliseconds(0))) {
        auto user_changes = users->poll(k_poll);
        auto group_changes = groups->poll(k_poll);
        if (!user_changes || !group_changes) {
            const Failure& failure = !user_changes ? user_changes.error() : group_changes.error();
            spdlog::warn("event=ldap_live_disconnected source={} kind={} message=\"{}\"",
                         m_source.name, to_string(failure.kind), failure.message);
            return;
        }
        const bool quiet = !has_changes(*user_changes) && !has_changes(*group_changes);
        if (!has_changes(pending_users) && !has_changes(pending_groups)) {
            batch_started = std::chrono::steady_clock::now();
        }
        merge(pending_users, std::move(*user_changes));
        merge(pending_groups, std::move(*group_changes));
        if (pending_users.refresh_required || pending_groups.refresh_required) {
            return;  // the next session starts with a full read
        }
        const bool due =
            quiet || std::chrono::steady_clock::now() - batch_started >= k_max_batch_age;
        // While the initial refresh runs a present phase may be incomplete:
        // nothing is applied before both searches are refreshed.
        if (!users->refreshed() || !groups->refreshed() || !due ||
            (!has_changes(pending_users) && !has_changes(pending_groups))) {
            continue;
        }
        ReadStats stats;
        auto incremental = content_changes_to_delta(
            m_store, m_config, m_source.name, &pending_users, &pending_groups, *cursor, stats);
        pending_users = {};
        pending_groups = {};
        if (!incremental) {
            spdlog::warn("event=ldap_live_failed source={} kind={} message=\"{}\"", m_source.name,
                         to_string(incremental.error().kind), incremental.error().message);
            return;
        }
        directory::Expected<LdapSyncReport> applied;
        if (incremental->delta) {
            auto run = sync::run_sync_delta(m_store, m_mapping, m_source, *incremental->delta, {});
            if (run) {
                applied = LdapSyncReport{std::move(*run), "incremental", {}, stats};
            } else {
                applied = std::unexpected(run.error());
            }
        } else {
            applied = sync_ldap_source(m_store, m_mapping, m_source, m_config, {.full = true});
            if (applied) {
                applied->reason = incremental->full_because;
            }
        }
        if (!applied) {
            spdlog::error("event=ldap_live_failed source={} message=\"{}\"", m_source.name,
                          applied.error().message);
            return;
        }
        report(*applied);
        if (applied->run.result != "applied") {
            return;
        }
        auto next = m_store.source_cursor(m_source.name);
        if (!next || !*next || !(cursor = Cursor::parse(**next))) {
            spdlog::error(
                "event=ldap_live_failed source={} message=\"the stored cursor cannot be "
                "read\"",
                m_source.name);
            return;
        }
    }
}

}  // namespace orgsync::ldap
