// Faults of a source under `orgsyncd run`: the real daemon against a real
// slapd that is killed in the middle of a read, stopped past the timeout,
// answers sizeLimitExceeded or refers part of the search elsewhere; and SCIM
// clients that disconnect in the middle of a request. For each fault: the
// run fails and removes nothing, /readyz names the source once the failures
// reach failure_threshold, /metrics shows it, the scheduler's retries back
// off (retry_initial 1s, doubling), and the first run after recovery
// converges to the directory.

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <tuple>

#include "tests/daemon/service_fixture.hpp"

namespace orgsync::daemon {
namespace {

using namespace service_test;
using Steady = std::chrono::steady_clock;

// One run of the source as /v1/status showed it.
struct Attempt {
    Steady::time_point finished;  // when the test first saw it (polling every 20 ms)
    double seconds = 0;           // how long the run took, as the daemon measured it
    std::string result;
    std::string message;
};

class SourceFaultTest : public ServiceFixture {
  protected:
    // alice and bob at acme.com, carol at beta.org, plus `extra` more users
    // at acme.com (u0..), through slapadd; alice in acme-admins, bob in
    // vision-team.
    void start_directory_of(int extra, testing::SlapdOptions options = {}) {
        const fs::path ldif = m_dir / "initial.ldif";
        {
            // The fixture's suffix: entries below it.
            const std::string suffix = options.suffix;
            std::ofstream out(ldif);
            auto dn_person = [&](const std::string& uid, const std::string& mail) {
                out << "dn: uid=" << uid << ",ou=people," << suffix
                    << "\nobjectClass: inetOrgPerson\nuid: " << uid << "\ncn: " << uid
                    << "\nsn: " << uid << "\nmail: " << mail << "\n\n";
            };
            dn_person("alice", "alice@acme.com");
            dn_person("bob", "bob@acme.com");
            dn_person("carol", "carol@beta.org");
            for (int i = 0; i < extra; ++i) {
                dn_person("u" + std::to_string(i), "u" + std::to_string(i) + "@acme.com");
            }
            for (const auto& [cn, uid] :
                 {std::pair{"acme-admins", "alice"}, std::pair{"vision-team", "bob"}}) {
                out << "dn: cn=" << cn << ",ou=groups," << suffix
                    << "\nobjectClass: groupOfNames\ncn: " << cn << "\nmember: uid=" << uid
                    << ",ou=people," << suffix << "\n\n";
            }
        }
        options.initial_ldif = ldif;
        options.memberof = false;  // slapadd derives no memberOf; the source reads member
        m_slapd = std::make_unique<Slapd>(options);
    }

    json corp() { return source_status("corp"); }

    // Waits (polling /v1/status every 20 ms) until corp has finished
    // `runs_before + count` runs, recording each run seen. After each, checks
    // /readyz: ready below failure_threshold (2) failures in a row, 503
    // naming corp from there on.
    std::vector<Attempt> watch(std::int64_t runs_before, int count,
                               std::chrono::seconds limit = 90s) {
        std::vector<Attempt> seen;
        std::int64_t runs = runs_before;
        const auto deadline = Steady::now() + limit;
        while (static_cast<int>(seen.size()) < count && Steady::now() < deadline) {
            json status = corp();
            if (status.is_null() || status["runs"].get<std::int64_t>() <= runs) {
                std::this_thread::sleep_for(20ms);
                continue;
            }
            const auto at = Steady::now();
            runs = status["runs"].get<std::int64_t>();
            EXPECT_EQ(runs, runs_before + static_cast<std::int64_t>(seen.size()) + 1)
                << "a run was missed";
            const json& last = status["last_run"];
            seen.push_back(
                Attempt{at, last["seconds"].get<double>(), last["result"], last["message"]});
            if (last["result"] != "failed") {
                ADD_FAILURE() << "run " << seen.size() << " did not fail: " << last.dump();
                break;
            }
            const int failures = status["consecutive_failures"].get<int>();
            auto ready = call("GET", "/readyz", "", {});
            if (failures < 2) {
                EXPECT_EQ(ready.status, 200) << ready.body.dump();
            } else {
                EXPECT_EQ(ready.status, 503) << ready.body.dump();
                EXPECT_EQ(ready.body["failing"].size(), 1U) << ready.body.dump();
                EXPECT_EQ(ready.body["failing"][0]["source"], "corp");
                EXPECT_NE(ready.body["failing"][0]["reason"].get<std::string>().find(
                              std::to_string(failures) + " failed runs in a row"),
                          std::string::npos)
                    << ready.body.dump();
            }
        }
        EXPECT_EQ(static_cast<int>(seen.size()), count) << m_daemon->log();
        return seen;
    }

    // The fault holds: `attempts` runs (the first already started or
    // requested by the caller) fail with a message naming `kind`, each
    // retry waits about twice as long as the one before (1s, 2s, 4s, …, with
    // the scheduler's ±10 % jitter), nobody is removed, and /metrics says
    // the source is failing. Returns the waits between runs, in seconds.
    std::vector<double> expect_failing_with_backoff(std::int64_t runs_before, int attempts,
                                                    const std::string& kind,
                                                    const std::map<std::string, std::string>& kept,
                                                    json users) {
        const auto seen = watch(runs_before, attempts);
        m_durations.clear();
        for (const auto& attempt : seen) {
            m_durations.push_back(attempt.seconds);
        }
        std::vector<double> waits;
        for (std::size_t i = 0; i < seen.size(); ++i) {
            EXPECT_EQ(seen[i].result, "failed") << i << ": " << seen[i].message;
            EXPECT_NE(seen[i].message.find(kind), std::string::npos)
                << i << ": " << seen[i].message;
            if (i == 0) {
                continue;
            }
            // From the end of one run to the start of the next.
            const double wait =
                std::chrono::duration<double>(seen[i].finished - seen[i - 1].finished).count() -
                seen[i].seconds;
            waits.push_back(wait);
            const double expected = static_cast<double>(1 << (i - 1));  // retry_initial 1s
            EXPECT_GE(wait, 0.9 * expected - 0.05) << "retry " << i;
            EXPECT_LE(wait, 1.1 * expected + 0.5) << "retry " << i;
            if (waits.size() >= 2) {
                EXPECT_GT(waits.back(), waits[waits.size() - 2] * 1.4) << "retry " << i;
            }
        }
        // Nobody removed, the mirror kept.
        EXPECT_EQ(members("acme"), kept);
        EXPECT_EQ(corp()["users"], users);
        auto samples = parse_prometheus(m_client->Get("/metrics")->body);
        EXPECT_EQ((samples["orgsync_source_failing{source=\"corp\"}"]), 1);
        EXPECT_GE((samples["orgsync_sync_consecutive_failures{source=\"corp\"}"]), attempts);
        EXPECT_GE((samples["orgsync_sync_runs_total{source=\"corp\",result=\"failed\"}"]),
                  attempts);
        EXPECT_EQ(m_daemon->log().find("event=sync.applied source=corp trigger=schedule"),
                  std::string::npos);
        return waits;
    }

    // After recovery: dave joins the directory and the next run takes him
    // in; the source is ready again.
    void expect_converges(std::map<std::string, std::string> kept) {
        m_slapd->add(person(*m_slapd, "dave", "dave@acme.com"));
        auto synced = api("POST", "/v1/sync/corp?wait=true");
        ASSERT_EQ(synced.status, 200) << synced.body.dump();
        EXPECT_EQ(synced.body["last_run"]["result"], "applied") << synced.body.dump();
        EXPECT_EQ(synced.body["consecutive_failures"], 0);
        kept["dave@acme.com"] = "member";
        EXPECT_EQ(members("acme"), kept);
        EXPECT_EQ(call("GET", "/readyz", "", {}).status, 200);
        auto samples = parse_prometheus(m_client->Get("/metrics")->body);
        EXPECT_EQ((samples["orgsync_source_failing{source=\"corp\"}"]), 0);
        EXPECT_EQ((samples["orgsync_sync_consecutive_failures{source=\"corp\"}"]), 0);
        expect_no_secrets_logged();
    }

    std::map<std::string, std::string> small_directory_members() const {
        return {{"alice@acme.com", "admin"}, {"bob@acme.com", "member"}, {"ceo@acme.com", "owner"}};
    }

    // Prints the measured waits (the figures RELIABILITY.md quotes).
    void log_waits(const char* fault, const std::vector<double>& waits) {
        std::string text;
        for (double wait : waits) {
            text += fmt::format(" {:.2f}s", wait);
        }
        std::string runs;
        for (double seconds : m_durations) {
            runs += fmt::format(" {:.2f}s", seconds);
        }
        std::printf("[ fault    ] %s: failed runs took%s; waits between them:%s\n", fault,
                    runs.c_str(), text.c_str());
    }

    std::vector<double> m_durations;  // of the failed runs expect_failing_with_backoff saw
};

TEST_F(SourceFaultTest, DirectoryKilledInTheMiddleOfAFullRead) {
    constexpr int k_users = 20000;
    start_directory_of(k_users);
    write_config(ldap_source());
    write_mapping();
    start();
    const auto first = wait_runs("corp", 1);
    ASSERT_EQ(first["last_run"]["result"], "applied") << first.dump();
    ASSERT_EQ(first["users"], k_users + 3);
    const auto kept = members("acme");
    ASSERT_EQ(kept.size(), static_cast<std::size_t>(k_users) + 3);  // + alice, bob, the owner

    // A changed (equivalent) user filter makes the next run a full read of
    // every entry, one per page (a round trip each); slapd dies while it
    // reads.
    write_config(ldap_source() +
                 "page_size = 1\nuser_filter = \"(&(objectClass=inetOrgPerson))\"\n");
    const auto runs_before = corp()["runs"].get<std::int64_t>();
    const auto log_before = m_daemon->log().size();
    m_daemon->signal(SIGHUP);
    const auto deadline = Steady::now() + 30s;
    while (m_daemon->log().find("event=sync.started source=corp trigger=reload", log_before) ==
               std::string::npos &&
           Steady::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    std::this_thread::sleep_for(300ms);
    m_slapd->kill();

    const auto waits =
        expect_failing_with_backoff(runs_before, 4, "unreachable", kept, json(k_users + 3));
    log_waits("slapd killed", waits);
    // The killed run was reading: it failed on a search result, not on connecting.
    const std::string log = m_daemon->log();
    const auto killed = log.find("event=sync.failed source=corp trigger=reload");
    ASSERT_NE(killed, std::string::npos) << log.substr(log_before);
    const std::string line = log.substr(killed, log.find('\n', killed) - killed);
    EXPECT_NE(line.find("reading results"), std::string::npos) << line;
    EXPECT_EQ(log.find("event=ldap_read source=corp mode=full", log_before), std::string::npos);

    m_slapd->restart();
    expect_converges(kept);
}

TEST_F(SourceFaultTest, DirectoryStoppedPastTheTimeout) {
    start_directory_of(0);
    write_config(ldap_source("1s"));
    write_mapping();
    start();
    ASSERT_EQ(wait_runs("corp", 1)["last_run"]["result"], "applied");
    const auto kept = members("acme");
    ASSERT_EQ(kept, small_directory_members());

    m_slapd->stop();  // SIGSTOP: connections are accepted by the kernel, never answered
    const auto runs_before = corp()["runs"].get<std::int64_t>();
    const auto started = Steady::now();
    ASSERT_EQ(api("POST", "/v1/sync/corp").status, 202);
    const auto waits = expect_failing_with_backoff(runs_before, 4, "timeout", kept, json(3));
    log_waits("slapd stopped", waits);
    // Each run gave up after about the timeout, not hanging on the server.
    EXPECT_LT(Steady::now() - started, 40s);
    m_slapd->resume();
    expect_converges(kept);
}

TEST_F(SourceFaultTest, DirectoryAnswersSizeLimitExceeded) {
    // 40 users at acme.com beyond alice, bob and carol; no limit at first.
    start_directory_of(40);
    write_config(ldap_source());
    write_mapping();
    start();
    ASSERT_EQ(wait_runs("corp", 1)["last_run"]["result"], "applied");
    const auto kept = members("acme");
    ASSERT_EQ(kept.size(), 43U);

    // Now the server returns at most 25 entries to an unpaged search and 30
    // in all to a paged one, and 30 users join: more changes than an
    // incremental read (unpaged) may return, so the run reads in full, and
    // the full read (paged) stops at 30 entries.
    m_slapd->set_size_limits(25, 30);
    m_slapd->restart();
    std::string joined;
    auto after = kept;
    for (int i = 100; i < 130; ++i) {
        const std::string uid = "u" + std::to_string(i);
        joined += person(*m_slapd, uid, uid + "@acme.com");
        after[uid + "@acme.com"] = "member";
    }
    m_slapd->add(joined);
    const auto runs_before = corp()["runs"].get<std::int64_t>();
    ASSERT_EQ(api("POST", "/v1/sync/corp").status, 202);
    const auto waits = expect_failing_with_backoff(runs_before, 4, "size_limit", kept, json(43));
    log_waits("size limit", waits);

    m_slapd->set_size_limits(0, 0);
    m_slapd->restart();
    expect_converges(after);
}

TEST_F(SourceFaultTest, DirectoryRefersPartOfTheSearchElsewhere) {
    start_directory_of(0);
    write_config(ldap_source());
    write_mapping();
    start();
    ASSERT_EQ(wait_runs("corp", 1)["last_run"]["result"], "applied");
    const auto kept = members("acme");

    // Part of ou=people now lives on another server (a subordinate
    // referral), and bob is gone from the part this server holds: a run that
    // skipped the referral would remove him.
    const std::string referral = "ou=elsewhere,ou=people," + m_slapd->suffix();
    m_slapd->add("dn: " + referral +
                 "\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\n"
                 "ref: ldap://ldap.elsewhere.example/" +
                 referral + "\n\n");
    m_slapd->modify("dn: uid=bob,ou=people," + m_slapd->suffix() + "\nchangetype: delete\n\n");
    const auto runs_before = corp()["runs"].get<std::int64_t>();
    ASSERT_EQ(api("POST", "/v1/sync/corp").status, 202);
    const auto waits = expect_failing_with_backoff(runs_before, 4, "referral", kept, json(3));
    log_waits("referral", waits);

    // Recovery: bob's entry is back here and the referral is gone.
    // (A referral object is deleted with the ManageDsaIT control, or the
    // server answers with the referral.)
    const auto deleted = testing::run_tool({"ldapdelete", "-x", "-M", "-H", m_slapd->uri(), "-D",
                                            m_slapd->admin_dn(), "-y",
                                            m_slapd->admin_password_file().string(), referral});
    ASSERT_EQ(deleted.status, 0) << deleted.err;
    m_slapd->add(person(*m_slapd, "bob", "bob@acme.com"));
    expect_converges(kept);
}

// ---- SCIM clients that go away --------------------------------------------------

TEST_F(SourceFaultTest, ScimClientsDisconnectingMidRequest) {
    constexpr const char* k_token = "scim-token-0123456789";
    write_file(m_dir / "scim-token", k_token);
    write_config(
        "[[source]]\nname = \"idp\"\ntype = \"scim\"\norg = \"acme\"\n"
        "token_file = \"scim-token\"\n");
    write_mapping();
    start();
    const auto port = m_daemon->port();
    auto user_body = [](const std::string& email, bool active) {
        return json{{"schemas", {"urn:ietf:params:scim:schemas:core:2.0:User"}},
                    {"userName", email},
                    {"displayName", "Name of " + email},
                    {"active", active},
                    {"emails", {{{"value", email}, {"primary", true}}}}}
            .dump();
    };
    auto request = [&](const std::string& method, const std::string& path,
                       const std::string& body) {
        return method + " /scim/v2" + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               k_token + "\r\nContent-Type: application/scim+json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + k_token}};
    auto find_user = [&](const std::string& email) {
        auto found = m_client->Get(
            "/scim/v2/Users?filter=" + url_encode("userName eq \"" + email + "\""), auth);
        EXPECT_TRUE(found && found->status == 200);
        auto body = json::parse(found->body);
        return body["totalResults"].get<int>() == 1 ? body["Resources"][0] : json(nullptr);
    };
    // A user that the half requests below try to change.
    auto created = m_client->Post("/scim/v2/Users", auth, user_body("ivy@acme.com", true),
                                  "application/scim+json");
    ASSERT_TRUE(created && created->status == 201);
    const std::string ivy = json::parse(created->body)["id"];
    const json ivy_before = find_user("ivy@acme.com");

    // Another client writes and reads all along.
    std::atomic<bool> done{false};
    std::atomic<int> served{0};
    std::vector<std::string> errors;
    std::mutex errors_mutex;
    std::thread other([&] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(20, 0);
        for (int i = 0; !done; ++i) {
            const std::string email = "steady" + std::to_string(i) + "@acme.com";
            auto posted = client.Post("/scim/v2/Users", auth, user_body(email, true),
                                      "application/scim+json");
            auto got = client.Get("/scim/v2/Users/" + ivy, auth);
            if (posted && posted->status == 201 && got && got->status == 200) {
                ++served;
            } else {
                std::lock_guard lock(errors_mutex);
                errors.push_back(
                    email + ": " +
                    (posted ? std::to_string(posted->status) : httplib::to_string(posted.error())));
            }
        }
    });

    constexpr int k_rounds = 20;
    for (int round = 0; round < k_rounds; ++round) {
        const std::string n = std::to_string(round);
        // Half a body (Content-Length says more), then gone: a create, a
        // replace and a patch that would disable ivy.
        for (const auto& [method, path, body] :
             std::vector<std::tuple<std::string, std::string, std::string>>{
                 {"POST", "/Users", user_body("half" + n + "@acme.com", true)},
                 {"PUT", "/Users/" + ivy, user_body("ivy@acme.com", false)},
                 {"PATCH", "/Users/" + ivy,
                  json{{"schemas", {"urn:ietf:params:scim:api:messages:2.0:PatchOp"}},
                       {"Operations", {{{"op", "replace"}, {"path", "active"}, {"value", false}}}}}
                      .dump()}}) {
            const std::string whole = request(method, path, body);
            const int fd = connect_raw(port);
            ASSERT_GE(fd, 0);
            send_all(fd, whole.substr(0, whole.size() - body.size() / 2));
            if (round % 2 == 1) {  // half of them reset the connection
                linger hard{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
            }
            ::close(fd);
        }
        // A whole request, and gone before the answer.
        const int fd = connect_raw(port);
        ASSERT_GE(fd, 0);
        send_all(fd, request("POST", "/Users", user_body("whole" + n + "@acme.com", true)));
        if (round % 2 == 1) {
            linger hard{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        }
        ::close(fd);
    }
    std::this_thread::sleep_for(1s);  // the last whole requests finish
    done = true;
    other.join();
    EXPECT_TRUE(errors.empty()) << errors.front();
    EXPECT_GT(served.load(), 0);

    // The daemon is well; the half requests changed nothing; each whole one
    // is either all there (its record, its membership) or not at all.
    EXPECT_EQ(call("GET", "/healthz", "", {}).status, 200);
    EXPECT_EQ(call("GET", "/readyz", "", {}).status, 200);
    EXPECT_EQ(find_user("ivy@acme.com"), ivy_before);
    const auto acme = members("acme");
    EXPECT_EQ(acme.at("ivy@acme.com"), "member");
    int applied = 0;
    for (int round = 0; round < k_rounds; ++round) {
        const std::string n = std::to_string(round);
        EXPECT_TRUE(find_user("half" + n + "@acme.com").is_null()) << n;
        EXPECT_FALSE(acme.contains("half" + n + "@acme.com")) << n;
        const json whole = find_user("whole" + n + "@acme.com");
        EXPECT_EQ(!whole.is_null(), acme.contains("whole" + n + "@acme.com")) << n;
        if (!whole.is_null()) {
            ++applied;
            EXPECT_EQ(whole["displayName"], "Name of whole" + n + "@acme.com");
            EXPECT_EQ(whole["active"], true);
        }
    }
    // Every SCIM user is a member and the other way round (plus the owner).
    auto all = m_client->Get("/scim/v2/Users?count=1000", auth);
    ASSERT_TRUE(all);
    EXPECT_EQ(json::parse(all->body)["totalResults"].get<std::size_t>() + 1, acme.size());
    std::printf(
        "[ fault    ] SCIM: %d of %d whole requests whose client left were applied; "
        "%d requests of another client served meanwhile\n",
        applied, k_rounds, served.load());
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

}  // namespace
}  // namespace orgsync::daemon
