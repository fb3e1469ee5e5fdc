#include "daemon/request_deadline.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>

namespace orgsync::daemon::request_deadline {
namespace {

thread_local std::chrono::steady_clock::time_point t_deadline{};

// The byte budget: armed or not, what is left, which part of the request.
thread_local bool t_limited = false;
thread_local std::size_t t_left = 0;
thread_local bool t_in_body = false;
thread_local Overrun t_overrun = Overrun::none;

}  // namespace

void arm(std::chrono::steady_clock::time_point at) {
    t_deadline = at;
}

void disarm() {
    t_deadline = {};
    t_limited = false;
}

void limit_bytes(std::size_t bytes) {
    t_limited = true;
    t_left = bytes;
    t_in_body = false;
    t_overrun = Overrun::none;
}

void allow_body(std::size_t bytes) {
    if (t_limited) {
        t_in_body = true;
        t_left = bytes;
    }
}

void refuse_more() {
    if (t_limited) {
        t_left = 0;
        t_overrun = Overrun::head;
    }
}

Overrun overrun() {
    return t_overrun;
}

// recv() within the calling thread's budget; -2 when it is spent.
ssize_t bounded_recv(int fd, void* buffer, std::size_t size, int flags) {
    // A peek takes nothing (cpp-httplib peeks to see whether the peer is
    // still there before it writes an answer).
    if (!t_limited || (flags & MSG_PEEK) != 0) {
        return ::recvfrom(fd, buffer, size, flags, nullptr, nullptr);
    }
    if (t_left == 0) {
        t_overrun = t_in_body ? Overrun::body : Overrun::head;
        return -2;
    }
    const ssize_t got =
        ::recvfrom(fd, buffer, size < t_left ? size : t_left, flags, nullptr, nullptr);
    if (got > 0) {
        t_left -= static_cast<std::size_t>(got);
    }
    return got;
}

// The wait `timeout_ms` (negative: none) shortened to the calling thread's
// deadline when that applies; -2 when the deadline has passed.
int bounded_timeout(pollfd* fds, nfds_t count, int timeout_ms) {
    if (t_deadline == std::chrono::steady_clock::time_point{}) {
        return timeout_ms;
    }
    for (nfds_t i = 0; i < count; ++i) {
        if ((fds[i].events & POLLOUT) != 0) {
            return timeout_ms;
        }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          t_deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
        return -2;
    }
    return timeout_ms < 0 || timeout_ms > left ? static_cast<int>(left) : timeout_ms;
}

}  // namespace orgsync::daemon::request_deadline

extern "C" int poll(pollfd* fds, nfds_t count, int timeout_ms) {
    const int bounded = orgsync::daemon::request_deadline::bounded_timeout(fds, count, timeout_ms);
    if (bounded == -2) {
        for (nfds_t i = 0; i < count; ++i) {
            fds[i].revents = 0;
        }
        return 0;
    }
    if (bounded < 0) {
        return ::ppoll(fds, count, nullptr, nullptr);
    }
    const timespec wait{bounded / 1000, static_cast<long>(bounded % 1000) * 1000000L};
    return ::ppoll(fds, count, &wait, nullptr);
}

extern "C" ssize_t recv(int fd, void* buffer, size_t size, int flags) {
    const ssize_t got = orgsync::daemon::request_deadline::bounded_recv(fd, buffer, size, flags);
    if (got == -2) {
        errno = ECONNRESET;
        return -1;
    }
    return got;
}
