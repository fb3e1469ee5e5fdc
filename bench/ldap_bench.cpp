// ldap_bench: the LDAP sync benchmark `make bench` runs after sync_bench
// (docs/BENCHMARKS.md, "LDAP sync").
//
// 1. Generates a directory (seeded, so every run sees the same one): by
//    default 100,000 inetOrgPerson users under ou=people with addresses at
//    the three orgs' domains of the mapping (and 5% at domains no org
//    claims), and 1,000 groupOfNames groups under ou=groups with 300,000
//    member values (a few large groups, many small ones). The mapping has
//    sync_bench's shape: three orgs, role and grant rules naming about a
//    third of the groups, projects and datasets. The LDIF is streamed to a
//    file and loaded with slapadd before slapd starts (tests/support/slapd).
// 2. The floor: `ldapsearch -x -LLL -E pr=<page>/noprompt` as the reader
//    account, users then groups (the bases, filters and attributes the
//    connector asks for), output to /dev/null; the median of --runs runs.
// 3. As the reader, with the same page size:
//    - ldap::read_source alone (the connector's read; median of --runs);
//    - (a) ldap::sync_ldap_source into a fresh store (first run: full);
//    - (b) the same with `.full = true`, nothing changed (median of --runs);
//    - (c) after --changes modifications made with ldapmodify (45% new
//      mail, 45% new displayName, 10% deleted users that are in no group:
//      only user entries change, so content sync's incremental path can be
//      taken), sync_ldap_source without `.full`.
//    - (d), no time target: a full sync after the mapping's digest
//      changed, which plans every record again. Its memory counts: the
//      memory verdict is over (a) to (d).
// 4. Prints, per phase, wall time, this process's CPU, slapd's CPU and
//    peak RSS (getrusage ru_maxrss), the ratios to the floor with PASS/MISS
//    per target, and one machine-readable RESULT line.
//
// `ldap_bench --users 2000` is a quick run (groups and memberships follow
// --users unless given).

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/os.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bench/bench_support.hpp"
#include "bench/ldap_directory.hpp"
#include "config/fingerprint.hpp"
#include "connectors/ldap/directory_reader.hpp"
#include "connectors/ldap/ldap_source.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"
#include "sync/run.hpp"
#include "tests/support/slapd.hpp"

extern char** environ;

namespace orgsync::bench {
namespace {

namespace fs = std::filesystem;
using namespace orgsync::directory;

constexpr std::string_view k_source = "corp";
constexpr std::size_t k_projects_per_org = 20;
constexpr std::size_t k_datasets_per_org = 6;

// The targets.
constexpr double k_full_ratio_target = 1.5;                          // (a) / floor
constexpr double k_no_change_ratio_target = 1.2;                     // (b) / floor
constexpr double k_incremental_share_target = 0.05;                  // (c) / (a)
constexpr double k_peak_rss_target_mib = 200e6 / (1024.0 * 1024.0);  // 200 MB

// ---- options ------------------------------------------------------------------

struct Options {
    std::size_t users = k_default_users;
    std::optional<std::size_t> groups;
    std::optional<std::size_t> memberships;
    std::size_t changes = 100;
    std::size_t runs = 3;
    int page_size = 1000;
    std::uint64_t seed = 42;
    bool keep = false;
    bool read_only = false;  // stop after the read alone (for profiling)
    std::string dump;        // write what read_source returned here (to compare versions)
};

constexpr std::string_view k_usage =
    "usage: ldap_bench [options]\n"
    "  --users N        users in the directory (default 100000)\n"
    "  --groups N       groups (default 1000, or scaled with --users)\n"
    "  --memberships N  member values (default 300000, or scaled with --users)\n"
    "  --changes N      modifications before the incremental run (default 100)\n"
    "  --runs N         runs of the floor, the read alone and (b); the median counts (default 3)\n"
    "  --page-size N    page size of the connector and of ldapsearch (default 1000)\n"
    "  --seed N         random seed (default 42)\n"
    "  --keep           keep the temp directory (LDIF, store)\n"
    "  --read-only      stop after the floor and the read alone (for profiling the read)\n"
    "  --dump FILE      write the users and groups the read returned to FILE, one per line\n";

std::optional<Options> parse_options(int argc, char** argv) {
    Options options;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view flag = args[i];
        if (flag == "--help" || flag == "-h") {
            fmt::print("{}", k_usage);
            std::exit(0);
        }
        if (flag == "--keep") {
            options.keep = true;
            continue;
        }
        if (flag == "--read-only") {
            options.read_only = true;
            continue;
        }
        constexpr std::array<std::string_view, 8> k_value_flags{
            "--users", "--groups",    "--memberships", "--changes",
            "--runs",  "--page-size", "--seed",        "--dump"};
        if (std::ranges::find(k_value_flags, flag) == k_value_flags.end()) {
            fmt::print(stderr, "ldap_bench: unknown option {}\n{}", flag, k_usage);
            return std::nullopt;
        }
        if (i + 1 >= args.size()) {
            fmt::print(stderr, "ldap_bench: {} needs a value\n{}", flag, k_usage);
            return std::nullopt;
        }
        std::string_view value = args[++i];
        bool ok = false;
        auto size_option = [&](std::optional<std::size_t>& target) {
            std::size_t number = 0;
            ok = parse_number(value, number) && number > 0;
            target = number;
        };
        if (flag == "--users") {
            ok = parse_number(value, options.users);
        } else if (flag == "--groups") {
            size_option(options.groups);
        } else if (flag == "--memberships") {
            size_option(options.memberships);
        } else if (flag == "--changes") {
            ok = parse_number(value, options.changes) && options.changes >= 10;
        } else if (flag == "--runs") {
            ok = parse_number(value, options.runs) && options.runs > 0;
        } else if (flag == "--page-size") {
            ok = parse_number(value, options.page_size) && options.page_size > 0 &&
                 options.page_size <= 100'000;
        } else if (flag == "--seed") {
            ok = parse_number(value, options.seed);
        } else if (flag == "--dump") {
            options.dump = std::string(value);
            ok = !value.empty();
        }
        if (!ok) {
            fmt::print(stderr, "ldap_bench: bad value \"{}\" for {}\n", value, flag);
            return std::nullopt;
        }
    }
    if (options.users < 100) {
        fmt::print(stderr, "ldap_bench: need at least 100 users\n");
        return std::nullopt;
    }
    return options;
}

std::size_t scaled(std::optional<std::size_t> given, std::size_t by_default,
                   const Options& options) {
    if (given) {
        return *given;
    }
    return scaled_to(options.users, by_default);
}

// ---- measuring ----------------------------------------------------------------

double seconds(const timeval& time) {
    return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
}

double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU time (user + system) of process `pid` so far, from /proc; 0 when gone.
double pid_cpu_seconds(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string text;
    std::getline(stat, text);
    // Fields after the command name (which may hold spaces) start at ") ".
    auto close = text.rfind(')');
    if (close == std::string::npos) {
        return 0.0;
    }
    std::vector<std::string_view> fields;
    std::string_view rest = std::string_view(text).substr(close + 2);
    while (!rest.empty()) {
        auto space = rest.find(' ');
        fields.push_back(rest.substr(0, space));
        rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    }
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    if (fields.size() < 13) {
        return 0.0;
    }
    double ticks = 0;
    for (std::size_t i : {std::size_t{11}, std::size_t{12}}) {
        std::uint64_t value = 0;
        parse_number(fields[i], value);
        ticks += static_cast<double>(value);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Phase {
    double seconds = 0.0;
    double cpu = 0.0;         // this process
    double server_cpu = 0.0;  // slapd
    double peak_rss = 0.0;
};

class PhaseTimer {
  public:
    explicit PhaseTimer(pid_t server)
        : m_server(server),
          m_start(Clock::now()),
          m_cpu(process_cpu_seconds()),
          m_server_cpu(pid_cpu_seconds(server)) {}

    Phase finish() const {
        return Phase{seconds_since(m_start), process_cpu_seconds() - m_cpu,
                     pid_cpu_seconds(m_server) - m_server_cpu, peak_rss_mib()};
    }

  private:
    pid_t m_server;
    Clock::time_point m_start;
    double m_cpu;
    double m_server_cpu;
};

void print_phase(std::string_view name, const Phase& phase, std::string_view detail) {
    fmt::print(
        "{:<30} {:7.2f} s  (CPU: bench {:6.2f} s, slapd {:6.2f} s)  peak RSS {:6.1f} MiB, now "
        "{:6.1f} MiB  {}\n",
        name, phase.seconds, phase.cpu, phase.server_cpu, phase.peak_rss, current_rss_mib(),
        detail);
    std::fflush(stdout);
}

template <typename T>
T median(std::vector<T> values, auto key) {
    std::ranges::sort(values, {}, key);
    return values[values.size() / 2];
}

// Runs `argv` with stdout to /dev/null and stderr kept; returns the wall
// time and the child's CPU time, or throws with its stderr on failure.
struct ToolTime {
    double seconds = 0.0;
    double cpu = 0.0;
};

ToolTime time_tool(const std::vector<std::string>& argv, const fs::path& err_file) {
    std::vector<std::string> env_strings;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        env_strings.emplace_back(*entry);
    }
    env_strings.emplace_back("LDAPNOINIT=1");  // ignore ldap.conf and ~/.ldaprc
    std::vector<char*> env;
    for (auto& text : env_strings) {
        env.push_back(text.data());
    }
    env.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> c_args;
    for (auto& arg : args) {
        c_args.push_back(arg.data());
    }
    c_args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const auto start = Clock::now();
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, c_args[0], &actions, nullptr, c_args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        throw std::runtime_error(fmt::format("cannot run {}: {}", argv[0], std::strerror(spawned)));
    }
    int status = 0;
    rusage usage{};
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            throw std::runtime_error(fmt::format("wait for {}: {}", argv[0], std::strerror(errno)));
        }
    }
    ToolTime out{seconds_since(start), seconds(usage.ru_utime) + seconds(usage.ru_stime)};
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::ifstream err(err_file);
        std::string text;
        for (std::string line; std::getline(err, line);) {
            text += line + "\n";
        }
        throw std::runtime_error(fmt::format("{} failed (status {}): {}", argv[0], status, text));
    }
    return out;
}

// ---- the directory and the mapping ----------------------------------------------

// As sync_bench: groups whose index is a multiple of 3 are named by a rule
// of org (index / 3) % 3: the last few (small) groups give admin, some give
// member, the rest a project level or dataset access.
mapping::Mapping make_mapping(std::size_t groups) {
    mapping::Mapping result;
    result.file = "ldap_bench.toml";
    for (const auto& shape : k_orgs) {
        mapping::OrgMapping org;
        org.slug = std::string(shape.slug);
        org.name = std::string(shape.name);
        org.workforce = shape.workforce;
        org.owner = fmt::format("owner@{}", shape.domain);
        org.domains.push_back(mapping::DomainRule{std::string(shape.domain),
                                                  shape.include_subdomains, UserType::internal,
                                                  OrgRole::member});
        for (std::size_t p = 0; p < k_projects_per_org; ++p) {
            org.projects.push_back(
                mapping::ProjectDecl{fmt::format("project-{}", p),
                                     p % 4 == 0 ? Visibility::public_ : Visibility::private_,
                                     {p % 2 == 0 ? "vision" : "nlp", "research"}});
        }
        for (std::size_t d = 0; d < k_datasets_per_org; ++d) {
            org.datasets.push_back(mapping::DatasetDecl{
                fmt::format("dataset-{}", d),
                {fmt::format("project-{}", d % k_projects_per_org),
                 fmt::format("project-{}", (d * 7 + 3) % k_projects_per_org)}});
        }
        result.orgs.push_back(std::move(org));
    }
    for (std::size_t g = 0; g < groups; g += 3) {
        auto& org = result.orgs[(g / 3) % result.orgs.size()];
        std::string dn = group_dn(g);
        std::size_t rank = g / 9;
        if (g + std::max<std::size_t>(3, groups / 33) >= groups) {
            org.roles.push_back(mapping::RoleRule{std::string(k_source), dn, OrgRole::admin});
        } else if (rank % 10 == 5) {
            org.roles.push_back(mapping::RoleRule{std::string(k_source), dn, OrgRole::member});
        } else if (rank % 5 == 4) {
            auto access = rank % 2 == 0 ? DatasetAccess::read : DatasetAccess::write;
            org.grants.push_back(mapping::GrantRule{
                std::string(k_source), dn, std::nullopt,
                fmt::format("dataset-{}", rank % k_datasets_per_org), Level::read, access});
        } else {
            Level level = rank % 7 == 0 ? Level::admin : rank % 3 == 0 ? Level::write : Level::read;
            org.grants.push_back(mapping::GrantRule{
                std::string(k_source), dn, fmt::format("project-{}", rank % k_projects_per_org),
                std::nullopt, level, DatasetAccess::read});
        }
    }
    // What loading a mapping file sets from its text: the mapping is a
    // function of `groups`. Full syncs that find nothing changed rely on it
    // (sync::run_sync, settled sources).
    result.digest =
        fmt::format("{:016x}", config::fnv1a(fmt::format("ldap_bench groups={}", groups)));
    return result;
}

// The modifications before the incremental run: for `count` users (not the
// owners): 45% a new mail at the same domain, 45% a new displayName, 10%
// deleted (users in no group, so no group entry changes).
struct Modifications {
    std::string ldif;
    std::size_t mail = 0;
    std::size_t display_name = 0;
    std::size_t deleted = 0;
};

Modifications make_modifications(const Directory& dir, std::size_t count, Random& random) {
    Modifications out;
    const std::size_t deletes = count / 10;
    const std::size_t mails = (count - deletes) / 2;
    std::unordered_set<std::size_t> picked;
    auto pick = [&](bool groupless) {
        for (int attempt = 0; attempt < 1'000'000; ++attempt) {
            std::size_t i = k_orgs.size() + random.below(dir.users - k_orgs.size());
            if ((!groupless || !dir.in_a_group[i]) && picked.insert(i).second) {
                return i;
            }
        }
        throw std::runtime_error("cannot pick users to modify (too few users in no group)");
    };
    for (std::size_t n = 0; n < count; ++n) {
        if (n < deletes) {
            out.ldif += fmt::format("dn: {}\nchangetype: delete\n\n", user_dn(pick(true)));
            ++out.deleted;
        } else if (n < deletes + mails) {
            const std::size_t i = pick(false);
            const std::string& email = dir.emails[i];
            out.ldif +=
                fmt::format("dn: {}\nchangetype: modify\nreplace: mail\nmail: renamed{}{}\n\n",
                            user_dn(i), n, email.substr(email.find('@')));
            ++out.mail;
        } else {
            out.ldif += fmt::format(
                "dn: {}\nchangetype: modify\nreplace: displayName\ndisplayName: Renamed Person "
                "{}\n\n",
                user_dn(pick(false)), n);
            ++out.display_name;
        }
    }
    return out;
}

// ---- the run -----------------------------------------------------------------------

std::string counts_by_kind(const sync::Plan& plan) {
    std::map<std::string_view, std::size_t> by_kind;
    for (const auto& change : plan.changes) {
        ++by_kind[sync::to_string(change.kind)];
    }
    std::string out;
    for (const auto& [kind, count] : by_kind) {
        out += fmt::format("{}{} {}", out.empty() ? "" : ", ", kind, count);
    }
    return out.empty() ? "none" : out;
}

std::string_view verdict(bool met) {
    return met ? "PASS" : "MISS";
}

int run(const Options& options) {
    const std::size_t groups = scaled(options.groups, k_default_groups, options);
    const std::size_t memberships = scaled(options.memberships, k_default_memberships, options);
    Random random(options.seed);
    const fs::path dir = make_temp_dir("orgsync-ldap-bench");
    const fs::path ldif = dir / "directory.ldif";
    int status = 0;

    const auto generate_start = Clock::now();
    const double generate_cpu = process_cpu_seconds();
    Directory directory = write_directory(options.users, groups, memberships, random, ldif);
    mapping::Mapping mapping = make_mapping(groups);
    const double generate_s = seconds_since(generate_start);
    std::size_t role_rules = 0;
    std::size_t grant_rules = 0;
    for (const auto& org : mapping.orgs) {
        role_rules += org.roles.size();
        grant_rules += org.grants.size();
    }
    fmt::print(
        "target: {} users ({} at unmapped domains), {} groups, {} member values (largest group "
        "{}), {} orgs with {} role rules and {} grant rules for source {}; page size {}\n",
        directory.users, directory.unmapped, directory.groups, directory.memberships,
        directory.largest_group, mapping.orgs.size(), role_rules, grant_rules, k_source,
        options.page_size);
    fmt::print("{:<30} {:7.2f} s  (CPU: bench {:6.2f} s)  LDIF {:.1f} MiB\n", "generate LDIF",
               generate_s, process_cpu_seconds() - generate_cpu,
               static_cast<double>(directory.ldif_bytes) / (1024.0 * 1024.0));

    const auto load_start = Clock::now();
    testing::Slapd slapd(
        {.suffix = std::string(k_suffix), .memberof = false, .initial_ldif = ldif});
    fmt::print("{:<30} {:7.2f} s  slapd pid {}\n", "slapadd + start slapd",
               seconds_since(load_start), slapd.pid());
    if (!options.keep) {
        fs::remove(ldif);
    }

    ldap::LdapSourceConfig config;
    config.uris = {slapd.uri()};
    config.bind_dn = slapd.reader_dn();
    config.bind_password_file = slapd.reader_password_file();
    config.user_base = "ou=people," + std::string(k_suffix);
    config.group_base = "ou=groups," + std::string(k_suffix);
    config.timeout = std::chrono::seconds(120);
    config.page_size = options.page_size;
    const ldap::EntryMapper mapper(config, std::string(k_source));

    // The floor: ldapsearch with the connector's bases, filters and attributes.
    auto ldapsearch = [&](const std::string& base, const std::string& filter,
                          const std::vector<std::string>& attributes) {
        std::vector<std::string> argv{"ldapsearch",
                                      "-x",
                                      "-LLL",
                                      "-H",
                                      slapd.uri(),
                                      "-D",
                                      slapd.reader_dn(),
                                      "-y",
                                      slapd.reader_password_file().string(),
                                      "-E",
                                      fmt::format("pr={}/noprompt", options.page_size),
                                      "-b",
                                      base,
                                      filter};
        argv.insert(argv.end(), attributes.begin(), attributes.end());
        return argv;
    };
    const auto users_argv =
        ldapsearch(config.user_base, config.user_filter, mapper.user_attributes());
    const auto groups_argv =
        ldapsearch(config.group_base, config.group_filter, mapper.group_attributes());
    fmt::print("floor command: {} > /dev/null; {} > /dev/null\n", fmt::join(users_argv, " "),
               fmt::join(groups_argv, " "));
    struct FloorRun {
        double total = 0.0;
        ToolTime users;
        ToolTime groups;
        double server_cpu = 0.0;
    };
    std::vector<FloorRun> floor_runs;
    for (std::size_t r = 0; r < options.runs; ++r) {
        const double server_before = pid_cpu_seconds(slapd.pid());
        FloorRun run;
        run.users = time_tool(users_argv, dir / "ldapsearch.err");
        run.groups = time_tool(groups_argv, dir / "ldapsearch.err");
        run.total = run.users.seconds + run.groups.seconds;
        run.server_cpu = pid_cpu_seconds(slapd.pid()) - server_before;
        fmt::print(
            "  floor run {}: {:.2f} s (users {:.2f} s, groups {:.2f} s; ldapsearch CPU {:.2f} s, "
            "slapd CPU {:.2f} s)\n",
            r + 1, run.total, run.users.seconds, run.groups.seconds, run.users.cpu + run.groups.cpu,
            run.server_cpu);
        floor_runs.push_back(run);
    }
    const FloorRun floor = median(floor_runs, &FloorRun::total);
    fmt::print("{:<30} {:7.2f} s  (median of {}; ldapsearch CPU {:.2f} s, slapd CPU {:.2f} s)\n",
               "floor (ldapsearch)", floor.total, options.runs, floor.users.cpu + floor.groups.cpu,
               floor.server_cpu);

    // The connector's read alone.
    std::vector<Phase> reads;
    for (std::size_t r = 0; r < options.runs; ++r) {
        PhaseTimer timer(slapd.pid());
        ldap::ReadStats stats;
        auto data = ldap::read_source(config, k_source, stats);
        Phase phase = timer.finish();
        if (!data) {
            fmt::print(stderr, "ldap_bench: read_source failed: {}: {}\n",
                       ldap::to_string(data.error().kind), data.error().message);
            return 1;
        }
        print_phase(fmt::format("  read_source run {}", r + 1), phase,
                    fmt::format("{} users, {} groups, {} pages, {} unresolved", stats.users,
                                stats.groups, stats.pages, stats.unresolved_members));
        reads.push_back(phase);
        if (!options.dump.empty() && r == 0) {
            auto out = fmt::output_file(options.dump);
            for (const auto& user : data->users) {
                out.print("user {} {} {} {} {}\n", user.external_id, user.email, user.active,
                          user.display_name, user.attributes);
            }
            for (const auto& group : data->groups) {
                out.print("group {} {} {} {}\n", group.external_id, group.name, group.attributes,
                          fmt::join(group.member_ids, ","));
            }
            out.print(
                "stats users={} groups={} without_id={} without_email={} unresolved={} "
                "nested={} cycles={}\n",
                stats.users, stats.groups, stats.users_without_id, stats.users_without_email,
                stats.unresolved_members, stats.nested_groups, stats.cycles);
        }
    }
    const Phase read = median(reads, &Phase::seconds);
    print_phase("read_source (connector read)", read, fmt::format("median of {}", options.runs));
    if (options.read_only) {
        fmt::print(
            "RESULT users={} groups={} memberships={} page_size={} floor_s={:.3f} "
            "read_s={:.3f} read_cpu_s={:.3f} read_ratio={:.3f} peak_rss_mib={:.1f} "
            "status=ok\n",
            directory.users, directory.groups, directory.memberships, options.page_size,
            floor.total, read.seconds, read.cpu, read.seconds / floor.total, peak_rss_mib());
        if (!options.keep) {
            fs::remove_all(dir);
        }
        return 0;
    }

    auto opened = Store::open(dir / "orgsync.db");
    if (!opened) {
        fmt::print(stderr, "ldap_bench: cannot open the store: {}\n", opened.error().message);
        return 1;
    }
    Store& store = **opened;
    const sync::SourceSpec source{std::string(k_source), "ldap", ""};
    auto sync_phase = [&](std::string_view name, const ldap::LdapSyncOptions& sync_options)
        -> std::optional<std::pair<Phase, ldap::LdapSyncReport>> {
        PhaseTimer timer(slapd.pid());
        auto report = ldap::sync_ldap_source(store, mapping, source, config, sync_options);
        Phase phase = timer.finish();
        if (!report) {
            fmt::print(stderr, "ldap_bench: {}: {}\n", name, report.error().message);
            return std::nullopt;
        }
        print_phase(name, phase,
                    fmt::format("mode {}{}, {}: {} changes, {} held", report->mode,
                                report->reason.empty() ? "" : " (" + report->reason + ")",
                                report->run.result, report->run.plan.changes.size(),
                                report->run.plan.held.size()));
        fmt::print("    changes: {}\n", counts_by_kind(report->run.plan));
        if (report->run.result != "applied") {
            fmt::print(stderr, "ldap_bench: {} was {}: {}\n", name, report->run.result,
                       report->run.message);
            status = 1;
        }
        return std::pair{phase, std::move(*report)};
    };

    auto first = sync_phase("(a) first full sync", {});
    if (!first) {
        return 1;
    }
    const std::size_t first_changes = first->second.run.plan.changes.size();
    first->second = {};
    // (b) can be repeated (nothing changes), so it is the median of --runs
    // as the floor is.
    std::vector<Phase> no_changes;
    for (std::size_t r = 0; r < options.runs; ++r) {
        auto again = sync_phase(fmt::format("  (b) run {}", r + 1), {.full = true});
        if (!again) {
            return 1;
        }
        if (!again->second.run.plan.empty()) {
            fmt::print(stderr, "ldap_bench: error: the no-change sync changed something\n");
            status = 1;
        }
        no_changes.push_back(again->first);
    }
    const Phase no_change = median(no_changes, &Phase::seconds);
    print_phase("(b) no-change full sync", no_change, fmt::format("median of {}", options.runs));

    Modifications modifications = make_modifications(directory, options.changes, random);
    const auto modify_start = Clock::now();
    slapd.modify(modifications.ldif);
    fmt::print("{:<30} {:7.2f} s  {} new mail, {} new displayName, {} deleted (ldapmodify)\n",
               "modify", seconds_since(modify_start), modifications.mail,
               modifications.display_name, modifications.deleted);
    auto incremental = sync_phase("(c) incremental sync", {});
    if (!incremental) {
        return 1;
    }
    const std::string incremental_mode = incremental->second.mode;
    if (incremental_mode != "incremental") {
        fmt::print(stderr, "ldap_bench: error: the run after {} changes read {} ({})\n",
                   options.changes, incremental_mode, incremental->second.reason);
        status = 1;
    }

    const double peak = peak_rss_mib();
    // (d), no time target: a full sync after the mapping changed (here only
    // its digest, so the plan is empty) plans every record again, since
    // neither the cursor nor the settled record applies. Last, so that the
    // peak above is that of (a) to (c); the memory verdict is over all four.
    mapping.digest += " changed";
    auto replanned = sync_phase("(d) full sync, mapping changed", {});
    if (!replanned) {
        return 1;
    }
    if (!replanned->second.run.plan.empty()) {
        fmt::print(stderr, "ldap_bench: error: the mapping change alone changed something\n");
        status = 1;
    }
    const double replan_peak = peak_rss_mib();
    const double full_ratio = first->first.seconds / floor.total;
    const double no_change_ratio = no_change.seconds / floor.total;
    const double incremental_share = incremental->first.seconds / first->first.seconds;
    fmt::print("\n{:<28} {:>9} {:>12} {:>14} {:>8}\n", "figure", "seconds", "vs floor", "target",
               "verdict");
    fmt::print("{:<28} {:9.2f} {:>12} {:>14} {:>8}\n", "floor (ldapsearch, median)", floor.total,
               "1.00x", "", "");
    fmt::print("{:<28} {:9.2f} {:>11.2f}x {:>14} {:>8}\n", "read_source (median)", read.seconds,
               read.seconds / floor.total, "", "");
    fmt::print("{:<28} {:9.2f} {:>11.2f}x {:>14} {:>8}\n", "(a) first full sync",
               first->first.seconds, full_ratio, "<= 1.5x floor",
               verdict(full_ratio <= k_full_ratio_target));
    fmt::print("{:<28} {:9.2f} {:>11.2f}x {:>14} {:>8}\n", "(b) no-change full sync",
               no_change.seconds, no_change_ratio, "<= 1.2x floor",
               verdict(no_change_ratio <= k_no_change_ratio_target));
    fmt::print("{:<28} {:9.2f} {:>10.1f}%a {:>14} {:>8}\n", "(c) incremental sync",
               incremental->first.seconds, incremental_share * 100.0, "< 5% of (a)",
               verdict(incremental_share < k_incremental_share_target));
    fmt::print("{:<28} {:7.1f} MiB\n", "peak RSS (a) to (c)", peak);
    fmt::print("{:<28} {:9.2f} {:>11.2f}x {:>14} {:>8}\n", "(d) mapping changed",
               replanned->first.seconds, replanned->first.seconds / floor.total, "", "");
    fmt::print("{:<28} {:7.1f} MiB {:>12} {:>14} {:>8}\n", "peak RSS (a) to (d)", replan_peak, "",
               "< 200 MB", verdict(replan_peak < k_peak_rss_target_mib));
    fmt::print(
        "RESULT users={} groups={} memberships={} page_size={} floor_s={:.3f} "
        "floor_users_s={:.3f} floor_groups_s={:.3f} read_s={:.3f} read_cpu_s={:.3f} "
        "full_s={:.3f} full_ratio={:.3f} full_changes={} no_change_s={:.3f} "
        "no_change_ratio={:.3f} incremental_s={:.3f} incremental_share={:.4f} "
        "incremental_mode={} incremental_changes={} peak_rss_mib={:.1f} "
        "rss_after_read_mib={:.1f} full_pass={} no_change_pass={} incremental_pass={} "
        "rss_pass={} replan_s={:.3f} replan_peak_rss_mib={:.1f} status={}\n",
        directory.users, directory.groups, directory.memberships, options.page_size, floor.total,
        floor.users.seconds, floor.groups.seconds, read.seconds, read.cpu, first->first.seconds,
        full_ratio, first_changes, no_change.seconds, no_change_ratio, incremental->first.seconds,
        incremental_share, incremental_mode, incremental->second.run.plan.changes.size(), peak,
        reads.back().peak_rss, full_ratio <= k_full_ratio_target,
        no_change_ratio <= k_no_change_ratio_target, incremental_share < k_incremental_share_target,
        replan_peak < k_peak_rss_target_mib, replanned->first.seconds, replan_peak,
        status == 0 ? "ok" : "failed");
    std::fflush(stdout);

    opened->reset();  // close the store before its directory goes
    if (options.keep) {
        fmt::print("kept {}\n", dir.string());
    } else {
        fs::remove_all(dir);
    }
    return status;
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
        fmt::print(stderr, "ldap_bench: {}\n", error.what());
        return 1;
    }
}
