#pragma once

// A Prometheus metrics registry (DESIGN §3 `GET /metrics`): counters,
// gauges and histograms, each a family of series told apart by label
// values, written out in the text exposition format 0.0.4.
//
//   Registry registry;
//   auto& runs = registry.counter("orgsync_sync_runs_total", "Sync runs.", {"source", "result"});
//   runs.with({"corp", "applied"}).inc();
//   std::string text = registry.expose();  // Content-Type: text/plain; version=0.0.4
//
// Threading: every call may come from any thread. Updating a series is
// lock-free (atomics); with() takes the family's mutex to find or create the
// series, so hot paths keep the reference it returns (valid as long as the
// registry). expose() reads each value atomically, not all of them at one
// instant.
//
// Registration is start-up code: an invalid metric or label name, or a
// name registered twice with another type, help, labels or buckets, is a
// programming error and throws std::invalid_argument. Registering the same
// family again returns the existing one.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::daemon {

class Counter {
  public:
    // Adds `amount`; negative amounts are ignored (a counter only goes up).
    void inc(double amount = 1.0);
    // Raises the counter to `total` when it is below (a total kept
    // elsewhere, such as in the store, read at collection time).
    void raise_to(double total);
    double value() const { return m_value.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> m_value{0.0};
};

class Gauge {
  public:
    void set(double value) { m_value.store(value, std::memory_order_relaxed); }
    void inc(double amount = 1.0) { m_value.fetch_add(amount, std::memory_order_relaxed); }
    void dec(double amount = 1.0) { m_value.fetch_sub(amount, std::memory_order_relaxed); }
    double value() const { return m_value.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> m_value{0.0};
};

class Histogram {
  public:
    // `bounds`: the buckets' upper bounds, strictly increasing and finite
    // (checked by Registry::histogram); +Inf is implied.
    explicit Histogram(std::vector<double> bounds);

    void observe(double value);

    struct Snapshot {
        std::vector<std::uint64_t> cumulative;  // per bound, then +Inf (= count)
        double sum = 0;
        std::uint64_t count = 0;
    };
    Snapshot snapshot() const;
    const std::vector<double>& bounds() const { return m_bounds; }

  private:
    std::vector<double> m_bounds;
    std::unique_ptr<std::atomic<std::uint64_t>[]> m_buckets;  // per bound, then +Inf
    std::atomic<double> m_sum{0.0};
};

// Default histogram buckets for durations in seconds (5 ms to 60 s).
std::vector<double> duration_buckets();

enum class MetricType { counter, gauge, histogram };

// The series of one metric name, one per combination of label values.
template <typename Metric>
class Family {
  public:
    // The series with these label values (in the order of the family's
    // label names; their count must match, else std::invalid_argument),
    // created at zero on first use.
    Metric& with(const std::vector<std::string>& values);
    // The series of a family without labels.
    Metric& get() { return with({}); }

  private:
    friend class Registry;
    Family(std::string name, std::string help, std::vector<std::string> labels,
           std::vector<double> bounds)
        : m_name(std::move(name)),
          m_help(std::move(help)),
          m_labels(std::move(labels)),
          m_bounds(std::move(bounds)) {}

    std::string m_name;
    std::string m_help;
    std::vector<std::string> m_labels;
    std::vector<double> m_bounds;  // histograms only
    mutable std::mutex m_mutex;    // guards m_series (not the values)
    std::map<std::vector<std::string>, std::unique_ptr<Metric>> m_series;
};

class Registry {
  public:
    Registry();
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*,
    // not starting with "__", unique, and never "le" for a histogram.
    Family<Counter>& counter(std::string_view name, std::string_view help,
                             std::vector<std::string> labels = {});
    Family<Gauge>& gauge(std::string_view name, std::string_view help,
                         std::vector<std::string> labels = {});
    Family<Histogram>& histogram(std::string_view name, std::string_view help,
                                 std::vector<double> bounds, std::vector<std::string> labels = {});

    // Runs before every expose(), e.g. to set gauges from the store.
    // Callbacks run in registration order, outside the registry's lock, and
    // must not register hooks themselves.
    void on_collect(std::function<void()> hook);

    // Every family in registration order, series sorted by label values:
    // "# HELP", "# TYPE", then the samples; histograms as _bucket{le=…}
    // (cumulative, ending with +Inf), _sum and _count.
    std::string expose() const;

  private:
    struct Entry;
    Entry& add(std::string_view name, std::string_view help, MetricType type,
               std::vector<std::string> labels, std::vector<double> bounds);

    mutable std::mutex m_mutex;  // guards m_entries and m_hooks
    std::vector<std::unique_ptr<Entry>> m_entries;
    std::vector<std::function<void()>> m_hooks;
};

}  // namespace orgsync::daemon
