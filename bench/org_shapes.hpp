#pragma once

// The orgs the generated data of sync_bench, ldap_bench and load_bench is
// spread over, and the address of each generated person. Seeded through
// Random, so a run sees the same people as the last.

#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "bench/bench_support.hpp"

namespace orgsync::bench {

struct OrgShape {
    std::string_view slug;
    std::string_view name;
    std::string_view domain;
    bool include_subdomains;
    bool workforce;
    double share;  // of the generated people
};

// Three orgs; 5% of the people are at addresses no org claims (partners,
// public mail providers) and only join an org through a group rule.
inline constexpr std::array<OrgShape, 3> k_orgs{{
    {"acme", "Acme Corp", "acme.com", true, true, 0.50},
    {"beta", "Beta Research", "beta.org", false, false, 0.30},
    {"gamma", "Gamma Labs", "gamma.io", true, false, 0.15},
}};
inline constexpr std::array<std::string_view, 4> k_unmapped_domains{
    "partner.example", "gmail.com", "contractors.example.net", "yahoo.com"};

// The address of the `index`th person: at an org's domain by its share
// (sometimes at a subdomain the org's rule includes), else at a domain no
// org claims (counted in `unmapped`). The first k_orgs.size() people are
// the org owners; 2% of the addresses come with capitals, as directories
// often hold them.
inline std::string generated_address(Random& random, std::size_t index, std::size_t& unmapped) {
    double u = random.unit();
    double cumulative = 0.0;
    std::string domain;
    for (const auto& shape : k_orgs) {
        cumulative += shape.share;
        if (u < cumulative) {
            domain = shape.include_subdomains && random.chance(0.1)
                         ? fmt::format("eng.{}", shape.domain)
                         : std::string(shape.domain);
            break;
        }
    }
    if (domain.empty()) {
        domain = std::string(k_unmapped_domains[index % k_unmapped_domains.size()]);
        ++unmapped;
    }
    return index < k_orgs.size() ? fmt::format("owner@{}", k_orgs[index].domain)
           : random.chance(0.02) ? fmt::format("First.Last{}@{}", index, domain)
                                 : fmt::format("user{}@{}", index, domain);
}

}  // namespace orgsync::bench
