#include "mapping/mapping.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "config/fingerprint.hpp"
#include "config/toml_schema.hpp"
#include "connectors/ldap/dn.hpp"
#include "directory/email.hpp"

namespace orgsync::mapping {
namespace {

namespace fs = std::filesystem;
using config::key_label;
using config::KeyPositions;
using config::Kind;
using config::Option;
using config::Problem;
using config::quote;
using config::read_array_of_tables;
using config::read_table;
using config::Reader;
using config::to_int;
using config::unknown_message;
using config::Where;
using directory::OrgRole;
using directory::UserType;

// std::ranges::contains (C++23) is not in GCC 12's library.
template <typename Range, typename Value, typename Projection = std::identity>
bool contains(const Range& range, const Value& value, Projection projection = {}) {
    return std::ranges::find(range, value, projection) != std::ranges::end(range);
}

// ---------------------------------------------------------------------------
// Rules for single values.

Problem check_slug(std::string_view value) {
    if (directory::is_valid_slug(value)) {
        return std::nullopt;
    }
    return R"(must be 1 to 63 characters of a-z, 0-9 and "-")";
}

Problem check_not_owner(std::string_view value) {
    if (value == "owner") {
        return R"(cannot be "owner": an org's owner is set by its "owner" key and changed only by transfer)";
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// The option tables: every key of the file is declared once below, with its
// type, default and allowed values or range.

constexpr std::string_view k_user_types[] = {"internal", "workforce", "external"};
constexpr std::string_view k_roles[] = {"admin", "member", "guest"};  // "owner": check_not_owner
constexpr std::string_view k_levels[] = {"read", "write", "admin"};
constexpr std::string_view k_visibilities[] = {"public", "private"};

// [[org]] also holds the sub-tables below (k_org_tables).
constexpr Option<OrgMapping> k_org_options[] = {
    {.key = "slug",
     .kind = Kind::string,
     .field = &OrgMapping::slug,
     .required = true,
     .check = check_slug},
    {.key = "name", .kind = Kind::string, .field = &OrgMapping::name, .required = true},
    {.key = "workforce",
     .kind = Kind::boolean,
     .field = &OrgMapping::workforce,
     .fallback = "false"},
    // A canonical email; checked by read_email.
    {.key = "owner", .kind = Kind::string, .field = &OrgMapping::owner, .required = true},
    // "owner" or a canonical email; checked by read_email.
    {.key = "project_admin_fallback",
     .kind = Kind::string,
     .field = &OrgMapping::project_admin_fallback},
};
constexpr std::string_view k_org_tables[] = {"domain",  "role",  "project",
                                             "dataset", "grant", "guard"};

// `role` has no fixed default: member, or guest for external domains.
constexpr Option<DomainRule> k_domain_options[] = {
    {.key = "name", .kind = Kind::string, .field = &DomainRule::name, .required = true},
    {.key = "include_subdomains",
     .kind = Kind::boolean,
     .field = &DomainRule::include_subdomains,
     .fallback = "false"},
    {.key = "user_type",
     .kind = Kind::enumeration,
     .field = config::parsed<&DomainRule::user_type, directory::parse_user_type>(),
     .fallback = "internal",
     .choices = k_user_types},
    {.key = "role",
     .kind = Kind::enumeration,
     .field = config::parsed<&DomainRule::role, directory::parse_org_role>(),
     .choices = k_roles,
     .check = check_not_owner},
};

constexpr Option<RoleRule> k_role_options[] = {
    {.key = "source", .kind = Kind::string, .field = &RoleRule::source, .required = true},
    {.key = "group", .kind = Kind::string, .field = &RoleRule::group, .required = true},
    {.key = "role",
     .kind = Kind::enumeration,
     .field = config::parsed<&RoleRule::role, directory::parse_org_role>(),
     .required = true,
     .choices = k_roles,
     .check = check_not_owner},
};

constexpr Option<ProjectDecl> k_project_options[] = {
    {.key = "slug",
     .kind = Kind::string,
     .field = &ProjectDecl::slug,
     .required = true,
     .check = check_slug},
    {.key = "visibility",
     .kind = Kind::enumeration,
     .field = config::parsed<&ProjectDecl::visibility, directory::parse_visibility>(),
     .fallback = "private",
     .choices = k_visibilities},
    {.key = "tags", .kind = Kind::string_array, .field = &ProjectDecl::tags},
};

// Project slugs of the same org; checked by check_references.
constexpr Option<DatasetDecl> k_dataset_options[] = {
    {.key = "slug",
     .kind = Kind::string,
     .field = &DatasetDecl::slug,
     .required = true,
     .check = check_slug},
    {.key = "projects", .kind = Kind::string_array, .field = &DatasetDecl::projects},
};

// A grant as written; `level` means a project level or a dataset access
// depending on which of project/dataset is set, so it is converted later.
struct GrantKeys {
    std::string source;
    std::string group;
    std::optional<std::string> project;
    std::optional<std::string> dataset;
    std::string level;
};

constexpr Option<GrantKeys> k_grant_options[] = {
    {.key = "source", .kind = Kind::string, .field = &GrantKeys::source, .required = true},
    {.key = "group", .kind = Kind::string, .field = &GrantKeys::group, .required = true},
    {.key = "project", .kind = Kind::string, .field = &GrantKeys::project},
    {.key = "dataset", .kind = Kind::string, .field = &GrantKeys::dataset},
    {.key = "level",
     .kind = Kind::enumeration,
     .field = &GrantKeys::level,
     .required = true,
     .choices = k_levels},
};

constexpr Option<GuardSettings> k_guard_options[] = {
    {.key = "max_delete_percent",
     .kind = Kind::integer,
     .field = &GuardSettings::max_delete_percent,
     .fallback = "10",
     .limits = {.min = 0, .max = 100}},
    {.key = "max_delete_count",
     .kind = Kind::integer,
     .field = &GuardSettings::max_delete_count,
     .fallback = "500",
     .limits = {.min = 0, .max = 1'000'000'000}},
};

// ---------------------------------------------------------------------------
// Reading.

// Where a domain was first claimed, for "already claimed by" messages.
struct Claim {
    std::string org;  // `org "acme"`, or `[[org]] #2` when the org has no usable slug
    int line = 0;
};

// What reading the whole file keeps across orgs.
struct FileState {
    Reader& reader;
    const std::vector<SourceRef>& sources;
    std::map<std::string, int, std::less<>> org_lines;  // slug -> line of its [[org]]
    std::map<std::string, Claim, std::less<>> claims;   // domain -> first claim
};

// How messages name one org and the tables inside it.
struct OrgLabel {
    std::string table;  // `[[org]] "acme"`, or `[[org]] #2` without a valid, unique slug
    std::string name;   // `org "acme"`, or `[[org]] #2`

    Where org() const { return {"in " + table, "org"}; }
    Where array(std::string_view key, std::size_t index) const {
        return {fmt::format("in [[org.{}]] #{} of {}", key, index, name),
                fmt::format("org.{}", key)};
    }
    Where sub_table(std::string_view key) const {
        return {fmt::format("in [org.{}] of {}", key, name), fmt::format("org.{}", key)};
    }
};

// The position of `key` itself (not its value) in `table`.
toml::source_position key_position(const toml::table& table, std::string_view key) {
    const auto it = table.lower_bound(key);
    return it != table.end() && it->first.str() == key ? it->first.source().begin
                                                       : table.source().begin;
}

// `"Acme.com" is not canonical; write "acme.com"`.
std::string not_canonical(std::string_view value, std::string_view canonical) {
    return fmt::format("{} is not canonical; write {}", quote(value), quote(canonical));
}

// Checks that the email in `key` (validly typed) is canonical; false after reporting.
bool check_email(Reader& reader, const toml::table& table, std::string_view key, const Where& where,
                 const std::string& value) {
    const toml::node& node = *table.get(key);
    const auto canonical = directory::canonical_email(value);
    if (!canonical) {
        reader.error(node, key_label(key, where) + ": " + canonical.error());
        return false;
    }
    if (*canonical != value) {
        reader.error(node, key_label(key, where) + ": " + not_canonical(value, *canonical));
        return false;
    }
    return true;
}

// Reports `source` (validly typed, in `table`) unless it names a configured
// source that may serve `org_slug`.
void check_source(FileState& state, const toml::table& table, const Where& where,
                  const std::string& source, const std::string& org_slug) {
    const toml::node& node = *table.get("source");
    const auto it = std::ranges::find(state.sources, source, &SourceRef::name);
    if (it == state.sources.end()) {
        std::string known;
        for (const SourceRef& ref : state.sources) {
            known += known.empty() ? "" : ", ";
            known += ref.name;
        }
        state.reader.error(node, key_label("source", where) +
                                     fmt::format(": unknown source {}; the daemon configuration "
                                                 "defines {}",
                                                 quote(source), known.empty() ? "none" : known));
    } else if (!it->org.empty() && !org_slug.empty() && it->org != org_slug) {
        state.reader.error(
            node, key_label("source", where) +
                      fmt::format(": source {} is bound to org {}; its groups belong to that org",
                                  quote(source), quote(it->org)));
    }
}

// A rule's `group` for an LDAP source is a DN: it is kept in the normal
// form the connector gives group names (connectors/ldap/dn.hpp), so
// `CN=Admins, OU=Groups,DC=example,DC=com` in the mapping names the group the
// directory spells `cn=admins,ou=groups,dc=example,dc=com`.
void normalize_group(FileState& state, const toml::table& table, const Where& where,
                     const std::string& source, std::string& group) {
    const auto it = std::ranges::find(state.sources, source, &SourceRef::name);
    if (it == state.sources.end() || it->type != "ldap") {
        return;
    }
    if (auto normal = ldap::normalize_dn(group); normal && !normal->empty()) {
        group = std::move(*normal);
        return;
    }
    state.reader.error(*table.get("group"),
                       key_label("group", where) +
                           fmt::format(": source {} is an LDAP directory, so the group is named "
                                       "by its DN, e.g. \"cn=admins,ou=groups,dc=example,dc=com\"",
                                       quote(source)));
}

// Reports a duplicate `slug` (validly typed) among `seen` (slug -> line).
bool check_unique_slug(Reader& reader, const toml::table& table, const Where& where,
                       std::string_view what, const std::string& slug,
                       std::map<std::string, int, std::less<>>& seen) {
    const toml::node& node = *table.get("slug");
    if (const auto first = seen.find(slug); first != seen.end()) {
        reader.error(node, key_label("slug", where) +
                               fmt::format(": {} with this slug is already defined on line {}",
                                           what, first->second));
        return false;
    }
    seen.emplace(slug, to_int(node.source().begin.line));
    return true;
}

void read_domain(FileState& state, const toml::table& table, const Where& where,
                 const OrgLabel& label, OrgMapping& org) {
    Reader& reader = state.reader;
    DomainRule rule;
    const KeyPositions positions =
        read_table(reader, table, where, k_domain_options, rule, config::k_no_other_keys);
    if (!table.contains("role")) {
        rule.role = rule.user_type == UserType::external ? OrgRole::guest : OrgRole::member;
    }

    bool name_valid = false;
    if (positions.contains("name")) {
        const toml::node& node = *table.get("name");
        const std::string label_text = key_label("name", where);
        const auto canonical = directory::canonical_domain(rule.name);
        if (!canonical) {
            reader.error(node, label_text + ": " + canonical.error());
        } else if (*canonical != rule.name) {
            reader.error(node, label_text + ": " + not_canonical(rule.name, *canonical));
        } else if (is_public_mail_provider(rule.name)) {
            reader.error(node, label_text + fmt::format(": {} is a public mail provider, where "
                                                        "anyone can get an address; it cannot be "
                                                        "an org domain",
                                                        quote(rule.name)));
        } else if (const auto claim = state.claims.find(rule.name); claim != state.claims.end()) {
            reader.error(node, label_text + fmt::format(": {} is already claimed by {} on line {}",
                                                        quote(rule.name), claim->second.org,
                                                        claim->second.line));
        } else {
            state.claims.emplace(rule.name, Claim{label.name, to_int(node.source().begin.line)});
            name_valid = true;
        }
    }

    const bool type_valid = positions.contains("user_type") || !table.contains("user_type");
    if (positions.contains("role") && type_valid && rule.role == OrgRole::admin &&
        rule.user_type != UserType::internal) {
        reader.error(*table.get("role"),
                     key_label("role", where) +
                         fmt::format(R"(: "admin" is only for internal domains (this one is )"
                                     R"({}); use "member" or "guest")",
                                     directory::to_string(rule.user_type)));
    }
    if (name_valid && rule.include_subdomains) {
        if (const auto provider = public_mail_provider_under(rule.name)) {
            reader.error(
                *table.get("include_subdomains"),
                key_label("include_subdomains", where) +
                    fmt::format(": would take in the public mail provider {}", quote(*provider)));
        }
    }
    org.domains.push_back(std::move(rule));
}

void read_grant(FileState& state, const toml::table& table, const Where& where, OrgMapping& org) {
    Reader& reader = state.reader;
    GrantKeys keys;
    const KeyPositions positions =
        read_table(reader, table, where, k_grant_options, keys, config::k_no_other_keys);
    if (positions.contains("source")) {
        check_source(state, table, where, keys.source, org.slug);
        if (positions.contains("group")) {
            normalize_group(state, table, where, keys.source, keys.group);
        }
    }

    GrantRule rule{.source = keys.source, .group = keys.group};
    const bool has_project = table.contains("project");
    const bool has_dataset = table.contains("dataset");
    if (has_project && has_dataset) {
        reader.error(key_position(table, "dataset"),
                     key_label("dataset", where) + R"(: cannot be set together with "project"; )"
                                                   "a grant is for one project or one dataset");
    } else if (!has_project && !has_dataset) {
        reader.error(table.source().begin,
                     R"(missing required key "project" or "dataset" )" + where.text);
    } else if (has_project && positions.contains("project")) {
        if (!contains(org.projects, *keys.project, &ProjectDecl::slug)) {
            reader.error(*table.get("project"),
                         key_label("project", where) +
                             fmt::format(": unknown project {}; no [[org.project]] of this org "
                                         "has this slug",
                                         quote(*keys.project)));
        }
        rule.project = keys.project;
        if (positions.contains("level")) {
            rule.level = directory::parse_level(keys.level).value();
        }
    } else if (has_dataset && positions.contains("dataset")) {
        if (!contains(org.datasets, *keys.dataset, &DatasetDecl::slug)) {
            reader.error(*table.get("dataset"),
                         key_label("dataset", where) +
                             fmt::format(": unknown dataset {}; no [[org.dataset]] of this org "
                                         "has this slug",
                                         quote(*keys.dataset)));
        }
        rule.dataset = keys.dataset;
        if (positions.contains("level")) {
            if (const auto access = directory::parse_dataset_access(keys.level)) {
                rule.access = *access;
            } else {
                reader.error(*table.get("level"),
                             key_label("level", where) +
                                 fmt::format(R"(: a dataset grant is "read" or "write", not {})",
                                             quote(keys.level)));
            }
        }
    }
    org.grants.push_back(std::move(rule));
}

// The org's sub-tables, in the order their references need: projects before
// the datasets and grants that name them, datasets before grants.
void read_org_tables(FileState& state, const toml::table& table, const OrgLabel& label,
                     OrgMapping& org) {
    Reader& reader = state.reader;
    const Where where = label.org();
    const auto each = [&](std::string_view name, auto&& read) {
        if (const toml::node* node = table.get(name)) {
            read_array_of_tables(reader, *node, key_label(name, where),
                                 [&](const toml::table& element, std::size_t index) {
                                     read(element, label.array(name, index));
                                 });
        }
    };

    each("domain", [&](const toml::table& element, const Where& at) {
        read_domain(state, element, at, label, org);
    });
    each("role", [&](const toml::table& element, const Where& at) {
        RoleRule rule;
        const KeyPositions positions =
            read_table(reader, element, at, k_role_options, rule, config::k_no_other_keys);
        if (positions.contains("source")) {
            check_source(state, element, at, rule.source, org.slug);
            if (positions.contains("group")) {
                normalize_group(state, element, at, rule.source, rule.group);
            }
        }
        org.roles.push_back(std::move(rule));
    });
    std::map<std::string, int, std::less<>> project_lines;
    each("project", [&](const toml::table& element, const Where& at) {
        ProjectDecl project;
        const KeyPositions positions =
            read_table(reader, element, at, k_project_options, project, config::k_no_other_keys);
        if (positions.contains("slug")) {
            check_unique_slug(reader, element, at, "a project", project.slug, project_lines);
        }
        org.projects.push_back(std::move(project));
    });
    std::map<std::string, int, std::less<>> dataset_lines;
    each("dataset", [&](const toml::table& element, const Where& at) {
        DatasetDecl dataset;
        const KeyPositions positions =
            read_table(reader, element, at, k_dataset_options, dataset, config::k_no_other_keys);
        if (positions.contains("slug")) {
            check_unique_slug(reader, element, at, "a dataset", dataset.slug, dataset_lines);
        }
        if (positions.contains("projects")) {
            for (const toml::node& item : *element.get("projects")->as_array()) {
                const std::string& slug = item.as_string()->get();
                if (!project_lines.contains(slug)) {
                    reader.error(item, key_label("projects", at) +
                                           fmt::format(": unknown project {}; no "
                                                       "[[org.project]] of this org has this slug",
                                                       quote(slug)));
                }
            }
        }
        org.datasets.push_back(std::move(dataset));
    });
    each("grant",
         [&](const toml::table& element, const Where& at) { read_grant(state, element, at, org); });

    if (const toml::node* node = table.get("guard")) {
        if (const toml::table* guard = node->as_table()) {
            read_table(reader, *guard, label.sub_table("guard"), k_guard_options, org.guard,
                       config::k_no_other_keys);
        } else {
            reader.error(*node, key_label("guard", where) + ": expected a table, got " +
                                    std::string(config::type_name(*node)));
        }
    }
}

// One [[org]], as read; the checks across orgs need the whole mapping.
struct OrgSource {
    const toml::table* table = nullptr;
    Where where;
    bool owner_valid = false;
};

OrgSource read_org(FileState& state, const toml::table& table, std::size_t index,
                   Mapping& mapping) {
    Reader& reader = state.reader;
    // Messages name the org once its slug is known to be valid and unique.
    OrgLabel label{fmt::format("[[org]] #{}", index), fmt::format("[[org]] #{}", index)};
    const auto* slug_node = table.get_as<std::string>("slug");
    if (slug_node && !check_slug(slug_node->get()) && !state.org_lines.contains(slug_node->get())) {
        label = {"[[org]] " + quote(slug_node->get()), "org " + quote(slug_node->get())};
    }
    const Where where = label.org();

    OrgMapping org;
    const KeyPositions positions = read_table(
        reader, table, where, k_org_options, org,
        [](const toml::key& key, const auto&) { return contains(k_org_tables, key.str()); });
    if (positions.contains("slug") &&
        !check_unique_slug(reader, table, where, "an org", org.slug, state.org_lines)) {
        org.slug.clear();  // so that source checks do not compare against it
    }

    const bool owner_valid =
        positions.contains("owner") && check_email(reader, table, "owner", where, org.owner);
    if (positions.contains("project_admin_fallback")) {
        if (*org.project_admin_fallback == "owner") {
            org.project_admin_fallback = org.owner;
        } else {
            check_email(reader, table, "project_admin_fallback", where,
                        *org.project_admin_fallback);
        }
    }

    read_org_tables(state, table, label, org);
    mapping.orgs.push_back(std::move(org));
    return OrgSource{&table, where, owner_valid};
}

// The owner becomes an internal member of the org: their domain must not make
// them internal elsewhere (a user is internal in one org) or non-internal here.
void check_owner(Reader& reader, const Mapping& mapping, const OrgMapping& org,
                 const OrgSource& source) {
    const auto match = resolve_domain(mapping, directory::email_domain(org.owner));
    if (!match || match->rule->user_type == UserType::internal) {
        if (match && match->org != &org) {
            reader.error(*source.table->get("owner"),
                         key_label("owner", source.where) +
                             fmt::format(": addresses at {} are internal to org {}, and a user "
                                         "is internal in one org only; the owner must be "
                                         "internal to this org",
                                         quote(match->rule->name), quote(match->org->slug)));
        }
        return;
    }
    if (match->org == &org) {
        reader.error(*source.table->get("owner"),
                     key_label("owner", source.where) +
                         fmt::format(": addresses at {} join this org as {}; the owner must be "
                                     "internal",
                                     quote(match->rule->name),
                                     directory::to_string(match->rule->user_type)));
    }
}

Mapping read_mapping(FileState& state, const toml::table& root, const fs::path& file) {
    Reader& reader = state.reader;
    Mapping mapping;
    mapping.file = file;
    const Where top{"at top level", ""};

    for (const auto& [key, node] : root) {
        if (key.str() != "org") {
            reader.error(key.source().begin, unknown_message(key.str(), node, top));
        }
    }

    std::vector<OrgSource> sources;
    if (const toml::node* orgs = root.get("org")) {
        read_array_of_tables(reader, *orgs, key_label("org", top),
                             [&](const toml::table& table, std::size_t index) {
                                 sources.push_back(read_org(state, table, index, mapping));
                             });
    }

    for (std::size_t i = 0; i < mapping.orgs.size(); ++i) {
        if (sources[i].owner_valid) {
            check_owner(reader, mapping, mapping.orgs[i], sources[i]);
        }
    }
    for (const SourceRef& source : state.sources) {
        if (!source.org.empty() && !mapping.find_org(source.org)) {
            reader.file_error(
                fmt::format("source {} of the daemon configuration is bound to org "
                            "{}, which no [[org]] defines",
                            quote(source.name), quote(source.org)));
        }
    }
    return mapping;
}

}  // namespace

const OrgMapping* Mapping::find_org(std::string_view slug) const {
    const auto it = std::ranges::find(orgs, slug, &OrgMapping::slug);
    return it == orgs.end() ? nullptr : &*it;
}

bool speaks_for_account(const SourceRef& source, const std::optional<DomainMatch>& home) {
    return source.type != "scim" || source.org.empty() || (home && home->org->slug == source.org);
}

bool speaks_for_account(const Mapping& mapping, std::string_view source, std::string_view email) {
    const auto ref = std::ranges::find(mapping.sources, source, &SourceRef::name);
    return ref == mapping.sources.end() ||
           speaks_for_account(*ref, resolve_domain(mapping, directory::email_domain(email)));
}

std::expected<Mapping, std::vector<ConfigError>> parse_mapping(
    std::string_view text, const fs::path& file, const std::vector<SourceRef>& sources) {
    Reader reader(file.string());
    const std::optional<toml::table> root = config::parse_toml(reader, text);
    if (!root) {
        return std::unexpected(reader.take_errors());
    }
    FileState state{.reader = reader, .sources = sources, .org_lines = {}, .claims = {}};
    Mapping mapping = read_mapping(state, *root, file);
    if (reader.failed()) {
        return std::unexpected(reader.take_errors());
    }
    mapping.digest = fmt::format("{:016x}", config::fnv1a(text));
    mapping.sources = sources;
    return mapping;
}

std::expected<Mapping, std::vector<ConfigError>> load_mapping(
    const fs::path& file, const std::vector<SourceRef>& sources) {
    const auto text = config::read_text_file(file);
    if (!text) {
        return std::unexpected(std::vector{text.error()});
    }
    return parse_mapping(*text, file, sources);
}

}  // namespace orgsync::mapping
