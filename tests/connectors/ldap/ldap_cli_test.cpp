// `orgsyncd plan` and `orgsyncd sync` as an admin runs them: the real binary,
// a daemon config and mapping on disk, and a real slapd to read.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/daemon/process.hpp"
#include "tests/support/slapd.hpp"

namespace orgsync::ldap {
namespace {

namespace fs = std::filesystem;
using daemon::test::Result;
using daemon::test::run_orgsyncd;
using orgsync::testing::Slapd;

class LdapCli : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string ldif;
        for (int i = 1; i <= 12; ++i) {
            const std::string uid = "user" + std::to_string(i);
            ldif += "dn: uid=" + uid + ",ou=people," + m_slapd.suffix() +
                    "\nobjectClass: inetOrgPerson\nuid: " + uid + "\ncn: " + uid + "\nsn: " + uid +
                    "\nmail: " + uid + "@acme.com\n\n";
        }
        ldif += "dn: cn=admins,ou=groups," + m_slapd.suffix() +
                "\nobjectClass: groupOfNames\ncn: admins\nmember: uid=user1,ou=people," +
                m_slapd.suffix() + "\n\n";
        m_slapd.add(ldif);
        write_config(m_slapd.uri());
        std::ofstream(m_slapd.dir() / "mapping.toml")
            << "[[org]]\nslug = \"acme\"\nname = \"Acme\"\nowner = \"ceo@acme.com\"\n"
               "  [[org.domain]]\n  name = \"acme.com\"\n"
               "  [[org.role]]\n  source = \"corp\"\n"
               "  group = \"CN=Admins,OU=Groups,DC=Example,DC=Com\"\n  role = \"admin\"\n"
               "  [[org.project]]\n  slug = \"vision\"\n";
    }

    void write_config(const std::string& uri) {
        std::ofstream(config()) << "[store]\npath = \"orgsync.db\"\n"
                                   "[[source]]\nname = \"corp\"\ntype = \"ldap\"\n"
                                   "uri = [\""
                                << uri << "\"]\nbind_dn = \"" << m_slapd.reader_dn()
                                << "\"\nbind_password_file = \""
                                << m_slapd.reader_password_file().string()
                                << "\"\nuser_base = \"ou=people," << m_slapd.suffix()
                                << "\"\ngroup_base = \"ou=groups," << m_slapd.suffix()
                                << "\"\ntimeout = \"2s\"\n";
    }

    fs::path config() const { return m_slapd.dir() / "orgsyncd.toml"; }

    Result orgsyncd(std::vector<std::string> args) {
        args.insert(args.begin() + 1, {"-c", config().string()});
        return run_orgsyncd(args, m_slapd.dir());
    }

    Slapd m_slapd;
};

TEST_F(LdapCli, PlanReadsTheDirectoryAndChangesNothing) {
    const auto planned = orgsyncd({"plan", "--source", "corp"});
    ASSERT_EQ(planned.status, 0) << planned.err;
    EXPECT_NE(planned.out.find("+ member user1@acme.com in acme as internal admin"),
              std::string::npos)
        << planned.out;
    EXPECT_NE(planned.out.find("+ member user12@acme.com in acme as internal member"),
              std::string::npos);
    EXPECT_FALSE(fs::exists(m_slapd.dir() / "orgsync.db"));
}

TEST_F(LdapCli, SyncAppliesThenReadsOnlyChanges) {
    auto synced = orgsyncd({"sync", "--source", "corp"});
    ASSERT_EQ(synced.status, 0) << synced.err;
    EXPECT_EQ(synced.out.rfind("corp: applied (full), ", 0), 0U) << synced.out;

    auto decided = orgsyncd(
        {"authorize", "--user", "user1@acme.com", "--org", "acme", "--action", "org.users.invite"});
    EXPECT_EQ(decided.status, 0) << decided.out << decided.err;

    m_slapd.modify("dn: uid=user3,ou=people," + m_slapd.suffix() + "\nchangetype: delete\n\n");
    synced = orgsyncd({"sync", "--source", "corp"});
    ASSERT_EQ(synced.status, 0) << synced.err;
    EXPECT_EQ(synced.out, "corp: applied (incremental), 1 change, 0 held\n");

    synced = orgsyncd({"sync", "--source", "corp", "--full"});
    ASSERT_EQ(synced.status, 0) << synced.err;
    EXPECT_EQ(synced.out, "corp: applied (full), 0 changes, 0 held\n");
}

TEST_F(LdapCli, AnUnreachableDirectoryFailsTheRunAndPlan) {
    ASSERT_EQ(orgsyncd({"sync"}).status, 0);
    m_slapd.kill();
    const auto synced = orgsyncd({"sync"});
    EXPECT_EQ(synced.status, 1);
    EXPECT_NE(synced.out.find("corp: failed"), std::string::npos) << synced.out;
    EXPECT_NE(synced.out.find("unreachable"), std::string::npos) << synced.out;
    const auto planned = orgsyncd({"plan"});
    EXPECT_EQ(planned.status, 1);
    EXPECT_NE(planned.err.find("corp: unreachable"), std::string::npos) << planned.err;
    // The store still has everyone.
    const auto decided = orgsyncd(
        {"authorize", "--user", "user1@acme.com", "--org", "acme", "--action", "org.users.invite"});
    EXPECT_EQ(decided.status, 0) << decided.out << decided.err;
}

}  // namespace
}  // namespace orgsync::ldap
