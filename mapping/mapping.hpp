#pragma once

// The mapping file (DESIGN §3, `mapping.toml`): the orgs IT admins manage,
// which email domains belong to each, which directory groups give which org
// roles and project/dataset grants, and the deletion guard settings. Loaded
// and validated as a whole; a mapping with any error is never used.

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_error.hpp"
#include "directory/model.hpp"

namespace orgsync::mapping {

using config::ConfigError;

// `[[org.domain]]`: addresses at `name` (and its subdomains when
// `include_subdomains`) join the org with this type and default role.
struct DomainRule {
    std::string name;  // canonical (lower-case A-label, no trailing dot)
    bool include_subdomains = false;
    directory::UserType user_type = directory::UserType::internal;
    directory::OrgRole role = directory::OrgRole::member;  // never owner; admin only for internal

    bool operator==(const DomainRule&) const = default;
};

// `[[org.role]]`: members of `group` in `source` get `role` in the org
// (never owner). The highest matching rule and domain default applies.
struct RoleRule {
    std::string source;
    std::string group;  // DN for LDAP sources, displayName for SCIM sources
    directory::OrgRole role = directory::OrgRole::member;

    bool operator==(const RoleRule&) const = default;
};

// `[[org.grant]]`: members of `group` in `source` get `level` on `project`,
// or `access` on `dataset` (exactly one of project/dataset is set).
struct GrantRule {
    std::string source;
    std::string group;
    std::optional<std::string> project;
    std::optional<std::string> dataset;
    directory::Level level = directory::Level::read;                   // for a project
    directory::DatasetAccess access = directory::DatasetAccess::read;  // for a dataset

    bool operator==(const GrantRule&) const = default;
};

struct ProjectDecl {
    std::string slug;
    directory::Visibility visibility = directory::Visibility::private_;
    std::vector<std::string> tags;

    bool operator==(const ProjectDecl&) const = default;
};

struct DatasetDecl {
    std::string slug;
    std::vector<std::string> projects;  // slugs of projects of the same org

    bool operator==(const DatasetDecl&) const = default;
};

// `[org.guard]`: a sync that would remove more than either limit of a
// source's users in this org is blocked until forced.
struct GuardSettings {
    int max_delete_percent = 10;  // 0..100
    int max_delete_count = 500;   // >= 0

    bool operator==(const GuardSettings&) const = default;
};

struct OrgMapping {
    std::string slug;
    std::string name;
    bool workforce = false;
    std::string owner;  // canonical email of the initial owner
    // Who is made project admin when a sync would remove a project's last
    // explicit admin: unset (the change is held), or a canonical email, or
    // the org owner (key value "owner", stored as the owner's email).
    std::optional<std::string> project_admin_fallback;
    std::vector<DomainRule> domains;
    std::vector<RoleRule> roles;
    std::vector<ProjectDecl> projects;
    std::vector<DatasetDecl> datasets;
    std::vector<GrantRule> grants;
    GuardSettings guard;

    bool operator==(const OrgMapping&) const = default;
};

// A configured source, as far as the mapping needs to know it.
struct SourceRef {
    std::string name;
    std::string type;  // "ldap" | "scim"
    // The org a SCIM source is bound to (its `org` key); empty for LDAP.
    // Its groups belong to that org, so rules of other orgs cannot name the
    // source, and the mapping must define the org.
    std::string org = {};

    bool operator==(const SourceRef&) const = default;
};

struct Mapping {
    std::filesystem::path file;
    std::vector<OrgMapping> orgs;  // in file order
    // A fingerprint of the file's text: incremental source reads remember
    // it, since a changed mapping needs every user derived again.
    std::string digest;
    // The configured sources the file was checked against.
    std::vector<SourceRef> sources;

    const OrgMapping* find_org(std::string_view slug) const;

    bool operator==(const Mapping&) const = default;
};

// The org and domain rule an address's domain belongs to: the exact domain,
// else the closest parent domain whose rule has include_subdomains. Takes a
// canonical domain (directory::canonical_domain). Matching is by whole
// labels, so look-alikes (evilacme.com, acme.com.evil.example) never match
// acme.com. A rule with include_subdomains may cover a more specific domain
// of another org (acme.com for one org, labs.acme.com for another): the more
// specific rule wins for addresses at and under it.
struct DomainMatch {
    const OrgMapping* org = nullptr;
    const DomainRule* rule = nullptr;
};
std::optional<DomainMatch> resolve_domain(const Mapping& mapping, std::string_view domain);

// True for public mail providers (gmail.com, outlook.com, …) and their
// subdomains: they can never be org domains.
bool is_public_mail_provider(std::string_view domain);

// A public mail provider strictly under `domain` ("co.uk" → "yahoo.co.uk"),
// or nullopt: a rule for `domain` with include_subdomains would take it in.
std::optional<std::string_view> public_mail_provider_under(std::string_view domain);

// Whether `source` has a say in whether the account with the canonical
// address `email` is enabled. Accounts are one per person for the whole
// platform, so a SCIM source bound to an org speaks only for addresses in
// that org's domains: its `active: false` for anyone else keeps them out of
// its own org and nothing more. Every other source (LDAP, configured by the
// operator, or one no longer configured) speaks for each account it holds.
bool speaks_for_account(const Mapping& mapping, std::string_view source, std::string_view email);
// The same, for a source whose entry is at hand and an address whose domain
// resolves to `home`.
bool speaks_for_account(const SourceRef& source, const std::optional<DomainMatch>& home);

// Parses and validates; `sources` are the daemon config's sources, which
// rules may name. Every error found is returned, sorted by position (errors
// about the file as a whole, line 0, first). Messages follow the daemon
// config's wording (config/toml_schema.hpp) and name the table as
// `[[org]] "acme"`, `[[org.domain]] #1 of org "acme"`, `[org.guard] of org
// "acme"` (an org without a valid, unique slug is `[[org]] #2`); they quote
// slugs, domains, emails and source names, never anything secret (the
// mapping holds none).
std::expected<Mapping, std::vector<ConfigError>> load_mapping(
    const std::filesystem::path& file, const std::vector<SourceRef>& sources);
std::expected<Mapping, std::vector<ConfigError>> parse_mapping(
    std::string_view text, const std::filesystem::path& file,
    const std::vector<SourceRef>& sources);

}  // namespace orgsync::mapping
