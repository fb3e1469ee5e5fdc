// authorize_bench: the benchmark `make bench` runs (docs/BENCHMARKS.md).
//
// 1. Populates a real store in a fresh temp directory through the public
//    Store/Transaction API: by default 100,000 users, 1,000 groups, 10,000
//    projects, 300,000 group memberships and 2,000 datasets over 10 orgs of
//    uneven size (one org holds 40% of everything), one Store::write per org.
// 2. Times a closed loop of in-process authorize(*store.snapshot(), request)
//    calls on the main thread over a pre-generated pool of requests with a
//    realistic mix (project, org and dataset actions, outsiders).
// 3. Measures the write path: a reader thread keeps deciding while the main
//    thread does single small writes (add/remove a group member in the
//    largest org); reports write latency and the longest gap between two
//    consecutive decisions on the reader, and how long the reader spent
//    freeing superseded snapshots when it held the last reference.
// 4. Times each kind of single-user write a SCIM push or an admin makes, one
//    per Store::write in the largest org: a member added, removed, their
//    role changed, deactivated and reactivated, added to and removed from a
//    group, given and losing a direct project grant.
//
// Wall-clock rates are printed next to the deciding thread's CPU time: on a
// shared machine the CPU-second figures are the steadier ones.
//
// Flags shrink the run, e.g. `authorize_bench --users 1000 --seconds 1`
// (groups, projects, memberships and datasets follow --users unless given).

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bench/bench_support.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"

namespace orgsync::bench {
namespace {

using namespace orgsync::directory;

constexpr std::size_t k_default_users = 100'000;
constexpr std::size_t k_default_groups = 1'000;
constexpr std::size_t k_default_projects = 10'000;
constexpr std::size_t k_default_memberships = 300'000;
constexpr std::size_t k_default_datasets = 2'000;
constexpr std::string_view k_source = "bench";
constexpr std::string_view k_writer_source = "bench-writer";

// ---- options ------------------------------------------------------------------

struct Options {
    std::size_t users = k_default_users;
    std::optional<std::size_t> groups;
    std::optional<std::size_t> projects;
    std::optional<std::size_t> memberships;
    std::optional<std::size_t> datasets;
    std::size_t orgs = 10;
    std::size_t requests = 200'000;
    std::size_t writes = 200;
    std::size_t kind_writes = 100;
    double seconds = 5.0;
    double warmup = 1.0;
    std::uint64_t seed = 42;
    bool keep = false;
};

constexpr std::string_view k_usage =
    "usage: authorize_bench [options]\n"
    "  --users N        users (default 100000)\n"
    "  --groups N       groups (default 1000, or scaled with --users)\n"
    "  --projects N     projects (default 10000, or scaled with --users)\n"
    "  --memberships N  group memberships (default 300000, or scaled with --users)\n"
    "  --datasets N     datasets (default 2000, or scaled with --users)\n"
    "  --orgs N         orgs (default 10; the first holds 40%)\n"
    "  --requests N     size of the request pool (default 200000)\n"
    "  --seconds S      measured decision loop (default 5)\n"
    "  --warmup S       warm-up before measuring (default 1)\n"
    "  --writes N       single writes during the stall test (default 200)\n"
    "  --kind-writes N  single writes of each kind in the write-latency test (default 100)\n"
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
        constexpr std::array<std::string_view, 12> k_value_flags{
            "--users",    "--groups", "--projects",    "--memberships", "--datasets", "--orgs",
            "--requests", "--writes", "--kind-writes", "--seconds",     "--warmup",   "--seed"};
        if (std::find(k_value_flags.begin(), k_value_flags.end(), flag) == k_value_flags.end()) {
            fmt::print(stderr, "authorize_bench: unknown option {}\n{}", flag, k_usage);
            return std::nullopt;
        }
        if (i + 1 >= args.size()) {
            fmt::print(stderr, "authorize_bench: {} needs a value\n{}", flag, k_usage);
            return std::nullopt;
        }
        std::string_view value = args[++i];
        bool ok = false;
        auto size_option = [&](std::optional<std::size_t>& target) {
            std::size_t number = 0;
            ok = parse_number(value, number);
            target = number;
        };
        if (flag == "--users") {
            ok = parse_number(value, options.users);
        } else if (flag == "--groups") {
            size_option(options.groups);
        } else if (flag == "--projects") {
            size_option(options.projects);
        } else if (flag == "--memberships") {
            size_option(options.memberships);
        } else if (flag == "--datasets") {
            size_option(options.datasets);
        } else if (flag == "--orgs") {
            ok = parse_number(value, options.orgs) && options.orgs > 0;
        } else if (flag == "--requests") {
            ok = parse_number(value, options.requests) && options.requests > 0;
        } else if (flag == "--writes") {
            ok = parse_number(value, options.writes);
        } else if (flag == "--kind-writes") {
            ok = parse_number(value, options.kind_writes);
        } else if (flag == "--seconds") {
            ok = parse_number(value, options.seconds) && options.seconds > 0;
        } else if (flag == "--warmup") {
            ok = parse_number(value, options.warmup) && options.warmup >= 0;
        } else if (flag == "--seed") {
            ok = parse_number(value, options.seed);
        }
        if (!ok) {
            fmt::print(stderr, "authorize_bench: bad value \"{}\" for {}\n", value, flag);
            return std::nullopt;
        }
    }
    if (options.users < 3 * options.orgs) {
        fmt::print(stderr, "authorize_bench: need at least 3 users per org\n");
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
    return static_cast<std::size_t>(std::llround(static_cast<double>(by_default) * ratio));
}

// ---- helpers ------------------------------------------------------------------

// Thrown out of a Store::write body on the first failed call: the store rolls
// the transaction back and returns it as an error, which ends the benchmark.
class BenchFailure : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

template <typename T>
T ok(Expected<T> result, std::string_view what) {
    if (!result) {
        throw BenchFailure(fmt::format("{}: {} ({})", what, result.error().message,
                                       to_string(result.error().code)));
    }
    return std::move(*result);
}

void ok(Expected<void> result, std::string_view what) {
    if (!result) {
        throw BenchFailure(fmt::format("{}: {} ({})", what, result.error().message,
                                       to_string(result.error().code)));
    }
}

// CPU time (user + system) of the calling thread.
double thread_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    auto seconds = [](const timeval& time) {
        return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Splits `total` by `weights` (largest remainder), giving each part at least `minimum`.
std::vector<std::size_t> apportion(std::size_t total, const std::vector<double>& weights,
                                   std::size_t minimum) {
    double sum = 0.0;
    for (double weight : weights) {
        sum += weight;
    }
    std::vector<std::size_t> parts(weights.size());
    std::vector<std::pair<double, std::size_t>> remainders;
    std::size_t assigned = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        double exact = static_cast<double>(total) * weights[i] / sum;
        parts[i] = static_cast<std::size_t>(exact);
        remainders.emplace_back(exact - static_cast<double>(parts[i]), i);
        assigned += parts[i];
    }
    std::sort(remainders.begin(), remainders.end(), std::greater<>());
    for (std::size_t i = 0; assigned < total && i < remainders.size(); ++i, ++assigned) {
        ++parts[remainders[i].second];
    }
    for (auto& part : parts) {
        part = std::max(part, minimum);
    }
    return parts;
}

// ---- the populated directory ----------------------------------------------------

struct OrgPlan {
    std::size_t users = 0;
    std::size_t groups = 0;
    std::size_t projects = 0;
    std::size_t memberships = 0;
    std::size_t datasets = 0;
};

// What the benchmark created in one org, kept to generate requests and writes.
struct OrgData {
    std::string slug;
    std::string domain;
    OrgId id = 0;
    std::vector<std::string> emails;  // member index -> email; 0 is the owner
    std::vector<UserId> user_ids;
    std::vector<std::size_t> admins;   // the owner and the admins
    std::vector<std::size_t> members;  // role member
    std::vector<std::size_t> guests;
    std::vector<GroupId> group_ids;
    std::vector<std::vector<std::size_t>> group_members;
    std::unordered_set<std::uint64_t> in_group;  // group * users + member
    std::vector<std::string> project_slugs;
    std::vector<std::vector<std::size_t>> project_users;   // first admin and direct grantees
    std::vector<std::vector<std::size_t>> project_groups;  // granted groups
    std::vector<std::string> dataset_slugs;
    std::vector<std::vector<std::size_t>> dataset_users;  // granted guests
    std::size_t memberships = 0;
    std::size_t project_grants = 0;
    std::size_t dataset_grants = 0;
};

std::vector<double> org_weights(std::size_t orgs) {
    // One org with 40%, the rest split unevenly (9, 8, ..., 1 parts of 60%).
    if (orgs == 1) {
        return {1.0};
    }
    std::vector<double> weights{0.4};
    double parts = static_cast<double>((orgs - 1) * orgs) / 2.0;
    for (std::size_t i = 1; i < orgs; ++i) {
        weights.push_back(0.6 * static_cast<double>(orgs - i) / parts);
    }
    return weights;
}

Level pick_level(Random& random, double p_read, double p_write) {
    double u = random.unit();
    return u < p_read ? Level::read : u < p_read + p_write ? Level::write : Level::admin;
}

const std::vector<std::string> k_tags{"vision",   "nlp",     "speech", "tabular",
                                      "robotics", "medical", "retail", "research"};

// Fills one org inside one transaction; `data` records what was created.
void populate_org(Transaction& tx, const OrgPlan& plan, std::size_t org_index, OrgData& data,
                  Random& random) {
    const std::string source(tx.source());
    data.id = ok(tx.create_org(data.slug, fmt::format("Org {}", org_index), false,
                               fmt::format("owner@{}", data.domain)),
                 "create_org");

    // Members: the owner, ~1% admins, ~80% members (internal), the rest guests (external).
    std::size_t admins =
        static_cast<std::size_t>(std::llround(0.01 * static_cast<double>(plan.users)));
    std::size_t members =
        static_cast<std::size_t>(std::llround(0.80 * static_cast<double>(plan.users)));
    members = std::min(members, plan.users - 1 - std::min(admins, plan.users - 1));
    data.emails.reserve(plan.users);
    data.user_ids.reserve(plan.users);
    for (std::size_t i = 0; i < plan.users; ++i) {
        MembershipAssertion assertion{source, UserType::internal, OrgRole::member};
        std::string email;
        if (i == 0) {
            email = fmt::format("owner@{}", data.domain);
            data.admins.push_back(i);
        } else if (i <= admins) {
            email = fmt::format("admin{}@{}", i, data.domain);
            assertion.role = OrgRole::admin;
            data.admins.push_back(i);
        } else if (i <= admins + members) {
            email = fmt::format("user{}@{}", i, data.domain);
            data.members.push_back(i);
        } else {
            email = fmt::format("guest{}-{}@partner{}.example.org", org_index, i, i % 50);
            assertion = MembershipAssertion{source, UserType::external, OrgRole::guest};
            data.guests.push_back(i);
        }
        UserId id = ok(tx.upsert_user(email, fmt::format("Person {}", i)), "upsert_user");
        if (i != 0) {
            ok(tx.assert_membership(data.id, id, assertion), "assert_membership");
        }
        data.emails.push_back(std::move(email));
        data.user_ids.push_back(id);
    }

    for (std::size_t g = 0; g < plan.groups; ++g) {
        data.group_ids.push_back(
            ok(tx.create_group(data.id, fmt::format("cn=team-{},ou=groups,dc={}", g, data.slug)),
               "create_group"));
    }
    data.group_members.resize(plan.groups);
    std::size_t target = std::min(plan.memberships, plan.groups * plan.users / 2);
    while (data.memberships < target) {
        std::size_t group = random.skewed_below(plan.groups);
        std::size_t member = random.below(plan.users);
        if (!data.in_group.insert(group * plan.users + member).second) {
            continue;
        }
        ok(tx.add_group_member(data.group_ids[group], data.user_ids[member], source),
           "add_group_member");
        data.group_members[group].push_back(member);
        ++data.memberships;
    }

    std::vector<std::size_t> internal = data.admins;
    internal.insert(internal.end(), data.members.begin(), data.members.end());
    std::vector<ProjectId> project_ids;
    for (std::size_t p = 0; p < plan.projects; ++p) {
        std::string slug = fmt::format("project-{}", p);
        Visibility visibility = random.chance(0.3) ? Visibility::public_ : Visibility::private_;
        std::size_t first_admin = random.chance(0.3) || data.members.empty()
                                      ? random.pick(data.admins)
                                      : random.pick(data.members);
        ProjectId project = ok(tx.create_project(data.id, slug, visibility, {random.pick(k_tags)},
                                                 data.user_ids[first_admin]),
                               "create_project");
        project_ids.push_back(project);
        std::vector<std::size_t> users{first_admin};
        std::vector<std::size_t> groups;
        std::size_t group_grants = std::min<std::size_t>(2 + random.below(2), plan.groups);
        while (groups.size() < group_grants) {
            std::size_t group = random.below(plan.groups);
            if (std::find(groups.begin(), groups.end(), group) != groups.end()) {
                continue;
            }
            groups.push_back(group);
            ok(tx.grant_project(project, Principal{PrincipalKind::group, data.group_ids[group]},
                                pick_level(random, 0.45, 0.40), source),
               "grant_project (group)");
        }
        std::size_t direct = std::min<std::size_t>(1 + random.below(4), plan.users - 1);
        for (std::size_t attempt = 0; users.size() < direct + 1 && attempt < 20; ++attempt) {
            bool guest = !data.guests.empty() && random.chance(0.3);
            std::size_t user = guest ? random.pick(data.guests) : random.pick(internal);
            if (std::find(users.begin(), users.end(), user) != users.end()) {
                continue;
            }
            users.push_back(user);
            Level level = guest ? pick_level(random, 0.6, 0.4) : pick_level(random, 0.5, 0.35);
            ok(tx.grant_project(project, Principal{PrincipalKind::user, data.user_ids[user]}, level,
                                source),
               "grant_project (user)");
        }
        data.project_grants += 1 + groups.size() + users.size() - 1;
        data.project_slugs.push_back(std::move(slug));
        data.project_users.push_back(std::move(users));
        data.project_groups.push_back(std::move(groups));
    }

    for (std::size_t d = 0; d < plan.datasets; ++d) {
        std::string slug = fmt::format("dataset-{}", d);
        DatasetId dataset = ok(tx.create_dataset(data.id, slug), "create_dataset");
        ok(tx.attach_dataset(dataset, random.pick(project_ids)), "attach_dataset");
        std::vector<std::size_t> users;
        std::size_t grants = data.guests.empty() ? 0 : 1 + random.below(3);
        for (std::size_t attempt = 0; users.size() < grants && attempt < 20; ++attempt) {
            std::size_t guest = random.pick(data.guests);
            if (std::find(users.begin(), users.end(), guest) != users.end()) {
                continue;
            }
            users.push_back(guest);
            DatasetAccess access = random.chance(0.7) ? DatasetAccess::read : DatasetAccess::write;
            ok(tx.grant_dataset(dataset, Principal{PrincipalKind::user, data.user_ids[guest]},
                                access, source),
               "grant_dataset (user)");
            ++data.dataset_grants;
        }
        if (random.chance(0.25)) {
            ok(tx.grant_dataset(dataset,
                                Principal{PrincipalKind::group, random.pick(data.group_ids)},
                                DatasetAccess::read, source),
               "grant_dataset (group)");
            ++data.dataset_grants;
        }
        data.dataset_slugs.push_back(std::move(slug));
        data.dataset_users.push_back(std::move(users));
    }
}

// ---- requests -------------------------------------------------------------------

enum class Category : std::uint8_t { project, org, dataset, outsider };
constexpr std::array<std::string_view, 4> k_category_names{"project", "org", "dataset", "outsider"};

struct ActionNames {
    std::vector<std::string> read, write, admin;  // project actions by the level they need
    std::vector<std::string> org_common;          // org.metrics.read, org.projects.create
    std::vector<std::string> org_other;
    std::string dataset_read, dataset_write;
};

ActionNames action_names() {
    ActionNames names;
    for (const ActionInfo& info : all_actions()) {
        std::string name(info.name);
        switch (info.scope) {
            case ActionScope::org:
                (info.min_role == OrgRole::member ? names.org_common : names.org_other)
                    .push_back(std::move(name));
                break;
            case ActionScope::project:
                (info.min_level == Level::read    ? names.read
                 : info.min_level == Level::write ? names.write
                                                  : names.admin)
                    .push_back(std::move(name));
                break;
            case ActionScope::dataset:
                (info.min_access == DatasetAccess::read ? names.dataset_read
                                                        : names.dataset_write) = std::move(name);
                break;
        }
    }
    return names;
}

class RequestGenerator {
  public:
    RequestGenerator(const std::vector<OrgData>& orgs, Random& random)
        : m_orgs(orgs), m_random(random), m_names(action_names()) {
        double sum = 0.0;
        for (const auto& org : m_orgs) {
            sum += static_cast<double>(org.emails.size());
            m_cumulative.push_back(sum);
        }
    }

    // ~60% project, ~25% org, ~10% dataset actions, ~5% outsiders.
    std::pair<Request, Category> next() {
        double u = m_random.unit();
        if (u < 0.60) {
            return {project_request(), Category::project};
        }
        if (u < 0.85) {
            return {org_request(), Category::org};
        }
        if (u < 0.95) {
            return {dataset_request(), Category::dataset};
        }
        return {outsider_request(), Category::outsider};
    }

  private:
    const OrgData& pick_org() {
        double u = m_random.unit() * m_cumulative.back();
        auto it = std::upper_bound(m_cumulative.begin(), m_cumulative.end(), u);
        auto index = static_cast<std::size_t>(it - m_cumulative.begin());
        return m_orgs[std::min(index, m_orgs.size() - 1)];
    }

    // Now and then the domain arrives in upper case; authorize canonicalises it.
    std::string email_of(const OrgData& org, std::size_t member) {
        const std::string& email = org.emails[member];
        if (!m_random.chance(0.05)) {
            return email;
        }
        std::string shouted = email;
        for (auto i = shouted.find('@'); i < shouted.size(); ++i) {
            if (shouted[i] >= 'a' && shouted[i] <= 'z') {
                shouted[i] = static_cast<char>(shouted[i] - 'a' + 'A');
            }
        }
        return shouted;
    }

    std::string project_action() {
        double u = m_random.unit();
        return u < 0.6   ? m_random.pick(m_names.read)
               : u < 0.9 ? m_random.pick(m_names.write)
                         : m_random.pick(m_names.admin);
    }

    Request project_request() {
        const OrgData& org = pick_org();
        Request request;
        request.org = org.slug;
        request.action = project_action();
        if (m_random.chance(0.01)) {  // a project that does not exist (not_found)
            request.project = "no-such-project";
            request.user = email_of(org, m_random.below(org.emails.size()));
            return request;
        }
        std::size_t project = m_random.below(org.project_slugs.size());
        request.project = org.project_slugs[project];
        std::size_t member = 0;
        double u = m_random.unit();
        const auto& groups = org.project_groups[project];
        if (u < 0.25) {  // someone granted directly
            member = m_random.pick(org.project_users[project]);
        } else if (u < 0.45 && !groups.empty()) {  // someone in a granted group
            const auto& in_group = org.group_members[m_random.pick(groups)];
            member = in_group.empty() ? m_random.pick(org.project_users[project])
                                      : m_random.pick(in_group);
        } else if (u < 0.55) {
            member = m_random.pick(org.admins);
        } else {
            member = m_random.below(org.emails.size());
        }
        request.user = email_of(org, member);
        return request;
    }

    Request org_request() {
        const OrgData& org = pick_org();
        Request request;
        request.org = org.slug;
        request.user = email_of(org, m_random.chance(0.05) ? m_random.pick(org.admins)
                                                           : m_random.below(org.emails.size()));
        request.action = m_random.chance(0.55) ? m_random.pick(m_names.org_common)
                                               : m_random.pick(m_names.org_other);
        return request;
    }

    Request dataset_request() {
        const OrgData& org = pick_org();
        Request request;
        request.org = org.slug;
        std::size_t dataset = m_random.below(org.dataset_slugs.size());
        request.dataset = org.dataset_slugs[dataset];
        const auto& granted = org.dataset_users[dataset];
        double u = m_random.unit();
        std::size_t member = 0;
        if (u < 0.6 && !granted.empty()) {
            member = m_random.pick(granted);
        } else if (u < 0.8 && !org.guests.empty()) {
            member = m_random.pick(org.guests);
        } else {
            member = m_random.below(org.emails.size());
        }
        request.user = email_of(org, member);
        request.action = m_random.chance(0.7) ? m_names.dataset_read : m_names.dataset_write;
        return request;
    }

    // Not a member of the org: an unknown address, or a member of another org.
    Request outsider_request() {
        const OrgData& org = pick_org();
        Request request;
        request.org = org.slug;
        if (m_orgs.size() > 1 && m_random.chance(0.5)) {
            const OrgData* other = &org;
            while (other == &org) {
                other = &m_orgs[m_random.below(m_orgs.size())];
            }
            request.user = other->emails[m_random.below(other->emails.size())];
        } else {
            request.user = fmt::format("nobody{}@unknown{}.example.net", m_random.below(1'000'000),
                                       m_random.below(100));
        }
        if (m_random.chance(0.7)) {
            request.project = org.project_slugs[m_random.below(org.project_slugs.size())];
            request.action = project_action();
        } else {
            request.action = m_random.pick(m_names.org_common);
        }
        return request;
    }

    const std::vector<OrgData>& m_orgs;
    Random& m_random;
    ActionNames m_names;
    std::vector<double> m_cumulative;
};

// ---- decision loops -------------------------------------------------------------

struct Tally {
    std::uint64_t decisions = 0;
    std::uint64_t allows = 0;
    std::uint64_t errors = 0;
    std::uint64_t reason_bytes = 0;  // consumed so no decision can be optimised away
    double seconds = 0.0;            // wall clock
    double cpu_seconds = 0.0;        // CPU time of the deciding thread (the machine may be shared)

    double per_second() const { return static_cast<double>(decisions) / seconds; }
    double per_cpu_second() const { return static_cast<double>(decisions) / cpu_seconds; }
    double ns_per_decision() const { return seconds * 1e9 / static_cast<double>(decisions); }
    double cpu_ns_per_decision() const {
        return cpu_seconds * 1e9 / static_cast<double>(decisions);
    }
    double allow_share() const {
        return static_cast<double>(allows) / static_cast<double>(decisions);
    }
};

void count(Tally& tally, const Expected<Decision>& decision) {
    if (decision) {
        tally.allows += decision->allow ? 1U : 0U;
        tally.reason_bytes += decision->reason.size();
    } else {
        ++tally.errors;
        tally.reason_bytes += decision.error().message.size();
    }
}

// A closed loop over `pool` for `seconds`; the clock is read every batch.
// With `pinned`, every decision uses that one snapshot instead of asking the
// store for the current one.
Tally decide_for(const Store& store, const std::vector<Request>& pool, double seconds,
                 const Snapshot* pinned = nullptr) {
    constexpr std::size_t k_batch = 256;
    Tally tally;
    std::size_t next = 0;
    double cpu_start = thread_cpu_seconds();
    auto start = Clock::now();
    auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    do {
        for (std::size_t i = 0; i < k_batch; ++i) {
            const Request& request = pool[next];
            next = next + 1 == pool.size() ? 0 : next + 1;
            if (pinned != nullptr) {
                count(tally, authorize(*pinned, request));
            } else {
                count(tally, authorize(*store.snapshot(), request));
            }
        }
        tally.decisions += k_batch;
    } while (Clock::now() < deadline);
    tally.seconds = seconds_since(start);
    tally.cpu_seconds = thread_cpu_seconds() - cpu_start;
    return tally;
}

struct ReaderStats {
    Tally tally;
    std::int64_t max_gap_ns = 0;  // longest time between two consecutive decisions
    std::uint64_t gaps_over_1ms = 0;
    // Decisions whose snapshot ref was the last one: dropping it frees the
    // views a write superseded, on this (the reader's) thread.
    std::uint64_t releases = 0;
    std::int64_t max_gap_releasing_ns = 0;
    std::int64_t max_release_ns = 0;  // the drop alone
};

// Decides until `stop`, timing every decision; run on its own thread.
void reader_loop(const Store& store, const std::vector<Request>& pool,
                 const std::atomic<bool>& stop, ReaderStats& stats) {
    std::size_t next = 0;
    double cpu_start = thread_cpu_seconds();
    auto start = Clock::now();
    auto previous = start;
    while (!stop.load(std::memory_order_relaxed)) {
        auto snapshot = store.snapshot();
        count(stats.tally, authorize(*snapshot, pool[next]));
        next = next + 1 == pool.size() ? 0 : next + 1;
        bool releasing = snapshot.use_count() == 1;
        auto before_release = Clock::now();
        snapshot.reset();
        auto now = Clock::now();
        std::int64_t gap =
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - previous).count();
        previous = now;
        ++stats.tally.decisions;
        stats.max_gap_ns = std::max(stats.max_gap_ns, gap);
        stats.gaps_over_1ms += gap > 1'000'000 ? 1U : 0U;
        if (releasing) {
            ++stats.releases;
            stats.max_gap_releasing_ns = std::max(stats.max_gap_releasing_ns, gap);
            stats.max_release_ns = std::max(
                stats.max_release_ns,
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - before_release).count());
        }
    }
    stats.tally.seconds = seconds_since(start);
    stats.tally.cpu_seconds = thread_cpu_seconds() - cpu_start;
}

double ms(std::int64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// Latencies of one kind of single-user write, in milliseconds.
struct WriteKind {
    std::string_view name;
    std::string_view key;  // in the RESULT_WRITES line
    std::vector<double> latencies;
    std::vector<double> cpu;  // the writing thread's CPU time, without waits for the disk
};

// Times `count` single writes of each kind a SCIM push or an admin makes,
// each its own Store::write in `org`. Writes come in pairs that undo each
// other (a member added then removed, a role raised then lowered, …) so the
// org ends as it started. Returns an error message, or an empty string.
std::string time_write_kinds(Store& store, OrgData& org, Random& random, std::size_t count,
                             std::vector<WriteKind>& kinds) {
    kinds = {{"member added", "member_added", {}, {}},
             {"member removed", "member_removed", {}, {}},
             {"role changed", "role_changed", {}, {}},
             {"deactivated/reactivated", "active_changed", {}, {}},
             {"group member added/removed", "group_member", {}, {}},
             {"user grant set/revoked", "user_grant", {}, {}}};
    std::string error;
    auto timed = [&](WriteKind& kind, const std::function<Expected<void>(Transaction&)>& body) {
        if (!error.empty()) {
            return;
        }
        double cpu_begin = thread_cpu_seconds();
        auto begin = Clock::now();
        auto written = store.write(k_writer_source, body);
        kind.latencies.push_back(seconds_since(begin) * 1e3);
        kind.cpu.push_back((thread_cpu_seconds() - cpu_begin) * 1e3);
        if (!written) {
            error = fmt::format("{}: {}", kind.name, written.error().message);
        }
    };
    const std::vector<std::size_t>& members = org.members.empty() ? org.admins : org.members;
    std::size_t users_in_org = org.emails.size();
    for (std::size_t i = 0; i < count && error.empty(); ++i) {
        // A new user joins and leaves again (only this source asserts them,
        // so the retraction ends the membership).
        std::string email = fmt::format("new{}@{}", i, org.domain);
        UserId joined = 0;
        timed(kinds[0], [&](Transaction& tx) -> Expected<void> {
            auto user = tx.upsert_user(email, "New Person");
            if (!user) {
                return std::unexpected(user.error());
            }
            joined = *user;
            return tx.assert_membership(
                org.id, joined,
                MembershipAssertion{std::string(tx.source()), UserType::internal, OrgRole::member});
        });
        timed(kinds[1], [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(org.id, joined, tx.source());
        });

        UserId member = org.user_ids[random.pick(members)];
        for (OrgRole role : {OrgRole::admin, OrgRole::guest}) {
            timed(kinds[2], [&](Transaction& tx) -> Expected<void> {
                if (role == OrgRole::admin) {
                    return tx.assert_membership(
                        org.id, member,
                        MembershipAssertion{std::string(tx.source()), UserType::internal, role});
                }
                return tx.retract_membership(org.id, member, tx.source());
            });
        }
        for (bool active : {false, true}) {
            timed(kinds[3], [&](Transaction& tx) -> Expected<void> {
                return tx.set_user_active(member, active);
            });
        }

        std::size_t group = 0;
        std::size_t in_group = 0;
        do {
            group = random.below(org.group_ids.size());
            in_group = random.below(users_in_org);
        } while (org.in_group.contains(group * users_in_org + in_group));
        for (bool add : {true, false}) {
            timed(kinds[4], [&](Transaction& tx) -> Expected<void> {
                GroupId id = org.group_ids[group];
                UserId user = org.user_ids[in_group];
                return add ? tx.add_group_member(id, user, tx.source())
                           : tx.remove_group_member(id, user, tx.source());
            });
        }

        std::string project_slug = random.pick(org.project_slugs);
        for (bool grant : {true, false}) {
            timed(kinds[5], [&](Transaction& tx) -> Expected<void> {
                auto project = tx.find_project_id(org.id, project_slug);
                if (!project) {
                    return std::unexpected(project.error());
                }
                Principal principal{PrincipalKind::user, member};
                return grant ? tx.grant_project(**project, principal, Level::write, tx.source())
                             : tx.revoke_project(**project, principal, tx.source());
            });
        }
    }
    return error;
}

// The benchmark's temp directory, removed on every exit path unless --keep.
struct TempDir {
    std::filesystem::path path;
    bool keep = false;

    TempDir(std::filesystem::path dir, bool keep_it) : path(std::move(dir)), keep(keep_it) {}
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        if (keep) {
            fmt::print("kept {}\n", path.string());
            return;
        }
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

int run(const Options& options) {
    OrgPlan total{options.users, scaled(options.groups, k_default_groups, options),
                  scaled(options.projects, k_default_projects, options),
                  scaled(options.memberships, k_default_memberships, options),
                  scaled(options.datasets, k_default_datasets, options)};
    auto weights = org_weights(options.orgs);
    auto users = apportion(total.users, weights, 3);
    auto groups = apportion(total.groups, weights, 1);
    auto projects = apportion(total.projects, weights, 1);
    auto memberships = apportion(total.memberships, weights, 0);
    auto datasets = apportion(total.datasets, weights, 1);

    TempDir temp_dir(make_temp_dir("orgsync-bench"), options.keep);
    const std::filesystem::path& dir = temp_dir.path;
    fmt::print("authorize_bench: store in {}\n", dir.string());
    fmt::print(
        "target: {} users, {} groups, {} projects, {} group memberships, {} datasets, {} orgs\n",
        total.users, total.groups, total.projects, total.memberships, total.datasets, options.orgs);
    std::fflush(stdout);

    int status = 0;
    {
        auto opened = Store::open(dir / "orgsync.db");
        if (!opened) {
            fmt::print(stderr, "authorize_bench: cannot open store: {}\n", opened.error().message);
            return 1;
        }
        Store& store = **opened;
        Random random(options.seed);

        // ---- populate: one write per org ----
        std::vector<OrgData> orgs(options.orgs);
        auto populate_start = Clock::now();
        for (std::size_t o = 0; o < options.orgs; ++o) {
            OrgData& data = orgs[o];
            data.slug = fmt::format("org-{:02}", o);
            data.domain = fmt::format("{}.example.com", data.slug);
            OrgPlan plan{users[o], groups[o], projects[o], memberships[o], datasets[o]};
            auto org_start = Clock::now();
            auto written = store.write(k_source, [&](Transaction& tx) -> Expected<void> {
                populate_org(tx, plan, o, data, random);
                return {};
            });
            if (!written) {
                fmt::print(stderr, "authorize_bench: populating {} failed: {}\n", data.slug,
                           written.error().message);
                return 1;
            }
            fmt::print(
                "populate {}: {:>6} users {:>4} groups {:>5} projects {:>6} memberships "
                "{:>5} project grants {:>4} datasets {:>5} dataset grants  {:7.2f} s\n",
                data.slug, data.emails.size(), data.group_ids.size(), data.project_slugs.size(),
                data.memberships, data.project_grants, data.dataset_slugs.size(),
                data.dataset_grants, seconds_since(org_start));
            std::fflush(stdout);
        }
        double populate_seconds = seconds_since(populate_start);

        // What the published snapshot holds.
        auto snapshot = store.snapshot();
        std::size_t view_members = 0;
        std::size_t view_groups = 0;
        std::size_t view_projects = 0;
        std::size_t view_datasets = 0;
        std::size_t view_memberships = 0;
        for (const auto& [slug, org] : snapshot->orgs) {
            view_members += org->members.size();
            view_groups += org->groups->names.size();
            view_projects += org->projects.size();
            view_datasets += org->datasets.size();
            for (const auto& [email, member] : org->members) {
                view_memberships += member.groups.size();
            }
        }
        snapshot.reset();
        double store_mib = 0.0;  // the database and its WAL
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            std::error_code size_error;
            auto bytes = entry.file_size(size_error);
            store_mib += size_error ? 0.0 : static_cast<double>(bytes) / (1024.0 * 1024.0);
        }
        fmt::print(
            "populated in {:.2f} s: snapshot holds {} members, {} groups, {} projects, {} group "
            "memberships, {} datasets; store files {:.1f} MiB; RSS now {:.1f} MiB\n",
            populate_seconds, view_members, view_groups, view_projects, view_memberships,
            view_datasets, store_mib, current_rss_mib());

        // ---- request pool ----
        std::vector<Request> pool;
        RequestGenerator generator(orgs, random);
        std::array<std::vector<Request>, 4> by_category;
        for (std::size_t i = 0; i < options.requests; ++i) {
            auto [request, category] = generator.next();
            by_category[static_cast<std::size_t>(category)].push_back(request);
            pool.push_back(std::move(request));
        }
        fmt::print(
            "request pool: {} requests ({} project, {} org, {} dataset, {} outsider); RSS now "
            "{:.1f} MiB\n",
            pool.size(), by_category[0].size(), by_category[1].size(), by_category[2].size(),
            by_category[3].size(), current_rss_mib());
        std::fflush(stdout);

        // ---- closed decision loop on the main thread ----
        if (options.warmup > 0) {
            decide_for(store, pool, options.warmup);
        }
        Tally main = decide_for(store, pool, options.seconds);
        fmt::print(
            "decisions: {} in {:.2f} s on 1 thread = {:.0f} decisions/s, {:.1f} ns/decision, "
            "allow share {:.1f}%, errors {:.2f}% (reason bytes {})\n",
            main.decisions, main.seconds, main.per_second(), main.ns_per_decision(),
            100.0 * main.allow_share(),
            100.0 * static_cast<double>(main.errors) / static_cast<double>(main.decisions),
            main.reason_bytes);
        fmt::print(
            "  thread CPU {:.2f} s of {:.2f} s wall: {:.0f} decisions per CPU-second, {:.1f} CPU "
            "ns/decision\n",
            main.cpu_seconds, main.seconds, main.per_cpu_second(), main.cpu_ns_per_decision());
        std::fflush(stdout);

        double part_seconds = std::max(0.25, options.seconds / 5.0);
        for (std::size_t c = 0; c < by_category.size(); ++c) {
            if (by_category[c].empty()) {
                continue;
            }
            Tally part = decide_for(store, by_category[c], part_seconds);
            fmt::print(
                "  {:<8} requests only: {:>8.0f} decisions/s, {:6.1f} ns/decision ({:6.1f} CPU "
                "ns), allow share {:5.1f}%\n",
                k_category_names[c], part.per_second(), part.ns_per_decision(),
                part.cpu_ns_per_decision(), 100.0 * part.allow_share());
        }
        {
            auto pinned = store.snapshot();
            Tally part = decide_for(store, pool, part_seconds, pinned.get());
            fmt::print(
                "  full mix, one pinned snapshot (no store.snapshot() per call): "
                "{:.0f} decisions/s, {:.1f} ns/decision ({:.1f} CPU ns)\n",
                part.per_second(), part.ns_per_decision(), part.cpu_ns_per_decision());
        }
        double rss_after_reads = peak_rss_mib();
        fmt::print("peak RSS so far {:.1f} MiB (RSS now {:.1f} MiB)\n", rss_after_reads,
                   current_rss_mib());
        std::fflush(stdout);

        // ---- decisions while writing ----
        auto reader_phase = [&](auto&& main_thread_work) {
            ReaderStats stats;
            std::atomic<bool> stop{false};
            std::thread reader([&] { reader_loop(store, pool, stop, stats); });
            main_thread_work();
            stop.store(true, std::memory_order_relaxed);
            reader.join();
            return stats;
        };
        double baseline_seconds = std::min(options.seconds, 2.0);
        ReaderStats baseline = reader_phase(
            [&] { std::this_thread::sleep_for(std::chrono::duration<double>(baseline_seconds)); });
        fmt::print(
            "reader alone ({:.1f} s, no writes): {:.0f} decisions/s, max gap {:.3f} ms, gaps "
            "> 1 ms: {}\n",
            baseline.tally.seconds, baseline.tally.per_second(), ms(baseline.max_gap_ns),
            baseline.gaps_over_1ms);
        std::fflush(stdout);

        OrgData& largest = orgs.front();
        std::vector<double> latencies;
        std::string write_error;
        double writer_cpu_seconds = 0.0;
        ReaderStats during = reader_phase([&] {
            double cpu_start = thread_cpu_seconds();
            std::size_t users_in_org = largest.emails.size();
            for (std::size_t w = 0; w < options.writes; w += 2) {
                std::size_t group = 0;
                std::size_t member = 0;
                do {
                    group = random.below(largest.group_ids.size());
                    member = random.below(users_in_org);
                } while (largest.in_group.contains(group * users_in_org + member));
                for (std::size_t step = 0; step < 2 && w + step < options.writes; ++step) {
                    auto begin = Clock::now();
                    auto written =
                        store.write(k_writer_source, [&](Transaction& tx) -> Expected<void> {
                            GroupId id = largest.group_ids[group];
                            UserId user = largest.user_ids[member];
                            return step == 0 ? tx.add_group_member(id, user, tx.source())
                                             : tx.remove_group_member(id, user, tx.source());
                        });
                    latencies.push_back(seconds_since(begin) * 1e3);
                    if (!written) {
                        write_error = written.error().message;
                        return;
                    }
                }
            }
            writer_cpu_seconds = thread_cpu_seconds() - cpu_start;
        });
        if (!write_error.empty()) {
            fmt::print(stderr, "authorize_bench: write failed: {}\n", write_error);
            status = 1;
        }
        std::sort(latencies.begin(), latencies.end());
        double write_p50 = latencies.empty() ? 0.0 : percentile(latencies, 0.50);
        double write_p99 = latencies.empty() ? 0.0 : percentile(latencies, 0.99);
        double write_max = latencies.empty() ? 0.0 : latencies.back();
        fmt::print(
            "writes: {} single writes (add/remove a member of a group in {}, {} members): "
            "p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms; writer CPU {:.2f} ms per write\n",
            latencies.size(), largest.slug, largest.emails.size(), write_p50, write_p99, write_max,
            latencies.empty() ? 0.0
                              : writer_cpu_seconds * 1e3 / static_cast<double>(latencies.size()));
        fmt::print(
            "reader during writes ({:.1f} s): {:.0f} decisions/s, max gap {:.3f} ms, gaps > 1 "
            "ms: {}\n",
            during.tally.seconds, during.tally.per_second(), ms(during.max_gap_ns),
            during.gaps_over_1ms);
        fmt::print(
            "  {} decisions dropped the last ref to a superseded snapshot (freeing it on the "
            "reader): drop alone max {:.3f} ms, those decisions' max gap {:.3f} ms\n",
            during.releases, ms(during.max_release_ns), ms(during.max_gap_releasing_ns));

        // ---- single writes, by kind ----
        std::vector<WriteKind> kinds;
        auto kinds_start = Clock::now();
        if (auto failed = time_write_kinds(store, largest, random, options.kind_writes, kinds);
            !failed.empty()) {
            fmt::print(stderr, "authorize_bench: write failed: {}\n", failed);
            status = 1;
        }
        fmt::print("single writes by kind in {} ({} members), {} each, {:.1f} s:\n", largest.slug,
                   largest.emails.size(), options.kind_writes, seconds_since(kinds_start));
        std::string kinds_result;
        for (auto& kind : kinds) {
            if (kind.latencies.empty()) {
                continue;
            }
            std::sort(kind.latencies.begin(), kind.latencies.end());
            std::sort(kind.cpu.begin(), kind.cpu.end());
            fmt::print(
                "  {:<28} {:>4} writes: p50 {:8.3f} ms, p99 {:8.3f} ms, max {:8.3f} ms; CPU p50 "
                "{:8.3f} ms\n",
                kind.name, kind.latencies.size(), percentile(kind.latencies, 0.50),
                percentile(kind.latencies, 0.99), kind.latencies.back(),
                percentile(kind.cpu, 0.50));
            kinds_result +=
                fmt::format(" {0}_p50_ms={1:.3f} {0}_p99_ms={2:.3f} {0}_cpu_p50_ms={3:.3f}",
                            kind.key, percentile(kind.latencies, 0.50),
                            percentile(kind.latencies, 0.99), percentile(kind.cpu, 0.50));
        }
        fmt::print("RESULT_WRITES{}\n", kinds_result);
        std::fflush(stdout);

        double peak = peak_rss_mib();
        fmt::print("peak RSS {:.1f} MiB (after the decision loops: {:.1f} MiB)\n", peak,
                   rss_after_reads);
        fmt::print(
            "RESULT decisions_per_sec={:.0f} decisions_per_cpu_sec={:.0f} ns_per_decision={:.1f} "
            "allow_share={:.3f} "
            "peak_rss_mib={:.1f} populate_s={:.2f} write_p50_ms={:.2f} write_p99_ms={:.2f} "
            "write_max_ms={:.2f} reader_max_gap_ms={:.3f} reader_baseline_max_gap_ms={:.3f} "
            "reader_max_release_ms={:.3f}\n",
            main.per_second(), main.per_cpu_second(), main.ns_per_decision(), main.allow_share(),
            peak, populate_seconds, write_p50, write_p99, write_max, ms(during.max_gap_ns),
            ms(baseline.max_gap_ns), ms(during.max_release_ns));
        std::fflush(stdout);
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
        fmt::print(stderr, "authorize_bench: {}\n", error.what());
        return 1;
    }
}
