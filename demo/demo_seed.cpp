// orgsync-demo-seed STORE: fills a new store with a small sample of orgs,
// users, groups, projects, datasets and grants for `make demo`. Everything
// goes through the Store API, so every invariant is enforced as in
// production.

#include <cstdio>
#include <iostream>
#include <string>

#include "directory/store.hpp"

namespace {

using namespace orgsync::directory;

// Unwraps an Expected inside a write body, returning its error upward.
#define TRY(var, expr)                                \
    auto var##_result = (expr);                       \
    if (!var##_result) {                              \
        return std::unexpected(var##_result.error()); \
    }                                                 \
    auto var = *var##_result

#define CHECK(expr)                                \
    do {                                           \
        if (auto done_ = (expr); !done_) {         \
            return std::unexpected(done_.error()); \
        }                                          \
    } while (false)

Expected<void> seed(Transaction& tx) {
    // A workforce org that supplies contract labellers to other orgs.
    TRY(labelforce, tx.create_org("labelforce", "LabelForce", true, "boss@labelforce.example"));
    TRY(dan, tx.upsert_user("dan@labelforce.example", "Dan Labeller"));
    CHECK(tx.assert_membership(labelforce, dan, {"manual", UserType::internal, OrgRole::member}));

    // Acme: the customer org.
    TRY(acme, tx.create_org("acme", "Acme Corp", false, "ceo@acme.com"));
    TRY(ceo, tx.upsert_user("ceo@acme.com", "Cora CEO"));
    TRY(alice, tx.upsert_user("alice@acme.com", "Alice Admin"));
    TRY(bob, tx.upsert_user("bob@acme.com", "Bob Engineer"));
    TRY(erin, tx.upsert_user("erin@acme.com", "Erin Analyst"));
    TRY(carol, tx.upsert_user("carol.researcher@gmail.com", "Carol Researcher"));
    CHECK(tx.assert_membership(acme, alice, {"manual", UserType::internal, OrgRole::admin}));
    CHECK(tx.assert_membership(acme, bob, {"manual", UserType::internal, OrgRole::member}));
    CHECK(tx.assert_membership(acme, erin, {"manual", UserType::internal, OrgRole::member}));

    TRY(vision_team, tx.create_group(acme, "vision-team"));
    CHECK(tx.add_group_member(vision_team, bob, "manual"));

    TRY(vision, tx.create_project(acme, "vision", Visibility::private_, {"cv"}, ceo));
    TRY(community, tx.create_project(acme, "community", Visibility::public_, {"open"}, alice));
    (void)community;
    CHECK(tx.grant_project(vision, {PrincipalKind::group, vision_team}, Level::write, "manual"));
    CHECK(tx.grant_project(vision, {PrincipalKind::user, erin}, Level::read, "manual"));
    // Dan is internal in the workforce org, so he joins Acme as workforce.
    CHECK(tx.grant_project(vision, {PrincipalKind::user, dan}, Level::read, "manual"));
    // Carol is nobody's employee: granting her a dataset makes her an external guest.
    TRY(street, tx.create_dataset(acme, "street-scenes"));
    TRY(samples, tx.create_dataset(acme, "shared-samples"));
    CHECK(tx.attach_dataset(street, vision));
    CHECK(tx.grant_dataset(samples, {PrincipalKind::user, carol}, DatasetAccess::read, "manual"));

    // Globex: another tenant, for isolation.
    TRY(globex, tx.create_org("globex", "Globex", false, "hank@globex.com"));
    TRY(hank, tx.upsert_user("hank@globex.com", "Hank"));
    TRY(secret, tx.create_project(globex, "secret-plans", Visibility::private_, {}, hank));
    (void)secret;
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: orgsync-demo-seed STORE\n";
        return 2;
    }
    auto store = Store::open(argv[1]);
    if (!store) {
        std::cerr << "orgsync-demo-seed: " << store.error().message << '\n';
        return 1;
    }
    if (auto done = (*store)->write("manual", seed); !done) {
        std::cerr << "orgsync-demo-seed: " << done.error().message << '\n';
        return 1;
    }
    auto orgs = (*store)->list_orgs();
    for (const auto& org : orgs.value()) {
        auto members = (*store)->list_members(org.id).value();
        std::cout << "  org " << org.slug << " (" << org.name
                  << (org.workforce ? ", workforce" : "") << "): " << members.size()
                  << " members\n";
        for (const auto& member : members) {
            std::cout << "    " << member.email << "  " << to_string(member.user_type) << " "
                      << to_string(member.role) << '\n';
        }
    }
    return 0;
}
