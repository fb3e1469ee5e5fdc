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

//
// A byte budget, against clients that send without end: cpp-httplib reads
// header lines until the blank line however many there are, and a chunked
// body (or one without a length) whatever its size, all into memory. While
// a budget is armed on a thread, this process's own recv() (which
// cpp-httplib reads plain HTTP with) receives no more than the budget
// allows and then fails with ECONNRESET: cpp-httplib answers 400 and drops
// the connection, and overrun() tells the error handler why. The listener
// arms the head's budget with the deadline, and adds the body's once the
// head is read (its pre-routing handler). TLS connections are read through
// OpenSSL, which this does not see.

#include <chrono>
#include <cstddef>

namespace orgsync::daemon::request_deadline {

void arm(std::chrono::steady_clock::time_point at);
void disarm();  // the deadline and the byte budget

// The thread may receive `bytes` more (the request's head); resets overrun().
void limit_bytes(std::size_t bytes);
// The head was read: `bytes` more for the body.
void allow_body(std::size_t bytes);
// The request is refused for its head: nothing more is read (an overrun).
void refuse_more();

enum class Overrun { none, head, body };
// Whether the request on this thread ran out of its budget, and where.
Overrun overrun();

}  // namespace orgsync::daemon::request_deadline
