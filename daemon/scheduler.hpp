#pragma once

// The daemon's scheduler (DESIGN §3 "Scheduler"): one worker thread per
// configured source, so a source runs at most one sync at a time and a slow
// directory holds back no other source.
//
// - LDAP sources run at start, then every `interval` with ±10 % jitter (so
//   daemons started together do not query together). After a failed run
//   the next comes sooner: retry_initial, doubling with each failure in a
//   row, capped at `interval`, with the same jitter. A source with
//   `live = true` also keeps its refreshAndPersist search open between runs
//   (ldap::LiveSync, which reconnects by itself); every run pauses it and
//   starts it again afterwards, with the mapping that run used.
// - Push sources (SCIM) have no schedule: their writes arrive over HTTP.
//   They run only when asked or when the mapping changes, re-deriving from
//   their mirror under the `exclusive` lock, so a run never interleaves with
//   a push of that source.
// - request() asks for a run now (POST /v1/sync/{source}, sync.request
//   events); requests made while a run is going are served by the next one.
// - configure() (start and reload) gives every source its settings and the
//   mapping; a source whose settings or mapping changed re-derives from its
//   stored mirror (an LDAP source whose search settings changed reads its
//   directory instead), sources no longer configured stop.
// - stop() lets running syncs finish (each applies in one transaction) and
//   joins the workers.
//
// Every finished run is passed to the observer (metrics, logs, outbound
// delivery), on the worker's or the live search's thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/ldap/source_config.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"
#include "sync/run.hpp"

namespace orgsync::daemon {

// What a source's worker runs with; replaced as a whole on reload.
struct SourceSettings {
    sync::SourceSpec spec;
    std::optional<ldap::LdapSourceConfig> ldap;  // set for LDAP sources
    std::shared_ptr<const mapping::Mapping> mapping;
};

// One finished run, as observers see it.
struct RunRecord {
    std::string source;
    std::string trigger;  // start | schedule | request | reload | live
    std::string mode;     // full | incremental | mirror
    // The run, or why none could be made (a storage error): then `failure`.
    std::optional<sync::RunResult> run;
    std::string failure;
    std::chrono::duration<double> duration{};
    std::chrono::system_clock::time_point finished;

    bool applied() const { return run && run->result == "applied"; }
    bool failed() const { return !run || run->result == "failed"; }
    std::string message() const { return run ? run->message : failure; }
};

// A source as /v1/status, /readyz and STATUS= report it.
struct SourceStatus {
    std::string name;
    std::string type;  // ldap | scim | mapping (no source configured: the mapping alone)
    bool running = false;
    std::int64_t runs = 0;  // since the daemon started
    int consecutive_failures = 0;
    int failure_threshold = 0;  // 0: never unready (push sources)
    std::optional<RunRecord> last;
    std::optional<std::chrono::system_clock::time_point> last_success;
    std::optional<std::chrono::system_clock::time_point> next_run;
    std::optional<std::size_t> users;  // mirrored, as of the last run

    bool failing() const {
        return failure_threshold > 0 && consecutive_failures >= failure_threshold;
    }
};

class Scheduler {
  public:
    using Observer = std::function<void(const RunRecord&)>;
    // Runs `body` while no push of `source` is being applied.
    using Exclusive = std::function<void(std::string_view source, const std::function<void()>&)>;

    // `store` must outlive the scheduler.
    Scheduler(directory::Store& store, Exclusive exclusive, Observer observer);
    ~Scheduler();  // stop()
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Starts a worker for every source not running yet; hands changed
    // settings to running ones; stops the ones not in `sources`. The first
    // call runs every LDAP source at once (trigger "start").
    void configure(const std::vector<SourceSettings>& sources);

    // Asks for a run of `source` now. Returns a ticket for wait(), or
    // nullopt for a source that is not configured.
    std::optional<std::uint64_t> request(std::string_view source, bool force);

    // Waits until the run serving `ticket` has finished (or `timeout`
    // passed, or the scheduler stopped) and returns the source's status.
    std::optional<SourceStatus> wait(std::string_view source, std::uint64_t ticket,
                                     std::chrono::milliseconds timeout);

    std::vector<SourceStatus> status() const;

    // No new runs; running ones finish; joins every worker. Idempotent.
    void stop();

  private:
    class Worker;

    directory::Store& m_store;
    Exclusive m_exclusive;
    Observer m_observer;
    mutable std::mutex m_mutex;  // guards m_workers, m_started
    std::map<std::string, std::shared_ptr<Worker>, std::less<>> m_workers;
    bool m_started = false;
};

// The wait before the next run: `interval` after a success, else
// retry_initial * 2^(failures-1) capped at `interval`; then scaled by
// `jitter`, a number in [0.9, 1.1].
std::chrono::milliseconds next_run_delay(std::chrono::seconds interval,
                                         std::chrono::seconds retry_initial, int failures,
                                         double jitter);

}  // namespace orgsync::daemon
