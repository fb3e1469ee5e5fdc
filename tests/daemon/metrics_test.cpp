#include "daemon/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace orgsync::daemon {
namespace {

// A parser for the text exposition format 0.0.4, as a scraper reads it:
// fails the test on any line it would reject.
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct Exposition {
    std::map<std::string, std::string> types;
    std::map<std::string, std::string> help;
    std::vector<Sample> samples;

    std::optional<double> value(const std::string& name,
                                const std::map<std::string, std::string>& labels = {}) const {
        for (const Sample& sample : samples) {
            if (sample.name == name && sample.labels == labels) {
                return sample.value;
            }
        }
        return std::nullopt;
    }
};

bool is_name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

std::string unescape(std::string_view text, bool quotes) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 == text.size()) {
            out += text[i];
            continue;
        }
        const char next = text[++i];
        if (next == 'n') {
            out += '\n';
        } else if (next == '\\' || (quotes && next == '"')) {
            out += next;
        } else {
            ADD_FAILURE() << "bad escape in " << text;
        }
    }
    return out;
}

double parse_value(const std::string& text) {
    if (text == "+Inf") {
        return INFINITY;
    }
    if (text == "-Inf") {
        return -INFINITY;
    }
    if (text == "NaN") {
        return NAN;
    }
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    EXPECT_EQ(used, text.size()) << text;
    return value;
}

// The family a sample belongs to: histograms' samples carry a suffix.
std::string family_of(const Exposition& parsed, const std::string& name) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string_view view(name);
        if (view.ends_with(suffix)) {
            const std::string base(view.substr(0, view.size() - std::strlen(suffix)));
            if (parsed.types.contains(base) && parsed.types.at(base) == "histogram") {
                return base;
            }
        }
    }
    return name;
}

Exposition parse(const std::string& text) {
    Exposition parsed;
    EXPECT_TRUE(text.empty() || text.back() == '\n') << "the last line must end";
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = text.find('\n', start);
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (line.empty()) {
            continue;
        }
        if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
            const std::size_t space = line.find(' ', 7);
            const std::string name = line.substr(7, space - 7);
            const std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
            auto& map = line[2] == 'H' ? parsed.help : parsed.types;
            EXPECT_FALSE(map.contains(name)) << "repeated: " << line;
            if (line[2] == 'T') {
                EXPECT_TRUE(rest == "counter" || rest == "gauge" || rest == "histogram" ||
                            rest == "summary" || rest == "untyped")
                    << line;
                map[name] = rest;
            } else {
                map[name] = unescape(rest, false);
            }
            continue;
        }
        if (line.starts_with("#")) {
            continue;
        }
        Sample sample;
        std::size_t i = 0;
        while (i < line.size() && is_name_char(line[i], i == 0)) {
            sample.name += line[i++];
        }
        EXPECT_FALSE(sample.name.empty()) << line;
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::string label;
                while (i < line.size() && is_name_char(line[i], label.empty()) && line[i] != ':') {
                    label += line[i++];
                }
                EXPECT_TRUE(i + 1 < line.size() && line[i] == '=' && line[i + 1] == '"') << line;
                i += 2;
                std::string raw;
                while (i < line.size() && line[i] != '"') {
                    if (line[i] == '\\' && i + 1 < line.size()) {
                        raw += line[i++];
                    }
                    raw += line[i++];
                }
                ++i;  // closing quote
                EXPECT_FALSE(sample.labels.contains(label)) << line;
                sample.labels[label] = unescape(raw, true);
                if (i < line.size() && line[i] == ',') {
                    ++i;
                }
            }
            EXPECT_LT(i, line.size()) << "unclosed labels: " << line;
            ++i;
        }
        EXPECT_TRUE(i < line.size() && line[i] == ' ') << line;
        std::string value = line.substr(i + 1);
        if (const std::size_t space = value.find(' '); space != std::string::npos) {
            value.resize(space);  // a timestamp follows
        }
        sample.value = parse_value(value);
        EXPECT_TRUE(parsed.types.contains(family_of(parsed, sample.name)))
            << "no TYPE before " << line;
        parsed.samples.push_back(std::move(sample));
    }
    return parsed;
}

TEST(MetricsTest, ExposesEveryTypeInTheTextFormat) {
    Registry registry;
    auto& runs =
        registry.counter("orgsync_sync_runs_total", "Sync runs by result.", {"source", "result"});
    runs.with({"corp", "applied"}).inc();
    runs.with({"corp", "applied"}).inc(2);
    runs.with({"corp", "failed"}).inc();
    registry.gauge("orgsync_outbox_depth", "Outbox rows not yet delivered.").get().set(7);
    auto& latency =
        registry.histogram("orgsync_http_request_seconds", "Request latency.", {0.1, 1}, {"route"});
    latency.with({"/healthz"}).observe(0.05);
    latency.with({"/healthz"}).observe(0.5);
    latency.with({"/healthz"}).observe(3);

    const std::string text = registry.expose();
    EXPECT_EQ(text,
              "# HELP orgsync_sync_runs_total Sync runs by result.\n"
              "# TYPE orgsync_sync_runs_total counter\n"
              "orgsync_sync_runs_total{source=\"corp\",result=\"applied\"} 3\n"
              "orgsync_sync_runs_total{source=\"corp\",result=\"failed\"} 1\n"
              "# HELP orgsync_outbox_depth Outbox rows not yet delivered.\n"
              "# TYPE orgsync_outbox_depth gauge\n"
              "orgsync_outbox_depth 7\n"
              "# HELP orgsync_http_request_seconds Request latency.\n"
              "# TYPE orgsync_http_request_seconds histogram\n"
              "orgsync_http_request_seconds_bucket{route=\"/healthz\",le=\"0.1\"} 1\n"
              "orgsync_http_request_seconds_bucket{route=\"/healthz\",le=\"1\"} 2\n"
              "orgsync_http_request_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 3\n"
              "orgsync_http_request_seconds_sum{route=\"/healthz\"} 3.55\n"
              "orgsync_http_request_seconds_count{route=\"/healthz\"} 3\n");

    const Exposition parsed = parse(text);
    EXPECT_EQ(parsed.types.at("orgsync_sync_runs_total"), "counter");
    EXPECT_EQ(parsed.types.at("orgsync_outbox_depth"), "gauge");
    EXPECT_EQ(parsed.types.at("orgsync_http_request_seconds"), "histogram");
    EXPECT_EQ(parsed.value("orgsync_sync_runs_total", {{"source", "corp"}, {"result", "applied"}}),
              3);
    EXPECT_EQ(parsed.value("orgsync_outbox_depth"), 7);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
    Registry registry;
    auto& family = registry.counter("odd_total", "Help with \\ and\nnewline.", {"value"});
    const std::string odd = "quote \" backslash \\ newline \n end";
    family.with({odd}).inc();
    const std::string text = registry.expose();
    EXPECT_NE(text.find(R"(odd_total{value="quote \" backslash \\ newline \n end"} 1)"),
              std::string::npos)
        << text;
    const Exposition parsed = parse(text);
    EXPECT_EQ(parsed.help.at("odd_total"), "Help with \\ and\nnewline.");
    EXPECT_EQ(parsed.value("odd_total", {{"value", odd}}), 1);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInclusiveBounds) {
    Registry registry;
    auto& histogram = registry.histogram("h", "h", {1, 2, 5}).get();
    for (double value : {0.5, 1.0, 1.5, 2.0, 4.0, 5.0, 100.0, -3.0}) {
        histogram.observe(value);
    }
    const Exposition parsed = parse(registry.expose());
    EXPECT_EQ(parsed.value("h_bucket", {{"le", "1"}}), 3);  // -3, 0.5, 1
    EXPECT_EQ(parsed.value("h_bucket", {{"le", "2"}}), 5);
    EXPECT_EQ(parsed.value("h_bucket", {{"le", "5"}}), 7);
    EXPECT_EQ(parsed.value("h_bucket", {{"le", "+Inf"}}), 8);
    EXPECT_EQ(parsed.value("h_count"), 8);
    EXPECT_EQ(parsed.value("h_sum"), 111);
}

TEST(MetricsTest, SpecialValuesAreSpelledAsPrometheusReadsThem) {
    Registry registry;
    auto& gauges = registry.gauge("g", "g", {"kind"});
    gauges.with({"inf"}).set(INFINITY);
    gauges.with({"minus"}).set(-INFINITY);
    gauges.with({"nan"}).set(NAN);
    gauges.with({"small"}).set(0.25);
    gauges.with({"big"}).set(1e21);
    const std::string text = registry.expose();
    EXPECT_NE(text.find("g{kind=\"inf\"} +Inf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("g{kind=\"minus\"} -Inf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("g{kind=\"nan\"} NaN\n"), std::string::npos) << text;
    const Exposition parsed = parse(text);
    EXPECT_EQ(parsed.value("g", {{"kind", "small"}}), 0.25);
    EXPECT_EQ(parsed.value("g", {{"kind", "big"}}), 1e21);
}

TEST(MetricsTest, GaugesGoBothWaysAndCountersOnlyUp) {
    Registry registry;
    Gauge& gauge = registry.gauge("in_flight", "in flight").get();
    gauge.inc(3);
    gauge.dec();
    EXPECT_EQ(gauge.value(), 2);
    Counter& counter = registry.counter("events_total", "events").get();
    counter.inc(5);
    counter.inc(-2);
    EXPECT_EQ(counter.value(), 5);
}

TEST(MetricsTest, UpdatesFromManyThreadsAreNotLost) {
    Registry registry;
    auto& counters = registry.counter("work_total", "work", {"worker"});
    auto& histogram = registry.histogram("work_seconds", "work", duration_buckets());
    constexpr int k_threads = 4;
    constexpr int k_each = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < k_each; ++i) {
                counters.with({"shared"}).inc();
                counters.with({"w" + std::to_string(t)}).inc();
                histogram.get().observe(0.001 * (i % 100));
                if (i % 5000 == 0) {
                    parse(registry.expose());  // scraping while writing
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const Exposition parsed = parse(registry.expose());
    EXPECT_EQ(parsed.value("work_total", {{"worker", "shared"}}), k_threads * k_each);
    for (int t = 0; t < k_threads; ++t) {
        EXPECT_EQ(parsed.value("work_total", {{"worker", "w" + std::to_string(t)}}), k_each);
    }
    EXPECT_EQ(parsed.value("work_seconds_count"), k_threads * k_each);
}

TEST(MetricsTest, CollectHooksRunBeforeExposition) {
    Registry registry;
    Gauge& depth = registry.gauge("orgsync_outbox_depth", "depth").get();
    int calls = 0;
    registry.on_collect([&] { depth.set(++calls * 10); });
    EXPECT_EQ(parse(registry.expose()).value("orgsync_outbox_depth"), 10);
    EXPECT_EQ(parse(registry.expose()).value("orgsync_outbox_depth"), 20);
}

TEST(MetricsTest, RegistrationIsCheckedAndIdempotent) {
    Registry registry;
    auto& first = registry.counter("requests_total", "Requests.", {"code"});
    EXPECT_EQ(&registry.counter("requests_total", "Requests.", {"code"}), &first);
    EXPECT_THROW(registry.gauge("requests_total", "Requests.", {"code"}), std::invalid_argument);
    EXPECT_THROW(registry.counter("requests_total", "Other help.", {"code"}),
                 std::invalid_argument);
    EXPECT_THROW(registry.counter("requests_total", "Requests.", {"route"}), std::invalid_argument);
    EXPECT_THROW(first.with({"200", "extra"}), std::invalid_argument);
    EXPECT_THROW(first.get(), std::invalid_argument);

    EXPECT_THROW(registry.counter("", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("9lives", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("has-dash", "x"), std::invalid_argument);
    EXPECT_NO_THROW(registry.counter("ns:sub_total", "x"));
    EXPECT_THROW(registry.counter("c1", "x", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW(registry.counter("c2", "x", {"a", "a"}), std::invalid_argument);
    EXPECT_THROW(registry.counter("c3", "x", {"with:colon"}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h1", "x", {1, 2}, {"le"}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h2", "x", {}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h3", "x", {2, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h4", "x", {1, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h5", "x", {1, INFINITY}), std::invalid_argument);
    // Nothing half-registered: the exposition has only the valid families.
    const Exposition parsed = parse(registry.expose());
    EXPECT_EQ(parsed.types.size(), 2U);
}

}  // namespace
}  // namespace orgsync::daemon
