#include "daemon/service_metrics.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>

namespace orgsync::daemon {
namespace {

// "/v1/orgs/acme/members" -> {"v1", "orgs", "acme", "members"}
std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
    }
    return out;
}

}  // namespace

std::string route_label(std::string_view path) {
    const auto parts = segments(path);
    const auto n = parts.size();
    auto is = [&](std::size_t i, std::string_view text) { return i < n && parts[i] == text; };
    if (n == 1 && (is(0, "healthz") || is(0, "readyz") || is(0, "metrics"))) {
        return "/" + std::string(parts[0]);
    }
    if (is(0, "scim") && is(1, "v2") && n >= 3) {
        static constexpr std::array<std::string_view, 5> k_endpoints = {
            "Users", "Groups", "ServiceProviderConfig", "Schemas", "ResourceTypes"};
        for (auto endpoint : k_endpoints) {
            if (parts[2] == endpoint) {
                return n == 3   ? "/scim/v2/" + std::string(endpoint)
                       : n == 4 ? "/scim/v2/" + std::string(endpoint) + "/{id}"
                                : "other";
            }
        }
        return "other";
    }
    if (is(0, "v1")) {
        if (n == 2 && (is(1, "authorize") || is(1, "orgs") || is(1, "status"))) {
            return "/v1/" + std::string(parts[1]);
        }
        if (n == 3 && is(1, "sync")) {
            return "/v1/sync/{source}";
        }
        if (n == 4 && is(1, "orgs") && (is(3, "members") || is(3, "groups"))) {
            return "/v1/orgs/{org}/" + std::string(parts[3]);
        }
        if (n == 6 && is(1, "orgs") && is(3, "projects") && is(5, "grants")) {
            return "/v1/orgs/{org}/projects/{project}/grants";
        }
        return "other";
    }
    if (n == 3 && is(0, "hooks") && is(1, "v1") && is(2, "events")) {
        return "/hooks/v1/events";
    }
    return "other";
}

ServiceMetrics::ServiceMetrics(Registry& registry)
    : m_runs(registry.counter("orgsync_sync_runs_total", "Sync runs by result.",
                              {"source", "result"})),
      m_duration(registry.histogram("orgsync_sync_duration_seconds", "Duration of sync runs.",
                                    duration_buckets(), {"source"})),
      m_last_success(registry.gauge("orgsync_sync_last_success_timestamp_seconds",
                                    "Unix time of the last applied run.", {"source"})),
      m_consecutive_failures(
          registry.gauge("orgsync_sync_consecutive_failures", "Failed runs in a row.", {"source"})),
      m_failing(registry.gauge("orgsync_source_failing",
                               "1 while the source has failed failure_threshold runs in a row.",
                               {"source"})),
      m_changes(registry.counter("orgsync_sync_changes_applied_total",
                                 "Changes applied by sync runs, by kind.", {"source", "kind"})),
      m_held(registry.gauge("orgsync_sync_held_changes", "Changes held back by the last run.",
                            {"source"})),
      m_scim(registry.counter("orgsync_scim_requests_total", "SCIM requests by route and status.",
                              {"route", "method", "status"})),
      m_decisions(registry.counter("orgsync_authorize_decisions_total",
                                   "Authorization decisions by result.", {"result"})),
      m_hooks(registry.counter("orgsync_hook_events_total", "Inbound webhook events by result.",
                               {"type", "result"})),
      m_outbox_depth(registry.gauge("orgsync_outbox_depth",
                                    "Outbox rows some webhook target has not acknowledged.")),
      m_delivered(registry.counter("orgsync_webhook_delivered_total",
                                   "Events acknowledged by a webhook target.", {"target"})),
      m_dead_letters(registry.counter("orgsync_webhook_dead_letters_total",
                                      "Events a webhook target was given up on for.", {"target"})),
      m_delivery_attempts(registry.gauge("orgsync_webhook_failing_attempts",
                                         "Failed deliveries in a row to a webhook target.",
                                         {"target"})),
      m_latency(registry.histogram(
          "orgsync_http_request_duration_seconds", "HTTP request latency by route.",
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10},
          {"route", "method"})) {}

void ServiceMetrics::observe_run(const RunRecord& record) {
    const std::string result = record.run ? record.run->result : "failed";
    m_runs.with({record.source, result}).inc();
    m_duration.with({record.source}).observe(record.duration.count());
    if (record.applied()) {
        m_last_success.with({record.source})
            .set(std::chrono::duration<double>(record.finished.time_since_epoch()).count());
        for (const auto& change : record.run->plan.changes) {
            m_changes.with({record.source, std::string(sync::to_string(change.kind))}).inc();
        }
    }
    if (record.run) {
        m_held.with({record.source}).set(static_cast<double>(record.run->plan.held.size()));
    }
}

void ServiceMetrics::observe_request(std::string_view method, std::string_view path,
                                     double seconds) {
    m_latency.with({route_label(path), std::string(method)}).observe(seconds);
}

void ServiceMetrics::observe_scim(std::string_view method, std::string_view path, int status) {
    m_scim.with({route_label(path), std::string(method), std::to_string(status)}).inc();
}

void ServiceMetrics::observe_decision(std::string_view result) {
    m_decisions.with({std::string(result)}).inc();
}

void ServiceMetrics::observe_hook(std::string_view type, std::string_view result) {
    m_hooks.with({std::string(type), std::string(result)}).inc();
}

void ServiceMetrics::collect(const directory::Store& store,
                             const std::vector<SourceStatus>& sources) {
    for (const auto& source : sources) {
        m_consecutive_failures.with({source.name}).set(source.consecutive_failures);
        m_failing.with({source.name}).set(source.failing() ? 1 : 0);
    }
    if (auto depth = store.outbox_depth(); depth) {
        m_outbox_depth.get().set(static_cast<double>(*depth));
    } else {
        spdlog::warn("event=metrics.store_failed error=\"{}\"", depth.error().message);
    }
    if (auto states = store.delivery_states(); states) {
        for (const auto& state : *states) {
            m_delivered.with({state.target}).raise_to(static_cast<double>(state.delivered));
            m_dead_letters.with({state.target}).raise_to(static_cast<double>(state.dead_lettered));
            m_delivery_attempts.with({state.target}).set(state.attempts);
        }
    }
}

}  // namespace orgsync::daemon
