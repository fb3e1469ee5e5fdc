#pragma once

// The generated LDAP directory of the benchmarks that sync one (ldap_bench,
// load_bench): users with addresses at three orgs' domains (and 5% at
// domains no org claims) under ou=people, groupOfNames groups under
// ou=groups with a few large groups and many small ones; streamed as LDIF
// for Slapd's `initial_ldif` (tests/support/slapd.hpp). Seeded, so a run
// sees the same directory as the last.

#include <fmt/format.h>
#include <fmt/os.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "bench/bench_support.hpp"
#include "bench/org_shapes.hpp"

namespace orgsync::bench {

inline constexpr std::string_view k_suffix = "dc=example,dc=com";
inline constexpr std::size_t k_default_users = 100'000;
inline constexpr std::size_t k_default_groups = 1'000;
inline constexpr std::size_t k_default_memberships = 300'000;

// `by_default` (a count for k_default_users users) scaled to `users`, at least 3.
inline std::size_t scaled_to(std::size_t users, std::size_t by_default) {
    double ratio = static_cast<double>(users) / static_cast<double>(k_default_users);
    return std::max<std::size_t>(
        3, static_cast<std::size_t>(std::llround(static_cast<double>(by_default) * ratio)));
}

inline std::string user_dn(std::size_t index) {
    return fmt::format("uid=u{:06},ou=people,{}", index, k_suffix);
}

inline std::string group_dn(std::size_t index) {
    return fmt::format("cn=team-{:04},ou=groups,{}", index, k_suffix);
}

struct Directory {
    std::size_t users = 0;
    std::size_t groups = 0;
    std::size_t memberships = 0;
    std::size_t largest_group = 0;
    std::size_t unmapped = 0;
    std::vector<std::string> emails;  // by user index
    std::vector<bool> in_a_group;     // by user index
    std::uintmax_t ldif_bytes = 0;
};

// Streams the LDIF of `users` users, `groups` groups and about
// `memberships` member values to `path` (seeded through `random`).
inline Directory write_directory(std::size_t users, std::size_t groups, std::size_t memberships,
                                 Random& random, const std::filesystem::path& path) {
    Directory dir;
    dir.users = users;
    dir.groups = groups;
    dir.emails.reserve(users);
    dir.in_a_group.assign(users, false);
    auto out = fmt::output_file(path.string());
    for (std::size_t i = 0; i < users; ++i) {
        std::string email = generated_address(random, i, dir.unmapped);
        out.print(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: u{:06}\ncn: Person {}\nsn: {}\n"
            "displayName: Person {}\nmail: {}\n\n",
            user_dn(i), i, i, i, i, email);
        dir.emails.push_back(std::move(email));
    }

    // Every group gets one member (groupOfNames requires one), the rest go
    // to groups skewed towards the low indices.
    std::vector<std::vector<std::uint32_t>> members(groups);
    std::unordered_set<std::uint64_t> seen;
    const std::size_t target = std::min(memberships, groups * users / 2);
    seen.reserve(target);
    auto add = [&](std::size_t group, std::size_t member) {
        if (!seen.insert(static_cast<std::uint64_t>(group) * users + member).second) {
            return;
        }
        members[group].push_back(static_cast<std::uint32_t>(member));
        dir.in_a_group[member] = true;
        ++dir.memberships;
    };
    for (std::size_t g = 0; g < groups; ++g) {
        add(g, random.below(users));
    }
    while (dir.memberships < target) {
        add(random.skewed_below(groups), random.below(users));
    }
    for (std::size_t g = 0; g < groups; ++g) {
        out.print("dn: {}\nobjectClass: groupOfNames\ncn: team-{:04}\n", group_dn(g), g);
        for (const std::uint32_t member : members[g]) {
            out.print("member: {}\n", user_dn(member));
        }
        out.print("\n");
        dir.largest_group = std::max(dir.largest_group, members[g].size());
    }
    out.close();
    dir.ldif_bytes = std::filesystem::file_size(path);
    return dir;
}

}  // namespace orgsync::bench
