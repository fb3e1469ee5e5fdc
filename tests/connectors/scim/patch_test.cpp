#include "connectors/scim/patch.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace orgsync::scim {
namespace {

using nlohmann::json;

#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// A user as Entra ID creates it (its provisioning documentation's POST,
// with the enterprise extension).
json entra_user() {
    return json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ")" ENT R"("],
      "id": "8ce0ed5e-2a4c-4b5c-9f5e-1b1e0c8c5d11",
      "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
      "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
      "active": true,
      "displayName": "Test User",
      "title": "Engineer",
      "name": {"formatted": "givenName familyName", "familyName": "familyName",
               "givenName": "givenName"},
      "emails": [{"primary": true, "type": "work",
                  "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
      "meta": {"resourceType": "User", "created": "2026-11-01T10:00:00Z",
               "lastModified": "2026-11-01T10:00:00Z", "version": "W/\"1\""},
      ")" ENT R"(": {"employeeNumber": "701984", "department": "Tour Operations",
                     "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
    })");
}

json plain_user() {
    return json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
      "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
      "userName": "test.user@okta.local",
      "active": true
    })");
}

json group() {
    return json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
      "displayName": "Test SCIMv2",
      "members": [
        {"value": "6d47f1c6-6b4b-4b8e-9e2b-3a7f3a2e1c01", "display": "alice@okta.local"},
        {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "bob@okta.local"}
      ],
      "meta": {"resourceType": "Group"}
    })");
}

json request(std::string_view operations) {
    json body = json::parse(R"({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]})");
    body["Operations"] = json::parse(operations);
    return body;
}

constexpr std::string_view k_absent = "<absent>";

struct PatchCase {
    std::string_view name;
    json (*resource)();
    const ResourceRules& rules;
    std::string_view operations;
    // JSON pointer -> expected JSON text, or k_absent.
    std::vector<std::pair<std::string_view, std::string_view>> expect;
};

void run(const std::vector<PatchCase>& cases) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const json before = c.resource();
        auto after = apply_patch(before, request(c.operations), c.rules);
        ASSERT_TRUE(after) << after.error().message;
        for (const auto& [pointer, expected] : c.expect) {
            const json::json_pointer at{std::string(pointer)};
            if (expected == k_absent) {
                EXPECT_FALSE(after->contains(at)) << pointer << " is " << after->dump();
            } else {
                ASSERT_TRUE(after->contains(at)) << pointer << " missing in " << after->dump();
                EXPECT_EQ(after->at(at), json::parse(expected)) << pointer;
            }
        }
    }
}

ScimError patch_error(const json& resource, std::string_view operations, const ResourceRules& rules,
                      const PatchLimits& limits = {}) {
    auto result = apply_patch(resource, request(operations), rules, limits);
    EXPECT_FALSE(result) << operations << " gave " << (result ? result->dump() : "");
    return result ? ScimError{} : result.error();
}

// ---- users ----

TEST(PatchUser, EntraIdAttributeUpdates) {
    run({
        {"add and replace name parts",
         entra_user,
         user_rules(),
         R"([{"op": "Add", "path": "name.givenName", "value": "Bar"},
             {"op": "Replace", "path": "name.familyName", "value": "Foo2"}])",
         {{"/name/givenName", R"("Bar")"},
          {"/name/familyName", R"("Foo2")"},
          {"/name/formatted", R"("givenName familyName")"}}},
        {"replace the work email's value",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": "emails[type eq \"work\"].value",
              "value": "updatedEmail@microsoft.com"}])",
         {{"/emails/0/value", R"("updatedEmail@microsoft.com")"},
          {"/emails/0/primary", "true"},
          {"/emails/1", k_absent}}},
        {"add a work email to a user without one creates it",
         plain_user,
         user_rules(),
         R"([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@contoso.com"}])",
         {{"/emails", R"([{"type": "work", "value": "a@contoso.com"}])"}}},
        {"add a mobile phone creates it",
         entra_user,
         user_rules(),
         R"([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value",
              "value": "+1 555 0100"}])",
         {{"/phoneNumbers", R"([{"type": "mobile", "value": "+1 555 0100"}])"}}},
        {"replace through a two-term filter creates from both terms",
         plain_user,
         user_rules(),
         R"([{"op": "Replace", "path": "emails[type eq \"work\" and primary eq true].value",
              "value": "w@contoso.com"}])",
         {{"/emails", R"([{"type": "work", "primary": true, "value": "w@contoso.com"}])"}}},
        {"address part through a filter",
         plain_user,
         user_rules(),
         R"([{"op": "Add", "path": "addresses[type eq \"work\"].streetAddress",
              "value": "1 Main St"},
             {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"}])",
         {{"/addresses", R"([{"type": "work", "streetAddress": "1 Main St",
                              "locality": "Springfield"}])"}}},
        {"deactivate with the string False",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": "active", "value": "False"}])",
         {{"/active", "false"}}},
        {"reactivate with the string True",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": "active", "value": "True"},
             {"op": "Replace", "path": "active", "value": "true"}])",
         {{"/active", "true"}}},
        {"add without a path, dotted and URN keys, in canonical spelling",
         entra_user,
         user_rules(),
         R"([{"op": "Add", "value": {"name.givenName": "Babs", "nickName": "B",
               "username": "new@contoso.com", "DisplayName": "Babs J",
               ")" ENT R"(:department": "Engineering",
               ")" ENT R"(:employeeNumber": "42"}}])",
         {{"/name/givenName", R"("Babs")"},
          {"/nickName", R"("B")"},
          {"/userName", R"("new@contoso.com")"},
          {"/username", k_absent},
          {"/displayName", R"("Babs J")"},
          {"/DisplayName", k_absent},
          {"/" ENT "/department", R"("Engineering")"},
          {"/" ENT "/employeeNumber", R"("42")"},
          {"/" ENT "/manager/value", R"("26118915-6090-4610-87e4-49d8ca9f808d")"}}},
        {"replace without a path merges a complex value",
         entra_user,
         user_rules(),
         R"([{"op": "replace", "value": {"name": {"familyName": "Jensen"}, "title": "Lead"}}])",
         {{"/name", R"({"formatted": "givenName familyName", "familyName": "Jensen",
                       "givenName": "givenName"})"},
          {"/title", R"("Lead")"}}},
        {"op names in any case",
         entra_user,
         user_rules(),
         R"([{"op": "ADD", "path": "nickName", "value": "a"},
             {"op": "rEpLaCe", "path": "title", "value": "b"},
             {"op": "REMOVE", "path": "displayName"}])",
         {{"/nickName", R"("a")"}, {"/title", R"("b")"}, {"/displayName", k_absent}}},
        {"attribute names in any case",
         entra_user,
         user_rules(),
         R"([{"op": "replace", "path": "NAME.GIVENNAME", "value": "g"},
             {"op": "replace", "path": "EMAILS[TYPE EQ \"WORK\"].VALUE", "value": "v@x"}])",
         {{"/name/givenName", R"("g")"}, {"/emails/0/value", R"("v@x")"}}},
        {"externalId and userName",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": "externalId", "value": "e2"},
             {"op": "Replace", "path": "userName", "value": "u2@contoso.com"}])",
         {{"/externalId", R"("e2")"}, {"/userName", R"("u2@contoso.com")"}}},
        {"replace with null unassigns",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": "title", "value": null}])",
         {{"/title", k_absent}}},
        {"add a second email that becomes primary",
         entra_user,
         user_rules(),
         R"([{"op": "add", "path": "emails",
              "value": [{"type": "home", "value": "h@home.example", "primary": "True"}]}])",
         {{"/emails/0/primary", "false"},
          {"/emails/1", R"({"type": "home", "value": "h@home.example", "primary": true})"}}},
        {"adding an email already there changes nothing",
         entra_user,
         user_rules(),
         R"([{"op": "add", "path": "emails",
              "value": [{"type": "work", "primary": true,
                         "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}]}])",
         {{"/emails/1", k_absent}}},
        {"replace all emails",
         entra_user,
         user_rules(),
         R"([{"op": "replace", "path": "emails", "value": [{"type": "other", "value": "o@x"}]}])",
         {{"/emails", R"([{"type": "other", "value": "o@x"}])"}}},
        {"the existing key spelled differently is replaced, not duplicated",
         [] {
             json user = plain_user();
             user.erase("userName");
             user["USERNAME"] = "old@x";
             return user;
         },
         user_rules(),
         R"([{"op": "replace", "path": "userName", "value": "new@x"}])",
         {{"/userName", R"("new@x")"}, {"/USERNAME", k_absent}}},
    });
}

TEST(PatchUser, Removals) {
    run({
        {"remove a sub-attribute",
         entra_user,
         user_rules(),
         R"([{"op": "Remove", "path": "name.givenName"}])",
         {{"/name/givenName", k_absent}, {"/name/familyName", R"("familyName")"}}},
        {"remove what is absent is not an error",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": "nickName"},
             {"op": "remove", "path": "name.middleName"},
             {"op": "remove", "path": "phoneNumbers[type eq \"fax\"]"},
             {"op": "remove", "path": "emails[type eq \"home\"]"}])",
         {{"/nickName", k_absent}, {"/emails/0/type", R"("work")"}}},
        {"remove an email by filter unassigns the attribute when none is left",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": "emails[type eq \"work\"]"}])",
         {{"/emails", k_absent}}},
        {"remove a sub-attribute through a filter",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": "emails[type eq \"work\"].primary"}])",
         {{"/emails/0/primary", k_absent}, {"/emails/0/type", R"("work")"}}},
        {"remove the whole name when its last part goes",
         [] {
             json user = plain_user();
             user["name"] = {{"givenName", "g"}};
             return user;
         },
         user_rules(),
         R"([{"op": "remove", "path": "name.givenName"}])",
         {{"/name", k_absent}}},
    });
}

TEST(PatchUser, Manager) {
    run({
        {"Entra ID sets the manager as a bare id",
         plain_user,
         user_rules(),
         R"([{"op": "Add", "path": ")" ENT R"(:manager", "value": "m-1"}])",
         {{"/" ENT "/manager", R"({"value": "m-1"})"},
          {"/schemas", R"(["urn:ietf:params:scim:schemas:core:2.0:User", ")" ENT R"("])"}}},
        {"change the manager with an object",
         entra_user,
         user_rules(),
         R"([{"op": "Replace", "path": ")" ENT R"(:manager", "value": {"value": "m-2"}}])",
         {{"/" ENT "/manager", R"({"value": "m-2"})"}, {"/" ENT "/employeeNumber", R"("701984")"}}},
        {"manager.value path",
         entra_user,
         user_rules(),
         R"([{"op": "replace", "path": ")" ENT R"(:manager.value", "value": "m-3"}])",
         {{"/" ENT "/manager/value", R"("m-3")"}}},
        {"manager in a path-less value, bare",
         entra_user,
         user_rules(),
         R"([{"op": "Add", "value": {")" ENT R"(:manager": "m-4"}}])",
         {{"/" ENT "/manager/value", R"("m-4")"}}},
        {"manager readOnly displayName sent along is dropped",
         plain_user,
         user_rules(),
         R"([{"op": "Add", "path": ")" ENT R"(:manager",
              "value": {"value": "m-5", "displayName": "Boss", "$ref": null}}])",
         {{"/" ENT "/manager", R"({"value": "m-5"})"}}},
        {"remove the manager",
         entra_user,
         user_rules(),
         R"([{"op": "Remove", "path": ")" ENT R"(:manager"}])",
         {{"/" ENT "/manager", k_absent}, {"/" ENT "/department", R"("Tour Operations")"}}},
        {"remove the manager with the value Entra ID sends along",
         entra_user,
         user_rules(),
         R"([{"op": "Remove", "path": ")" ENT R"(:manager",
              "value": [{"value": "26118915-6090-4610-87e4-49d8ca9f808d"}]}])",
         {{"/" ENT "/manager", k_absent}}},
        {"remove the manager through a filter, without the URN",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": "manager[value eq \"26118915-6090-4610-87e4-49d8ca9f808d\"]"}])",
         {{"/" ENT "/manager", k_absent}}},
        {"a filter naming another manager removes nothing",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": "manager[value eq \"someone-else\"]"}])",
         {{"/" ENT "/manager/value", R"("26118915-6090-4610-87e4-49d8ca9f808d")"}}},
        {"the extension as one object",
         entra_user,
         user_rules(),
         R"([{"op": "replace", "value": {")" ENT
         R"(": {"department": "Ops", "costCenter": "42"}}}])",
         {{"/" ENT "/department", R"("Ops")"},
          {"/" ENT "/costCenter", R"("42")"},
          {"/" ENT "/employeeNumber", R"("701984")"}}},
        {"removing the extension's last attributes drops it and its schema",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": ")" ENT R"(:manager"},
             {"op": "remove", "path": ")" ENT R"(:employeeNumber"},
             {"op": "remove", "path": "department"}])",
         {{"/" ENT, k_absent}, {"/schemas", R"(["urn:ietf:params:scim:schemas:core:2.0:User"])"}}},
        {"remove the extension by its URN",
         entra_user,
         user_rules(),
         R"([{"op": "remove", "path": ")" ENT R"("}])",
         {{"/" ENT, k_absent}, {"/schemas", R"(["urn:ietf:params:scim:schemas:core:2.0:User"])"}}},
    });
}

TEST(PatchUser, OktaDeactivatesWithoutAPath) {
    run({{"Okta deactivate",
          plain_user,
          user_rules(),
          R"([{"op": "replace", "value": {"active": false}}])",
          {{"/active", "false"}, {"/userName", R"("test.user@okta.local")"}}}});
}

// ---- groups ----

constexpr std::string_view k_alice = "6d47f1c6-6b4b-4b8e-9e2b-3a7f3a2e1c01";
constexpr std::string_view k_bob = "89bb1940-b905-4575-9e7f-6f887cfb368e";

std::vector<std::string> member_ids(const json& g) {
    std::vector<std::string> ids;
    if (g.contains("members")) {
        for (const auto& m : g["members"]) {
            ids.push_back(m["value"].get<std::string>());
        }
    }
    return ids;
}

std::vector<std::string> patched_members(std::string_view operations, json before = group()) {
    auto after = apply_patch(std::move(before), request(operations), group_rules());
    EXPECT_TRUE(after) << (after ? "" : after.error().message);
    return after ? member_ids(*after) : std::vector<std::string>{"<error>"};
}

using Ids = std::vector<std::string>;

TEST(PatchGroup, EntraIdMembers) {
    EXPECT_EQ(patched_members(R"([{"op": "Add", "path": "members",
                                   "value": [{"$ref": null, "value": "c-3"}]}])"),
              (Ids{std::string(k_alice), std::string(k_bob), "c-3"}));
    // Removal names the members in the value: only those go.
    EXPECT_EQ(patched_members(R"([{"op": "Remove", "path": "members",
                                   "value": [{"$ref": null, "value": "6d47f1c6-6b4b-4b8e-9e2b-3a7f3a2e1c01"}]}])"),
              (Ids{std::string(k_bob)}));
    EXPECT_EQ(patched_members(R"([{"op": "Remove", "path": "members",
                                   "value": [{"value": "6d47f1c6-6b4b-4b8e-9e2b-3a7f3a2e1c01"},
                                             {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e"}]}])"),
              Ids{});
    EXPECT_EQ(patched_members(R"([{"op": "Remove", "path": "members",
                                   "value": [{"value": "not-a-member"}]}])"),
              (Ids{std::string(k_alice), std::string(k_bob)}));
    // Adding twice, or a member already there, keeps one.
    EXPECT_EQ(patched_members(R"([{"op": "Add", "path": "members",
                                   "value": [{"value": "c-3"}, {"value": "c-3"},
                                             {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e"}]}])"),
              (Ids{std::string(k_alice), std::string(k_bob), "c-3"}));
    // To a group without members.
    json empty = group();
    empty.erase("members");
    EXPECT_EQ(patched_members(R"([{"op": "Add", "path": "members", "value": [{"value": "c-1"}]}])",
                              empty),
              Ids{"c-1"});
    // Rename.
    auto renamed = apply_patch(
        group(), request(R"([{"op": "Replace", "path": "displayName", "value": "Renamed"}])"),
        group_rules());
    ASSERT_TRUE(renamed);
    EXPECT_EQ((*renamed)["displayName"], "Renamed");
}

TEST(PatchGroup, OktaMembers) {
    // Removal through a value filter.
    EXPECT_EQ(
        patched_members(
            R"([{"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"}])"),
        (Ids{std::string(k_alice)}));
    // One request removing and adding.
    EXPECT_EQ(patched_members(R"([
                 {"op": "remove", "path": "members[value eq \"6d47f1c6-6b4b-4b8e-9e2b-3a7f3a2e1c01\"]"},
                 {"op": "add", "path": "members",
                  "value": [{"value": "c-3", "display": "carol@okta.local"},
                            {"value": "c-4", "display": "dave@okta.local"}]}])"),
              (Ids{std::string(k_bob), "c-3", "c-4"}));
    // Full replace of the member list.
    EXPECT_EQ(patched_members(R"([{"op": "replace", "path": "members",
                                   "value": [{"value": "c-5", "display": "eve@okta.local"},
                                             {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e"}]}])"),
              (Ids{"c-5", std::string(k_bob)}));
    // Replace with an empty list empties the group.
    EXPECT_EQ(patched_members(R"([{"op": "replace", "path": "members", "value": []}])"), Ids{});
    // Remove all.
    EXPECT_EQ(patched_members(R"([{"op": "remove", "path": "members"}])"), Ids{});
    // A filter naming nobody removes nobody.
    EXPECT_EQ(patched_members(R"([{"op": "remove", "path": "members[value eq \"nobody\"]"}])"),
              (Ids{std::string(k_alice), std::string(k_bob)}));
}

TEST(PatchGroup, OktaRenameRepeatsTheId) {
    auto renamed = apply_patch(
        group(),
        request(R"([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                                                "displayName": "Test SCIMv2 renamed"}}])"),
        group_rules());
    ASSERT_TRUE(renamed) << renamed.error().message;
    EXPECT_EQ((*renamed)["displayName"], "Test SCIMv2 renamed");
    EXPECT_EQ((*renamed)["id"], "abf4dd94-a4c0-4f67-89c9-76b03340cb9b");
}

TEST(PatchGroup, MemberDisplayAndBareIds) {
    auto after = apply_patch(group(), request(R"([{"op": "replace",
                                          "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"].display",
                                          "value": "robert@okta.local"},
                                         {"op": "add", "path": "members", "value": ["c-9"]}])"),
                             group_rules());
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ((*after)["members"][1]["display"], "robert@okta.local");
    EXPECT_EQ((*after)["members"][2], json::parse(R"({"value": "c-9"})"));
}

// ---- errors ----

struct ErrorCase {
    std::string_view name;
    json (*resource)();
    const ResourceRules& rules;
    std::string_view operations;
    ScimType type;
};

TEST(PatchErrors, EachFailureHasItsScimType) {
    const std::vector<ErrorCase> cases{
        {"remove without a path", entra_user, user_rules(), R"([{"op": "remove"}])",
         ScimType::no_target},
        {"remove with an empty path", entra_user, user_rules(), R"([{"op": "remove", "path": ""}])",
         ScimType::no_target},
        {"replace id", entra_user, user_rules(),
         R"([{"op": "replace", "path": "id", "value": "x"}])", ScimType::mutability},
        {"replace meta", entra_user, user_rules(),
         R"([{"op": "replace", "path": "meta", "value": {"version": "x"}}])", ScimType::mutability},
        {"replace meta.lastModified", entra_user, user_rules(),
         R"([{"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}])",
         ScimType::mutability},
        {"remove id", entra_user, user_rules(), R"([{"op": "remove", "path": "id"}])",
         ScimType::mutability},
        {"a different id in a path-less value", group, group_rules(),
         R"([{"op": "replace", "value": {"id": "other", "displayName": "x"}}])",
         ScimType::mutability},
        {"add to a user's groups", entra_user, user_rules(),
         R"([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])", ScimType::mutability},
        {"change a member's id", group, group_rules(),
         R"([{"op": "replace", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"].value", "value": "x"}])",
         ScimType::mutability},
        {"unknown op", entra_user, user_rules(),
         R"([{"op": "move", "path": "title", "value": "x"}])", ScimType::invalid_value},
        {"op missing", entra_user, user_rules(), R"([{"path": "title", "value": "x"}])",
         ScimType::invalid_syntax},
        {"op not a string", entra_user, user_rules(),
         R"([{"op": 1, "path": "title", "value": "x"}])", ScimType::invalid_syntax},
        {"operation not an object", entra_user, user_rules(), R"(["add"])",
         ScimType::invalid_syntax},
        {"unknown attribute", entra_user, user_rules(),
         R"([{"op": "add", "path": "favouriteColour", "value": "x"}])", ScimType::invalid_path},
        {"unknown sub-attribute", entra_user, user_rules(),
         R"([{"op": "add", "path": "name.nickname", "value": "x"}])", ScimType::invalid_path},
        {"unknown sub-attribute after a filter", entra_user, user_rules(),
         R"([{"op": "add", "path": "emails[type eq \"work\"].address", "value": "x"}])",
         ScimType::invalid_path},
        {"path that does not parse", entra_user, user_rules(),
         R"([{"op": "add", "path": "emails[type eq", "value": "x"}])", ScimType::invalid_path},
        {"filter on a simple attribute", entra_user, user_rules(),
         R"([{"op": "replace", "path": "userName[value eq \"x\"]", "value": "x"}])",
         ScimType::invalid_path},
        {"path not a string", entra_user, user_rules(),
         R"([{"op": "add", "path": 5, "value": "x"}])", ScimType::invalid_path},
        {"unknown attribute in a path-less value", entra_user, user_rules(),
         R"([{"op": "add", "value": {"favouriteColour": "x"}}])", ScimType::invalid_path},
        {"Group attribute on a user", entra_user, user_rules(),
         R"([{"op": "add", "path": "members", "value": [{"value": "x"}]}])",
         ScimType::invalid_path},
        {"enterprise attribute on a group", group, group_rules(),
         R"([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "x"}])",
         ScimType::invalid_path},
        {"active not a boolean", entra_user, user_rules(),
         R"([{"op": "replace", "path": "active", "value": "maybe"}])", ScimType::invalid_value},
        {"userName not a string", entra_user, user_rules(),
         R"([{"op": "replace", "path": "userName", "value": 5}])", ScimType::invalid_value},
        {"unknown sub-attribute in a value", entra_user, user_rules(),
         R"([{"op": "add", "path": "emails", "value": [{"value": "a@b", "kind": "work"}]}])",
         ScimType::invalid_value},
        {"a member without an id", group, group_rules(),
         R"([{"op": "add", "path": "members", "value": [{"display": "x"}]}])",
         ScimType::invalid_value},
        {"remove userName", entra_user, user_rules(), R"([{"op": "remove", "path": "userName"}])",
         ScimType::invalid_value},
        {"null a group's displayName", group, group_rules(),
         R"([{"op": "replace", "path": "displayName", "value": null}])", ScimType::invalid_value},
        {"path-less value not an object", entra_user, user_rules(),
         R"([{"op": "replace", "value": "x"}])", ScimType::invalid_value},
        {"add without a value", entra_user, user_rules(), R"([{"op": "add", "path": "title"}])",
         ScimType::invalid_value},
        {"a filter matching nothing that cannot build a value", plain_user, user_rules(),
         R"([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value", "value": "x"}])",
         ScimType::no_target},
        {"a filter on the manager matching nothing", entra_user, user_rules(),
         R"([{"op": "replace", "path": "manager[value eq \"other\"].value", "value": "x"}])",
         ScimType::no_target},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const ScimError e = patch_error(c.resource(), c.operations, c.rules);
        EXPECT_EQ(e.type, c.type) << to_string(e.type) << ": " << e.message;
        EXPECT_FALSE(e.message.empty());
    }
}

TEST(PatchErrors, RequestsThatAreNotPatchOps) {
    const json user = entra_user();
    for (
        const json& body : {
            json::parse(R"([])"),
            json::parse(R"({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]})"),
            json::parse(
                R"({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []})"),
            json::parse(
                R"({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": {}})"),
            json::parse(
                R"({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "add", "path": "title", "value": "x"}]})"),
        }) {
        auto result = apply_patch(user, body, user_rules());
        ASSERT_FALSE(result) << body.dump();
        EXPECT_EQ(result.error().type, ScimType::invalid_syntax) << body.dump();
    }
    // Without schemas, and with lower-case "operations", it is accepted.
    auto lenient = apply_patch(
        user, json::parse(R"({"operations": [{"op": "add", "path": "title", "value": "x"}]})"),
        user_rules());
    ASSERT_TRUE(lenient);
    EXPECT_EQ((*lenient)["title"], "x");
}

TEST(PatchErrors, TooManyOperationsOrMembers) {
    const PatchLimits limits{.max_operations = 3, .max_members = 4};
    EXPECT_TRUE(apply_patch(group(), request(R"([{"op": "add", "path": "displayName", "value": "a"},
                                                {"op": "add", "path": "displayName", "value": "b"},
                                                {"op": "add", "path": "displayName", "value": "c"}])"),
                            group_rules(), limits));
    EXPECT_EQ(patch_error(group(), R"([{"op": "add", "path": "displayName", "value": "a"},
                                     {"op": "add", "path": "displayName", "value": "b"},
                                     {"op": "add", "path": "displayName", "value": "c"},
                                     {"op": "add", "path": "displayName", "value": "d"}])",
                          group_rules(), limits)
                  .type,
              ScimType::too_many);
    EXPECT_TRUE(apply_patch(group(), request(R"([{"op": "add", "path": "members",
                                         "value": [{"value": "1"}, {"value": "2"}, {"value": "3"},
                                                   {"value": "4"}]}])"),
                            group_rules(), limits));
    EXPECT_EQ(patch_error(group(), R"([{"op": "add", "path": "members",
                                     "value": [{"value": "1"}, {"value": "2"}, {"value": "3"},
                                               {"value": "4"}, {"value": "5"}]}])",
                          group_rules(), limits)
                  .type,
              ScimType::too_many);
    // Counted across operations and forms.
    const ScimError across = patch_error(
        group(), R"([{"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]},
                                 {"op": "remove", "path": "members", "value": [{"value": "3"}, {"value": "4"}]},
                                 {"op": "remove", "path": "members[value eq \"5\"]"}])",
        group_rules(), limits);
    EXPECT_EQ(across.type, ScimType::too_many);
    EXPECT_EQ(across.message, "more than 4 members in one request");
}

TEST(PatchAtomicity, AFailingOperationInTheMiddleChangesNothing) {
    const json before = group();
    const json copy = before;
    const ScimError e =
        patch_error(before, R"([{"op": "add", "path": "members", "value": [{"value": "c-3"}]},
                                {"op": "replace", "path": "displayName", "value": "Changed"},
                                {"op": "replace", "path": "id", "value": "stolen"},
                                {"op": "remove", "path": "members"}])",
                    group_rules());
    EXPECT_EQ(e.type, ScimType::mutability);
    EXPECT_EQ(before, copy);

    // The same with the caller's resource moved in: the caller keeps
    // nothing half-patched because only a complete result comes back.
    json user = entra_user();
    auto result =
        apply_patch(user, request(R"([{"op": "Replace", "path": "active", "value": "False"},
                                                {"op": "Replace", "path": "active", "value": "perhaps"}])"),
                    user_rules());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().type, ScimType::invalid_value);
    EXPECT_EQ(user, entra_user());
}

TEST(PatchAtomicity, ErrorMessagesNameTheOperationAndAttribute) {
    EXPECT_EQ(patch_error(entra_user(),
                          R"([{"op": "add", "path": "title", "value": "x"},
                              {"op": "add", "path": "favouriteColour", "value": "x"}])",
                          user_rules())
                  .message,
              "Operations[1]: User has no attribute \"favouriteColour\"");
    EXPECT_EQ(patch_error(entra_user(), R"([{"op": "replace", "path": "active", "value": 3}])",
                          user_rules())
                  .message,
              "active: expected a boolean, got a number");
    EXPECT_EQ(patch_error(entra_user(), R"([{"op": "replace", "path": "id", "value": "x"}])",
                          user_rules())
                  .message,
              "id is read-only");
}

TEST(PatchNulls, AddNullChangesNothingReplaceNullUnassigns) {
    run({{"add null",
          group,
          group_rules(),
          R"([{"op": "add", "path": "members", "value": null},
              {"op": "add", "path": "externalId", "value": null}])",
          {{"/members/1/value", R"("89bb1940-b905-4575-9e7f-6f887cfb368e")"}}},
         {"replace null",
          group,
          group_rules(),
          R"([{"op": "replace", "path": "members", "value": null}])",
          {{"/members", k_absent}}}});
}

// ---- properties ----

// Requests built from a pool of operations, valid and invalid, on users
// and groups: a request's result is the result of its operations applied
// one at a time (or its first failure), never depends on anything but its
// input, and never changes id or meta.
TEST(PatchProperties, RequestsComposeAndNeverTouchIdOrMeta) {
    const std::vector<std::string> pool{
        R"({"op": "add", "path": "title", "value": "T"})",
        R"({"op": "replace", "path": "title", "value": null})",
        R"({"op": "remove", "path": "title"})",
        R"({"op": "Replace", "path": "active", "value": "False"})",
        R"({"op": "Replace", "path": "active", "value": "True"})",
        R"({"op": "Replace", "path": "active", "value": "maybe"})",
        R"({"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x"})",
        R"({"op": "remove", "path": "emails[type eq \"work\"]"})",
        R"({"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@x", "primary": true}]})",
        R"({"op": "replace", "path": "name.givenName", "value": "G"})",
        R"({"op": "remove", "path": "name"})",
        R"({"op": "Add", "path": ")" ENT R"(:manager", "value": "m"})",
        R"({"op": "Remove", "path": ")" ENT R"(:manager"})",
        R"({"op": "remove", "path": ")" ENT R"("})",
        R"({"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]})",
        R"({"op": "Remove", "path": "members", "value": [{"value": "a"}]})",
        R"({"op": "remove", "path": "members[value eq \"b\"]"})",
        R"({"op": "replace", "path": "members", "value": [{"value": "c"}]})",
        R"({"op": "replace", "path": "displayName", "value": "D"})",
        R"({"op": "replace", "path": "id", "value": "x"})",
        R"({"op": "move", "path": "title", "value": "x"})",
        R"({"op": "replace", "value": {"active": false, "name.familyName": "F"}})",
        R"({"op": "remove"})",
        R"({"op": "add", "path": "userName", "value": "u@x"})",
    };
    std::mt19937 random(7643);
    struct Subject {
        json (*resource)();
        const ResourceRules& rules;
    };
    const std::vector<Subject> subjects{
        {entra_user, user_rules()}, {plain_user, user_rules()}, {group, group_rules()}};
    int succeeded = 0;
    for (int i = 0; i < 3000; ++i) {
        const Subject& subject = subjects[static_cast<std::size_t>(i) % subjects.size()];
        const json original = subject.resource();
        const int count = std::uniform_int_distribution<int>(1, 5)(random);
        json operations = json::array();
        for (int j = 0; j < count; ++j) {
            operations.push_back(json::parse(
                pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(random)]));
        }
        SCOPED_TRACE(operations.dump());
        auto combined = apply_patch(original, request(operations.dump()), subject.rules);
        auto again = apply_patch(original, request(operations.dump()), subject.rules);
        ASSERT_EQ(combined.has_value(), again.has_value());

        json stepwise = original;
        std::optional<ScimError> first_error;
        for (const auto& operation : operations) {
            auto step =
                apply_patch(stepwise, request(json::array({operation}).dump()), subject.rules);
            if (!step) {
                first_error = step.error();
                break;
            }
            stepwise = std::move(*step);
        }
        if (first_error) {
            ASSERT_FALSE(combined);
            EXPECT_EQ(combined.error().type, first_error->type);
            continue;
        }
        ASSERT_TRUE(combined) << combined.error().message;
        ++succeeded;
        EXPECT_EQ(*combined, *again);
        EXPECT_EQ(*combined, stepwise);
        EXPECT_EQ(combined->value("id", json()), original.value("id", json()));
        EXPECT_EQ(combined->value("meta", json()), original.value("meta", json()));
    }
    EXPECT_GT(succeeded, 100);
}

}  // namespace
}  // namespace orgsync::scim
