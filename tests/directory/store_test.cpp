// The SQLite store against DESIGN §1's invariants: every violation is
// rejected with its typed ErrorCode and leaves the store exactly as it was
// (members, grants, snapshot and audit log compared before and after). Also
// multi-source assertions, atomic writes, persistence across reopening, the
// source mirror and email canonicalisation.

#include "directory/store.hpp"

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/policy.hpp"
#include "directory/schema.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::directory {
namespace {

using test_support::add_member;
using test_support::assertion;
using test_support::audit_after;
using test_support::audit_count;
using test_support::describe;
using test_support::discard;
using test_support::dump_state;
using test_support::fails_with;
using test_support::group_principal;
using test_support::last_audit_id;
using test_support::must;
using test_support::request;
using test_support::sorted;
using test_support::succeeds;
using test_support::user_principal;

// acme: ceo@acme.com owner; admin@acme.com internal admin; member@acme.com
// internal member; guest@partner.example external guest; project vision
// (private) whose only explicit admin is the owner. globex: boss@globex.com.
class StoreTest : public test_support::StoreFixture {
  protected:
    void SetUp() override {
        test_support::StoreFixture::SetUp();
        write_ok([&](Transaction& tx) -> Expected<void> {
            ORGSYNC_ASSIGN(acme, tx.create_org("acme", "Acme Corp", false, "ceo@acme.com"));
            ORGSYNC_ASSIGN(owner, tx.upsert_user("ceo@acme.com", "Ceo"));
            ORGSYNC_ASSIGN(
                admin, add_member(tx, acme, "admin@acme.com", UserType::internal, OrgRole::admin));
            ORGSYNC_ASSIGN(member, add_member(tx, acme, "member@acme.com", UserType::internal,
                                              OrgRole::member));
            ORGSYNC_ASSIGN(guest, add_member(tx, acme, "guest@partner.example", UserType::external,
                                             OrgRole::guest));
            ORGSYNC_ASSIGN(vision,
                           tx.create_project(acme, "vision", Visibility::private_, {"cv"}, owner));
            ORGSYNC_ASSIGN(globex, tx.create_org("globex", "Globex", false, "boss@globex.com"));
            return {};
        });
    }

    // Everything observable, including users that belong to no org.
    std::string state() {
        return dump_state(store(), {"stranger@elsewhere.example", "wf@labelco.example",
                                    "ext@partner.example", "new@acme.com"});
    }

    Membership membership_must(OrgId org, UserId user) {
        auto found = membership_of(org, user);
        if (!found) {
            throw std::runtime_error("no membership for user " + std::to_string(user));
        }
        return *found;
    }

    std::vector<std::string> sources_of(const Membership& membership) {
        std::vector<std::string> sources;
        for (const auto& item : membership.assertions) {
            sources.push_back(item.source);
        }
        return sorted(std::move(sources));
    }

    // "email level" for each grant of `project`, sorted.
    std::vector<std::string> grants_of(ProjectId project) {
        std::vector<std::string> out;
        for (const auto& grant : must(store().list_project_grants(project))) {
            out.push_back(grant.principal_name + " " + std::string(to_string(grant.level)));
        }
        return sorted(std::move(out));
    }

    static std::string kinds(const std::vector<AuditEvent>& events) {
        std::string out;
        for (const auto& event : events) {
            out += event.kind + " ";
        }
        return out;
    }

    // Some event names `text` in its subject or detail.
    static bool mentions(const std::vector<AuditEvent>& events, std::string_view text) {
        return std::any_of(events.begin(), events.end(), [&](const AuditEvent& event) {
            return event.subject.find(text) != std::string::npos ||
                   event.detail.find(text) != std::string::npos;
        });
    }

    // Asserts that `body` fails with `code` and changes nothing.
    void expect_rejected(const test_support::Body& body, ErrorCode code,
                         std::string_view source = k_manual_source) {
        const std::string before = state();
        const auto audit_before = audit_count(store());
        EXPECT_TRUE(fails_with(write(source, body), code));
        EXPECT_EQ(audit_count(store()), audit_before) << "audit events appended by a failed write";
        EXPECT_EQ(state(), before) << "a failed write changed the store";
    }

    OrgId acme = 0;
    OrgId globex = 0;
    UserId owner = 0;
    UserId admin = 0;
    UserId member = 0;
    UserId guest = 0;
    ProjectId vision = 0;
};

// ---------------------------------------------------------------------------
// Ids returned by the create calls name the records they created.

TEST_F(StoreTest, CreateCallsReturnTheNewRecordsIds) {
    GroupId group = 0;
    ProjectId project = 0;
    DatasetId dataset = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(group, tx.create_group(acme, "vision-team"));
        ORGSYNC_ASSIGN(project, tx.create_project(acme, "open", Visibility::public_, {}, owner));
        ORGSYNC_ASSIGN(dataset, tx.create_dataset(acme, "street-scenes"));
        return {};
    });
    EXPECT_EQ(must(store().find_org("acme"))->id, acme);
    EXPECT_EQ(must(store().find_org("globex"))->id, globex);
    EXPECT_EQ(user_id("member@acme.com"), member);
    EXPECT_EQ(must(store().find_group(acme, "vision-team"))->id, group);
    EXPECT_EQ(must(store().find_project(acme, "open"))->id, project);
    EXPECT_EQ(must(store().find_project(acme, "vision"))->id, vision);
    EXPECT_EQ(test_support::dataset_id(store(), acme, "street-scenes"), dataset);
}

TEST_F(StoreTest, CreateDatasetReturnsTheNewDatasetsId) {
    // The returned id is usable in the same write.
    EXPECT_TRUE(succeeds(write([&](Transaction& tx) -> Expected<void> {
        DatasetId dataset = 0;
        ORGSYNC_ASSIGN(dataset, tx.create_dataset(acme, "street-scenes"));
        ORGSYNC_TRY(tx.attach_dataset(dataset, vision));
        return tx.grant_dataset(dataset, user_principal(guest), DatasetAccess::read,
                                k_manual_source);
    })));
    auto dataset = must(store().find_dataset(acme, "street-scenes"));
    ASSERT_TRUE(dataset.has_value());
    EXPECT_EQ(dataset->projects, std::vector<std::string>{"vision"});
}

// ---------------------------------------------------------------------------
// Invariant 1: exactly one owner; ownership moves by transfer only.

TEST_F(StoreTest, RetractingTheOwnerIsOwnerImmutable) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, owner, k_manual_source);
        },
        ErrorCode::owner_immutable);
    EXPECT_EQ(membership_must(acme, owner).role, OrgRole::owner);
}

TEST_F(StoreTest, AssertingRoleOwnerIsInvalidArgument) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.assert_membership(
                acme, member, assertion(k_manual_source, UserType::internal, OrgRole::owner));
        },
        ErrorCode::invalid_argument);
    // Nor for a new user: the user created earlier in the write goes too.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            UserId fresh = 0;
            ORGSYNC_ASSIGN(fresh, tx.upsert_user("new@acme.com", "New"));
            return tx.assert_membership(
                acme, fresh, assertion(k_manual_source, UserType::internal, OrgRole::owner));
        },
        ErrorCode::invalid_argument);
    EXPECT_FALSE(must(store().find_user("new@acme.com")).has_value());
}

TEST_F(StoreTest, OwnerStaysOwnerWhateverASourceAsserts) {
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, owner,
                                    assertion("corp", UserType::internal, OrgRole::member));
    });
    EXPECT_EQ(membership_must(acme, owner).role, OrgRole::owner);
    EXPECT_EQ(must(store().find_org("acme"))->owner, owner);
}

TEST_F(StoreTest, TransferOwnershipMovesOwnerAndDemotesFormerOwnerAtomically) {
    const auto audit_before = audit_count(store());
    write_ok(
        [&](Transaction& tx) -> Expected<void> { return tx.transfer_ownership(acme, member); });

    // Both changes are visible together in one snapshot.
    auto snapshot = store().snapshot();
    const OrgView* view = snapshot->find_org("acme");
    ASSERT_NE(view, nullptr);
    auto new_owner = view->members.find("member@acme.com");
    auto former_owner = view->members.find("ceo@acme.com");
    ASSERT_NE(new_owner, view->members.end());
    ASSERT_NE(former_owner, view->members.end());
    EXPECT_EQ(new_owner->second.role, OrgRole::owner);
    EXPECT_EQ(former_owner->second.role, OrgRole::admin);
    EXPECT_EQ(former_owner->second.user_type, UserType::internal);
    std::size_t owners = 0;
    for (const auto& [email, member_view] : view->members) {
        owners += member_view.role == OrgRole::owner ? 1U : 0U;
    }
    EXPECT_EQ(owners, 1U);

    // And in the store.
    EXPECT_EQ(must(store().find_org("acme"))->owner, member);
    EXPECT_EQ(membership_must(acme, member).role, OrgRole::owner);
    auto former = membership_must(acme, owner);
    EXPECT_EQ(former.role, OrgRole::admin);
    EXPECT_TRUE(std::any_of(former.assertions.begin(), former.assertions.end(),
                            [](const MembershipAssertion& item) {
                                return item.source == k_manual_source &&
                                       item.role == OrgRole::admin;
                            }))
        << "the former owner's admin role is a manual assertion";
    EXPECT_GT(audit_count(store()), audit_before);

    // Decisions follow.
    auto edit_new = decide(request("member@acme.com", "acme", "org.edit"));
    EXPECT_TRUE(edit_new.allow) << describe(edit_new);
    auto edit_old = decide(request("ceo@acme.com", "acme", "org.edit"));
    EXPECT_FALSE(edit_old.allow) << describe(edit_old);

    // The former owner is an ordinary admin now: demotion before removal.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, owner, k_manual_source);
        },
        ErrorCode::admin_must_be_demoted);

    // The new owner is now the immutable one.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, member, k_manual_source);
        },
        ErrorCode::owner_immutable);
}

TEST_F(StoreTest, TransferOwnershipToNonMemberIsNotAMember) {
    UserId stranger = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(stranger, tx.upsert_user("stranger@elsewhere.example", "Stranger"));
        return {};
    });
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> { return tx.transfer_ownership(acme, stranger); },
        ErrorCode::not_a_member);
    EXPECT_EQ(must(store().find_org("acme"))->owner, owner);
}

TEST_F(StoreTest, TransferOwnershipToNonInternalMemberIsRoleRequiresInternal) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> { return tx.transfer_ownership(acme, guest); },
        ErrorCode::role_requires_internal);
    UserId contractor = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(contractor, add_member(tx, acme, "wf@labelco.example", UserType::workforce,
                                              OrgRole::member));
        return {};
    });
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> { return tx.transfer_ownership(acme, contractor); },
        ErrorCode::role_requires_internal);
    EXPECT_EQ(must(store().find_org("acme"))->owner, owner);
    EXPECT_EQ(membership_must(acme, owner).role, OrgRole::owner);
}

// ---------------------------------------------------------------------------
// Invariant 2: only internal users are owner or admin.

TEST_F(StoreTest, AdminRoleRequiresInternalUser) {
    for (UserType type : {UserType::workforce, UserType::external}) {
        const std::string email =
            type == UserType::workforce ? "wf@labelco.example" : "ext@partner.example";
        expect_rejected(
            [&](Transaction& tx) -> Expected<void> {
                return discard(add_member(tx, acme, email, type, OrgRole::admin));
            },
            ErrorCode::role_requires_internal);
        EXPECT_FALSE(must(store().find_user(email)).has_value()) << email;
    }
    // An existing external guest promoted to admin by another source.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.assert_membership(acme, guest,
                                        assertion("corp", UserType::external, OrgRole::admin));
        },
        ErrorCode::role_requires_internal, "corp");
    EXPECT_EQ(membership_must(acme, guest).role, OrgRole::guest);
}

TEST_F(StoreTest, WorkforceAndExternalUsersMayBeMemberOrGuest) {
    UserId contractor = 0;
    UserId outsider = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(contractor, add_member(tx, acme, "wf@labelco.example", UserType::workforce,
                                              OrgRole::member));
        ORGSYNC_ASSIGN(outsider, add_member(tx, acme, "ext@partner.example", UserType::external,
                                            OrgRole::member));
        return {};
    });
    EXPECT_EQ(membership_must(acme, contractor).user_type, UserType::workforce);
    EXPECT_EQ(membership_must(acme, contractor).role, OrgRole::member);
    EXPECT_EQ(membership_must(acme, outsider).user_type, UserType::external);
    EXPECT_EQ(membership_must(acme, outsider).role, OrgRole::member);
}

// ---------------------------------------------------------------------------
// Invariant 3: internal in at most one org.

TEST_F(StoreTest, InternalInASecondOrgIsInternalElsewhere) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.assert_membership(
                globex, member, assertion(k_manual_source, UserType::internal, OrgRole::member));
        },
        ErrorCode::internal_elsewhere);
    EXPECT_FALSE(membership_of(globex, member).has_value());
    // Becoming the owner of a new org makes one internal there too.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return discard(tx.create_org("initech", "Initech", false, "member@acme.com"));
        },
        ErrorCode::internal_elsewhere);
    EXPECT_FALSE(must(store().find_org("initech")).has_value());
}

TEST_F(StoreTest, WorkforceOrExternalInManyOrgsIsAllowed) {
    OrgId initech = 0;
    UserId contractor = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(initech, tx.create_org("initech", "Initech", false, "boss@initech.example"));
        // Internal in acme, workforce in globex, external in initech.
        ORGSYNC_TRY(tx.assert_membership(
            globex, member, assertion(k_manual_source, UserType::workforce, OrgRole::member)));
        ORGSYNC_TRY(tx.assert_membership(
            initech, member, assertion(k_manual_source, UserType::external, OrgRole::guest)));
        // A contractor, workforce in two orgs.
        ORGSYNC_ASSIGN(contractor, add_member(tx, globex, "wf@labelco.example", UserType::workforce,
                                              OrgRole::member));
        ORGSYNC_TRY(tx.assert_membership(
            initech, contractor, assertion(k_manual_source, UserType::workforce, OrgRole::guest)));
        return {};
    });
    EXPECT_EQ(membership_must(acme, member).user_type, UserType::internal);
    EXPECT_EQ(membership_must(globex, member).user_type, UserType::workforce);
    EXPECT_EQ(membership_must(initech, member).user_type, UserType::external);
    EXPECT_EQ(membership_must(globex, contractor).user_type, UserType::workforce);
    EXPECT_EQ(membership_must(initech, contractor).user_type, UserType::workforce);
}

// ---------------------------------------------------------------------------
// Invariant 4: an admin is demoted before being removed.

TEST_F(StoreTest, RemovingAnAdminNeedsDemotionFirst) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, admin, k_manual_source);
        },
        ErrorCode::admin_must_be_demoted);
    EXPECT_EQ(membership_must(acme, admin).role, OrgRole::admin);

    const auto before_demotion = last_audit_id(store());
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(
            acme, admin, assertion(k_manual_source, UserType::internal, OrgRole::member));
    });
    EXPECT_EQ(membership_must(acme, admin).role, OrgRole::member);
    const auto demotion_events = audit_after(store(), before_demotion);
    EXPECT_FALSE(demotion_events.empty()) << "the demotion is audited";

    const auto before_removal = last_audit_id(store());
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, admin, k_manual_source);
    });
    EXPECT_FALSE(membership_of(acme, admin).has_value());
    const auto removal_events = audit_after(store(), before_removal);
    EXPECT_FALSE(removal_events.empty()) << "the removal is audited";

    // Both steps are in the log, about this admin, recorded as different kinds
    // of change.
    EXPECT_TRUE(mentions(demotion_events, "admin@acme.com")) << kinds(demotion_events);
    EXPECT_TRUE(mentions(removal_events, "admin@acme.com")) << kinds(removal_events);
    EXPECT_NE(kinds(demotion_events), kinds(removal_events));
    for (const auto& event : audit_after(store(), before_demotion)) {
        EXPECT_EQ(event.org, "acme") << event.kind;
        EXPECT_EQ(event.source, k_manual_source) << event.kind;
    }
}

// A sync that removes an admin records both steps in its one transaction.
TEST_F(StoreTest, SyncRemovingAnAdminRecordsDemotionAndRemoval) {
    UserId synced_admin = 0;
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(synced_admin,
                       add_member(tx, acme, "new@acme.com", UserType::internal, OrgRole::admin));
        return {};
    });
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, synced_admin, "corp");
        },
        ErrorCode::admin_must_be_demoted, "corp");

    const auto before = last_audit_id(store());
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.assert_membership(acme, synced_admin,
                                         assertion("corp", UserType::internal, OrgRole::member)));
        return tx.retract_membership(acme, synced_admin, "corp");
    });
    EXPECT_FALSE(membership_of(acme, synced_admin).has_value());
    const auto events = audit_after(store(), before);
    EXPECT_GE(events.size(), 2U) << "demotion and removal are both audited: " << kinds(events);
    EXPECT_TRUE(mentions(events, "new@acme.com")) << kinds(events);
    for (const auto& event : events) {
        EXPECT_EQ(event.source, "corp") << event.kind;
    }
    // Two different kinds of change, not one event twice.
    std::vector<std::string> distinct;
    for (const auto& event : events) {
        distinct.push_back(event.kind);
    }
    distinct = sorted(std::move(distinct));
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    EXPECT_GE(distinct.size(), 2U) << kinds(events);
}

// Ending a membership takes the user's grants and group memberships in that
// org with it; joining again does not bring them back.
TEST_F(StoreTest, EndingAMembershipRemovesItsGrantsAndGroupMemberships) {
    GroupId team = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(team, tx.create_group(acme, "vision-team"));
        ORGSYNC_TRY(tx.add_group_member(team, member, k_manual_source));
        return tx.grant_project(vision, user_principal(member), Level::write, k_manual_source);
    });
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, member, k_manual_source);
    });
    EXPECT_FALSE(membership_of(acme, member).has_value());
    EXPECT_TRUE(must(store().group_members(team)).empty());
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"ceo@acme.com admin"});

    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(
            acme, member, assertion(k_manual_source, UserType::internal, OrgRole::member));
    });
    EXPECT_TRUE(must(store().group_members(team)).empty());
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"ceo@acme.com admin"});
    auto decision = decide(request("member@acme.com", "acme", "project.resources.read", "vision"));
    EXPECT_FALSE(decision.allow) << describe(decision);
}

TEST_F(StoreTest, GrantToAGroupOfAnotherOrgIsRejected) {
    GroupId foreign = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(foreign, tx.create_group(globex, "globex-team"));
        return {};
    });
    // The header names no code for this; any error that changes nothing will do.
    const std::string before = state();
    auto result = write([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, group_principal(foreign), Level::read, k_manual_source);
    });
    EXPECT_FALSE(result.has_value());
    EXPECT_EQ(state(), before);
}

TEST_F(StoreTest, GroupMembersMustBeOrgMembers) {
    GroupId team = 0;
    UserId stranger = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(team, tx.create_group(acme, "vision-team"));
        ORGSYNC_ASSIGN(stranger, tx.upsert_user("stranger@elsewhere.example", "Stranger"));
        return {};
    });
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.add_group_member(team, stranger, k_manual_source);
        },
        ErrorCode::not_a_member);
    // Nor a member of another org.
    const UserId globex_owner = user_id("boss@globex.com");
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.add_group_member(team, globex_owner, k_manual_source);
        },
        ErrorCode::not_a_member);
}

// ---------------------------------------------------------------------------
// Invariant 5: every project keeps an explicit admin.

TEST_F(StoreTest, RevokingTheLastExplicitProjectAdminIsRejected) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.revoke_project(vision, user_principal(owner), k_manual_source);
        },
        ErrorCode::last_project_admin);
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"ceo@acme.com admin"});
}

TEST_F(StoreTest, DemotingTheLastExplicitProjectAdminIsRejected) {
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.grant_project(vision, user_principal(owner), Level::write, k_manual_source);
        },
        ErrorCode::last_project_admin);
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"ceo@acme.com admin"});
}

TEST_F(StoreTest, RevokingAnAdminWorksOnceAnotherAdminIsGranted) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, user_principal(member), Level::admin, k_manual_source);
    });
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.revoke_project(vision, user_principal(owner), k_manual_source);
    });
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"member@acme.com admin"});
    // And now member@acme.com is the last one.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.revoke_project(vision, user_principal(member), k_manual_source);
        },
        ErrorCode::last_project_admin);
}

// An admin grant asserted by two sources stays when one of them revokes it.
TEST_F(StoreTest, RevokingOneSourcesAdminGrantKeepsTheOtherSources) {
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, user_principal(owner), Level::admin, "corp");
    });
    EXPECT_TRUE(succeeds(write("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.revoke_project(vision, user_principal(owner), "corp");
    })));
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"ceo@acme.com admin"});
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.revoke_project(vision, user_principal(owner), k_manual_source);
        },
        ErrorCode::last_project_admin);
}

TEST_F(StoreTest, RemovingTheMembershipOfTheLastProjectAdminIsRejected) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(
            tx.grant_project(vision, user_principal(member), Level::admin, k_manual_source));
        return tx.revoke_project(vision, user_principal(owner), k_manual_source);
    });
    // Ending the membership would cascade to the only admin grant.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, member, k_manual_source);
        },
        ErrorCode::last_project_admin);
    EXPECT_TRUE(membership_of(acme, member).has_value());
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"member@acme.com admin"});
}

TEST_F(StoreTest, ReplacingTheLastProjectAdminInOneWriteSucceeds) {
    const auto result = write([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.revoke_project(vision, user_principal(owner), k_manual_source));
        return tx.grant_project(vision, user_principal(member), Level::admin, k_manual_source);
    });
    EXPECT_TRUE(succeeds(result));
    EXPECT_EQ(grants_of(vision), std::vector<std::string>{"member@acme.com admin"});
}

// Invariant 5 is checked for the projects a write may have taken an admin
// from, not by a scan of the org: each way of losing the last admin is
// still caught when the write touches one project of many, and a write
// that touches several names the first by slug, as the scan did.
TEST_F(StoreTest, ALastProjectAdminIsStillCaughtAmongManyProjects) {
    UserId solo = 0;
    GroupId leads = 0;
    GroupId alone = 0;
    std::vector<ProjectId> projects;
    write_ok([&](Transaction& tx) -> Expected<void> {
        for (int i = 10; i < 50; ++i) {
            ProjectId project = 0;
            ORGSYNC_ASSIGN(project, tx.create_project(acme, "p" + std::to_string(i),
                                                      Visibility::private_, {}, owner));
            projects.push_back(project);
        }
        ORGSYNC_ASSIGN(solo,
                       add_member(tx, acme, "new@acme.com", UserType::internal, OrgRole::member));
        ORGSYNC_ASSIGN(leads, tx.create_group(acme, "leads"));
        ORGSYNC_ASSIGN(alone, tx.create_group(acme, "alone"));
        ORGSYNC_TRY(tx.add_group_member(leads, admin, k_manual_source));
        ORGSYNC_TRY(tx.add_group_member(alone, solo, k_manual_source));
        // p37: member@acme.com alone; p23: the group leads alone; p15: the
        // group alone, whose only member is new@acme.com.
        ORGSYNC_TRY(
            tx.grant_project(projects[27], user_principal(member), Level::admin, k_manual_source));
        ORGSYNC_TRY(
            tx.grant_project(projects[13], group_principal(leads), Level::admin, k_manual_source));
        ORGSYNC_TRY(
            tx.grant_project(projects[5], group_principal(alone), Level::admin, k_manual_source));
        for (std::size_t i : {27U, 13U, 5U}) {
            ORGSYNC_TRY(tx.revoke_project(projects[i], user_principal(owner), k_manual_source));
        }
        return {};
    });
    auto rejected_naming = [&](const test_support::Body& body, const std::string& subject) {
        const std::string before = state();
        auto result = write(body);
        ASSERT_TRUE(fails_with(result, ErrorCode::last_project_admin));
        EXPECT_EQ(result.error().subject, subject);
        EXPECT_NE(result.error().message.find("project " + subject.substr(5) + " of org acme"),
                  std::string::npos)
            << result.error().message;
        EXPECT_EQ(state(), before);
    };
    // A grant revoked or lowered.
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            return tx.revoke_project(projects[27], user_principal(member), k_manual_source);
        },
        "acme/p37");
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            return tx.grant_project(projects[13], group_principal(leads), Level::read,
                                    k_manual_source);
        },
        "acme/p23");
    // The admin group's last member leaves it; the group is deleted.
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            return tx.remove_group_member(leads, admin, k_manual_source);
        },
        "acme/p23");
    rejected_naming([&](Transaction& tx) -> Expected<void> { return tx.delete_group(alone); },
                    "acme/p15");
    // A membership ends: its user grants and group memberships go with it.
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, member, k_manual_source);
        },
        "acme/p37");
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            return tx.retract_membership(acme, solo, k_manual_source);
        },
        "acme/p15");
    // Three at once: the first by slug is named.
    rejected_naming(
        [&](Transaction& tx) -> Expected<void> {
            ORGSYNC_TRY(tx.retract_membership(acme, member, k_manual_source));
            ORGSYNC_TRY(tx.retract_membership(acme, solo, k_manual_source));
            return tx.delete_group(leads);
        },
        "acme/p15");

    // Writes that leave every project an admin pass: another project's
    // grants, a new member, a group member replaced in one write.
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(
            tx.grant_project(projects[30], user_principal(guest), Level::read, k_manual_source));
        ORGSYNC_TRY(discard(
            add_member(tx, acme, "ext@partner.example", UserType::external, OrgRole::guest)));
        ORGSYNC_TRY(tx.add_group_member(leads, member, k_manual_source));
        return tx.remove_group_member(leads, admin, k_manual_source);
    });
}

// ---------------------------------------------------------------------------
// Invariant 6: a grant to a non-member makes them a guest.

TEST_F(StoreTest, GrantingANonMemberCreatesAnExternalGuest) {
    UserId stranger = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(stranger, tx.upsert_user("stranger@elsewhere.example", "Stranger"));
        return tx.grant_project(vision, user_principal(stranger), Level::read, k_manual_source);
    });
    auto joined = membership_must(acme, stranger);
    EXPECT_EQ(joined.user_type, UserType::external);
    EXPECT_EQ(joined.role, OrgRole::guest);
    EXPECT_FALSE(joined.assertions.empty());
    auto read =
        decide(request("stranger@elsewhere.example", "acme", "project.resources.read", "vision"));
    EXPECT_TRUE(read.allow) << describe(read);
    EXPECT_EQ(read.role, OrgRole::guest) << describe(read);
}

TEST_F(StoreTest, GrantingANonMemberUsesTheGivenNewMemberType) {
    UserId contractor = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(contractor, tx.upsert_user("wf@labelco.example", "Contractor"));
        return tx.grant_project(vision, user_principal(contractor), Level::write, k_manual_source,
                                UserType::workforce);
    });
    auto joined = membership_must(acme, contractor);
    EXPECT_EQ(joined.user_type, UserType::workforce);
    EXPECT_EQ(joined.role, OrgRole::guest);
}

TEST_F(StoreTest, DatasetGrantToANonMemberCreatesAnExternalGuest) {
    UserId stranger = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        return discard(tx.create_dataset(acme, "street-scenes"));
    });
    const DatasetId dataset = test_support::dataset_id(store(), acme, "street-scenes");
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(stranger, tx.upsert_user("stranger@elsewhere.example", "Stranger"));
        return tx.grant_dataset(dataset, user_principal(stranger), DatasetAccess::read,
                                k_manual_source);
    });
    auto joined = membership_must(acme, stranger);
    EXPECT_EQ(joined.user_type, UserType::external);
    EXPECT_EQ(joined.role, OrgRole::guest);
    auto read = decide(request("stranger@elsewhere.example", "acme", "dataset.read", std::nullopt,
                               "street-scenes"));
    EXPECT_TRUE(read.allow) << describe(read);
}

// ---------------------------------------------------------------------------
// Invariant 8: internal in a workforce org -> workforce member elsewhere.

TEST_F(StoreTest, InternalOfAWorkforceOrgJoinsAnotherOrgAsWorkforce) {
    OrgId labelco = 0;
    UserId worker = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(labelco, tx.create_org("labelco", "Label Co", true, "lead@labelco.example"));
        ORGSYNC_ASSIGN(worker, add_member(tx, labelco, "wf@labelco.example", UserType::internal,
                                          OrgRole::member));
        return {};
    });
    EXPECT_TRUE(must(store().find_org("labelco"))->workforce);
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, user_principal(worker), Level::write, k_manual_source);
    });
    auto joined = membership_must(acme, worker);
    EXPECT_EQ(joined.user_type, UserType::workforce);
    EXPECT_EQ(joined.role, OrgRole::guest);
    EXPECT_EQ(membership_must(labelco, worker).user_type, UserType::internal);
}

// ---------------------------------------------------------------------------
// Several sources asserting the same membership.

TEST_F(StoreTest, MembershipStaysWhileAnotherSourceStillAssertsIt) {
    UserId person = 0;
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(person, tx.upsert_user("new@acme.com", "New"));
        return tx.assert_membership(acme, person,
                                    assertion("corp", UserType::internal, OrgRole::member));
    });
    write_ok("okta", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, person,
                                    assertion("okta", UserType::internal, OrgRole::guest));
    });
    auto both = membership_must(acme, person);
    EXPECT_EQ(both.role, OrgRole::member);
    EXPECT_EQ(sources_of(both), (std::vector<std::string>{"corp", "okta"}));

    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, person, "corp");
    });
    auto remaining = membership_must(acme, person);
    EXPECT_EQ(remaining.role, OrgRole::guest);
    EXPECT_EQ(sources_of(remaining), std::vector<std::string>{"okta"});
    auto decision = decide(request("new@acme.com", "acme", "org.metrics.read"));
    EXPECT_EQ(decision.role, OrgRole::guest) << describe(decision);

    write_ok("okta", [&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, person, "okta");
    });
    EXPECT_FALSE(membership_of(acme, person).has_value());
}

TEST_F(StoreTest, EffectiveTypeAndRoleAreTheHighestAsserted) {
    UserId person = 0;
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(person, tx.upsert_user("new@acme.com", "New"));
        return tx.assert_membership(acme, person,
                                    assertion("corp", UserType::external, OrgRole::guest));
    });
    write_ok("okta", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, person,
                                    assertion("okta", UserType::internal, OrgRole::member));
    });
    auto effective = membership_must(acme, person);
    EXPECT_EQ(effective.user_type, UserType::internal);
    EXPECT_EQ(effective.role, OrgRole::member);

    // Asserting again replaces that source's previous assertion.
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, person,
                                    assertion("corp", UserType::internal, OrgRole::admin));
    });
    auto promoted = membership_must(acme, person);
    EXPECT_EQ(promoted.role, OrgRole::admin);
    EXPECT_EQ(promoted.assertions.size(), 2U);
    auto invite = decide(request("new@acme.com", "acme", "org.users.invite"));
    EXPECT_TRUE(invite.allow) << describe(invite);
}

TEST_F(StoreTest, ManualAssertionSurvivesARetractByAnotherSource) {
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, member,
                                    assertion("corp", UserType::internal, OrgRole::member));
    });
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, member, "corp");
    });
    auto kept = membership_must(acme, member);
    EXPECT_EQ(kept.role, OrgRole::member);
    EXPECT_EQ(sources_of(kept), std::vector<std::string>{std::string(k_manual_source)});

    // Retracting what a source never asserted is a no-op.
    const std::string before = state();
    EXPECT_TRUE(succeeds(write("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.retract_membership(acme, guest, "corp");
    })));
    EXPECT_EQ(state(), before);
}

TEST_F(StoreTest, GrantStaysWhileAnotherSourceStillAssertsIt) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, user_principal(member), Level::read, k_manual_source);
    });
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.grant_project(vision, user_principal(member), Level::write, "corp");
    });
    EXPECT_EQ(grants_of(vision),
              (std::vector<std::string>{"ceo@acme.com admin", "member@acme.com write"}));
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.revoke_project(vision, user_principal(member), "corp");
    });
    EXPECT_EQ(grants_of(vision),
              (std::vector<std::string>{"ceo@acme.com admin", "member@acme.com read"}));
}

// ---------------------------------------------------------------------------
// Atomicity: a failed write leaves nothing behind.

TEST_F(StoreTest, WriteWhoseBodyFailsMidwayLeavesNothing) {
    const std::string before = state();
    const auto audit_before = audit_count(store());
    auto result = write([&](Transaction& tx) -> Expected<void> {
        OrgId org = 0;
        UserId user = 0;
        GroupId group = 0;
        ORGSYNC_ASSIGN(user, tx.upsert_user("stranger@elsewhere.example", "Stranger"));
        ORGSYNC_ASSIGN(org, tx.create_org("initech", "Initech", false, "boss@initech.example"));
        ORGSYNC_TRY(tx.assert_membership(
            org, user, assertion(k_manual_source, UserType::external, OrgRole::guest)));
        ORGSYNC_TRY(tx.assert_membership(
            acme, user, assertion(k_manual_source, UserType::external, OrgRole::guest)));
        ORGSYNC_ASSIGN(group, tx.create_group(acme, "vision-team"));
        ORGSYNC_TRY(tx.add_group_member(group, member, k_manual_source));
        ORGSYNC_TRY(
            tx.grant_project(vision, group_principal(group), Level::write, k_manual_source));
        ORGSYNC_TRY(tx.put_source_user(
            SourceUser{"corp", "u-1", "stranger@elsewhere.example", "Stranger", true, "{}"}));
        return fail(ErrorCode::not_found, "stop here");
    });
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, ErrorCode::not_found);
    EXPECT_EQ(result.error().message, "stop here");

    EXPECT_EQ(audit_count(store()), audit_before);
    EXPECT_EQ(state(), before);
    EXPECT_FALSE(must(store().find_user("stranger@elsewhere.example")).has_value());
    EXPECT_FALSE(must(store().find_user("boss@initech.example")).has_value());
    EXPECT_FALSE(must(store().find_org("initech")).has_value());
    EXPECT_FALSE(must(store().find_group(acme, "vision-team")).has_value());
    EXPECT_TRUE(must(store().list_source_users("corp")).empty());
    EXPECT_EQ(store().snapshot()->find_org("initech"), nullptr);
}

TEST_F(StoreTest, WriteWhoseCallFailsMidwayLeavesNothing) {
    const std::string before = state();
    auto result = write([&](Transaction& tx) -> Expected<void> {
        UserId user = 0;
        ORGSYNC_ASSIGN(user, tx.upsert_user("new@acme.com", "New"));
        ORGSYNC_TRY(tx.assert_membership(
            acme, user, assertion(k_manual_source, UserType::internal, OrgRole::member)));
        ORGSYNC_TRY(tx.grant_project(vision, user_principal(user), Level::admin, k_manual_source));
        // Fails: invariant 1.
        return tx.retract_membership(acme, owner, k_manual_source);
    });
    EXPECT_TRUE(fails_with(result, ErrorCode::owner_immutable));
    EXPECT_EQ(state(), before);
    EXPECT_FALSE(must(store().find_user("new@acme.com")).has_value());
}

// ---------------------------------------------------------------------------
// Persistence.

TEST_F(StoreTest, ReopeningKeepsEverythingAndAnswersTheSame) {
    write_ok([&](Transaction& tx) -> Expected<void> {
        return discard(tx.create_dataset(acme, "street-scenes"));
    });
    const DatasetId scenes = test_support::dataset_id(store(), acme, "street-scenes");
    write_ok([&](Transaction& tx) -> Expected<void> {
        GroupId team = 0;
        UserId contractor = 0;
        ORGSYNC_ASSIGN(team, tx.create_group(acme, "vision-team"));
        ORGSYNC_TRY(tx.add_group_member(team, member, k_manual_source));
        ORGSYNC_TRY(tx.grant_project(vision, group_principal(team), Level::write, k_manual_source));
        ORGSYNC_TRY(tx.create_project(acme, "open", Visibility::public_, {"a", "b"}, admin));
        ORGSYNC_TRY(tx.attach_dataset(scenes, vision));
        ORGSYNC_TRY(
            tx.grant_dataset(scenes, user_principal(guest), DatasetAccess::read, k_manual_source));
        ORGSYNC_ASSIGN(contractor, add_member(tx, globex, "wf@labelco.example", UserType::workforce,
                                              OrgRole::member));
        ORGSYNC_TRY(tx.set_external_id(member, ExternalId{"corp", "entryUUID", "uuid-1"}));
        ORGSYNC_TRY(tx.set_user_active(contractor, false));
        ORGSYNC_TRY(tx.put_source_user(
            SourceUser{"corp", "uuid-1", "Member@ACME.com", "Member", true, R"({"title":"eng"})"}));
        return tx.put_source_group(SourceGroup{
            "corp", "g-1", "cn=vision-team,ou=groups,dc=example,dc=com", "{}", {"uuid-1"}});
    });
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.assert_membership(acme, member,
                                    assertion("corp", UserType::internal, OrgRole::admin));
    });

    const std::vector<Request> requests = {
        request("member@acme.com", "acme", "org.users.invite"),
        request("member@acme.com", "acme", "project.resources.write", "vision"),
        request("guest@partner.example", "acme", "dataset.read", std::nullopt, "street-scenes"),
        request("guest@partner.example", "acme", "project.resources.write", "open"),
        request("guest@partner.example", "acme", "project.resources.read", "vision"),
        request("wf@labelco.example", "globex", "org.metrics.read"),
        request("ceo@acme.com", "acme", "org.delete"),
        request("boss@globex.com", "acme", "org.metrics.read"),
    };
    auto decisions = [&] {
        std::vector<std::string> out;
        for (const auto& req : requests) {
            out.push_back(req.user + " " + req.action + " -> " + describe(decide(req)));
        }
        return out;
    };
    auto mirror = [&] {
        std::vector<std::string> out;
        for (const auto& user : must(store().list_source_users("corp"))) {
            out.push_back("user " + user.external_id + " " + user.email + " " + user.display_name +
                          " " + (user.active ? "active" : "inactive") + " " + user.attributes);
        }
        for (const auto& group : must(store().list_source_groups("corp"))) {
            out.push_back("group " + group.external_id + " " + group.name + " " + group.attributes +
                          " " + test_support::join(sorted(group.member_ids)));
        }
        return sorted(std::move(out));
    };

    const std::string state_before = state();
    const auto decisions_before = decisions();
    const auto mirror_before = mirror();
    ASSERT_EQ(mirror_before.size(), 2U);
    const auto schema_before = store().schema_version();

    reopen();

    EXPECT_EQ(store().schema_version(), schema_before);
    EXPECT_EQ(store().schema_version(), Store::latest_schema_version());
    EXPECT_EQ(state(), state_before);
    EXPECT_EQ(decisions(), decisions_before);
    EXPECT_EQ(mirror(), mirror_before);
    auto by_external_id = must(store().find_user_by_external_id("corp", "entryUUID", "uuid-1"));
    ASSERT_TRUE(by_external_id.has_value());
    EXPECT_EQ(by_external_id->email, "member@acme.com");
}

// ---------------------------------------------------------------------------
// The source mirror.

TEST_F(StoreTest, SourceMirrorPutListDeleteRoundTrip) {
    const SourceUser ann{"corp", "uuid-ann", "Ann@ACME.com", "Ann", true, R"({"title":"eng"})"};
    const SourceUser bob{"corp", "uuid-bob", "bob@acme.com", "Bob", false, "{}"};
    const SourceUser carl{"okta", "00u1", "carl@acme.com", "Carl", true, "{}"};
    const SourceGroup team{"corp",
                           "g-team",
                           "cn=team,ou=groups,dc=example,dc=com",
                           R"({"description":"the team"})",
                           {"uuid-bob", "uuid-ann"}};
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_user(ann));
        ORGSYNC_TRY(tx.put_source_user(bob));
        ORGSYNC_TRY(tx.put_source_user(carl));
        return tx.put_source_group(team);
    });

    auto users_of = [&](std::string_view source) {
        auto users = must(store().list_source_users(source));
        std::sort(users.begin(), users.end(), [](const SourceUser& a, const SourceUser& b) {
            return a.external_id < b.external_id;
        });
        return users;
    };
    auto same_user = [](const SourceUser& a, const SourceUser& b) {
        return std::tie(a.source, a.external_id, a.email, a.display_name, a.active, a.attributes) ==
               std::tie(b.source, b.external_id, b.email, b.display_name, b.active, b.attributes);
    };

    auto corp_users = users_of("corp");
    ASSERT_EQ(corp_users.size(), 2U);
    EXPECT_TRUE(same_user(corp_users[0], ann)) << corp_users[0].email;
    EXPECT_TRUE(same_user(corp_users[1], bob)) << corp_users[1].email;
    auto okta_users = users_of("okta");
    ASSERT_EQ(okta_users.size(), 1U);
    EXPECT_TRUE(same_user(okta_users[0], carl));

    auto groups = must(store().list_source_groups("corp"));
    ASSERT_EQ(groups.size(), 1U);
    EXPECT_EQ(groups[0].source, "corp");
    EXPECT_EQ(groups[0].external_id, team.external_id);
    EXPECT_EQ(groups[0].name, team.name);
    EXPECT_EQ(groups[0].attributes, team.attributes);
    EXPECT_EQ(sorted(groups[0].member_ids), sorted(team.member_ids));
    EXPECT_TRUE(must(store().list_source_groups("okta")).empty());

    // Putting a record again replaces it.
    SourceUser ann_changed = ann;
    ann_changed.email = "ann.smith@acme.com";
    ann_changed.display_name = "Ann Smith";
    ann_changed.active = false;
    ann_changed.attributes = R"({"title":"lead"})";
    SourceGroup team_changed = team;
    team_changed.name = "cn=team2,ou=groups,dc=example,dc=com";
    team_changed.member_ids = {"uuid-ann"};
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_user(ann_changed));
        return tx.put_source_group(team_changed);
    });
    corp_users = users_of("corp");
    ASSERT_EQ(corp_users.size(), 2U);
    EXPECT_TRUE(same_user(corp_users[0], ann_changed)) << corp_users[0].email;
    groups = must(store().list_source_groups("corp"));
    ASSERT_EQ(groups.size(), 1U);
    EXPECT_EQ(groups[0].name, team_changed.name);
    EXPECT_EQ(groups[0].member_ids, std::vector<std::string>{"uuid-ann"});

    // Deleting removes only that source's record.
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.delete_source_user("corp", "uuid-bob"));
        return tx.delete_source_group("corp", "g-team");
    });
    corp_users = users_of("corp");
    ASSERT_EQ(corp_users.size(), 1U);
    EXPECT_EQ(corp_users[0].external_id, "uuid-ann");
    EXPECT_TRUE(must(store().list_source_groups("corp")).empty());
    EXPECT_EQ(users_of("okta").size(), 1U);

    // The mirror is not org state: no users or memberships came from it.
    EXPECT_FALSE(must(store().find_user("carl@acme.com")).has_value());
}

// ---------------------------------------------------------------------------
// Email canonicalisation through upsert_user.

TEST_F(StoreTest, EmailDomainCaseAndTrailingDotNameTheSameUser) {
    UserId first = 0;
    UserId second = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(first, tx.upsert_user("Ann@ACME.com", "Ann"));
        return {};
    });
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(second, tx.upsert_user("Ann@acme.com.", "Ann"));
        return {};
    });
    EXPECT_EQ(first, second);
    auto user = must(store().find_user("Ann@acme.com"));
    ASSERT_TRUE(user.has_value());
    EXPECT_EQ(user->id, first);
    EXPECT_EQ(user->email, "Ann@acme.com");
}

TEST_F(StoreTest, EmailLocalPartIsKeptAsGiven) {
    UserId upper = 0;
    UserId lower = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(upper, tx.upsert_user("Ann@acme.com", "Ann"));
        ORGSYNC_ASSIGN(lower, tx.upsert_user("ann@acme.com", "ann"));
        return {};
    });
    EXPECT_NE(upper, lower);
    EXPECT_EQ(must(store().find_user("Ann@acme.com"))->email, "Ann@acme.com");
    EXPECT_EQ(must(store().find_user("ann@acme.com"))->email, "ann@acme.com");
}

TEST_F(StoreTest, InternationalDomainIsStoredAsALabel) {
    UserId unicode = 0;
    UserId ascii = 0;
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(unicode, tx.upsert_user("ann@Bücher.example", "Ann"));
        return {};
    });
    auto user = must(store().find_user("ann@xn--bcher-kva.example"));
    ASSERT_TRUE(user.has_value());
    EXPECT_EQ(user->id, unicode);
    EXPECT_EQ(user->email, "ann@xn--bcher-kva.example");
    write_ok([&](Transaction& tx) -> Expected<void> {
        ORGSYNC_ASSIGN(ascii, tx.upsert_user("ann@xn--bcher-kva.example", "Ann"));
        return {};
    });
    EXPECT_EQ(ascii, unicode);
}

TEST_F(StoreTest, InvalidEmailIsInvalidArgument) {
    for (const std::string address :
         {"", "ann", "ann@", "@acme.com", "ann@acme@com", "ann smith@acme.com",
          "=?utf-8?q?ann?=@acme.com", "ann@-acme.com", "ann@acme..com", "ann\x01@acme.com"}) {
        SCOPED_TRACE("address \"" + address + "\"");
        expect_rejected(
            [&](Transaction& tx) -> Expected<void> {
                return discard(tx.upsert_user(address, "Ann"));
            },
            ErrorCode::invalid_argument);
    }
    // Nor can one become an owner.
    expect_rejected(
        [&](Transaction& tx) -> Expected<void> {
            return discard(tx.create_org("initech", "Initech", false, "not-an-email"));
        },
        ErrorCode::invalid_argument);
}

// The bulk calls a sync uses leave the store, the snapshot and the audit log
// exactly as the single calls they stand for, entry by entry: new users,
// users who exist with or without a membership, an address given twice or
// in another spelling, an id another user holds, a member added twice.
TEST_F(StoreTest, BulkMemberCallsEqualTheSingleCalls) {
    auto prepare = [](Transaction& tx) -> Expected<void> {
        OrgId org = tx.find_org_id("acme").value().value_or(0);
        ORGSYNC_TRY(tx.create_group(org, "cn=team"));
        UserId dan = 0;
        ORGSYNC_ASSIGN(dan, tx.upsert_user("dan@globex.com", "Dan"));
        UserId carol = 0;
        ORGSYNC_ASSIGN(carol, tx.upsert_user("carol@globex.com", "Carol"));
        ORGSYNC_TRY(tx.set_external_id(carol, ExternalId{"corp", "id", "held"}));
        (void)dan;
        return {};
    };
    const std::vector<NewMember> members{
        {"new1@acme.com", "New One", "n1", UserType::internal, OrgRole::member},
        {"Eve@ACME.com", "Eve", "n2", UserType::internal, OrgRole::member},
        {"member@acme.com", "", "m1", UserType::internal, OrgRole::admin},  // a member already
        {"dan@globex.com", "Dan", "d1", UserType::external, OrgRole::guest},
        {"new3@partner.example", "", "held", UserType::external, OrgRole::guest},
        {"new1@acme.com", "Renamed", "n1", UserType::internal, OrgRole::member},  // again
        {"new4@acme.com", "Four", "", UserType::internal, OrgRole::member},
    };
    const std::vector<std::string> group_members{"new1@acme.com", "member@acme.com", "Eve@acme.com",
                                                 "new1@acme.com"};

    auto second = must(Store::open(m_dir->path() / "single.db"), "open");
    // Both stores start alike: the fixture's state, then `prepare`.
    auto seed = [&](Store& store) {
        must(store.write(k_manual_source, [&](Transaction& tx) -> Expected<void> {
            if (&store == second.get()) {
                ORGSYNC_TRY(tx.create_org("acme", "Acme Corp", false, "ceo@acme.com"));
                ORGSYNC_TRY(tx.upsert_user("ceo@acme.com", "Ceo"));
                OrgId org = tx.find_org_id("acme").value().value_or(0);
                ORGSYNC_TRY(
                    add_member(tx, org, "admin@acme.com", UserType::internal, OrgRole::admin));
                ORGSYNC_TRY(
                    add_member(tx, org, "member@acme.com", UserType::internal, OrgRole::member));
                ORGSYNC_TRY(add_member(tx, org, "guest@partner.example", UserType::external,
                                       OrgRole::guest));
                UserId ceo = tx.find_user_id("ceo@acme.com").value().value_or(0);
                ORGSYNC_TRY(tx.create_project(org, "vision", Visibility::private_, {"cv"}, ceo));
                ORGSYNC_TRY(tx.create_org("globex", "Globex", false, "boss@globex.com"));
            }
            return prepare(tx);
        }));
    };
    seed(store());
    seed(*second);
    ASSERT_EQ(dump_state(store()), dump_state(*second));
    std::int64_t from = last_audit_id(store());

    must(store().write("corp", [&](Transaction& tx) -> Expected<void> {
        OrgId org = tx.find_org_id("acme").value().value_or(0);
        ORGSYNC_TRY(tx.add_members(org, "corp", members));
        GroupId team = tx.find_group_id(org, "cn=team").value().value_or(0);
        return tx.add_group_members(team, "corp", group_members);
    }));
    must(second->write("corp", [&](Transaction& tx) -> Expected<void> {
        OrgId org = tx.find_org_id("acme").value().value_or(0);
        for (const auto& entry : members) {
            UserId user = 0;
            ORGSYNC_ASSIGN(user, tx.upsert_user(entry.email, entry.display_name));
            if (!entry.external_id.empty()) {
                auto set = tx.set_external_id(
                    user, ExternalId{"corp", "id", std::string(entry.external_id)});
                if (!set && set.error().code != ErrorCode::already_exists) {
                    return set;
                }
            }
            ORGSYNC_TRY(tx.assert_membership(
                org, user, MembershipAssertion{"corp", entry.user_type, entry.role}));
        }
        GroupId team = tx.find_group_id(org, "cn=team").value().value_or(0);
        for (const auto& email : group_members) {
            UserId user = tx.find_user_id(email).value().value_or(0);
            ORGSYNC_TRY(tx.add_group_member(team, user, "corp"));
        }
        return {};
    }));

    std::vector<std::string> extra{"new1@acme.com",        "Eve@acme.com",  "dan@globex.com",
                                   "new3@partner.example", "new4@acme.com", "carol@globex.com"};
    EXPECT_EQ(dump_state(store(), extra), dump_state(*second, extra));
    auto events = [from](const Store& store) {
        std::vector<std::string> lines;
        for (const auto& event : audit_after(store, from)) {
            lines.push_back(event.source + " " + event.kind + " " + event.org + " " +
                            event.subject + " " + event.detail);
        }
        return lines;
    };
    EXPECT_EQ(events(store()), events(*second));
    EXPECT_FALSE(events(store()).empty());
}

// A bulk call's events reach the outbox in batch rows, each event keeping
// its own id.
TEST_F(StoreTest, BulkCallEventsAreBatchedInTheOutboxWithTheirOwnIds) {
    auto before = must(store().outbox_depth(), "outbox_depth");
    std::vector<NewMember> members;
    std::vector<std::string> emails;
    for (int i = 0; i < 1500; ++i) {
        emails.push_back("bulk" + std::to_string(i) + "@acme.com");
    }
    for (const auto& email : emails) {
        members.push_back(NewMember{email, "", "", UserType::internal, OrgRole::member});
    }
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        OrgId org = tx.find_org_id("acme").value().value_or(0);
        return tx.add_members(org, "corp", members);
    });
    // 1,500 new users and memberships: 3,000 events in 3 rows.
    EXPECT_EQ(must(store().outbox_depth(), "outbox_depth") - before, 3);
    EXPECT_EQ(audit_count(store()) > 3000u, true);
}

TEST_F(StoreTest, MirroredMembersAreKeptSortedAndUniqueAndFoundByMember) {
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "g2", "cn=b", "{}", {"u3", "u1"}}));
        ORGSYNC_TRY(
            tx.put_source_group(SourceGroup{"corp", "g1", "cn=a", "{}", {"u2", "u1", "u2", ""}}));
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "g0", "cn=empty", "{}", {}}));
        return tx.put_source_group(SourceGroup{"okta", "g9", "cn=a", "{}", {"u1"}});
    });
    auto groups = must(store().list_source_groups("corp"));
    ASSERT_EQ(groups.size(), 3U);
    EXPECT_TRUE(groups[0].member_ids.empty());
    EXPECT_EQ(groups[1].member_ids, (std::vector<std::string>{"", "u1", "u2"}));
    EXPECT_EQ(groups[2].member_ids, (std::vector<std::string>{"u1", "u3"}));
    auto found = must(store().find_source_groups("corp", {"g2", "g1"}, true));
    ASSERT_EQ(found.size(), 2U);
    EXPECT_EQ(found[0].member_ids, groups[1].member_ids);
    EXPECT_EQ(found[1].member_ids, groups[2].member_ids);

    using Pairs = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(must(store().source_memberships_of("corp", {"u3", "u1", "nobody", "u1"})),
              (Pairs{{"g1", "u1"}, {"g2", "u1"}, {"g2", "u3"}}));
    EXPECT_TRUE(must(store().source_memberships_of("corp", {})).empty());

    // Digests of the stored groups match those of the records written.
    auto digests = must(store().source_group_digests("corp"));
    EXPECT_EQ(digests.at("g1"),
              mirror_digest(SourceGroup{"corp", "g1", "cn=a", "{}", {"u1", "u2", ""}}));
    EXPECT_EQ(digests.at("g0"), mirror_digest(SourceGroup{"corp", "g0", "cn=empty", "{}", {}}));

    auto nul = store().write("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.put_source_group(
            SourceGroup{"corp", "g3", "cn=c", "{}", {std::string("u\0x", 3)}});
    });
    ASSERT_FALSE(nul);
    EXPECT_EQ(nul.error().code, ErrorCode::invalid_argument);
}

// The member index answers source_memberships_of as the member lists
// stand after every kind of change: members gained and lost, a group
// deleted, more members than one multi-row insert holds.
TEST_F(StoreTest, TheMemberIndexFollowsTheMemberLists) {
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    std::vector<std::string> many;
    for (int i = 0; i < 300; ++i) {
        many.push_back("m" + std::to_string(1000 + i));
    }
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(
            tx.put_source_group(SourceGroup{"corp", "g1", "cn=a", "{}", {"u1", "u2", "u3"}}));
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "g2", "cn=b", "{}", {"u2"}}));
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "big", "cn=big", "{}", many}));
        return tx.put_source_group(SourceGroup{"okta", "g1", "cn=a", "{}", {"u1"}});
    });
    EXPECT_EQ(must(store().source_memberships_of("corp", {"u1", "u2", "u3", "m1299"})),
              (Pairs{{"big", "m1299"}, {"g1", "u1"}, {"g1", "u2"}, {"g2", "u2"}, {"g1", "u3"}}));

    // g1 loses u1 and u2 and gains u4; big keeps one member; g2 goes.
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "g1", "cn=a", "{}", {"u4", "u3"}}));
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "big", "cn=big", "{}", {"m1150"}}));
        return tx.delete_source_group("corp", "g2");
    });
    EXPECT_EQ(must(store().source_memberships_of(
                  "corp", {"u1", "u2", "u3", "u4", "m1000", "m1150", "m1299"})),
              (Pairs{{"big", "m1150"}, {"g1", "u3"}, {"g1", "u4"}}));
    EXPECT_EQ(must(store().source_memberships_of("okta", {"u1"})), (Pairs{{"g1", "u1"}}));

    // A write that fails leaves the index as it was.
    auto failed = store().write("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_group(SourceGroup{"corp", "g1", "cn=a", "{}", {"u9"}}));
        return fail(ErrorCode::invalid_argument, "rolled back");
    });
    EXPECT_FALSE(failed);
    EXPECT_EQ(must(store().source_memberships_of("corp", {"u3", "u9"})), (Pairs{{"g1", "u3"}}));
}

TEST(StoreMigrationTest, MirroredMembersOfAnOlderFileArePackedPerGroup) {
    test_support::TempDir dir;
    const auto path = dir.path() / "store.db";
    {
        SQLite::Database db(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        for (const auto& migration : schema::migrations()) {
            if (migration.version <= 4) {
                db.exec(std::string(migration.sql));
            }
        }
        db.exec("PRAGMA user_version = 4");
        db.exec(
            "INSERT INTO source_groups (source, external_id, name) VALUES ('corp', 'g1', 'cn=a'), "
            "('corp', 'g2', 'cn=empty'), ('okta', 'g1', 'cn=a')");
        db.exec(
            "INSERT INTO source_group_members VALUES ('corp', 'g1', 'u2'), ('corp', 'g1', 'u10'), "
            "('corp', 'g1', 'u1'), ('okta', 'g1', 'x')");
    }
    auto store = Store::open(path);
    ASSERT_TRUE(store) << store.error().message;
    auto groups = must((*store)->list_source_groups("corp"));
    ASSERT_EQ(groups.size(), 2U);
    EXPECT_EQ(groups[0].member_ids, (std::vector<std::string>{"u1", "u10", "u2"}));
    EXPECT_TRUE(groups[1].member_ids.empty());
    EXPECT_EQ(must((*store)->list_source_groups("okta"))[0].member_ids,
              (std::vector<std::string>{"x"}));
    EXPECT_EQ(must((*store)->source_group_digests("corp")).at("g1"),
              mirror_digest(SourceGroup{"corp", "g1", "cn=a", "{}", {"u2", "u1", "u10"}}));
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(must((*store)->source_memberships_of("corp", {"u10", "u1", "x"})),
              (Pairs{{"g1", "u1"}, {"g1", "u10"}}));
    EXPECT_EQ(must((*store)->source_memberships_of("okta", {"x"})), (Pairs{{"g1", "x"}}));
}

TEST_F(StoreTest, TheGenerationMovesWithEveryWriteThatChangesARow) {
    const auto before = must(store().generation());
    write_ok([&](Transaction&) -> Expected<void> { return {}; });
    EXPECT_EQ(must(store().generation()), before);  // nothing written
    auto dry = store().check_write("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.put_source_user(SourceUser{"corp", "u1", "a@acme.com", "", true, "{}"});
    });
    ASSERT_TRUE(dry) << dry.error().message;
    EXPECT_EQ(must(store().generation()), before);  // rolled back
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.put_source_user(SourceUser{"corp", "u1", "a@acme.com", "", true, "{}"});
    });
    EXPECT_EQ(must(store().generation()), before + 1);
    auto failed = store().write("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_user(SourceUser{"corp", "u2", "b@acme.com", "", true, "{}"}));
        return fail(ErrorCode::invalid_argument, "rolled back");
    });
    EXPECT_FALSE(failed);
    EXPECT_EQ(must(store().generation()), before + 1);
}

// Records that differ in one byte, in where a field ends, or by trailing
// NUL bytes (a field's last word is zero-padded) have distinct digests.
TEST(MirrorDigestTest, NearRecordsDigestApart) {
    std::vector<MirrorDigest> digests;
    const auto add = [&](std::string email, std::string name, std::string attributes) {
        digests.push_back(mirror_digest(SourceUser{"corp", "u1", std::move(email), std::move(name),
                                                   true, std::move(attributes)}));
    };
    for (std::size_t length = 0; length <= 24; ++length) {
        std::string text;
        for (std::size_t i = 0; i < length; ++i) {
            text.push_back(static_cast<char>('a' + i));
        }
        add(text, "", "{}");
        add(text + std::string(1, '\0'), "", "{}");
        for (std::size_t at = 0; at < length; ++at) {
            std::string changed = text;
            changed[at] = 'Z';
            add(changed, "", "{}");
        }
        if (length > 0) {
            add(text.substr(1), text.substr(0, 1), "{}");  // the first byte moved to the next field
        }
        if (length > 1) {
            add(text.substr(0, length - 1), text.substr(length - 1), "{}");
        }
    }
    digests.push_back(mirror_digest(SourceUser{"corp", "u1", "a", "", false, "{}"}));
    std::ranges::sort(digests, [](const MirrorDigest& a, const MirrorDigest& b) {
        return std::pair(a.low, a.high) < std::pair(b.low, b.high);
    });
    EXPECT_EQ(std::ranges::adjacent_find(digests), digests.end());
}

// A group's members digest as a set, whether given sorted or not.
TEST(MirrorDigestTest, GroupMembersDigestAsASet) {
    const auto digest = [](std::vector<std::string> members) {
        return mirror_digest(SourceGroup{"corp", "g1", "cn=g1", "{}", std::move(members)});
    };
    const MirrorDigest sorted = digest({"u1", "u2", "u3"});
    EXPECT_EQ(digest({"u3", "u1", "u2"}), sorted);
    EXPECT_EQ(digest({"u1", "u2", "u2", "u3"}), sorted);
    EXPECT_EQ(digest({"u2", "u1", "u3", "u1"}), sorted);
    EXPECT_NE(digest({"u1", "u2"}), sorted);
    EXPECT_NE(digest({"u1", "u2", "u4"}), sorted);
}

// A whole mirror's digest: the same records in another order digest the
// same; a record changed, contents swapped between ids, a record given
// twice instead of another, or one missing do not.
TEST(MirrorDigestTest, AMirrorDigestsAsItsSetOfRecords) {
    const std::vector<SourceUser> users{{"corp", "u1", "a@x.com", "A", true, "{}"},
                                        {"corp", "u2", "b@x.com", "B", true, "{}"},
                                        {"corp", "u3", "c@x.com", "C", false, "{}"}};
    const std::vector<SourceGroup> groups{{"corp", "g1", "cn=g1", "{}", {"u1", "u2"}},
                                          {"corp", "g2", "cn=g2", "{}", {}}};
    const MirrorDigest digest = mirror_set_digest(users, groups);

    std::vector<SourceUser> reordered(users.rbegin(), users.rend());
    std::vector<SourceGroup> regrouped(groups.rbegin(), groups.rend());
    regrouped[1].member_ids = {"u2", "u1"};
    EXPECT_EQ(mirror_set_digest(reordered, regrouped), digest);

    std::vector<std::vector<SourceUser>> other_users(4, users);
    other_users[0][2].active = true;
    std::swap(other_users[1][0].external_id, other_users[1][1].external_id);
    other_users[2][2] = other_users[2][0];  // u1 twice, u3 gone
    other_users[3].pop_back();
    for (const auto& changed : other_users) {
        EXPECT_NE(mirror_set_digest(changed, groups), digest);
    }
    std::vector<SourceGroup> other_groups = groups;
    other_groups[0].member_ids.pop_back();
    EXPECT_NE(mirror_set_digest(users, other_groups), digest);
    EXPECT_NE(mirror_set_digest(users, {}), digest);
    EXPECT_NE(mirror_set_digest({}, {}), digest);
}

// A mirror large enough that its groups are summed on a second thread
// digests as the sum of its users' and its groups' digests, whatever the
// order, and still sees a single member changed.
TEST(MirrorDigestTest, ALargeMirrorDigestsAsTheSumOfItsParts) {
    std::vector<SourceUser> users;
    for (int i = 0; i < 2000; ++i) {
        const std::string id = "u" + std::to_string(i);
        users.push_back({"corp", id, id + "@x.com", "User " + id, i % 7 != 0, "{}"});
    }
    std::vector<SourceGroup> groups;
    for (int g = 0; g < 30; ++g) {
        SourceGroup group{"corp", "g" + std::to_string(g), "cn=g" + std::to_string(g), "{}", {}};
        for (int i = 0; i < 2000; ++i) {
            group.member_ids.push_back("u" + std::to_string((i * 7 + g) % 2000));
        }
        groups.push_back(std::move(group));
    }
    const MirrorDigest whole = mirror_set_digest(users, groups);
    const MirrorDigest of_users = mirror_set_digest(users, {});
    const MirrorDigest of_groups = mirror_set_digest({}, groups);
    EXPECT_EQ(whole.low, of_users.low + of_groups.low);
    EXPECT_EQ(whole.high, of_users.high + of_groups.high);

    std::vector<SourceGroup> reordered(groups.rbegin(), groups.rend());
    std::reverse(users.begin(), users.end());
    EXPECT_EQ(mirror_set_digest(users, reordered), whole);
    reordered[5].member_ids[1000] = "u1";
    EXPECT_NE(mirror_set_digest(users, reordered), whole);
}

TEST_F(StoreTest, ASettledSourceStaysSettledOnlyWhileNothingIsWritten) {
    auto generation = must(store().generation());
    EXPECT_EQ(must(store().settled_summary("corp", "k1", generation)), std::nullopt);
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        ORGSYNC_TRY(tx.put_source_user(SourceUser{"corp", "u1", "a@acme.com", "", true, "{}"}));
        return tx.mark_settled("corp", "k1", generation, "counts");
    });
    generation = must(store().generation());
    EXPECT_EQ(must(store().settled_summary("corp", "k1", generation)), "counts");
    EXPECT_EQ(must(store().settled_summary("corp", "k2", generation)), std::nullopt);
    EXPECT_EQ(must(store().settled_summary("okta", "k1", generation)), std::nullopt);
    EXPECT_EQ(must(store().settled_summary("corp", "k1", generation - 1)), std::nullopt);

    // Settled again on its own generation; any other write ends it.
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.mark_settled("corp", "k1", generation, "again");
    });
    generation = must(store().generation());
    EXPECT_EQ(must(store().settled_summary("corp", "k1", generation)), "again");
    write_ok([&](Transaction& tx) -> Expected<void> {
        auto added = add_member(tx, acme, "new@acme.com", UserType::internal, OrgRole::member);
        if (!added) {
            return std::unexpected(added.error());
        }
        return {};
    });
    generation = must(store().generation());
    EXPECT_EQ(must(store().settled_summary("corp", "k1", generation)), std::nullopt);

    // A mark made on a stale generation records nothing.
    write_ok("corp", [&](Transaction& tx) -> Expected<void> {
        return tx.mark_settled("corp", "k1", generation - 1, "stale");
    });
    EXPECT_EQ(must(store().settled_summary("corp", "k1", must(store().generation()))),
              std::nullopt);
}

}  // namespace
}  // namespace orgsync::directory
