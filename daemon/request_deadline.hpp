#pragma once

// A deadline for receiving each HTTP request, against slow clients
// ("slowloris"). The listener serves a connection on one worker thread, and
// cpp-httplib bounds only each single wait for input (the read timeout), so a
// client sending one byte at a time could hold a worker for hours.
//
// While a deadline is armed on a thread, every wait of that thread for input
// alone (poll(2) with POLLIN and no POLLOUT, which is how cpp-httplib waits
// before each read) ends by the deadline, and once it has passed reports a
// timeout at once: cpp-httplib then drops the connection. Waits to write,
// and threads without a deadline, are untouched. The mechanism is this
// process's own definition of poll(), which takes precedence over the C
// library's for the shared libraries it loads; it waits with ppoll().
//
// The listener arms the deadline when a worker takes a connection and again
// after each response (the next request on a kept-alive connection), so a
// request's headers and body must arrive within the limit.

#include <chrono>

namespace orgsync::daemon::request_deadline {

void arm(std::chrono::steady_clock::time_point at);
void disarm();

}  // namespace orgsync::daemon::request_deadline
