// Security of `orgsyncd run` over real HTTP: tenant isolation on every
// /scim/v2 route, the API token on every /v1 route (both enumerated from the
// route registration in the sources, so a new route fails the test until it
// is covered), secrets kept out of the store, the log and check-config,
// hostile values in LDAP filters and group names, and oversize requests.
// Slow clients: service_test.cpp, SlowClientsAreCutOffAndDoNotStarveOthers.

#include <fmt/format.h>

#include <atomic>
#include <regex>
#include <set>

#include "tests/daemon/service_fixture.hpp"

namespace orgsync::daemon {
namespace {

using namespace service_test;
using Steady = std::chrono::steady_clock;

constexpr const char* k_acme_token = "scim-token-acme-0123456789";
constexpr const char* k_beta_token = "scim-token-beta-9876543210";
constexpr const char* k_user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
constexpr const char* k_group_schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
constexpr const char* k_patch_schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

std::string source_text(const std::string& relative) {
    return daemon::test::slurp(fs::path(ORGSYNC_SOURCE_DIR) / relative);
}

// Every match of `pattern`'s first group in `text`, as "<group 1> <group 2>".
std::set<std::string> matches(const std::string& text, const std::string& pattern) {
    std::set<std::string> out;
    const std::regex re(pattern);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
         ++it) {
        out.insert((*it)[1].str() + ((*it).size() > 2 ? " " + (*it)[2].str() : ""));
    }
    return out;
}

// A resident set size in KiB, from /proc.
long rss_kib(pid_t pid) {
    std::istringstream status(daemon::test::slurp("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

class SecurityTest : public ServiceFixture {
  protected:
    void SetUp() override {
        ServiceFixture::SetUp();
        write_file(m_dir / "acme-token", std::string(k_acme_token) + "\n");
        write_file(m_dir / "beta-token", k_beta_token);
    }

    static std::string scim_sources() {
        return "[[source]]\nname = \"idp-acme\"\ntype = \"scim\"\norg = \"acme\"\n"
               "token_file = \"acme-token\"\n"
               "[[source]]\nname = \"idp-beta\"\ntype = \"scim\"\norg = \"beta\"\n"
               "token_file = \"beta-token\"\n";
    }

    // A SCIM request with `token` (nullptr: no Authorization header).
    Reply scim(const std::string& method, const std::string& path, const json& body,
               const char* token) {
        httplib::Headers headers;
        if (token != nullptr) {
            headers.emplace("Authorization", std::string("Bearer ") + token);
        }
        auto result = send(method, "/scim/v2" + path, body.is_null() ? "" : body.dump(), headers,
                           "application/scim+json");
        if (!result) {
            ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(result.error());
            return {};
        }
        return {result->status, json::parse(result->body, nullptr, false)};
    }

    std::string create_user(const std::string& email, const char* token) {
        auto reply = scim("POST", "/Users",
                          {{"schemas", {k_user_schema}},
                           {"userName", email},
                           {"externalId", "ext-" + email},
                           {"displayName", "Name of " + email},
                           {"active", true},
                           {"emails", {{{"value", email}, {"primary", true}}}}},
                          token);
        EXPECT_EQ(reply.status, 201) << reply.body.dump();
        return reply.body.value("id", "");
    }

    std::string create_group(const std::string& name, const std::vector<std::string>& members,
                             const char* token) {
        json list = json::array();
        for (const auto& id : members) {
            list.push_back({{"value", id}});
        }
        auto reply =
            scim("POST", "/Groups",
                 {{"schemas", {k_group_schema}}, {"displayName", name}, {"members", list}}, token);
        EXPECT_EQ(reply.status, 201) << reply.body.dump();
        return reply.body.value("id", "");
    }

    // What /v1/authorize says each member of `org` may do there.
    json decisions(const std::string& org) {
        json out = json::object();
        const json members = api("GET", "/v1/orgs/" + org + "/members").body["members"];
        for (const auto& member : members) {
            const std::string email = member["email"];
            out[email] = api("POST", "/v1/authorize",
                             {{"user", email}, {"org", org}, {"action", "org.metrics.read"}})
                             .body;
        }
        return out;
    }

    // Everything a tenant's token reads of its own data, and its org as /v1
    // shows it: compared before and after the other tenant's attempts.
    json tenant_state(const char* token, const std::string& org) {
        json state;
        state["users"] = scim("GET", "/Users?count=1000", nullptr, token).body;
        state["groups"] = scim("GET", "/Groups?count=1000", nullptr, token).body;
        state["members"] = api("GET", "/v1/orgs/" + org + "/members").body;
        state["groups_v1"] = api("GET", "/v1/orgs/" + org + "/groups").body;
        state["decisions"] = decisions(org);
        return state;
    }
};

// ---- tenant isolation -----------------------------------------------------------

// The SCIM endpoints the test covers, as the service's dispatch names them
// (connectors/scim/service.cpp, Service::Impl::route), and the methods it
// dispatches on.
const std::set<std::string> k_scim_endpoints = {"Users", "Groups", "ServiceProviderConfig",
                                                "Schemas", "ResourceTypes"};
const std::set<std::string> k_scim_methods = {"GET", "POST", "PUT", "PATCH", "DELETE"};

TEST_F(SecurityTest, TheScimRouteTableIsTheOneTheIsolationTestCovers) {
    const std::string service = source_text("connectors/scim/service.cpp");
    const auto route = service.substr(service.find("ScimResponse Service::Impl::route("));
    const auto body = route.substr(0, route.find("\n}\n"));
    EXPECT_EQ(matches(body, R"re(top == "(\w+)")re"), k_scim_endpoints)
        << "a SCIM endpoint was added or removed: cover it in "
           "TenantsCannotReadOrChangeEachOthersData";
    EXPECT_EQ(matches(body, R"re(method == "(\w+)")re"), k_scim_methods);
    // The daemon hands every method of the five to the service.
    const std::string daemon = source_text("daemon/daemon.cpp");
    EXPECT_EQ(matches(daemon, R"re(http\.(Get|Post|Put|Patch|Delete)\(pattern)re"),
              (std::set<std::string>{"Get", "Post", "Put", "Patch", "Delete"}));
}

TEST_F(SecurityTest, TenantsCannotReadOrChangeEachOthersData) {
    write_config(scim_sources());
    write_mapping();
    start();

    struct Tenant {
        const char* token;
        std::string org;
        std::string domain;
        std::string user;
        std::string other_user;
        std::string group;
    };
    Tenant acme{k_acme_token, "acme", "acme.com", "", "", ""};
    Tenant beta{k_beta_token, "beta", "beta.org", "", "", ""};
    for (Tenant* tenant : {&acme, &beta}) {
        tenant->user = create_user("one@" + tenant->domain, tenant->token);
        tenant->other_user = create_user("two@" + tenant->domain, tenant->token);
        tenant->group = create_group("Team " + tenant->org, {tenant->user}, tenant->token);
        ASSERT_FALSE(tenant->user.empty() || tenant->group.empty());
    }

    int attempts = 0;
    for (auto [attacker, victim] : {std::pair{&acme, &beta}, std::pair{&beta, &acme}}) {
        const json before = tenant_state(victim->token, victim->org);
        const char* token = attacker->token;
        const std::string victim_user_name = "one@" + victim->domain;
        std::set<std::string> covered;  // "METHOD /Endpoint[/{id}]"
        auto expect = [&](const std::string& method, const std::string& path, const json& body,
                          int status, const std::string& route) {
            ++attempts;
            covered.insert(method + " " + route);
            auto reply = scim(method, path, body, token);
            EXPECT_EQ(reply.status, status) << method << " " << path << ": " << reply.body.dump();
            // Never a trace of the victim's records in what the attacker gets
            // (errors may repeat the id asked for).
            const std::string text = reply.status / 100 == 2 ? reply.body.dump() : "";
            for (const auto& id : {victim->user, victim->other_user, victim->group}) {
                EXPECT_EQ(text.find(id), std::string::npos)
                    << method << " " << path << ": " << text;
            }
            return reply;
        };

        // Users: list, filters on every attribute that identifies a user, get.
        auto listed = expect("GET", "/Users", nullptr, 200, "/Users");
        EXPECT_EQ(listed.body["totalResults"], 2);
        for (const std::string& filter : std::vector<std::string>{
                 "userName eq \"" + victim_user_name + "\"", "id eq \"" + victim->user + "\"",
                 "externalId eq \"ext-" + victim_user_name + "\"",
                 "userName co \"" + victim->domain + "\"",
                 "emails.value eq \"" + victim_user_name + "\"", "userName pr",
                 "displayName sw \"Name of\""}) {
            auto filtered =
                expect("GET", "/Users?filter=" + url_encode(filter), nullptr, 200, "/Users");
            for (const auto& resource : filtered.body["Resources"]) {
                EXPECT_NE(resource["userName"].get<std::string>().find(attacker->domain),
                          std::string::npos)
                    << filter;
            }
        }
        expect("GET", "/Users/" + victim->user, nullptr, 404, "/Users/{id}");
        // Writes addressed to the victim's user.
        const json user_body = {{"schemas", {k_user_schema}},
                                {"userName", victim_user_name},
                                {"active", false},
                                {"displayName", "Taken over"}};
        expect("PUT", "/Users/" + victim->user, user_body, 404, "/Users/{id}");
        expect("PATCH", "/Users/" + victim->user,
               {{"schemas", {k_patch_schema}},
                {"Operations", {{{"op", "replace"}, {"path", "active"}, {"value", false}}}}},
               404, "/Users/{id}");
        expect("DELETE", "/Users/" + victim->user, nullptr, 404, "/Users/{id}");
        // A user of the same name in the attacker's own tenant is the
        // attacker's record, not the victim's (created, then removed). The
        // same user disabled is ATenantCannotDisableAnotherTenantsAccount.
        const json decided = decisions(victim->org);
        json same_body = user_body;
        same_body["active"] = true;
        auto same_name = expect("POST", "/Users", same_body, 201, "/Users");
        EXPECT_EQ(decisions(victim->org), decided);
        EXPECT_EQ(expect("DELETE", "/Users/" + same_name.body.value("id", ""), nullptr, 204,
                         "/Users/{id}")
                      .status,
                  204);

        // Groups: list, filter, get, and member references to the victim's users.
        auto groups = expect("GET", "/Groups", nullptr, 200, "/Groups");
        EXPECT_EQ(groups.body["totalResults"], 1);
        expect("GET", "/Groups?filter=" + url_encode("displayName eq \"Team " + victim->org + "\""),
               nullptr, 200, "/Groups");
        expect("GET", "/Groups/" + victim->group, nullptr, 404, "/Groups/{id}");
        const json victim_members = {{{"value", victim->user}}, {{"value", victim->other_user}}};
        expect(
            "POST", "/Groups",
            {{"schemas", {k_group_schema}}, {"displayName", "Grab"}, {"members", victim_members}},
            400, "/Groups");
        expect("PUT", "/Groups/" + attacker->group,
               {{"schemas", {k_group_schema}},
                {"displayName", "Team " + attacker->org},
                {"members", victim_members}},
               400, "/Groups/{id}");
        expect("PATCH", "/Groups/" + attacker->group,
               {{"schemas", {k_patch_schema}},
                {"Operations", {{{"op", "add"}, {"path", "members"}, {"value", victim_members}}}}},
               400, "/Groups/{id}");
        expect("PUT", "/Groups/" + victim->group,
               {{"schemas", {k_group_schema}}, {"displayName", "Mine"}, {"members", json::array()}},
               404, "/Groups/{id}");
        expect("PATCH", "/Groups/" + victim->group,
               {{"schemas", {k_patch_schema}},
                {"Operations", {{{"op", "remove"}, {"path", "members"}}}}},
               404, "/Groups/{id}");
        expect("DELETE", "/Groups/" + victim->group, nullptr, 404, "/Groups/{id}");

        // Discovery: the same for every tenant, and no tenant's data.
        for (const std::string endpoint : {"ServiceProviderConfig", "Schemas", "ResourceTypes"}) {
            expect("GET", "/" + endpoint, nullptr, 200, "/" + endpoint);
            for (const std::string method : {"POST", "PUT", "PATCH", "DELETE"}) {
                expect(method, "/" + endpoint, json::object(), 405, "/" + endpoint);
            }
        }
        expect("GET", "/Schemas/" + std::string(k_user_schema), nullptr, 200, "/Schemas/{id}");
        expect("GET", "/ResourceTypes/User", nullptr, 200, "/ResourceTypes/{id}");
        expect("GET", "/ServiceProviderConfig/" + victim->user, nullptr, 404,
               "/ServiceProviderConfig/{id}");
        // Methods the collections do not take.
        for (const std::string endpoint : {"Users", "Groups"}) {
            for (const std::string method : {"PUT", "PATCH", "DELETE"}) {
                expect(method, "/" + endpoint, json::object(), 405, "/" + endpoint);
            }
            expect("POST", "/" + endpoint + "/" + victim->user, json::object(), 405,
                   "/" + endpoint + "/{id}");
        }

        // Every method on every endpoint and every one of their items was tried.
        std::set<std::string> expected;
        for (const auto& endpoint : k_scim_endpoints) {
            for (const auto& method : k_scim_methods) {
                expected.insert(method + " /" + endpoint);
                if (endpoint != "ServiceProviderConfig" || method == "GET") {
                    expected.insert(method + " /" + endpoint + "/{id}");
                }
            }
        }
        for (const std::string endpoint : {"Schemas", "ResourceTypes"}) {
            for (const std::string method : {"POST", "PUT", "PATCH", "DELETE"}) {
                expected.erase(method + " /" + endpoint + "/{id}");
            }
        }
        EXPECT_EQ(covered, expected);

        // Without a token, or with a wrong one, every route answers 401.
        for (const auto& route : covered) {
            const auto space = route.find(' ');
            const std::string method = route.substr(0, space);
            std::string path = route.substr(space + 1);
            if (const auto id = path.find("{id}"); id != std::string::npos) {
                path.replace(id, 4, attacker->user);
            }
            for (const char* wrong : {static_cast<const char*>(nullptr), "not-a-token",
                                      "scim-token-acme-012345678", "scim-token-acme-01234567890"}) {
                EXPECT_EQ(scim(method, path, json::object(), wrong).status, 401)
                    << route << " with " << (wrong ? wrong : "no token");
            }
        }

        // The victim's data is as it was.
        EXPECT_EQ(tenant_state(victim->token, victim->org), before);
    }
    std::printf("[ tenants  ] %d cross-tenant requests refused or confined\n", attempts);
}

// Accounts are one record for the whole platform. A tenant may bring
// another org's people into its own org as guests, and keep them out again
// with `active: false`, but whether their account is enabled is for the
// sources that speak for their domain: neither a push nor a later run of
// the home tenant or of a full re-derive picks up the other tenant's say.
TEST_F(SecurityTest, ATenantCannotDisableAnotherTenantsAccount) {
    write_config(scim_sources());
    write_mapping();
    start();
    const std::string one = create_user("one@beta.org", k_beta_token);
    ASSERT_FALSE(one.empty());
    const json decided = decisions("beta");
    ASSERT_EQ(decided["one@beta.org"]["allow"], true) << decided.dump();
    auto replace = [&](const std::string& id, const char* path, const json& value,
                       const char* token) {
        return scim("PATCH", "/Users/" + id,
                    {{"schemas", {k_patch_schema}},
                     {"Operations", {{{"op", "replace"}, {"path", path}, {"value", value}}}}},
                    token);
    };
    auto members_of = [&](const std::string& org) {
        std::set<std::string> emails;
        const Reply reply = api("GET", "/v1/orgs/" + org + "/members");
        for (const auto& member : reply.body["members"]) {
            emails.insert(member["email"].get<std::string>());
        }
        return emails;
    };

    auto pushed = scim("POST", "/Users",
                       {{"schemas", {k_user_schema}},
                        {"userName", "one@beta.org"},
                        {"active", false},
                        {"displayName", "Taken over"}},
                       k_acme_token);
    ASSERT_EQ(pushed.status, 201) << pushed.body.dump();
    EXPECT_EQ(decisions("beta"), decided);
    EXPECT_FALSE(members_of("acme").contains("one@beta.org"));

    // The home tenant writes the account again, and its source is derived
    // again in full: the other tenant's disable still counts for nothing.
    auto renamed = replace(one, "displayName", "One Again", k_beta_token);
    ASSERT_EQ(renamed.status, 200) << renamed.body.dump();
    EXPECT_EQ(decisions("beta"), decided);
    ASSERT_EQ(api("POST", "/v1/sync/idp-beta?wait=true&force=true").status, 200);
    EXPECT_EQ(decisions("beta"), decided);

    // Enabled by the other tenant, the person is a guest there, and nothing
    // more.
    auto enabled = replace(pushed.body.value("id", ""), "active", true, k_acme_token);
    ASSERT_EQ(enabled.status, 200) << enabled.body.dump();
    EXPECT_TRUE(members_of("acme").contains("one@beta.org"));
    EXPECT_EQ(decisions("beta"), decided);

    // The home tenant does speak for the account.
    auto disabled = replace(one, "active", false, k_beta_token);
    ASSERT_EQ(disabled.status, 200) << disabled.body.dump();
    EXPECT_EQ(decisions("beta")["one@beta.org"]["allow"], false) << decisions("beta").dump();
}

// ---- the /v1 API token ------------------------------------------------------------

TEST_F(SecurityTest, EveryV1RouteWantsTheApiToken) {
    // The routes as api.cpp registers them, each with a request for it.
    const std::map<std::string, std::pair<std::string, std::string>> routes = {
        {"Post /v1/authorize", {"POST", "/v1/authorize"}},
        {"Get /v1/orgs", {"GET", "/v1/orgs"}},
        {"Get /v1/orgs/([^/]+)/members", {"GET", "/v1/orgs/acme/members"}},
        {"Get /v1/orgs/([^/]+)/groups", {"GET", "/v1/orgs/acme/groups"}},
        {"Get /v1/orgs/([^/]+)/projects/([^/]+)/grants",
         {"GET", "/v1/orgs/acme/projects/vision/grants"}},
        {"Get /v1/status", {"GET", "/v1/status"}},
        {"Post /v1/sync/([^/]+)", {"POST", "/v1/sync/idp-acme"}},
    };
    const auto registered =
        matches(source_text("daemon/api.cpp"), R"re(server\.(\w+)\(\s*R?"\(?(/v1/[^"]*?)\)?")re");
    std::set<std::string> listed;
    for (const auto& [route, request] : routes) {
        listed.insert(route);
    }
    ASSERT_EQ(registered, listed) << "a /v1 route was added or removed: list it here";

    write_config(scim_sources());
    write_mapping();
    start();
    const std::string token = k_api_token;
    const std::vector<httplib::Headers> refused = {
        {},
        {{"Authorization", "Bearer"}},
        {{"Authorization", "Bearer "}},
        {{"Authorization", "Bearer wrong"}},
        {{"Authorization", "Bearer " + token.substr(0, token.size() - 1)}},
        {{"Authorization", "Bearer " + token + "x"}},
        {{"Authorization", "bearer " + token}},
        {{"Authorization", "Basic " + token}},
        {{"Authorization", token}},
        {{"Authorization", "Bearer " + std::string(k_acme_token)}},  // a SCIM token
    };
    for (const auto& [route, request] : routes) {
        for (const auto& headers : refused) {
            auto reply = call(request.first, request.second, "{}", headers);
            EXPECT_EQ(reply.status, 401)
                << route << " " << (headers.empty() ? "" : headers.begin()->second);
        }
        EXPECT_NE(call(request.first, request.second, "{}").status, 401) << route;
    }
    // A sync run was never started by a refused request.
    EXPECT_EQ(m_daemon->log().find("event=sync.requested source=idp-acme force=false via=api"),
              m_daemon->log().rfind("event=sync.requested source=idp-acme"));
}

// ---- secrets --------------------------------------------------------------------

TEST_F(SecurityTest, NoSecretInTheStoreTheLogOrCheckConfig) {
    // Every kind of secret the daemon takes: the API token, two SCIM tokens,
    // the hook secret, a webhook target's secret, an LDAP bind password.
    start_directory();
    const std::string ldap_password = [&] {
        std::string text = daemon::test::slurp(m_slapd->reader_password_file());
        return text.substr(0, text.find('\n'));
    }();
    ASSERT_GE(ldap_password.size(), 8U);
    httplib::Server receiver;
    const int receiver_port = receiver.bind_to_any_port("127.0.0.1");
    receiver.Post("/hook", [](const httplib::Request&, httplib::Response& response) {
        response.status = 204;
    });
    std::thread serving([&] { receiver.listen_after_bind(); });
    write_config(ldap_source() + scim_sources() + "[[webhook.target]]\nurl = \"http://127.0.0.1:" +
                 std::to_string(receiver_port) + "/hook\"\nsecret_file = \"target-secret\"\n");
    write_mapping();
    start();
    wait_runs("corp", 1);
    const std::vector<std::string> secrets = {k_api_token,   k_acme_token,    k_beta_token,
                                              k_hook_secret, k_target_secret, ldap_password};

    // Use every one of them, right and wrong.
    create_user("sam@acme.com", k_acme_token);
    create_user("tess@beta.org", k_beta_token);
    EXPECT_EQ(scim("GET", "/Users", nullptr, "scim-token-acme-0123456788").status, 401);
    EXPECT_EQ(hook({{"type", "user.signup"}, {"email", "uma@acme.com"}, {"email_verified", true}},
                   now(), k_hook_secret)
                  .status,
              200);
    EXPECT_EQ(
        hook({{"type", "user.signup"}, {"email", "vic@acme.com"}}, now(), "hook-secret-for-test")
            .status,
        401);
    EXPECT_EQ(
        call("GET", "/v1/orgs", "", {{"Authorization", "Bearer api-token-for-tests-012"}}).status,
        401);
    EXPECT_EQ(api("POST", "/v1/sync/corp?wait=true").body["last_run"]["result"], "applied");
    const auto deadline = Steady::now() + 20s;
    while (api("GET", "/v1/status").body["outbox"]["depth"] != 0 && Steady::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    m_daemon->signal(SIGHUP);  // a reload reads every secret again
    std::this_thread::sleep_for(500ms);
    const std::string status = api("GET", "/v1/status").body.dump();
    const std::string metrics = m_client->Get("/metrics")->body;
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
    receiver.stop();
    serving.join();

    std::map<std::string, std::string> outputs = {
        {"log", m_daemon->log()}, {"/v1/status", status}, {"/metrics", metrics}};
    for (const auto& entry : fs::directory_iterator(m_dir)) {
        if (entry.path().filename().string().starts_with("orgsync.db")) {
            outputs["store file " + entry.path().filename().string()] =
                daemon::test::slurp(entry.path());
        }
    }
    EXPECT_GT(outputs["store file orgsync.db"].size(), 0U);
    const auto checked = daemon::test::run_orgsyncd(
        {"check-config", "-c", (m_dir / "orgsyncd.toml").string()}, m_dir);
    EXPECT_EQ(checked.status, 0) << checked.err;
    outputs["check-config"] = checked.out + checked.err;
    // A config check that fails, next to the same secrets.
    write_file(m_dir / "broken.toml", daemon::test::slurp(m_dir / "orgsyncd.toml") +
                                          "[[source]]\nname = \"x\"\ntype = \"ldap\"\n");
    const auto broken =
        daemon::test::run_orgsyncd({"check-config", "-c", (m_dir / "broken.toml").string()}, m_dir);
    EXPECT_EQ(broken.status, 1);
    outputs["check-config (failing)"] = broken.out + broken.err;
    for (const auto& [where, text] : outputs) {
        for (const auto& secret : secrets) {
            EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in " << where;
        }
    }
}

// ---- LDAP filters -----------------------------------------------------------------

TEST_F(SecurityTest, HostileFiltersAndValuesCannotWidenASearch) {
    start_directory();
    // A user whose uid and a group whose name are filter syntax.
    m_slapd->add("dn: uid=\\2A)(uid=\\2A,ou=people," + m_slapd->suffix() +
                 "\nobjectClass: inetOrgPerson\nuid: *)(uid=*\ncn: x\nsn: x\nmail: "
                 "hostile@acme.com\n\n");
    const std::string hostile_group = "cn=)(|(objectClass=*)),ou=groups," + m_slapd->suffix();
    m_slapd->add("dn: cn=\\29\\28|\\28objectClass\\3D*\\29\\29,ou=groups," + m_slapd->suffix() +
                 "\nobjectClass: groupOfNames\ncn: )(|(objectClass=*))\nmember: uid=\\2A)(uid=\\2A,"
                 "ou=people," +
                 m_slapd->suffix() + "\n\n");

    // Filters that would widen the search if pasted into another: refused
    // by check-config and by the daemon, naming the key, not the value.
    for (const std::string& filter : std::vector<std::string>{
             "*)(uid=*", "(uid=*)(|(objectClass=*))", ")(|(objectClass=*)", "(uid=a\\\\)(uid=*)",
             "(uid=a\\\\)(objectClass=*)", "(&(uid=x)(|(objectClass=*))", "(uid=x\\u0000)"}) {
        write_config(ldap_source() + "user_filter = \"" + filter + "\"\n");
        write_mapping();
        const auto checked = daemon::test::run_orgsyncd(
            {"check-config", "-c", (m_dir / "orgsyncd.toml").string()}, m_dir);
        EXPECT_EQ(checked.status, 1) << filter << ": " << checked.out << checked.err;
        EXPECT_NE(checked.err.find("user_filter"), std::string::npos) << checked.err;
    }

    // An escaped value matches itself only: the one hostile user, not everyone.
    write_config(
        ldap_source() +
        "user_filter = \"(&(objectClass=inetOrgPerson)(uid=\\\\2a\\\\29\\\\28uid=\\\\2a))\"\n");
    // The role rule names the hostile group: its member is admin, nobody else.
    write_mapping();
    {
        std::string mapping = daemon::test::slurp(m_dir / "mapping.toml");
        const std::string admins = "group = \"" + group_dn(*m_slapd, "acme-admins") + "\"";
        ASSERT_NE(mapping.find(admins), std::string::npos);
        mapping.replace(
            mapping.find(admins), admins.size(),
            "group = \"cn=\\\\29\\\\28|\\\\28objectClass\\\\3D*\\\\29\\\\29,ou=groups," +
                m_slapd->suffix() + "\"");
        write_file(m_dir / "mapping.toml", mapping);
    }
    (void)hostile_group;
    start();
    auto status = wait_runs("corp", 1);
    EXPECT_EQ(status["last_run"]["result"], "applied") << status.dump() << m_daemon->log();
    EXPECT_EQ(status["users"], 1);
    EXPECT_EQ(members("acme"), (std::map<std::string, std::string>{{"hostile@acme.com", "admin"},
                                                                   {"ceo@acme.com", "owner"}}));

    // Values from requests never reach an LDAP filter: an address whose
    // local part is filter syntax is one address (it joins as itself), one
    // whose domain is, is refused; nothing else changes.
    auto joined =
        hook({{"type", "user.signup"}, {"email", "*)(uid=*@acme.com"}, {"email_verified", true}},
             now(), k_hook_secret);
    EXPECT_EQ(joined.status, 200) << joined.body.dump();
    EXPECT_EQ(hook({{"type", "user.signup"},
                    {"email", "x@acme.com)(|(objectClass=*)"},
                    {"email_verified", true}},
                   now(), k_hook_secret)
                  .status,
              400);
    EXPECT_EQ(members("acme"), (std::map<std::string, std::string>{{"hostile@acme.com", "admin"},
                                                                   {"*)(uid=*@acme.com", "member"},
                                                                   {"ceo@acme.com", "owner"}}));
    // A run after that reads the same one user.
    auto synced = api("POST", "/v1/sync/corp?wait=true");
    EXPECT_EQ(synced.body["last_run"]["result"], "applied") << synced.body.dump();
    EXPECT_EQ(synced.body["users"], 1);
}

// ---- oversize requests ------------------------------------------------------------

TEST_F(SecurityTest, OversizeHeadersAndBodiesGetA4xxAndStarveNobody) {
    write_config(scim_sources());
    write_mapping();
    start();
    const auto port = m_daemon->port();
    const long rss_before = rss_kib(m_daemon->pid());

    // Meanwhile another client keeps being served.
    std::atomic<bool> done{false};
    std::atomic<int> served{0};
    std::atomic<int> failed{0};
    std::atomic<long> slowest_ms{0};
    std::thread other([&] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(10, 0);
        while (!done) {
            const auto started = Steady::now();
            auto reply = client.Get("/healthz");
            const long ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started)
                    .count();
            slowest_ms = std::max(slowest_ms.load(), ms);
            (reply && reply->status == 200 ? served : failed)++;
            std::this_thread::sleep_for(20ms);
        }
    });

    // The status line of what the daemon answers `request` with ("" if it
    // closed without an answer). Sent while the answer is read: a server
    // that answers early and closes must not be missed.
    auto answer = [&](const std::string& request) {
        const int fd = connect_raw(port);
        EXPECT_GE(fd, 0);
        std::thread sender([&] { send_all(fd, request); });
        std::string reply;
        char buffer[4096];
        timeval wait{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        for (;;) {
            const auto got = ::recv(fd, buffer, sizeof buffer, 0);
            if (got <= 0) {
                break;
            }
            reply.append(buffer, static_cast<std::size_t>(got));
            if (reply.find("\r\n") != std::string::npos) {
                break;
            }
        }
        ::shutdown(fd, SHUT_RDWR);
        sender.join();
        ::close(fd);
        return reply.substr(0, reply.find("\r\n"));
    };
    auto status_of = [](const std::string& line) {
        return line.size() >= 12 ? std::stoi(line.substr(9, 3)) : 0;
    };
    const std::string head = "GET /v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                             std::string(k_api_token) + "\r\n";
    std::map<std::string, std::string> answers;  // what each oversize request got

    // One header of 100 KB.
    auto line = answer(head + "X-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n");
    answers["one 100 KB header"] = line;
    EXPECT_EQ(status_of(line), 431) << line;
    // 10,000 small headers, and 101 (more fields than allowed, few bytes).
    for (const int count : {10000, 101}) {
        std::string many = head;
        for (int i = 0; i < count; ++i) {
            many += "X-H" + std::to_string(i) + ": v\r\n";
        }
        line = answer(many + "\r\n");
        answers[std::to_string(count) + " headers"] = line;
        EXPECT_EQ(status_of(line), 431) << count << ": " << line;
    }
    // A URI of 20 KB; one of 1 MB is dropped unanswered once the head's
    // budget is spent (cpp-httplib answers nothing for a request line it
    // could not read).
    line = answer("GET /v1/orgs?x=" + std::string(20 * 1024, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
    answers["a 20 KB URI"] = line;
    EXPECT_EQ(status_of(line), 414) << line;
    line =
        answer("GET /v1/orgs?x=" + std::string(1024 * 1024, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
    answers["a 1 MB URI"] = line;
    EXPECT_EQ(line, "");
    // Below the limits, the same client is served.
    EXPECT_EQ(status_of(answer(head + "X-Small: " + std::string(1000, 'a') + "\r\n\r\n")), 200);

    // Bodies over the 1 MiB limit, on every route that takes one: declared
    // (413 before it is read) and chunked without end (cut off, 413).
    const std::string big(1024 * 1024 + 1, 'x');
    const std::string chunk = fmt::format("{:x}\r\n", 65536) + std::string(65536, 'x') + "\r\n";
    for (const auto& [path, auth] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/authorize", std::string("Bearer ") + k_api_token},
             {"/scim/v2/Users", std::string("Bearer ") + k_acme_token},
             {"/hooks/v1/events", ""}}) {
        const std::string request_head =
            "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
            (auth.empty() ? "" : "Authorization: " + auth + "\r\n");
        line = answer(request_head + "Content-Length: " + std::to_string(big.size()) + "\r\n\r\n" +
                      big);
        answers[path + " 1 MiB + 1 byte"] = line;
        EXPECT_EQ(status_of(line), 413) << path << ": " << line;
        std::string chunked = request_head + "Transfer-Encoding: chunked\r\n\r\n";
        for (int i = 0; i < 64; ++i) {  // 4 MiB
            chunked += chunk;
        }
        line = answer(chunked + "0\r\n\r\n");
        answers[path + " chunked 4 MiB"] = line;
        EXPECT_EQ(status_of(line), 413) << path << " (chunked): " << line;
        // Chunked, 1.25 MiB: within what the wire allows for framing, over
        // what a route takes.
        chunked = request_head + "Transfer-Encoding: chunked\r\n\r\n";
        for (int i = 0; i < 20; ++i) {
            chunked += chunk;
        }
        line = answer(chunked + "0\r\n\r\n");
        answers[path + " chunked 1.25 MiB"] = line;
        EXPECT_EQ(status_of(line), 413) << path << " (chunked 1.25 MiB): " << line;
    }
    for (const auto& [what, got] : answers) {
        std::printf("[ oversize ] %s: %s\n", what.c_str(), got.c_str());
    }

    // A flood: headers without end, as fast as the daemon takes them, from
    // several clients at once, for 5 s each.
    constexpr int k_flooders = 4;
    std::atomic<long long> flooded{0};
    std::atomic<int> floods{0};
    std::vector<std::thread> flooders;
    for (int i = 0; i < k_flooders; ++i) {
        flooders.emplace_back([&] {
            std::string lines;
            for (int h = 0; h < 1000; ++h) {
                lines += "X-Flood-" + std::to_string(h) + ": 0123456789abcdef\r\n";
            }
            // Cut off, it comes back at once.
            const auto until = Steady::now() + 5s;
            while (Steady::now() < until) {
                const int fd = connect_raw(port);
                if (fd < 0) {
                    return;
                }
                ++floods;
                send_all(fd, head);
                while (Steady::now() < until && send_all(fd, lines)) {
                    flooded += static_cast<long long>(lines.size());
                }
                ::close(fd);
            }
        });
    }
    for (auto& flooder : flooders) {
        flooder.join();
    }
    const long rss_after = rss_kib(m_daemon->pid());

    done = true;
    other.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(served.load(), 10);
    EXPECT_GT(floods.load(), k_flooders);
    EXPECT_LT(slowest_ms.load(), 2000);
    EXPECT_EQ(call("GET", "/healthz", "", {}).status, 200);
    // What the flood sent did not stay in memory. Under AddressSanitizer
    // (the daemon is built as this test is) freed memory waits in a
    // quarantine of 256 MiB, so the daemon's RSS says nothing about what it
    // keeps; the uninstrumented build checks the bound.
#if defined(__SANITIZE_ADDRESS__)
    constexpr bool k_rss_means_kept = false;
#else
    constexpr bool k_rss_means_kept = true;
#endif
    if (k_rss_means_kept) {
        EXPECT_LT(rss_after - rss_before, 64 * 1024)
            << "flooded " << flooded.load() / (1024 * 1024) << " MiB";
    }
    std::printf(
        "[ oversize ] flood: %lld MiB of headers on %d connections from %d clients in 5 s; RSS "
        "%ld -> %ld KiB; other client: %d served, slowest %ld ms\n",
        flooded.load() / (1024 * 1024), floods.load(), k_flooders, rss_before, rss_after,
        served.load(), slowest_ms.load());
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);
}

}  // namespace
}  // namespace orgsync::daemon
