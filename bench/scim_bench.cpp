// scim_bench: the SCIM server under load (docs/BENCHMARKS.md "SCIM").
//
// Loads N SCIM users into a store through the sync pipeline, starts the
// real orgsyncd on it, and drives it with wrk (Debian's package) in one
// run: GET /healthz (the server's own ceiling), GET /Users?filter=userName
// eq "…" on random loaded users, durable POST /Users of new users; then
// times PATCHes that add 100 members to a group. Exits 1 when a phase
// fails or a write acknowledged by a 2xx is missing afterwards.

#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_support.hpp"
#include "connectors/scim/resource.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/run.hpp"
#include "tests/support/daemon_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace orgsync;

constexpr const char* k_token = "bench-token-4f1d9a";

struct Options {
    std::size_t users = 100000;
    int seconds = 10;
    int connections = 8;
    int threads = 2;
    std::string daemon = ORGSYNCD_BINARY;  // --daemon: another build, to compare in one session
};

std::string user_id(std::size_t i) {
    return fmt::format("00000000-0000-4000-8000-{:012}", i);
}

std::string user_name(std::size_t i) {
    return fmt::format("user{:06}@acme.com", i);
}

struct WrkResult {
    double rate = 0;
    double p99_ms = 0;
    std::size_t requests = 0;
    std::size_t failures = 0;  // non-2xx/3xx plus socket errors
    double cpu_us = 0;         // the daemon's CPU time per request
    std::string output;
};

double to_ms(const std::string& number, const std::string& unit) {
    double value = std::stod(number);
    if (unit == "us") {
        return value / 1000.0;
    }
    if (unit == "s") {
        return value * 1000.0;
    }
    if (unit == "m") {
        return value * 60000.0;
    }
    return value;
}

WrkResult run_wrk(const Options& options, std::uint16_t port, const std::string& path,
                  const fs::path& script) {
    std::string command = fmt::format("wrk -t{} -c{} -d{}s --latency {} http://127.0.0.1:{}{} 2>&1",
                                      options.threads, options.connections, options.seconds,
                                      script.empty() ? "" : "-s " + script.string(), port, path);
    WrkResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, pipe) != nullptr) {
        result.output += buffer;
    }
    pclose(pipe);
    std::smatch match;
    if (std::regex_search(result.output, match, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
        result.rate = std::stod(match[1]);
    }
    if (std::regex_search(result.output, match, std::regex(R"(99%\s+([0-9.]+)(us|ms|s|m)\b)"))) {
        result.p99_ms = to_ms(match[1], match[2]);
    }
    if (std::regex_search(result.output, match, std::regex(R"(([0-9]+) requests in)"))) {
        result.requests = std::stoull(match[1]);
    }
    if (std::regex_search(result.output, match,
                          std::regex(R"(Non-2xx or 3xx responses:\s+([0-9]+))"))) {
        result.failures += std::stoull(match[1]);
    }
    if (std::regex_search(
            result.output, match,
            std::regex(
                R"(Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+))"))) {
        for (std::size_t i = 1; i <= 4; ++i) {
            result.failures += std::stoull(match[i]);
        }
    }
    return result;
}

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

// CPU seconds (user + system) the process has used so far
// (/proc/PID/stat fields 14 and 15, in clock ticks).
double cpu_seconds(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string text;
    std::getline(stat, text);
    const auto close = text.rfind(')');
    if (close == std::string::npos) {
        return 0;
    }
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    double ticks = 0;
    // After the command name: state is field 3, utime 14, stime 15.
    for (int index = 3; index <= 15 && fields >> field; ++index) {
        if (index >= 14) {
            ticks += std::stod(field);
        }
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The daemon's peak resident memory (VmHWM), in MiB.
double daemon_peak_mib(pid_t pid) {
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmHWM:")) {
            return std::stod(line.substr(6)) / 1024.0;
        }
    }
    return 0;
}

int run(const Options& options) {
    fs::path dir = bench::make_temp_dir("orgsync-scim-bench");
    write_file(dir / "token", k_token);
    write_file(dir / "orgsyncd.toml", R"(
[store]
path = "orgsync.db"
[http]
listen = "127.0.0.1:0"
[mapping]
file = "mapping.toml"
[[source]]
name = "entra"
type = "scim"
org = "acme"
token_file = "token"
)");
    write_file(dir / "mapping.toml", R"(
[[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
  [[org.domain]]
  name = "acme.com"
  user_type = "internal"
  role = "member"
  [[org.role]]
  source = "entra"
  group = "Acme Admins"
  role = "admin"
)");

    // 1. N users as the SCIM server stores them, through the pipeline.
    auto started = bench::Clock::now();
    {
        auto mapping = mapping::load_mapping(dir / "mapping.toml",
                                             {{.name = "entra", .type = "scim", .org = "acme"}});
        auto store = directory::Store::open(dir / "orgsync.db");
        if (!mapping || !store) {
            std::cerr << "scim_bench: cannot set up the store or the mapping\n";
            return 1;
        }
        sync::SourceData data;
        for (std::size_t i = 0; i < options.users; ++i) {
            json user = {
                {"schemas", json::array({"urn:ietf:params:scim:schemas:core:2.0:User"})},
                {"id", user_id(i)},
                {"externalId", fmt::format("ext-{}", i)},
                {"userName", user_name(i)},
                {"active", true},
                {"displayName", fmt::format("User {}", i)},
                {"emails",
                 json::array({{{"value", user_name(i)}, {"type", "work"}, {"primary", true}}})},
                {"meta",
                 {{"resourceType", "User"},
                  {"created", "2026-11-22T00:00:00.000Z"},
                  {"lastModified", "2026-11-22T00:00:00.000Z"},
                  {"version", "W/\"1\""}}}};
            data.users.push_back(scim::to_source_user("entra", user));
        }
        auto loaded = sync::run_sync(**store, *mapping, {"entra", "scim", "acme"}, data,
                                     sync::RunOptions{.force = true});
        if (!loaded || loaded->result != "applied") {
            std::cerr << "scim_bench: loading the users failed\n";
            return 1;
        }
    }
    fmt::print(
        "load {} SCIM users         {:6.2f} s (through run_sync, before the daemon starts)\n",
        options.users, bench::seconds_since(started));

    auto daemon = test::DaemonProcess::start(options.daemon, dir / "orgsyncd.toml", dir / "log");
    const std::uint16_t port = daemon->port();
    httplib::Client client("127.0.0.1", port);
    client.set_url_encode(false);
    client.set_read_timeout(60, 0);
    const httplib::Headers auth{{"Authorization", std::string("Bearer ") + k_token}};
    auto total_users = [&]() -> long {
        auto reply = client.Get("/scim/v2/Users?count=0", auth);
        return reply && reply->status == 200 ? json::parse(reply->body).value("totalResults", -1L)
                                             : -1L;
    };

    // 2. Load in one run.
    write_file(dir / "get.lua", fmt::format(R"(
request = function()
  local i = math.random(0, {})
  return wrk.format("GET", string.format("/scim/v2/Users?filter=userName%%20eq%%20%%22user%06d%%40acme.com%%22", i),
                    {{["Authorization"] = "Bearer {}"}})
end
)",
                                            options.users - 1, k_token));
    write_file(dir / "post.lua", fmt::format(R"(
local next_id = 1
setup = function(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
local counter = 0
request = function()
  counter = counter + 1
  local name = string.format("new-%d-%d@acme.com", tid, counter)
  local body = '{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","active":true,"displayName":"New User","emails":[{{"value":"' .. name ..
    '","type":"work","primary":true}}]}}'
  return wrk.format("POST", "/scim/v2/Users",
                    {{["Authorization"] = "Bearer {}", ["Content-Type"] = "application/scim+json"}}, body)
end
)",
                                             k_token));
    // The daemon's CPU per request, a figure the load generator sharing the
    // cores cannot skew the way it skews the rates.
    auto measured = [&](const std::string& path, const fs::path& script) {
        const double before = cpu_seconds(daemon->pid());
        WrkResult result = run_wrk(options, port, path, script);
        if (result.requests > 0) {
            result.cpu_us =
                (cpu_seconds(daemon->pid()) - before) * 1e6 / static_cast<double>(result.requests);
        }
        return result;
    };
    WrkResult health = measured("/healthz", "");
    WrkResult get = measured("/", dir / "get.lua");
    const long before_post = total_users();
    WrkResult post = run_wrk(options, port, "/", dir / "post.lua");
    const long after_post = total_users();
    auto print = [](const char* name, const WrkResult& result) {
        fmt::print("{:<32} {:9.0f} req/s  p99 {:8.2f} ms  {} requests, {} failed", name,
                   result.rate, result.p99_ms, result.requests, result.failures);
        if (result.cpu_us > 0) {
            fmt::print(", daemon CPU {:.1f} us/request", result.cpu_us);
        }
        fmt::print("\n");
    };
    print("GET /healthz", health);
    print("GET /Users?filter=userName eq", get);
    print("POST /Users (durable)", post);
    const long acknowledged = static_cast<long>(post.requests - post.failures);
    const long created = after_post - before_post;
    fmt::print("POST /Users: {} acknowledged by wrk, {} users more in the store\n", acknowledged,
               created);

    // 3. PATCHes adding 100 members each to one group.
    auto group = client.Post("/scim/v2/Groups", auth,
                             R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],)"
                             R"("displayName":"Acme Admins","members":[]})",
                             "application/scim+json");
    if (!group || group->status != 201) {
        std::cerr << "scim_bench: creating the group failed\n";
        return 1;
    }
    const std::string group_id = json::parse(group->body)["id"];
    std::vector<double> patch_ms;
    bool patches_ok = true;
    for (std::size_t round = 0; round < 10; ++round) {
        json members = json::array();
        for (std::size_t i = 0; i < 100; ++i) {
            members.push_back({{"value", user_id((round * 100 + i) % options.users)}});
        }
        json body = {{"schemas", json::array({"urn:ietf:params:scim:api:messages:2.0:PatchOp"})},
                     {"Operations",
                      json::array({{{"op", "Add"}, {"path", "members"}, {"value", members}}})}};
        auto start = bench::Clock::now();
        auto reply =
            client.Patch("/scim/v2/Groups/" + group_id, auth, body.dump(), "application/scim+json");
        patch_ms.push_back(bench::seconds_since(start) * 1000.0);
        patches_ok = patches_ok && reply && reply->status == 204;
    }
    std::sort(patch_ms.begin(), patch_ms.end());
    fmt::print("PATCH +100 members (10 rounds)   median {:.2f} ms, max {:.2f} ms{}\n",
               patch_ms[patch_ms.size() / 2], patch_ms.back(), patches_ok ? "" : " (FAILED)");
    const double peak = daemon_peak_mib(daemon->pid());
    fmt::print("daemon peak RSS {:.1f} MiB\n", peak);
    const int stopped = daemon->stop(SIGTERM);

    const bool get_met = get.rate >= 0.5 * health.rate;
    const bool post_met = post.rate >= 1000.0;
    fmt::print(
        "targets: filtered GET >= half of /healthz: {:.0f} vs {:.0f}, {}; durable POST >= "
        "1000/s: {:.0f}, {}\n",
        get.rate, 0.5 * health.rate, get_met ? "met" : "NOT met", post.rate,
        post_met ? "met" : "NOT met");
    const bool lost = created < acknowledged;
    fmt::print(
        "RESULT users={} healthz_rps={:.0f} get_rps={:.0f} get_p99_ms={:.2f} "
        "healthz_cpu_us={:.1f} get_cpu_us={:.1f} "
        "post_rps={:.0f} post_p99_ms={:.2f} patch100_median_ms={:.2f} "
        "daemon_peak_mib={:.1f} status={}\n",
        options.users, health.rate, get.rate, get.p99_ms, health.cpu_us, get.cpu_us, post.rate,
        post.p99_ms, patch_ms[patch_ms.size() / 2], peak,
        (lost || !patches_ok || stopped != 0 || get.failures + health.failures > 0) ? "failed"
                                                                                    : "ok");
    if (lost || !patches_ok || stopped != 0 || get.rate == 0 || post.rate == 0) {
        std::cerr << "scim_bench: a phase failed\n" << get.output << post.output;
        return 1;
    }
    fs::remove_all(dir);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        std::string_view value = i + 1 < argc ? argv[i + 1] : "";
        bool ok = true;
        if (flag == "--users") {
            ok = bench::parse_number(value, options.users);
        } else if (flag == "--seconds") {
            ok = bench::parse_number(value, options.seconds);
        } else if (flag == "--connections") {
            ok = bench::parse_number(value, options.connections);
        } else if (flag == "--daemon") {
            options.daemon = value;
        } else {
            ok = false;
        }
        if (!ok) {
            std::cerr << "usage: scim_bench [--users N] [--seconds S] [--connections C] [--daemon "
                         "ORGSYNCD]\n";
            return 2;
        }
        ++i;
    }
    try {
        return run(options);
    } catch (const std::exception& failure) {
        std::cerr << "scim_bench: " << failure.what() << '\n';
        return 1;
    }
}
