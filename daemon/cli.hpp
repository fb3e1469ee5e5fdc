#pragma once

// The `orgsyncd` command line (DESIGN §3): parses arguments with CLI11 and
// runs one command. Output goes to `out`, diagnostics to `err`; the return
// value is the process exit status.
//
// Exit status: 0 success (for `authorize`: allowed), 1 a negative answer
// (`authorize`: denied; `check-config`: the configuration has errors),
// 2 the command could not run (bad arguments, unreadable store, unknown
// org/project/action).

#include <iosfwd>

namespace orgsync::daemon {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_negative = 1;
inline constexpr int k_exit_error = 2;

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace orgsync::daemon
