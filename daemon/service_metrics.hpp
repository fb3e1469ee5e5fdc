#pragma once

// What `GET /metrics` exposes about the running daemon (DESIGN §3): the
// metric families, registered once, and the calls that update them.
//
//   orgsync_sync_runs_total{source,result}           runs: applied|blocked|failed
//   orgsync_sync_duration_seconds{source}            histogram
//   orgsync_sync_last_success_timestamp_seconds{source}
//   orgsync_sync_consecutive_failures{source}
//   orgsync_source_failing{source}                   1 while past failure_threshold
//   orgsync_sync_changes_applied_total{source,kind}  by change kind (add_member, …)
//   orgsync_sync_held_changes{source}                held by the last run
//   orgsync_scim_requests_total{route,method,status}
//   orgsync_authorize_decisions_total{result}        allow|deny|error
//   orgsync_hook_events_total{type,result}           inbound webhooks
//   orgsync_outbox_depth                             rows some target still owes
//   orgsync_webhook_delivered_total{target}
//   orgsync_webhook_dead_letters_total{target}
//   orgsync_webhook_failing_attempts{target}         failed requests in a row now
//   orgsync_http_request_duration_seconds{route,method}
//
// Routes are templates (`/v1/orgs/{org}/members`, `/scim/v2/Users/{id}`),
// never raw paths, so clients cannot grow the series without bound.

#include <string>
#include <string_view>
#include <vector>

#include "daemon/metrics.hpp"
#include "daemon/scheduler.hpp"
#include "directory/store.hpp"

namespace orgsync::daemon {

// The route template of `path`; "other" for paths no route serves.
std::string route_label(std::string_view path);

class ServiceMetrics {
  public:
    explicit ServiceMetrics(Registry& registry);

    void observe_run(const RunRecord& record);
    void observe_request(std::string_view method, std::string_view path, double seconds);
    void observe_scim(std::string_view method, std::string_view path, int status);
    void observe_decision(std::string_view result);
    void observe_hook(std::string_view type, std::string_view result);
    // Gauges read at collection time: the store's outbox and delivery
    // positions, the scheduler's sources.
    void collect(const directory::Store& store, const std::vector<SourceStatus>& sources);

  private:
    Family<Counter>& m_runs;
    Family<Histogram>& m_duration;
    Family<Gauge>& m_last_success;
    Family<Gauge>& m_consecutive_failures;
    Family<Gauge>& m_failing;
    Family<Counter>& m_changes;
    Family<Gauge>& m_held;
    Family<Counter>& m_scim;
    Family<Counter>& m_decisions;
    Family<Counter>& m_hooks;
    Family<Gauge>& m_outbox_depth;
    Family<Counter>& m_delivered;
    Family<Counter>& m_dead_letters;
    Family<Gauge>& m_delivery_attempts;
    Family<Histogram>& m_latency;
};

}  // namespace orgsync::daemon
