#pragma once

// `orgsyncd run` (DESIGN §3): the long-running service. It loads and
// validates the configuration and the mapping, opens the store, re-derives
// every source from its stored mirror (so a mapping changed while the
// daemon was down takes effect), binds the HTTP listener (health, readiness
// and /scim/v2), and only then tells systemd READY=1. It runs until SIGTERM
// or SIGINT: the listener stops accepting, requests in progress finish, and
// the process exits 0. SIGHUP reloads the mapping through the same checks
// as at start; a mapping that fails them is logged and the old one stays.
//
// Log lines are events on standard error: `event=http.listening
// address=127.0.0.1:8650`, never a secret.

#include <filesystem>
#include <iosfwd>

namespace orgsync::daemon {

// Returns the exit status: 0 after a clean stop, 2 when start-up failed
// (the reason is on `err` or in the log).
int run_daemon(const std::filesystem::path& config_file, std::ostream& err);

}  // namespace orgsync::daemon
