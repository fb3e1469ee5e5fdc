// sync_bench: the sync benchmark `make bench` runs after authorize_bench
// (docs/BENCHMARKS.md, "Sync: plan and apply").
//
// 1. Builds a mapping in C++ (three orgs with email domains, role rules and
//    grant rules that name about a third of the groups of the LDAP source
//    "corp", plus projects and datasets) and generates that source's mirror:
//    by default 100,000 users, 1,000 groups and 300,000 group memberships
//    (a few large groups, many small ones).
// 2. Opens a fresh store in a temp directory and times, separately:
//    - sync::prepare_plan on the empty store;
//    - sync::run_sync with the mirror as fetched: the first full apply (it
//      plans again internally, replaces the stored mirror and records the run);
//    - a no-change sync::prepare_plan, which must come back empty;
//    - a no-change sync::run_sync;
//    - sync::run_sync_delta with 100 changed users (an incremental run).
// 3. Prints peak RSS (getrusage ru_maxrss) after each phase, the change
//    counts, and one machine-readable RESULT line.
//
// Flags shrink the run, e.g. `sync_bench --users 2000` (groups and
// memberships follow --users unless given).

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
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
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bench/bench_support.hpp"
#include "bench/org_shapes.hpp"
#include "config/fingerprint.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"
#include "sync/run.hpp"

namespace orgsync::bench {
namespace {

using namespace orgsync::directory;

constexpr std::size_t k_default_users = 100'000;
constexpr std::size_t k_default_groups = 1'000;
constexpr std::size_t k_default_memberships = 300'000;
constexpr std::string_view k_source = "corp";
constexpr std::size_t k_projects_per_org = 20;
constexpr std::size_t k_datasets_per_org = 6;

// The guidance of the issue, for the verdicts printed at the end.
constexpr double k_first_apply_target_s = 1.0;
constexpr double k_no_change_plan_target_s = 0.3;
constexpr double k_peak_rss_target_mib = 200.0;

// ---- options ------------------------------------------------------------------

struct Options {
    std::size_t users = k_default_users;
    std::optional<std::size_t> groups;
    std::optional<std::size_t> memberships;
    std::uint64_t seed = 42;
    bool keep = false;
};

constexpr std::string_view k_usage =
    "usage: sync_bench [options]\n"
    "  --users N        users in the source mirror (default 100000)\n"
    "  --groups N       groups (default 1000, or scaled with --users)\n"
    "  --memberships N  group memberships (default 300000, or scaled with --users)\n"
    "  --seed N         random seed (default 42)\n"
    "  --keep           keep the temp directory with the store\n";

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
        constexpr std::array<std::string_view, 4> k_value_flags{"--users", "--groups",
                                                                "--memberships", "--seed"};
        if (std::find(k_value_flags.begin(), k_value_flags.end(), flag) == k_value_flags.end()) {
            fmt::print(stderr, "sync_bench: unknown option {}\n{}", flag, k_usage);
            return std::nullopt;
        }
        if (i + 1 >= args.size()) {
            fmt::print(stderr, "sync_bench: {} needs a value\n{}", flag, k_usage);
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
        } else if (flag == "--seed") {
            ok = parse_number(value, options.seed);
        }
        if (!ok) {
            fmt::print(stderr, "sync_bench: bad value \"{}\" for {}\n", value, flag);
            return std::nullopt;
        }
    }
    if (options.users < 100) {
        fmt::print(stderr, "sync_bench: need at least 100 users\n");
        return std::nullopt;
    }
    return options;
}

// A default count scaled by users / 100,000 when --users shrinks the run.
std::size_t scaled(std::optional<std::size_t> given, std::size_t by_default,
                   const Options& options) {
    if (given) {
        return *given;
    }
    double ratio = static_cast<double>(options.users) / static_cast<double>(k_default_users);
    return std::max<std::size_t>(
        3, static_cast<std::size_t>(std::llround(static_cast<double>(by_default) * ratio)));
}

// ---- helpers ------------------------------------------------------------------

// CPU time (user + system) of the process.
double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& time) {
        return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::uintmax_t directory_bytes(const std::filesystem::path& dir) {
    std::uintmax_t total = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        if (entry.is_regular_file(error)) {
            total += entry.file_size(error);
        }
    }
    return total;
}

// ---- the mapping and the mirror ---------------------------------------------------

std::string group_dn(std::size_t index) {
    return fmt::format("cn=team-{:04},ou=groups,dc=corp,dc=example", index);
}

// Groups whose index is a multiple of 3 are named by a rule of org
// (index / 3) % 3: the last few (small) groups give admin, some give
// member, the rest give a project level or dataset access. The others are mirrored but
// unused, as in a real directory.
mapping::Mapping make_mapping(std::size_t groups) {
    mapping::Mapping result;
    result.file = "sync_bench.toml";
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
        std::size_t rank = g / 9;  // rank within the org's named groups
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
        fmt::format("{:016x}", config::fnv1a(fmt::format("sync_bench groups={}", groups)));
    return result;
}

struct Mirror {
    sync::SourceData data;
    std::size_t memberships = 0;
    std::size_t largest_group = 0;
    std::size_t unmapped = 0;
    std::size_t inactive = 0;
};

Mirror make_mirror(const Options& options, std::size_t groups, std::size_t memberships,
                   Random& random) {
    Mirror mirror;
    auto& users = mirror.data.users;
    users.reserve(options.users);
    for (std::size_t i = 0; i < options.users; ++i) {
        SourceUser user;
        user.source = std::string(k_source);
        user.external_id = fmt::format("uid-{:08x}", i * 2654435761u % 4294967291u);
        user.display_name = fmt::format("Person {}", i);
        user.email = generated_address(random, i, mirror.unmapped);
        user.active = i < k_orgs.size() || !random.chance(0.01);
        mirror.inactive += user.active ? 0 : 1;
        user.attributes = fmt::format(R"({{"title":"Engineer","employeeNumber":"{}"}})", i);
        users.push_back(std::move(user));
    }

    auto& source_groups = mirror.data.groups;
    source_groups.resize(groups);
    for (std::size_t g = 0; g < groups; ++g) {
        source_groups[g].source = std::string(k_source);
        source_groups[g].external_id = fmt::format("gid-{:05}", g);
        source_groups[g].name = group_dn(g);
        source_groups[g].attributes = R"({"objectClass":"groupOfNames"})";
    }
    std::size_t target = std::min(memberships, groups * options.users / 2);
    std::unordered_set<std::uint64_t> seen;
    seen.reserve(target);
    while (mirror.memberships < target) {
        std::size_t group = random.skewed_below(groups);
        std::size_t member = random.below(options.users);
        if (!seen.insert(static_cast<std::uint64_t>(group) * options.users + member).second) {
            continue;
        }
        source_groups[group].member_ids.push_back(users[member].external_id);
        ++mirror.memberships;
    }
    for (const auto& group : source_groups) {
        mirror.largest_group = std::max(mirror.largest_group, group.member_ids.size());
    }
    return mirror;
}

// ---- phases ----------------------------------------------------------------------

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

struct Phase {
    std::string name;
    double seconds = 0.0;
    double cpu_seconds = 0.0;
    double peak_rss = 0.0;
};

class PhaseTimer {
  public:
    explicit PhaseTimer(std::string name)
        : m_name(std::move(name)), m_start(Clock::now()), m_cpu_start(process_cpu_seconds()) {}

    Phase finish() const {
        return Phase{m_name, seconds_since(m_start), process_cpu_seconds() - m_cpu_start,
                     peak_rss_mib()};
    }

  private:
    std::string m_name;
    Clock::time_point m_start;
    double m_cpu_start;
};

void print_phase(const Phase& phase, std::string_view detail) {
    fmt::print("{:<22} {:8.2f} s (CPU {:6.2f} s)  peak RSS {:7.1f} MiB, RSS now {:7.1f} MiB  {}\n",
               phase.name, phase.seconds, phase.cpu_seconds, phase.peak_rss, current_rss_mib(),
               detail);
    std::fflush(stdout);
}

std::string_view verdict(bool met) {
    return met ? "met" : "NOT met";
}

int run(const Options& options) {
    const std::size_t groups = scaled(options.groups, k_default_groups, options);
    const std::size_t memberships = scaled(options.memberships, k_default_memberships, options);
    Random random(options.seed);

    auto generate = PhaseTimer("generate");
    mapping::Mapping mapping = make_mapping(groups);
    Mirror mirror = make_mirror(options, groups, memberships, random);
    // run_sync takes an optional: the mirror is moved into one once instead
    // of being copied at every call.
    const std::optional<sync::SourceData> fetched(std::move(mirror.data));
    const sync::SourceData& data = *fetched;
    std::size_t role_rules = 0;
    std::size_t grant_rules = 0;
    for (const auto& org : mapping.orgs) {
        role_rules += org.roles.size();
        grant_rules += org.grants.size();
    }
    fmt::print(
        "target: {} users ({} at unmapped domains, {} disabled), {} groups, {} group memberships "
        "(largest group {}), {} orgs with {} role rules and {} grant rules for source {}\n",
        data.users.size(), mirror.unmapped, mirror.inactive, data.groups.size(), mirror.memberships,
        mirror.largest_group, mapping.orgs.size(), role_rules, grant_rules, k_source);
    print_phase(generate.finish(), "");

    auto dir = make_temp_dir("orgsync-sync-bench");
    int status = 0;
    {
        auto opened = Store::open(dir / "orgsync.db");
        if (!opened) {
            fmt::print(stderr, "sync_bench: cannot open the store: {}\n", opened.error().message);
            return 1;
        }
        Store& store = **opened;
        const sync::SourceSpec source{std::string(k_source), "ldap", ""};
        const sync::RunOptions run_options{};

        // (1) The first plan, against the empty store.
        auto first_plan_timer = PhaseTimer("plan (empty store)");
        auto first_plan = sync::prepare_plan(store, mapping, source, data);
        Phase first_plan_phase = first_plan_timer.finish();
        if (!first_plan) {
            fmt::print(stderr, "sync_bench: prepare_plan failed: {}\n", first_plan.error().message);
            return 1;
        }
        print_phase(first_plan_phase, fmt::format("{} changes, {} held", first_plan->changes.size(),
                                                  first_plan->held.size()));
        fmt::print("  changes: {}\n", counts_by_kind(*first_plan));
        fmt::print("  users: {} mapped, {} unmapped, {} with an invalid address\n",
                   first_plan->summary.mapped_users, first_plan->summary.unmapped_users,
                   first_plan->summary.invalid_emails);
        if (!first_plan->problem.empty()) {
            fmt::print(stderr, "sync_bench: the first plan cannot be applied: {}\n",
                       first_plan->problem);
            return 1;
        }
        const std::size_t first_changes = first_plan->changes.size();
        first_plan = {};  // the run makes its own

        // (2) The first full apply: run_sync plans again, replaces the
        // mirror, applies and records the run.
        auto apply_timer = PhaseTimer("run_sync (first)");
        auto applied = sync::run_sync(store, mapping, source, fetched, run_options);
        Phase apply_phase = apply_timer.finish();
        if (!applied) {
            fmt::print(stderr, "sync_bench: run_sync failed: {}\n", applied.error().message);
            return 1;
        }
        print_phase(apply_phase, fmt::format("{}: {} changes applied", applied->result,
                                             applied->plan.changes.size()));
        if (applied->result != "applied") {
            fmt::print(stderr, "sync_bench: the first run was {}: {}\n", applied->result,
                       applied->message);
            return 1;
        }
        const std::size_t applied_changes = applied->plan.changes.size();
        applied = {};
        auto snapshot = store.snapshot();
        std::size_t members = 0;
        std::size_t group_members = 0;
        for (const auto& [slug, view] : snapshot->orgs) {
            members += view->members.size();
            for (const auto& [email, member] : view->members) {
                group_members += member.groups.size();
            }
        }
        snapshot.reset();
        auto outbox = store.outbox_depth();
        fmt::print(
            "  store now: {} orgs, {} memberships, {} group memberships in the snapshot; {} "
            "outbox rows (events of a bulk write share a row); files {:.1f} MiB\n",
            store.snapshot()->orgs.size(), members, group_members, outbox ? *outbox : -1,
            static_cast<double>(directory_bytes(dir)) / (1024.0 * 1024.0));

        // (3) The same mirror again: the plan must be empty.
        auto again_timer = PhaseTimer("plan (no change)");
        auto again = sync::prepare_plan(store, mapping, source, data);
        Phase again_phase = again_timer.finish();
        if (!again) {
            fmt::print(stderr, "sync_bench: no-change prepare_plan failed: {}\n",
                       again.error().message);
            return 1;
        }
        print_phase(again_phase,
                    fmt::format("{} changes, {} held", again->changes.size(), again->held.size()));
        if (!again->empty()) {
            fmt::print(stderr,
                       "sync_bench: error: the no-change plan is not empty: {} changes ({}), {} "
                       "held\n",
                       again->changes.size(), counts_by_kind(*again), again->held.size());
            status = 1;
        }
        const std::size_t again_changes = again->changes.size() + again->held.size();
        again = {};

        // (4) A no-change run: the mirror is unchanged and the store untouched
        // since (2), so the source is settled and nothing is planned.
        auto rerun_timer = PhaseTimer("run_sync (no change)");
        auto rerun = sync::run_sync(store, mapping, source, fetched, run_options);
        Phase rerun_phase = rerun_timer.finish();
        if (!rerun) {
            fmt::print(stderr, "sync_bench: no-change run_sync failed: {}\n",
                       rerun.error().message);
            return 1;
        }
        print_phase(rerun_phase,
                    fmt::format("{}: {} changes", rerun->result, rerun->plan.changes.size()));
        if (rerun->result != "applied" || !rerun->plan.empty()) {
            fmt::print(stderr, "sync_bench: error: the no-change run was {} with {} changes\n",
                       rerun->result, rerun->plan.changes.size());
            status = 1;
        }

        // (5) An incremental run: 100 users changed in the directory (new
        // address, disabled, or moved into an admin group).
        sync::SourceDelta delta;
        const std::size_t changed = std::min<std::size_t>(100, data.users.size() / 10);
        SourceGroup admins = data.groups.back();  // named by an admin rule
        for (std::size_t i = 0; i < changed; ++i) {
            SourceUser user = data.users[k_orgs.size() + i * 7];
            switch (i % 3) {
                case 0:
                    user.email = fmt::format("moved{}@{}", i, k_orgs[i % k_orgs.size()].domain);
                    break;
                case 1:
                    user.active = !user.active;
                    break;
                default:
                    admins.member_ids.push_back(user.external_id);
                    break;
            }
            delta.upsert_users.push_back(std::move(user));
        }
        delta.upsert_groups.push_back(std::move(admins));
        delta.cursor = "bench-cursor-1";
        auto delta_timer = PhaseTimer("run_sync_delta (100)");
        auto by_delta = sync::run_sync_delta(store, mapping, source, delta, run_options);
        Phase delta_phase = delta_timer.finish();
        if (!by_delta) {
            fmt::print(stderr, "sync_bench: run_sync_delta failed: {}\n", by_delta.error().message);
            return 1;
        }
        print_phase(delta_phase,
                    fmt::format("{}: {} changes ({})", by_delta->result,
                                by_delta->plan.changes.size(), counts_by_kind(by_delta->plan)));
        if (by_delta->result != "applied") {
            fmt::print(stderr, "sync_bench: error: the delta run was {}: {}\n", by_delta->result,
                       by_delta->message);
            status = 1;
        }

        double peak = peak_rss_mib();
        bool apply_met = apply_phase.seconds <= k_first_apply_target_s;
        bool plan_met = again_phase.seconds <= k_no_change_plan_target_s;
        bool rss_met = peak <= k_peak_rss_target_mib;
        fmt::print(
            "guidance: first apply <= {:.1f} s: {:.2f} s, {}; no-change plan <= {:.1f} s: "
            "{:.2f} s, {}; peak RSS <= {:.0f} MiB: {:.1f} MiB, {}\n",
            k_first_apply_target_s, apply_phase.seconds, verdict(apply_met),
            k_no_change_plan_target_s, again_phase.seconds, verdict(plan_met),
            k_peak_rss_target_mib, peak, verdict(rss_met));
        fmt::print(
            "RESULT users={} groups={} memberships={} first_plan_s={:.3f} first_plan_changes={} "
            "first_run_s={:.3f} first_run_changes={} no_change_plan_s={:.3f} "
            "no_change_plan_changes={} no_change_run_s={:.3f} delta_run_s={:.3f} "
            "delta_changes={} peak_rss_mib={:.1f} "
            "rss_after_first_plan_mib={:.1f} rss_after_first_run_mib={:.1f} status={}\n",
            data.users.size(), data.groups.size(), mirror.memberships, first_plan_phase.seconds,
            first_changes, apply_phase.seconds, applied_changes, again_phase.seconds, again_changes,
            rerun_phase.seconds, delta_phase.seconds, by_delta->plan.changes.size(), peak,
            first_plan_phase.peak_rss, apply_phase.peak_rss, status == 0 ? "ok" : "failed");
        std::fflush(stdout);
    }

    if (options.keep) {
        fmt::print("kept {}\n", dir.string());
    } else {
        std::filesystem::remove_all(dir);
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
        fmt::print(stderr, "sync_bench: {}\n", error.what());
        return 1;
    }
}
