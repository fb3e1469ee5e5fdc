#pragma once

// Outbound webhooks (DESIGN §3 "Outbound"): every change event the store
// wrote to its outbox (in the transaction that made the change) is POSTed to
// each `[[webhook.target]]`, at least once, in outbox order.
//
// Request: POST <url>, Content-Type: application/json, signed like inbound
// hooks (signature.hpp: X-Orgsync-Signature over the exact body, with the
// target's secret), body
//
//   {"events":[{"id":"…","type":"membership.added","org":"acme","subject":"…",
//               "source":"corp","detail":{…},"created_at":"2024-…Z"}, …]}
//
// with 1 to `batch_size` events. Every event has a unique, stable `id`: the
// outbox row's event_id, or `<row event_id>-<index>` for the events a bulk
// call wrote as one batch row, which are sent as separate events. Ids stay
// the same on every retry, so receivers deduplicate on them.
//
// Guarantees:
// - Order: each target receives events in outbox order (hence per org in
//   the order they were committed); a request is sent only after the one
//   before it to that target was acknowledged or dead-lettered.
// - At least once: a target's position is committed to the store only after
//   a 2xx answer. A crash between the answer and the commit resends that
//   request after restart; nothing is skipped.
// - Retries: a failed request (no connection, timeout, any non-2xx answer,
//   redirects included) is retried after retry_delay(); the attempt count and
//   the time of the next one are committed, so a restart keeps them.
// - Dead letters: the request that failed its max_attempts-th time in a row
//   is stored (Store::dead_letters: the body, the last error) and counted
//   (DeliveryState::dead_lettered), and the target moves on.
// - Targets are independent: one that is down holds back no other. A target
//   seen for the first time starts at the oldest event not yet delivered to
//   every target (Store::delivery_state).
//
// Threading: run_once() is one step for tests and for the thread start()
// runs; the two never overlap (a mutex serialises steps). notify() and
// stop() may be called from any thread. The Store must outlive the Delivery.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config.hpp"
#include "directory/store.hpp"

namespace orgsync::daemon {

struct DeliveryTarget {
    std::string url;
    std::string secret;  // HMAC key; never logged

    bool operator==(const DeliveryTarget&) const = default;
};

// The configured targets with their secrets read from secret_file (one
// trailing newline dropped). Fails with a message naming the file (never its
// content) when one cannot be read or is empty.
std::expected<std::vector<DeliveryTarget>, std::string> load_delivery_targets(const Config& config);

struct DeliveryOptions {
    int max_attempts = 20;          // failed requests in a row before dead-lettering, >= 1
    std::int64_t batch_size = 100;  // events per request, >= 1
    std::chrono::milliseconds timeout{10'000};  // per request, connection included
    std::chrono::milliseconds retry_initial{1'000};
    std::chrono::milliseconds retry_max{300'000};
    // How often the thread looks for rows written by other processes
    // (`orgsyncd sync`); writes in this process call notify().
    std::chrono::milliseconds poll_interval{1'000};
};

// The [webhook] keys of the configuration.
DeliveryOptions delivery_options(const Config& config);

// The wait before the next try after `attempts` (>= 1) failures in a row:
// d = min(retry_max, retry_initial * 2^(attempts-1)), then uniformly random
// in [d/2, d] so that targets that failed together do not retry together.
std::chrono::milliseconds retry_delay(int attempts, const DeliveryOptions& options,
                                      std::mt19937_64& random);

// What one run_once() did, over every target.
struct DeliveryStep {
    std::int64_t delivered = 0;  // events acknowledged
    std::int64_t requests_failed = 0;
    std::int64_t dead_lettered = 0;  // events given up on
    // Some target sent a full batch or skipped rows: more may be waiting.
    bool more = false;
    // The earliest retry that is not due yet.
    std::optional<std::chrono::system_clock::time_point> next_retry;
};

class Delivery {
  public:
    using Clock = std::function<std::chrono::system_clock::time_point()>;

    Delivery(directory::Store& store, std::vector<DeliveryTarget> targets, DeliveryOptions options);
    ~Delivery();  // stop()
    Delivery(const Delivery&) = delete;
    Delivery& operator=(const Delivery&) = delete;

    // For each target whose retry is due at `now`: reads up to batch_size
    // pending events, sends them (signed at `now`) and commits the outcome.
    // Store failures are logged and leave the committed state as it was.
    DeliveryStep run_once(std::chrono::system_clock::time_point now);

    // Runs steps on a background thread until stop(): at once while there
    // is more, else after poll_interval, at the next retry, or on notify(),
    // whichever comes first. `clock` gives the time of each step.
    void start(Clock clock = [] { return std::chrono::system_clock::now(); });
    // New rows were committed: wake the thread.
    void notify();
    // Ends the thread; a request in flight is aborted (and retried by the
    // next Delivery). Idempotent.
    void stop();

  private:
    struct Target;
    void deliver(Target& target, std::chrono::system_clock::time_point now, DeliveryStep& step);
    void loop(Clock clock);

    directory::Store& m_store;
    DeliveryOptions m_options;
    std::vector<std::unique_ptr<Target>> m_targets;
    std::vector<std::string> m_urls;  // every target's URL, for Store::advance_delivery

    std::mutex m_step_mutex;  // serialises run_once; guards m_random
    std::mt19937_64 m_random;

    std::mutex m_mutex;  // guards m_stopping, m_notified, m_thread
    std::condition_variable m_wake;
    bool m_stopping = false;
    bool m_notified = false;
    std::atomic<bool> m_abort{false};  // read by transfers in flight
    std::thread m_thread;
};

}  // namespace orgsync::daemon
