#include "daemon/scheduler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <thread>

#include "connectors/ldap/ldap_source.hpp"
#include "connectors/ldap/live_sync.hpp"

namespace orgsync::daemon {

using Clock = std::chrono::system_clock;

std::chrono::milliseconds next_run_delay(std::chrono::seconds interval,
                                         std::chrono::seconds retry_initial, int failures,
                                         double jitter) {
    std::chrono::milliseconds base = interval;
    if (failures > 0) {
        auto backoff = std::chrono::milliseconds(retry_initial);
        for (int i = 1; i < failures && backoff < base; ++i) {
            backoff *= 2;
        }
        base = std::min<std::chrono::milliseconds>(backoff, interval);
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) *
                                                               std::clamp(jitter, 0.9, 1.1)));
}

class Scheduler::Worker {
  public:
    Worker(Scheduler& owner, SourceSettings settings, bool run_now)
        : m_owner(owner), m_settings(std::make_shared<const SourceSettings>(std::move(settings))) {
        m_status.name = m_settings->spec.name;
        m_status.type = m_settings->spec.type;
        m_status.failure_threshold = m_settings->ldap ? m_settings->ldap->failure_threshold : 0;
        if (m_settings->ldap) {
            m_next = run_now ? Clock::now() : Clock::now() + jittered(m_settings->ldap->interval);
            m_status.next_run = m_next;
            m_trigger = run_now ? "start" : "schedule";
        }
        m_thread = std::thread([this] { loop(); });
    }

    ~Worker() { stop(); }

    void update(SourceSettings settings) {
        std::lock_guard lock(m_mutex);
        const bool reread =
            settings.ldap && m_settings->ldap && *settings.ldap != *m_settings->ldap;
        m_status.failure_threshold = settings.ldap ? settings.ldap->failure_threshold : 0;
        m_settings = std::make_shared<const SourceSettings>(std::move(settings));
        if (reread) {
            // New search settings: only the directory can say what they match.
            ++m_requested;
            m_request_trigger = "reload";
        } else {
            m_rederive = true;
        }
        m_wake.notify_all();
    }

    std::uint64_t request(bool force) {
        std::lock_guard lock(m_mutex);
        m_force = m_force || force;
        m_request_trigger = "request";
        m_wake.notify_all();
        return ++m_requested;
    }

    std::optional<SourceStatus> wait(std::uint64_t ticket, std::chrono::milliseconds timeout) {
        std::unique_lock lock(m_mutex);
        m_done_cv.wait_for(lock, timeout, [&] { return m_stopping || m_served >= ticket; });
        return m_status;
    }

    SourceStatus status() const {
        std::lock_guard lock(m_mutex);
        return m_status;
    }

    void stop() {
        {
            std::lock_guard lock(m_mutex);
            m_stopping = true;
            m_wake.notify_all();
            m_done_cv.notify_all();
        }
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

  private:
    struct Job {
        std::string trigger;
        bool force = false;
        bool mirror_only = false;
        std::uint64_t serves = 0;  // the last request ticket this run answers
    };

    Clock::duration jittered(std::chrono::seconds interval) {
        return next_run_delay(interval, interval, 0, m_jitter(m_random));
    }

    // Waits for the next job; nullopt when stopping.
    std::optional<Job> next_job(std::unique_lock<std::mutex>& lock) {
        for (;;) {
            if (m_stopping) {
                return std::nullopt;
            }
            const bool requested = m_requested > m_served;
            const bool due = m_settings->ldap && Clock::now() >= m_next;
            if (requested || due || m_rederive) {
                Job job;
                job.serves = m_requested;
                job.force = m_force;
                job.mirror_only = !requested && !due;
                job.trigger = requested ? m_request_trigger : due ? m_trigger : "reload";
                m_force = false;
                m_rederive = false;
                return job;
            }
            if (m_settings->ldap) {
                m_wake.wait_until(lock, m_next);
            } else {
                m_wake.wait(lock);
            }
        }
    }

    void loop() {
        std::unique_lock lock(m_mutex);
        for (;;) {
            auto job = next_job(lock);
            if (!job) {
                break;
            }
            auto settings = m_settings;
            m_status.running = true;
            lock.unlock();

            stop_live();
            RunRecord record = execute(*settings, *job);
            const auto users = mirrored_users(record.source);

            lock.lock();
            m_status.running = false;
            record_run(record, users);
            if (settings->ldap) {
                m_next = Clock::now() +
                         next_run_delay(settings->ldap->interval, settings->ldap->retry_initial,
                                        record.failed() ? m_status.consecutive_failures : 0,
                                        m_jitter(m_random));
                m_status.next_run = m_next;
                m_trigger = "schedule";
            }
            lock.unlock();

            // Observers first: whoever waits for this run sees its effects
            // (metrics) too.
            m_owner.m_observer(record);
            lock.lock();
            m_served = std::max(m_served, job->serves);
            m_done_cv.notify_all();
            lock.unlock();

            if (settings->ldap && settings->ldap->live) {
                start_live(settings);
            }
            lock.lock();
        }
        lock.unlock();
        stop_live();
    }

    // The mirror's size after a run, read before taking m_mutex.
    std::optional<std::size_t> mirrored_users(const std::string& source) const {
        auto users = m_owner.m_store.source_user_count(source);
        return users ? std::optional<std::size_t>(*users) : std::nullopt;
    }

    // Updates the status with a finished run; m_mutex held.
    void record_run(const RunRecord& record, std::optional<std::size_t> users) {
        ++m_status.runs;
        if (users) {
            m_status.users = users;
        }
        if (record.failed()) {
            ++m_status.consecutive_failures;
        } else {
            m_status.consecutive_failures = 0;
        }
        if (record.applied()) {
            m_status.last_success = record.finished;
        }
        m_status.last = record;
    }

    RunRecord execute(const SourceSettings& settings, const Job& job) {
        RunRecord record;
        record.source = settings.spec.name;
        record.trigger = job.trigger;
        const auto started = std::chrono::steady_clock::now();
        spdlog::info("event=sync.started source={} trigger={}", record.source, record.trigger);
        directory::Expected<sync::RunResult> result;
        if (settings.ldap && !job.mirror_only) {
            auto report = ldap::sync_ldap_source(
                m_owner.m_store, *settings.mapping, settings.spec, *settings.ldap,
                ldap::LdapSyncOptions{.force = job.force, .full = false, .progress = {}});
            if (report) {
                record.mode = report->mode;
                result = std::move(report->run);
            } else {
                result = std::unexpected(report.error());
            }
        } else {
            record.mode = "mirror";
            auto derive = [&] {
                result = sync::run_sync(m_owner.m_store, *settings.mapping, settings.spec,
                                        std::nullopt, sync::RunOptions{.force = job.force});
            };
            if (settings.ldap) {
                derive();
            } else {
                m_owner.m_exclusive(settings.spec.name, derive);
            }
        }
        if (result) {
            record.run = std::move(*result);
        } else {
            record.failure = result.error().message;
        }
        record.duration = std::chrono::steady_clock::now() - started;
        record.finished = Clock::now();
        log_run(record);
        return record;
    }

    static void log_run(const RunRecord& record) {
        if (!record.run) {
            spdlog::error("event=sync.failed source={} trigger={} mode={} error=\"{}\"",
                          record.source, record.trigger, record.mode, record.failure);
            return;
        }
        const auto& run = *record.run;
        auto level = run.result == "applied"   ? spdlog::level::info
                     : run.result == "blocked" ? spdlog::level::warn
                                               : spdlog::level::err;
        spdlog::log(level,
                    "event=sync.{} source={} trigger={} mode={} changes={} held={} "
                    "seconds={:.3f}{}",
                    run.result, record.source, record.trigger, record.mode, run.plan.changes.size(),
                    run.plan.held.size(), record.duration.count(),
                    run.message.empty() ? "" : fmt::format(" reason=\"{}\"", run.message));
    }

    void start_live(const std::shared_ptr<const SourceSettings>& settings) {
        {
            std::lock_guard lock(m_mutex);
            if (m_stopping) {
                return;
            }
        }
        m_live_settings = settings;
        m_live = std::make_unique<ldap::LiveSync>(
            m_owner.m_store, *settings->mapping, settings->spec, *settings->ldap,
            [this, name = settings->spec.name](const ldap::LdapSyncReport& report) {
                RunRecord record;
                record.source = name;
                record.trigger = "live";
                record.mode = report.mode;
                record.run = report.run;
                record.finished = Clock::now();
                const auto users = mirrored_users(name);
                {
                    std::lock_guard lock(m_mutex);
                    record_run(record, users);
                }
                m_owner.m_observer(record);
            });
        m_live->start();
    }

    void stop_live() {
        if (m_live) {
            m_live->stop();
            m_live.reset();
            m_live_settings.reset();
        }
    }

    Scheduler& m_owner;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_done_cv;
    std::shared_ptr<const SourceSettings> m_settings;  // guarded by m_mutex
    SourceStatus m_status;                             // guarded by m_mutex
    Clock::time_point m_next{};
    std::string m_trigger = "schedule";
    std::string m_request_trigger = "request";
    std::uint64_t m_requested = 0;  // tickets handed out
    std::uint64_t m_served = 0;     // the highest ticket a finished run served
    bool m_force = false;
    bool m_rederive = false;
    bool m_stopping = false;
    std::mt19937_64 m_random{std::random_device{}()};
    std::uniform_real_distribution<double> m_jitter{0.9, 1.1};

    // Touched by the worker thread only.
    std::unique_ptr<ldap::LiveSync> m_live;
    std::shared_ptr<const SourceSettings> m_live_settings;  // keeps the live search's mapping

    std::thread m_thread;
};

Scheduler::Scheduler(directory::Store& store, Exclusive exclusive, Observer observer)
    : m_store(store), m_exclusive(std::move(exclusive)), m_observer(std::move(observer)) {}

Scheduler::~Scheduler() {
    stop();
}

void Scheduler::configure(const std::vector<SourceSettings>& sources) {
    std::vector<std::shared_ptr<Worker>> removed;  // stopped after the lock is released
    std::lock_guard lock(m_mutex);
    const bool first = !m_started;
    m_started = true;
    for (auto it = m_workers.begin(); it != m_workers.end();) {
        const bool kept = std::ranges::any_of(
            sources, [&](const SourceSettings& source) { return source.spec.name == it->first; });
        if (kept) {
            ++it;
        } else {
            spdlog::info("event=scheduler.source_removed source={}", it->first);
            removed.push_back(std::move(it->second));
            it = m_workers.erase(it);
        }
    }
    for (const auto& source : sources) {
        auto found = m_workers.find(source.spec.name);
        if (found == m_workers.end()) {
            m_workers.emplace(source.spec.name,
                              std::make_shared<Worker>(*this, source, /*run_now=*/true));
            if (!first) {
                spdlog::info("event=scheduler.source_added source={}", source.spec.name);
            }
        } else {
            found->second->update(source);
        }
    }
}

std::optional<std::uint64_t> Scheduler::request(std::string_view source, bool force) {
    std::lock_guard lock(m_mutex);
    auto found = m_workers.find(source);
    if (found == m_workers.end()) {
        return std::nullopt;
    }
    return found->second->request(force);
}

std::optional<SourceStatus> Scheduler::wait(std::string_view source, std::uint64_t ticket,
                                            std::chrono::milliseconds timeout) {
    std::shared_ptr<Worker> worker;  // kept alive should a reload remove the source meanwhile
    {
        std::lock_guard lock(m_mutex);
        auto found = m_workers.find(source);
        if (found == m_workers.end()) {
            return std::nullopt;
        }
        worker = found->second;
    }
    return worker->wait(ticket, timeout);
}

std::vector<SourceStatus> Scheduler::status() const {
    std::lock_guard lock(m_mutex);
    std::vector<SourceStatus> out;
    out.reserve(m_workers.size());
    for (const auto& [name, worker] : m_workers) {
        out.push_back(worker->status());
    }
    return out;
}

void Scheduler::stop() {
    std::map<std::string, std::shared_ptr<Worker>, std::less<>> workers;
    {
        std::lock_guard lock(m_mutex);
        workers.swap(m_workers);
    }
    workers.clear();
}

}  // namespace orgsync::daemon
