// `orgsyncd run` as a service, end to end: the real daemon process, a real
// slapd on 127.0.0.1, real HTTP, a real store file, and a test NOTIFY_SOCKET
// for what it tells systemd.

#include <algorithm>
#include <atomic>
#include <mutex>

#include "directory/store.hpp"
#include "tests/daemon/service_fixture.hpp"

namespace orgsync::daemon {
namespace {

using namespace service_test;

class ServiceTest : public ServiceFixture {};

TEST_F(ServiceTest, TellsSystemdReadyReloadingAndStopping) {
    start_directory();
    write_config(ldap_source());
    write_mapping();
    NotifySocket notify(m_dir / "notify");
    ::setenv("NOTIFY_SOCKET", (m_dir / "notify").c_str(), 1);
    start();
    ::unsetenv("NOTIFY_SOCKET");

    EXPECT_EQ(notify.wait_for("READY=1"), "READY=1");
    // The first scheduled run shows in STATUS=.
    wait_runs("corp", 1);
    std::string status;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (status.find("corp: synced") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        status = notify.wait_for("STATUS=", 15s);
    }
    EXPECT_NE(status.find("corp: synced"), std::string::npos) << status;
    EXPECT_NE(status.find("3 users"), std::string::npos) << status;

    m_daemon->signal(SIGHUP);
    EXPECT_EQ(notify.wait_for("RELOADING=1"), "RELOADING=1");
    EXPECT_EQ(notify.wait_for("READY=1"), "READY=1");

    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
    EXPECT_EQ(notify.wait_for("STOPPING=1", 5s), "STOPPING=1");
    const std::string log = m_daemon->log();
    EXPECT_NE(log.find("event=daemon.stopped"), std::string::npos) << log;
}

TEST_F(ServiceTest, SyncsAtStartAndOnRequestAndAnswersTheApi) {
    start_directory();
    write_config(ldap_source());
    write_mapping();
    start();

    auto status = wait_runs("corp", 1);
    EXPECT_EQ(status["last_run"]["result"], "applied") << status.dump();
    EXPECT_EQ(status["last_run"]["trigger"], "start");
    EXPECT_EQ(status["users"], 3);
    EXPECT_EQ(members("acme"), (std::map<std::string, std::string>{{"alice@acme.com", "admin"},
                                                                   {"bob@acme.com", "member"},
                                                                   {"ceo@acme.com", "owner"}}));

    // Every /v1 route wants the token.
    EXPECT_EQ(call("GET", "/v1/orgs", "", {}).status, 401);
    EXPECT_EQ(call("GET", "/v1/orgs", "", {{"Authorization", "Bearer wrong"}}).status, 401);
    EXPECT_EQ(call("POST", "/v1/sync/corp", "", {}).status, 401);

    auto orgs = api("GET", "/v1/orgs");
    ASSERT_EQ(orgs.status, 200);
    ASSERT_EQ(orgs.body["orgs"].size(), 2u);
    EXPECT_EQ(orgs.body["orgs"][0]["slug"], "acme");
    EXPECT_EQ(api("GET", "/v1/orgs/nope/members").status, 404);

    auto groups = api("GET", "/v1/orgs/acme/groups");
    ASSERT_EQ(groups.status, 200);
    std::map<std::string, json> by_name;
    for (const auto& group : groups.body["groups"]) {
        by_name[group["name"]] = group["members"];
    }
    EXPECT_EQ(by_name[group_dn(*m_slapd, "vision-team")], json({"bob@acme.com"}));

    auto grants = api("GET", "/v1/orgs/acme/projects/vision/grants");
    ASSERT_EQ(grants.status, 200) << grants.body.dump();
    bool group_grant = false;
    for (const auto& grant : grants.body["grants"]) {
        if (grant["principal"] == "group" && grant["name"] == group_dn(*m_slapd, "vision-team")) {
            group_grant = grant["level"] == "write";
        }
    }
    EXPECT_TRUE(group_grant) << grants.body.dump();
    EXPECT_EQ(api("GET", "/v1/orgs/acme/projects/nope/grants").status, 404);

    EXPECT_EQ(authorize("bob@acme.com", "project.resources.write"), "allow");
    EXPECT_EQ(authorize("carol@beta.org", "project.resources.read"), "deny");
    EXPECT_EQ(api("POST", "/v1/authorize", {{"user", "bob@acme.com"}}).status, 400);
    EXPECT_EQ(call("POST", "/v1/authorize", "not json").status, 400);

    // A new directory user arrives with the next requested run.
    m_slapd->add(person(*m_slapd, "dave", "dave@acme.com"));
    auto synced = api("POST", "/v1/sync/corp?wait=true");
    ASSERT_EQ(synced.status, 200) << synced.body.dump();
    EXPECT_EQ(synced.body["last_run"]["trigger"], "request");
    EXPECT_EQ(synced.body["last_run"]["result"], "applied");
    EXPECT_TRUE(members("acme").contains("dave@acme.com"));
    EXPECT_EQ(api("POST", "/v1/sync/nope").status, 404);
    EXPECT_EQ(api("POST", "/v1/sync/corp").status, 202);

    // /metrics: parseable, with the runs and decisions just made.
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->get_header_value("Content-Type").find("version=0.0.4"), std::string::npos);
    const std::string members_latency =
        "orgsync_http_request_duration_seconds_count{route=\"/v1/orgs/{org}/members\","
        "method=\"GET\"}";
    auto samples = metrics_when([&](const auto& seen) { return seen.contains(members_latency); });
    EXPECT_GE((samples["orgsync_sync_runs_total{source=\"corp\",result=\"applied\"}"]), 2);
    EXPECT_EQ((samples["orgsync_authorize_decisions_total{result=\"allow\"}"]), 1);
    EXPECT_EQ((samples["orgsync_authorize_decisions_total{result=\"deny\"}"]), 1);
    EXPECT_GE((samples["orgsync_sync_changes_applied_total{source=\"corp\",kind=\"add_member\"}"]),
              3);
    EXPECT_GT((samples["orgsync_sync_last_success_timestamp_seconds{source=\"corp\"}"]), 1.7e9);
    EXPECT_EQ((samples["orgsync_source_failing{source=\"corp\"}"]), 0);
    EXPECT_TRUE(samples.contains(members_latency));
    EXPECT_TRUE(samples.contains("orgsync_outbox_depth"));
    expect_no_secrets_logged();
}

TEST_F(ServiceTest, ReloadTakesAGoodMappingAndKeepsTheOldOneForABrokenOne) {
    start_directory();
    write_config(ldap_source());
    write_mapping("write");
    start();
    wait_runs("corp", 1);
    EXPECT_EQ(authorize("bob@acme.com", "project.resources.write"), "allow");

    // A good mapping: the grant drops to read, re-derived from the mirror.
    write_mapping("read");
    m_daemon->signal(SIGHUP);
    wait_runs("corp", 2);
    EXPECT_EQ(authorize("bob@acme.com", "project.resources.write"), "deny");
    EXPECT_EQ(authorize("bob@acme.com", "project.resources.read"), "allow");

    // A broken one: logged, and the old mapping stays.
    write_file(m_dir / "mapping.toml", "[[org]]\nslug = \"Not A Slug\"\n");
    m_daemon->signal(SIGHUP);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (m_daemon->log().find("event=reload.failed") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_NE(m_daemon->log().find("event=reload.failed"), std::string::npos) << m_daemon->log();
    EXPECT_EQ(authorize("bob@acme.com", "project.resources.read"), "allow");
    auto synced = api("POST", "/v1/sync/corp?wait=true");
    EXPECT_EQ(synced.body["last_run"]["result"], "applied");
    EXPECT_EQ(authorize("bob@acme.com", "project.resources.read"), "allow");
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

TEST_F(ServiceTest, ReadinessFollowsAFailingDirectoryAndRecovers) {
    start_directory();
    write_config(ldap_source());
    write_mapping();
    start();
    wait_runs("corp", 1);
    EXPECT_EQ(call("GET", "/readyz", "", {}).status, 200);

    m_slapd->kill();
    for (int run = 0; run < 2; ++run) {
        auto synced = api("POST", "/v1/sync/corp?wait=true");
        EXPECT_EQ(synced.body["last_run"]["result"], "failed") << synced.body.dump();
    }
    auto unready = call("GET", "/readyz", "", {});
    EXPECT_EQ(unready.status, 503);
    ASSERT_EQ(unready.body["failing"].size(), 1u) << unready.body.dump();
    EXPECT_EQ(unready.body["failing"][0]["source"], "corp");
    // An outage removes nobody.
    EXPECT_EQ(members("acme").size(), 3u);
    auto samples = parse_prometheus(m_client->Get("/metrics")->body);
    EXPECT_EQ((samples["orgsync_source_failing{source=\"corp\"}"]), 1);
    EXPECT_GE((samples["orgsync_sync_runs_total{source=\"corp\",result=\"failed\"}"]), 2);

    m_slapd->restart();
    auto synced = api("POST", "/v1/sync/corp?wait=true");
    EXPECT_EQ(synced.body["last_run"]["result"], "applied") << synced.body.dump();
    EXPECT_EQ(call("GET", "/readyz", "", {}).status, 200);
    EXPECT_EQ(members("acme").size(), 3u);
}

TEST_F(ServiceTest, HooksNeedAFreshSignatureUsedOnce) {
    write_config("");
    write_mapping();
    start();
    const json signup = {{"type", "user.signup"},
                         {"email", "erin@acme.com"},
                         {"email_verified", true},
                         {"name", "Erin"}};

    EXPECT_EQ(hook(signup, now(), "wrong-secret").status, 401);
    EXPECT_EQ(hook(signup, now() - 301s, k_hook_secret).status, 401);  // stale
    EXPECT_EQ(hook(signup, now() + 301s, k_hook_secret).status, 401);  // from the future
    EXPECT_EQ(call("POST", "/hooks/v1/events", signup.dump(), {}).status, 401);
    EXPECT_FALSE(members("acme").contains("erin@acme.com"));

    const std::string body = signup.dump();
    const httplib::Headers signed_once = {
        {std::string(k_signature_header), sign(k_hook_secret, body, now())}};
    auto first = call("POST", "/hooks/v1/events", body, signed_once);
    EXPECT_EQ(first.status, 200) << first.body.dump();
    EXPECT_EQ(first.body["joined"], json({"acme"}));
    auto replayed = call("POST", "/hooks/v1/events", body, signed_once);
    EXPECT_EQ(replayed.status, 401);
    EXPECT_EQ(replayed.body["error"], "signature replayed");

    // Signed but wrong: 400, nothing changes.
    EXPECT_EQ(hook({{"type", "user.deleted"}}, now(), k_hook_secret).status, 400);
    EXPECT_EQ(hook({{"type", "user.signup"}}, now(), k_hook_secret).status, 400);
    EXPECT_EQ(call("POST", "/hooks/v1/events", "{not json",
                   {{std::string(k_signature_header), sign(k_hook_secret, "{not json", now())}})
                  .status,
              400);
    EXPECT_EQ(hook({{"type", "sync.request"}, {"source", "nope"}}, now(), k_hook_secret).status,
              404);

    // SCIM requests are counted by route template and status, whoever sends them.
    EXPECT_EQ(call("GET", "/scim/v2/Users/some-id", "", {{"Authorization", "Bearer nope"}}).status,
              401);
    const std::string scim_401 =
        "orgsync_scim_requests_total{route=\"/scim/v2/Users/{id}\",method=\"GET\","
        "status=\"401\"}";
    auto samples = metrics_when([&](const auto& seen) { return seen.contains(scim_401); });
    EXPECT_EQ(samples[scim_401], 1);
    EXPECT_EQ((samples["orgsync_hook_events_total{type=\"user.signup\",result=\"applied\"}"]), 1);
    expect_no_secrets_logged();
}

TEST_F(ServiceTest, LogsForTheJournalWhenStderrIsTheJournal) {
    write_config("");
    write_mapping();
    // The daemon's stderr is this file: JOURNAL_STREAM names its device and inode.
    write_file(m_dir / "log", "");
    struct stat info {};
    ASSERT_EQ(::stat((m_dir / "log").c_str(), &info), 0);
    const std::string stream = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
    ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
    start();
    ::unsetenv("JOURNAL_STREAM");
    EXPECT_EQ(hook({{"type", "user.signup"}, {"email", "x@acme.com"}}, now(), "wrong").status, 401);
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);

    std::istringstream lines(m_daemon->log());
    std::string line;
    std::set<std::string> prefixes;
    while (std::getline(lines, line)) {
        ASSERT_GE(line.size(), 4u) << line;
        EXPECT_TRUE(line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>') << line;
        EXPECT_TRUE(line.substr(3).starts_with("event=")) << line;  // no timestamp
        prefixes.insert(line.substr(0, 3));
    }
    EXPECT_TRUE(prefixes.contains("<6>"));  // info
    EXPECT_TRUE(prefixes.contains("<4>"));  // the refused hook's warning
}

TEST_F(ServiceTest, LiveModeAppliesDirectoryChangesWithoutARequest) {
    start_directory();
    write_config(ldap_source() + "live = true\n");
    write_mapping();
    start();
    wait_runs("corp", 1);
    m_slapd->add(person(*m_slapd, "lena", "lena@acme.com"));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!members("acme").contains("lena@acme.com") &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(members("acme").contains("lena@acme.com")) << m_daemon->log();
    auto status = source_status("corp");
    EXPECT_EQ(status["last_run"]["trigger"], "live") << status.dump();
    // A requested run pauses the live search and starts it again.
    EXPECT_EQ(api("POST", "/v1/sync/corp?wait=true").body["last_run"]["result"], "applied");
    m_slapd->add(person(*m_slapd, "milo", "milo@acme.com"));
    const auto again = std::chrono::steady_clock::now() + 20s;
    while (!members("acme").contains("milo@acme.com") && std::chrono::steady_clock::now() < again) {
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(members("acme").contains("milo@acme.com")) << m_daemon->log();
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

TEST_F(ServiceTest, SignupAndEmailChangeJoinAndLeaveOrgs) {
    write_config("");
    write_mapping();
    start();

    auto joined = hook({{"type", "user.signup"},
                        {"email", "frank@acme.com"},
                        {"email_verified", true},
                        {"name", "Frank"}},
                       now(), k_hook_secret);
    ASSERT_EQ(joined.status, 200) << joined.body.dump();
    EXPECT_EQ(members("acme")["frank@acme.com"], "member");

    // Not verified: no org.
    auto unverified =
        hook({{"type", "user.signup"}, {"email", "gina@beta.org"}, {"email_verified", false}},
             now(), k_hook_secret);
    ASSERT_EQ(unverified.status, 200);
    EXPECT_EQ(unverified.body["joined"], json::array());
    EXPECT_FALSE(members("beta").contains("gina@beta.org"));

    auto moved = hook({{"type", "user.email_changed"},
                       {"previous_email", "frank@acme.com"},
                       {"email", "frank@beta.org"},
                       {"email_verified", true}},
                      now(), k_hook_secret);
    ASSERT_EQ(moved.status, 200) << moved.body.dump();
    EXPECT_EQ(moved.body["left"], json({"acme"}));
    EXPECT_EQ(moved.body["joined"], json({"beta"}));
    EXPECT_FALSE(members("acme").contains("frank@acme.com"));
    EXPECT_FALSE(members("acme").contains("frank@beta.org"));
    EXPECT_EQ(members("beta")["frank@beta.org"], "member");

    auto unknown = hook({{"type", "user.email_changed"},
                         {"previous_email", "nobody@acme.com"},
                         {"email", "nobody@beta.org"},
                         {"email_verified", true}},
                        now(), k_hook_secret);
    EXPECT_EQ(unknown.status, 404);
}

// A webhook receiver that is down (its port bound, not listening: refused)
// until up() is called; it checks every signature and records event ids.
class Receiver {
  public:
    Receiver() {
        m_port = m_server.bind_to_any_port("127.0.0.1");
        m_server.Post(
            "/hook", [this](const httplib::Request& request, httplib::Response& response) {
                auto verified = verify(
                    k_target_secret, request.get_header_value(std::string(k_signature_header)),
                    request.body,
                    std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
                if (!verified) {
                    response.status = 401;
                    ++bad_signatures;
                    return;
                }
                auto body = json::parse(request.body);
                std::lock_guard lock(m_mutex);
                for (const auto& event : body["events"]) {
                    m_ids.insert(event["id"].get<std::string>());
                    m_events.push_back(event);
                }
                response.status = 204;
            });
    }
    ~Receiver() {
        m_server.stop();
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }
    void up() {
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {  // stop() does nothing before that
            std::this_thread::sleep_for(1ms);
        }
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/hook"; }
    std::set<std::string> ids() {
        std::lock_guard lock(m_mutex);
        return m_ids;
    }
    std::vector<json> events() {
        std::lock_guard lock(m_mutex);
        return m_events;
    }
    std::atomic<int> bad_signatures{0};

  private:
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    std::mutex m_mutex;
    std::set<std::string> m_ids;
    std::vector<json> m_events;
};

TEST_F(ServiceTest, OutboundWebhooksArriveAfterTheReceiverComesUpAndAfterARestart) {
    Receiver receiver;
    write_config("[[webhook.target]]\nurl = \"" + receiver.url() +
                 "\"\nsecret_file = \"target-secret\"\n");
    write_mapping();
    start();
    for (const char* email : {"h1@acme.com", "h2@acme.com", "h3@beta.org"}) {
        ASSERT_EQ(hook({{"type", "user.signup"}, {"email", email}, {"email_verified", true}}, now(),
                       k_hook_secret)
                      .status,
                  200);
    }
    // Down: deliveries fail and are retried; nothing is lost.
    auto failing = [&] {
        auto targets = api("GET", "/v1/status").body["outbox"]["targets"];
        return targets.size() == 1 && targets[0]["failing_attempts"].get<int>() > 0;
    };
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!failing() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(failing()) << api("GET", "/v1/status").body.dump();
    EXPECT_GT(api("GET", "/v1/status").body["outbox"]["depth"].get<int>(), 0);

    receiver.up();
    auto drained = [&] { return api("GET", "/v1/status").body["outbox"]["depth"] == 0; };
    deadline = std::chrono::steady_clock::now() + 30s;
    while (!drained() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(drained()) << api("GET", "/v1/status").body.dump() << m_daemon->log();
    std::set<std::string> joined;
    for (const auto& event : receiver.events()) {
        EXPECT_FALSE(event["id"].get<std::string>().empty());
        if (event["type"] == "membership.added") {
            joined.insert(event["subject"].get<std::string>());
        }
    }
    EXPECT_TRUE(joined.contains("h1@acme.com") && joined.contains("h2@acme.com") &&
                joined.contains("h3@beta.org"))
        << json(receiver.events()).dump();
    const auto before = receiver.ids().size();

    // Events written while the daemon is down are delivered after it starts.
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
    {
        auto store = directory::Store::open(m_dir / "orgsync.db");
        ASSERT_TRUE(store);
    }
    start();
    ASSERT_EQ(hook({{"type", "user.signup"}, {"email", "h4@acme.com"}, {"email_verified", true}},
                   now(), k_hook_secret)
                  .status,
              200);
    deadline = std::chrono::steady_clock::now() + 30s;
    while (!(drained() && receiver.ids().size() > before) &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    bool h4 = false;
    for (const auto& event : receiver.events()) {
        h4 = h4 || (event["type"] == "membership.added" && event["subject"] == "h4@acme.com");
    }
    EXPECT_TRUE(h4);
    EXPECT_EQ(receiver.bad_signatures.load(), 0);
    expect_no_secrets_logged();
}

TEST_F(ServiceTest, SigtermDuringASyncLeavesTheStoreWholeAndExitsZero) {
    // Enough users that the first sync is still running when SIGTERM comes.
    m_slapd = std::make_unique<Slapd>();
    std::string ldif;
    constexpr int k_users = 3000;
    for (int i = 0; i < k_users; ++i) {
        ldif += person(*m_slapd, "u" + std::to_string(i), "u" + std::to_string(i) + "@acme.com");
    }
    m_slapd->add(ldif);
    write_config(ldap_source());
    write_mapping();
    start();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (m_daemon->log().find("event=sync.started source=corp") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0) << m_daemon->log();
    const std::string log = m_daemon->log();
    EXPECT_NE(log.find("event=daemon.stopped"), std::string::npos) << log;

    // The run either committed whole or not at all.
    auto store = directory::Store::open(m_dir / "orgsync.db");
    ASSERT_TRUE(store);
    auto org = (*store)->find_org("acme");
    ASSERT_TRUE(org && *org);
    auto listed = (*store)->list_members((**org).id);
    ASSERT_TRUE(listed);
    const auto mirrored = (*store)->source_user_count("corp");
    ASSERT_TRUE(mirrored);
    if (*mirrored == 0) {
        EXPECT_EQ(listed->size(), 1u);  // the owner
    } else {
        EXPECT_EQ(*mirrored, static_cast<std::size_t>(k_users));
        EXPECT_EQ(listed->size(), static_cast<std::size_t>(k_users) + 1);
    }
}

TEST_F(ServiceTest, SlowClientsAreCutOffAndDoNotStarveOthers) {
    write_config("", "request_timeout = \"2s\"\n");
    write_mapping();
    start();
    // More slow clients than the listener has workers (16), each sending a
    // request's first line and then a byte every 500 ms.
    constexpr int k_slow = 24;
    std::vector<int> sockets;
    for (int i = 0; i < k_slow; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(m_daemon->port());
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
        ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(head.size()));
        sockets.push_back(fd);
    }
    std::atomic<int> cut_off{0};
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        std::vector<bool> closed(sockets.size(), false);
        const auto until = std::chrono::steady_clock::now() + 14s;
        while (!done && std::chrono::steady_clock::now() < until) {
            for (std::size_t i = 0; i < sockets.size(); ++i) {
                if (closed[i]) {
                    continue;
                }
                char buffer[512];
                const auto got = ::recv(sockets[i], buffer, sizeof buffer, MSG_DONTWAIT);
                if (got == 0 || ::send(sockets[i], "X", 1, MSG_NOSIGNAL) < 0) {
                    closed[i] = true;
                    ++cut_off;
                }
            }
            std::this_thread::sleep_for(500ms);
        }
    });
    // Meanwhile other clients are served.
    std::this_thread::sleep_for(500ms);
    for (int i = 0; i < 3; ++i) {
        httplib::Client client("127.0.0.1", m_daemon->port());
        client.set_read_timeout(10, 0);
        const auto started = std::chrono::steady_clock::now();
        auto reply = client.Get("/healthz");
        // No ASSERT here: the trickling thread must be joined below.
        EXPECT_TRUE(reply && reply->status == 200)
            << (reply ? std::to_string(reply->status) : httplib::to_string(reply.error()));
        EXPECT_LT(std::chrono::steady_clock::now() - started, 9s);
    }
    const auto deadline = std::chrono::steady_clock::now() + 12s;
    while (cut_off < k_slow && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    done = true;
    trickle.join();
    EXPECT_EQ(cut_off.load(), k_slow);
    for (int fd : sockets) {
        ::close(fd);
    }
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

// Many clients connecting at the same moment (an IdP opening its
// connections, a load balancer's health checks) are all accepted at once:
// a connection the listen queue has no room for waits for the client's SYN
// retransmission, a second or more.
TEST_F(ServiceTest, ManyClientsConnectingAtOnceAreNotHeldBack) {
    write_config("");
    write_mapping();
    start();
    // One request first, from this thread: the HTTP library's client sets up
    // its function-local statics (the response-line regex) on first use, and
    // the library is not built for ThreadSanitizer, which would take 64
    // threads doing that at once for a race.
    ASSERT_EQ(call("GET", "/healthz", "", {}).status, 200);
    constexpr int k_clients = 64;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> seconds(k_clients, -1.0);
    std::vector<std::thread> clients;
    for (int i = 0; i < k_clients; ++i) {
        clients.emplace_back([&, i] {
            httplib::Client client("127.0.0.1", m_daemon->port());
            client.set_connection_timeout(10, 0);
            ++ready;
            while (!go) {
                std::this_thread::yield();
            }
            const auto started = std::chrono::steady_clock::now();
            auto reply = client.Get("/healthz");
            if (reply && reply->status == 200) {
                seconds[static_cast<std::size_t>(i)] =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                        .count();
            }
        });
    }
    while (ready < k_clients) {
        std::this_thread::yield();
    }
    go = true;
    for (auto& client : clients) {
        client.join();
    }
    const double slowest = *std::ranges::max_element(seconds);
    EXPECT_GE(*std::ranges::min_element(seconds), 0.0) << "a request failed";
    EXPECT_LT(slowest, 0.9) << "a connection waited for a SYN retransmission";
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

}  // namespace
}  // namespace orgsync::daemon
