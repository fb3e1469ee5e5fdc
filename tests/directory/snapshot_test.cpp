// The snapshot a store keeps up to date write by write (re-reading only the
// members a write touched where it can) is the same as one built from
// scratch from the same file.

#include <random>

#include "tests/directory/test_support.hpp"

namespace orgsync::directory {
namespace {

using namespace test_support;

using SnapshotTest = BasicStoreFixture<::testing::Test>;

TEST_F(SnapshotTest, KeptUpToDateEqualsBuiltFromScratch) {
    constexpr int k_users = 40;
    std::vector<OrgId> orgs;
    std::vector<UserId> users;
    std::vector<GroupId> groups;
    std::vector<ProjectId> projects;
    write_ok([&](Transaction& tx) -> Expected<void> {
        for (const char* slug : {"acme", "globex"}) {
            OrgId org = 0;
            ORGSYNC_ASSIGN(
                org, tx.create_org(slug, slug, false, std::string("owner@") + slug + ".example"));
            orgs.push_back(org);
            UserId owner = must(tx.find_user_id(std::string("owner@") + slug + ".example")).value();
            for (int g = 0; g < 3; ++g) {
                GroupId group = 0;
                ORGSYNC_ASSIGN(group, tx.create_group(org, "team-" + std::to_string(g)));
                groups.push_back(group);
                ProjectId project = 0;
                ORGSYNC_ASSIGN(project, tx.create_project(org, "p" + std::to_string(g),
                                                          Visibility::private_, {}, owner));
                projects.push_back(project);
                ORGSYNC_TRY(
                    tx.grant_project(project, group_principal(group), Level::write, "manual"));
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
    const std::array<const char*, 2> sources{"manual", "corp"};
    for (int round = 0; round < 300; ++round) {
        int op = std::uniform_int_distribution<int>(0, 5)(random);
        std::size_t org_index = std::uniform_int_distribution<std::size_t>(0, 1)(random);
        OrgId org = orgs[org_index];
        UserId user = pick(users);
        GroupId group =
            groups[org_index * 3 + std::uniform_int_distribution<std::size_t>(0, 2)(random)];
        const char* source = pick(sources);
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
                default:
                    return tx.grant_project(pick(projects), user_principal(user), Level::read,
                                            source);
            }
        });
        (void)result;
        auto fresh = Store::open(db_path());
        ASSERT_TRUE(fresh) << fresh.error().message;
        ASSERT_EQ(dump_snapshot(*store().snapshot()), dump_snapshot(*(*fresh)->snapshot()))
            << "after round " << round << ", operation " << op;
    }
}

}  // namespace
}  // namespace orgsync::directory
