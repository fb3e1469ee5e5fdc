// Outbound webhook delivery against a real HTTP receiver (cpp-httplib on
// 127.0.0.1, port 0) and a real store file. Steps run at chosen times
// (run_once(now)), so retries are driven by moving `now`, never by sleeping.

#include "daemon/outbox_delivery.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/signature.hpp"
#include "directory/store.hpp"

namespace orgsync::daemon {
namespace {

using namespace std::chrono_literals;
using directory::Store;
using nlohmann::json;
namespace fs = std::filesystem;
using TimePoint = std::chrono::system_clock::time_point;

const TimePoint k_t0{std::chrono::sys_seconds{1700000000s}};

// A webhook receiver: verifies each request's signature with its secret at
// the time the test says (or the real time), answers `status`, and records
// the events of the requests it acknowledged.
class Receiver {
  public:
    explicit Receiver(std::string secret, int port = 0) : m_secret(std::move(secret)) {
        // Stopping waits for idle keep-alive connections to time out.
        m_server.set_keep_alive_timeout(1);
        m_server.Post("/hooks", [this](const httplib::Request& request,
                                       httplib::Response& response) { handle(request, response); });
        if (port == 0) {
            m_port = m_server.bind_to_any_port("127.0.0.1");
        } else if (m_server.bind_to_port("127.0.0.1", port)) {
            m_port = port;
        }
        if (m_port > 0) {
            m_thread = std::thread([this] { m_server.listen_after_bind(); });
            // stop() is a no-op before the accept loop runs.
            while (!m_server.is_running()) {
                std::this_thread::yield();
            }
        }
    }
    ~Receiver() {
        m_server.stop();
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    int port() const { return m_port; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/hooks"; }

    void set_status(int status) {
        std::lock_guard lock(m_mutex);
        m_status = status;
    }
    // Requests whose body holds this event id are refused with 400.
    void refuse_event(std::string id) {
        std::lock_guard lock(m_mutex);
        m_refused = std::move(id);
    }
    // Signatures are checked at this time; unset: at the real time.
    void set_now(std::optional<TimePoint> now) {
        std::lock_guard lock(m_mutex);
        m_now = now;
    }

    std::vector<json> events() const {
        std::lock_guard lock(m_mutex);
        return m_events;
    }
    std::vector<std::string> ids() const {
        std::vector<std::string> ids;
        for (const json& event : events()) {
            ids.push_back(event.at("id").get<std::string>());
        }
        return ids;
    }
    // Every request's event ids, acknowledged or not.
    std::vector<std::vector<std::string>> requests() const {
        std::lock_guard lock(m_mutex);
        return m_requests;
    }
    int bad_signatures() const {
        std::lock_guard lock(m_mutex);
        return m_bad_signatures;
    }
    std::string last_signature() const {
        std::lock_guard lock(m_mutex);
        return m_last_signature;
    }
    // Waits (bounded) until `count` events were acknowledged.
    bool wait_for_events(std::size_t count) {
        std::unique_lock lock(m_mutex);
        return m_changed.wait_for(lock, 60s, [&] { return m_events.size() >= count; });
    }

  private:
    void handle(const httplib::Request& request, httplib::Response& response) {
        std::lock_guard lock(m_mutex);
        const TimePoint now = m_now.value_or(std::chrono::system_clock::now());
        m_last_signature = request.get_header_value(std::string(k_signature_header));
        const auto verified = verify(m_secret, m_last_signature, request.body,
                                     std::chrono::time_point_cast<std::chrono::seconds>(now));
        const json body = json::parse(request.body, nullptr, false);
        std::vector<std::string> ids;
        if (body.is_object() && body.contains("events")) {
            for (const json& event : body.at("events")) {
                ids.push_back(event.value("id", ""));
            }
        }
        m_requests.push_back(ids);
        if (!verified || request.get_header_value("Content-Type") != "application/json") {
            ++m_bad_signatures;
            response.status = 401;
            return;
        }
        if (!m_refused.empty() && std::ranges::find(ids, m_refused) != ids.end()) {
            response.status = 400;
            return;
        }
        response.status = m_status;
        if (m_status >= 200 && m_status < 300) {
            for (const json& event : body.at("events")) {
                m_events.push_back(event);
            }
            m_changed.notify_all();
        }
    }

    std::string m_secret;
    httplib::Server m_server;
    int m_port = -1;
    std::thread m_thread;

    mutable std::mutex m_mutex;  // guards everything below
    std::condition_variable m_changed;
    int m_status = 200;
    std::string m_refused;
    std::optional<TimePoint> m_now = k_t0;
    std::vector<json> m_events;
    std::vector<std::vector<std::string>> m_requests;
    int m_bad_signatures = 0;
    std::string m_last_signature;
};

class OutboxDeliveryTest : public ::testing::Test {
  protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() /
                ("orgsync-outbox-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        reopen();
    }
    void TearDown() override {
        m_store.reset();
        fs::remove_all(m_dir);
    }

    void reopen() {
        m_store.reset();
        auto store = Store::open(m_dir / "orgsync.db");
        ASSERT_TRUE(store) << store.error().message;
        m_store = std::move(*store);
    }

    // An org and `groups` groups in it, in separate transactions: single
    // event rows.
    void add_org(const std::string& slug, int groups) {
        directory::OrgId org = 0;
        auto created = m_store->write("test", [&](directory::Transaction& tx) {
            auto id = tx.create_org(slug, slug, false, "owner@" + slug + ".example");
            if (!id) {
                return directory::Expected<void>(std::unexpected(id.error()));
            }
            org = *id;
            return directory::Expected<void>();
        });
        ASSERT_TRUE(created) << created.error().message;
        m_orgs[slug] = org;
        add_groups(slug, 0, groups);
    }
    void add_groups(const std::string& slug, int from, int to) {
        for (int i = from; i < to; ++i) {
            auto written = m_store->write("test", [&](directory::Transaction& tx) {
                auto group = tx.create_group(m_orgs.at(slug), "group-" + std::to_string(i));
                return group ? directory::Expected<void>()
                             : directory::Expected<void>(std::unexpected(group.error()));
            });
            ASSERT_TRUE(written) << written.error().message;
        }
    }
    // `count` members added by one bulk call: batch rows.
    void add_members(const std::string& slug, int count) {
        std::vector<std::string> emails;
        for (int i = 0; i < count; ++i) {
            emails.push_back("user" + std::to_string(i) + "@" + slug + ".example");
        }
        std::vector<directory::NewMember> members;
        for (const std::string& email : emails) {
            members.push_back({.email = email,
                               .display_name = "",
                               .external_id = "",
                               .user_type = directory::UserType::internal,
                               .role = directory::OrgRole::member});
        }
        auto written = m_store->write("corp", [&](directory::Transaction& tx) {
            return tx.add_members(m_orgs.at(slug), "corp", members);
        });
        ASSERT_TRUE(written) << written.error().message;
    }

    // Every event of the outbox in order, read independently of Delivery:
    // (id, org).
    std::vector<std::pair<std::string, std::string>> outbox_events() const {
        auto rows = m_store->outbox_rows({}, std::numeric_limits<std::int64_t>::max());
        EXPECT_TRUE(rows);
        std::vector<std::pair<std::string, std::string>> events;
        for (const auto& row : *rows) {
            if (row.kind == "batch") {
                const json payload = json::parse(row.payload);
                for (const json& event : payload.at("events")) {
                    events.emplace_back(event.at("id"), event.at("org"));
                }
            } else {
                events.emplace_back(row.event_id, row.org);
            }
        }
        return events;
    }
    std::vector<std::string> outbox_ids() const {
        std::vector<std::string> ids;
        for (const auto& [id, org] : outbox_events()) {
            ids.push_back(id);
        }
        return ids;
    }

    std::int64_t depth() const { return m_store->outbox_depth().value(); }

    // Steps at `now` until nothing more is due; returns the sum.
    static DeliveryStep drain(Delivery& delivery, TimePoint now) {
        DeliveryStep total;
        for (int i = 0; i < 10000; ++i) {
            const DeliveryStep step = delivery.run_once(now);
            total.delivered += step.delivered;
            total.requests_failed += step.requests_failed;
            total.dead_lettered += step.dead_lettered;
            total.next_retry = step.next_retry;
            if (!step.more) {
                break;
            }
        }
        return total;
    }

    static DeliveryOptions options(std::int64_t batch_size = 100, int max_attempts = 5) {
        DeliveryOptions options;
        options.batch_size = batch_size;
        options.max_attempts = max_attempts;
        options.timeout = 10s;
        return options;
    }

    fs::path m_dir;
    std::unique_ptr<Store> m_store;
    std::map<std::string, directory::OrgId> m_orgs;
};

TEST_F(OutboxDeliveryTest, DeliversEveryEventInOrderSignedWithTheTargetSecret) {
    add_org("acme", 3);
    add_org("globex", 2);
    add_groups("acme", 3, 5);
    const auto expected = outbox_ids();
    ASSERT_GT(expected.size(), 10U);

    Receiver receiver("secret-a");
    Delivery delivery(*m_store, {{receiver.url(), "secret-a"}}, options(4));
    const DeliveryStep step = drain(delivery, k_t0);

    EXPECT_EQ(step.delivered, static_cast<std::int64_t>(expected.size()));
    EXPECT_EQ(step.requests_failed, 0);
    EXPECT_EQ(receiver.bad_signatures(), 0);
    EXPECT_EQ(receiver.ids(), expected);
    EXPECT_TRUE(receiver.last_signature().starts_with("t=1700000000,v1="));
    // Batches of at most 4 events.
    for (const auto& request : receiver.requests()) {
        EXPECT_GE(request.size(), 1U);
        EXPECT_LE(request.size(), 4U);
    }
    // Each event carries what a receiver needs.
    for (const json& event : receiver.events()) {
        for (const char* key : {"id", "type", "org", "subject", "source", "detail", "created_at"}) {
            EXPECT_TRUE(event.contains(key)) << key << " in " << event.dump();
        }
    }
    EXPECT_EQ(depth(), 0);
    auto state = m_store->delivery_state(receiver.url());
    ASSERT_TRUE(state);
    EXPECT_EQ(state->delivered, static_cast<std::int64_t>(expected.size()));
    EXPECT_EQ(state->attempts, 0);

    // Nothing new: nothing sent.
    const auto requests = receiver.requests().size();
    EXPECT_EQ(delivery.run_once(k_t0).delivered, 0);
    EXPECT_EQ(receiver.requests().size(), requests);
}

TEST_F(OutboxDeliveryTest, WrongSecretIsRefusedByTheReceiverAndRetried) {
    add_org("acme", 1);
    Receiver receiver("receiver-secret");
    Delivery delivery(*m_store, {{receiver.url(), "another-secret"}}, options());
    const DeliveryStep step = drain(delivery, k_t0);
    EXPECT_EQ(step.delivered, 0);
    EXPECT_EQ(step.requests_failed, 1);
    EXPECT_EQ(receiver.bad_signatures(), 1);
    EXPECT_GT(depth(), 0);
    EXPECT_EQ(m_store->delivery_state(receiver.url())->last_error, "HTTP status 401");
}

TEST_F(OutboxDeliveryTest, ReceiverDownThenUpGetsEveryEventInOrder) {
    add_org("acme", 4);
    add_org("globex", 4);
    const auto expected = outbox_events();

    int port = 0;
    {
        Receiver probe("s");
        port = probe.port();
    }
    ASSERT_GT(port, 0);
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hooks";
    Delivery delivery(*m_store, {{url, "s"}}, options(3));

    // Down: connection refused, a retry is scheduled.
    DeliveryStep step = drain(delivery, k_t0);
    EXPECT_EQ(step.delivered, 0);
    EXPECT_EQ(step.requests_failed, 1);
    ASSERT_TRUE(step.next_retry);
    EXPECT_GT(*step.next_retry, k_t0);
    EXPECT_LE(*step.next_retry, k_t0 + 1s);
    // Still down at the retry: the wait doubles (with jitter).
    step = drain(delivery, *step.next_retry);
    EXPECT_EQ(step.requests_failed, 1);
    EXPECT_EQ(m_store->delivery_state(url)->attempts, 2);

    Receiver receiver("s", port);
    ASSERT_EQ(receiver.port(), port);
    // Not due yet: nothing is sent before the retry time.
    step = drain(delivery, k_t0);
    EXPECT_EQ(step.delivered, 0);
    EXPECT_TRUE(receiver.requests().empty());

    receiver.set_now(k_t0 + 1h);
    step = drain(delivery, k_t0 + 1h);
    EXPECT_EQ(step.delivered, static_cast<std::int64_t>(expected.size()));

    // None lost, none twice, in order overall and so per org.
    const auto received = receiver.events();
    ASSERT_EQ(received.size(), expected.size());
    std::map<std::string, std::vector<std::string>> by_org_sent, by_org_received;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(received[i].at("id"), expected[i].first);
        by_org_sent[expected[i].second].push_back(expected[i].first);
        by_org_received[received[i].at("org")].push_back(received[i].at("id"));
    }
    EXPECT_EQ(by_org_received, by_org_sent);
    EXPECT_TRUE(by_org_sent.contains("acme"));
    EXPECT_TRUE(by_org_sent.contains("globex"));
    EXPECT_EQ(depth(), 0);
    EXPECT_EQ(m_store->delivery_state(url)->attempts, 0);
}

TEST_F(OutboxDeliveryTest, NonSuccessAnswersAreRetriedWithTheSameEvents) {
    add_org("acme", 2);
    const auto expected = outbox_ids();
    Receiver receiver("s");
    receiver.set_status(503);
    Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(2));

    EXPECT_EQ(drain(delivery, k_t0).requests_failed, 1);
    receiver.set_status(302);  // a redirect is not an acknowledgement either
    receiver.set_now(k_t0 + 1h);
    EXPECT_EQ(drain(delivery, k_t0 + 1h).requests_failed, 1);
    receiver.set_status(204);
    receiver.set_now(k_t0 + 2h);
    EXPECT_EQ(drain(delivery, k_t0 + 2h).delivered, static_cast<std::int64_t>(expected.size()));

    const auto requests = receiver.requests();
    ASSERT_GE(requests.size(), 3U);
    EXPECT_EQ(requests[0], requests[1]);
    EXPECT_EQ(requests[1], requests[2]);
    EXPECT_EQ(receiver.ids(), expected);
}

TEST_F(OutboxDeliveryTest, DeadLettersAfterMaxAttemptsAndMovesOn) {
    add_org("acme", 3);
    const auto expected = outbox_ids();
    ASSERT_GE(expected.size(), 4U);
    const std::string poison = expected[1];

    Receiver receiver("s");
    receiver.refuse_event(poison);
    Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(1, 3));

    // The first event goes through, the second fails three times.
    DeliveryStep step = drain(delivery, k_t0);
    EXPECT_EQ(step.delivered, 1);
    EXPECT_EQ(step.requests_failed, 1);
    receiver.set_now(k_t0 + 1h);
    step = drain(delivery, k_t0 + 1h);
    EXPECT_EQ(step.requests_failed, 1);
    EXPECT_EQ(step.dead_lettered, 0);
    receiver.set_now(k_t0 + 2h);
    step = drain(delivery, k_t0 + 2h);
    EXPECT_EQ(step.requests_failed, 1);
    EXPECT_EQ(step.dead_lettered, 1);
    // ...and the rest follows.
    EXPECT_EQ(step.delivered, static_cast<std::int64_t>(expected.size()) - 2);

    std::vector<std::string> without_poison = expected;
    without_poison.erase(without_poison.begin() + 1);
    EXPECT_EQ(receiver.ids(), without_poison);

    auto letters = m_store->dead_letters(receiver.url(), 0, 10);
    ASSERT_TRUE(letters);
    ASSERT_EQ(letters->size(), 1U);
    const auto& letter = letters->front();
    EXPECT_EQ(letter.target, receiver.url());
    EXPECT_EQ(letter.attempts, 3);
    EXPECT_EQ(letter.last_error, "HTTP status 400");
    EXPECT_EQ(letter.events, 1);
    EXPECT_EQ(letter.first_event_id, poison);
    EXPECT_EQ(letter.last_event_id, poison);
    EXPECT_EQ(json::parse(letter.body).at("events").at(0).at("id"), poison);
    EXPECT_FALSE(letter.at.empty());

    auto state = m_store->delivery_state(receiver.url());
    EXPECT_EQ(state->dead_lettered, 1);
    EXPECT_EQ(state->delivered, static_cast<std::int64_t>(expected.size()) - 1);
    EXPECT_EQ(depth(), 0);
    EXPECT_EQ(m_store->dead_letters("", 0, 10)->size(), 1U);
    EXPECT_TRUE(m_store->dead_letters("http://elsewhere/", 0, 10)->empty());
}

TEST_F(OutboxDeliveryTest, RestartResumesWithoutLossOrRepeats) {
    add_org("acme", 6);
    const auto expected = outbox_ids();
    Receiver receiver("s");
    {
        Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(3));
        const DeliveryStep step = delivery.run_once(k_t0);
        EXPECT_EQ(step.delivered, 3);
        EXPECT_TRUE(step.more);
        // A failure's attempt count and retry time survive the restart.
        receiver.set_status(500);
        EXPECT_EQ(delivery.run_once(k_t0).requests_failed, 1);
    }
    reopen();
    auto state = m_store->delivery_state(receiver.url());
    ASSERT_TRUE(state);
    EXPECT_EQ(state->attempts, 1);
    EXPECT_GT(state->retry_at_ms, 1700000000000);
    EXPECT_EQ(state->delivered, 3);

    receiver.set_status(200);
    Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(3));
    EXPECT_EQ(drain(delivery, k_t0).delivered, 0);  // the retry is not due
    receiver.set_now(k_t0 + 1h);
    drain(delivery, k_t0 + 1h);
    EXPECT_EQ(receiver.ids(), expected);
    EXPECT_EQ(depth(), 0);
}

TEST_F(OutboxDeliveryTest, BatchRowsAreExpandedIntoSingleEvents) {
    add_org("acme", 1);
    add_members("acme", 1500);  // more than one batch row
    const auto expected = outbox_ids();
    ASSERT_GT(expected.size(), 1500U);
    auto rows = m_store->outbox_rows({}, std::numeric_limits<std::int64_t>::max());
    const auto batches =
        std::ranges::count(*rows, std::string("batch"), &directory::OutboxRow::kind);
    EXPECT_GE(batches, 2);

    Receiver receiver("s");
    {
        // Stop in the middle of a batch row, then resume from a new Delivery.
        Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(300));
        for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(delivery.run_once(k_t0).delivered, 300);
        }
    }
    auto state = m_store->delivery_state(receiver.url());
    EXPECT_GT(state->next.offset, 0);
    reopen();
    Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(300));
    drain(delivery, k_t0);

    EXPECT_EQ(receiver.ids(), expected);
    const std::set<std::string> unique(expected.begin(), expected.end());
    EXPECT_EQ(unique.size(), expected.size());
    // A batch row's events are <row event_id>-<index>, with their own type.
    const auto received = receiver.events();
    std::size_t from_batches = 0;
    for (const auto& row : *rows) {
        if (row.kind != "batch") {
            continue;
        }
        const json payload = json::parse(row.payload);
        for (std::size_t i = 0; i < payload.at("events").size(); ++i) {
            const std::string id = row.event_id + "-" + std::to_string(i);
            const auto it = std::ranges::find(expected, id);
            ASSERT_NE(it, expected.end()) << id;
            const json& event = received.at(static_cast<std::size_t>(it - expected.begin()));
            EXPECT_NE(event.at("type"), "batch");
            EXPECT_EQ(event.at("created_at"), row.created_at);
            ++from_batches;
        }
    }
    EXPECT_GE(from_batches, 1500U);
    for (const auto& request : receiver.requests()) {
        EXPECT_LE(request.size(), 300U);
    }
    EXPECT_EQ(depth(), 0);
}

TEST_F(OutboxDeliveryTest, TargetsProgressIndependently) {
    add_org("acme", 2);
    const auto expected = outbox_ids();
    Receiver up("a");
    Receiver failing("b");
    failing.set_status(500);
    Delivery delivery(*m_store, {{up.url(), "a"}, {failing.url(), "b"}}, options());
    const DeliveryStep step = drain(delivery, k_t0);
    EXPECT_EQ(step.delivered, static_cast<std::int64_t>(expected.size()));
    EXPECT_EQ(step.requests_failed, 1);
    EXPECT_EQ(up.ids(), expected);
    // Rows count as delivered only once every target has them.
    EXPECT_EQ(depth(), static_cast<std::int64_t>(expected.size()));

    failing.set_status(200);
    failing.set_now(k_t0 + 1h);
    drain(delivery, k_t0 + 1h);
    EXPECT_EQ(failing.ids(), expected);
    EXPECT_EQ(depth(), 0);
    auto states = m_store->delivery_states();
    ASSERT_TRUE(states);
    EXPECT_EQ(states->size(), 2U);
}

TEST_F(OutboxDeliveryTest, NewTargetStartsAtTheOldestUndeliveredEvent) {
    add_org("acme", 2);
    Receiver first("s");
    {
        Delivery delivery(*m_store, {{first.url(), "s"}}, options());
        drain(delivery, k_t0);
    }
    const auto before = outbox_ids().size();
    add_groups("acme", 2, 4);
    const auto all = outbox_ids();

    Receiver second("s");
    Delivery delivery(*m_store, {{first.url(), "s"}, {second.url(), "s"}}, options());
    drain(delivery, k_t0);
    const std::vector<std::string> newer(all.begin() + static_cast<std::ptrdiff_t>(before),
                                         all.end());
    EXPECT_EQ(second.ids(), newer);
    EXPECT_EQ(first.ids(), all);
}

TEST_F(OutboxDeliveryTest, BackgroundThreadDeliversWhatIsWritten) {
    add_org("acme", 2);
    Receiver receiver("s");
    receiver.set_now(std::nullopt);  // the thread signs at the real time
    Delivery delivery(*m_store, {{receiver.url(), "s"}}, options(5));
    delivery.start();
    ASSERT_TRUE(receiver.wait_for_events(outbox_ids().size()));
    add_org("globex", 3);
    delivery.notify();
    const auto expected = outbox_ids();
    ASSERT_TRUE(receiver.wait_for_events(expected.size()));
    delivery.stop();
    delivery.stop();  // idempotent
    EXPECT_EQ(receiver.ids(), expected);
    EXPECT_EQ(receiver.bad_signatures(), 0);
}

TEST(RetryDelayTest, DoublesFromTheFirstStepUpToTheCapWithJitter) {
    DeliveryOptions options;
    options.retry_initial = 1s;
    options.retry_max = 5min;
    std::mt19937_64 random(42);
    const std::vector<std::pair<int, std::chrono::milliseconds>> full{
        {1, 1s}, {2, 2s}, {3, 4s}, {9, 256s}, {10, 5min}, {20, 5min}, {1000, 5min}};
    for (const auto& [attempts, whole] : full) {
        std::set<std::int64_t> seen;
        for (int i = 0; i < 200; ++i) {
            const auto delay = retry_delay(attempts, options, random);
            EXPECT_GE(delay, whole / 2) << attempts;
            EXPECT_LE(delay, whole) << attempts;
            seen.insert(delay.count());
        }
        EXPECT_GT(seen.size(), 10U) << "no jitter at attempt " << attempts;
    }
}

TEST(DeliveryTargetsTest, SecretsAreReadFromTheirFiles) {
    const fs::path dir =
        fs::temp_directory_path() / ("orgsync-targets-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "one") << "first-secret\n";
    std::ofstream(dir / "two") << "second-secret";
    std::ofstream(dir / "empty") << "\n";
    Config config;
    config.webhook_targets = {{"https://a.example/hooks", dir / "one"},
                              {"https://b.example/hooks", dir / "two"}};
    auto targets = load_delivery_targets(config);
    ASSERT_TRUE(targets) << targets.error();
    ASSERT_EQ(targets->size(), 2U);
    EXPECT_EQ((*targets)[0].url, "https://a.example/hooks");
    EXPECT_EQ((*targets)[0].secret, "first-secret");
    EXPECT_EQ((*targets)[1].secret, "second-secret");

    config.webhook_targets[1].secret_file = dir / "missing";
    EXPECT_EQ(load_delivery_targets(config).error(),
              "cannot read the webhook secret file " + (dir / "missing").string());
    config.webhook_targets[1].secret_file = dir / "empty";
    EXPECT_EQ(load_delivery_targets(config).error(),
              "the webhook secret file " + (dir / "empty").string() + " is empty");
    fs::remove_all(dir);
}

TEST(DeliveryOptionsTest, ComeFromTheWebhookSection) {
    Config config;
    config.webhook_max_attempts = 7;
    config.webhook_batch_size = 250;
    config.webhook_timeout = 30s;
    config.webhook_retry_initial = 2s;
    config.webhook_retry_max = 1h;
    const DeliveryOptions options = delivery_options(config);
    EXPECT_EQ(options.max_attempts, 7);
    EXPECT_EQ(options.batch_size, 250);
    EXPECT_EQ(options.timeout, 30s);
    EXPECT_EQ(options.retry_initial, 2s);
    EXPECT_EQ(options.retry_max, 1h);
}

}  // namespace
}  // namespace orgsync::daemon
