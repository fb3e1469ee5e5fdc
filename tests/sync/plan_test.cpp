// The sync pipeline: plan, guards and apply, against a real store file.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "sync/run.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::sync {
namespace {

using namespace directory;
using namespace directory::test_support;

const SourceSpec k_corp{"corp", "ldap", ""};

SourceUser user(std::string id, std::string email, bool active = true) {
    return SourceUser{"corp", std::move(id), std::move(email), "", active, "{}"};
}

SourceGroup group(std::string id, std::string name, std::vector<std::string> members) {
    return SourceGroup{"corp", std::move(id), std::move(name), "{}", std::move(members)};
}

// acme owns acme.com; corp's cn=admins are org admins, cn=vision works on
// project vision, cn=vision-admins administers it, cn=labelers reads the
// dataset street-scenes.
mapping::Mapping base_mapping() {
    mapping::OrgMapping acme;
    acme.slug = "acme";
    acme.name = "Acme";
    acme.owner = "ceo@acme.com";
    acme.domains.push_back(
        mapping::DomainRule{"acme.com", false, UserType::internal, OrgRole::member});
    acme.roles.push_back(mapping::RoleRule{"corp", "cn=admins", OrgRole::admin});
    acme.projects.push_back(mapping::ProjectDecl{"vision", Visibility::private_, {"cv"}});
    acme.datasets.push_back(mapping::DatasetDecl{"street-scenes", {"vision"}});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=vision", "vision", std::nullopt,
                                             Level::write, DatasetAccess::read});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=vision-admins", "vision", std::nullopt,
                                             Level::admin, DatasetAccess::read});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=labelers", std::nullopt, "street-scenes",
                                             Level::read, DatasetAccess::read});
    mapping::Mapping result;
    result.orgs.push_back(std::move(acme));
    return result;
}

SourceData base_data() {
    return SourceData{
        {user("u1", "alice@acme.com"), user("u2", "Bob@ACME.com"), user("u3", "carol@gmail.com"),
         user("u4", "dan@acme.com"), user("u5", "not an address")},
        {group("g1", "cn=admins", {"u1"}), group("g2", "cn=vision", {"u1", "u2"}),
         group("g3", "cn=vision-admins", {"u1"}), group("g4", "cn=labelers", {"u3"})}};
}

std::vector<std::string> kinds(const Plan& plan) {
    std::vector<std::string> names;
    for (const auto& change : plan.changes) {
        names.emplace_back(to_string(change.kind));
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

// A change keeps its text fields in one buffer: each reads back as given,
// empty ones included, copies are independent, and a moved-from change
// reads empty.
TEST(ChangeTest, EveryTextFieldReadsBackAsGiven) {
    const std::string group = "cn=" + std::string(70000, 'g') + ",ou=groups";
    Change change({.kind = ChangeKind::add_member,
                   .org = "acme",
                   .email = "ann@acme.com",
                   .group = group,
                   .dataset = "street-scenes",
                   .role = OrgRole::member,
                   .external_id = "5f1c",
                   .previous_email = "",
                   .display_name = "Ann",
                   .why = "domain acme.com"});
    Change copy = change;
    Change moved = std::move(change);
    EXPECT_EQ(moved.email(), "ann@acme.com");
    EXPECT_EQ(change.email(), "");  // a moved-from change reads empty
    EXPECT_EQ(change.why(), "");
    change = Change({.kind = ChangeKind::remove_grant, .project = "vision"});
    EXPECT_EQ(copy.kind, ChangeKind::add_member);
    EXPECT_EQ(copy.role, OrgRole::member);
    EXPECT_EQ(copy.org(), "acme");
    EXPECT_EQ(copy.email(), "ann@acme.com");
    EXPECT_EQ(copy.group(), group);
    EXPECT_EQ(copy.project(), "");
    EXPECT_EQ(copy.dataset(), "street-scenes");
    EXPECT_EQ(copy.external_id(), "5f1c");
    EXPECT_EQ(copy.previous_email(), "");
    EXPECT_EQ(copy.display_name(), "Ann");
    EXPECT_EQ(copy.why(), "domain acme.com");
    EXPECT_EQ(change.project(), "vision");
    EXPECT_EQ(change.org(), "");
    EXPECT_EQ(change.why(), "");
}

class SyncTest : public BasicStoreFixture<::testing::Test> {
  protected:
    RunResult sync(const SourceData& data, bool force = false, const SourceSpec& source = k_corp) {
        return must(run_sync(store(), m_mapping, source, data, RunOptions{force}), "run_sync");
    }

    Plan plan(const SourceData& data, const SourceSpec& source = k_corp) {
        return must(prepare_plan(store(), m_mapping, source, data), "prepare_plan");
    }

    bool allowed(const std::string& email, const std::string& action,
                 std::optional<std::string> project = "vision",
                 std::optional<std::string> dataset = std::nullopt) {
        if (dataset) {
            project.reset();
        }
        return decide(request(email, "acme", action, project, dataset)).allow;
    }

    mapping::Mapping m_mapping = base_mapping();
};

TEST_F(SyncTest, FirstSyncCreatesTheMappingAndEveryMembership) {
    Plan first = plan(base_data());
    EXPECT_EQ(kinds(first), (std::vector<std::string>{
                                "add_grant", "add_group_member", "add_member", "attach_dataset",
                                "create_dataset", "create_group", "create_org", "create_project"}));
    EXPECT_EQ(first.summary.mirror_users, 5u);
    EXPECT_EQ(first.summary.mapped_users, 4u);
    EXPECT_EQ(first.summary.invalid_emails, 1u);

    RunResult run = sync(base_data());
    ASSERT_EQ(run.result, "applied") << run.message;

    EXPECT_TRUE(allowed("alice@acme.com", "org.users.invite", std::nullopt));
    EXPECT_TRUE(allowed("Bob@acme.com", "project.resources.write"));
    EXPECT_FALSE(allowed("dan@acme.com", "project.resources.read"));
    EXPECT_TRUE(allowed("dan@acme.com", "org.projects.create", std::nullopt));
    EXPECT_TRUE(allowed("carol@gmail.com", "dataset.read", std::nullopt, "street-scenes"));
    auto carol = decide(request("carol@gmail.com", "acme", "org.metrics.read"));
    EXPECT_EQ(carol.role, OrgRole::guest);

    Plan again = plan(base_data());
    EXPECT_TRUE(again.empty()) << to_text(again);
}

TEST_F(SyncTest, LaterSyncsChangeRemoveAndDeactivate) {
    ASSERT_EQ(sync(base_data()).result, "applied");

    SourceData next = base_data();
    next.users[3].active = false;                     // dan disabled
    next.users.erase(next.users.begin() + 2);         // carol gone
    next.groups[0].member_ids.clear();                // alice no longer admin
    next.groups[1].member_ids = {"u1"};               // bob leaves cn=vision
    m_mapping.orgs[0].grants[0].level = Level::read;  // cn=vision now reads
    m_mapping.orgs[0].grants.pop_back();              // no more labelers rule
    m_mapping.orgs[0].projects[0].visibility = Visibility::public_;

    Plan second = plan(next);
    EXPECT_EQ(kinds(second), (std::vector<std::string>{
                                 "change_grant", "change_member", "deactivate_user", "remove_grant",
                                 "remove_group_member", "remove_member", "update_project"}));
    RunResult run = sync(next, /*force=*/true);
    ASSERT_EQ(run.result, "applied") << run.message;

    EXPECT_FALSE(allowed("alice@acme.com", "org.users.invite", std::nullopt));
    EXPECT_FALSE(allowed("dan@acme.com", "org.metrics.read", std::nullopt));
    auto carol = decide(request("carol@gmail.com", "acme", "org.metrics.read"));
    EXPECT_EQ(carol.reason, "carol@gmail.com is not a member of org acme");
    // vision is public now: bob writes as a member.
    auto bob = decide(request("Bob@acme.com", "acme", "project.resources.write", "vision"));
    EXPECT_EQ(bob.reason, "write via public project");
    EXPECT_TRUE(plan(next).empty());

    next.users[2].active = true;  // dan again
    EXPECT_EQ(kinds(plan(next)), (std::vector<std::string>{"reactivate_user"}));
    ASSERT_EQ(sync(next).result, "applied");
    EXPECT_TRUE(allowed("dan@acme.com", "org.metrics.read", std::nullopt));
}

TEST_F(SyncTest, AdminLeavingIsDemotedThenRemovedBothRecorded) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    SourceData next = base_data();
    next.users.erase(next.users.begin());  // alice leaves the directory
    for (auto& g : next.groups) {
        std::erase(g.member_ids, "u1");
    }
    // alice administers vision through cn=vision-admins; the owner, its
    // first admin, stays, so nothing is held.
    RunResult run = sync(next, /*force=*/true);
    ASSERT_EQ(run.result, "applied") << run.message;
    EXPECT_TRUE(run.plan.held.empty());

    auto events = must(store().audit_events(0, 1000));
    auto demoted = std::find_if(events.begin(), events.end(), [](const AuditEvent& event) {
        return event.kind == "membership.changed" && event.subject == "alice@acme.com";
    });
    auto removed = std::find_if(events.begin(), events.end(), [](const AuditEvent& event) {
        return event.kind == "membership.removed" && event.subject == "alice@acme.com";
    });
    ASSERT_NE(demoted, events.end());
    ASSERT_NE(removed, events.end());
    EXPECT_LT(demoted->id, removed->id);
}

TEST_F(SyncTest, ManualChangesSurviveASync) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    write_ok([&](Transaction& tx) -> Expected<void> {
        OrgId acme = must(tx.find_org_id("acme")).value();
        ORGSYNC_TRY(add_member(tx, acme, "erin@acme.com", UserType::internal, OrgRole::member));
        // bob is also asserted manually, as an admin.
        UserId bob = must(tx.find_user_id("Bob@acme.com")).value();
        return tx.assert_membership(acme, bob,
                                    assertion("manual", UserType::internal, OrgRole::admin));
    });
    SourceData next = base_data();
    next.users.erase(next.users.begin() + 1);  // bob leaves corp
    ASSERT_EQ(sync(next, /*force=*/true).result, "applied");

    EXPECT_TRUE(allowed("erin@acme.com", "org.metrics.read", std::nullopt));
    auto bob = decide(request("Bob@acme.com", "acme", "org.users.invite"));
    EXPECT_TRUE(bob.allow) << bob.reason;
    EXPECT_EQ(bob.role, OrgRole::admin);
}

TEST_F(SyncTest, TwoSourcesAssertOneMembershipAndOneWithdraws) {
    m_mapping.orgs[0].roles.push_back(mapping::RoleRule{"hr", "cn=staff", OrgRole::member});
    const SourceSpec hr{"hr", "ldap", ""};
    ASSERT_EQ(sync(base_data()).result, "applied");
    SourceData staff{{SourceUser{"hr", "h1", "dan@acme.com", "", true, "{}"}},
                     {SourceGroup{"hr", "s1", "cn=staff", "{}", {"h1"}}}};
    ASSERT_EQ(sync(staff, false, hr).result, "applied");

    SourceData next = base_data();
    next.users.erase(next.users.begin() + 3);  // dan leaves corp, hr still has him
    ASSERT_EQ(sync(next, /*force=*/true).result, "applied");
    auto dan = decide(request("dan@acme.com", "acme", "org.metrics.read"));
    EXPECT_TRUE(dan.allow) << dan.reason;
}

TEST_F(SyncTest, ZeroUsersFromTheSourceFailsAndChangesNothing) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    std::string before = dump_state(store());
    RunResult run = sync(SourceData{}, /*force=*/true);
    EXPECT_EQ(run.result, "failed");
    EXPECT_EQ(run.message, "corp returned no users while its mirror has 5; nothing was changed");
    EXPECT_EQ(dump_state(store()), before);
    EXPECT_EQ(must(store().sync_runs("corp", 1)).front().result, "failed");
    EXPECT_EQ(must(store().list_source_users("corp")).size(), 5u);
}

TEST_F(SyncTest, IncompleteDataFailsAndChangesNothing) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    std::string before = dump_state(store());
    SourceData partial = base_data();
    partial.users.resize(1);
    partial.incomplete = "size limit exceeded after 1 entry";
    RunResult run = sync(partial, /*force=*/true);
    EXPECT_EQ(run.result, "failed");
    EXPECT_EQ(run.message,
              "corp returned incomplete data (size limit exceeded after 1 entry); nothing was "
              "changed");
    EXPECT_EQ(dump_state(store()), before);
    EXPECT_EQ(must(store().list_source_users("corp")).size(), 5u);
}

SourceData many_users(int count) {
    SourceData data;
    for (int i = 0; i < count; ++i) {
        data.users.push_back(user(fmt::format("u{}", i), fmt::format("user{}@acme.com", i)));
    }
    return data;
}

TEST_F(SyncTest, DeletionGuardBlocksElevenPercentAndForceAppliesIt) {
    ASSERT_EQ(sync(many_users(100)).result, "applied");  // 100 users + nobody else from corp
    OrgId acme = must(store().find_org("acme")).value().id;
    std::size_t members = must(store().list_members(acme)).size();

    SourceData fewer = many_users(89);  // 11 of 100 gone
    RunResult blocked = sync(fewer);
    EXPECT_EQ(blocked.result, "blocked");
    EXPECT_EQ(blocked.message,
              "would remove or deactivate 11 of the 100 users corp asserts in org acme (more "
              "than 10%); review the plan and run with --force to apply it");
    EXPECT_EQ(must(store().list_members(acme)).size(), members);
    auto runs = must(store().sync_runs("corp", 1));
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs.front().result, "blocked");
    EXPECT_EQ(nlohmann::json::parse(runs.front().plan)["changes"].size(), 11u);

    EXPECT_EQ(sync(many_users(90)).result, "applied");  // exactly 10 %: allowed
    EXPECT_EQ(must(store().list_members(acme)).size(), members - 10);

    RunResult forced = sync(many_users(80), /*force=*/true);  // 10 of 90 = 11 %
    EXPECT_EQ(forced.result, "applied");
    EXPECT_EQ(must(store().list_members(acme)).size(), members - 20);
}

// vision's only admins come from cn=vision-admins once the owner's grant is
// gone; removing alice from it would leave the project without an admin.
class LastAdminTest : public SyncTest {
  protected:
    void SetUp() override {
        SyncTest::SetUp();
        ASSERT_EQ(sync(base_data()).result, "applied");
        write_ok("corp", [&](Transaction& tx) -> Expected<void> {
            OrgId acme = must(tx.find_org_id("acme")).value();
            ProjectId vision = must(tx.find_project_id(acme, "vision")).value();
            UserId ceo = must(tx.find_user_id("ceo@acme.com")).value();
            return tx.revoke_project(vision, user_principal(ceo), "corp");
        });
        m_next = base_data();
        m_next.groups[2].member_ids.clear();  // alice leaves cn=vision-admins
    }
    SourceData m_next;
};

TEST_F(LastAdminTest, IsHeldInThePlanAndInTheStatus) {
    Plan held = plan(m_next);
    ASSERT_EQ(held.held.size(), 1u) << to_text(held);
    EXPECT_EQ(held.held[0].change.kind, ChangeKind::remove_group_member);
    EXPECT_EQ(held.held[0].reason,
              "would leave project acme/vision without an admin; grant admin to a replacement "
              "or set project_admin_fallback for org acme in the mapping");
    EXPECT_NE(to_text(held).find("  held: - alice@acme.com from group cn=vision-admins in acme"),
              std::string::npos)
        << to_text(held);

    RunResult run = sync(m_next);
    EXPECT_EQ(run.result, "applied");
    EXPECT_TRUE(allowed("alice@acme.com", "project.delete"));
    auto status = nlohmann::json::parse(must(store().sync_runs("corp", 1)).front().plan);
    ASSERT_EQ(status["held"].size(), 1u);
    EXPECT_EQ(status["held"][0]["kind"], "remove_group_member");
}

TEST_F(LastAdminTest, FallbackAdminReplacesTheLastAdmin) {
    m_mapping.orgs[0].project_admin_fallback = "ceo@acme.com";
    Plan fallback = plan(m_next);
    EXPECT_TRUE(fallback.held.empty()) << to_text(fallback);
    ASSERT_EQ(sync(m_next).result, "applied");
    OrgId acme = must(store().find_org("acme")).value().id;
    GroupId admins = must(store().find_group(acme, "cn=vision-admins")).value().id;
    EXPECT_TRUE(must(store().group_members(admins)).empty());
    auto ceo = decide(request("ceo@acme.com", "acme", "project.delete", "vision"));
    EXPECT_TRUE(ceo.allow);
}

// A run that held changes, or that the store refused and that was settled
// with a fallback admin, is not settled: the next run plans again.
TEST_F(LastAdminTest, ARunWithHeldChangesIsPlannedAgain) {
    m_mapping.digest = "v1";
    ASSERT_EQ(sync(m_next).result, "applied");
    RunResult again = sync(m_next);
    ASSERT_EQ(again.result, "applied") << again.message;
    ASSERT_EQ(again.plan.held.size(), 1u) << to_text(again.plan);
    EXPECT_EQ(again.plan.held[0].change.kind, ChangeKind::remove_group_member);
}

TEST_F(LastAdminTest, ARunSettledWithAFallbackAdminIsPlannedAgain) {
    m_mapping.digest = "v1";
    m_mapping.orgs[0].project_admin_fallback = "ceo@acme.com";
    RunResult first = sync(m_next);
    ASSERT_EQ(first.result, "applied") << first.message;
    ASSERT_EQ(kinds(first.plan),
              (std::vector<std::string>{"add_fallback_admin", "remove_group_member"}));
    // Not settled: a mapping changed under the same digest is seen, which
    // only a run that plans can do.
    m_mapping.orgs[0].grants.pop_back();  // no more labelers rule
    RunResult again = sync(m_next, /*force=*/true);
    ASSERT_EQ(again.result, "applied") << again.message;
    auto again_kinds = kinds(again.plan);
    EXPECT_NE(std::find(again_kinds.begin(), again_kinds.end(), "remove_grant"), again_kinds.end())
        << to_text(again.plan);
}

TEST_F(SyncTest, AFailingApplyLeavesTheStoreExactlyAsBefore) {
    // dan is internal in globex; acme.com would make him internal in acme too.
    write_ok([&](Transaction& tx) -> Expected<void> {
        OrgId globex = 0;
        ORGSYNC_ASSIGN(globex, tx.create_org("globex", "Globex", false, "boss@globex.com"));
        ORGSYNC_TRY(add_member(tx, globex, "dan@acme.com", UserType::internal, OrgRole::member));
        return {};
    });
    std::string before = dump_state(store());
    RunResult run = sync(base_data());
    EXPECT_EQ(run.result, "failed");
    EXPECT_NE(run.message.find("dan@acme.com is already internal in org globex"), std::string::npos)
        << run.message;
    EXPECT_EQ(dump_state(store()), before);
    EXPECT_TRUE(must(store().list_source_users("corp")).empty());
}

}  // namespace
}  // namespace orgsync::sync

namespace orgsync::sync {
namespace {

TEST_F(SyncTest, AnAddressChangeInTheSourceRenamesTheUser) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    SourceData next = base_data();
    next.users[1].email = "robert@acme.com";  // bob, same id u2
    Plan renamed = plan(next);
    EXPECT_EQ(kinds(renamed), (std::vector<std::string>{"change_email"})) << to_text(renamed);
    ASSERT_EQ(sync(next).result, "applied");
    auto robert = decide(request("robert@acme.com", "acme", "project.resources.write", "vision"));
    EXPECT_TRUE(robert.allow) << robert.reason;
    auto bob = decide(request("Bob@acme.com", "acme", "org.metrics.read"));
    EXPECT_FALSE(bob.allow);
    EXPECT_TRUE(plan(next).empty());
}

TEST_F(SyncTest, AnAddressChangeToAnotherAccountsAddressIsNoRename) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    SourceData next = base_data();
    next.users[1].email = "dan@acme.com";  // bob, id u2, states dan's address
    Plan taken = plan(next);
    auto found = kinds(taken);
    EXPECT_EQ(std::count(found.begin(), found.end(), "change_email"), 0) << to_text(taken);
    EXPECT_NE(to_text(taken).find("- member Bob@acme.com from acme"), std::string::npos)
        << to_text(taken);
}

TEST_F(SyncTest, ADisabledUserWhoseAddressChangesIsNotDisabledAgain) {
    SourceData data = base_data();
    data.users[1].active = false;  // bob
    ASSERT_EQ(sync(data).result, "applied");
    data.users[1].email = "robert@acme.com";
    Plan renamed = plan(data);
    EXPECT_EQ(kinds(renamed), (std::vector<std::string>{"change_email"})) << to_text(renamed);
}

TEST_F(SyncTest, TheGuardCoversOrgsTheMappingNoLongerDeclares) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    m_mapping.orgs[0].slug = "acme-renamed";  // a mistake: acme's members would all go
    RunResult run = sync(base_data());
    EXPECT_EQ(run.result, "blocked") << run.message;
    EXPECT_NE(run.message.find("in org acme (more than 10%)"), std::string::npos) << run.message;
}

TEST_F(SyncTest, AnOwnerWhoLeavesTheSourceStaysOwner) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    write_ok([&](Transaction& tx) -> Expected<void> {
        OrgId acme = must(tx.find_org_id("acme")).value();
        UserId alice = must(tx.find_user_id("alice@acme.com")).value();
        return tx.transfer_ownership(acme, alice);
    });
    SourceData next = base_data();
    next.users.erase(next.users.begin());  // alice leaves corp
    RunResult run = sync(next, /*force=*/true);
    EXPECT_EQ(run.result, "applied") << run.message;
    auto alice = decide(request("alice@acme.com", "acme", "org.billing.manage"));
    EXPECT_TRUE(alice.allow) << alice.reason;
    EXPECT_TRUE(plan(next).empty()) << to_text(plan(next));
}

TEST_F(SyncTest, DuplicateTagsInTheMappingDoNotChurn) {
    m_mapping.orgs[0].projects[0].tags = {"cv", "cv"};
    ASSERT_EQ(sync(base_data()).result, "applied");
    EXPECT_TRUE(plan(base_data()).empty()) << to_text(plan(base_data()));
}

TEST_F(LastAdminTest, AFallbackAdminWhoIsNotAMemberIsSettledOnce) {
    m_mapping.orgs[0].project_admin_fallback = "helper@partner.example";
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.upsert_user("helper@partner.example", ""));
        return {};
    });
    ASSERT_EQ(sync(m_next).result, "applied");
    auto helper = decide(request("helper@partner.example", "acme", "project.delete", "vision"));
    EXPECT_TRUE(helper.allow) << helper.reason;
    Plan again = plan(m_next);
    EXPECT_TRUE(again.empty()) << to_text(again);
}

TEST_F(SyncTest, TwoSourcesThatDisagreeOnAnAccountDoNotFlipIt) {
    m_mapping.orgs[0].roles.push_back(mapping::RoleRule{"hr", "cn=staff", OrgRole::member});
    const SourceSpec hr{"hr", "ldap", ""};
    ASSERT_EQ(sync(base_data()).result, "applied");
    SourceData staff{{SourceUser{"hr", "h1", "dan@acme.com", "", false, "{}"}},  // disabled in hr
                     {SourceGroup{"hr", "s1", "cn=staff", "{}", {"h1"}}}};
    ASSERT_EQ(sync(staff, false, hr).result, "applied");
    EXPECT_FALSE(allowed("dan@acme.com", "org.metrics.read", std::nullopt));

    // corp still says dan is enabled; it does not re-enable him.
    Plan corp = plan(base_data());
    EXPECT_TRUE(corp.empty()) << to_text(corp);
    ASSERT_EQ(sync(base_data()).result, "applied");
    EXPECT_FALSE(allowed("dan@acme.com", "org.metrics.read", std::nullopt));
    EXPECT_TRUE(plan(staff, hr).empty());

    staff.users[0].active = true;  // hr enables him again
    ASSERT_EQ(sync(staff, false, hr).result, "applied");
    EXPECT_TRUE(allowed("dan@acme.com", "org.metrics.read", std::nullopt));
}

// A full sync that fetches what the mirror holds, into a store nobody wrote
// to since the last run under the same mapping (known by its digest), needs
// no plan: it is recorded as applied without changes, with the counts of
// the plan it stands for.
TEST_F(SyncTest, ASettledSourceIsNotPlannedAgainUntilSomethingChanges) {
    m_mapping.digest = "v1";
    RunResult first = sync(base_data());
    ASSERT_EQ(first.result, "applied") << first.message;
    EXPECT_FALSE(first.plan.changes.empty());

    Plan planned = plan(base_data());
    ASSERT_TRUE(planned.empty()) << to_text(planned);
    RunResult settled = sync(base_data());
    ASSERT_EQ(settled.result, "applied") << settled.message;
    EXPECT_TRUE(settled.plan.empty()) << to_text(settled.plan);
    EXPECT_EQ(settled.plan.summary.mirror_users, planned.summary.mirror_users);
    EXPECT_EQ(settled.plan.summary.mapped_users, planned.summary.mapped_users);
    EXPECT_EQ(settled.plan.summary.unmapped_users, planned.summary.unmapped_users);
    EXPECT_EQ(settled.plan.summary.invalid_emails, planned.summary.invalid_emails);
    EXPECT_EQ(settled.plan.summary.source_members, planned.summary.source_members);
    EXPECT_EQ(settled.plan.summary.source_members_by_org, planned.summary.source_members_by_org);
    auto runs = must(store().sync_runs("corp", 10), "sync_runs");
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0].result, "applied");

    // The digest stands for the mapping: a mapping changed under the same
    // digest goes unseen (as for incremental reads), a new digest does not.
    m_mapping.orgs[0].grants.pop_back();  // no more labelers rule
    EXPECT_TRUE(sync(base_data()).plan.empty());
    m_mapping.digest = "v2";
    RunResult replanned = sync(base_data(), /*force=*/true);
    ASSERT_EQ(replanned.result, "applied") << replanned.message;
    EXPECT_EQ(kinds(replanned.plan),
              (std::vector<std::string>{"remove_grant", "remove_group_member", "remove_member"}));
    EXPECT_TRUE(sync(base_data()).plan.empty());

    // Any write to the store ends it: an assertion withdrawn by hand is
    // made again by the next sync.
    write_ok([&](Transaction& tx) -> Expected<void> {
        OrgId acme = must(tx.find_org_id("acme")).value();
        UserId dan = must(tx.find_user_id("dan@acme.com")).value();
        return tx.retract_membership(acme, dan, "corp");
    });
    RunResult restored = sync(base_data());
    ASSERT_EQ(restored.result, "applied") << restored.message;
    EXPECT_EQ(kinds(restored.plan), (std::vector<std::string>{"add_member"}));

    // A changed fetch is planned.
    SourceData next = base_data();
    next.users[3].display_name = "Dan";
    RunResult changed = sync(next);
    ASSERT_EQ(changed.result, "applied") << changed.message;
    EXPECT_TRUE(changed.plan.empty()) << to_text(changed.plan);
    EXPECT_TRUE(sync(next).plan.empty());

    // As many users as stored, each as stored, but one twice and one
    // missing, is a change too.
    SourceData doubled = next;
    doubled.users[3] = doubled.users[0];
    Plan doubled_plan = plan(doubled);
    ASSERT_FALSE(doubled_plan.empty());
    RunResult doubled_run = sync(doubled, /*force=*/true);
    EXPECT_EQ(kinds(doubled_run.plan), kinds(doubled_plan)) << doubled_run.message;
}

// A run of the stored mirror settles the source too: a fetch of the same
// records next is not planned (shown by a mapping change under the same
// digest going unseen, as above).
TEST_F(SyncTest, ARunOfTheStoredMirrorSettlesTheSource) {
    m_mapping.digest = "v1";
    ASSERT_EQ(sync(base_data()).result, "applied");
    m_mapping.digest = "v2";
    RunResult from_mirror =
        must(run_sync(store(), m_mapping, k_corp, std::nullopt, RunOptions{}), "run_sync");
    ASSERT_EQ(from_mirror.result, "applied") << from_mirror.message;
    EXPECT_TRUE(from_mirror.plan.empty()) << to_text(from_mirror.plan);

    m_mapping.orgs[0].grants.pop_back();
    EXPECT_TRUE(sync(base_data()).plan.empty());
    m_mapping.digest = "v3";
    EXPECT_FALSE(sync(base_data(), /*force=*/true).plan.empty());
}

// Digests read before a later write are not trusted: the run reads them
// again, so the mirror ends up as fetched.
TEST_F(SyncTest, StoredDigestsReadBeforeAWriteAreReadAgain) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    auto stale = must(read_stored_digests(store(), "corp"), "read_stored_digests");
    SourceData renamed = base_data();
    renamed.users[3].display_name = "Dan";
    ASSERT_EQ(sync(renamed).result, "applied");

    RunResult run =
        must(run_sync(store(), m_mapping, k_corp, base_data(), std::move(stale), RunOptions{}),
             "run_sync");
    ASSERT_EQ(run.result, "applied") << run.message;
    auto users = must(store().list_source_users("corp"));
    auto dan = std::find_if(users.begin(), users.end(),
                            [](const SourceUser& user) { return user.external_id == "u4"; });
    ASSERT_NE(dan, users.end());
    EXPECT_EQ(dan->display_name, "");
}

// Without a digest (a mapping built in code) every run is planned.
TEST_F(SyncTest, AMappingWithoutADigestIsAlwaysPlanned) {
    ASSERT_EQ(sync(base_data()).result, "applied");
    m_mapping.orgs[0].grants.pop_back();
    RunResult replanned = sync(base_data(), /*force=*/true);
    ASSERT_EQ(replanned.result, "applied") << replanned.message;
    EXPECT_FALSE(replanned.plan.empty());
}

}  // namespace
}  // namespace orgsync::sync
