// The mapping file (mapping/mapping.hpp, parse_mapping) on arbitrary text:
// TOML parsing, the option tables and every validation rule. Properties:
// nothing throws; a refused file has errors with messages, sorted by
// position; an accepted one parses the same again and holds only canonical
// values: slugs, owner and fallback emails, canonical domains each resolving
// to its own org and never a public mail provider, LDAP groups as DNs in
// normal form.

#include "mapping/mapping.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "connectors/ldap/dn.hpp"
#include "directory/email.hpp"
#include "directory/model.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace orgsync::mapping;
using orgsync::fuzz::require;

// The sources of etc/orgsyncd.toml.
const std::vector<SourceRef> k_sources{
    {.name = "corp", .type = "ldap"},
    {.name = "okta", .type = "scim", .org = "acme"},
};

bool is_canonical_email(const std::string& email) {
    const auto canonical = orgsync::directory::canonical_email(email);
    return canonical && *canonical == email;
}

void check_group(const std::string& source, const std::string& group) {
    if (source != "corp") {
        return;
    }
    const auto normal = orgsync::ldap::normalize_dn(group);
    require(normal && *normal == group && !group.empty(), "LDAP groups are DNs in normal form",
            group);
}

void check_accepted(const Mapping& mapping) {
    for (const OrgMapping& org : mapping.orgs) {
        require(orgsync::directory::is_valid_slug(org.slug), "org slugs are valid", org.slug);
        require(mapping.find_org(org.slug) == &org, "org slugs are unique", org.slug);
        require(is_canonical_email(org.owner), "owners are canonical emails", org.owner);
        if (org.project_admin_fallback) {
            require(is_canonical_email(*org.project_admin_fallback),
                    "the project admin fallback is a canonical email", *org.project_admin_fallback);
        }
        for (const DomainRule& domain : org.domains) {
            const auto canonical = orgsync::directory::canonical_domain(domain.name);
            require(canonical && *canonical == domain.name, "domains are canonical", domain.name);
            require(!is_public_mail_provider(domain.name),
                    "no public mail provider is an org domain", domain.name);
            const auto match = resolve_domain(mapping, domain.name);
            require(match && match->org == &org && match->rule == &domain,
                    "a domain resolves to its own rule", domain.name);
            require(domain.role != orgsync::directory::OrgRole::owner, "no domain gives owner");
        }
        for (const RoleRule& role : org.roles) {
            require(role.role != orgsync::directory::OrgRole::owner, "no rule gives owner");
            check_group(role.source, role.group);
        }
        for (const GrantRule& grant : org.grants) {
            require(grant.project.has_value() != grant.dataset.has_value(),
                    "a grant names a project or a dataset");
            check_group(grant.source, grant.group);
        }
        require(org.guard.max_delete_percent >= 0 && org.guard.max_delete_percent <= 100 &&
                    org.guard.max_delete_count >= 0,
                "guard limits are in range");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = orgsync::fuzz::as_text(data, size);
    const auto mapping = parse_mapping(text, "mapping.toml", k_sources);
    if (!mapping) {
        const auto& errors = mapping.error();
        require(!errors.empty(), "a refused mapping has errors");
        for (const auto& error : errors) {
            require(!error.message.empty() && error.path == "mapping.toml",
                    "each error names the file and says why", error.to_string());
        }
        require(std::ranges::is_sorted(errors, {},
                                       [](const auto& e) { return std::pair(e.line, e.column); }),
                "errors are sorted by position");
        return 0;
    }
    check_accepted(*mapping);
    const auto again = parse_mapping(text, "mapping.toml", k_sources);
    require(again && *again == *mapping, "parsing is deterministic");
    return 0;
}
