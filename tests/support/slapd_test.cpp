// The slapd fixture against the real ldap-utils clients.

#include "tests/support/slapd.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace orgsync::testing {
namespace {

namespace fs = std::filesystem;

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

// ldapsearch -LLL as the reader (anonymous when `bind` is false).
ToolResult search(const Slapd& slapd, std::vector<std::string> args, bool bind = true,
                  const std::string& url = "") {
    std::vector<std::string> argv{
        "ldapsearch", "-LLL", "-x", "-o", "ldif-wrap=no", "-H", url.empty() ? slapd.uri() : url};
    if (bind) {
        argv.insert(argv.end(),
                    {"-D", slapd.reader_dn(), "-y", slapd.reader_password_file().string()});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return run_tool(argv, {"LDAPNOINIT=1"});
}

std::string people(const Slapd& slapd, int n) {
    std::string ldif;
    for (int i = 0; i < n; ++i) {
        std::string uid = "user" + std::to_string(i);
        ldif += "dn: uid=" + uid + ",ou=people," + slapd.suffix() +
                "\nobjectClass: inetOrgPerson\nuid: " + uid + "\ncn: User " + std::to_string(i) +
                "\nsn: " + std::to_string(i) + "\nmail: " + uid + "@example.com\n\n";
    }
    return ldif;
}

TEST(SlapdTest, StartsWithTheBaseEntriesReadableByTheReader) {
    auto started = std::chrono::steady_clock::now();
    Slapd slapd;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    RecordProperty("start_ms", std::to_string(ms));

    ToolResult result = search(slapd, {"-b", slapd.suffix(), "(objectClass=*)", "1.1"});
    ASSERT_EQ(result.status, 0) << result.err;
    for (const char* dn :
         {"dn: dc=example,dc=com\n", "dn: ou=people,dc=example,dc=com\n",
          "dn: ou=groups,dc=example,dc=com\n", "dn: ou=services,dc=example,dc=com\n",
          "dn: cn=orgsync,ou=services,dc=example,dc=com\n"}) {
        EXPECT_NE(result.out.find(dn), std::string::npos) << dn << result.out;
    }
    EXPECT_EQ(slapd.reader_dn(), "cn=orgsync,ou=services,dc=example,dc=com");
    EXPECT_EQ(slapd.admin_dn(), "cn=admin,dc=example,dc=com");
    EXPECT_TRUE(slapd.uri().starts_with("ldap://127.0.0.1:"));
    EXPECT_GT(slapd.pid(), 0);
}

TEST(SlapdTest, TheReaderSeesOperationalAttributesButNoPasswords) {
    Slapd slapd;
    ToolResult result = search(slapd, {"-b", slapd.reader_dn(), "-s", "base", "*", "+"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_NE(result.out.find("entryUUID: "), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("entryCSN: "), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("modifyTimestamp: "), std::string::npos) << result.out;
    EXPECT_EQ(result.out.find("userPassword"), std::string::npos) << result.out;
}

TEST(SlapdTest, AnonymousReadsOnlyTheRootDse) {
    Slapd slapd;
    ToolResult root = search(slapd, {"-b", "", "-s", "base", "namingContexts"}, false);
    ASSERT_EQ(root.status, 0) << root.err;
    EXPECT_NE(root.out.find("namingContexts: dc=example,dc=com"), std::string::npos);
    ToolResult data = search(slapd, {"-b", slapd.suffix(), "1.1"}, false);
    EXPECT_EQ(data.out.find("dn: "), std::string::npos) << data.out;
}

TEST(SlapdTest, TwoInstancesRunSideBySide) {
    Slapd first;
    Slapd second({.suffix = "dc=other,dc=org"});
    EXPECT_NE(first.uri(), second.uri());
    EXPECT_NE(first.dir(), second.dir());
    first.add(people(first, 1));
    ToolResult in_first = search(first, {"-b", first.suffix(), "(uid=user0)", "1.1"});
    ToolResult in_second = search(second, {"-b", second.suffix(), "(objectClass=*)", "1.1"});
    ASSERT_EQ(in_first.status, 0) << in_first.err;
    ASSERT_EQ(in_second.status, 0) << in_second.err;
    EXPECT_EQ(count(in_first.out, "dn: "), 1U);
    EXPECT_NE(in_second.out.find("dn: ou=people,dc=other,dc=org"), std::string::npos);
    EXPECT_EQ(in_second.out.find("user0"), std::string::npos);
}

TEST(SlapdTest, WithoutSizeLimitTheReaderGetsMoreThanSlapdsDefault500) {
    Slapd slapd;
    slapd.add(people(slapd, 520));
    ToolResult result = search(slapd, {"-b", "ou=people," + slapd.suffix(), "(uid=*)", "1.1"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_EQ(count(result.out, "dn: "), 520U);
}

TEST(SlapdTest, SizeLimitFailsUnpagedSearchesButNotPagedOnes) {
    Slapd slapd({.size_limit = 10});
    slapd.add(people(slapd, 25));
    std::string base = "ou=people," + slapd.suffix();

    ToolResult unpaged = search(slapd, {"-b", base, "(uid=*)", "1.1"});
    EXPECT_EQ(unpaged.status, 4) << unpaged.err;  // sizeLimitExceeded

    ToolResult paged = search(slapd, {"-E", "pr=10/noprompt", "-b", base, "(uid=*)", "1.1"});
    ASSERT_EQ(paged.status, 0) << paged.err;
    EXPECT_EQ(count(paged.out, "dn: "), 25U);

    ToolResult small = search(slapd, {"-E", "pr=5/noprompt", "-b", base, "(uid=*)", "1.1"});
    ASSERT_EQ(small.status, 0) << small.err;
    EXPECT_EQ(count(small.out, "dn: "), 25U);

    ToolResult admin =
        run_tool({"ldapsearch", "-LLL", "-x", "-H", slapd.uri(), "-D", slapd.admin_dn(), "-y",
                  slapd.admin_password_file().string(), "-b", base, "(uid=*)", "1.1"},
                 {"LDAPNOINIT=1"});
    ASSERT_EQ(admin.status, 0) << admin.err;
    EXPECT_EQ(count(admin.out, "dn: "), 25U);
}

TEST(SlapdTest, TlsVerifiesAgainstItsCaOnly) {
    Slapd slapd({.tls = true});
    ASSERT_TRUE(fs::exists(slapd.ca_file()));
    ASSERT_TRUE(fs::exists(slapd.wrong_ca_file()));
    std::vector<std::string> query{"-b", "", "-s", "base", "namingContexts"};
    auto tls_search = [&](const fs::path& ca, bool start_tls, const std::string& url) {
        std::vector<std::string> argv{"ldapsearch", "-LLL", "-x", "-H", url};
        if (start_tls) {
            argv.push_back("-ZZ");
        }
        argv.insert(argv.end(), query.begin(), query.end());
        return run_tool(argv, {"LDAPTLS_CACERT=" + ca.string(), "LDAPTLS_REQCERT=demand"});
    };

    ToolResult start_tls = tls_search(slapd.ca_file(), true, slapd.uri());
    EXPECT_EQ(start_tls.status, 0) << start_tls.err;
    EXPECT_NE(start_tls.out.find("namingContexts"), std::string::npos);

    ToolResult wrong = tls_search(slapd.wrong_ca_file(), true, slapd.uri());
    EXPECT_NE(wrong.status, 0) << wrong.out;

    ToolResult ldaps = tls_search(slapd.ca_file(), false, slapd.ldaps_uri());
    EXPECT_EQ(ldaps.status, 0) << ldaps.err;
    EXPECT_NE(ldaps.out.find("namingContexts"), std::string::npos);

    ToolResult ldaps_wrong = tls_search(slapd.wrong_ca_file(), false, slapd.ldaps_uri());
    EXPECT_NE(ldaps_wrong.status, 0) << ldaps_wrong.out;
}

TEST(SlapdTest, WithoutTlsThereIsNoLdapsUri) {
    Slapd slapd;
    EXPECT_THROW(static_cast<void>(slapd.ldaps_uri()), std::logic_error);
}

TEST(SlapdTest, ExtraSchemaTakesABinaryObjectGuid) {
    Slapd slapd({.extra_schema = true});
    std::string guid("\x00\x11\xff\x7f\x80 :<\n\r\x01\x02\x03\x04\x05\x06", 16);
    std::string dn = "uid=ad1,ou=people," + slapd.suffix();
    slapd.add("dn: " + dn +
              "\nobjectClass: inetOrgPerson\nobjectClass: orgsyncTestObject\nuid: ad1\ncn: "
              "AD One\nsn: One\n" +
              ldif_line("objectGUID", guid) +
              "\nuserAccountControl: 514\nsAMAccountName: ad1\n"
              "userPrincipalName: ad1@example.com\nuSNChanged: 12345\n"
              "nsUniqueId: 0a1b2c3d-11111111-22222222-33333333\n");
    ToolResult result = search(slapd, {"-b", dn, "-s", "base", "objectGUID", "userAccountControl",
                                       "sAMAccountName", "uSNChanged", "nsUniqueId"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_NE(result.out.find(ldif_line("objectGUID", guid) + "\n"), std::string::npos)
        << result.out;
    EXPECT_NE(result.out.find("userAccountControl: 514\n"), std::string::npos);
    EXPECT_NE(result.out.find("sAMAccountName: ad1\n"), std::string::npos);
    EXPECT_NE(result.out.find("uSNChanged: 12345\n"), std::string::npos);

    slapd.add("dn: cn=g,ou=groups," + slapd.suffix() +
              "\nobjectClass: groupOfNames\nobjectClass: orgsyncTestObject\ncn: g\nmember: " + dn +
              "\n" + ldif_line("objectGUID", std::string(16, '\x42')) + "\n");

    EXPECT_THROW(slapd.add("dn: uid=bad,ou=people," + slapd.suffix() +
                           "\nobjectClass: inetOrgPerson\nobjectClass: orgsyncTestObject\n"
                           "uid: bad\ncn: bad\nsn: bad\nuserAccountControl: 1\n"
                           "userAccountControl: 2\n"),
                 std::runtime_error);
}

TEST(SlapdTest, AddAndModifyReportTheToolsError) {
    Slapd slapd;
    try {
        slapd.add("dn: uid=x,ou=nowhere," + slapd.suffix() +
                  "\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\n");
        FAIL() << "add into a missing parent succeeded";
    } catch (const std::runtime_error& error) {
        EXPECT_NE(std::string(error.what()).find("No such object"), std::string::npos)
            << error.what();
    }
    slapd.add(people(slapd, 2));
    slapd.modify("dn: uid=user0,ou=people," + slapd.suffix() +
                 "\nchangetype: modify\nreplace: mail\nmail: new@example.com\n\n"
                 "dn: uid=user1,ou=people," +
                 slapd.suffix() + "\nchangetype: delete\n");
    ToolResult result = search(slapd, {"-b", "ou=people," + slapd.suffix(), "(uid=*)", "mail"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_NE(result.out.find("mail: new@example.com"), std::string::npos) << result.out;
    EXPECT_EQ(result.out.find("user1"), std::string::npos) << result.out;
    EXPECT_THROW(
        slapd.modify("dn: uid=user1,ou=people," + slapd.suffix() + "\nchangetype: delete\n"),
        std::runtime_error);
}

TEST(SlapdTest, RestartAfterKillKeepsPortAndData) {
    Slapd slapd;
    slapd.add(people(slapd, 3));
    std::string uri = slapd.uri();
    pid_t first = slapd.pid();
    slapd.kill();
    EXPECT_EQ(slapd.pid(), 0);
    ToolResult down = search(slapd, {"-b", slapd.suffix(), "1.1"});
    EXPECT_EQ(down.status, 255) << down.out;  // can't contact LDAP server

    slapd.restart();
    EXPECT_EQ(slapd.uri(), uri);
    EXPECT_NE(slapd.pid(), first);
    ToolResult up = search(slapd, {"-b", "ou=people," + slapd.suffix(), "(uid=*)", "1.1"});
    ASSERT_EQ(up.status, 0) << up.err;
    EXPECT_EQ(count(up.out, "dn: "), 3U);
}

TEST(SlapdTest, UnusedUriRefusesConnections) {
    Slapd slapd;
    EXPECT_NE(slapd.unused_uri(), slapd.uri());
    ToolResult result = search(slapd, {"-b", "", "-s", "base"}, false, slapd.unused_uri());
    EXPECT_EQ(result.status, 255) << result.out;
}

TEST(SlapdTest, StopHangsAndResumeAnswersAgain) {
    Slapd slapd;
    slapd.stop();
    ToolResult hung =
        run_tool({"timeout", "0.5", "ldapsearch", "-x", "-H", slapd.uri(), "-b", "", "-s", "base"},
                 {"LDAPNOINIT=1"});
    EXPECT_EQ(hung.status, 124) << hung.out;  // timeout(1) killed it
    slapd.resume();
    ToolResult answered = search(slapd, {"-b", "", "-s", "base", "namingContexts"}, false);
    EXPECT_EQ(answered.status, 0) << answered.err;
}

TEST(SlapdTest, MemberOfIsMaintainedForUsersAndNestedGroups) {
    Slapd slapd;
    slapd.add(people(slapd, 2));
    std::string groups = "ou=groups," + slapd.suffix();
    std::string user0 = "uid=user0,ou=people," + slapd.suffix();
    slapd.add("dn: cn=team," + groups + "\nobjectClass: groupOfNames\ncn: team\nmember: " + user0 +
              "\n\ndn: cn=all," + groups +
              "\nobjectClass: groupOfNames\ncn: all\nmember: cn=team," + groups + "\n");
    ToolResult user = search(slapd, {"-b", user0, "-s", "base", "memberOf"});
    ASSERT_EQ(user.status, 0) << user.err;
    EXPECT_NE(user.out.find("memberOf: cn=team," + groups + "\n"), std::string::npos) << user.out;
    ToolResult group = search(slapd, {"-b", "cn=team," + groups, "-s", "base", "memberOf"});
    EXPECT_NE(group.out.find("memberOf: cn=all," + groups + "\n"), std::string::npos) << group.out;

    // memberOf is operational: not returned for "*".
    ToolResult star = search(slapd, {"-b", user0, "-s", "base", "*"});
    EXPECT_EQ(star.out.find("memberOf"), std::string::npos) << star.out;

    // Deleting the group removes it from the member's memberOf.
    slapd.modify("dn: cn=team," + groups + "\nchangetype: delete\n");
    ToolResult after = search(slapd, {"-b", user0, "-s", "base", "memberOf"});
    EXPECT_EQ(after.out.find("memberOf"), std::string::npos) << after.out;
}

// ldapsearch -E sync=ro[/cookie] as the reader, with comments: the cookie
// and the syncIdSet of deleted entries are printed as comments.
ToolResult sync_refresh(const Slapd& slapd, const std::string& cookie) {
    return run_tool(
        {"ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", slapd.uri(), "-D", slapd.reader_dn(), "-y",
         slapd.reader_password_file().string(), "-E",
         "sync=ro" + (cookie.empty() ? "" : "/" + cookie), "-b", slapd.suffix(), "(uid=*)", "1.1"},
        {"LDAPNOINIT=1"});
}

std::string last_cookie(const std::string& out) {
    auto at = out.rfind("# cookie: ");
    return at == std::string::npos ? "" : out.substr(at + 10, out.find('\n', at) - at - 10);
}

TEST(SlapdTest, SyncReplRefreshOnlyReturnsACookieAndReportsDeletions) {
    Slapd slapd;
    slapd.add(people(slapd, 3));
    ToolResult first = sync_refresh(slapd, "");
    ASSERT_EQ(first.status, 0) << first.err;
    EXPECT_EQ(count(first.out, "\ndn: "), 3U) << first.out;
    std::string cookie = last_cookie(first.out);
    ASSERT_TRUE(cookie.starts_with("rid=000,csn=")) << first.out;

    slapd.modify("dn: uid=user1,ou=people," + slapd.suffix() + "\nchangetype: delete\n");
    ToolResult next = sync_refresh(slapd, cookie);
    ASSERT_EQ(next.status, 0) << next.err;
    EXPECT_EQ(next.out.find("\ndn: "), std::string::npos) << next.out;  // nothing changed
    EXPECT_NE(next.out.find("# SyncInfo Received: ID Set"), std::string::npos) << next.out;
    EXPECT_NE(last_cookie(next.out), cookie);
}

TEST(SlapdTest, SyncReplCookieStillWorksAfterKillAndRestart) {
    Slapd slapd;
    slapd.add(people(slapd, 3));
    std::string cookie = last_cookie(sync_refresh(slapd, "").out);
    slapd.modify("dn: uid=user1,ou=people," + slapd.suffix() + "\nchangetype: delete\n");
    slapd.kill();
    slapd.restart();
    // The session log is gone: a present phase lists the UUIDs that still
    // exist (refreshDeletes=0) and the consumer deletes the rest.
    ToolResult next = sync_refresh(slapd, cookie);
    ASSERT_EQ(next.status, 0) << next.err << next.out;
    EXPECT_NE(next.out.find("refreshDeletes=0"), std::string::npos) << next.out;
    EXPECT_NE(last_cookie(next.out), cookie);
}

TEST(SlapdTest, InitialLdifIsLoadedBeforeStartAndSyncReplSeesIt) {
    const fs::path dir =
        fs::temp_directory_path() / ("orgsync-initial-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path ldif = dir / "initial.ldif";
    {
        std::ofstream out(ldif);
        for (int i = 0; i < 600; ++i) {
            const std::string uid = "user" + std::to_string(i);
            out << "dn: uid=" << uid << ",ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
                << "uid: " << uid << "\ncn: " << uid << "\nsn: " << uid << "\nmail: " << uid
                << "@example.com\n\n";
        }
    }
    Slapd slapd({.memberof = false, .initial_ldif = ldif});
    fs::remove_all(dir);
    ToolResult result =
        search(slapd, {"-b", "ou=people," + slapd.suffix(), "(uid=*)", "entryUUID", "entryCSN"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_EQ(count(result.out, "dn: "), 600U);
    EXPECT_EQ(count(result.out, "entryUUID: "), 600U);
    // slapadd -w set the contextCSN: a refresh returns a cookie, and a
    // change made over LDAP afterwards is reported from it.
    ToolResult first = sync_refresh(slapd, "");
    ASSERT_EQ(first.status, 0) << first.err;
    std::string cookie = last_cookie(first.out);
    ASSERT_TRUE(cookie.starts_with("rid=000,csn=")) << first.out;
    slapd.modify("dn: uid=user7,ou=people," + slapd.suffix() +
                 "\nchangetype: modify\nreplace: mail\nmail: seven@example.com\n");
    ToolResult next = sync_refresh(slapd, cookie);
    ASSERT_EQ(next.status, 0) << next.err;
    EXPECT_EQ(count(next.out, "\ndn: "), 1U) << next.out;
    EXPECT_NE(next.out.find("dn: uid=user7,ou=people,"), std::string::npos) << next.out;
}

TEST(LdifLineTest, PlainValuesStayReadable) {
    EXPECT_EQ(ldif_line("cn", "Ada Lovelace"), "cn: Ada Lovelace");
    EXPECT_EQ(ldif_line("description", ""), "description: ");
    EXPECT_EQ(ldif_line("cn", "a:b<c"), "cn: a:b<c");
}

TEST(LdifLineTest, UnsafeValuesAreBase64) {
    EXPECT_EQ(ldif_line("cn", " lead"), "cn:: IGxlYWQ=");
    EXPECT_EQ(ldif_line("cn", "trail "), "cn:: dHJhaWwg");
    EXPECT_EQ(ldif_line("cn", ":x"), "cn:: Ong=");
    EXPECT_EQ(ldif_line("cn", "<x"), "cn:: PHg=");
    EXPECT_EQ(ldif_line("cn", "Jos\xc3\xa9"), "cn:: Sm9zw6k=");
    EXPECT_EQ(ldif_line("objectGUID", std::string("\x00\xff", 2)), "objectGUID:: AP8=");
    EXPECT_EQ(ldif_line("d", "a\nb"), "d:: YQpi");
}

}  // namespace
}  // namespace orgsync::testing
