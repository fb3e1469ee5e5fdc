#pragma once

// The real `orgsyncd run` as a child process: started with a config file,
// ready once it logs the address it listens on, stopped with a signal.
// Standard error (the log) goes to a file the test can read.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace orgsync::test {

class DaemonProcess {
  public:
    // Starts `binary run -c config`, logging to `log`, and waits until it
    // listens (the `event=http.listening` line). Throws std::runtime_error
    // with the log when it exits or does not get ready within `timeout`.
    static std::unique_ptr<DaemonProcess> start(
        const std::filesystem::path& binary, const std::filesystem::path& config,
        const std::filesystem::path& log, std::chrono::seconds timeout = std::chrono::seconds(30));
    // Starts it without waiting: the process may still be opening its store
    // (crash tests kill it at any moment from its first instruction).
    // wait_listening() then waits as start() does.
    static std::unique_ptr<DaemonProcess> spawn(const std::filesystem::path& binary,
                                                const std::filesystem::path& config,
                                                const std::filesystem::path& log);
    void wait_listening(std::chrono::seconds timeout = std::chrono::seconds(30));

    ~DaemonProcess();  // SIGKILLs a daemon still running
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    std::uint16_t port() const { return m_port; }
    pid_t pid() const { return m_pid; }
    std::string log() const;

    // Sends `signal` and waits for the exit; returns the exit status, or
    // 128 + the signal that ended the process.
    int stop(int signal);
    // Sends `signal` without waiting (SIGHUP).
    void signal(int signal) const;

  private:
    DaemonProcess() = default;

    pid_t m_pid = -1;
    std::uint16_t m_port = 0;
    std::filesystem::path m_log;
};

}  // namespace orgsync::test
