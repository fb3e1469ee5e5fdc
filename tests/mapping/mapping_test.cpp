#include "mapping/mapping.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::mapping {
namespace {

namespace fs = std::filesystem;
using directory::DatasetAccess;
using directory::Level;
using directory::OrgRole;
using directory::UserType;
using directory::Visibility;
using Lines = std::vector<std::string>;

// Messages in the error tests name this file.
constexpr std::string_view k_file = "mapping.toml";

// The sources of etc/orgsyncd.toml.
const std::vector<SourceRef> k_sources{
    {.name = "corp", .type = "ldap"},
    {.name = "okta", .type = "scim", .org = "acme"},
};

// The errors parse_mapping reports for `text`, as the admin sees them.
Lines errors_of(std::string_view text, const std::vector<SourceRef>& sources = k_sources) {
    const auto mapping = parse_mapping(text, k_file, sources);
    Lines lines;
    if (!mapping) {
        for (const ConfigError& error : mapping.error()) {
            lines.push_back(error.to_string());
        }
    }
    return lines;
}

// A valid org on lines 1-4; tests append its sub-tables from line 5 on.
constexpr std::string_view k_acme = R"([[org]]
slug = "acme"
name = "Acme Corp"
owner = "ceo@acme.com"
)";

Lines acme_errors(std::string_view rest, const std::vector<SourceRef>& sources = k_sources) {
    return errors_of(std::string(k_acme) + std::string(rest), sources);
}

TEST(MappingTest, DesignExampleSetsEveryField) {
    const auto mapping = parse_mapping(R"toml(
[[org]]
slug = "acme"
name = "Acme Corp"
owner = "ceo@acme.com"
workforce = true
project_admin_fallback = "admin@acme.com"

  [[org.domain]]
  name = "acme.com"
  include_subdomains = true
  user_type = "internal"
  role = "admin"

  [[org.domain]]
  name = "labelers.example"
  user_type = "workforce"
  role = "guest"

  [[org.role]]
  source = "corp"
  group = "cn=acme-admins,ou=groups,dc=example,dc=com"
  role = "admin"

  [[org.project]]
  slug = "vision"
  visibility = "public"
  tags = ["cv", "street"]

  [[org.dataset]]
  slug = "street-scenes"
  projects = ["vision"]

  [[org.grant]]
  source = "corp"
  group = "cn=vision-team,ou=groups,dc=example,dc=com"
  project = "vision"
  level = "write"

  [[org.grant]]
  source = "okta"
  group = "Annotators"
  dataset = "street-scenes"
  level = "write"

  [org.guard]
  max_delete_percent = 25
  max_delete_count = 40
)toml",
                                       k_file, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(mapping->file, fs::path(k_file));
    ASSERT_EQ(mapping->orgs.size(), 1U);
    const OrgMapping& org = mapping->orgs[0];
    EXPECT_EQ(org.slug, "acme");
    EXPECT_EQ(org.name, "Acme Corp");
    EXPECT_TRUE(org.workforce);
    EXPECT_EQ(org.owner, "ceo@acme.com");
    EXPECT_EQ(org.project_admin_fallback, "admin@acme.com");
    EXPECT_EQ(org.domains, (std::vector<DomainRule>{
                               {.name = "acme.com",
                                .include_subdomains = true,
                                .user_type = UserType::internal,
                                .role = OrgRole::admin},
                               {.name = "labelers.example",
                                .include_subdomains = false,
                                .user_type = UserType::workforce,
                                .role = OrgRole::guest},
                           }));
    EXPECT_EQ(org.roles,
              (std::vector<RoleRule>{{.source = "corp",
                                      .group = "cn=acme-admins,ou=groups,dc=example,dc=com",
                                      .role = OrgRole::admin}}));
    EXPECT_EQ(org.projects, (std::vector<ProjectDecl>{{.slug = "vision",
                                                       .visibility = Visibility::public_,
                                                       .tags = {"cv", "street"}}}));
    EXPECT_EQ(org.datasets,
              (std::vector<DatasetDecl>{{.slug = "street-scenes", .projects = {"vision"}}}));
    EXPECT_EQ(org.grants, (std::vector<GrantRule>{
                              {.source = "corp",
                               .group = "cn=vision-team,ou=groups,dc=example,dc=com",
                               .project = "vision",
                               .dataset = std::nullopt,
                               .level = Level::write,
                               .access = DatasetAccess::read},
                              {.source = "okta",
                               .group = "Annotators",
                               .project = std::nullopt,
                               .dataset = "street-scenes",
                               .level = Level::read,
                               .access = DatasetAccess::write},
                          }));
    EXPECT_EQ(org.guard, (GuardSettings{.max_delete_percent = 25, .max_delete_count = 40}));
    EXPECT_EQ(mapping->find_org("acme"), &org);
    EXPECT_EQ(mapping->find_org("globex"), nullptr);
}

TEST(MappingTest, Defaults) {
    const auto mapping = parse_mapping(std::string(k_acme) + R"toml(
[[org.domain]]
name = "acme.com"
[[org.domain]]
name = "partner.example"
user_type = "external"
[[org.domain]]
name = "labelers.example"
user_type = "workforce"
[[org.project]]
slug = "vision"
[[org.dataset]]
slug = "raw"
)toml",
                                       k_file, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    const OrgMapping& org = mapping->orgs[0];
    EXPECT_FALSE(org.workforce);
    EXPECT_EQ(org.project_admin_fallback, std::nullopt);
    ASSERT_EQ(org.domains.size(), 3U);
    EXPECT_FALSE(org.domains[0].include_subdomains);
    EXPECT_EQ(org.domains[0].user_type, UserType::internal);
    EXPECT_EQ(org.domains[0].role, OrgRole::member);
    EXPECT_EQ(org.domains[1].role, OrgRole::guest);  // external domains default to guest
    EXPECT_EQ(org.domains[2].role, OrgRole::member);
    EXPECT_EQ(org.projects,
              (std::vector<ProjectDecl>{{.slug = "vision", .visibility = Visibility::private_}}));
    EXPECT_EQ(org.datasets, (std::vector<DatasetDecl>{{.slug = "raw"}}));
    EXPECT_EQ(org.guard, GuardSettings{});
    EXPECT_EQ(org.guard.max_delete_percent, 10);
    EXPECT_EQ(org.guard.max_delete_count, 500);
}

TEST(MappingTest, EmptyFileHasNoOrgs) {
    const auto mapping = parse_mapping("# nothing yet\n", k_file, {});
    ASSERT_TRUE(mapping.has_value());
    EXPECT_TRUE(mapping->orgs.empty());
}

TEST(MappingTest, ProjectAdminFallbackOwnerIsTheOwnersEmail) {
    const auto mapping = parse_mapping(std::string(k_acme) + "project_admin_fallback = \"owner\"\n",
                                       k_file, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(mapping->orgs[0].project_admin_fallback, "ceo@acme.com");
}

TEST(MappingTest, MoreSpecificDomainOfAnotherOrgIsAllowed) {
    const auto mapping = parse_mapping(std::string(k_acme) + R"toml(
[[org.domain]]
name = "acme.com"
include_subdomains = true

[[org]]
slug = "acme-labs"
name = "Acme Labs"
owner = "head@labs.acme.com"
[[org.domain]]
name = "labs.acme.com"
)toml",
                                       k_file, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(resolve_domain(*mapping, "labs.acme.com")->org->slug, "acme-labs");
    EXPECT_EQ(resolve_domain(*mapping, "eu.acme.com")->org->slug, "acme");
}

// A SCIM source bound to acme speaks for the accounts of acme's domains
// (subdomains included where the rule says so) and no others; an LDAP source,
// or a source the configuration no longer has, for every account it holds.
TEST(MappingTest, ABoundScimSourceSpeaksOnlyForItsOrgsAccounts) {
    const auto mapping = parse_mapping(std::string(k_acme) + R"toml(
[[org.domain]]
name = "acme.com"
include_subdomains = true

[[org]]
slug = "beta"
name = "Beta"
owner = "ceo@beta.org"
[[org.domain]]
name = "beta.org"
)toml",
                                       k_file, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(mapping->sources, k_sources);
    EXPECT_TRUE(speaks_for_account(*mapping, "okta", "ann@acme.com"));
    EXPECT_TRUE(speaks_for_account(*mapping, "okta", "ann@eu.acme.com"));
    EXPECT_FALSE(speaks_for_account(*mapping, "okta", "bob@beta.org"));
    EXPECT_FALSE(speaks_for_account(*mapping, "okta", "carol@gmail.com"));
    EXPECT_FALSE(speaks_for_account(*mapping, "okta", "dan@evilacme.com"));
    for (const char* email : {"ann@acme.com", "bob@beta.org", "carol@gmail.com"}) {
        EXPECT_TRUE(speaks_for_account(*mapping, "corp", email)) << email;
        EXPECT_TRUE(speaks_for_account(*mapping, "retired", email)) << email;
    }
}

TEST(MappingTest, ExampleFileIsValid) {
    const fs::path example = fs::path(ORGSYNC_SOURCE_DIR) / "etc/mapping.toml";
    const auto mapping = load_mapping(example, k_sources);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(mapping->file, example);
    ASSERT_EQ(mapping->orgs.size(), 2U);
    const OrgMapping& acme = mapping->orgs[0];
    EXPECT_EQ(acme.slug, "acme");
    EXPECT_EQ(acme.project_admin_fallback, "ceo@acme.com");
    EXPECT_EQ(acme.domains.size(), 2U);
    EXPECT_EQ(acme.roles.size(), 2U);
    EXPECT_EQ(acme.projects.size(), 1U);
    EXPECT_EQ(acme.datasets.size(), 1U);
    EXPECT_EQ(acme.grants.size(), 2U);
    EXPECT_TRUE(mapping->orgs[1].workforce);
}

// --- errors: exact text, as check-config prints it ---

TEST(MappingErrorTest, UnknownTopLevelKeyAndTable) {
    EXPECT_EQ(errors_of("orgs = 1\n[acme]\nslug = \"acme\"\n", {}),
              (Lines{R"(mapping.toml:1:1: unknown key "orgs" at top level)",
                     "mapping.toml:2:2: unknown table [acme]"}));
}

TEST(MappingErrorTest, UnknownKeys) {
    EXPECT_EQ(acme_errors("slgu = \"x\"\n"),
              Lines{R"(mapping.toml:5:1: unknown key "slgu" in [[org]] "acme")"});
    EXPECT_EQ(acme_errors("  [[org.domain]]\n  name = \"acme.com\"\n  rol = \"admin\"\n"),
              Lines{R"(mapping.toml:7:3: unknown key "rol" in [[org.domain]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors(
            "[[org.role]]\nsource = \"corp\"\ngroup = \"cn=g\"\nrole = \"member\"\nrank = 1\n"),
        Lines{R"(mapping.toml:9:1: unknown key "rank" in [[org.role]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"a\"\n[[org.project]]\nslug = \"b\"\npublic = "
                    "true\n"),
        Lines{R"(mapping.toml:9:1: unknown key "public" in [[org.project]] #2 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.dataset]]\nslug = \"raw\"\nproject = \"vision\"\n"),
        Lines{R"(mapping.toml:7:1: unknown key "project" in [[org.dataset]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\n[[org.grant]]\nsource = \"corp\"\ngroup = "
                    "\"cn=g\"\nproject = \"vision\"\nlevel = \"read\"\nuser = \"x@acme.com\"\n"),
        Lines{R"(mapping.toml:12:1: unknown key "user" in [[org.grant]] #1 of org "acme")"});
    EXPECT_EQ(acme_errors("[org.guard]\nmax_delete = 5\n"),
              Lines{R"(mapping.toml:6:1: unknown key "max_delete" in [org.guard] of org "acme")"});
    EXPECT_EQ(acme_errors("[org.domains]\nname = \"acme.com\"\n[org.guard.extra]\n"),
              (Lines{"mapping.toml:5:6: unknown table [org.domains]",
                     "mapping.toml:7:12: unknown table [org.guard.extra]"}));
}

TEST(MappingErrorTest, OrgsWithoutAUsableSlugAreNumbered) {
    EXPECT_EQ(errors_of("[[org]]\nname = \"X\"\nowner = \"a@x.example\"\ncolour = \"red\"\n", {}),
              (Lines{R"(mapping.toml:1:1: missing required key "slug" in [[org]] #1)",
                     R"(mapping.toml:4:1: unknown key "colour" in [[org]] #1)"}));
    EXPECT_EQ(
        errors_of("[[org]]\nslug = \"Acme\"\nname = \"X\"\nowner = \"a@x.example\"\n[[org.domain]]"
                  "\nname = \"x.example\"\nkind = 1\n",
                  {}),
        (Lines{
            R"(mapping.toml:2:8: key "slug" in [[org]] #1: must be 1 to 63 characters of a-z, 0-9 and "-")",
            R"(mapping.toml:7:1: unknown key "kind" in [[org.domain]] #1 of [[org]] #1)"}));
}

TEST(MappingErrorTest, WrongTypes) {
    EXPECT_EQ(
        errors_of("[org]\nslug = \"acme\"\n", {}),
        Lines{
            R"(mapping.toml:1:1: key "org" at top level: expected an array of tables, got a table)"});
    EXPECT_EQ(
        acme_errors("workforce = \"yes\"\n"),
        Lines{
            R"(mapping.toml:5:13: key "workforce" in [[org]] "acme": expected a boolean, got a string)"});
    EXPECT_EQ(
        acme_errors("domain = \"acme.com\"\n"),
        Lines{
            R"(mapping.toml:5:10: key "domain" in [[org]] "acme": expected an array of tables, got a string)"});
    EXPECT_EQ(
        acme_errors("[[org.guard]]\nmax_delete_count = 5\n"),
        Lines{
            R"(mapping.toml:5:1: key "guard" in [[org]] "acme": expected a table, got an array)"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"acme.com\"\ninclude_subdomains = 1\n"),
        Lines{
            R"(mapping.toml:7:22: key "include_subdomains" in [[org.domain]] #1 of org "acme": expected a boolean, got an integer)"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\ntags = \"cv\"\n"),
        Lines{
            R"(mapping.toml:7:8: key "tags" in [[org.project]] #1 of org "acme": expected an array of strings, got a string)"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\ntags = [\"cv\", 3]\n"),
        Lines{
            R"(mapping.toml:7:15: key "tags" in [[org.project]] #1 of org "acme": expected an array of strings, got an array containing an integer)"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\ntags = [\"\"]\n"),
        Lines{
            R"(mapping.toml:7:9: key "tags" in [[org.project]] #1 of org "acme": must not be empty)"});
    EXPECT_EQ(
        acme_errors("[org.guard]\nmax_delete_percent = \"10%\"\n"),
        Lines{
            R"(mapping.toml:6:22: key "max_delete_percent" in [org.guard] of org "acme": expected an integer, got a string)"});
}

TEST(MappingErrorTest, MissingRequiredKeys) {
    EXPECT_EQ(errors_of("[[org]]\nslug = \"acme\"\n"),
              (Lines{R"(mapping.toml:1:1: missing required key "name" in [[org]] "acme")",
                     R"(mapping.toml:1:1: missing required key "owner" in [[org]] "acme")"}));
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nuser_type = \"internal\"\n"),
        Lines{
            R"(mapping.toml:5:1: missing required key "name" in [[org.domain]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"corp\"\n"),
        (Lines{
            R"(mapping.toml:5:1: missing required key "group" in [[org.role]] #1 of org "acme")",
            R"(mapping.toml:5:1: missing required key "role" in [[org.role]] #1 of org "acme")"}));
    EXPECT_EQ(
        acme_errors("[[org.project]]\nvisibility = \"public\"\n"),
        Lines{
            R"(mapping.toml:5:1: missing required key "slug" in [[org.project]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.dataset]]\nprojects = []\n"),
        Lines{
            R"(mapping.toml:5:1: missing required key "slug" in [[org.dataset]] #1 of org "acme")"});
    EXPECT_EQ(
        acme_errors("[[org.grant]]\ngroup = \"cn=g\"\nlevel = \"read\"\n"),
        (Lines{
            R"(mapping.toml:5:1: missing required key "source" in [[org.grant]] #1 of org "acme")",
            R"(mapping.toml:5:1: missing required key "project" or "dataset" in [[org.grant]] #1 of org "acme")"}));
}

TEST(MappingErrorTest, EmptyName) {
    EXPECT_EQ(errors_of("[[org]]\nslug = \"acme\"\nname = \"\"\nowner = \"ceo@acme.com\"\n"),
              Lines{R"(mapping.toml:3:8: key "name" in [[org]] "acme": must not be empty)"});
}

TEST(MappingErrorTest, DuplicateOrgSlug) {
    EXPECT_EQ(
        errors_of(std::string(k_acme) + "\n" + std::string(k_acme)),
        Lines{
            R"(mapping.toml:7:8: key "slug" in [[org]] #2: an org with this slug is already defined on line 2)"});
}

TEST(MappingErrorTest, Owner) {
    const auto owner_errors = [](std::string_view owner) {
        return errors_of("[[org]]\nslug = \"acme\"\nname = \"Acme\"\nowner = \"" +
                         std::string(owner) + "\"\n");
    };
    EXPECT_EQ(
        owner_errors("ceo"),
        Lines{R"(mapping.toml:4:9: key "owner" in [[org]] "acme": email address has no '@')"});
    EXPECT_EQ(
        owner_errors("ceo@acme"),
        Lines{
            R"(mapping.toml:4:9: key "owner" in [[org]] "acme": domain "acme" is not fully qualified)"});
    EXPECT_EQ(
        owner_errors("CEO@Acme.COM"),
        Lines{
            R"(mapping.toml:4:9: key "owner" in [[org]] "acme": "CEO@Acme.COM" is not canonical; write "CEO@acme.com")"});
    EXPECT_EQ(
        acme_errors("project_admin_fallback = \"admin@ACME.com.\"\n"),
        Lines{
            R"(mapping.toml:5:26: key "project_admin_fallback" in [[org]] "acme": "admin@ACME.com." is not canonical; write "admin@acme.com")"});
    EXPECT_EQ(
        acme_errors("project_admin_fallback = \"the owner\"\n"),
        Lines{
            R"(mapping.toml:5:26: key "project_admin_fallback" in [[org]] "acme": email address contains spaces or control characters)"});
}

TEST(MappingErrorTest, OwnerMustBeInternalToTheOrg) {
    EXPECT_EQ(
        acme_errors(R"([[org.domain]]
name = "acme.com"
include_subdomains = true

[[org]]
slug = "globex"
name = "Globex"
owner = "boss@eu.acme.com"
)"),
        Lines{
            R"(mapping.toml:12:9: key "owner" in [[org]] "globex": addresses at "acme.com" are internal to org "acme", and a user is internal in one org only; the owner must be internal to this org)"});
    EXPECT_EQ(
        errors_of(R"([[org]]
slug = "acme"
name = "Acme"
owner = "boss@labelers.example"
[[org.domain]]
name = "labelers.example"
user_type = "workforce"
)"),
        Lines{
            R"(mapping.toml:4:9: key "owner" in [[org]] "acme": addresses at "labelers.example" join this org as workforce; the owner must be internal)"});
}

TEST(MappingErrorTest, DomainClaimedTwice) {
    EXPECT_EQ(
        acme_errors(R"([[org.domain]]
name = "acme.com"

[[org]]
slug = "globex"
name = "Globex"
owner = "boss@globex.example"
[[org.domain]]
name = "acme.com"
)"),
        Lines{
            R"(mapping.toml:13:8: key "name" in [[org.domain]] #1 of org "globex": "acme.com" is already claimed by org "acme" on line 6)"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"acme.com\"\n[[org.domain]]\nname = \"acme.com\"\n"),
        Lines{
            R"(mapping.toml:8:8: key "name" in [[org.domain]] #2 of org "acme": "acme.com" is already claimed by org "acme" on line 6)"});
}

TEST(MappingErrorTest, PublicMailProviders) {
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"gmail.com\"\n"),
        Lines{
            R"(mapping.toml:6:8: key "name" in [[org.domain]] #1 of org "acme": "gmail.com" is a public mail provider, where anyone can get an address; it cannot be an org domain)"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"eu.outlook.com\"\n"),
        Lines{
            R"(mapping.toml:6:8: key "name" in [[org.domain]] #1 of org "acme": "eu.outlook.com" is a public mail provider, where anyone can get an address; it cannot be an org domain)"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"co.uk\"\ninclude_subdomains = true\n"),
        Lines{
            R"(mapping.toml:7:22: key "include_subdomains" in [[org.domain]] #1 of org "acme": would take in the public mail provider "hotmail.co.uk")"});
}

TEST(MappingErrorTest, MalformedDomains) {
    const auto domain_errors = [](std::string_view name) {
        return acme_errors("[[org.domain]]\nname = \"" + std::string(name) + "\"\n");
    };
    const std::string at = R"(mapping.toml:6:8: key "name" in [[org.domain]] #1 of org "acme": )";
    EXPECT_EQ(domain_errors("acme"), Lines{at + R"(domain "acme" is not fully qualified)"});
    EXPECT_EQ(domain_errors("acme..com"), Lines{at + R"(domain "acme..com" has an empty label)"});
    EXPECT_EQ(domain_errors("-acme.com"),
              Lines{at + R"(domain label "-acme" starts or ends with '-')"});
    EXPECT_EQ(
        domain_errors("acme_corp.com"),
        Lines{at +
              R"(domain label "acme_corp" has characters other than letters, digits and '-')"});
    EXPECT_EQ(domain_errors("acme .com"),
              Lines{at + "domain contains spaces or control characters"});
    EXPECT_EQ(
        domain_errors("@acme.com"),
        Lines{at + R"(domain label "@acme" has characters other than letters, digits and '-')"});
}

TEST(MappingErrorTest, NonCanonicalDomains) {
    const auto domain_errors = [](std::string_view name) {
        return acme_errors("[[org.domain]]\nname = \"" + std::string(name) + "\"\n");
    };
    const std::string at = R"(mapping.toml:6:8: key "name" in [[org.domain]] #1 of org "acme": )";
    EXPECT_EQ(domain_errors("Acme.COM"),
              Lines{at + R"("Acme.COM" is not canonical; write "acme.com")"});
    EXPECT_EQ(domain_errors("acme.com."),
              Lines{at + R"("acme.com." is not canonical; write "acme.com")"});
    EXPECT_EQ(domain_errors("bücher.example"),
              Lines{at + R"("bücher.example" is not canonical; write "xn--bcher-kva.example")"});
}

TEST(MappingErrorTest, Roles) {
    const std::string owner_rule =
        R"(cannot be "owner": an org's owner is set by its "owner" key and changed only by transfer)";
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"corp\"\ngroup = \"cn=g\"\nrole = \"owner\"\n"),
        Lines{R"(mapping.toml:8:8: key "role" in [[org.role]] #1 of org "acme": )" + owner_rule});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"acme.com\"\nrole = \"owner\"\n"),
        Lines{R"(mapping.toml:7:8: key "role" in [[org.domain]] #1 of org "acme": )" + owner_rule});
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"corp\"\ngroup = \"cn=g\"\nrole = \"superuser\"\n"),
        Lines{
            R"(mapping.toml:8:8: key "role" in [[org.role]] #1 of org "acme": must be one of: admin, member, guest)"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"acme.com\"\nuser_type = \"employee\"\n"),
        Lines{
            R"(mapping.toml:7:13: key "user_type" in [[org.domain]] #1 of org "acme": must be one of: internal, workforce, external)"});
}

// An LDAP source's groups are DNs: rules must name one, and are kept in the
// normal form the connector gives group names, whatever their spelling.
TEST(MappingErrorTest, LdapRuleGroupsAreDns) {
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"corp\"\ngroup = \"admins\"\nrole = \"admin\"\n"),
        Lines{
            R"(mapping.toml:7:9: key "group" in [[org.role]] #1 of org "acme": source "corp" is an LDAP directory, so the group is named by its DN, e.g. "cn=admins,ou=groups,dc=example,dc=com")"});
    auto parsed = parse_mapping(
        "[[org]]\nslug = \"acme\"\nname = \"Acme\"\nowner = \"ceo@acme.com\"\n"
        "[[org.domain]]\nname = \"acme.com\"\n"
        "[[org.role]]\nsource = \"corp\"\ngroup = \"CN=Admins, OU=Groups,DC=Example\"\n"
        "role = \"admin\"\n",
        "mapping.toml", k_sources);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->orgs.at(0).roles.at(0).group, "cn=admins,ou=groups,dc=example");
}

TEST(MappingErrorTest, AdminOnlyForInternalDomains) {
    EXPECT_EQ(
        acme_errors(
            "[[org.domain]]\nname = \"labelers.example\"\nuser_type = \"workforce\"\nrole = "
            "\"admin\"\n"),
        Lines{
            R"(mapping.toml:8:8: key "role" in [[org.domain]] #1 of org "acme": "admin" is only for internal domains (this one is workforce); use "member" or "guest")"});
    EXPECT_EQ(
        acme_errors("[[org.domain]]\nname = \"partner.example\"\nrole = \"admin\"\nuser_type = "
                    "\"external\"\n"),
        Lines{
            R"(mapping.toml:7:8: key "role" in [[org.domain]] #1 of org "acme": "admin" is only for internal domains (this one is external); use "member" or "guest")"});
}

TEST(MappingErrorTest, Sources) {
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"crop\"\ngroup = \"cn=g\"\nrole = \"admin\"\n"),
        Lines{
            R"(mapping.toml:6:10: key "source" in [[org.role]] #1 of org "acme": unknown source "crop"; the daemon configuration defines corp, okta)"});
    EXPECT_EQ(
        acme_errors("[[org.role]]\nsource = \"corp\"\ngroup = \"cn=g\"\nrole = \"admin\"\n", {}),
        Lines{
            R"(mapping.toml:6:10: key "source" in [[org.role]] #1 of org "acme": unknown source "corp"; the daemon configuration defines none)"});
    EXPECT_EQ(
        errors_of(R"([[org]]
slug = "globex"
name = "Globex"
owner = "boss@globex.example"
[[org.role]]
source = "okta"
group = "Everyone"
role = "member"

[[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
)"),
        Lines{
            R"(mapping.toml:6:10: key "source" in [[org.role]] #1 of org "globex": source "okta" is bound to org "acme"; its groups belong to that org)"});
}

TEST(MappingErrorTest, ScimSourceBoundToAnUndefinedOrg) {
    EXPECT_EQ(
        errors_of(
            "[[org]]\nslug = \"globex\"\nname = \"Globex\"\nowner = \"boss@globex.example\"\n"),
        Lines{
            R"(mapping.toml: source "okta" of the daemon configuration is bound to org "acme", which no [[org]] defines)"});
}

TEST(MappingErrorTest, Projects) {
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"Vision\"\n"),
        Lines{
            R"(mapping.toml:6:8: key "slug" in [[org.project]] #1 of org "acme": must be 1 to 63 characters of a-z, 0-9 and "-")"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\n[[org.project]]\nslug = \"vision\"\n"),
        Lines{
            R"(mapping.toml:8:8: key "slug" in [[org.project]] #2 of org "acme": a project with this slug is already defined on line 6)"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\nvisibility = \"internal\"\n"),
        Lines{
            R"(mapping.toml:7:14: key "visibility" in [[org.project]] #1 of org "acme": must be one of: public, private)"});
}

TEST(MappingErrorTest, Datasets) {
    EXPECT_EQ(
        acme_errors("[[org.dataset]]\nslug = \"raw\"\n[[org.dataset]]\nslug = \"raw\"\n"),
        Lines{
            R"(mapping.toml:8:8: key "slug" in [[org.dataset]] #2 of org "acme": a dataset with this slug is already defined on line 6)"});
    EXPECT_EQ(
        acme_errors(
            "[[org.project]]\nslug = \"vision\"\n[[org.dataset]]\nslug = \"raw\"\nprojects = "
            "[\"vision\", \"visoin\"]\n"),
        Lines{
            R"(mapping.toml:9:23: key "projects" in [[org.dataset]] #1 of org "acme": unknown project "visoin"; no [[org.project]] of this org has this slug)"});
}

TEST(MappingErrorTest, ProjectsOfAnotherOrgAreUnknown) {
    EXPECT_EQ(
        acme_errors(R"([[org.project]]
slug = "vision"

[[org]]
slug = "globex"
name = "Globex"
owner = "boss@globex.example"
[[org.dataset]]
slug = "raw"
projects = ["vision"]
)"),
        Lines{
            R"(mapping.toml:14:13: key "projects" in [[org.dataset]] #1 of org "globex": unknown project "vision"; no [[org.project]] of this org has this slug)"});
}

constexpr std::string_view k_declared = R"([[org.project]]
slug = "vision"
[[org.dataset]]
slug = "raw"
[[org.grant]]
source = "corp"
group = "cn=g"
)";  // lines 5-11; grant keys from line 12 on

TEST(MappingErrorTest, Grants) {
    const auto grant_errors = [](std::string_view keys) {
        return acme_errors(std::string(k_declared) + std::string(keys));
    };
    EXPECT_EQ(
        grant_errors("project = \"vison\"\nlevel = \"write\"\n"),
        Lines{
            R"(mapping.toml:12:11: key "project" in [[org.grant]] #1 of org "acme": unknown project "vison"; no [[org.project]] of this org has this slug)"});
    EXPECT_EQ(
        grant_errors("dataset = \"rw\"\nlevel = \"read\"\n"),
        Lines{
            R"(mapping.toml:12:11: key "dataset" in [[org.grant]] #1 of org "acme": unknown dataset "rw"; no [[org.dataset]] of this org has this slug)"});
    EXPECT_EQ(
        grant_errors("project = \"vision\"\ndataset = \"raw\"\nlevel = \"read\"\n"),
        Lines{
            R"(mapping.toml:13:1: key "dataset" in [[org.grant]] #1 of org "acme": cannot be set together with "project"; a grant is for one project or one dataset)"});
    EXPECT_EQ(
        grant_errors("level = \"read\"\n"),
        Lines{
            R"(mapping.toml:9:1: missing required key "project" or "dataset" in [[org.grant]] #1 of org "acme")"});
    EXPECT_EQ(
        grant_errors("project = \"vision\"\nlevel = \"owner\"\n"),
        Lines{
            R"(mapping.toml:13:9: key "level" in [[org.grant]] #1 of org "acme": must be one of: read, write, admin)"});
    EXPECT_EQ(
        grant_errors("project = \"vision\"\n"),
        Lines{
            R"(mapping.toml:9:1: missing required key "level" in [[org.grant]] #1 of org "acme")"});
    EXPECT_EQ(
        grant_errors("dataset = \"raw\"\nlevel = \"admin\"\n"),
        Lines{
            R"(mapping.toml:13:9: key "level" in [[org.grant]] #1 of org "acme": a dataset grant is "read" or "write", not "admin")"});
    EXPECT_EQ(
        acme_errors("[[org.project]]\nslug = \"vision\"\n[[org.grant]]\nsource = \"corp\"\ngroup = "
                    "\"\"\nproject = \"vision\"\nlevel = \"read\"\n"),
        Lines{
            R"(mapping.toml:9:9: key "group" in [[org.grant]] #1 of org "acme": must not be empty)"});
}

TEST(MappingErrorTest, GuardRanges) {
    EXPECT_EQ(
        acme_errors("[org.guard]\nmax_delete_percent = 101\nmax_delete_count = -1\n"),
        (Lines{
            R"(mapping.toml:6:22: key "max_delete_percent" in [org.guard] of org "acme": must be between 0 and 100)",
            R"(mapping.toml:7:20: key "max_delete_count" in [org.guard] of org "acme": must be between 0 and 1000000000)"}));
}

TEST(MappingErrorTest, TomlSyntaxError) {
    const Lines errors = errors_of("[[org]]\nslug = \"acme\nname = \"x\"\n");
    ASSERT_EQ(errors.size(), 1U);
    EXPECT_TRUE(errors[0].starts_with("mapping.toml:2:")) << errors[0];
    EXPECT_NE(errors[0].find(": TOML syntax error: "), std::string::npos) << errors[0];
}

TEST(MappingErrorTest, AllErrorsAreReportedInFileOrder) {
    EXPECT_EQ(
        errors_of(R"([[org]]
slug = "acme"
name = "Acme"
owner = "ceo@Acme.com"

  [[org.domain]]
  name = "gmail.com"

  [[org.domain]]
  name = "labelers.example"
  user_type = "workforce"
  rol = "guest"

  [[org.grant]]
  source = "corp"
  group = "cn=x"
  project = "vision"
  level = "write"

  [org.guard]
  max_delete_percent = 200
)"),
        (Lines{
            R"(mapping.toml:4:9: key "owner" in [[org]] "acme": "ceo@Acme.com" is not canonical; write "ceo@acme.com")",
            R"(mapping.toml:7:10: key "name" in [[org.domain]] #1 of org "acme": "gmail.com" is a public mail provider, where anyone can get an address; it cannot be an org domain)",
            R"(mapping.toml:12:3: unknown key "rol" in [[org.domain]] #2 of org "acme")",
            R"(mapping.toml:17:13: key "project" in [[org.grant]] #1 of org "acme": unknown project "vision"; no [[org.project]] of this org has this slug)",
            R"(mapping.toml:21:24: key "max_delete_percent" in [org.guard] of org "acme": must be between 0 and 100)",
        }));
}

// --- files ---

TEST(LoadMappingTest, ReadsTheFile) {
    const fs::path file = fs::path(testing::TempDir()) / "orgsync_mapping_test.toml";
    {
        std::ofstream out(file);
        out << k_acme;
    }
    const auto mapping = load_mapping(file, k_sources);
    fs::remove(file);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().front().to_string();
    EXPECT_EQ(mapping->file, file);
    EXPECT_EQ(mapping->orgs.size(), 1U);
}

TEST(LoadMappingTest, MissingFile) {
    const auto mapping = load_mapping("/nonexistent/mapping.toml", k_sources);
    ASSERT_FALSE(mapping.has_value());
    ASSERT_EQ(mapping.error().size(), 1U);
    EXPECT_EQ(mapping.error()[0].to_string(),
              "/nonexistent/mapping.toml: cannot read the file: No such file or directory");
}

}  // namespace
}  // namespace orgsync::mapping
