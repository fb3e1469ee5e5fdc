// Email-domain auto-join (DESIGN §1) through the one code path shared by
// user.signup and user.email_changed: canonical addresses (case, IDN,
// trailing dot), exact and subdomain matching, look-alike domains, verified
// addresses only, moving into, out of and between domains, and the
// assertions of other sources surviving a move. Runs against a real SQLite
// store in a fresh temporary directory per test.

#include "sync/auto_join.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "directory/email.hpp"
#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::sync {
namespace {

using directory::AuditEvent;
using directory::ErrorCode;
using directory::Expected;
using directory::Membership;
using directory::OrgId;
using directory::OrgRole;
using directory::Transaction;
using directory::UserId;
using directory::UserType;
using directory::test_support::describe;
using directory::test_support::dump_state;
using directory::test_support::fails_with;
using directory::test_support::must;
using directory::test_support::request;
using directory::test_support::succeeds;

using Strings = std::vector<std::string>;

mapping::DomainRule domain_rule(std::string name, bool include_subdomains, UserType type,
                                OrgRole role) {
    mapping::DomainRule rule;
    rule.name = std::move(name);
    rule.include_subdomains = include_subdomains;
    rule.user_type = type;
    rule.role = role;
    return rule;
}

mapping::OrgMapping org_mapping(std::string slug, std::string name, bool workforce,
                                std::string owner, std::vector<mapping::DomainRule> domains) {
    mapping::OrgMapping org;
    org.slug = std::move(slug);
    org.name = std::move(name);
    org.workforce = workforce;
    org.owner = std::move(owner);
    org.domains = std::move(domains);
    return org;
}

// acme.com (and its subdomains) are acme's internal members; labelers.example
// supplies acme workforce guests. initech.com, without subdomains, makes
// internal admins. labelco is a workforce org with its own domain. bücher's
// domain is stored as its A-label. ghost is in the mapping but has not been
// synced into the store.
mapping::Mapping test_mapping() {
    mapping::Mapping result;
    result.file = "mapping.toml";
    result.orgs = {
        org_mapping("acme", "Acme Corp", false, "ceo@acme.com",
                    {domain_rule("acme.com", true, UserType::internal, OrgRole::member),
                     domain_rule("labelers.example", false, UserType::workforce, OrgRole::guest)}),
        org_mapping("initech", "Initech", false, "boss@initech.com",
                    {domain_rule("initech.com", false, UserType::internal, OrgRole::admin)}),
        org_mapping("labelco", "LabelCo", true, "lead@labelco.example",
                    {domain_rule("labelco.example", false, UserType::internal, OrgRole::member)}),
        org_mapping(
            "buecher", "Bücher", false, "owner@xn--bcher-kva.example",
            {domain_rule("xn--bcher-kva.example", false, UserType::internal, OrgRole::member)}),
        org_mapping("ghost", "Ghost", false, "boo@ghost.example",
                    {domain_rule("ghost.example", false, UserType::internal, OrgRole::member)}),
    };
    return result;
}

AddressEvent signup(std::string email, bool verified = true, std::string name = "") {
    return AddressEvent{std::move(email), verified, std::move(name), std::nullopt};
}

AddressEvent email_changed(std::string previous, std::string email, bool verified = true) {
    return AddressEvent{std::move(email), verified, "", std::move(previous)};
}

class AutoJoinTest : public directory::test_support::StoreFixture {
  protected:
    void SetUp() override {
        directory::test_support::StoreFixture::SetUp();
        // What a sync does first: create the mapping's orgs (all but ghost).
        write_ok("manual", [&](Transaction& tx) -> Expected<void> {
            for (const auto& org : m_mapping.orgs) {
                if (org.slug == "ghost") {
                    continue;
                }
                auto created = tx.create_org(org.slug, org.name, org.workforce, org.owner);
                if (!created) {
                    return std::unexpected(created.error());
                }
            }
            return {};
        });
    }

    Expected<AutoJoinResult> apply(const AddressEvent& event) {
        return apply_address(store(), m_mapping, event);
    }

    AutoJoinResult apply_ok(const AddressEvent& event) {
        auto result = apply(event);
        if (!result) {
            throw std::runtime_error("apply_address(" + event.email +
                                     ") failed: " + describe(result.error()));
        }
        return *std::move(result);
    }

    OrgId org_id(std::string_view slug) {
        auto org = must(store().find_org(slug), "find_org");
        if (!org) {
            throw std::runtime_error("no org " + std::string(slug));
        }
        return org->id;
    }

    std::optional<Membership> member(std::string_view org, std::string_view email) {
        auto user = must(store().find_user(email), "find_user");
        if (!user) {
            return std::nullopt;
        }
        return membership_of(org_id(org), user->id);
    }

    // "type/role asserted by source:type/role,..." or "none".
    std::string membership_text(std::string_view org, std::string_view email) {
        auto found = member(org, email);
        if (!found) {
            return "none";
        }
        Strings assertions;
        for (const auto& item : found->assertions) {
            assertions.push_back(item.source + ":" + std::string(to_string(item.user_type)) + "/" +
                                 std::string(to_string(item.role)));
        }
        std::sort(assertions.begin(), assertions.end());
        return std::string(to_string(found->user_type)) + "/" +
               std::string(to_string(found->role)) + " asserted by " +
               directory::test_support::join(assertions);
    }

    // The orgs (slugs, sorted) where `email` is a member.
    Strings orgs_of(std::string_view email) {
        Strings slugs;
        for (const auto& org : must(store().list_orgs(), "list_orgs")) {
            auto user = must(store().find_user(email), "find_user");
            if (user && membership_of(org.id, user->id)) {
                slugs.push_back(org.slug);
            }
        }
        std::sort(slugs.begin(), slugs.end());
        return slugs;
    }

    // The admin API asserting a membership (ids are read before the write:
    // a write body cannot read the store).
    void assert_manual(std::string_view org, std::string_view email, UserType type, OrgRole role) {
        const OrgId org_ref = org_id(org);
        const UserId user = user_id(email);
        write_ok("manual", [&](Transaction& tx) -> Expected<void> {
            return tx.assert_membership(org_ref, user,
                                        directory::MembershipAssertion{"manual", type, role});
        });
    }

    // Everything observable, including users that belong to no org.
    std::string state(const Strings& emails = {}) { return dump_state(store(), emails); }

    mapping::Mapping m_mapping = test_mapping();
};

// ---- canonical addresses -----------------------------------------------------

TEST_F(AutoJoinTest, UpperCaseDomainJoinsWithTheCanonicalEmail) {
    auto result = apply_ok(signup("Bob@ACME.COM", true, "Bob"));

    EXPECT_EQ(result.email, "Bob@acme.com");
    EXPECT_EQ(result.joined, Strings{"acme"});
    EXPECT_EQ(result.left, Strings{});
    EXPECT_EQ(result.reason, "joined acme as internal member via domain acme.com");
    EXPECT_EQ(membership_text("acme", "Bob@acme.com"),
              "internal/member asserted by signup:internal/member");
    auto user = must(store().find_user("Bob@acme.com"));
    ASSERT_TRUE(user);
    EXPECT_EQ(user->display_name, "Bob");
}

TEST_F(AutoJoinTest, SameAddressInAnotherSpellingIsTheSameUserAndChangesNothing) {
    apply_ok(signup("Bob@ACME.COM", true, "Bob"));
    const UserId bob = user_id("Bob@acme.com");
    const std::string before = state();

    for (const char* spelling : {"Bob@acme.com", "Bob@Acme.Com.", "Bob@ACME.COM"}) {
        auto result = apply_ok(signup(spelling));
        EXPECT_EQ(result.email, "Bob@acme.com") << spelling;
        EXPECT_EQ(result.joined, Strings{}) << spelling;
        EXPECT_EQ(result.reason, "already in acme as internal member via domain acme.com")
            << spelling;
    }
    EXPECT_EQ(user_id("Bob@acme.com"), bob);
    EXPECT_EQ(state(), before) << "a repeated signup writes nothing, not even audit events";
}

TEST_F(AutoJoinTest, LocalPartKeepsItsCase) {
    apply_ok(signup("Bob@ACME.COM"));
    apply_ok(signup("bob@acme.com"));

    EXPECT_NE(user_id("Bob@acme.com"), user_id("bob@acme.com"));
    EXPECT_EQ(orgs_of("bob@acme.com"), Strings{"acme"});
}

TEST_F(AutoJoinTest, UnicodeAndALabelDomainAreTheSameUserAndOrg) {
    auto unicode = apply_ok(signup("ann@Bücher.example"));
    EXPECT_EQ(unicode.email, "ann@xn--bcher-kva.example");
    EXPECT_EQ(unicode.joined, Strings{"buecher"});
    EXPECT_EQ(unicode.reason, "joined buecher as internal member via domain xn--bcher-kva.example");
    const UserId ann = user_id("ann@xn--bcher-kva.example");

    auto a_label = apply_ok(signup("ann@xn--bcher-kva.example"));
    EXPECT_EQ(a_label.email, "ann@xn--bcher-kva.example");
    EXPECT_EQ(a_label.joined, Strings{});
    EXPECT_EQ(user_id("ann@xn--bcher-kva.example"), ann);
    EXPECT_EQ(orgs_of("ann@xn--bcher-kva.example"), Strings{"buecher"});
    EXPECT_EQ(must(store().list_members(org_id("buecher"))).size(), 2u) << "owner and ann";
}

TEST_F(AutoJoinTest, UpperCaseUnicodeDomainIsLowerCasedBeforeMatching) {
    auto result = apply_ok(signup("carl@BÜCHER.EXAMPLE"));
    EXPECT_EQ(result.email, "carl@xn--bcher-kva.example");
    EXPECT_EQ(result.joined, Strings{"buecher"});
}

// ---- matching ------------------------------------------------------------------

TEST_F(AutoJoinTest, SubdomainJoinsWhereTheDomainIncludesSubdomains) {
    auto result = apply_ok(signup("dev@eng.acme.com"));
    EXPECT_EQ(result.joined, Strings{"acme"});
    EXPECT_EQ(result.reason,
              "joined acme as internal member via domain acme.com (subdomain eng.acme.com)");

    auto deeper = apply_ok(signup("ops@eu.eng.ACME.com"));
    EXPECT_EQ(deeper.email, "ops@eu.eng.acme.com");
    EXPECT_EQ(deeper.joined, Strings{"acme"});
}

TEST_F(AutoJoinTest, SubdomainJoinsNothingWhereTheDomainExcludesThem) {
    auto result = apply_ok(signup("dev@eng.initech.com"));
    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.reason, "domain eng.initech.com belongs to no org");
    EXPECT_EQ(orgs_of("dev@eng.initech.com"), Strings{});

    auto exact = apply_ok(signup("dev@initech.com"));
    EXPECT_EQ(exact.joined, Strings{"initech"});
}

class AutoJoinLookAlikeTest : public AutoJoinTest,
                              public ::testing::WithParamInterface<std::string> {};

TEST_P(AutoJoinLookAlikeTest, JoinsNothing) {
    auto result = apply_ok(signup(GetParam()));
    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.reason, "domain " + std::string(directory::email_domain(result.email)) +
                                 " belongs to no org");
    EXPECT_EQ(orgs_of(result.email), Strings{});
}

INSTANTIATE_TEST_SUITE_P(Domains, AutoJoinLookAlikeTest,
                         ::testing::Values("bob@acme.com.evil.example", "bob@evilacme.com",
                                           "bob@acme.co", "bob@acme.com.co",
                                           "acme.com@evil.example", "bob@xacme.com",
                                           "bob@initech.com.acme.example",
                                           "bob@bucher.example",  // ü folded to u
                                           "bob@xn--bcher-kva.example.com",
                                           "bob@\xd0\xb0"
                                           "cme.com"));  // Cyrillic а

// ---- verified addresses only -----------------------------------------------------

TEST_F(AutoJoinTest, UnverifiedAddressJoinsNothing) {
    auto result = apply_ok(signup("Eve@ACME.com", false, "Eve"));

    EXPECT_EQ(result.email, "Eve@acme.com");
    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.left, Strings{});
    EXPECT_EQ(result.reason, "address not verified: no org joined");
    EXPECT_EQ(orgs_of("Eve@acme.com"), Strings{});
    EXPECT_TRUE(must(store().find_user("Eve@acme.com"))) << "the user is recorded, unjoined";

    auto joined = apply_ok(signup("Eve@acme.com", true));
    EXPECT_EQ(joined.joined, Strings{"acme"}) << "verifying later joins";
}

TEST_F(AutoJoinTest, AddressNotInTheStoreYetIsNotFoundAndChangesNothing) {
    const std::string before = state({"casper@ghost.example"});

    auto result = apply(signup("casper@ghost.example"));

    ASSERT_TRUE(fails_with(result, ErrorCode::not_found));
    EXPECT_EQ(result.error().message,
              "org ghost is in the mapping but not in the store yet; run a sync first");
    EXPECT_EQ(state({"casper@ghost.example"}), before);
}

TEST_F(AutoJoinTest, UnverifiedAddressOfAnUnsyncedOrgIsNoError) {
    auto result = apply_ok(signup("casper@ghost.example", false));
    EXPECT_EQ(result.reason, "address not verified: no org joined");
}

TEST_F(AutoJoinTest, WorkforceDomainGivesItsTypeAndRole) {
    auto result = apply_ok(signup("li@labelers.example"));
    EXPECT_EQ(result.reason, "joined acme as workforce guest via domain labelers.example");
    EXPECT_EQ(membership_text("acme", "li@labelers.example"),
              "workforce/guest asserted by signup:workforce/guest");
}

TEST_F(AutoJoinTest, WorkforceOrgsOwnDomainMakesItsInternalMembers) {
    auto result = apply_ok(signup("kim@labelco.example"));
    EXPECT_EQ(result.joined, Strings{"labelco"});
    EXPECT_EQ(membership_text("labelco", "kim@labelco.example"),
              "internal/member asserted by signup:internal/member");
}

TEST_F(AutoJoinTest, ChangedDomainRuleIsAppliedOnTheNextEvent) {
    apply_ok(signup("sam@acme.com"));
    m_mapping.orgs[0].domains[0].role = OrgRole::admin;

    auto result = apply_ok(signup("sam@acme.com"));

    EXPECT_EQ(result.joined, Strings{"acme"});
    EXPECT_EQ(result.reason, "joined acme as internal admin via domain acme.com");
    EXPECT_EQ(membership_text("acme", "sam@acme.com"),
              "internal/admin asserted by signup:internal/admin");
}

// ---- invalid input ---------------------------------------------------------------

class AutoJoinInvalidTest : public AutoJoinTest,
                            public ::testing::WithParamInterface<std::string> {};

TEST_P(AutoJoinInvalidTest, IsInvalidArgumentAndChangesNothing) {
    const std::string before = state();

    auto result = apply(signup(GetParam()));

    ASSERT_TRUE(fails_with(result, ErrorCode::invalid_argument));
    EXPECT_TRUE(result.error().message.starts_with("invalid email \"" + GetParam() + "\": "))
        << result.error().message;
    EXPECT_EQ(state(), before);
}

INSTANTIATE_TEST_SUITE_P(Addresses, AutoJoinInvalidTest,
                         ::testing::Values("", "bob", "bob@", "@acme.com", "bob@@acme.com",
                                           "bob@acme.com@acme.com", "bob@acme..com",
                                           "bob@-acme.com", "bob@acmecom",
                                           "=?utf-8?q?bob?=@acme.com", "bob@=?utf-8?q?acme?=.com",
                                           "bob@acme.com\n", "bob@acme.com\r\nBcc: x@evil.example",
                                           std::string("bob\0@acme.com", 13), "bob @acme.com"));

TEST_F(AutoJoinTest, InvalidPreviousEmailIsInvalidArgument) {
    apply_ok(signup("sam@acme.com"));
    const std::string before = state();

    auto result = apply(email_changed("sam@@acme.com", "sam@initech.com"));

    ASSERT_TRUE(fails_with(result, ErrorCode::invalid_argument));
    EXPECT_TRUE(result.error().message.starts_with("invalid previous email \"sam@@acme.com\": "))
        << result.error().message;
    EXPECT_EQ(state(), before);
}

// ---- email changes -----------------------------------------------------------------

TEST_F(AutoJoinTest, EmailChangeIntoADomainJoins) {
    auto first = apply_ok(signup("sam@personal.example", true, "Sam"));
    EXPECT_EQ(first.reason, "domain personal.example belongs to no org");
    const UserId sam = user_id("sam@personal.example");

    auto result = apply_ok(email_changed("sam@personal.example", "Sam@ACME.com"));

    EXPECT_EQ(result.email, "Sam@acme.com");
    EXPECT_EQ(result.joined, Strings{"acme"});
    EXPECT_EQ(result.left, Strings{});
    EXPECT_EQ(result.reason, "joined acme as internal member via domain acme.com");
    EXPECT_EQ(user_id("Sam@acme.com"), sam) << "the same user, with the new address";
    EXPECT_FALSE(must(store().find_user("sam@personal.example")));
    EXPECT_EQ(must(store().find_user("Sam@acme.com"))->display_name, "Sam")
        << "an empty name keeps the stored one";
    EXPECT_EQ(orgs_of("Sam@acme.com"), Strings{"acme"});
}

TEST_F(AutoJoinTest, EmailChangeOutOfADomainLeaves) {
    apply_ok(signup("sam@acme.com"));

    auto result = apply_ok(email_changed("sam@acme.com", "sam@personal.example"));

    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.left, Strings{"acme"});
    EXPECT_EQ(result.reason,
              "domain personal.example belongs to no org; no longer auto-joined to acme");
    EXPECT_EQ(orgs_of("sam@personal.example"), Strings{});
}

TEST_F(AutoJoinTest, UnverifiedEmailChangeStillLeavesTheOldDomain) {
    apply_ok(signup("sam@acme.com"));

    auto result = apply_ok(email_changed("sam@acme.com", "sam@initech.com", false));

    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.left, Strings{"acme"});
    EXPECT_EQ(result.reason, "address not verified: no org joined; no longer auto-joined to acme");
    EXPECT_EQ(orgs_of("sam@initech.com"), Strings{});
}

TEST_F(AutoJoinTest, EmailChangeOutOfADomainKeepsWhatAnotherSourceAsserts) {
    apply_ok(signup("sam@acme.com"));
    assert_manual("acme", "sam@acme.com", UserType::internal, OrgRole::member);

    auto result = apply_ok(email_changed("sam@acme.com", "sam@personal.example"));

    EXPECT_EQ(result.left, Strings{"acme"});
    EXPECT_EQ(membership_text("acme", "sam@personal.example"),
              "internal/member asserted by manual:internal/member");
}

TEST_F(AutoJoinTest, EmailChangeBetweenOrgsMovesTheInternalMembership) {
    apply_ok(signup("sam@acme.com"));

    auto result = apply_ok(email_changed("sam@acme.com", "sam@labelco.example"));

    EXPECT_EQ(result.joined, Strings{"labelco"});
    EXPECT_EQ(result.left, Strings{"acme"});
    EXPECT_EQ(result.reason,
              "joined labelco as internal member via domain labelco.example; no longer "
              "auto-joined to acme");
    EXPECT_EQ(orgs_of("sam@labelco.example"), Strings{"labelco"});
    EXPECT_EQ(membership_text("labelco", "sam@labelco.example"),
              "internal/member asserted by signup:internal/member");
}

TEST_F(AutoJoinTest, EmailChangeWithinADomainKeepsTheMembership) {
    apply_ok(signup("sam@acme.com"));
    const auto events = must(store().audit_events(0, 1'000'000)).size();

    auto result = apply_ok(email_changed("sam@acme.com", "samuel@eng.acme.com"));

    EXPECT_EQ(result.joined, Strings{});
    EXPECT_EQ(result.left, Strings{});
    EXPECT_EQ(result.reason,
              "already in acme as internal member via domain acme.com (subdomain eng.acme.com)");
    EXPECT_EQ(orgs_of("samuel@eng.acme.com"), Strings{"acme"});
    EXPECT_EQ(must(store().audit_events(0, 1'000'000)).size(), events + 1)
        << "only user.email_changed";
}

TEST_F(AutoJoinTest, AdminMovingOutIsDemotedThenRemovedInTheAuditLog) {
    apply_ok(signup("pat@initech.com"));
    EXPECT_EQ(membership_text("initech", "pat@initech.com"),
              "internal/admin asserted by signup:internal/admin");
    const auto after_id = directory::test_support::last_audit_id(store());

    auto result = apply_ok(email_changed("pat@initech.com", "pat@acme.com"));

    EXPECT_EQ(result.left, Strings{"initech"});
    EXPECT_EQ(result.joined, Strings{"acme"});
    Strings kinds;
    for (const AuditEvent& event : directory::test_support::audit_after(store(), after_id)) {
        EXPECT_EQ(event.source, "signup");
        kinds.push_back(event.kind + " " + event.org + " " + event.subject);
    }
    EXPECT_EQ(
        kinds,
        (Strings{"user.email_changed  pat@acme.com", "membership.changed initech pat@acme.com",
                 "membership.removed initech pat@acme.com", "membership.added acme pat@acme.com"}));
    EXPECT_EQ(orgs_of("pat@acme.com"), Strings{"acme"});
}

TEST_F(AutoJoinTest, AdminKeptByAnotherSourceIsNotDemotedByLeaving) {
    apply_ok(signup("pat@initech.com"));
    assert_manual("initech", "pat@initech.com", UserType::internal, OrgRole::admin);

    auto result = apply_ok(email_changed("pat@initech.com", "pat@personal.example"));

    EXPECT_EQ(result.left, Strings{"initech"});
    EXPECT_EQ(membership_text("initech", "pat@personal.example"),
              "internal/admin asserted by manual:internal/admin");
}

TEST_F(AutoJoinTest, OwnerLeavingTheDomainStaysOwner) {
    apply_ok(signup("ceo@acme.com"));
    EXPECT_EQ(membership_text("acme", "ceo@acme.com"),
              "internal/owner asserted by manual:internal/admin,signup:internal/member");

    auto result = apply_ok(email_changed("ceo@acme.com", "ceo@personal.example"));

    EXPECT_EQ(result.left, Strings{"acme"});
    EXPECT_EQ(membership_text("acme", "ceo@personal.example"),
              "internal/owner asserted by manual:internal/admin");
}

TEST_F(AutoJoinTest, EmailChangeFromAnUnknownAddressIsNotFound) {
    const std::string before = state({"sam@acme.com"});

    auto result = apply(email_changed("nobody@acme.com", "sam@acme.com"));

    ASSERT_TRUE(fails_with(result, ErrorCode::not_found));
    EXPECT_EQ(result.error().message, "no user has the previous email nobody@acme.com");
    EXPECT_EQ(state({"sam@acme.com"}), before);
}

TEST_F(AutoJoinTest, EmailChangeToAnotherUsersAddressIsAlreadyExists) {
    apply_ok(signup("sam@personal.example"));
    apply_ok(signup("ann@acme.com"));
    const std::string before = state({"sam@personal.example"});

    auto result = apply(email_changed("sam@personal.example", "ann@acme.com"));

    ASSERT_TRUE(fails_with(result, ErrorCode::already_exists));
    EXPECT_EQ(state({"sam@personal.example"}), before);
}

TEST_F(AutoJoinTest, RedeliveredEmailChangeIsHarmless) {
    apply_ok(signup("sam@acme.com"));
    apply_ok(email_changed("sam@acme.com", "sam@labelco.example"));
    const std::string before = state({"sam@acme.com"});

    auto again = apply_ok(email_changed("sam@acme.com", "sam@labelco.example"));

    EXPECT_EQ(again.joined, Strings{});
    EXPECT_EQ(again.left, Strings{});
    EXPECT_EQ(state({"sam@acme.com"}), before);
}

TEST_F(AutoJoinTest, InternalElsewhereByAnotherSourceIsNotJoinedButTheAddressChanges) {
    apply_ok(signup("sam@personal.example"));
    assert_manual("initech", "sam@personal.example", UserType::internal, OrgRole::member);

    auto result = apply_ok(email_changed("sam@personal.example", "sam@acme.com"));

    EXPECT_TRUE(result.joined.empty());
    EXPECT_EQ(result.reason,
              "already internal in org initech (asserted by manual); a user is internal in one "
              "org only, so acme is not joined");
    EXPECT_FALSE(decide(request("sam@acme.com", "acme", "org.metrics.read")).allow);
    EXPECT_TRUE(decide(request("sam@acme.com", "initech", "org.metrics.read")).allow)
        << "the address changed and initech keeps them";
}

// ---- decisions ---------------------------------------------------------------------

TEST_F(AutoJoinTest, DecisionsReflectJoiningAndLeavingImmediately) {
    const auto ask = request("Bob@acme.com", "acme", "org.projects.create");
    const auto asked_later = request("Bob@personal.example", "acme", "org.projects.create");

    EXPECT_FALSE(decide(ask).allow);
    apply_ok(signup("Bob@ACME.COM"));
    auto joined = decide(ask);
    EXPECT_TRUE(joined.allow) << describe(joined);
    EXPECT_EQ(joined.role, OrgRole::member);

    apply_ok(email_changed("Bob@acme.com", "Bob@personal.example"));
    auto left = decide(asked_later);
    EXPECT_FALSE(left.allow) << describe(left);
    EXPECT_FALSE(decide(ask).allow) << describe(decide(ask));
}

// ---- the mapping file ----------------------------------------------------------------

TEST_F(AutoJoinTest, DomainsFromAParsedMappingFileJoin) {
    auto parsed = mapping::parse_mapping(R"toml(
[[org]]
slug = "acme"
name = "Acme Corp"
owner = "ceo@acme.com"

  [[org.domain]]
  name = "acme.com"
  include_subdomains = true

  [[org.domain]]
  name = "labelers.example"
  user_type = "workforce"
  role = "guest"

[[org]]
slug = "initech"
name = "Initech"
owner = "boss@initech.com"

  [[org.domain]]
  name = "initech.com"
  role = "admin"
)toml",
                                         "mapping.toml", {});
    ASSERT_TRUE(parsed) << (parsed ? "" : parsed.error().front().to_string());
    m_mapping = *std::move(parsed);

    EXPECT_EQ(apply_ok(signup("Bob@ACME.COM")).reason,
              "joined acme as internal member via domain acme.com");
    EXPECT_EQ(apply_ok(signup("dev@eng.acme.com")).joined, Strings{"acme"});
    EXPECT_EQ(apply_ok(signup("li@labelers.example")).reason,
              "joined acme as workforce guest via domain labelers.example");
    EXPECT_EQ(apply_ok(signup("pat@initech.com")).reason,
              "joined initech as internal admin via domain initech.com");
    EXPECT_EQ(apply_ok(signup("dev@eng.initech.com")).joined, Strings{});
}

}  // namespace
}  // namespace orgsync::sync
