#pragma once

// `orgsyncd run` (DESIGN §3): the long-running service. Start-up loads and
// validates the configuration, the mapping and every secret file, opens the
// store, re-derives every source from its stored mirror (so a mapping
// changed while the daemon was down takes effect), binds the HTTP listener
// (/healthz, /readyz, /metrics, /scim/v2, /v1, /hooks/v1/events), starts
// the scheduler (daemon/scheduler.hpp) and outbound webhook delivery, and
// only then tells systemd READY=1. STATUS= says how each source is doing
// ("corp: synced 2m ago, 12034 users; okta: 3 pushes/min"); WATCHDOG=1 is
// sent when WatchdogSec= is set.
//
// Signals: SIGHUP reloads the configuration and the mapping (RELOADING=1,
// then READY=1): everything is read and checked first, and a reload that
// fails is logged while the old settings stay. The mapping, log level,
// sources' schedules and settings, the API token, the inbound webhook
// secret and the webhook targets change in place; the store path, the
// listen address, TLS files and SCIM tokens need a restart, which the log
// says. SIGTERM and SIGINT: stop accepting, finish requests in progress,
// let running syncs finish (each applies in one transaction), exit 0.
//
// Log lines are events on standard error (daemon/logging.hpp): `event=…
// key=value`, never a secret.

#include <filesystem>
#include <iosfwd>

namespace orgsync::daemon {

// Returns the exit status: 0 after a clean stop, 2 when start-up failed
// (the reason is on `err` or in the log).
int run_daemon(const std::filesystem::path& config_file, std::ostream& err);

}  // namespace orgsync::daemon
