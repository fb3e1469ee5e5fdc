// The SCIM server end to end: the real orgsyncd process, real HTTP, a real
// store file. Requests are written as Entra ID and Okta send them.

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "directory/store.hpp"
#include "tests/daemon/process.hpp"
#include "tests/support/daemon_process.hpp"

namespace orgsync::scim {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::DaemonProcess;

constexpr const char* k_entra_token = "entra-token-0123456789";
constexpr const char* k_okta_token = "okta-token-9876543210";
constexpr const char* k_patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
constexpr const char* k_user = "urn:ietf:params:scim:schemas:core:2.0:User";
constexpr const char* k_group = "urn:ietf:params:scim:schemas:core:2.0:Group";
constexpr const char* k_enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

struct Reply {
    int status = 0;
    json body;
    std::string etag;
    std::string raw;
};

class ScimServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() /
                ("orgsync-scim-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        write_file(m_dir / "entra-token", std::string(k_entra_token) + "\n");
        write_file(m_dir / "okta-token", k_okta_token);
        write_file(m_dir / "orgsyncd.toml", R"(
[store]
path = "orgsync.db"
[http]
listen = "127.0.0.1:0"
[mapping]
file = "mapping.toml"
[[source]]
name = "entra"
type = "scim"
org = "acme"
token_file = "entra-token"
[[source]]
name = "okta"
type = "scim"
org = "beta"
token_file = "okta-token"
)");
        write_file(m_dir / "mapping.toml", R"(
[[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
project_admin_fallback = "owner"
  [[org.domain]]
  name = "acme.com"
  user_type = "internal"
  role = "member"
  [[org.role]]
  source = "entra"
  group = "Acme Admins"
  role = "admin"
  [[org.project]]
  slug = "vision"
  [[org.grant]]
  source = "entra"
  group = "Vision Team"
  project = "vision"
  level = "write"

[[org]]
slug = "beta"
name = "Beta"
owner = "ceo@beta.org"
  [[org.domain]]
  name = "beta.org"
  user_type = "internal"
  role = "member"
)");
        start();
    }

    void TearDown() override {
        m_daemon.reset();
        fs::remove_all(m_dir);
    }

    void start() {
        m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        m_client = std::make_unique<httplib::Client>("127.0.0.1", m_daemon->port());
        m_client->set_read_timeout(30, 0);
        // Paths are written encoded, as the IdPs send them.
        m_client->set_url_encode(false);
    }

    Reply call(const std::string& method, const std::string& path, const json& body = nullptr,
               const char* token = k_entra_token, httplib::Headers headers = {}) {
        if (token != nullptr) {
            headers.emplace("Authorization", std::string("Bearer ") + token);
        }
        std::string text = body.is_null() ? "" : body.dump();
        return send(method, path, text, headers);
    }

    Reply send(const std::string& method, const std::string& path, const std::string& text,
               const httplib::Headers& headers) {
        httplib::Result result{nullptr, httplib::Error::Unknown};
        const std::string full = "/scim/v2" + path;
        const char* type = "application/scim+json";
        if (method == "GET") {
            result = m_client->Get(full, headers);
        } else if (method == "POST") {
            result = m_client->Post(full, headers, text, type);
        } else if (method == "PUT") {
            result = m_client->Put(full, headers, text, type);
        } else if (method == "PATCH") {
            result = m_client->Patch(full, headers, text, type);
        } else {
            result = m_client->Delete(full, headers);
        }
        if (!result) {
            ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(result.error());
            return {};
        }
        Reply reply{result->status, nullptr, result->get_header_value("ETag"), result->body};
        if (!result->body.empty()) {
            reply.body = json::parse(result->body, nullptr, false);
        }
        return reply;
    }

    static json patch(json operations) {
        return {{"schemas", json::array({k_patch})}, {"Operations", std::move(operations)}};
    }

    // An Entra ID style user.
    std::string create_user(const std::string& user_name, const std::string& external_id = "",
                            const char* token = k_entra_token) {
        json body = {
            {"schemas", json::array({k_user, k_enterprise})},
            {"userName", user_name},
            {"active", true},
            {"displayName", "User " + user_name},
            {"emails", json::array({{{"primary", true}, {"type", "work"}, {"value", user_name}}})},
            {"name", {{"givenName", "Given"}, {"familyName", "Family"}}}};
        if (!external_id.empty()) {
            body["externalId"] = external_id;
        }
        Reply reply = call("POST", "/Users", body, token);
        EXPECT_EQ(reply.status, 201) << reply.raw;
        return reply.body.value("id", "");
    }

    std::string create_group(const std::string& name, const json& members = json::array(),
                             const char* token = k_entra_token) {
        Reply reply =
            call("POST", "/Groups",
                 {{"schemas", json::array({k_group})}, {"displayName", name}, {"members", members}},
                 token);
        EXPECT_EQ(reply.status, 201) << reply.raw;
        return reply.body.value("id", "");
    }

    // orgsyncd authorize against the daemon's store, as an admin would run it.
    int authorize(const std::string& user, const std::string& org, const std::string& action,
                  const std::string& project = "") {
        std::vector<std::string> args{"authorize", "-c",       (m_dir / "orgsyncd.toml").string(),
                                      "--user",    user,       "--org",
                                      org,         "--action", action};
        if (!project.empty()) {
            args.push_back("--project");
            args.push_back(project);
        }
        return daemon::test::run_orgsyncd(args, m_dir).status;
    }

    static void expect_error(const Reply& reply, int status, const std::string& scim_type = "") {
        EXPECT_EQ(reply.status, status) << reply.raw;
        ASSERT_TRUE(reply.body.is_object()) << reply.raw;
        EXPECT_EQ(reply.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        EXPECT_EQ(reply.body["status"], std::to_string(status));
        if (!scim_type.empty()) {
            EXPECT_EQ(reply.body.value("scimType", ""), scim_type) << reply.raw;
        }
    }

    fs::path m_dir;
    std::unique_ptr<DaemonProcess> m_daemon;
    std::unique_ptr<httplib::Client> m_client;
};

TEST_F(ScimServerTest, EntraUserLifecycle) {
    // Entra first looks the user up; no match is an empty list, not a 404.
    Reply lookup = call("GET", "/Users?filter=userName%20eq%20%22alice%40acme.com%22");
    EXPECT_EQ(lookup.status, 200);
    EXPECT_EQ(lookup.body["totalResults"], 0);
    EXPECT_TRUE(lookup.body["Resources"].empty());

    std::string id = create_user("alice@acme.com", "aad-0001");
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(authorize("alice@acme.com", "acme", "org.projects.create"), 0);

    Reply got = call("GET", "/Users/" + id);
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body["userName"], "alice@acme.com");
    EXPECT_EQ(got.body["meta"]["resourceType"], "User");
    EXPECT_EQ(got.etag, got.body["meta"]["version"]);
    EXPECT_FALSE(got.body.contains("password"));

    // userName matches folding case; externalId exactly.
    Reply by_name = call("GET", "/Users?filter=userName%20eq%20%22ALICE@acme.com%22");
    EXPECT_EQ(by_name.body["totalResults"], 1);
    Reply by_external = call("GET", "/Users?filter=externalId%20eq%20%22aad-0001%22");
    EXPECT_EQ(by_external.body["totalResults"], 1);
    Reply by_email = call(
        "GET",
        "/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22alice%40acme.com%22");
    EXPECT_EQ(by_email.body["totalResults"], 1) << by_email.raw;

    // Entra's PATCH forms: capitalised ops, a value-filter path, string booleans.
    Reply patched = call("PATCH", "/Users/" + id,
                         patch({{{"op", "Replace"},
                                 {"path", "emails[type eq \"work\"].value"},
                                 {"value", "alice@acme.com"}},
                                {{"op", "Replace"}, {"path", "displayName"}, {"value", "Alice A"}},
                                {{"op", "Add"},
                                 {"path", std::string(k_enterprise) + ":manager"},
                                 {"value", "manager-1"}},
                                {{"op", "Replace"},
                                 {"path", std::string(k_enterprise) + ":department"},
                                 {"value", "Research"}}}));
    ASSERT_EQ(patched.status, 200) << patched.raw;
    EXPECT_EQ(patched.body["displayName"], "Alice A");
    EXPECT_EQ(patched.body[k_enterprise]["manager"]["value"], "manager-1");
    EXPECT_EQ(patched.body[k_enterprise]["department"], "Research");
    EXPECT_NE(patched.etag, got.etag);

    // Manager changed, then removed.
    Reply changed = call("PATCH", "/Users/" + id,
                         patch({{{"op", "Replace"},
                                 {"path", std::string(k_enterprise) + ":manager"},
                                 {"value", {{"value", "manager-2"}}}}}));
    EXPECT_EQ(changed.body[k_enterprise]["manager"]["value"], "manager-2");
    Reply removed =
        call("PATCH", "/Users/" + id,
             patch({{{"op", "Remove"}, {"path", std::string(k_enterprise) + ":manager"}}}));
    EXPECT_EQ(removed.status, 200);
    EXPECT_FALSE(removed.body[k_enterprise].contains("manager")) << removed.raw;

    // Deactivation keeps the record but removes access.
    Reply disabled = call("PATCH", "/Users/" + id,
                          patch({{{"op", "Replace"}, {"path", "active"}, {"value", "False"}}}));
    EXPECT_EQ(disabled.status, 200);
    EXPECT_EQ(disabled.body["active"], false);
    EXPECT_EQ(call("GET", "/Users/" + id).status, 200);
    EXPECT_EQ(authorize("alice@acme.com", "acme", "org.projects.create"), 1);
    call("PATCH", "/Users/" + id, patch({{{"op", "Replace"}, {"value", {{"active", true}}}}}));
    EXPECT_EQ(authorize("alice@acme.com", "acme", "org.projects.create"), 0);

    // DELETE removes the user; the pipeline removes the membership.
    EXPECT_EQ(call("DELETE", "/Users/" + id).status, 204);
    expect_error(call("GET", "/Users/" + id), 404);
    expect_error(call("DELETE", "/Users/" + id), 404);
    EXPECT_EQ(authorize("alice@acme.com", "acme", "org.projects.create"), 1);
}

TEST_F(ScimServerTest, OktaUserReplaceAndGroupMembersInEveryForm) {
    std::string bob = create_user("bob@acme.com");
    std::string carol = create_user("carol@acme.com");
    std::string dave = create_user("dave@acme.com");

    // Okta updates users with PUT of the whole resource.
    Reply put = call("PUT", "/Users/" + bob,
                     {{"schemas", json::array({k_user})},
                      {"id", bob},
                      {"userName", "bob@acme.com"},
                      {"name", {{"givenName", "Bob"}, {"familyName", "B"}}},
                      {"emails", json::array({{{"value", "bob@acme.com"}, {"primary", true}}})},
                      {"active", true}},
                     k_entra_token);
    ASSERT_EQ(put.status, 200) << put.raw;
    EXPECT_EQ(put.body["name"]["givenName"], "Bob");
    EXPECT_FALSE(put.body.contains("displayName"));

    // A group created with no members, found as Entra finds it.
    std::string admins = create_group("Acme Admins");
    Reply found = call(
        "GET", "/Groups?filter=displayName%20eq%20%22acme%20admins%22&excludedAttributes=members");
    ASSERT_EQ(found.body["totalResults"], 1) << found.raw;
    EXPECT_FALSE(found.body["Resources"][0].contains("members"));
    EXPECT_EQ(authorize("bob@acme.com", "acme", "org.roles.manage"), 1);

    // Entra adds members one op at a time.
    Reply added =
        call("PATCH", "/Groups/" + admins,
             patch({{{"op", "Add"}, {"path", "members"}, {"value", {{{"value", bob}}}}}}));
    EXPECT_EQ(added.status, 204) << added.raw;
    EXPECT_EQ(authorize("bob@acme.com", "acme", "org.roles.manage"), 0);
    Reply bob_now = call("GET", "/Users/" + bob);
    ASSERT_EQ(bob_now.body["groups"].size(), 1u) << bob_now.raw;
    EXPECT_EQ(bob_now.body["groups"][0]["display"], "Acme Admins");

    // Entra removes with a value array.
    call("PATCH", "/Groups/" + admins,
         patch({{{"op", "Remove"}, {"path", "members"}, {"value", {{{"value", bob}}}}}}));
    EXPECT_EQ(authorize("bob@acme.com", "acme", "org.roles.manage"), 1);

    // Okta mixes remove (value filter path) and add in one PATCH.
    call("PATCH", "/Groups/" + admins,
         patch({{{"op", "add"},
                 {"path", "members"},
                 {"value", {{{"value", carol}}, {{"value", dave}}}}}}));
    Reply mixed =
        call("PATCH", "/Groups/" + admins,
             patch({{{"op", "remove"}, {"path", "members[value eq \"" + carol + "\"]"}},
                    {{"op", "add"}, {"path", "members"}, {"value", {{{"value", bob}}}}}}));
    EXPECT_EQ(mixed.status, 204) << mixed.raw;
    Reply group = call("GET", "/Groups/" + admins);
    std::set<std::string> members;
    for (const auto& member : group.body["members"]) {
        members.insert(member["value"]);
    }
    EXPECT_EQ(members, (std::set<std::string>{bob, dave}));
    EXPECT_EQ(authorize("carol@acme.com", "acme", "org.roles.manage"), 1);
    EXPECT_EQ(authorize("dave@acme.com", "acme", "org.roles.manage"), 0);

    // Okta's full member replace.
    call("PATCH", "/Groups/" + admins,
         patch({{{"op", "replace"}, {"path", "members"}, {"value", {{{"value", carol}}}}}}));
    group = call("GET", "/Groups/" + admins);
    ASSERT_EQ(group.body["members"].size(), 1u);
    EXPECT_EQ(group.body["members"][0]["value"], carol);
    EXPECT_EQ(authorize("carol@acme.com", "acme", "org.roles.manage"), 0);
    EXPECT_EQ(authorize("dave@acme.com", "acme", "org.roles.manage"), 1);

    // Okta's group rename carries the id along; both are accepted.
    Reply renamed = call("PATCH", "/Groups/" + admins,
                         patch({{{"op", "replace"},
                                 {"value", {{"id", admins}, {"displayName", "Former Admins"}}}}}));
    EXPECT_EQ(renamed.status, 204) << renamed.raw;
    EXPECT_EQ(authorize("carol@acme.com", "acme", "org.roles.manage"), 1);

    // Deleting a group removes what it granted; deleting a user takes
    // them out of groups.
    std::string team = create_group("Vision Team", {{{"value", dave}}});
    EXPECT_EQ(authorize("dave@acme.com", "acme", "project.resources.write", "vision"), 0);
    EXPECT_EQ(call("DELETE", "/Users/" + dave).status, 204);
    EXPECT_TRUE(call("GET", "/Groups/" + team).body["members"].empty());
    EXPECT_EQ(call("DELETE", "/Groups/" + team).status, 204);
    expect_error(call("GET", "/Groups/" + team), 404);
}

TEST_F(ScimServerTest, GroupGrantsFollowMembership) {
    std::string erin = create_user("erin@acme.com");
    EXPECT_EQ(authorize("erin@acme.com", "acme", "project.resources.write", "vision"), 1);
    std::string team = create_group("Vision Team", {{{"value", erin}}});
    EXPECT_EQ(authorize("erin@acme.com", "acme", "project.resources.write", "vision"), 0);
    call("PATCH", "/Groups/" + team,
         patch({{{"op", "Remove"}, {"path", "members[value eq \"" + erin + "\"]"}}}));
    EXPECT_EQ(authorize("erin@acme.com", "acme", "project.resources.write", "vision"), 1);

    // A user outside the org's domains joins the bound org as an external guest.
    std::string outsider = create_user("pat@contractor.example");
    EXPECT_EQ(authorize("pat@contractor.example", "acme", "org.metrics.read"), 1);
    call("PATCH", "/Groups/" + team,
         patch({{{"op", "Add"}, {"path", "members"}, {"value", {{{"value", outsider}}}}}}));
    EXPECT_EQ(authorize("pat@contractor.example", "acme", "project.resources.write", "vision"), 0);
}

// A lookup an index answers (userName, externalId, id eq) is written from
// the stored text; the same users read through the document path (an
// excludedAttributes that removes nothing, a filter with `and`) must read
// the same, byte for byte once parsed.
TEST_F(ScimServerTest, IndexedLookupsAnswerAsTheDocumentPathDoes) {
    const std::string plain = create_user("plain@acme.com", "ext-plain");
    Reply tricky =
        call("POST", "/Users",
             {{"schemas", json::array({k_user, k_enterprise})},
              {"userName", "Tricky@acme.com"},
              {"externalId", "ext-\"tricky\"}"},
              {"displayName", "Q \"meta\":{} ] } \\ Ingénieur \u4e2d"},
              {"title", "}"},
              {"emails",
               json::array({{{"primary", true}, {"type", "work"}, {"value", "tricky@acme.com"}}})},
              {k_enterprise, {{"department", "R&D"}, {"manager", {{"value", plain}}}}}});
    ASSERT_EQ(tricky.status, 201) << tricky.raw;
    const std::string tricky_id = tricky.body["id"];
    create_group("Acme Admins", json::array({{{"value", tricky_id}}}));
    create_group("Second", json::array({{{"value", tricky_id}}}));

    const std::string lookups[] = {
        "userName%20eq%20%22plain%40acme.com%22",
        "userName%20eq%20%22TRICKY%40ACME.COM%22",
        "externalId%20eq%20%22ext-%5C%22tricky%5C%22%7D%22",
        "id%20eq%20%22" + tricky_id + "%22",
        "userName%20eq%20%22nobody%40acme.com%22",
    };
    for (const auto& filter : lookups) {
        for (const std::string page : {"", "&startIndex=2", "&count=0"}) {
            Reply fast = call("GET", "/Users?filter=" + filter + page);
            Reply document =
                call("GET", "/Users?filter=" + filter + page + "&excludedAttributes=nickName");
            ASSERT_EQ(fast.status, 200) << fast.raw;
            EXPECT_EQ(fast.body, document.body) << filter << page;
            Reply compound = call("GET", "/Users?filter=(" + filter + ")%20and%20not%20(" + filter +
                                             "%20and%20active%20eq%20false)" + page);
            EXPECT_EQ(fast.body, compound.body) << filter << page;
        }
    }
    Reply found = call("GET", "/Users?filter=" + lookups[1]);
    ASSERT_EQ(found.body["Resources"].size(), 1U) << found.raw;
    // The two paths did run: the stored text keeps its key order and gets
    // meta.location last, where the document path writes keys sorted.
    EXPECT_NE(found.raw,
              call("GET", "/Users?filter=" + lookups[1] + "&excludedAttributes=nickName").raw);
    const json& user = found.body["Resources"][0];
    EXPECT_EQ(user["groups"].size(), 2U) << found.raw;
    EXPECT_EQ(user["meta"]["location"], "http://127.0.0.1:" + std::to_string(m_daemon->port()) +
                                            "/scim/v2/Users/" + tricky_id);
}

TEST_F(ScimServerTest, PaginationIsStableAndComplete) {
    std::set<std::string> created;
    for (int i = 0; i < 11; ++i) {
        created.insert(create_user("user" + std::to_string(i) + "@acme.com"));
    }
    std::set<std::string> seen;
    int pages = 0;
    for (int start = 1; start <= 11; start += 5) {
        Reply page = call("GET", "/Users?startIndex=" + std::to_string(start) + "&count=5");
        ASSERT_EQ(page.status, 200);
        EXPECT_TRUE(page.body["totalResults"].is_number_integer());
        EXPECT_EQ(page.body["totalResults"], 11);
        EXPECT_EQ(page.body["startIndex"], start);
        EXPECT_EQ(page.body["itemsPerPage"], start == 11 ? 1 : 5);
        for (const auto& user : page.body["Resources"]) {
            EXPECT_TRUE(seen.insert(user["id"]).second) << "seen twice: " << user["id"];
        }
        ++pages;
    }
    EXPECT_EQ(pages, 3);
    EXPECT_EQ(seen, created);
    Reply past = call("GET", "/Users?startIndex=50&count=5");
    EXPECT_EQ(past.body["totalResults"], 11);
    EXPECT_TRUE(past.body["Resources"].empty());
    Reply counted = call("GET", "/Users?count=0");
    EXPECT_EQ(counted.body["totalResults"], 11);
    EXPECT_EQ(counted.body["itemsPerPage"], 0);
    Reply projected = call("GET", "/Users?count=1&attributes=userName");
    const json& only = projected.body["Resources"][0];
    EXPECT_TRUE(only.contains("id"));
    EXPECT_TRUE(only.contains("userName"));
    EXPECT_FALSE(only.contains("emails"));
    expect_error(call("GET", "/Users?count=many"), 400, "invalidValue");
}

TEST_F(ScimServerTest, ConflictsUnknownIdsAndStaleVersions) {
    std::string id = create_user("frank@acme.com");
    expect_error(call("POST", "/Users",
                      {{"schemas", json::array({k_user})}, {"userName", "FRANK@acme.com"}}),
                 409, "uniqueness");
    create_group("Reviewers");
    expect_error(call("POST", "/Groups",
                      {{"schemas", json::array({k_group})}, {"displayName", "reviewers"}}),
                 409, "uniqueness");
    std::string other = create_user("gina@acme.com");
    expect_error(
        call("PATCH", "/Users/" + other,
             patch({{{"op", "replace"}, {"path", "userName"}, {"value", "frank@acme.com"}}})),
        409, "uniqueness");

    expect_error(call("GET", "/Users/00000000-0000-4000-8000-000000000000"), 404);
    expect_error(call("PATCH", "/Users/nope",
                      patch({{{"op", "replace"}, {"path", "active"}, {"value", false}}})),
                 404);
    expect_error(call("PUT", "/Groups/nope", {{"displayName", "x"}}), 404);
    expect_error(call("GET", "/Widgets"), 404);

    // If-Match with a stale version is refused and changes nothing.
    Reply current = call("GET", "/Users/" + id);
    call("PATCH", "/Users/" + id,
         patch({{{"op", "replace"}, {"path", "title"}, {"value", "Lead"}}}));
    Reply stale = call("PATCH", "/Users/" + id,
                       patch({{{"op", "replace"}, {"path", "title"}, {"value", "Intern"}}}),
                       k_entra_token, {{"If-Match", current.etag}});
    expect_error(stale, 412);
    EXPECT_EQ(call("GET", "/Users/" + id).body["title"], "Lead");
    Reply fresh = call("GET", "/Users/" + id);
    Reply matched = call("PATCH", "/Users/" + id,
                         patch({{{"op", "replace"}, {"path", "title"}, {"value", "Staff"}}}),
                         k_entra_token, {{"If-Match", fresh.etag}});
    EXPECT_EQ(matched.status, 200) << matched.raw;

    // Members must be users of this source.
    expect_error(call("POST", "/Groups",
                      {{"displayName", "Ghosts"}, {"members", {{{"value", "no-such-user"}}}}}),
                 400, "invalidValue");
    EXPECT_EQ(call("GET", "/Groups?filter=displayName%20eq%20%22Ghosts%22").body["totalResults"],
              0);
}

TEST_F(ScimServerTest, BadRequestsChangeNothing) {
    std::string id = create_user("hank@acme.com");
    const std::string before = call("GET", "/Users/" + id).raw;

    expect_error(send("POST", "/Users", "{\"userName\": ",
                      {{"Authorization", std::string("Bearer ") + k_entra_token}}),
                 400, "invalidSyntax");
    expect_error(call("POST", "/Users", {{"displayName", "no user name"}}), 400, "invalidValue");
    expect_error(call("POST", "/Users", json::array()), 400, "invalidSyntax");
    expect_error(call("GET", "/Users?filter=userName%20eq"), 400, "invalidFilter");
    expect_error(call("GET", "/Users?filter=" + std::string(5000, 'a')), 400, "invalidFilter");
    expect_error(call("PATCH", "/Users/" + id, patch({{{"op", "explode"}, {"path", "title"}}})),
                 400, "invalidValue");
    expect_error(call("PATCH", "/Users/" + id,
                      patch({{{"op", "replace"}, {"path", "title"}, {"value", "ok"}},
                             {{"op", "replace"}, {"path", "nosuch[["}, {"value", "x"}}})),
                 400, "invalidPath");
    expect_error(
        call("PATCH", "/Users/" + id, patch({{{"op", "replace"}, {"path", "id"}, {"value", "x"}}})),
        400, "mutability");

    // Oversize body: refused before it is read. The daemon answers 413 and
    // closes once it has the head, so the client can still be sending the
    // body when the connection goes, and then sees its write (or the read
    // after it) fail instead: the same refusal. SecurityTest checks the 413
    // itself with a client that reads while it sends.
    ::signal(SIGPIPE, SIG_IGN);  // that write fails rather than ending the test
    std::string huge =
        "{\"userName\":\"x@acme.com\",\"title\":\"" + std::string(2 << 20, 'x') + "\"}";
    const auto big = m_client->Post("/scim/v2/Users",
                                    {{"Authorization", std::string("Bearer ") + k_entra_token}},
                                    huge, "application/scim+json");
    if (big) {
        EXPECT_EQ(big->status, 413);
    } else {
        EXPECT_TRUE(big.error() == httplib::Error::Write || big.error() == httplib::Error::Read)
            << httplib::to_string(big.error());
    }

    // Too many members in one PATCH.
    std::string group = create_group("Big");
    json values = json::array();
    for (int i = 0; i < 10001; ++i) {
        values.push_back({{"value", "u" + std::to_string(i)}});
    }
    expect_error(call("PATCH", "/Groups/" + group,
                      patch({{{"op", "add"}, {"path", "members"}, {"value", values}}})),
                 400, "tooMany");

    EXPECT_EQ(call("GET", "/Users/" + id).raw, before);
    EXPECT_EQ(call("GET", "/Users?count=0").body["totalResults"], 1);
}

TEST_F(ScimServerTest, TokensAndTenants) {
    // No token, a wrong token, another scheme.
    expect_error(call("GET", "/Users", nullptr, nullptr), 401);
    expect_error(call("GET", "/Users", nullptr, "entra-token-0123456788"), 401);
    Reply basic = send("GET", "/Users", "", {{"Authorization", "Basic ZW50cmE6eA=="}});
    expect_error(basic, 401);
    expect_error(call("POST", "/Users", {{"userName", "mallory@acme.com"}}, "wrong"), 401);

    std::string acme_user = create_user("ivy@acme.com");
    std::string acme_group = create_group("Acme Admins");
    std::string beta_user = create_user("jay@beta.org", "", k_okta_token);

    // Okta's token (org beta) cannot see or touch Entra's records (org acme).
    Reply listed = call("GET", "/Users", nullptr, k_okta_token);
    ASSERT_EQ(listed.body["totalResults"], 1);
    EXPECT_EQ(listed.body["Resources"][0]["id"], beta_user);
    EXPECT_EQ(call("GET", "/Users?filter=userName%20eq%20%22ivy@acme.com%22", nullptr, k_okta_token)
                  .body["totalResults"],
              0);
    expect_error(call("GET", "/Users/" + acme_user, nullptr, k_okta_token), 404);
    expect_error(call("PUT", "/Users/" + acme_user,
                      {{"userName", "ivy@acme.com"}, {"active", false}}, k_okta_token),
                 404);
    expect_error(
        call("PATCH", "/Users/" + acme_user,
             patch({{{"op", "replace"}, {"path", "active"}, {"value", false}}}), k_okta_token),
        404);
    expect_error(call("DELETE", "/Users/" + acme_user, nullptr, k_okta_token), 404);
    expect_error(
        call("PATCH", "/Groups/" + acme_group,
             patch({{{"op", "add"}, {"path", "members"}, {"value", {{{"value", beta_user}}}}}}),
             k_okta_token),
        404);
    expect_error(call("DELETE", "/Groups/" + acme_group, nullptr, k_okta_token), 404);
    // A group of one source cannot list another source's user.
    expect_error(
        call("PATCH", "/Groups/" + acme_group,
             patch({{{"op", "add"}, {"path", "members"}, {"value", {{{"value", beta_user}}}}}})),
        400, "invalidValue");
    EXPECT_EQ(call("GET", "/Users/" + acme_user).body["active"], true);
    EXPECT_EQ(authorize("ivy@acme.com", "acme", "org.projects.create"), 0);
    EXPECT_EQ(authorize("jay@beta.org", "beta", "org.projects.create"), 0);
    EXPECT_EQ(authorize("jay@beta.org", "acme", "org.metrics.read"), 1);
}

TEST_F(ScimServerTest, DiscoveryEndpoints) {
    Reply config = call("GET", "/ServiceProviderConfig");
    EXPECT_EQ(config.status, 200);
    EXPECT_EQ(config.body["patch"]["supported"], true);
    EXPECT_EQ(config.body["filter"]["maxResults"], 1000);
    Reply types = call("GET", "/ResourceTypes");
    EXPECT_EQ(types.body["totalResults"], 2);
    EXPECT_EQ(call("GET", "/ResourceTypes/User").body["endpoint"], "/Users");
    Reply schemas = call("GET", "/Schemas");
    EXPECT_EQ(schemas.body["totalResults"], 3);
    Reply user_schema = call("GET", std::string("/Schemas/") + k_user);
    ASSERT_EQ(user_schema.status, 200);
    bool has_user_name = false;
    for (const auto& attribute : user_schema.body["attributes"]) {
        has_user_name = has_user_name || attribute["name"] == "userName";
    }
    EXPECT_TRUE(has_user_name);
    expect_error(call("DELETE", "/ServiceProviderConfig"), 405);
}

// POST /Users from many clients at once: what arrives while a commit is
// under way is committed together (group commit), and each request still
// gets the answer it would get alone: a userName is created once, whatever
// its case; a user the store refuses (internal in another org already) is
// refused without failing the users committed with it; every acknowledged
// user is in the store, a member of the org.
TEST_F(ScimServerTest, ConcurrentCreatesAreEachAnsweredAsIfAlone) {
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
    {
        auto store = directory::Store::open(m_dir / "orgsync.db");
        ASSERT_TRUE(store) << store.error().message;
        auto written =
            (*store)->write("manual", [](directory::Transaction& tx) -> directory::Expected<void> {
                auto beta = tx.find_org_id("beta");
                if (!beta || !*beta) {
                    return directory::fail(directory::ErrorCode::not_found, "no org beta");
                }
                auto user = tx.upsert_user("taken@acme.com", "Taken");
                if (!user) {
                    return std::unexpected(user.error());
                }
                return tx.assert_membership(
                    **beta, *user,
                    directory::MembershipAssertion{"manual", directory::UserType::internal,
                                                   directory::OrgRole::member});
            });
        ASSERT_TRUE(written) << written.error().message;
    }
    start();

    constexpr int k_clients = 8;
    constexpr int k_own = 15;    // users only one client creates
    constexpr int k_shared = 5;  // userNames every client sends, in its own case
    std::mutex mutex;
    std::map<std::string, std::vector<int>> statuses;  // folded userName -> answers
    std::vector<std::thread> clients;
    for (int c = 0; c < k_clients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", m_daemon->port());
            client.set_read_timeout(30, 0);
            const httplib::Headers auth{{"Authorization", std::string("Bearer ") + k_entra_token}};
            auto post = [&](const std::string& user_name, const std::string& folded) {
                json body = {{"schemas", json::array({k_user})},
                             {"userName", user_name},
                             {"active", true},
                             {"emails", json::array({{{"primary", true}, {"value", folded}}})}};
                auto reply =
                    client.Post("/scim/v2/Users", auth, body.dump(), "application/scim+json");
                std::lock_guard lock(mutex);
                statuses[folded].push_back(reply ? reply->status : -1);
            };
            // Own users, with the refused one among them, then the shared
            // userNames.
            std::vector<std::pair<std::string, std::string>> requests;
            for (int i = 0; i < k_own; ++i) {
                auto name = "c" + std::to_string(c) + "-" + std::to_string(i) + "@acme.com";
                requests.emplace_back(name, name);
                if (i == k_own / 2) {
                    requests.emplace_back("taken@acme.com", "taken@acme.com");
                }
            }
            for (int i = 0; i < k_shared; ++i) {
                auto folded = "shared" + std::to_string(i) + "@acme.com";
                auto name = folded;
                auto& letter = name[static_cast<std::size_t>(c) % 6];
                letter = static_cast<char>(std::toupper(static_cast<unsigned char>(letter)));
                requests.emplace_back(name, folded);
            }
            for (const auto& [name, folded] : requests) {
                post(name, folded);
            }
        });
    }
    for (auto& client : clients) {
        client.join();
    }

    std::size_t created = 0;
    for (const auto& [folded, answers] : statuses) {
        const auto created_here = std::count(answers.begin(), answers.end(), 201);
        created += static_cast<std::size_t>(created_here);
        if (folded == "taken@acme.com") {
            EXPECT_EQ(answers, std::vector<int>(k_clients, 409));
        } else if (folded.starts_with("shared")) {
            EXPECT_EQ(created_here, 1) << folded;
            EXPECT_EQ(std::count(answers.begin(), answers.end(), 409), k_clients - 1) << folded;
        } else {
            EXPECT_EQ(answers, std::vector<int>{201}) << folded;
        }
    }
    EXPECT_EQ(created, static_cast<std::size_t>(k_clients * k_own + k_shared));
    EXPECT_EQ(call("GET", "/Users?count=0").body["totalResults"], created);
    EXPECT_EQ(
        call("GET", "/Users?filter=userName%20eq%20%22taken%40acme.com%22").body["totalResults"],
        0);
    EXPECT_EQ(authorize("c3-7@acme.com", "acme", "org.projects.create"), 0);
    EXPECT_EQ(authorize("shared2@acme.com", "acme", "org.projects.create"), 0);
    EXPECT_EQ(authorize("taken@acme.com", "acme", "org.projects.create"), 1);
}

TEST_F(ScimServerTest, AcknowledgedWritesSurviveAKill) {
    std::string id = create_user("kim@acme.com");
    std::string group = create_group("Acme Admins", {{{"value", id}}});
    EXPECT_EQ(m_daemon->stop(SIGKILL), 128 + SIGKILL);
    start();
    EXPECT_EQ(call("GET", "/Users/" + id).body["userName"], "kim@acme.com");
    EXPECT_EQ(call("GET", "/Groups/" + group).body["members"][0]["value"], id);
    EXPECT_EQ(authorize("kim@acme.com", "acme", "org.roles.manage"), 0);
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
    EXPECT_NE(m_daemon->log().find("event=daemon.stopped"), std::string::npos);
}

}  // namespace
}  // namespace orgsync::scim
