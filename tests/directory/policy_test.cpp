// authorize() against DESIGN §1: both capability tables cell by cell, the
// effective project level, datasets, errors and the fields of a Decision.
// Every test builds its state in a real store and decides from its snapshot.

#include "directory/policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/store.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::directory {
namespace {

using test_support::add_member;
using test_support::describe;
using test_support::discard;
using test_support::fails_with;
using test_support::group_principal;
using test_support::must;
using test_support::request;
using test_support::user_principal;

// The state most tests start from.
//
// acme (not workforce):
//   ceo@acme.com          owner
//   admin@acme.com        internal admin
//   member@acme.com       internal member, no grants
//   guest@partner.example external guest, no grants
//   lead@acme.com         internal member, explicit admin on vision
//   writer@acme.com       internal member, explicit write on vision
//   reader@acme.com       internal member, explicit read on vision
//   projects: vision (private, first admin ceo), secret (private, first admin
//             admin@acme.com), open (public, first admin ceo)
//   datasets: street-scenes (attached to vision), raw-logs (attached to none)
//   group vision-team (no members, no grants)
// globex: boss@globex.com owner, outsider@globex.com internal member.
struct World {
    OrgId acme = 0;
    OrgId globex = 0;
    UserId owner = 0;
    UserId admin = 0;
    UserId member = 0;
    UserId guest = 0;
    UserId lead = 0;
    UserId writer = 0;
    UserId reader = 0;
    UserId outsider = 0;
    ProjectId vision = 0;
    ProjectId secret = 0;
    ProjectId open = 0;
    DatasetId street_scenes = 0;
    DatasetId raw_logs = 0;
    GroupId vision_team = 0;
};

World build_world(Store& store) {
    World w;
    must(store.write(
             k_manual_source,
             [&](Transaction& tx) -> Expected<void> {
                 ORGSYNC_ASSIGN(w.acme, tx.create_org("acme", "Acme Corp", false, "ceo@acme.com"));
                 ORGSYNC_ASSIGN(w.owner, tx.upsert_user("ceo@acme.com", "Ceo"));
                 ORGSYNC_ASSIGN(w.admin, add_member(tx, w.acme, "admin@acme.com",
                                                    UserType::internal, OrgRole::admin));
                 ORGSYNC_ASSIGN(w.member, add_member(tx, w.acme, "member@acme.com",
                                                     UserType::internal, OrgRole::member));
                 ORGSYNC_ASSIGN(w.guest, add_member(tx, w.acme, "guest@partner.example",
                                                    UserType::external, OrgRole::guest));
                 ORGSYNC_ASSIGN(w.lead, add_member(tx, w.acme, "lead@acme.com", UserType::internal,
                                                   OrgRole::member));
                 ORGSYNC_ASSIGN(w.writer, add_member(tx, w.acme, "writer@acme.com",
                                                     UserType::internal, OrgRole::member));
                 ORGSYNC_ASSIGN(w.reader, add_member(tx, w.acme, "reader@acme.com",
                                                     UserType::internal, OrgRole::member));
                 ORGSYNC_ASSIGN(w.vision, tx.create_project(w.acme, "vision", Visibility::private_,
                                                            {"cv"}, w.owner));
                 ORGSYNC_ASSIGN(w.secret, tx.create_project(w.acme, "secret", Visibility::private_,
                                                            {}, w.admin));
                 ORGSYNC_ASSIGN(
                     w.open, tx.create_project(w.acme, "open", Visibility::public_, {}, w.owner));
                 ORGSYNC_TRY(
                     tx.grant_project(w.vision, user_principal(w.lead), Level::admin, tx.source()));
                 ORGSYNC_TRY(tx.grant_project(w.vision, user_principal(w.writer), Level::write,
                                              tx.source()));
                 ORGSYNC_TRY(tx.grant_project(w.vision, user_principal(w.reader), Level::read,
                                              tx.source()));
                 ORGSYNC_TRY(discard(tx.create_dataset(w.acme, "street-scenes")));
                 ORGSYNC_TRY(discard(tx.create_dataset(w.acme, "raw-logs")));
                 ORGSYNC_ASSIGN(w.vision_team, tx.create_group(w.acme, "vision-team"));

                 ORGSYNC_ASSIGN(w.globex,
                                tx.create_org("globex", "Globex", false, "boss@globex.com"));
                 ORGSYNC_ASSIGN(w.outsider, add_member(tx, w.globex, "outsider@globex.com",
                                                       UserType::internal, OrgRole::member));
                 return {};
             }),
         "building the test world");
    w.street_scenes = test_support::dataset_id(store, w.acme, "street-scenes");
    w.raw_logs = test_support::dataset_id(store, w.acme, "raw-logs");
    must(store.write(k_manual_source,
                     [&](Transaction& tx) -> Expected<void> {
                         return tx.attach_dataset(w.street_scenes, w.vision);
                     }),
         "attaching street-scenes to vision");
    return w;
}

// Turns "project.resources.write" into "project_resources_write".
std::string identifier(std::string_view text) {
    std::string out(text);
    std::replace(out.begin(), out.end(), '.', '_');
    std::replace(out.begin(), out.end(), '-', '_');
    return out;
}

// ---------------------------------------------------------------------------
// Organization actions, by org role: the table of DESIGN §1, copied verbatim.

constexpr bool Y = true;
constexpr bool N = false;

struct OrgRow {
    std::string_view action;
    bool owner;
    bool admin;
    bool member;
    bool guest;
};

// clang-format off
constexpr OrgRow k_org_table[] = {
    //  action                      owner admin member guest
    {"org.billing.manage",          Y,    N,    N,     N},
    {"org.edit",                    Y,    N,    N,     N},
    {"org.delete",                  Y,    N,    N,     N},
    {"org.users.invite",            Y,    Y,    N,     N},
    {"org.users.remove",            Y,    Y,    N,     N},
    {"org.roles.manage",            Y,    Y,    N,     N},
    {"org.projects.access_all",     Y,    Y,    N,     N},
    {"org.projects.create",         Y,    Y,    Y,     N},
    {"org.datasets.manage",         Y,    Y,    N,     N},
    {"org.tags.manage",             Y,    Y,    N,     N},
    {"org.groups.manage",           Y,    Y,    N,     N},
    {"org.metrics.read",            Y,    Y,    Y,     N},
};
// clang-format on

struct OrgCell {
    std::string role;  // owner | admin | member | guest
    std::string action;
    bool allowed = false;
};

void PrintTo(const OrgCell& cell, std::ostream* out) {
    *out << cell.role << ' ' << cell.action << (cell.allowed ? " allowed" : " denied");
}

std::vector<OrgCell> org_cells() {
    std::vector<OrgCell> cells;
    for (const auto& row : k_org_table) {
        cells.push_back({"owner", std::string(row.action), row.owner});
        cells.push_back({"admin", std::string(row.action), row.admin});
        cells.push_back({"member", std::string(row.action), row.member});
        cells.push_back({"guest", std::string(row.action), row.guest});
    }
    return cells;
}

std::string org_role_email(std::string_view role) {
    if (role == "owner") {
        return "ceo@acme.com";
    }
    if (role == "admin") {
        return "admin@acme.com";
    }
    if (role == "member") {
        return "member@acme.com";
    }
    return "guest@partner.example";
}

class OrgCapabilityTest : public test_support::StoreFixtureWithParam<OrgCell> {};

TEST_P(OrgCapabilityTest, DecidesAsTheTableSays) {
    const OrgCell& cell = GetParam();
    build_world(store());
    const auto decision = decide(request(org_role_email(cell.role), "acme", cell.action));
    EXPECT_EQ(decision.allow, cell.allowed)
        << cell.role << " " << cell.action << ": " << describe(decision);
    EXPECT_FALSE(decision.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, OrgCapabilityTest, ::testing::ValuesIn(org_cells()),
                         [](const ::testing::TestParamInfo<OrgCell>& cell_info) {
                             return cell_info.param.role + "_" +
                                    identifier(cell_info.param.action) +
                                    (cell_info.param.allowed ? "_allowed" : "_denied");
                         });

// ---------------------------------------------------------------------------
// Project actions, by effective project level: the table of DESIGN §1, plus a
// `none` column (a guest with no grant on a private project: nothing).

struct ProjectRow {
    std::string_view action;
    bool admin;
    bool write;
    bool read;
    bool none;
};

// clang-format off
constexpr ProjectRow k_project_table[] = {
    //  action                       admin write read none
    {"project.users.invite",         Y,    N,    N,   N},
    {"project.permissions.manage",   Y,    N,    N,   N},
    {"project.edit",                 Y,    N,    N,   N},
    {"project.delete",               Y,    N,    N,   N},
    {"project.visibility.change",    Y,    N,    N,   N},
    {"project.resources.write",      Y,    Y,    N,   N},
    {"project.resources.move",       Y,    Y,    N,   N},
    {"project.resources.read",       Y,    Y,    Y,   N},
    {"project.predictions.create",   Y,    Y,    Y,   N},
};
// clang-format on

struct ProjectCell {
    std::string level;  // admin | write | read | none
    std::string action;
    bool allowed = false;
};

void PrintTo(const ProjectCell& cell, std::ostream* out) {
    *out << cell.level << ' ' << cell.action << (cell.allowed ? " allowed" : " denied");
}

std::vector<ProjectCell> project_cells() {
    std::vector<ProjectCell> cells;
    for (const auto& row : k_project_table) {
        cells.push_back({"admin", std::string(row.action), row.admin});
        cells.push_back({"write", std::string(row.action), row.write});
        cells.push_back({"read", std::string(row.action), row.read});
        cells.push_back({"none", std::string(row.action), row.none});
    }
    return cells;
}

// Members whose only access to the private project `vision` is an explicit
// grant of that level; `none` is a guest without any grant.
std::string project_level_email(std::string_view level) {
    if (level == "admin") {
        return "lead@acme.com";
    }
    if (level == "write") {
        return "writer@acme.com";
    }
    if (level == "read") {
        return "reader@acme.com";
    }
    return "guest@partner.example";
}

class ProjectCapabilityTest : public test_support::StoreFixtureWithParam<ProjectCell> {};

TEST_P(ProjectCapabilityTest, DecidesAsTheTableSays) {
    const ProjectCell& cell = GetParam();
    build_world(store());
    const auto decision =
        decide(request(project_level_email(cell.level), "acme", cell.action, "vision"));
    EXPECT_EQ(decision.allow, cell.allowed)
        << cell.level << " " << cell.action << ": " << describe(decision);
    EXPECT_FALSE(decision.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, ProjectCapabilityTest, ::testing::ValuesIn(project_cells()),
                         [](const ::testing::TestParamInfo<ProjectCell>& cell_info) {
                             return cell_info.param.level + "_" +
                                    identifier(cell_info.param.action) +
                                    (cell_info.param.allowed ? "_allowed" : "_denied");
                         });

// The tables above name every org and project action the policy knows, and
// nothing else (so no action escapes the cell tests).
TEST(CapabilityTables, CoverEveryOrgAndProjectAction) {
    std::set<std::string> org_actions;
    std::set<std::string> project_actions;
    for (const auto& info : all_actions()) {
        if (info.scope == ActionScope::org) {
            org_actions.insert(std::string(info.name));
        } else if (info.scope == ActionScope::project) {
            project_actions.insert(std::string(info.name));
        }
    }
    std::set<std::string> org_rows;
    for (const auto& row : k_org_table) {
        org_rows.insert(std::string(row.action));
    }
    std::set<std::string> project_rows;
    for (const auto& row : k_project_table) {
        project_rows.insert(std::string(row.action));
    }
    EXPECT_EQ(org_actions, org_rows);
    EXPECT_EQ(project_actions, project_rows);
    EXPECT_EQ(org_rows.size(), 12U);
    EXPECT_EQ(project_rows.size(), 9U);
}

// ---------------------------------------------------------------------------
// Effective project level.

class PolicyTest : public test_support::StoreFixture {
  protected:
    void SetUp() override {
        test_support::StoreFixture::SetUp();
        w = build_world(store());
    }

    Decision on_project(const std::string& email, const std::string& action,
                        const std::string& project) {
        return decide(request(email, "acme", action, project));
    }

    Decision on_dataset(const std::string& email, const std::string& action,
                        const std::string& dataset) {
        return decide(request(email, "acme", action, std::nullopt, dataset));
    }

    World w;
};

TEST_F(PolicyTest, DirectUserGrantGivesItsLevel) {
    auto write = on_project("writer@acme.com", "project.resources.write", "vision");
    EXPECT_TRUE(write.allow) << describe(write);
    EXPECT_EQ(write.level, Level::write) << describe(write);
    auto edit = on_project("writer@acme.com", "project.edit", "vision");
    EXPECT_FALSE(edit.allow) << describe(edit);

    auto read = on_project("reader@acme.com", "project.resources.read", "vision");
    EXPECT_TRUE(read.allow) << describe(read);
    EXPECT_EQ(read.level, Level::read) << describe(read);
}

TEST_F(PolicyTest, MemberWithoutGrantHasNothingOnPrivateProject) {
    auto read = on_project("member@acme.com", "project.resources.read", "vision");
    EXPECT_FALSE(read.allow) << describe(read);
    EXPECT_FALSE(read.reason.empty());
    EXPECT_TRUE(!read.level || *read.level == Level::none) << describe(read);
}

TEST_F(PolicyTest, GroupGrantReachesGroupMembersAndNamesTheGroup) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.add_group_member(w.vision_team, w.member, tx.source()));
        return tx.grant_project(w.vision, group_principal(w.vision_team), Level::write,
                                tx.source());
    });
    auto write = on_project("member@acme.com", "project.resources.write", "vision");
    EXPECT_TRUE(write.allow) << describe(write);
    EXPECT_EQ(write.level, Level::write) << describe(write);
    EXPECT_NE(write.reason.find("vision-team"), std::string::npos) << describe(write);

    // Not beyond the group's level.
    auto edit = on_project("member@acme.com", "project.edit", "vision");
    EXPECT_FALSE(edit.allow) << describe(edit);
}

TEST_F(PolicyTest, HighestOfSeveralGrantsWins) {
    // reader: read directly, write via the group -> write.
    // lead: admin directly, write via the group -> admin.
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.add_group_member(w.vision_team, w.reader, tx.source()));
        ORGSYNC_TRY(tx.add_group_member(w.vision_team, w.lead, tx.source()));
        return tx.grant_project(w.vision, group_principal(w.vision_team), Level::write,
                                tx.source());
    });
    auto reader = on_project("reader@acme.com", "project.resources.write", "vision");
    EXPECT_TRUE(reader.allow) << describe(reader);
    EXPECT_EQ(reader.level, Level::write) << describe(reader);
    EXPECT_NE(reader.reason.find("vision-team"), std::string::npos) << describe(reader);

    auto lead = on_project("lead@acme.com", "project.delete", "vision");
    EXPECT_TRUE(lead.allow) << describe(lead);
    EXPECT_EQ(lead.level, Level::admin) << describe(lead);
}

// The highest group grant wins whatever order the groups were created and
// granted in.
TEST_F(PolicyTest, HighestOfSeveralGroupGrantsWins) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        GroupId readers = 0;
        GroupId admins = 0;
        GroupId writers = 0;
        ORGSYNC_ASSIGN(readers, tx.create_group(w.acme, "vision-readers"));
        ORGSYNC_ASSIGN(admins, tx.create_group(w.acme, "vision-admins"));
        ORGSYNC_ASSIGN(writers, tx.create_group(w.acme, "vision-writers"));
        ORGSYNC_TRY(tx.grant_project(w.vision, group_principal(readers), Level::read, tx.source()));
        ORGSYNC_TRY(tx.grant_project(w.vision, group_principal(admins), Level::admin, tx.source()));
        ORGSYNC_TRY(
            tx.grant_project(w.vision, group_principal(writers), Level::write, tx.source()));
        // member@acme.com: readers and writers; guest@partner.example: readers only.
        ORGSYNC_TRY(tx.add_group_member(readers, w.member, tx.source()));
        ORGSYNC_TRY(tx.add_group_member(writers, w.member, tx.source()));
        return tx.add_group_member(readers, w.guest, tx.source());
    });
    auto member = on_project("member@acme.com", "project.resources.write", "vision");
    EXPECT_TRUE(member.allow) << describe(member);
    EXPECT_EQ(member.level, Level::write) << describe(member);
    EXPECT_NE(member.reason.find("vision-writers"), std::string::npos) << describe(member);

    auto guest = on_project("guest@partner.example", "project.resources.write", "vision");
    EXPECT_FALSE(guest.allow) << describe(guest);
    EXPECT_EQ(guest.level, Level::read) << describe(guest);
    EXPECT_NE(guest.reason.find("vision-readers"), std::string::npos) << describe(guest);
}

TEST_F(PolicyTest, PublicProjectGivesWriteToEveryMemberIncludingGuests) {
    for (const std::string email : {"member@acme.com", "guest@partner.example"}) {
        auto write = on_project(email, "project.resources.write", "open");
        EXPECT_TRUE(write.allow) << email << ": " << describe(write);
        EXPECT_EQ(write.level, Level::write) << email << ": " << describe(write);
        auto edit = on_project(email, "project.edit", "open");
        EXPECT_FALSE(edit.allow) << email << ": " << describe(edit);
    }
}

TEST_F(PolicyTest, PublicProjectDoesNotLowerAHigherGrant) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(w.open, user_principal(w.lead), Level::admin, tx.source());
    });
    auto edit = on_project("lead@acme.com", "project.edit", "open");
    EXPECT_TRUE(edit.allow) << describe(edit);
    EXPECT_EQ(edit.level, Level::admin) << describe(edit);
}

TEST_F(PolicyTest, OwnerGetsAdminOnEveryPrivateProject) {
    // secret's explicit admin is admin@acme.com; the owner has no grant on it.
    auto decision = on_project("ceo@acme.com", "project.delete", "secret");
    EXPECT_TRUE(decision.allow) << describe(decision);
    EXPECT_EQ(decision.level, Level::admin) << describe(decision);
    EXPECT_EQ(decision.role, OrgRole::owner) << describe(decision);
    EXPECT_NE(decision.reason.find("owner"), std::string::npos) << describe(decision);
}

TEST_F(PolicyTest, OrgAdminGetsAdminOnEveryPrivateProject) {
    // vision's explicit admins are ceo and lead; admin@acme.com has no grant on it.
    auto decision = on_project("admin@acme.com", "project.permissions.manage", "vision");
    EXPECT_TRUE(decision.allow) << describe(decision);
    EXPECT_EQ(decision.level, Level::admin) << describe(decision);
    EXPECT_EQ(decision.role, OrgRole::admin) << describe(decision);
    EXPECT_NE(decision.reason.find("admin"), std::string::npos) << describe(decision);
}

TEST_F(PolicyTest, NonMemberIsDeniedEverythingInTheOrg) {
    const std::vector<Request> requests = {
        request("outsider@globex.com", "acme", "org.metrics.read"),
        request("outsider@globex.com", "acme", "org.projects.create"),
        request("outsider@globex.com", "acme", "project.resources.read", "open"),
        request("outsider@globex.com", "acme", "project.resources.read", "vision"),
        request("outsider@globex.com", "acme", "dataset.read", std::nullopt, "street-scenes"),
        request("outsider@globex.com", "acme", "dataset.write", std::nullopt, "raw-logs"),
    };
    for (const auto& req : requests) {
        auto decision = decide(req);
        EXPECT_FALSE(decision.allow) << req.action << ": " << describe(decision);
        EXPECT_NE(decision.reason.find("not a member of org acme"), std::string::npos)
            << req.action << ": " << describe(decision);
        EXPECT_FALSE(decision.role.has_value()) << req.action << ": " << describe(decision);
    }
    // The same user is a member of their own org.
    auto own = decide(request("outsider@globex.com", "globex", "org.metrics.read"));
    EXPECT_TRUE(own.allow) << describe(own);
}

TEST_F(PolicyTest, UnknownUserIsDeniedNotAnError) {
    const std::vector<Request> requests = {
        request("nobody@nowhere.example", "acme", "org.metrics.read"),
        request("nobody@nowhere.example", "acme", "project.resources.read", "open"),
        request("nobody@nowhere.example", "acme", "dataset.read", std::nullopt, "raw-logs"),
    };
    for (const auto& req : requests) {
        auto decision = authorize(*store().snapshot(), req);
        ASSERT_TRUE(decision.has_value()) << req.action << ": " << describe(decision.error());
        EXPECT_FALSE(decision->allow) << req.action << ": " << describe(*decision);
        EXPECT_NE(decision->reason.find("not a member of org acme"), std::string::npos)
            << req.action << ": " << describe(*decision);
    }
}

TEST_F(PolicyTest, DeactivatedUserIsDenied) {
    const std::vector<Request> requests = {
        request("writer@acme.com", "acme", "org.metrics.read"),
        request("writer@acme.com", "acme", "project.resources.read", "vision"),
        request("writer@acme.com", "acme", "project.resources.write", "open"),
        request("writer@acme.com", "acme", "dataset.read", std::nullopt, "raw-logs"),
    };
    for (const auto& req : requests) {
        EXPECT_TRUE(decide(req).allow) << "before deactivation: " << req.action;
    }
    write_ok(
        [&](Transaction& tx) -> Expected<void> { return tx.set_user_active(w.writer, false); });
    for (const auto& req : requests) {
        auto decision = decide(req);
        EXPECT_FALSE(decision.allow) << req.action << ": " << describe(decision);
        EXPECT_FALSE(decision.reason.empty());
    }
    write_ok([&](Transaction& tx) -> Expected<void> { return tx.set_user_active(w.writer, true); });
    for (const auto& req : requests) {
        EXPECT_TRUE(decide(req).allow) << "after reactivation: " << req.action;
    }
}

// Deactivation is per user, so it shows in every org the user belongs to.
TEST_F(PolicyTest, DeactivatedUserIsDeniedInEveryOrg) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(
            w.acme, w.outsider,
            test_support::assertion(tx.source(), UserType::external, OrgRole::member));
    });
    const auto in_acme = request("outsider@globex.com", "acme", "org.metrics.read");
    const auto in_globex = request("outsider@globex.com", "globex", "org.metrics.read");
    EXPECT_TRUE(decide(in_acme).allow);
    EXPECT_TRUE(decide(in_globex).allow);
    write_ok(
        [&](Transaction& tx) -> Expected<void> { return tx.set_user_active(w.outsider, false); });
    auto acme = decide(in_acme);
    auto globex = decide(in_globex);
    EXPECT_FALSE(acme.allow) << describe(acme);
    EXPECT_FALSE(globex.allow) << describe(globex);
}

// Invariant 7: a group grant reaches the group's members only, and a change of
// group membership shows in the very next decision.
TEST_F(PolicyTest, GroupMembershipChangeTakesEffectOnNextDecision) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(w.vision, group_principal(w.vision_team), Level::write,
                                tx.source());
    });
    const auto req = request("member@acme.com", "acme", "project.resources.write", "vision");
    EXPECT_FALSE(decide(req).allow) << "not in the group yet";

    auto before = store().snapshot();
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.add_group_member(w.vision_team, w.member, tx.source());
    });
    auto added = decide(req);
    EXPECT_TRUE(added.allow) << describe(added);
    // A snapshot taken earlier is immutable and still answers as before.
    auto old = authorize(*before, req);
    ASSERT_TRUE(old.has_value());
    EXPECT_FALSE(old->allow) << describe(*old);

    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.remove_group_member(w.vision_team, w.member, tx.source());
    });
    auto removed = decide(req);
    EXPECT_FALSE(removed.allow) << describe(removed);
}

TEST_F(PolicyTest, OrgMembershipChangeTakesEffectOnNextDecision) {
    const auto req = request("member@acme.com", "acme", "org.metrics.read");
    EXPECT_TRUE(decide(req).allow);
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(w.acme, w.member, tx.source());
    });
    auto gone = decide(req);
    EXPECT_FALSE(gone.allow) << describe(gone);
    EXPECT_NE(gone.reason.find("not a member of org acme"), std::string::npos) << describe(gone);

    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(
            w.acme, w.member,
            test_support::assertion(tx.source(), UserType::internal, OrgRole::admin));
    });
    auto promoted = decide(request("member@acme.com", "acme", "org.users.invite"));
    EXPECT_TRUE(promoted.allow) << describe(promoted);
    EXPECT_EQ(promoted.role, OrgRole::admin) << describe(promoted);
}

TEST_F(PolicyTest, DirectGrantChangeTakesEffectOnNextDecision) {
    const auto req = request("member@acme.com", "acme", "project.resources.write", "vision");
    EXPECT_FALSE(decide(req).allow) << "no grant yet";
    auto before = store().snapshot();
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(w.vision, user_principal(w.member), Level::write, tx.source());
    });
    auto granted = decide(req);
    EXPECT_TRUE(granted.allow) << describe(granted);
    EXPECT_EQ(granted.reason, "write via direct grant");
    // The earlier snapshot shares most of the new one and still answers as before.
    auto old = authorize(*before, req);
    ASSERT_TRUE(old.has_value());
    EXPECT_FALSE(old->allow) << describe(*old);

    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(w.vision, user_principal(w.member), Level::read, "corp");
    });
    EXPECT_TRUE(decide(req).allow) << "the highest of the sources' grants";
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.revoke_project(w.vision, user_principal(w.member), tx.source());
    });
    auto lowered = decide(req);
    EXPECT_FALSE(lowered.allow) << describe(lowered);
    EXPECT_EQ(lowered.level, Level::read) << describe(lowered);
}

TEST_F(PolicyTest, EndedMembershipTakesItsDirectGrantsWithIt) {
    const auto req = request("writer@acme.com", "acme", "project.resources.write", "vision");
    EXPECT_TRUE(decide(req).allow);
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(w.acme, w.writer, tx.source());
    });
    EXPECT_FALSE(decide(req).allow);
    // Back as a member: the grant the membership's end removed stays removed.
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(
            w.acme, w.writer,
            test_support::assertion(tx.source(), UserType::internal, OrgRole::member));
    });
    auto back = decide(req);
    EXPECT_FALSE(back.allow) << describe(back);
    EXPECT_EQ(back.reason, "no access to private project vision") << describe(back);
}

// ---------------------------------------------------------------------------
// Datasets.

TEST_F(PolicyTest, OwnerAndAdminReadAndWriteEveryDataset) {
    for (const std::string email : {"ceo@acme.com", "admin@acme.com"}) {
        for (const std::string dataset : {"street-scenes", "raw-logs"}) {
            for (const std::string action : {"dataset.read", "dataset.write"}) {
                auto decision = on_dataset(email, action, dataset);
                EXPECT_TRUE(decision.allow)
                    << email << " " << action << " " << dataset << ": " << describe(decision);
            }
        }
    }
}

TEST_F(PolicyTest, MembersReadAndWriteOrgDatasets) {
    for (const std::string dataset : {"street-scenes", "raw-logs"}) {
        for (const std::string action : {"dataset.read", "dataset.write"}) {
            auto decision = on_dataset("member@acme.com", action, dataset);
            EXPECT_TRUE(decision.allow) << action << " " << dataset << ": " << describe(decision);
        }
    }
}

TEST_F(PolicyTest, GuestIsDeniedDatasetsWithoutGrant) {
    for (const std::string dataset : {"street-scenes", "raw-logs"}) {
        for (const std::string action : {"dataset.read", "dataset.write"}) {
            auto decision = on_dataset("guest@partner.example", action, dataset);
            EXPECT_FALSE(decision.allow) << action << " " << dataset << ": " << describe(decision);
            EXPECT_FALSE(decision.reason.empty());
        }
    }
}

TEST_F(PolicyTest, GuestWithDirectReadGrantReadsButDoesNotWrite) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_dataset(w.raw_logs, user_principal(w.guest), DatasetAccess::read,
                                tx.source());
    });
    auto read = on_dataset("guest@partner.example", "dataset.read", "raw-logs");
    EXPECT_TRUE(read.allow) << describe(read);
    EXPECT_EQ(read.level, Level::read) << describe(read);
    auto write = on_dataset("guest@partner.example", "dataset.write", "raw-logs");
    EXPECT_FALSE(write.allow) << describe(write);
    // The grant is for that dataset only.
    auto other = on_dataset("guest@partner.example", "dataset.read", "street-scenes");
    EXPECT_FALSE(other.allow) << describe(other);
}

TEST_F(PolicyTest, GuestWithWriteViaGroupWrites) {
    GroupId labelers = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(labelers, tx.create_group(w.acme, "labelers"));
        ORGSYNC_TRY(tx.add_group_member(labelers, w.guest, tx.source()));
        return tx.grant_dataset(w.street_scenes, group_principal(labelers), DatasetAccess::write,
                                tx.source());
    });
    auto write = on_dataset("guest@partner.example", "dataset.write", "street-scenes");
    EXPECT_TRUE(write.allow) << describe(write);
    EXPECT_NE(write.reason.find("labelers"), std::string::npos) << describe(write);
    auto read = on_dataset("guest@partner.example", "dataset.read", "street-scenes");
    EXPECT_TRUE(read.allow) << describe(read);
}

TEST_F(PolicyTest, GuestProjectAccessDoesNotReachAttachedDataset) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(w.vision, user_principal(w.guest), Level::write, tx.source());
    });
    auto project = on_project("guest@partner.example", "project.resources.write", "vision");
    EXPECT_TRUE(project.allow) << describe(project);
    // street-scenes is attached to vision, but the guest has no dataset grant.
    for (const std::string action : {"dataset.read", "dataset.write"}) {
        auto decision = on_dataset("guest@partner.example", action, "street-scenes");
        EXPECT_FALSE(decision.allow) << action << ": " << describe(decision);
    }
}

// ---------------------------------------------------------------------------
// Questions that cannot be answered are errors, not denials.

TEST_F(PolicyTest, UnknownActionIsInvalidArgument) {
    auto snapshot = store().snapshot();
    EXPECT_TRUE(fails_with(authorize(*snapshot, request("member@acme.com", "acme", "org.fly")),
                           ErrorCode::invalid_argument));
    EXPECT_TRUE(fails_with(authorize(*snapshot, request("member@acme.com", "acme", "")),
                           ErrorCode::invalid_argument));
    EXPECT_TRUE(fails_with(authorize(*snapshot, request("member@acme.com", "acme",
                                                        "project_resources_read", "vision")),
                           ErrorCode::invalid_argument));
}

TEST_F(PolicyTest, UnknownOrgProjectOrDatasetIsNotFound) {
    auto snapshot = store().snapshot();
    EXPECT_TRUE(
        fails_with(authorize(*snapshot, request("member@acme.com", "nope", "org.metrics.read")),
                   ErrorCode::not_found));
    EXPECT_TRUE(fails_with(
        authorize(*snapshot, request("member@acme.com", "acme", "project.resources.read", "nope")),
        ErrorCode::not_found));
    EXPECT_TRUE(fails_with(authorize(*snapshot, request("member@acme.com", "acme", "dataset.read",
                                                        std::nullopt, "nope")),
                           ErrorCode::not_found));
    // A project of another org is unknown in this one.
    EXPECT_TRUE(fails_with(authorize(*snapshot, request("outsider@globex.com", "globex",
                                                        "project.resources.read", "vision")),
                           ErrorCode::not_found));
}

TEST_F(PolicyTest, ProjectActionWithoutProjectIsInvalidArgument) {
    auto snapshot = store().snapshot();
    EXPECT_TRUE(fails_with(
        authorize(*snapshot, request("member@acme.com", "acme", "project.resources.read")),
        ErrorCode::invalid_argument));
}

TEST_F(PolicyTest, OrgActionWithProjectIsInvalidArgument) {
    auto snapshot = store().snapshot();
    EXPECT_TRUE(fails_with(
        authorize(*snapshot, request("member@acme.com", "acme", "org.metrics.read", "vision")),
        ErrorCode::invalid_argument));
}

TEST_F(PolicyTest, MalformedEmailIsInvalidArgument) {
    auto snapshot = store().snapshot();
    for (const std::string email : {"not-an-email", "a@b@acme.com", "@acme.com", "member@", ""}) {
        EXPECT_TRUE(fails_with(authorize(*snapshot, request(email, "acme", "org.metrics.read")),
                               ErrorCode::invalid_argument))
            << "email \"" << email << "\"";
    }
}

TEST_F(PolicyTest, EmailIsCanonicalisedBeforeLookup) {
    auto decision = decide(request("member@ACME.com.", "acme", "org.metrics.read"));
    EXPECT_TRUE(decision.allow) << describe(decision);
    EXPECT_EQ(decision.role, OrgRole::member) << describe(decision);
}

// ---------------------------------------------------------------------------
// Decision fields.

TEST_F(PolicyTest, OrgDecisionCarriesRoleAndNoLevel) {
    struct Case {
        std::string email;
        OrgRole role;
    };
    for (const auto& [email, role] :
         {Case{"ceo@acme.com", OrgRole::owner}, Case{"admin@acme.com", OrgRole::admin},
          Case{"member@acme.com", OrgRole::member},
          Case{"guest@partner.example", OrgRole::guest}}) {
        auto decision = decide(request(email, "acme", "org.metrics.read"));
        EXPECT_EQ(decision.role, role) << email << ": " << describe(decision);
        EXPECT_FALSE(decision.level.has_value()) << email << ": " << describe(decision);
        EXPECT_FALSE(decision.reason.empty()) << email;
    }
}

TEST_F(PolicyTest, ProjectDecisionCarriesRoleAndEffectiveLevel) {
    auto writer = on_project("writer@acme.com", "project.resources.read", "vision");
    EXPECT_TRUE(writer.allow) << describe(writer);
    EXPECT_EQ(writer.role, OrgRole::member) << describe(writer);
    EXPECT_EQ(writer.level, Level::write) << describe(writer);

    auto lead = on_project("lead@acme.com", "project.resources.read", "vision");
    EXPECT_EQ(lead.level, Level::admin) << describe(lead);

    auto guest = on_project("guest@partner.example", "project.resources.read", "open");
    EXPECT_EQ(guest.role, OrgRole::guest) << describe(guest);
    EXPECT_EQ(guest.level, Level::write) << describe(guest);
}

}  // namespace
}  // namespace orgsync::directory
