// The LDAP connector against a real slapd (tests/support/slapd.hpp) started
// on 127.0.0.1 for each test, with a generated directory: full reads with
// paging under a server size limit, every group schema, nested groups,
// DN spelling, renames, deletions, disabled accounts, incremental reads,
// failures of every kind, failover and TLS.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/ldap/ldap_source.hpp"
#include "connectors/ldap/live_sync.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "tests/support/slapd.hpp"

namespace orgsync::ldap {
namespace {

namespace fs = std::filesystem;
using directory::OrgRole;
using directory::Store;
using orgsync::testing::Slapd;
using orgsync::testing::SlapdOptions;

constexpr std::string_view k_source = "corp";

// ---- directory content ------------------------------------------------------

struct TestUser {
    std::string uid;
    std::string mail;   // empty: no mail attribute
    std::string extra;  // more LDIF lines (each ending in \n)
};

std::string user_dn(const Slapd& slapd, const std::string& uid) {
    return "uid=" + uid + ",ou=people," + slapd.suffix();
}

std::string group_dn(const Slapd& slapd, const std::string& cn) {
    return "cn=" + cn + ",ou=groups," + slapd.suffix();
}

std::string user_ldif(const Slapd& slapd, const TestUser& user,
                      const std::string& object_classes = "objectClass: inetOrgPerson\n") {
    std::string ldif = "dn: " + user_dn(slapd, user.uid) + "\n" + object_classes +
                       "uid: " + user.uid + "\ncn: " + user.uid + "\nsn: " + user.uid + "\n";
    if (!user.mail.empty()) {
        ldif += "mail: " + user.mail + "\n";
    }
    return ldif + user.extra + "\n";
}

// A groupOfNames (or another schema) with members given as full values.
std::string group_ldif(const Slapd& slapd, const std::string& cn, const std::string& object_class,
                       const std::string& attribute, const std::vector<std::string>& values,
                       const std::string& extra = "") {
    std::string ldif =
        "dn: " + group_dn(slapd, cn) + "\nobjectClass: " + object_class + "\ncn: " + cn + "\n";
    for (const auto& value : values) {
        ldif += attribute + ": " + value + "\n";
    }
    return ldif + extra + "\n";
}

std::vector<TestUser> numbered_users(int count, int from = 0) {
    std::vector<TestUser> users;
    for (int i = from; i < from + count; ++i) {
        const std::string uid = "user" + std::to_string(i);
        users.push_back({uid, uid + "@acme.com", ""});
    }
    return users;
}

void add_users(Slapd& slapd, const std::vector<TestUser>& users,
               const std::string& object_classes = "objectClass: inetOrgPerson\n") {
    std::string ldif;
    for (const auto& user : users) {
        ldif += user_ldif(slapd, user, object_classes);
    }
    slapd.add(ldif);
}

// ---- the source and the mapping ---------------------------------------------

LdapSourceConfig source_config(const Slapd& slapd) {
    LdapSourceConfig config;
    config.uris = {slapd.uri()};
    config.bind_dn = slapd.reader_dn();
    config.bind_password_file = slapd.reader_password_file();
    config.user_base = "ou=people," + slapd.suffix();
    config.group_base = "ou=groups," + slapd.suffix();
    config.timeout = std::chrono::seconds(5);
    config.page_size = 100;
    return config;
}

const sync::SourceSpec k_spec{std::string(k_source), "ldap", ""};

// Org acme: acme.com is internal; a role rule makes `admins` admins and a
// grant rule gives `vision` write on project vision.
// `text` as a TOML basic string.
std::string toml_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '\\' || c == '"') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    return out + "\"";
}

mapping::Mapping make_mapping(const std::string& admins_dn, const std::string& vision_dn,
                              int max_delete_percent = 50) {
    const std::string text =
        "[[org]]\nslug = \"acme\"\nname = \"Acme\"\nowner = \"ceo@acme.com\"\n"
        "  [[org.domain]]\n  name = \"acme.com\"\n"
        "  [[org.role]]\n  source = \"corp\"\n  group = " +
        toml_string(admins_dn) +
        "\n  role = \"admin\"\n"
        "  [[org.project]]\n  slug = \"vision\"\n"
        "  [[org.grant]]\n  source = \"corp\"\n  group = " +
        toml_string(vision_dn) +
        "\n  project = \"vision\"\n  level = \"write\"\n"
        "  [org.guard]\n  max_delete_percent = " +
        std::to_string(max_delete_percent) + "\n";
    auto parsed = mapping::parse_mapping(text, "mapping.toml", {{"corp", "ldap"}});
    if (!parsed) {
        std::string errors;
        for (const auto& error : parsed.error()) {
            errors += error.to_string() + "\n";
        }
        throw std::runtime_error("mapping: " + errors);
    }
    return *parsed;
}

class LdapSync : public ::testing::Test {
  protected:
    void start(SlapdOptions options = {}) {
        m_slapd = std::make_unique<Slapd>(std::move(options));
        auto opened = Store::open(m_slapd->dir() / "orgsync.db");
        ASSERT_TRUE(opened) << opened.error().message;
        m_store = std::move(*opened);
        m_config = source_config(*m_slapd);
        m_mapping = make_mapping(group_dn(*m_slapd, "admins"), group_dn(*m_slapd, "vision"));
    }

    LdapSyncReport sync(LdapSyncOptions options = {}) {
        auto report = sync_ldap_source(*m_store, m_mapping, k_spec, m_config, options);
        if (!report) {
            ADD_FAILURE() << report.error().message;
            return {};
        }
        return std::move(*report);
    }

    // acme's members: email → role.
    std::map<std::string, OrgRole> members() {
        std::map<std::string, OrgRole> out;
        auto org = m_store->find_org("acme");
        if (!org || !*org) {
            return out;
        }
        auto list = m_store->list_members((*org)->id);
        EXPECT_TRUE(list);
        for (const auto& member : *list) {
            out[member.email] = member.role;
        }
        return out;
    }

    bool active(const std::string& email) {
        auto users = m_store->list_users();
        EXPECT_TRUE(users);
        for (const auto& user : *users) {
            if (user.email == email) {
                return user.active;
            }
        }
        ADD_FAILURE() << "no user " << email;
        return false;
    }

    std::set<std::string> mirrored_emails() {
        std::set<std::string> out;
        auto users = m_store->list_source_users(k_source);
        EXPECT_TRUE(users);
        for (const auto& user : *users) {
            out.insert(user.email);
        }
        return out;
    }

    // The project level `email` has on vision, from the policy engine.
    std::string decide(const std::string& email, const std::string& action) {
        auto decision = directory::authorize(
            *m_store->snapshot(),
            {.user = email, .org = "acme", .project = "vision", .action = action});
        if (!decision) {
            return "error: " + decision.error().message;
        }
        return decision->allow ? "allow" : "deny";
    }

    std::unique_ptr<Slapd> m_slapd;
    std::unique_ptr<Store> m_store;
    LdapSourceConfig m_config;
    mapping::Mapping m_mapping;
};

// ---- full reads ---------------------------------------------------------------

TEST_F(LdapSync, PagedReadReturnsEveryUserPastTheServerSizeLimit) {
    start({.size_limit = 25});
    add_users(*m_slapd, numbered_users(90));
    m_config.page_size = 20;
    const auto report = sync();
    EXPECT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "full");
    EXPECT_EQ(mirrored_emails().size(), 90U);
    EXPECT_EQ(members().size(), 91U);  // and the owner
    EXPECT_GE(report.stats.pages, 5U);
}

TEST_F(LdapSync, AnUnpagedSearchPastTheSizeLimitIsASizeLimitFailure) {
    start({.size_limit = 25});
    add_users(*m_slapd, numbered_users(40));
    auto password = read_secret_file(m_config.bind_password_file);
    ASSERT_TRUE(password);
    auto connection = Connection::open(m_config, *password);
    ASSERT_TRUE(connection) << connection.error().message;
    std::size_t entries = 0;
    auto searched = connection->search(
        {.base = m_config.user_base, .filter = "(objectClass=inetOrgPerson)", .paged = false},
        [&](Entry&&) -> Result<void> {
            ++entries;
            return {};
        });
    ASSERT_FALSE(searched);
    EXPECT_EQ(searched.error().kind, FailureKind::size_limit) << searched.error().message;
    EXPECT_LE(entries, 25U);
}

TEST_F(LdapSync, MoreChangesThanTheSizeLimitAreReadInFull) {
    start({.size_limit = 25});
    add_users(*m_slapd, numbered_users(30));
    m_config.page_size = 20;
    ASSERT_EQ(sync().run.result, "applied");
    add_users(*m_slapd, numbered_users(30, 100));  // an unpaged refresh would stop at 25
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "full");
    EXPECT_EQ(report.reason, "more changes than the server's size limit");
    EXPECT_EQ(mirrored_emails().size(), 60U);
}

// Every group schema: the admins group makes user1 an admin, vision gives
// user2 write on the project; user3 is in neither.
struct SchemaCase {
    std::string name;
    std::string member_attribute;  // the source's group_member_attribute
    std::string object_class;
    std::string group_filter;
};

void PrintTo(const SchemaCase& schema, std::ostream* out) {
    *out << schema.name;
}

class GroupSchemas : public LdapSync, public ::testing::WithParamInterface<SchemaCase> {};

TEST_P(GroupSchemas, MembersGetTheirRolesAndGrants) {
    const SchemaCase& schema = GetParam();
    start();
    add_users(*m_slapd, numbered_users(4, 1));
    const auto value = [&](int i) {
        const std::string uid = "user" + std::to_string(i);
        return schema.member_attribute == "memberUid" ? uid : user_dn(*m_slapd, uid);
    };
    std::string attribute = schema.member_attribute;
    if (attribute == "memberOf") {
        attribute = "member";  // the memberof overlay derives memberOf from member
    }
    m_slapd->add(group_ldif(*m_slapd, "admins", schema.object_class, attribute, {value(1)}) +
                 group_ldif(*m_slapd, "vision", schema.object_class, attribute, {value(2)}));
    m_config.group_member_attribute = schema.member_attribute;
    m_config.group_filter = schema.group_filter;

    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    const auto roles = members();
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::admin);
    EXPECT_EQ(roles.at("user2@acme.com"), OrgRole::member);
    EXPECT_EQ(roles.at("user3@acme.com"), OrgRole::member);
    EXPECT_EQ(decide("user2@acme.com", "project.resources.write"), "allow");
    EXPECT_EQ(decide("user3@acme.com", "project.resources.write"), "deny");
    EXPECT_EQ(report.stats.unresolved_members, 0U);
}

INSTANTIATE_TEST_SUITE_P(
    AllSchemas, GroupSchemas,
    ::testing::Values(
        SchemaCase{"groupOfNames", "member", "groupOfNames", "(objectClass=groupOfNames)"},
        SchemaCase{"groupOfUniqueNames", "uniqueMember", "groupOfUniqueNames",
                   "(objectClass=groupOfUniqueNames)"},
        SchemaCase{"posixGroup", "memberUid", "posixGroup\ngidNumber: 100",
                   "(objectClass=posixGroup)"},
        SchemaCase{"memberOf", "memberOf", "groupOfNames", "(objectClass=groupOfNames)"}),
    [](const ::testing::TestParamInfo<SchemaCase>& param) { return param.param.name; });

TEST_F(LdapSync, NestedGroupsPassMembersOnAndCyclesEnd) {
    start();
    add_users(*m_slapd, numbered_users(3, 1));
    // admins ⊃ leads ⊃ team ⊃ admins (a cycle); user1 is in team only.
    const auto dn = [&](const char* cn) { return group_dn(*m_slapd, cn); };
    m_slapd->add(
        group_ldif(*m_slapd, "team", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}) +
        group_ldif(*m_slapd, "leads", "groupOfNames", "member", {dn("team")}) +
        group_ldif(*m_slapd, "admins", "groupOfNames", "member",
                   {dn("leads"), user_dn(*m_slapd, "user2")}) +
        group_ldif(*m_slapd, "vision", "groupOfNames", "member", {dn("admins")}));
    m_slapd->modify("dn: " + dn("team") +
                    "\nchangetype: modify\nadd: member\nmember: " + dn("admins") + "\n\n");

    auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_GE(report.stats.cycles, 1U);
    auto roles = members();
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::admin);
    EXPECT_EQ(roles.at("user2@acme.com"), OrgRole::admin);
    EXPECT_EQ(roles.at("user3@acme.com"), OrgRole::member);
    EXPECT_EQ(decide("user1@acme.com", "project.resources.write"), "allow");

    // With nesting off, only direct members count.
    m_config.nested_groups = false;
    report = sync({.full = true});
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    roles = members();
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::member);
    EXPECT_EQ(roles.at("user2@acme.com"), OrgRole::admin);
}

TEST_F(LdapSync, DnCaseAndSpacingDoNotMatter) {
    start();
    add_users(*m_slapd, numbered_users(2, 1));
    // Member values spelled differently from the entries, and rules spelled
    // differently again.
    const std::string suffix_upper = "DC=Example, DC=COM";
    m_slapd->add(group_ldif(*m_slapd, "admins", "groupOfNames", "member",
                            {"UID=User1, OU=People, " + suffix_upper}) +
                 group_ldif(*m_slapd, "vision", "groupOfNames", "member",
                            {"uid = user2 ,ou=PEOPLE," + m_slapd->suffix()}));
    m_mapping = make_mapping("CN=Admins,OU=Groups, " + suffix_upper,
                             " cn=VISION , ou=groups," + m_slapd->suffix());
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.stats.unresolved_members, 0U);
    const auto roles = members();
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::admin);
    EXPECT_EQ(decide("user2@acme.com", "project.resources.write"), "allow");
}

TEST_F(LdapSync, HostileValuesInNamesAndFiltersAreJustValues) {
    start();
    // A group whose name carries DN and filter metacharacters, a user whose
    // uid does too, and a configured filter with escaped values.
    m_slapd->add("dn: uid=o\\,k+cn=x*)(uid=*,ou=people," + m_slapd->suffix() +
                 "\nobjectClass: inetOrgPerson\nuid: o,k\ncn: x*)(uid=*\nsn: s\n"
                 "mail: hostile@acme.com\n\n");
    add_users(*m_slapd, numbered_users(1, 1));
    const std::string hostile_group = "cn=adm\\2C ins (*)\\, ou=x,ou=groups," + m_slapd->suffix();
    m_slapd->add("dn: " + hostile_group +
                 "\nobjectClass: groupOfNames\ncn: adm, ins (*), ou=x\nmember: "
                 "uid=o\\,k+cn=x*)(uid=*,ou=people," +
                 m_slapd->suffix() + "\n\n");
    m_mapping = make_mapping(hostile_group, group_dn(*m_slapd, "vision"));
    m_config.user_filter = "(&(objectClass=inetOrgPerson)(!(cn=\\2a\\29\\28nobody)))";
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    const auto roles = members();
    EXPECT_EQ(roles.at("hostile@acme.com"), OrgRole::admin);
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::member);
}

// ---- changes between runs ---------------------------------------------------

TEST_F(LdapSync, RenameIsAnUpdateNotARemoval) {
    start();
    add_users(*m_slapd, numbered_users(5, 1));
    m_slapd->add(
        group_ldif(*m_slapd, "admins", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}));
    ASSERT_EQ(sync().run.result, "applied");
    // The entry moves (new RDN) and its address changes.
    m_slapd->modify("dn: " + user_dn(*m_slapd, "user1") +
                    "\nchangetype: modrdn\nnewrdn: uid=renamed\ndeleteoldrdn: 1\n\n"
                    "dn: " +
                    user_dn(*m_slapd, "renamed") +
                    "\nchangetype: modify\nreplace: mail\nmail: renamed@acme.com\n\n");
    // groupOfNames keeps the old member DN without refint; point it at the new one.
    m_slapd->modify(
        "dn: " + group_dn(*m_slapd, "admins") +
        "\nchangetype: modify\nreplace: member\nmember: " + user_dn(*m_slapd, "renamed") + "\n\n");
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    bool renamed = false;
    for (const auto& change : report.run.plan.changes) {
        EXPECT_NE(change.kind, sync::ChangeKind::remove_member) << change.email();
        renamed = renamed || (change.kind == sync::ChangeKind::change_email &&
                              change.email() == "renamed@acme.com");
    }
    EXPECT_TRUE(renamed);
    const auto roles = members();
    EXPECT_EQ(roles.at("renamed@acme.com"), OrgRole::admin);
    EXPECT_FALSE(roles.contains("user1@acme.com"));
}

TEST_F(LdapSync, DeletedAndDisabledUsers) {
    start({.extra_schema = true});
    m_config.flavor = LdapFlavor::active_directory;
    m_config.user_filter = "(objectClass=orgsyncTestObject)";
    // AD-like users: a binary objectGUID and userAccountControl.
    std::vector<TestUser> users;
    for (int i = 1; i <= 10; ++i) {
        std::string guid(16, '\0');
        guid[0] = static_cast<char>(i);
        guid[15] = '\x7f';
        users.push_back(
            {"user" + std::to_string(i), "user" + std::to_string(i) + "@acme.com",
             orgsync::testing::ldif_line("objectGUID", guid) + "userAccountControl: 512\n"});
    }
    add_users(*m_slapd, users, "objectClass: inetOrgPerson\nobjectClass: orgsyncTestObject\n");
    ASSERT_EQ(sync().run.result, "applied");
    auto mirrored = m_store->list_source_users(k_source);
    ASSERT_TRUE(mirrored);
    ASSERT_EQ(mirrored->size(), 10U);
    EXPECT_EQ(mirrored->front().external_id.size(), 36U);  // GUID text form

    m_slapd->modify("dn: " + user_dn(*m_slapd, "user2") +
                    "\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: "
                    "514\n\n"
                    "dn: " +
                    user_dn(*m_slapd, "user3") + "\nchangetype: delete\n\n");
    const auto report = sync({.full = true});
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_FALSE(active("user2@acme.com"));
    EXPECT_TRUE(active("user4@acme.com"));
    const auto roles = members();
    EXPECT_FALSE(roles.contains("user3@acme.com"));
    EXPECT_TRUE(roles.contains("user2@acme.com"));  // deactivated, not removed
    EXPECT_EQ(decide("user2@acme.com", "project.resources.read"), "deny");
    // The first run left the source settled, so this one read the stored
    // mirror's digests only once it found the directory changed: the
    // deleted entry is gone from the mirror too.
    const auto mirror = mirrored_emails();
    EXPECT_FALSE(mirror.contains("user3@acme.com"));
    EXPECT_EQ(mirror.size(), 9U);
}

TEST_F(LdapSync, DeletionGuardBlocksAMassDisappearance) {
    start();
    add_users(*m_slapd, numbered_users(20, 1));
    m_mapping = make_mapping(group_dn(*m_slapd, "admins"), group_dn(*m_slapd, "vision"), 10);
    ASSERT_EQ(sync().run.result, "applied");
    std::string ldif;
    for (int i = 1; i <= 5; ++i) {
        ldif += "dn: " + user_dn(*m_slapd, "user" + std::to_string(i)) + "\nchangetype: delete\n\n";
    }
    m_slapd->modify(ldif);
    auto report = sync({.full = true});
    EXPECT_EQ(report.run.result, "blocked") << report.run.message;
    EXPECT_EQ(members().size(), 21U);
    report = sync({.force = true, .full = true});
    EXPECT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(members().size(), 16U);
}

// Users and groups read incrementally through content sync must end in the
// same state as a full read of the same directory.
TEST_F(LdapSync, ContentSyncReadsOnlyChangesAndConverges) {
    start();
    add_users(*m_slapd, numbered_users(30, 1));
    m_slapd->add(
        group_ldif(*m_slapd, "admins", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}));
    auto report = sync();
    ASSERT_EQ(report.run.result, "applied");
    ASSERT_EQ(report.mode, "full");

    m_slapd->modify("dn: " + user_dn(*m_slapd, "user5") +
                    "\nchangetype: modify\nreplace: mail\nmail: five@acme.com\n\n"
                    "dn: " +
                    user_dn(*m_slapd, "user6") + "\nchangetype: delete\n\n");
    add_users(*m_slapd, numbered_users(1, 100));
    report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "incremental") << report.reason;
    EXPECT_LE(report.stats.users, 2U);  // the changed and the added entry, not all 30
    auto roles = members();
    EXPECT_TRUE(roles.contains("five@acme.com"));
    EXPECT_FALSE(roles.contains("user5@acme.com"));
    EXPECT_FALSE(roles.contains("user6@acme.com"));
    EXPECT_TRUE(roles.contains("user100@acme.com"));
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::admin);

    // Nothing changed: an incremental run with nothing to do.
    report = sync();
    EXPECT_EQ(report.mode, "incremental");
    EXPECT_TRUE(report.run.plan.empty());

    // A group change makes the run read everything.
    m_slapd->modify("dn: " + group_dn(*m_slapd, "admins") +
                    "\nchangetype: modify\nadd: member\nmember: " + user_dn(*m_slapd, "user2") +
                    "\n\n");
    report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "full");
    EXPECT_EQ(report.reason, "groups changed");
    EXPECT_EQ(members().at("user2@acme.com"), OrgRole::admin);

    // The incremental path ended where a fresh full read ends.
    const auto incremental_members = members();
    auto full_store = Store::open(m_slapd->dir() / "full.db");
    ASSERT_TRUE(full_store);
    auto full = sync_ldap_source(**full_store, m_mapping, k_spec, m_config, {.full = true});
    ASSERT_TRUE(full);
    auto org = (*full_store)->find_org("acme");
    ASSERT_TRUE(org && *org);
    std::map<std::string, OrgRole> full_members;
    const auto listed = (*full_store)->list_members((*org)->id);
    ASSERT_TRUE(listed);
    for (const auto& member : *listed) {
        full_members[member.email] = member.role;
    }
    EXPECT_EQ(full_members, incremental_members);
}

TEST_F(LdapSync, ChangeMarkersReadOnlyChangedEntries) {
    start({.extra_schema = true});
    m_config.flavor = LdapFlavor::ds389;
    m_config.user_filter = "(objectClass=orgsyncTestObject)";
    m_config.clock_skew = std::chrono::seconds(0);  // slapd runs on this machine's clock
    std::vector<TestUser> users;
    for (int i = 1; i <= 20; ++i) {
        users.push_back(
            {"user" + std::to_string(i), "user" + std::to_string(i) + "@acme.com",
             "nsUniqueId: 0000000" + std::to_string(i) + "-aaaaaaaa-bbbbbbbb-cccccccc\n"});
    }
    const std::string classes = "objectClass: inetOrgPerson\nobjectClass: orgsyncTestObject\n";
    const TestUser last = users.back();
    users.pop_back();
    add_users(*m_slapd, users, classes);
    m_slapd->add(
        group_ldif(*m_slapd, "admins", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}));
    // modifyTimestamp has one-second resolution and the marker's second is
    // read again next time: the last second before the sync holds one entry.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    add_users(*m_slapd, {last}, classes);
    ASSERT_EQ(sync().run.result, "applied");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    m_slapd->modify("dn: " + user_dn(*m_slapd, "user7") +
                    "\nchangetype: modify\nreplace: mail\nmail: seven@acme.com\n\n");
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "incremental") << report.reason;
    EXPECT_LE(report.stats.users, 2U);
    const auto roles = members();
    EXPECT_TRUE(roles.contains("seven@acme.com"));
    EXPECT_FALSE(roles.contains("user7@acme.com"));
    EXPECT_EQ(roles.at("user1@acme.com"), OrgRole::admin);
}

// 389-ds-like users (nsUniqueId) for the change-marker tests.
std::vector<TestUser> ds389_users(int count, int from = 1) {
    std::vector<TestUser> users;
    for (int i = from; i < from + count; ++i) {
        users.push_back({"user" + std::to_string(i), "user" + std::to_string(i) + "@acme.com",
                         fmt::format("nsUniqueId: {:08x}-aaaaaaaa-bbbbbbbb-cccccccc\n", i)});
    }
    return users;
}

constexpr std::string_view k_ds389_classes =
    "objectClass: inetOrgPerson\nobjectClass: orgsyncTestObject\n";

// A group changed in the same second as the marker is still seen: groups
// found again are compared by membership, not only by their timestamp.
TEST_F(LdapSync, ChangeMarkersSeeAGroupChangedInTheMarkersSecond) {
    start({.extra_schema = true});
    m_config.flavor = LdapFlavor::ds389;
    m_config.user_filter = "(objectClass=orgsyncTestObject)";
    m_config.clock_skew = std::chrono::seconds(0);
    add_users(*m_slapd, ds389_users(3), std::string(k_ds389_classes));
    m_slapd->add(
        group_ldif(*m_slapd, "admins", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}));
    ASSERT_EQ(sync().run.result, "applied");
    m_slapd->modify("dn: " + group_dn(*m_slapd, "admins") +
                    "\nchangetype: modify\nadd: member\nmember: " + user_dn(*m_slapd, "user2") +
                    "\n\n");
    auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "full");
    EXPECT_EQ(report.reason, "groups changed");
    EXPECT_EQ(members().at("user2@acme.com"), OrgRole::admin);
    // Found again, unchanged: not a change.
    report = sync();
    EXPECT_EQ(report.mode, "incremental") << report.reason;
}

// An empty first read still leaves a marker: users added later are read.
TEST_F(LdapSync, ChangeMarkersAfterAnEmptyFirstRead) {
    start({.extra_schema = true});
    m_config.flavor = LdapFlavor::ds389;
    m_config.user_filter = "(objectClass=orgsyncTestObject)";
    m_config.clock_skew = std::chrono::seconds(0);
    m_slapd->add(group_ldif(*m_slapd, "admins", "groupOfNames", "member",
                            {"cn=nobody," + m_slapd->suffix()}));
    ASSERT_EQ(sync().run.result, "applied");
    add_users(*m_slapd, ds389_users(3), std::string(k_ds389_classes));
    const auto report = sync();
    ASSERT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.mode, "incremental") << report.reason;
    EXPECT_EQ(members().size(), 4U);
}

TEST_F(LdapSync, AChangedMappingOrSearchMakesTheNextRunFull) {
    start();
    add_users(*m_slapd, numbered_users(3, 1));
    ASSERT_EQ(sync().run.result, "applied");
    EXPECT_EQ(sync().mode, "incremental");
    m_mapping = make_mapping(group_dn(*m_slapd, "admins"), group_dn(*m_slapd, "vision"), 40);
    auto report = sync();
    EXPECT_EQ(report.mode, "full");
    EXPECT_EQ(report.reason, "the source's settings or the mapping changed");
    EXPECT_EQ(sync().mode, "incremental");
    m_config.user_filter = "(&(objectClass=inetOrgPerson)(mail=*))";
    EXPECT_EQ(sync().mode, "full");
}

TEST_F(LdapSync, AnLdapsServerThatNeverHandshakesTimesOut) {
    start();
    // A port that accepts connections (the kernel's backlog) and never
    // answers: TLS would wait for the server's hello forever.
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(listener, 8), 0);
    socklen_t length = sizeof address;
    ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
    m_config.uris = {"ldaps://127.0.0.1:" + std::to_string(ntohs(address.sin_port))};
    m_config.timeout = std::chrono::seconds(1);
    const auto started = std::chrono::steady_clock::now();
    const auto report = sync();
    close(listener);
    EXPECT_EQ(report.run.result, "failed");
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
}

// ---- failures -----------------------------------------------------------------

TEST_F(LdapSync, ServerKilledMidReadFailsTheRunAndRemovesNothing) {
    start();
    add_users(*m_slapd, numbered_users(300, 1));
    m_config.page_size = 50;
    ASSERT_EQ(sync().run.result, "applied");
    const auto before = members();
    bool killed = false;
    const auto report = sync({.full = true, .progress = [&](std::size_t) {
                                  if (!killed) {
                                      killed = true;
                                      m_slapd->kill();
                                  }
                              }});
    EXPECT_TRUE(killed);
    EXPECT_EQ(report.run.result, "failed");
    EXPECT_NE(report.run.message.find("unreachable"), std::string::npos) << report.run.message;
    EXPECT_EQ(members(), before);
    EXPECT_EQ(mirrored_emails().size(), 300U);

    // After recovery the next run converges.
    m_slapd->restart();
    EXPECT_EQ(sync().run.result, "applied");
    EXPECT_EQ(members(), before);
}

TEST_F(LdapSync, StoppedServerTimesOut) {
    start();
    add_users(*m_slapd, numbered_users(5, 1));
    ASSERT_EQ(sync().run.result, "applied");
    m_config.timeout = std::chrono::seconds(1);
    m_slapd->stop();
    const auto report = sync({.full = true});
    m_slapd->resume();
    EXPECT_EQ(report.run.result, "failed");
    EXPECT_NE(report.run.message.find("timeout"), std::string::npos) << report.run.message;
    EXPECT_EQ(members().size(), 6U);
}

TEST_F(LdapSync, UnreachableBindFailureAndMissingBaseFailTheRun) {
    start();
    add_users(*m_slapd, numbered_users(5, 1));
    ASSERT_EQ(sync().run.result, "applied");

    LdapSourceConfig unreachable = m_config;
    unreachable.uris = {m_slapd->unused_uri()};
    auto report = sync_ldap_source(*m_store, m_mapping, k_spec, unreachable, {});
    ASSERT_TRUE(report);
    EXPECT_EQ(report->run.result, "failed");
    EXPECT_NE(report->run.message.find("unreachable"), std::string::npos) << report->run.message;

    LdapSourceConfig wrong_password = m_config;
    const fs::path password = m_slapd->dir() / "wrong-password";
    std::ofstream(password) << "not the password";
    wrong_password.bind_password_file = password;
    report = sync_ldap_source(*m_store, m_mapping, k_spec, wrong_password, {});
    ASSERT_TRUE(report);
    EXPECT_EQ(report->run.result, "failed");
    EXPECT_NE(report->run.message.find("bind_failed"), std::string::npos) << report->run.message;
    EXPECT_EQ(report->run.message.find("not the password"), std::string::npos);

    LdapSourceConfig missing_base = m_config;
    missing_base.user_base = "ou=nowhere," + m_slapd->suffix();
    report = sync_ldap_source(*m_store, m_mapping, k_spec, missing_base, {.full = true});
    ASSERT_TRUE(report);
    EXPECT_EQ(report->run.result, "failed");

    EXPECT_EQ(members().size(), 6U);
    auto runs = m_store->sync_runs(k_source, 10);
    ASSERT_TRUE(runs);
    EXPECT_EQ(std::count_if(runs->begin(), runs->end(),
                            [](const auto& run) { return run.result == "failed"; }),
              3);
}

TEST_F(LdapSync, FailsOverToTheNextUri) {
    start();
    add_users(*m_slapd, numbered_users(3, 1));
    m_config.uris = {m_slapd->unused_uri(), m_slapd->uri()};
    const auto report = sync();
    EXPECT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(mirrored_emails().size(), 3U);
}

TEST_F(LdapSync, StartTlsAndLdapsWithTheRightCaOnly) {
    start({.tls = true});
    add_users(*m_slapd, numbered_users(3, 1));
    m_config.start_tls = true;
    m_config.ca_file = m_slapd->ca_file();
    auto report = sync();
    EXPECT_EQ(report.run.result, "applied") << report.run.message;

    m_config.start_tls = false;
    m_config.uris = {m_slapd->ldaps_uri()};
    report = sync({.full = true});
    EXPECT_EQ(report.run.result, "applied") << report.run.message;

    for (const bool start_tls : {true, false}) {
        LdapSourceConfig wrong = m_config;
        wrong.start_tls = start_tls;
        wrong.uris = {start_tls ? m_slapd->uri() : m_slapd->ldaps_uri()};
        wrong.ca_file = m_slapd->wrong_ca_file();
        auto refused = sync_ldap_source(*m_store, m_mapping, k_spec, wrong, {.full = true});
        ASSERT_TRUE(refused);
        EXPECT_EQ(refused->run.result, "failed");
        EXPECT_NE(refused->run.message.find("tls"), std::string::npos) << refused->run.message;
    }
    EXPECT_EQ(mirrored_emails().size(), 3U);
}

TEST_F(LdapSync, AReferralFailsTheRunUnlessIgnored) {
    start();
    add_users(*m_slapd, numbered_users(4, 1));
    ASSERT_EQ(sync().run.result, "applied");
    // Part of ou=people lives on another server (a subordinate referral).
    m_slapd->add("dn: ou=elsewhere,ou=people," + m_slapd->suffix() +
                 "\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\n"
                 "ref: ldap://ldap.elsewhere.example/ou=elsewhere,ou=people," +
                 m_slapd->suffix() + "\n\n");
    m_slapd->modify("dn: " + user_dn(*m_slapd, "user1") + "\nchangetype: delete\n\n");
    auto report = sync({.full = true});
    EXPECT_EQ(report.run.result, "failed");
    EXPECT_NE(report.run.message.find("referral"), std::string::npos) << report.run.message;
    EXPECT_EQ(members().size(), 5U);  // nobody removed

    m_config.ignore_referrals = true;
    report = sync({.full = true});
    EXPECT_EQ(report.run.result, "applied") << report.run.message;
    EXPECT_EQ(report.stats.references, 1U);
    EXPECT_EQ(members().size(), 4U);
}

// ---- live mode ------------------------------------------------------------------

TEST_F(LdapSync, LiveModeAppliesChangesAsTheyHappen) {
    start();
    add_users(*m_slapd, numbered_users(10, 1));
    m_slapd->add(
        group_ldif(*m_slapd, "admins", "groupOfNames", "member", {user_dn(*m_slapd, "user1")}));
    m_config.live = true;

    std::mutex mutex;
    std::condition_variable ran;
    std::vector<LdapSyncReport> runs;
    LiveSync live(*m_store, m_mapping, k_spec, m_config, [&](const LdapSyncReport& report) {
        const std::lock_guard lock(mutex);
        runs.push_back(report);
        ran.notify_all();
    });
    live.start();
    const auto wait_for_runs = [&](std::size_t count) {
        std::unique_lock lock(mutex);
        return ran.wait_for(lock, std::chrono::seconds(10), [&] { return runs.size() >= count; });
    };
    ASSERT_TRUE(wait_for_runs(1));
    EXPECT_EQ(runs.at(0).mode, "full");
    EXPECT_EQ(members().size(), 11U);
    // Let the persistent searches finish their refresh before changing.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));

    // A user change reaches the store as an incremental run, well within
    // the next interval; the time it took is reported by the benchmark.
    const auto changed_at = std::chrono::steady_clock::now();
    m_slapd->modify("dn: " + user_dn(*m_slapd, "user4") +
                    "\nchangetype: modify\nreplace: mail\nmail: four@acme.com\n\n");
    ASSERT_TRUE(wait_for_runs(2));
    const auto latency = std::chrono::steady_clock::now() - changed_at;
    EXPECT_LT(latency, std::chrono::seconds(5));
    {
        const std::lock_guard lock(mutex);
        EXPECT_EQ(runs.at(1).mode, "incremental");
        EXPECT_EQ(runs.at(1).run.result, "applied") << runs.at(1).run.message;
    }
    EXPECT_TRUE(members().contains("four@acme.com"));

    // A group change: a full read, then listening goes on.
    m_slapd->modify("dn: " + group_dn(*m_slapd, "admins") +
                    "\nchangetype: modify\nadd: member\nmember: " + user_dn(*m_slapd, "user2") +
                    "\n\n");
    ASSERT_TRUE(wait_for_runs(3));
    EXPECT_EQ(members().at("user2@acme.com"), OrgRole::admin);
    m_slapd->modify("dn: " + user_dn(*m_slapd, "user5") + "\nchangetype: delete\n\n");
    ASSERT_TRUE(wait_for_runs(4));
    EXPECT_FALSE(members().contains("user5@acme.com"));

    // The server goes away and comes back: live mode reconnects.
    m_slapd->kill();
    m_slapd->restart();
    add_users(*m_slapd, numbered_users(1, 50));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!members().contains("user50@acme.com") && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(members().contains("user50@acme.com"));
    live.stop();
}

}  // namespace
}  // namespace orgsync::ldap
