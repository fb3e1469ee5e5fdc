#pragma once

// What the tests of `orgsyncd run` as a service share: a scratch directory
// with the daemon's config, mapping and secrets, a real slapd, the real
// daemon process, an HTTP client, a NOTIFY_SOCKET stand-in and a check of
// the Prometheus text format. service_test.cpp (the service),
// source_fault_test.cpp (faults of the sources and of SCIM clients) and
// security_test.cpp build on it.

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/signature.hpp"
#include "tests/daemon/process.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/slapd.hpp"

namespace orgsync::daemon::service_test {

namespace fs = std::filesystem;
using nlohmann::json;
using orgsync::test::DaemonProcess;
using orgsync::testing::Slapd;
using namespace std::chrono_literals;

inline constexpr const char* k_api_token = "api-token-for-tests-0123";
inline constexpr const char* k_hook_secret = "hook-secret-for-tests";
inline constexpr const char* k_target_secret = "target-secret-for-tests";

inline void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

struct Reply {
    int status = 0;
    json body;
};

inline std::string person(const Slapd& slapd, const std::string& uid, const std::string& mail) {
    return "dn: uid=" + uid + ",ou=people," + slapd.suffix() +
           "\nobjectClass: inetOrgPerson\nuid: " + uid + "\ncn: " + uid + "\nsn: " + uid +
           "\nmail: " + mail + "\n\n";
}

inline std::string group_dn(const Slapd& slapd, const std::string& cn) {
    return "cn=" + cn + ",ou=groups," + slapd.suffix();
}

// A line-by-line check of the Prometheus text format 0.0.4: every sample
// belongs to a family announced by # HELP and # TYPE, names and labels are
// well formed, values parse. Returns the samples by their full series text.
inline std::map<std::string, double> parse_prometheus(const std::string& text) {
    std::map<std::string, double> samples;
    std::set<std::string> typed;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty()) {
            continue;
        }
        if (line.starts_with("# HELP ")) {
            continue;
        }
        if (line.starts_with("# TYPE ")) {
            std::istringstream fields(line.substr(7));
            std::string name;
            std::string type;
            fields >> name >> type;
            EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
            typed.insert(name);
            continue;
        }
        const auto space = line.rfind(' ');
        EXPECT_NE(space, std::string::npos) << line;
        const std::string series = line.substr(0, space);
        std::string name = series.substr(0, series.find('{'));
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
            if (!typed.contains(name) && name.ends_with(suffix)) {
                name.resize(name.size() - std::string_view(suffix).size());
            }
        }
        EXPECT_TRUE(typed.contains(name)) << "no # TYPE before " << line;
        if (series.find('{') != std::string::npos) {
            EXPECT_EQ(series.back(), '}') << line;
        }
        std::size_t used = 0;
        const std::string value = line.substr(space + 1);
        double parsed =
            value == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(value, &used);
        EXPECT_TRUE(value == "+Inf" || used == value.size()) << line;
        samples[series] = parsed;
    }
    return samples;
}

// `text` percent-encoded for a query parameter.
inline std::string url_encode(std::string_view text) {
    std::string out;
    for (const char raw : text) {
        const auto c = static_cast<unsigned char>(raw);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            constexpr char k_hex[] = "0123456789ABCDEF";
            out += '%';
            out += k_hex[c >> 4];
            out += k_hex[c & 15];
        }
    }
    return out;
}

// A TCP connection to the daemon on 127.0.0.1, for requests no HTTP client
// would send; -1 when it cannot connect.
inline int connect_raw(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Sends all of `data` (false when the peer closed or reset).
inline bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (sent <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

// What the peer sends until it closes or `timeout` passes.
inline std::string receive_all(int fd, std::chrono::seconds timeout = 10s) {
    timeval wait{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    std::string out;
    char buffer[4096];
    for (;;) {
        const auto got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got <= 0) {
            return out;
        }
        out.append(buffer, static_cast<std::size_t>(got));
    }
}

// A datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
  public:
    explicit NotifySocket(const fs::path& path) : m_path(path) {
        m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
        fs::remove(path);
        if (::bind(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            throw std::runtime_error("cannot bind the notify socket");
        }
    }
    ~NotifySocket() {
        ::close(m_fd);
        fs::remove(m_path);
    }

    // The next message with one of its lines starting with `prefix`,
    // collecting every message read on the way; "" on timeout.
    std::string wait_for(const std::string& prefix, std::chrono::seconds timeout = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            timeval wait{0, 200000};
            ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
            char buffer[4096];
            const auto got = ::recv(m_fd, buffer, sizeof buffer, 0);
            if (got <= 0) {
                continue;
            }
            std::string message(buffer, static_cast<std::size_t>(got));
            messages.push_back(message);
            std::istringstream lines(message);
            std::string line;
            while (std::getline(lines, line)) {
                if (line.starts_with(prefix)) {
                    return line;
                }
            }
        }
        return "";
    }

    std::vector<std::string> messages;

  private:
    fs::path m_path;
    int m_fd = -1;
};

class ServiceFixture : public ::testing::Test {
  protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() /
                ("orgsync-service-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        write_file(m_dir / "api-token", std::string(k_api_token) + "\n");
        write_file(m_dir / "hook-secret", k_hook_secret);
        write_file(m_dir / "target-secret", k_target_secret);
    }

    void TearDown() override {
        m_daemon.reset();
        m_slapd.reset();
        fs::remove_all(m_dir);
    }

    // A directory: alice and bob at acme.com, carol at beta.org; alice in
    // acme-admins, bob in vision-team.
    void start_directory() {
        m_slapd = std::make_unique<Slapd>();
        m_slapd->add(person(*m_slapd, "alice", "alice@acme.com") +
                     person(*m_slapd, "bob", "bob@acme.com") +
                     person(*m_slapd, "carol", "carol@beta.org"));
        m_slapd->add("dn: " + group_dn(*m_slapd, "acme-admins") +
                     "\nobjectClass: groupOfNames\ncn: acme-admins\nmember: uid=alice,ou=people," +
                     m_slapd->suffix() + "\n\ndn: " + group_dn(*m_slapd, "vision-team") +
                     "\nobjectClass: groupOfNames\ncn: vision-team\nmember: uid=bob,ou=people," +
                     m_slapd->suffix() + "\n\n");
    }

    // The LDAP source "corp" over the directory: retries after 1s, failing
    // (for /readyz) after 2 failed runs in a row; `timeout` per operation.
    std::string ldap_source(const std::string& timeout = "5s") const {
        return "[[source]]\nname = \"corp\"\ntype = \"ldap\"\nuri = [\"" + m_slapd->uri() +
               "\"]\nbind_dn = \"" + m_slapd->reader_dn() + "\"\nbind_password_file = \"" +
               m_slapd->reader_password_file().string() + "\"\nuser_base = \"ou=people," +
               m_slapd->suffix() + "\"\ngroup_base = \"ou=groups," + m_slapd->suffix() +
               "\"\ninterval = \"1h\"\nretry_initial = \"1s\"\nfailure_threshold = 2\n"
               "timeout = \"" +
               timeout + "\"\n";
    }

    void write_config(const std::string& extra, const std::string& http_extra = "") {
        write_file(m_dir / "orgsyncd.toml", R"([store]
path = "orgsync.db"
[http]
listen = "127.0.0.1:0"
api_token_file = "api-token"
)" + http_extra + R"(
[mapping]
file = "mapping.toml"
[webhook]
secret_file = "hook-secret"
retry_initial = "1s"
retry_max = "2s"
)" + extra);
    }

    // `vision_level` is the level the vision-team group gets on project
    // vision; "" for no grant rule.
    void write_mapping(const std::string& vision_level = "write") {
        std::string text = R"([[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
project_admin_fallback = "owner"
  [[org.domain]]
  name = "acme.com"
  user_type = "internal"
  role = "member"
  [[org.project]]
  slug = "vision"
)";
        if (m_slapd) {
            text += "  [[org.role]]\n  source = \"corp\"\n  group = \"" +
                    group_dn(*m_slapd, "acme-admins") + "\"\n  role = \"admin\"\n";
            if (!vision_level.empty()) {
                text += "  [[org.grant]]\n  source = \"corp\"\n  group = \"" +
                        group_dn(*m_slapd, "vision-team") +
                        "\"\n  project = \"vision\"\n  level = \"" + vision_level + "\"\n";
            }
        }
        text += R"(
[[org]]
slug = "beta"
name = "Beta"
owner = "ceo@beta.org"
  [[org.domain]]
  name = "beta.org"
  user_type = "internal"
  role = "member"
)";
        write_file(m_dir / "mapping.toml", text);
    }

    void start() {
        m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        m_client = std::make_unique<httplib::Client>("127.0.0.1", m_daemon->port());
        m_client->set_read_timeout(60, 0);
    }

    // Any method; the body is sent with POST, PUT and PATCH.
    httplib::Result send(const std::string& method, const std::string& path,
                         const std::string& body, const httplib::Headers& headers,
                         const char* type = "application/json") {
        if (method == "GET") {
            return m_client->Get(path, headers);
        }
        if (method == "PUT") {
            return m_client->Put(path, headers, body, type);
        }
        if (method == "PATCH") {
            return m_client->Patch(path, headers, body, type);
        }
        if (method == "DELETE") {
            return m_client->Delete(path, headers);
        }
        return m_client->Post(path, headers, body, type);
    }

    Reply call(const std::string& method, const std::string& path, const std::string& body = "",
               httplib::Headers headers = {
                   {"Authorization", std::string("Bearer ") + k_api_token}}) {
        httplib::Result result = send(method, path, body, headers);
        if (!result) {
            ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(result.error());
            return {};
        }
        Reply reply{result->status, json::parse(result->body, nullptr, false)};
        return reply;
    }

    Reply api(const std::string& method, const std::string& path, const json& body = nullptr) {
        return call(method, path, body.is_null() ? std::string("{}") : body.dump());
    }

    Reply hook(const json& body, std::chrono::sys_seconds at, const std::string& secret) {
        const std::string text = body.dump();
        return call("POST", "/hooks/v1/events", text,
                    {{std::string(k_signature_header), sign(secret, text, at)}});
    }

    static std::chrono::sys_seconds now() {
        return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    }

    // The members of `org` as email -> role.
    std::map<std::string, std::string> members(const std::string& org) {
        std::map<std::string, std::string> out;
        auto reply = api("GET", "/v1/orgs/" + org + "/members");
        EXPECT_EQ(reply.status, 200) << reply.body.dump();
        for (const auto& member : reply.body["members"]) {
            out[member["email"]] = member["role"];
        }
        return out;
    }

    json source_status(const std::string& name) {
        auto reply = api("GET", "/v1/status");
        for (const auto& source : reply.body["sources"]) {
            if (source["name"] == name) {
                return source;
            }
        }
        return nullptr;
    }

    // Waits until `source` has finished `runs` runs since the start.
    // /metrics once `ready` holds for its samples, or as they are after 10 s.
    // A request is counted by the listener after its response is written
    // (the latency it records includes the write), so the client can have
    // the answer before the count is there.
    std::map<std::string, double> metrics_when(
        const std::function<bool(const std::map<std::string, double>&)>& ready) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (true) {
            auto response = m_client->Get("/metrics");
            auto samples =
                response ? parse_prometheus(response->body) : std::map<std::string, double>{};
            if (ready(samples) || std::chrono::steady_clock::now() >= deadline) {
                return samples;
            }
            std::this_thread::sleep_for(20ms);
        }
    }

    json wait_runs(const std::string& source, int runs) {
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < deadline) {
            json status = source_status(source);
            if (!status.is_null() && status["runs"].get<int>() >= runs && !status["running"]) {
                return status;
            }
            std::this_thread::sleep_for(50ms);
        }
        ADD_FAILURE() << source << " did not finish " << runs << " runs:\n" << m_daemon->log();
        return nullptr;
    }

    std::string authorize(const std::string& user, const std::string& action) {
        auto reply =
            api("POST", "/v1/authorize",
                {{"user", user}, {"org", "acme"}, {"project", "vision"}, {"action", action}});
        EXPECT_EQ(reply.status, 200) << reply.body.dump();
        return reply.body["allow"].get<bool>() ? "allow" : "deny";
    }

    // No secret the daemon was given appears in its log.
    void expect_no_secrets_logged() {
        const std::string log = m_daemon->log();
        for (const std::string secret : {k_api_token, k_hook_secret, k_target_secret}) {
            EXPECT_EQ(log.find(secret), std::string::npos) << secret;
        }
        if (m_slapd) {
            const std::string password = daemon::test::slurp(m_slapd->reader_password_file());
            EXPECT_EQ(log.find(password.substr(0, password.find('\n'))), std::string::npos);
        }
    }

    fs::path m_dir;
    std::unique_ptr<Slapd> m_slapd;
    std::unique_ptr<DaemonProcess> m_daemon;
    std::unique_ptr<httplib::Client> m_client;
};
}  // namespace orgsync::daemon::service_test
