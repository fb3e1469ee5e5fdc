// Group commit (connectors/scim/group_commit.hpp): which requests are
// committed together, and that each gets the answer it would have got
// committed alone, in queue order.

#include "connectors/scim/group_commit.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace orgsync::scim {
namespace {

struct Item {
    int number = 0;
    bool processed = false;
};

// Blocks until `done()`, yielding: the other threads only need to reach a
// blocking call.
template <typename Done>
void wait_until(Done done) {
    while (!done()) {
        std::this_thread::yield();
    }
}

TEST(CommitQueueTest, WhatArrivesDuringABatchIsTheNextBatch) {
    CommitQueue<Item> queue;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::mutex batches_mutex;
    std::vector<std::vector<int>> batches;
    auto process = [&](std::span<Item* const> batch) {
        std::vector<int> numbers;
        for (Item* item : batch) {
            numbers.push_back(item->number);
            item->processed = true;
        }
        {
            std::lock_guard lock(batches_mutex);
            batches.push_back(numbers);
        }
        if (numbers == std::vector<int>{0}) {
            released.wait();  // the first batch holds the queue up
        }
    };

    std::vector<Item> items(5);
    std::vector<std::thread> threads;
    threads.emplace_back([&] { queue.submit(items[0], process); });
    wait_until([&] {
        std::lock_guard lock(batches_mutex);
        return !batches.empty();
    });
    for (int i = 1; i < 5; ++i) {
        items[static_cast<std::size_t>(i)].number = i;
        threads.emplace_back([&, i] { queue.submit(items[static_cast<std::size_t>(i)], process); });
    }
    wait_until([&] { return queue.waiting() == 4; });
    release.set_value();
    for (auto& thread : threads) {
        thread.join();
    }
    ASSERT_EQ(batches.size(), 2U);
    EXPECT_EQ(batches[0], std::vector<int>{0});
    EXPECT_EQ(std::set<int>(batches[1].begin(), batches[1].end()), (std::set<int>{1, 2, 3, 4}));
    for (const auto& item : items) {
        EXPECT_TRUE(item.processed);
    }
    EXPECT_EQ(queue.waiting(), 0U);
}

TEST(CommitQueueTest, AFailingBatchReachesItsLeaderAndTheQueueGoesOn) {
    CommitQueue<Item> queue;
    Item first;
    EXPECT_THROW(queue.submit(first, [](std::span<Item* const>) { throw std::runtime_error("x"); }),
                 std::runtime_error);
    Item second;
    queue.submit(second, [](std::span<Item* const> batch) {
        for (Item* item : batch) {
            item->processed = true;
        }
    });
    EXPECT_TRUE(second.processed);
}

// Many threads, one queue: every entry is processed exactly once, and by
// the time its submit() returns.
TEST(CommitQueueTest, EveryEntryIsProcessedOnceBeforeItsSubmitReturns) {
    CommitQueue<Item> queue;
    std::atomic<int> processed{0};
    std::atomic<bool> late{false};
    auto work = [&](int thread) {
        for (int i = 0; i < 200; ++i) {
            Item item{thread * 1000 + i};
            queue.submit(item, [&](std::span<Item* const> batch) {
                for (Item* each : batch) {
                    if (each->processed) {
                        late = true;  // twice
                    }
                    each->processed = true;
                    ++processed;
                }
            });
            if (!item.processed) {
                late = true;
            }
        }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
        threads.emplace_back(work, t);
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_FALSE(late);
    EXPECT_EQ(processed.load(), 6 * 200);
}

// ---- commit_together against a model of the store -------------------------

// A create: its name must be unique (checked), and the store refuses it
// when `bad` or when its address was taken by an earlier create (what the
// SCIM write does when a user is internal elsewhere).
struct Create {
    std::string name;
    std::string address;
    bool bad = false;
    std::vector<std::string> keys;
    std::string outcome;  // "created", "taken" (check), "refused" (commit)
};

struct Model {
    std::set<std::string> names;
    std::set<std::string> addresses;
    std::vector<std::size_t> transactions;  // entries per committed or failed commit

    bool check(Create& create) {
        if (names.contains(create.name)) {
            create.outcome = "taken";
            return false;
        }
        return true;
    }
    // All or nothing, like one store transaction.
    bool commit(std::span<Create* const> creates) {
        transactions.push_back(creates.size());
        std::set<std::string> taken = addresses;
        for (Create* create : creates) {
            if (create->bad || !taken.insert(create->address).second) {
                if (creates.size() == 1) {
                    create->outcome = "refused";
                }
                return false;
            }
        }
        for (Create* create : creates) {
            names.insert(create->name);
            addresses.insert(create->address);
            create->outcome = "created";
        }
        return true;
    }
};

std::vector<Create> creates_of(
    const std::vector<std::tuple<std::string, std::string, bool>>& specs) {
    std::vector<Create> creates;
    for (const auto& [name, address, bad] : specs) {
        creates.push_back(Create{name, address, bad, {"name:" + name, "address:" + address}, ""});
    }
    return creates;
}

std::vector<Create*> pointers(std::vector<Create>& creates) {
    std::vector<Create*> out;
    for (auto& create : creates) {
        out.push_back(&create);
    }
    return out;
}

void run_together(Model& model, std::vector<Create>& creates) {
    auto batch = pointers(creates);
    commit_together(
        std::span<Create* const>(batch), [&](Create& create) { return model.check(create); },
        [&](std::span<Create* const> some) { return model.commit(some); });
}

void run_one_by_one(Model& model, std::vector<Create>& creates) {
    for (auto& create : creates) {
        Create* one = &create;
        if (model.check(create)) {
            model.commit(std::span<Create* const>(&one, 1));
        }
    }
}

TEST(CommitTogetherTest, IndependentCreatesShareOneTransaction) {
    auto creates = creates_of({{"a", "a@x", false}, {"b", "b@x", false}, {"c", "c@x", false}});
    Model model;
    run_together(model, creates);
    EXPECT_EQ(model.transactions, std::vector<std::size_t>{3});
    for (const auto& create : creates) {
        EXPECT_EQ(create.outcome, "created") << create.name;
    }
}

TEST(CommitTogetherTest, ARefusedCreateFailsNoOther) {
    auto creates = creates_of({{"a", "a@x", false}, {"b", "b@x", true}, {"c", "c@x", false}});
    Model model;
    run_together(model, creates);
    // The three together, refused; then each alone.
    EXPECT_EQ(model.transactions, (std::vector<std::size_t>{3, 1, 1, 1}));
    EXPECT_EQ(creates[0].outcome, "created");
    EXPECT_EQ(creates[1].outcome, "refused");
    EXPECT_EQ(creates[2].outcome, "created");
}

TEST(CommitTogetherTest, CreatesSharingANameOrAnAddressWaitForTheFirst) {
    // b shares a's name; c shares b's address (b waits, so c does too): in
    // order, a is created, b's name is taken, c is created.
    auto creates = creates_of(
        {{"a", "a@x", false}, {"a", "b@x", false}, {"c", "b@x", false}, {"d", "d@x", false}});
    Model model;
    run_together(model, creates);
    EXPECT_EQ(model.transactions, (std::vector<std::size_t>{2, 1}));  // a and d, then c
    EXPECT_EQ(creates[0].outcome, "created");
    EXPECT_EQ(creates[1].outcome, "taken");
    EXPECT_EQ(creates[2].outcome, "created");
    EXPECT_EQ(creates[3].outcome, "created");
}

// Random batches over few names and addresses: every create gets the
// outcome it gets when the batch is committed one by one, in order, and
// the store ends the same.
TEST(CommitTogetherTest, OutcomesEqualCommittingOneByOne) {
    std::mt19937 random(7);
    for (int round = 0; round < 2000; ++round) {
        std::vector<std::tuple<std::string, std::string, bool>> specs;
        const int size = 1 + static_cast<int>(random() % 8);
        for (int i = 0; i < size; ++i) {
            specs.emplace_back("n" + std::to_string(random() % 6),
                               "e" + std::to_string(random() % 6), random() % 7 == 0);
        }
        Model before;
        before.names.insert("n0");  // committed earlier
        before.addresses.insert("e0");
        Model batched = before;
        Model alone = before;
        auto together = creates_of(specs);
        auto one_by_one = creates_of(specs);
        run_together(batched, together);
        run_one_by_one(alone, one_by_one);
        for (std::size_t i = 0; i < together.size(); ++i) {
            EXPECT_EQ(together[i].outcome, one_by_one[i].outcome)
                << "round " << round << " entry " << i;
        }
        EXPECT_EQ(batched.names, alone.names) << "round " << round;
        EXPECT_EQ(batched.addresses, alone.addresses) << "round " << round;
        if (testing::Test::HasFailure()) {
            break;
        }
    }
}

}  // namespace
}  // namespace orgsync::scim
