#include "daemon/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <variant>

namespace orgsync::daemon {
namespace {

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool valid_metric_name(std::string_view name) {
    return !name.empty() && (is_name_start(name.front()) || name.front() == ':') &&
           std::ranges::all_of(name, [](char c) { return is_name_char(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
    return !name.empty() && is_name_start(name.front()) && !name.starts_with("__") &&
           std::ranges::all_of(name, is_name_char);
}

std::string format_value(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    return fmt::format("{}", value);
}

std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_label_value(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

// {a="x",b="y"} plus an optional extra label (a histogram's le), or "" for none.
std::string label_text(const std::vector<std::string>& names,
                       const std::vector<std::string>& values, std::string_view extra_name = {},
                       std::string_view extra_value = {}) {
    if (names.empty() && extra_name.empty()) {
        return {};
    }
    std::string out = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        out +=
            fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", names[i], escape_label_value(values[i]));
    }
    if (!extra_name.empty()) {
        out += fmt::format("{}{}=\"{}\"", names.empty() ? "" : ",", extra_name, extra_value);
    }
    return out + "}";
}

std::string_view type_name(MetricType type) {
    switch (type) {
        case MetricType::counter:
            return "counter";
        case MetricType::gauge:
            return "gauge";
        case MetricType::histogram:
            return "histogram";
    }
    return "untyped";
}

}  // namespace

void Counter::inc(double amount) {
    if (amount > 0) {
        m_value.fetch_add(amount, std::memory_order_relaxed);
    }
}

void Counter::raise_to(double total) {
    double current = m_value.load(std::memory_order_relaxed);
    while (current < total &&
           !m_value.compare_exchange_weak(current, total, std::memory_order_relaxed)) {
    }
}

Histogram::Histogram(std::vector<double> bounds)
    : m_bounds(std::move(bounds)),
      m_buckets(std::make_unique<std::atomic<std::uint64_t>[]>(m_bounds.size() + 1)) {}

void Histogram::observe(double value) {
    // The first bucket whose bound is >= value (le is inclusive); NaN goes
    // to +Inf.
    const auto bucket = std::isnan(value)
                            ? static_cast<std::ptrdiff_t>(m_bounds.size())
                            : std::ranges::lower_bound(m_bounds, value) - m_bounds.begin();
    m_buckets[static_cast<std::size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
    m_sum.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot snapshot;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= m_bounds.size(); ++i) {
        total += m_buckets[i].load(std::memory_order_relaxed);
        snapshot.cumulative.push_back(total);
    }
    snapshot.count = total;
    snapshot.sum = m_sum.load(std::memory_order_relaxed);
    return snapshot;
}

std::vector<double> duration_buckets() {
    return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

template <typename Metric>
Metric& Family<Metric>::with(const std::vector<std::string>& values) {
    if (values.size() != m_labels.size()) {
        throw std::invalid_argument(fmt::format("metric {} has {} labels, {} values given", m_name,
                                                m_labels.size(), values.size()));
    }
    std::lock_guard lock(m_mutex);
    auto& series = m_series[values];
    if (!series) {
        if constexpr (std::is_same_v<Metric, Histogram>) {
            series = std::make_unique<Histogram>(m_bounds);
        } else {
            series = std::make_unique<Metric>();
        }
    }
    return *series;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
    MetricType type;
    std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
                 std::unique_ptr<Family<Histogram>>>
        family;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::add(std::string_view name, std::string_view help, MetricType type,
                               std::vector<std::string> labels, std::vector<double> bounds) {
    if (!valid_metric_name(name)) {
        throw std::invalid_argument(fmt::format("invalid metric name \"{}\"", name));
    }
    std::set<std::string_view> seen;
    for (const std::string& label : labels) {
        if (!valid_label_name(label) || !seen.insert(label).second ||
            (type == MetricType::histogram && label == "le")) {
            throw std::invalid_argument(
                fmt::format("invalid or repeated label \"{}\" of metric {}", label, name));
        }
    }
    if (type == MetricType::histogram) {
        const bool increasing =
            std::ranges::adjacent_find(bounds, std::greater_equal<>()) == bounds.end();
        const bool finite = std::ranges::all_of(bounds, [](double b) { return std::isfinite(b); });
        if (bounds.empty() || !increasing || !finite) {
            throw std::invalid_argument(
                fmt::format("histogram {} needs finite, strictly increasing bucket bounds", name));
        }
    }

    std::lock_guard lock(m_mutex);
    for (auto& entry : m_entries) {
        const auto same = [&](const auto& family) {
            return family->m_name == name && family->m_help == help && family->m_labels == labels &&
                   family->m_bounds == bounds;
        };
        const bool named =
            std::visit([&](const auto& family) { return family->m_name == name; }, entry->family);
        if (!named) {
            continue;
        }
        if (entry->type != type || !std::visit(same, entry->family)) {
            throw std::invalid_argument(
                fmt::format("metric {} is already registered differently", name));
        }
        return *entry;
    }
    auto entry = std::make_unique<Entry>();
    entry->type = type;
    std::string owned(name);
    std::string text(help);
    switch (type) {
        case MetricType::counter:
            entry->family.emplace<0>(
                new Family<Counter>(std::move(owned), std::move(text), std::move(labels), {}));
            break;
        case MetricType::gauge:
            entry->family.emplace<1>(
                new Family<Gauge>(std::move(owned), std::move(text), std::move(labels), {}));
            break;
        case MetricType::histogram:
            entry->family.emplace<2>(new Family<Histogram>(std::move(owned), std::move(text),
                                                           std::move(labels), std::move(bounds)));
            break;
    }
    m_entries.push_back(std::move(entry));
    return *m_entries.back();
}

Family<Counter>& Registry::counter(std::string_view name, std::string_view help,
                                   std::vector<std::string> labels) {
    return *std::get<0>(add(name, help, MetricType::counter, std::move(labels), {}).family);
}

Family<Gauge>& Registry::gauge(std::string_view name, std::string_view help,
                               std::vector<std::string> labels) {
    return *std::get<1>(add(name, help, MetricType::gauge, std::move(labels), {}).family);
}

Family<Histogram>& Registry::histogram(std::string_view name, std::string_view help,
                                       std::vector<double> bounds,
                                       std::vector<std::string> labels) {
    return *std::get<2>(
        add(name, help, MetricType::histogram, std::move(labels), std::move(bounds)).family);
}

void Registry::on_collect(std::function<void()> hook) {
    std::lock_guard lock(m_mutex);
    m_hooks.push_back(std::move(hook));
}

std::string Registry::expose() const {
    std::vector<std::function<void()>> hooks;
    {
        std::lock_guard lock(m_mutex);
        hooks = m_hooks;
    }
    for (const auto& hook : hooks) {
        hook();
    }

    std::lock_guard lock(m_mutex);
    std::string out;
    for (const auto& entry : m_entries) {
        std::visit(
            [&](const auto& family) {
                out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family->m_name,
                                   escape_help(family->m_help), family->m_name,
                                   type_name(entry->type));
                std::lock_guard series_lock(family->m_mutex);
                for (const auto& [values, metric] : family->m_series) {
                    using Metric = std::decay_t<decltype(*metric)>;
                    if constexpr (std::is_same_v<Metric, Histogram>) {
                        const Histogram::Snapshot snapshot = metric->snapshot();
                        const auto& bounds = metric->bounds();
                        for (std::size_t i = 0; i <= bounds.size(); ++i) {
                            const std::string le =
                                i < bounds.size() ? format_value(bounds[i]) : "+Inf";
                            out += fmt::format("{}_bucket{} {}\n", family->m_name,
                                               label_text(family->m_labels, values, "le", le),
                                               snapshot.cumulative[i]);
                        }
                        const std::string labels = label_text(family->m_labels, values);
                        out += fmt::format("{}_sum{} {}\n", family->m_name, labels,
                                           format_value(snapshot.sum));
                        out +=
                            fmt::format("{}_count{} {}\n", family->m_name, labels, snapshot.count);
                    } else {
                        out += fmt::format("{}{} {}\n", family->m_name,
                                           label_text(family->m_labels, values),
                                           format_value(metric->value()));
                    }
                }
            },
            entry->family);
    }
    return out;
}

}  // namespace orgsync::daemon
