// The systemd unit: what the daemon relies on is declared, every credential
// the example configuration names is loaded, and — where systemd-analyze is
// installed — the unit verifies cleanly and its sandbox scores 2.0 or lower,
// checked on a copy whose ExecStart is the binary just built.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/daemon/process.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using test::shell_quote;
using test::slurp;

const fs::path k_unit = fs::path(ORGSYNC_SOURCE_DIR) / "systemd" / "orgsyncd.service";

struct Output {
    int status = -1;
    std::string text;  // stdout and stderr
};

Output run(const std::string& command) {
    Output output;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) {
        return output;
    }
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) {
        output.text.append(buffer, n);
    }
    const int status = ::pclose(pipe);
    output.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return output;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::string line;
    for (char c : text) {
        if (c == '\n') {
            lines.push_back(line);
            line.clear();
        } else {
            line += c;
        }
    }
    if (!line.empty()) {
        lines.push_back(line);
    }
    return lines;
}

bool has_line(const std::string& text, const std::string& wanted) {
    for (const std::string& line : lines_of(text)) {
        if (line == wanted) {
            return true;
        }
    }
    return false;
}

TEST(SystemdUnitTest, DeclaresWhatTheDaemonNeeds) {
    const std::string unit = slurp(k_unit);
    ASSERT_FALSE(unit.empty()) << k_unit;
    for (const char* line : {
             "Type=notify",
             "NotifyAccess=main",
             "ExecStart=/usr/sbin/orgsyncd run -c /etc/orgsync/orgsyncd.toml",
             "ExecReload=/bin/kill -HUP $MAINPID",
             "Restart=on-failure",
             "StateDirectory=orgsync",
             "ConfigurationDirectory=orgsync",
             "DynamicUser=yes",
             "ProtectSystem=strict",
             "NoNewPrivileges=yes",
             "CapabilityBoundingSet=",
         }) {
        EXPECT_TRUE(has_line(unit, line)) << line;
    }
    bool watchdog = false;
    for (const std::string& line : lines_of(unit)) {
        if (line.starts_with("WatchdogSec=") && line.ends_with("s")) {
            const std::string seconds = line.substr(12, line.size() - 13);
            watchdog = !seconds.empty() && seconds.front() != '0' &&
                       seconds.find_first_not_of("0123456789") == std::string::npos;
        }
    }
    EXPECT_TRUE(watchdog) << "WatchdogSec=<n>s";
}

TEST(SystemdUnitTest, LoadsEveryCredentialTheExampleConfigurationNames) {
    const std::string unit = slurp(k_unit);
    const std::string config = slurp(fs::path(ORGSYNC_SOURCE_DIR) / "etc" / "orgsyncd.toml");
    const std::string prefix = "/run/credentials/orgsyncd.service/";
    std::set<std::string> names;
    for (auto at = config.find(prefix); at != std::string::npos; at = config.find(prefix, at + 1)) {
        const std::size_t start = at + prefix.size();
        const std::size_t end =
            config.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-", start);
        if (end != start) {  // not the "<name>" of a comment
            names.insert(config.substr(start, end - start));
        }
    }
    EXPECT_GE(names.size(), 6U);
    for (const std::string& name : names) {
        EXPECT_TRUE(has_line(unit, "LoadCredential=" + name)) << name;
    }
}

class SystemdAnalyzeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (run("command -v systemd-analyze").status != 0) {
            GTEST_SKIP() << "systemd-analyze is not installed";
        }
        m_dir = fs::temp_directory_path() / ("orgsync-unit-" + std::to_string(::getpid()));
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        std::string unit = slurp(k_unit);
        const std::string from = "ExecStart=/usr/sbin/orgsyncd ";
        const auto at = unit.find(from);
        ASSERT_NE(at, std::string::npos);
        unit.replace(at, from.size(), "ExecStart=" + std::string(ORGSYNCD_BINARY) + " ");
        m_copy = m_dir / "orgsyncd.service";
        std::ofstream(m_copy) << unit;
    }
    void TearDown() override {
        if (!m_dir.empty()) {
            fs::remove_all(m_dir);
        }
    }

    fs::path m_dir;
    fs::path m_copy;
};

TEST_F(SystemdAnalyzeTest, VerifiesCleanly) {
    const Output verified = run("systemd-analyze verify " + shell_quote(m_copy.string()));
    EXPECT_EQ(verified.status, 0) << verified.text;
    EXPECT_EQ(verified.text, "");
}

TEST_F(SystemdAnalyzeTest, SandboxExposureIsAtMostTwo) {
    const Output security =
        run("systemd-analyze security --offline=yes " + shell_quote(m_copy.string()));
    ASSERT_EQ(security.status, 0) << security.text;
    const std::string label = "Overall exposure level for orgsyncd.service: ";
    const std::size_t at = security.text.find(label);
    ASSERT_NE(at, std::string::npos) << security.text;
    const double score = std::stod(security.text.substr(at + label.size()));
    EXPECT_LE(score, 2.0) << security.text;
    std::printf("systemd-analyze security --offline=yes: %.1f\n", score);
}

}  // namespace
}  // namespace orgsync::daemon
