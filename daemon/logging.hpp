#pragma once

// Where log lines go (DESIGN §3, issue "Logs"): standard error, one
// `event=… key=value` line per event. On a terminal or in a file each line
// starts with a timestamp and the level; when standard error is the systemd
// journal (JOURNAL_STREAM names the device and inode of file descriptor 2),
// lines start with the journal's `<N>` priority prefix instead and carry no
// timestamp, since the journal stamps them itself.

namespace orgsync::daemon {

// True when standard error is connected to the journal.
bool stderr_is_journal();

// Installs the process's logger (idempotent).
void setup_logging();

}  // namespace orgsync::daemon
