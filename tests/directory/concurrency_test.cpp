// Decisions run concurrently with writes: readers never see a half-applied
// write, and a decision made after write() returns reflects that write.
// Store reads run beside a write in progress and see the state before it.

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "tests/directory/test_support.hpp"

namespace orgsync::directory {
namespace {

using namespace test_support;

using ConcurrencyTest = BasicStoreFixture<::testing::Test>;

TEST_F(ConcurrencyTest, ReadersSeeWholeWritesAndWritersSeeTheirOwn) {
    GroupId team = 0;
    UserId bob = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        OrgId acme = 0;
        UserId ceo = 0;
        ORGSYNC_ASSIGN(acme, tx.create_org("acme", "Acme", false, "ceo@acme.com"));
        ORGSYNC_ASSIGN(ceo, tx.upsert_user("ceo@acme.com", ""));
        ORGSYNC_ASSIGN(bob,
                       add_member(tx, acme, "bob@acme.com", UserType::internal, OrgRole::member));
        ORGSYNC_ASSIGN(team, tx.create_group(acme, "vision-team"));
        ProjectId vision = 0;
        ProjectId audio = 0;
        ORGSYNC_ASSIGN(vision, tx.create_project(acme, "vision", Visibility::private_, {}, ceo));
        ORGSYNC_ASSIGN(audio, tx.create_project(acme, "audio", Visibility::private_, {}, ceo));
        ORGSYNC_TRY(tx.grant_project(vision, group_principal(team), Level::write, "manual"));
        return tx.grant_project(audio, group_principal(team), Level::read, "manual");
    });

    const Request on_vision = request("bob@acme.com", "acme", "project.resources.read", "vision");
    const Request on_audio = request("bob@acme.com", "acme", "project.resources.read", "audio");
    std::atomic<bool> stop{false};
    std::atomic<long> torn{0};
    std::atomic<long> decisions{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 2; ++i) {
        readers.emplace_back([&] {
            while (!stop.load()) {
                // One snapshot answers both questions: joining the group
                // reaches both projects in one write, so the answers agree.
                auto snapshot = store().snapshot();
                auto vision = authorize(*snapshot, on_vision);
                auto audio = authorize(*snapshot, on_audio);
                if (!vision || !audio || vision->allow != audio->allow) {
                    ++torn;
                }
                ++decisions;
            }
        });
    }

    for (int round = 0; round < 100; ++round) {
        bool join = round % 2 == 0;
        write_ok([&](Transaction& tx) -> Expected<void> {
            return join ? tx.add_group_member(team, bob, "manual")
                        : tx.remove_group_member(team, bob, "manual");
        });
        EXPECT_EQ(decide(on_vision).allow, join) << "round " << round;
    }
    stop = true;
    for (auto& reader : readers) {
        reader.join();
    }
    EXPECT_EQ(torn.load(), 0);
    EXPECT_GT(decisions.load(), 0);
}

// Runs `reads` on another thread while a write holds the store; false when
// they did not finish within 10 s (they waited for the write).
template <typename Reads>
bool during_a_write(Store& store, Reads reads, const std::function<void(Transaction&)>& change) {
    std::promise<void> written;
    std::promise<void> release;
    auto released = release.get_future().share();
    std::thread writer([&] {
        auto done = store.write("manual", [&](Transaction& tx) -> Expected<void> {
            change(tx);
            written.set_value();
            released.wait();  // the transaction stays open until the reads are done
            return {};
        });
        EXPECT_TRUE(done) << done.error().message;
    });
    written.get_future().wait();
    auto running = std::async(std::launch::async, reads);
    const bool finished = running.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    release.set_value();
    writer.join();
    return finished;
}

TEST_F(ConcurrencyTest, StoreReadsDoNotWaitForAWriteInProgress) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.create_org("acme", "Acme", false, "ceo@acme.com"));
        return {};
    });
    bool before = false;
    const bool finished = during_a_write(
        store(),
        [&] {
            auto globex = store().find_org("globex");
            auto orgs = store().list_orgs();
            before = globex && !globex->has_value() && orgs && orgs->size() == 1;
        },
        [](Transaction& tx) {
            ASSERT_TRUE(tx.create_org("globex", "Globex", false, "ceo@globex.com"));
        });
    ASSERT_TRUE(finished) << "a read waited for the write in progress";
    EXPECT_TRUE(before) << "a read during the write saw more than the committed state";
    auto globex = store().find_org("globex");
    ASSERT_TRUE(globex && globex->has_value()) << "a read after the commit missed it";
}

// A reader connection is used again by later reads; what one read left
// open must not pin them to its state.
TEST_F(ConcurrencyTest, AReadThatStopsAtItsFirstRowDoesNotHoldAnOldState) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.create_org("acme", "Acme", false, "ceo@acme.com"));
        return {};
    });
    auto nothing = [](Transaction&) {};
    for (int round = 0; round < 3; ++round) {
        // find_org reads one row of its statement and leaves the rest.
        ASSERT_TRUE(during_a_write(
            store(),
            [&] {
                auto acme = store().find_org("acme");
                EXPECT_TRUE(acme && acme->has_value());
            },
            nothing));
        const std::string slug = "org" + std::to_string(round);
        write_ok([&](Transaction& tx) -> Expected<void> {
            ORGSYNC_TRY(tx.create_org(slug, slug, false, "ceo@" + slug + ".com"));
            return {};
        });
        std::size_t seen = 0;
        ASSERT_TRUE(during_a_write(
            store(),
            [&] {
                auto orgs = store().list_orgs();
                seen = orgs ? orgs->size() : 0;
            },
            nothing));
        EXPECT_EQ(seen, static_cast<std::size_t>(round + 2)) << "round " << round;
    }
}

}  // namespace
}  // namespace orgsync::directory
