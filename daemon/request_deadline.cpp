#include "daemon/request_deadline.hpp"

#include <poll.h>

#include <ctime>

namespace orgsync::daemon::request_deadline {
namespace {

thread_local std::chrono::steady_clock::time_point t_deadline{};

}  // namespace

void arm(std::chrono::steady_clock::time_point at) {
    t_deadline = at;
}

void disarm() {
    t_deadline = {};
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
