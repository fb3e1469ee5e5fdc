#include "tests/support/daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace orgsync::test {
namespace {

std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The port of the first `event=http.listening address=host:port`, or 0.
std::uint16_t listening_port(const std::string& log) {
    constexpr std::string_view marker = "event=http.listening address=";
    auto at = log.find(marker);
    if (at == std::string::npos) {
        return 0;
    }
    auto end = log.find(' ', at + marker.size());
    std::string address = log.substr(at + marker.size(), end - at - marker.size());
    auto colon = address.rfind(':');
    return static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1)));
}

}  // namespace

std::unique_ptr<DaemonProcess> DaemonProcess::start(const std::filesystem::path& binary,
                                                    const std::filesystem::path& config,
                                                    const std::filesystem::path& log,
                                                    std::chrono::seconds timeout) {
    auto daemon = spawn(binary, config, log);
    daemon->wait_listening(timeout);
    return daemon;
}

std::unique_ptr<DaemonProcess> DaemonProcess::spawn(const std::filesystem::path& binary,
                                                    const std::filesystem::path& config,
                                                    const std::filesystem::path& log) {
    std::unique_ptr<DaemonProcess> daemon(new DaemonProcess());
    daemon->m_log = log;
    // Emptied here, so that no line of an earlier run is taken for this
    // run's, but not removed: the file keeps its inode, which a test names
    // in JOURNAL_STREAM before the start (a new file's inode is whatever
    // the file system hands out, not always the one just freed).
    std::ofstream(log, std::ios::trunc).close();
    pid_t pid = fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            ::close(fd);
        }
        execl(binary.c_str(), binary.c_str(), "run", "-c", config.c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
    }
    daemon->m_pid = pid;
    return daemon;
}

void DaemonProcess::wait_listening(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (std::uint16_t port = listening_port(slurp(m_log)); port != 0) {
            m_port = port;
            return;
        }
        int status = 0;
        if (waitpid(m_pid, &status, WNOHANG) == m_pid) {
            m_pid = -1;
            throw std::runtime_error("orgsyncd exited before listening:\n" + slurp(m_log));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("orgsyncd did not listen in time:\n" + slurp(m_log));
}

DaemonProcess::~DaemonProcess() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        int status = 0;
        waitpid(m_pid, &status, 0);
    }
}

std::string DaemonProcess::log() const {
    return slurp(m_log);
}

int DaemonProcess::stop(int signal) {
    if (m_pid <= 0) {
        return -1;
    }
    ::kill(m_pid, signal);
    int status = 0;
    waitpid(m_pid, &status, 0);
    m_pid = -1;
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void DaemonProcess::signal(int signal) const {
    if (m_pid > 0) {
        ::kill(m_pid, signal);
    }
}

}  // namespace orgsync::test
