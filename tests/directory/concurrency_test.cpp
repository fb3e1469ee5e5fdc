// Decisions run concurrently with writes: readers never see a half-applied
// write, and a decision made after write() returns reflects that write.

#include <atomic>
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

}  // namespace
}  // namespace orgsync::directory
