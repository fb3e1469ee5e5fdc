// The snapshot a store keeps up to date write by write (updating only what a
// write touched where it can) is the same as one built from scratch from the
// same file, and consecutive snapshots share every part a write left alone.

#include <random>
#include <set>

#include "directory/snapshot_builder.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::directory {
namespace {

using namespace test_support;

// ---- ShardedMap --------------------------------------------------------------

StringMap<int> numbered(int count) {
    StringMap<int> entries;
    for (int i = 0; i < count; ++i) {
        entries.emplace("key-" + std::to_string(i), i);
    }
    return entries;
}

template <typename V>
std::set<std::size_t> changed_shards(const ShardedMap<V>& before, const ShardedMap<V>& after) {
    EXPECT_EQ(before.shard_count(), after.shard_count());
    std::set<std::size_t> changed;
    for (std::size_t i = 0; i < std::min(before.shard_count(), after.shard_count()); ++i) {
        if (before.shard(i) != after.shard(i)) {
            changed.insert(i);
        }
    }
    return changed;
}

// The view of an org that must be in `snapshot`.
const OrgView& org_view(const Snapshot& snapshot, std::string_view slug) {
    const OrgView* view = snapshot.find_org(slug);
    if (view == nullptr) {
        throw std::runtime_error("no view of org " + std::string(slug));
    }
    return *view;
}

template <typename V>
std::size_t shard_index(const ShardedMap<V>& map, std::string_view key) {
    for (std::size_t i = 0; i < map.shard_count(); ++i) {
        if (map.shard(i) == map.shard_for(key)) {
            return i;
        }
    }
    return map.shard_count();
}

TEST(ShardedMap, SplitsIntoAPowerOfTwoShardsAndFindsEveryKey) {
    auto map = ShardedMap<int>::from(numbered(1000), 64);
    EXPECT_EQ(map.size(), 1000U);
    EXPECT_EQ(map.shard_count(), 16U);
    std::set<int> seen;
    for (const auto& [key, value] : map) {
        EXPECT_EQ(key, "key-" + std::to_string(value));
        seen.insert(value);
    }
    EXPECT_EQ(seen.size(), 1000U);
    for (int i = 0; i < 1000; ++i) {
        std::string key = "key-" + std::to_string(i);
        ASSERT_NE(map.get(key), nullptr) << key;
        EXPECT_EQ(*map.get(key), i);
        auto found = map.find(key);
        ASSERT_NE(found, map.end());
        EXPECT_EQ(found->second, i);
        const auto* shard = map.shard_for(key);
        ASSERT_NE(shard, nullptr);
        EXPECT_TRUE(shard->contains(key));
    }
    EXPECT_EQ(map.get("key-1000"), nullptr);
    EXPECT_EQ(map.find("key-1000"), map.end());
    ShardedMap<int> empty;
    EXPECT_EQ(empty.get("key-1"), nullptr);
    EXPECT_EQ(empty.begin(), empty.end());
}

TEST(ShardedMap, EditorCopiesOnlyTheShardItWritesAndLeavesTheOriginalAlone) {
    const auto original = ShardedMap<int>::from(numbered(1000), 64);
    ShardedMap<int> copy = original;
    {
        ShardedMapEditor<int> editor(copy, 64);
        *editor.find("key-7") = -7;
        *editor.find("key-7") = -70;  // the shard is copied once
        EXPECT_EQ(editor.find("absent"), nullptr);
        editor.finish();
    }
    EXPECT_EQ(changed_shards(original, copy),
              (std::set<std::size_t>{shard_index(original, "key-7")}));
    EXPECT_EQ(*original.get("key-7"), 7);
    EXPECT_EQ(*copy.get("key-7"), -70);

    ShardedMap<int> second = copy;
    {
        ShardedMapEditor<int> editor(second, 64);
        EXPECT_TRUE(editor.erase("key-8"));
        EXPECT_FALSE(editor.erase("key-8"));
        editor.insert_or_assign("new-key", 1);
        editor.finish();
    }
    std::set<std::size_t> expected{shard_index(copy, "key-8"), shard_index(copy, "new-key")};
    EXPECT_EQ(changed_shards(copy, second), expected);
    EXPECT_EQ(second.size(), 1000U);
    EXPECT_EQ(second.get("key-8"), nullptr);
    EXPECT_NE(copy.get("key-8"), nullptr);
    EXPECT_EQ(copy.get("new-key"), nullptr);
    EXPECT_EQ(*second.get("new-key"), 1);
}

TEST(ShardedMap, EditorSplitsShardsAsTheMapGrowsOneKeyAtATime) {
    ShardedMap<int> map;
    std::vector<ShardedMap<int>> history;
    for (int i = 0; i < 2000; ++i) {
        ShardedMapEditor<int> editor(map, 8);
        editor.insert_or_assign("key-" + std::to_string(i), i);
        editor.finish();
        if (i % 500 == 0) {
            history.push_back(map);
        }
    }
    EXPECT_EQ(map.size(), 2000U);
    // Never more than twice the entries per shard it was asked for, on average.
    EXPECT_GE(map.shard_count() * 8 * 2, map.size());
    for (int i = 0; i < 2000; ++i) {
        ASSERT_NE(map.get("key-" + std::to_string(i)), nullptr) << i;
    }
    // Earlier copies kept what they held.
    for (std::size_t h = 0; h < history.size(); ++h) {
        EXPECT_EQ(history[h].size(), h * 500 + 1);
        EXPECT_EQ(history[h].get("key-" + std::to_string(h * 500 + 1)), nullptr);
        EXPECT_NE(history[h].get("key-" + std::to_string(h * 500)), nullptr);
    }
}

// ---- kept up to date == built from scratch ------------------------------------

using SnapshotTest = BasicStoreFixture<::testing::Test>;

TEST_F(SnapshotTest, KeptUpToDateEqualsBuiltFromScratch) {
    constexpr int k_users = 40;
    std::vector<OrgId> orgs;
    std::vector<UserId> users;
    std::vector<std::vector<GroupId>> groups(2);
    std::vector<std::vector<ProjectId>> projects(2);
    std::vector<std::vector<DatasetId>> datasets(2);
    const std::array<const char*, 2> slugs{"acme", "globex"};
    write_ok([&](Transaction& tx) -> Expected<void> {
        for (std::size_t o = 0; o < slugs.size(); ++o) {
            std::string slug = slugs[o];
            OrgId org = 0;
            ORGSYNC_ASSIGN(org, tx.create_org(slug, slug, false, "owner@" + slug + ".example"));
            orgs.push_back(org);
            UserId owner = must(tx.find_user_id("owner@" + slug + ".example")).value();
            for (int g = 0; g < 3; ++g) {
                GroupId group = 0;
                ORGSYNC_ASSIGN(group, tx.create_group(org, "team-" + std::to_string(g)));
                groups[o].push_back(group);
                ProjectId project = 0;
                ORGSYNC_ASSIGN(project, tx.create_project(org, "p" + std::to_string(g),
                                                          Visibility::private_, {}, owner));
                projects[o].push_back(project);
                ORGSYNC_TRY(
                    tx.grant_project(project, group_principal(group), Level::write, "manual"));
            }
            for (int d = 0; d < 2; ++d) {
                DatasetId dataset = 0;
                ORGSYNC_ASSIGN(dataset, tx.create_dataset(org, "d" + std::to_string(d)));
                datasets[o].push_back(dataset);
                ORGSYNC_TRY(tx.grant_dataset(
                    dataset, group_principal(groups[o][static_cast<std::size_t>(d)]),
                    DatasetAccess::read, "manual"));
            }
        }
        for (int u = 0; u < k_users; ++u) {
            UserId user = 0;
            ORGSYNC_ASSIGN(user, tx.upsert_user("user" + std::to_string(u) + "@example.org", ""));
            users.push_back(user);
        }
        return {};
    });

    std::mt19937 random(7);
    auto pick = [&random](const auto& items) {
        return items[std::uniform_int_distribution<std::size_t>(0, items.size() - 1)(random)];
    };
    const std::array<OrgRole, 3> roles{OrgRole::guest, OrgRole::member, OrgRole::admin};
    const std::array<Level, 3> levels{Level::read, Level::write, Level::admin};
    const std::array<DatasetAccess, 2> accesses{DatasetAccess::read, DatasetAccess::write};
    const std::array<const char*, 2> sources{"manual", "corp"};
    constexpr int k_structural = 11;  // ops from here on rebuild the org's view
    int updated_in_place = 0;
    std::vector<bool> renamed(users.size(), false);
    for (int round = 0; round < 400; ++round) {
        int op = std::uniform_int_distribution<int>(0, 12)(random);
        std::size_t o = std::uniform_int_distribution<std::size_t>(0, 1)(random);
        OrgId org = orgs[o];
        std::size_t u = std::uniform_int_distribution<std::size_t>(0, users.size() - 1)(random);
        UserId user = users[u];
        GroupId group = pick(groups[o]);
        ProjectId project = pick(projects[o]);
        DatasetId dataset = pick(datasets[o]);
        const char* source = pick(sources);
        auto before = store().snapshot();
        // Writes may be refused by an invariant; either way the snapshot must
        // match the file.
        auto result = write([&](Transaction& tx) -> Expected<void> {
            switch (op) {
                case 0:
                    return tx.assert_membership(org, user,
                                                assertion(source, UserType::internal, pick(roles)));
                case 1:
                    return tx.retract_membership(org, user, source);
                case 2:
                    return tx.add_group_member(group, user, source);
                case 3:
                    return tx.remove_group_member(group, user, source);
                case 4:
                    return tx.set_user_active(user, random() % 2 == 0);
                case 5:  // a non-member becomes a guest first
                    return tx.grant_project(project, user_principal(user), pick(levels), source);
                case 6:
                    return tx.revoke_project(project, user_principal(user), source);
                case 7:
                    return tx.grant_dataset(dataset, user_principal(user), pick(accesses), source);
                case 8:
                    return tx.revoke_dataset(dataset, user_principal(user), source);
                case 9:  // toggles between two addresses
                    return tx.change_user_email(
                        user, "user" + std::to_string(u) +
                                  (renamed[u] ? "@example.org" : "@renamed.example"));
                case 10:  // several changes to one member in one write
                    ORGSYNC_TRY(tx.retract_membership(org, user, source));
                    ORGSYNC_TRY(tx.grant_dataset(dataset, user_principal(user), pick(accesses),
                                                 source, UserType::external));
                    ORGSYNC_TRY(tx.add_group_member(group, user, source));
                    return tx.grant_project(project, user_principal(user), Level::read, source);
                case 11:
                    return tx.grant_project(project, group_principal(group), pick(levels), source);
                default:
                    return tx.revoke_project(project, group_principal(group), source);
            }
        });
        auto after = store().snapshot();
        if (result && op == 9) {
            renamed[u] = !renamed[u];
        }
        if (!result) {
            EXPECT_EQ(after.get(), before.get()) << "a refused write published a snapshot";
        } else if (op < k_structural && after.get() != before.get()) {
            // Updated in place, not rebuilt: the group table is shared.
            EXPECT_EQ(org_view(*before, slugs[o]).groups.get(),
                      org_view(*after, slugs[o]).groups.get())
                << "round " << round << ", operation " << op << " rebuilt the view";
            if (op != 4 && op != 9) {  // the others touch one org only
                EXPECT_EQ(before->find_org(slugs[1 - o]), after->find_org(slugs[1 - o]));
            }
            ++updated_in_place;
        }
        auto fresh = Store::open(db_path());
        ASSERT_TRUE(fresh) << fresh.error().message;
        ASSERT_EQ(dump_snapshot(*after), dump_snapshot(*(*fresh)->snapshot()))
            << "after round " << round << ", operation " << op;
    }
    // Most writes took the in-place path (so the comparison above tested it).
    EXPECT_GT(updated_in_place, 150);
}

// ---- consecutive snapshots share what a write left alone -------------------------

// An org with enough members, projects and datasets for several shards of
// each, and a small second org.
class SnapshotSharingTest : public BasicStoreFixture<::testing::Test> {
  protected:
    static constexpr int k_members = 8 * static_cast<int>(OrgView::k_members_per_shard);
    static constexpr int k_projects = 4 * static_cast<int>(OrgView::k_projects_per_shard);
    static constexpr int k_datasets = 4 * static_cast<int>(OrgView::k_datasets_per_shard);

    void SetUp() override {
        BasicStoreFixture::SetUp();
        write_ok([&](Transaction& tx) -> Expected<void> {
            ORGSYNC_ASSIGN(m_org, tx.create_org("big", "Big", false, "owner@big.example"));
            UserId owner = must(tx.find_user_id("owner@big.example")).value();
            std::vector<std::string> emails;
            for (int i = 0; i < k_members; ++i) {
                emails.push_back("user" + std::to_string(i) + "@big.example");
            }
            std::vector<NewMember> members;
            for (const auto& email : emails) {
                members.push_back(NewMember{email, "", "", UserType::internal, OrgRole::member});
            }
            ORGSYNC_TRY(tx.add_members(m_org, "manual", members));
            ORGSYNC_ASSIGN(m_group, tx.create_group(m_org, "team"));
            ORGSYNC_TRY(tx.add_group_members(
                m_group, "manual", std::vector<std::string>(emails.begin(), emails.begin() + 50)));
            for (int p = 0; p < k_projects; ++p) {
                ProjectId project = 0;
                ORGSYNC_ASSIGN(project, tx.create_project(m_org, "p" + std::to_string(p),
                                                          Visibility::private_, {}, owner));
                m_projects.push_back(project);
                ORGSYNC_TRY(
                    tx.grant_project(project, group_principal(m_group), Level::read, "manual"));
            }
            for (int d = 0; d < k_datasets; ++d) {
                DatasetId dataset = 0;
                ORGSYNC_ASSIGN(dataset, tx.create_dataset(m_org, "d" + std::to_string(d)));
                m_datasets.push_back(dataset);
            }
            return discard(tx.create_org("small", "Small", false, "owner@small.example"));
        });
        const OrgView& view = org_view(*store().snapshot(), "big");
        ASSERT_GE(view.members.shard_count(), 8U);
        ASSERT_GE(view.projects.shard_count(), 4U);
        ASSERT_GE(view.datasets.shard_count(), 4U);
    }

    struct Changed {
        std::set<std::size_t> members;
        std::set<std::size_t> projects;
        std::set<std::size_t> datasets;
    };

    // Runs `body` as one write and says which shards of org "big" it
    // replaced; fails the test if it replaced anything else.
    Changed write_and_compare(const Body& body) {
        auto before = store().snapshot();
        write_ok(body);
        auto after = store().snapshot();
        EXPECT_NE(before.get(), after.get()) << "the write published nothing";
        const OrgView& old_view = org_view(*before, "big");
        const OrgView& new_view = org_view(*after, "big");
        EXPECT_EQ(old_view.groups.get(), new_view.groups.get()) << "the view was rebuilt";
        EXPECT_EQ(before->find_org("small"), after->find_org("small"))
            << "an untouched org's view was copied";
        return Changed{changed_shards(old_view.members, new_view.members),
                       changed_shards(old_view.projects, new_view.projects),
                       changed_shards(old_view.datasets, new_view.datasets)};
    }

    std::size_t member_shard(std::string_view email) {
        return shard_index(org_view(*store().snapshot(), "big").members, email);
    }
    std::size_t project_shard(std::string_view slug) {
        return shard_index(org_view(*store().snapshot(), "big").projects, slug);
    }
    std::size_t dataset_shard(std::string_view slug) {
        return shard_index(org_view(*store().snapshot(), "big").datasets, slug);
    }

    // The snapshot equals one built from scratch from the same file.
    void expect_same_as_rebuilt() {
        auto fresh = Store::open(db_path());
        ASSERT_TRUE(fresh) << fresh.error().message;
        EXPECT_EQ(dump_snapshot(*store().snapshot()), dump_snapshot(*(*fresh)->snapshot()));
    }

    OrgId m_org = 0;
    GroupId m_group = 0;
    std::vector<ProjectId> m_projects;
    std::vector<DatasetId> m_datasets;
};

TEST_F(SnapshotSharingTest, MemberOnlyWritesCopyOnlyTheTouchedMembersShard) {
    const std::string email = "user7@big.example";
    UserId user = user_id(email);
    const std::vector<std::pair<std::string, Body>> writes{
        {"role raised",
         [&](Transaction& tx) {
             return tx.assert_membership(m_org, user,
                                         assertion("corp", UserType::internal, OrgRole::admin));
         }},
        {"role lowered",
         [&](Transaction& tx) { return tx.retract_membership(m_org, user, "corp"); }},
        {"deactivated", [&](Transaction& tx) { return tx.set_user_active(user, false); }},
        {"reactivated", [&](Transaction& tx) { return tx.set_user_active(user, true); }},
        {"added to a group",
         [&](Transaction& tx) { return tx.add_group_member(m_group, user, "corp"); }},
        {"removed from a group",
         [&](Transaction& tx) { return tx.remove_group_member(m_group, user, "corp"); }},
    };
    for (const auto& [what, body] : writes) {
        Changed changed = write_and_compare(body);
        EXPECT_EQ(changed.members, (std::set<std::size_t>{member_shard(email)})) << what;
        EXPECT_TRUE(changed.projects.empty()) << what;
        EXPECT_TRUE(changed.datasets.empty()) << what;
        expect_same_as_rebuilt();
    }
}

TEST_F(SnapshotSharingTest, NewMemberCopiesOnlyItsShard) {
    const std::string email = "newcomer@big.example";
    Changed changed = write_and_compare([&](Transaction& tx) -> Expected<void> {
        return discard(add_member(tx, m_org, email, UserType::internal, OrgRole::member));
    });
    EXPECT_EQ(changed.members, (std::set<std::size_t>{member_shard(email)}));
    EXPECT_TRUE(changed.projects.empty());
    EXPECT_TRUE(changed.datasets.empty());
    EXPECT_TRUE(decide(request(email, "big", "org.projects.create")).allow);
    expect_same_as_rebuilt();
}

TEST_F(SnapshotSharingTest, UserGrantCopiesOnlyItsProjectsOrDatasetsShard) {
    UserId user = user_id("user9@big.example");
    Changed changed = write_and_compare([&](Transaction& tx) {
        return tx.grant_project(m_projects[5], user_principal(user), Level::admin, "manual");
    });
    EXPECT_TRUE(changed.members.empty());
    EXPECT_EQ(changed.projects, (std::set<std::size_t>{project_shard("p5")}));
    EXPECT_TRUE(changed.datasets.empty());
    EXPECT_EQ(decide(request("user9@big.example", "big", "project.edit", "p5")).reason,
              "admin via direct grant");

    changed = write_and_compare([&](Transaction& tx) {
        return tx.grant_dataset(m_datasets[3], user_principal(user), DatasetAccess::write,
                                "manual");
    });
    EXPECT_TRUE(changed.members.empty());
    EXPECT_TRUE(changed.projects.empty());
    EXPECT_EQ(changed.datasets, (std::set<std::size_t>{dataset_shard("d3")}));

    changed = write_and_compare([&](Transaction& tx) {
        return tx.revoke_project(m_projects[5], user_principal(user), "manual");
    });
    EXPECT_TRUE(changed.members.empty());
    EXPECT_EQ(changed.projects, (std::set<std::size_t>{project_shard("p5")}));
    EXPECT_FALSE(decide(request("user9@big.example", "big", "project.edit", "p5")).allow);
    expect_same_as_rebuilt();
}

TEST_F(SnapshotSharingTest, EndedMembershipCopiesItsShardAndThoseOfItsGrants) {
    const std::string email = "guest@partner.example";
    write_ok([&](Transaction& tx) -> Expected<void> {
        UserId guest = 0;
        ORGSYNC_ASSIGN(guest, add_member(tx, m_org, email, UserType::external, OrgRole::guest));
        ORGSYNC_TRY(tx.grant_project(m_projects[2], user_principal(guest), Level::write, "corp"));
        ORGSYNC_TRY(
            tx.grant_dataset(m_datasets[4], user_principal(guest), DatasetAccess::read, "corp"));
        return tx.add_group_member(m_group, guest, "corp");
    });
    EXPECT_TRUE(decide(request(email, "big", "dataset.read", std::nullopt, "d4")).allow);
    UserId guest = user_id(email);
    Changed changed = write_and_compare(
        [&](Transaction& tx) { return tx.retract_membership(m_org, guest, k_manual_source); });
    EXPECT_EQ(changed.members, (std::set<std::size_t>{member_shard(email)}));
    EXPECT_EQ(changed.projects, (std::set<std::size_t>{project_shard("p2")}));
    EXPECT_EQ(changed.datasets, (std::set<std::size_t>{dataset_shard("d4")}));
    EXPECT_FALSE(decide(request(email, "big", "dataset.read", std::nullopt, "d4")).allow);
    expect_same_as_rebuilt();
}

TEST_F(SnapshotSharingTest, AddressChangeCopiesTheOldAndNewAddressesShards) {
    UserId user = user_id("user11@big.example");
    std::size_t old_shard = member_shard("user11@big.example");
    Changed changed = write_and_compare(
        [&](Transaction& tx) { return tx.change_user_email(user, "renamed11@big.example"); });
    EXPECT_EQ(changed.members,
              (std::set<std::size_t>{old_shard, member_shard("renamed11@big.example")}));
    EXPECT_TRUE(changed.projects.empty());
    EXPECT_FALSE(decide(request("user11@big.example", "big", "org.metrics.read")).allow);
    EXPECT_TRUE(decide(request("renamed11@big.example", "big", "org.metrics.read")).allow);
    expect_same_as_rebuilt();
}

TEST_F(SnapshotSharingTest, StructuralChangeRebuildsTheOrgButSharesOtherOrgs) {
    auto before = store().snapshot();
    write_ok([&](Transaction& tx) { return discard(tx.create_group(m_org, "new-team")); });
    auto after = store().snapshot();
    EXPECT_NE(org_view(*before, "big").groups.get(), org_view(*after, "big").groups.get());
    EXPECT_EQ(org_view(*after, "big").groups->names.size(), 2U);
    EXPECT_EQ(before->find_org("small"), after->find_org("small"));
    expect_same_as_rebuilt();
}

}  // namespace
}  // namespace orgsync::directory
