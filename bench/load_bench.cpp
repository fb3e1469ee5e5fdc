// load_bench: SCIM writes while a large LDAP sync runs on the same daemon
// (docs/RELIABILITY.md "Load", docs/BENCHMARKS.md "SCIM writes during an LDAP
// sync").
//
// 1. Generates ldap_bench's directory (bench/ldap_directory.hpp; by default
//    100,000 users, 1,000 groups, 300,000 member values) into a private
//    slapd, and starts the real orgsyncd with that directory as LDAP source
//    `corp` and a SCIM source `entra` bound to org acme.
// 2. When the daemon logs the start of its first LDAP sync (a full read and
//    one transaction with every membership), --clients SCIM clients
//    (tests/support/scim_writer.hpp) send --writes writes in all: POST,
//    PATCH and DELETE of their own users and groups, each client one
//    request at a time on a keep-alive connection.
// 3. After the last write and the sync, stops the daemon (SIGTERM) and
//    reads the store file: every write answered 2xx must be there, and the
//    org's memberships must be what the SCIM mirror derives.
// 4. Prints throughput, latency percentiles (all writes, and those answered
//    while the sync ran) and a RESULT line. Exits 1 when a write is lost,
//    a request got a 5xx or no answer, an answer speaks of a locked or busy
//    database, or the sync did not apply.

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/bench_support.hpp"
#include "bench/ldap_directory.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/scim_writer.hpp"
#include "tests/support/slapd.hpp"

namespace orgsync::bench {
namespace {

namespace fs = std::filesystem;

constexpr const char* k_token = "load-bench-scim-token";
constexpr const char* k_api_token = "load-bench-api-token";

struct Options {
    std::size_t users = k_default_users;
    std::size_t writes = 20'000;
    std::size_t clients = 8;
    std::uint64_t seed = 42;
    bool keep = false;
};

constexpr std::string_view k_usage =
    "usage: load_bench [options]\n"
    "  --users N    users in the LDAP directory (default 100000; groups and member values\n"
    "               scale with it)\n"
    "  --writes N   SCIM writes in all (default 20000)\n"
    "  --clients N  concurrent SCIM clients (default 8)\n"
    "  --seed N     random seed (default 42)\n"
    "  --keep       keep the temp directory (store, daemon log)\n";

std::optional<Options> parse_options(int argc, char** argv) {
    Options options;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view flag = args[i];
        if (flag == "--help" || flag == "-h") {
            fmt::print("{}", k_usage);
            std::exit(0);
        }
        if (flag == "--keep") {
            options.keep = true;
            continue;
        }
        const std::string_view value = i + 1 < args.size() ? args[++i] : "";
        bool ok = false;
        if (flag == "--users") {
            ok = parse_number(value, options.users) && options.users >= 100;
        } else if (flag == "--writes") {
            ok = parse_number(value, options.writes) && options.writes > 0;
        } else if (flag == "--clients") {
            ok = parse_number(value, options.clients) && options.clients > 0 &&
                 options.clients <= 64;
        } else if (flag == "--seed") {
            ok = parse_number(value, options.seed);
        }
        if (!ok) {
            fmt::print(stderr, "load_bench: bad option {} {}\n{}", flag, value, k_usage);
            return std::nullopt;
        }
    }
    return options;
}

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

// The three orgs of the directory, the SCIM source's admin group, and a
// grant or role rule for every 30th group.
std::string mapping_toml(std::size_t groups) {
    std::string text;
    for (std::size_t o = 0; o < k_orgs.size(); ++o) {
        const auto& shape = k_orgs[o];
        text += fmt::format(
            "[[org]]\nslug = \"{}\"\nname = \"{}\"\nworkforce = {}\nowner = \"owner@{}\"\n"
            "project_admin_fallback = \"owner\"\n"
            "  [[org.domain]]\n  name = \"{}\"\n  include_subdomains = {}\n"
            "  user_type = \"internal\"\n  role = \"member\"\n"
            "  [[org.project]]\n  slug = \"research\"\n",
            shape.slug, shape.name, shape.workforce, shape.domain, shape.domain,
            shape.include_subdomains);
        if (shape.slug == "acme") {
            text +=
                "  [[org.role]]\n  source = \"entra\"\n  group = \"Acme Admins\"\n"
                "  role = \"admin\"\n";
        }
        for (std::size_t g = o * 10; g < groups; g += 30) {
            if (g + 30 >= groups) {
                text += fmt::format(
                    "  [[org.role]]\n  source = \"corp\"\n  group = \"{}\"\n  role = \"admin\"\n",
                    group_dn(g));
            } else {
                text += fmt::format(
                    "  [[org.grant]]\n  source = \"corp\"\n  group = \"{}\"\n"
                    "  project = \"research\"\n  level = \"{}\"\n",
                    group_dn(g), g % 60 == 0 ? "write" : "read");
            }
        }
        text += "\n";
    }
    return text;
}

double percentile(std::vector<double> values, double share) {
    if (values.empty()) {
        return 0.0;
    }
    std::ranges::sort(values);
    const auto index = static_cast<std::size_t>(share * static_cast<double>(values.size() - 1));
    return values[index];
}

int run(const Options& options) {
    const std::size_t groups = scaled_to(options.users, k_default_groups);
    const std::size_t memberships = scaled_to(options.users, k_default_memberships);
    const fs::path dir = make_temp_dir("orgsync-load-bench");
    Random random(options.seed);

    auto started = Clock::now();
    const Directory directory =
        write_directory(options.users, groups, memberships, random, dir / "directory.ldif");
    testing::Slapd slapd({.suffix = std::string(k_suffix),
                          .memberof = false,
                          .initial_ldif = dir / "directory.ldif"});
    fs::remove(dir / "directory.ldif");
    fmt::print(
        "directory: {} users, {} groups, {} member values; generated and loaded in {:.1f} s\n",
        directory.users, directory.groups, directory.memberships, seconds_since(started));

    write_file(dir / "scim-token", k_token);
    write_file(dir / "api-token", k_api_token);
    write_file(dir / "mapping.toml", mapping_toml(groups));
    write_file(dir / "orgsyncd.toml",
               fmt::format(R"([store]
path = "orgsync.db"
[http]
listen = "127.0.0.1:0"
api_token_file = "api-token"
[mapping]
file = "mapping.toml"
[[source]]
name = "corp"
type = "ldap"
uri = ["{}"]
bind_dn = "{}"
bind_password_file = "{}"
user_base = "ou=people,{}"
group_base = "ou=groups,{}"
interval = "1h"
timeout = "300s"
[[source]]
name = "entra"
type = "scim"
org = "acme"
token_file = "scim-token"
)",
                           slapd.uri(), slapd.reader_dn(), slapd.reader_password_file().string(),
                           k_suffix, k_suffix));

    auto daemon = test::DaemonProcess::start(ORGSYNCD_BINARY, dir / "orgsyncd.toml", dir / "log");
    // The first LDAP run's line once it ended (after its `sync.started`: the
    // lines before are the re-derivation at start), else "".
    const auto sync_outcome = [&]() -> std::string {
        const std::string log = daemon->log();
        const auto started_at = log.find("event=sync.started source=corp");
        if (started_at == std::string::npos) {
            return "";
        }
        for (auto at = log.find("event=sync.", started_at + 1); at != std::string::npos;
             at = log.find("event=sync.", at + 1)) {
            const std::string line = log.substr(at, log.find('\n', at) - at);
            if (line.find(" source=corp ") != std::string::npos &&
                !line.starts_with("event=sync.started") &&
                !line.starts_with("event=sync.requested")) {
                return line;
            }
        }
        return "";
    };
    while (daemon->log().find("event=sync.started source=corp") == std::string::npos) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto writes_start = Clock::now();

    // The writers, each with its share of the writes.
    std::vector<test::ScimWriter> writers;
    for (std::size_t c = 0; c < options.clients; ++c) {
        writers.emplace_back(static_cast<int>(c), options.seed + 1 + c, k_token);
    }
    struct Timed {
        double sent = 0.0;  // seconds since writes_start, when the request went out
        double ms = 0.0;
    };
    std::vector<std::vector<Timed>> timings(options.clients);
    std::atomic<std::size_t> done{0};
    std::atomic<std::size_t> finished{0};
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < options.clients; ++c) {
        const std::size_t share =
            options.writes / options.clients + (c < options.writes % options.clients ? 1 : 0);
        threads.emplace_back([&, c, share] {
            httplib::Client http("127.0.0.1", daemon->port());
            http.set_read_timeout(300, 0);
            auto& writer = writers[c];
            for (std::size_t n = 0; n < share; ++n) {
                const auto before = writer.stats().latency_ms.size();
                const auto outcome = writer.write_one(http);
                if (writer.stats().latency_ms.size() > before) {
                    timings[c].push_back(
                        {seconds_since(writes_start) - writer.stats().latency_ms.back() / 1000.0,
                         writer.stats().latency_ms.back()});
                }
                ++done;
                if (outcome == test::ScimWriter::Outcome::no_answer) {
                    break;
                }
            }
            ++finished;
        });
    }

    // The sync's end, seen from here: the writes answered by then ran
    // against it.
    std::optional<double> sync_end;
    std::size_t done_at_sync_end = 0;
    std::string sync_line;
    auto poll_sync = [&] {
        if (!sync_end) {
            sync_line = sync_outcome();
            if (!sync_line.empty()) {
                sync_end = seconds_since(writes_start);
                done_at_sync_end = done;
            }
        }
    };
    while (finished < options.clients) {
        poll_sync();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const double writes_seconds = seconds_since(writes_start);
    while (!sync_end) {
        poll_sync();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const bool sync_applied = sync_line.starts_with("event=sync.applied");
    const int stopped = daemon->stop(SIGTERM);
    const std::string log = daemon->log();
    const bool busy_logged = log.find("database is locked") != std::string::npos ||
                             log.find("SQLITE_BUSY") != std::string::npos;

    // What the store holds.
    const test::ScimMirror mirror = test::read_scim_mirror(dir / "orgsync.db", "entra");
    std::vector<std::string> lost;
    test::ScimWriteStats total;
    std::vector<double> all_ms;
    std::vector<double> during_ms;
    std::map<std::string, std::size_t> by_kind;
    std::map<std::string, std::vector<double>> ms_by_kind;
    for (std::size_t c = 0; c < options.clients; ++c) {
        auto& writer = writers[c];
        for (auto& problem : writer.reconcile(mirror)) {
            lost.push_back(std::move(problem));
        }
        const auto& stats = writer.stats();
        total.sent += stats.sent;
        total.acknowledged += stats.acknowledged;
        total.client_errors += stats.client_errors;
        total.server_errors += stats.server_errors;
        total.no_answer += stats.no_answer;
        total.busy += stats.busy;
        for (const auto& [kind, count] : stats.acknowledged_by_kind) {
            by_kind[kind] += count;
        }
        for (const auto& [kind, ms] : stats.latency_ms_by_kind) {
            ms_by_kind[kind].insert(ms_by_kind[kind].end(), ms.begin(), ms.end());
        }
        for (const auto& refusal : stats.refusals) {
            fmt::print(stderr, "refused: {}\n", refusal);
        }
        for (const auto& timed : timings[c]) {
            all_ms.push_back(timed.ms);
            if (timed.sent <= *sync_end) {
                during_ms.push_back(timed.ms);
            }
        }
    }
    auto org_problems = test::check_scim_org(dir / "orgsync.db", "entra", "acme", "Acme Admins");
    std::size_t corp_users = 0;
    {
        SQLite::Database db((dir / "orgsync.db").string(), SQLite::OPEN_READONLY);
        corp_users = static_cast<std::size_t>(
            db.execAndGet("SELECT count(*) FROM source_users WHERE source = 'corp'").getInt64());
    }

    fmt::print("LDAP sync: {}\n", sync_line);
    fmt::print(
        "LDAP sync ended {:.2f} s after the writes began; {} of {} writes answered by then\n",
        *sync_end, done_at_sync_end, options.writes);
    fmt::print("writes: {} sent by {} clients in {:.2f} s: {:.0f} writes/s\n", total.sent,
               options.clients, writes_seconds, static_cast<double>(total.sent) / writes_seconds);
    std::string kinds;
    for (const auto& [kind, count] : by_kind) {
        kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", kind, count);
    }
    fmt::print("acknowledged (2xx): {} ({}); 4xx {}, 5xx {}, no answer {}, busy answers {}\n",
               total.acknowledged, kinds, total.client_errors, total.server_errors, total.no_answer,
               total.busy);
    fmt::print("latency, all writes:       p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n",
               percentile(all_ms, 0.50), percentile(all_ms, 0.99), percentile(all_ms, 1.0));
    fmt::print(
        "latency, sent during sync: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms ({} writes)\n",
        percentile(during_ms, 0.50), percentile(during_ms, 0.99), percentile(during_ms, 1.0),
        during_ms.size());
    for (const auto& [kind, ms] : ms_by_kind) {
        fmt::print("latency, {:<14}    p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms ({} writes)\n",
                   kind, percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 1.0),
                   ms.size());
    }
    fmt::print(
        "store after SIGTERM (exit {}): {} LDAP users mirrored, {} SCIM users and {} "
        "groups; {} acknowledged writes missing or wrong, {} org differences{}\n",
        stopped, corp_users, mirror.users.size(), mirror.groups.size(), lost.size(),
        org_problems.size(), busy_logged ? "; the log mentions a locked database" : "");
    for (std::size_t i = 0; i < std::min<std::size_t>(lost.size(), 20); ++i) {
        fmt::print(stderr, "lost: {}\n", lost[i]);
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(org_problems.size(), 20); ++i) {
        fmt::print(stderr, "org: {}\n", org_problems[i]);
    }

    const bool ok = lost.empty() && org_problems.empty() && total.server_errors == 0 &&
                    total.client_errors == 0 && total.no_answer == 0 && total.busy == 0 &&
                    !busy_logged && sync_applied && stopped == 0 &&
                    total.acknowledged == options.writes && corp_users == directory.users;
    fmt::print(
        "RESULT users={} writes={} clients={} acknowledged={} lost={} status_4xx={} "
        "status_5xx={} no_answer={} busy={} writes_s={:.3f} writes_per_s={:.0f} p50_ms={:.2f} "
        "p99_ms={:.2f} max_ms={:.2f} sync_end_s={:.3f} answered_by_sync_end={} "
        "sent_during_sync={} during_sync_p99_ms={:.2f} during_sync_max_ms={:.2f} status={}\n",
        directory.users, options.writes, options.clients, total.acknowledged, lost.size(),
        total.client_errors, total.server_errors, total.no_answer, total.busy, writes_seconds,
        static_cast<double>(total.sent) / writes_seconds, percentile(all_ms, 0.50),
        percentile(all_ms, 0.99), percentile(all_ms, 1.0), *sync_end, done_at_sync_end,
        during_ms.size(), percentile(during_ms, 0.99), percentile(during_ms, 1.0),
        ok ? "ok" : "failed");
    if (options.keep || !ok) {
        fmt::print("kept {}\n", dir.string());
    } else {
        fs::remove_all(dir);
    }
    return ok ? 0 : 1;
}

}  // namespace
}  // namespace orgsync::bench

int main(int argc, char** argv) {
    auto options = orgsync::bench::parse_options(argc, argv);
    if (!options) {
        return 2;
    }
    try {
        return orgsync::bench::run(*options);
    } catch (const std::exception& error) {
        fmt::print(stderr, "load_bench: {}\n", error.what());
        return 1;
    }
}
