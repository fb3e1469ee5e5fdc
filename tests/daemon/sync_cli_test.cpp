// `orgsyncd plan` and `orgsyncd sync`, run as real processes against a real
// store file, daemon config and mapping file. No LDAP server is contacted:
// with --from-mirror they re-derive from the source's stored mirror, which
// the test writes (tests/connectors/ldap has the runs against a directory).

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "directory/store.hpp"
#include "tests/daemon/process.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using test::Result;
using test::run_orgsyncd;
using test::slurp;
using namespace orgsync::directory;
using nlohmann::json;

const std::string k_admins = "cn=acme-admins,ou=groups,dc=example,dc=com";
const std::string k_vision = "cn=vision-team,ou=groups,dc=example,dc=com";

// The mapping of these tests: org acme (domain acme.com), an admin role rule
// and a grant rule for source corp on project vision, and a dataset.
std::string mapping_text(const std::string& vision_level) {
    return "[[org]]\n"
           "slug = \"acme\"\n"
           "name = \"Acme Corp\"\n"
           "owner = \"ceo@acme.com\"\n"
           "\n"
           "  [[org.domain]]\n"
           "  name = \"acme.com\"\n"
           "\n"
           "  [[org.role]]\n"
           "  source = \"corp\"\n"
           "  group = \"" +
           k_admins +
           "\"\n"
           "  role = \"admin\"\n"
           "\n"
           "  [[org.project]]\n"
           "  slug = \"vision\"\n"
           "  tags = [\"cv\"]\n"
           "\n"
           "  [[org.dataset]]\n"
           "  slug = \"street-scenes\"\n"
           "  projects = [\"vision\"]\n"
           "\n"
           "  [[org.grant]]\n"
           "  source = \"corp\"\n"
           "  group = \"" +
           k_vision +
           "\"\n"
           "  project = \"vision\"\n"
           "  level = \"" +
           vision_level + "\"\n";
}

struct MirrorUser {
    std::string id;
    std::string email;
    bool active = true;
};

class SyncCliTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::random_device random;
        m_dir = fs::temp_directory_path() / ("orgsync-sync-cli-" + std::to_string(random()));
        fs::create_directories(m_dir);
        m_config = m_dir / "orgsyncd.toml";
        m_mapping = m_dir / "mapping.toml";
        m_store = m_dir / "store.db";
        std::ofstream(m_config) << "[store]\n"
                                   "path = \"store.db\"\n"
                                   "\n"
                                   "[[source]]\n"
                                   "name = \"corp\"\n"
                                   "type = \"ldap\"\n"
                                   "uri = \"ldap://127.0.0.1:1\"\n"
                                   "user_base = \"dc=example,dc=com\"\n";
        write_mapping("write");
    }
    void TearDown() override { fs::remove_all(m_dir); }

    void write_mapping(const std::string& vision_level) {
        std::ofstream(m_mapping) << mapping_text(vision_level);
    }

    Result orgsyncd(const std::vector<std::string>& args) { return run_orgsyncd(args, m_dir); }

    Result plan(const std::vector<std::string>& rest = {}) {
        std::vector<std::string> args{"plan", "-c", m_config.string(), "--from-mirror"};
        args.insert(args.end(), rest.begin(), rest.end());
        return orgsyncd(args);
    }

    Result sync(const std::vector<std::string>& rest = {}) {
        std::vector<std::string> args{"sync", "-c", m_config.string(), "--from-mirror"};
        args.insert(args.end(), rest.begin(), rest.end());
        return orgsyncd(args);
    }

    Result authorize(const std::string& user, const std::vector<std::string>& rest) {
        std::vector<std::string> args{"authorize", "-c",  m_config.string(), "--user", user,
                                      "--org",     "acme"};
        args.insert(args.end(), rest.begin(), rest.end());
        return orgsyncd(args);
    }

    // The ten acme.com users of the mirror: alice (acme-admins), Bob
    // (vision-team) and u03..u10; plus one address at no mapped domain and
    // one that is not an address.
    static std::vector<MirrorUser> acme_users() {
        std::vector<MirrorUser> users{{"id-alice", "alice@acme.com"}, {"id-bob", "Bob@Acme.com"}};
        for (int i = 3; i <= 10; ++i) {
            std::string n = (i < 10 ? "0" : "") + std::to_string(i);
            users.push_back({"id-u" + n, "u" + n + "@acme.com"});
        }
        users.push_back({"id-eve", "eve@globex.example"});
        users.push_back({"id-bad", "not-an-address"});
        return users;
    }

    // Makes corp's stored mirror exactly `users`, with the two groups
    // (members that are not in `users` left out). Closes the store.
    void write_mirror(const std::vector<MirrorUser>& users) {
        auto store = Store::open(m_store);
        ASSERT_TRUE(store) << store.error().message;
        auto old_users = (*store)->list_source_users("corp");
        ASSERT_TRUE(old_users) << old_users.error().message;
        std::set<std::string> ids;
        for (const auto& user : users) {
            ids.insert(user.id);
        }
        auto members = [&ids](std::vector<std::string> wanted) {
            std::erase_if(wanted, [&ids](const std::string& id) { return !ids.contains(id); });
            return wanted;
        };
        auto done = (*store)->write("corp", [&](Transaction& tx) -> Expected<void> {
            for (const auto& old : *old_users) {
                if (!ids.contains(old.external_id)) {
                    if (auto gone = tx.delete_source_user("corp", old.external_id); !gone) {
                        return gone;
                    }
                }
            }
            for (const auto& user : users) {
                SourceUser row{"corp",      user.id, user.email, "Name of " + user.id,
                               user.active, "{}"};
                if (auto put = tx.put_source_user(row); !put) {
                    return put;
                }
            }
            if (auto put = tx.put_source_group(
                    SourceGroup{"corp", "gid-admins", k_admins, "{}", members({"id-alice"})});
                !put) {
                return put;
            }
            return tx.put_source_group(
                SourceGroup{"corp", "gid-vision", k_vision, "{}", members({"id-bob"})});
        });
        ASSERT_TRUE(done) << done.error().message;
    }

    std::vector<SyncRun> runs() {
        auto store = Store::open(m_store);
        EXPECT_TRUE(store) << store.error().message;
        if (!store) {
            return {};
        }
        auto listed = (*store)->sync_runs("corp", 100);
        EXPECT_TRUE(listed) << listed.error().message;
        return listed ? *listed : std::vector<SyncRun>{};
    }

    std::vector<Org> orgs() {
        auto store = Store::open(m_store);
        EXPECT_TRUE(store) << store.error().message;
        if (!store) {
            return {};
        }
        auto listed = (*store)->list_orgs();
        EXPECT_TRUE(listed) << listed.error().message;
        return listed ? *listed : std::vector<Org>{};
    }

    // Mirror written and one sync applied.
    void synced() {
        ASSERT_NO_FATAL_FAILURE(write_mirror(acme_users()));
        Result run = sync();
        ASSERT_EQ(run.status, 0) << run.out << run.err;
        ASSERT_EQ(run.out, "corp: applied, 19 changes, 0 held\n");
    }

    fs::path m_dir;
    fs::path m_config;
    fs::path m_mapping;
    fs::path m_store;
};

const std::string k_structure_lines =
    "  + org acme (Acme Corp), owner ceo@acme.com  [declared in the mapping]\n"
    "  + project acme/vision, first admin ceo@acme.com  [declared in the mapping]\n"
    "  + dataset acme/street-scenes  [declared in the mapping]\n"
    "  + dataset acme/street-scenes attached to project vision  [declared in the mapping]\n";

// ---- plan ----------------------------------------------------------------

TEST_F(SyncCliTest, PlanWithoutAStorePrintsTheStructureAndCreatesNothing) {
    Result run = plan();
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "plan for source corp: 4 changes, 0 held\n" + k_structure_lines +
                           "  users: 0 in the mirror, 0 mapped, 0 unmapped, 0 with an invalid "
                           "address\n");
    EXPECT_FALSE(fs::exists(m_store));
    EXPECT_FALSE(fs::exists(m_dir / "store.db-wal"));
}

TEST_F(SyncCliTest, PlanJsonWithoutAStoreIsValidJsonAndCreatesNothing) {
    Result run = plan({"--json"});
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.err, "");
    json plans = json::parse(run.out, nullptr, false);
    ASSERT_FALSE(plans.is_discarded()) << run.out;
    ASSERT_TRUE(plans.is_array());
    ASSERT_EQ(plans.size(), 1U);
    const json& entry = plans[0];
    EXPECT_EQ(entry["source"], "corp");
    EXPECT_TRUE(entry["blocked"].is_null());
    EXPECT_EQ(entry["held"], json::array());
    EXPECT_FALSE(entry.contains("problem"));
    EXPECT_EQ(entry["changes"], json::parse(R"([
        {"kind": "create_org", "org": "acme", "user": "ceo@acme.com",
         "why": "declared in the mapping"},
        {"kind": "create_project", "org": "acme", "user": "ceo@acme.com", "project": "vision",
         "why": "declared in the mapping"},
        {"kind": "create_dataset", "org": "acme", "dataset": "street-scenes",
         "why": "declared in the mapping"},
        {"kind": "attach_dataset", "org": "acme", "project": "vision",
         "dataset": "street-scenes", "why": "declared in the mapping"}
    ])"));
    EXPECT_EQ(entry["summary"]["mirror_users"], 0);
    EXPECT_FALSE(fs::exists(m_store));
}

TEST_F(SyncCliTest, PlanFromTheMirrorListsEveryChangeAndChangesNothing) {
    ASSERT_NO_FATAL_FAILURE(write_mirror(acme_users()));
    Result run = plan({"--source", "corp"});
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.err, "");
    // The local part keeps its case (Bob@Acme.com is Bob@acme.com), so Bob
    // sorts before alice.
    std::string members =
        "  + member Bob@acme.com in acme as internal member  [domain acme.com]\n"
        "  + member alice@acme.com in acme as internal admin  [group " +
        k_admins + "]\n";
    for (int i = 3; i <= 10; ++i) {
        std::string n = (i < 10 ? "0" : "") + std::to_string(i);
        members += "  + member u" + n + "@acme.com in acme as internal member  [domain acme.com]\n";
    }
    EXPECT_EQ(run.out,
              "plan for source corp: 19 changes, 0 held\n" + k_structure_lines + members +
                  "  + group " + k_admins + " in acme  [named by the mapping for corp]\n" +
                  "  + group " + k_vision + " in acme  [named by the mapping for corp]\n" +
                  "  + alice@acme.com to group " + k_admins + " in acme  [member in corp]\n" +
                  "  + Bob@acme.com to group " + k_vision + " in acme  [member in corp]\n" +
                  "  + grant write on acme/project vision to group " + k_vision +
                  "  [grant rule in the mapping]\n" +
                  "  users: 12 in the mirror, 10 mapped, 1 unmapped, 1 with an invalid address\n");
    // A plan writes nothing: no org, no recorded run.
    EXPECT_TRUE(orgs().empty());
    EXPECT_TRUE(runs().empty());
}

TEST_F(SyncCliTest, PlanJsonFromTheMirrorMatchesTheTextPlan) {
    ASSERT_NO_FATAL_FAILURE(write_mirror(acme_users()));
    Result run = plan({"--json"});
    EXPECT_EQ(run.status, 0) << run.err;
    json plans = json::parse(run.out, nullptr, false);
    ASSERT_FALSE(plans.is_discarded()) << run.out;
    ASSERT_EQ(plans.size(), 1U);
    const json& entry = plans[0];
    ASSERT_EQ(entry["changes"].size(), 19U);
    std::vector<std::string> kinds;
    for (const auto& change : entry["changes"]) {
        kinds.push_back(change["kind"]);
    }
    std::vector<std::string> expected{"create_org", "create_project", "create_dataset",
                                      "attach_dataset"};
    expected.insert(expected.end(), 10, "add_member");
    expected.insert(expected.end(), {"create_group", "create_group", "add_group_member",
                                     "add_group_member", "add_grant"});
    EXPECT_EQ(kinds, expected);
    EXPECT_EQ(entry["changes"][4]["user"], "Bob@acme.com");
    EXPECT_EQ(entry["changes"][4]["role"], "member");
    EXPECT_EQ(entry["changes"][5], json({{"kind", "add_member"},
                                         {"org", "acme"},
                                         {"user", "alice@acme.com"},
                                         {"user_type", "internal"},
                                         {"role", "admin"},
                                         {"why", "group " + k_admins}}));
    EXPECT_EQ(entry["changes"][18], json({{"kind", "add_grant"},
                                          {"org", "acme"},
                                          {"group", k_vision},
                                          {"project", "vision"},
                                          {"level", "write"},
                                          {"why", "grant rule in the mapping"}}));
    EXPECT_EQ(entry["summary"], json({{"mirror_users", 12},
                                      {"mapped_users", 10},
                                      {"unmapped_users", 1},
                                      {"invalid_emails", 1},
                                      {"source_members", 0}}));
    EXPECT_TRUE(entry["blocked"].is_null());
    EXPECT_TRUE(orgs().empty());
}

// ---- sync ----------------------------------------------------------------

TEST_F(SyncCliTest, SyncAppliesAndAuthorizeReflectsIt) {
    ASSERT_NO_FATAL_FAILURE(write_mirror(acme_users()));
    Result before =
        authorize("Bob@acme.com", {"--project", "vision", "--action", "project.resources.write"});
    EXPECT_EQ(before.status, 2) << before.out;

    Result run = sync();
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.out, "corp: applied, 19 changes, 0 held\n");
    EXPECT_EQ(run.err, "");

    Result bob =
        authorize("Bob@acme.com", {"--project", "vision", "--action", "project.resources.write"});
    EXPECT_EQ(bob.status, 0) << bob.err;
    EXPECT_EQ(bob.out, "allow: write via group " + k_vision + "\n");
    Result alice = authorize("alice@acme.com", {"--action", "org.users.invite"});
    EXPECT_EQ(alice.status, 0) << alice.err;
    Result member = authorize("u07@acme.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(member.status, 0) << member.err;
    Result not_admin = authorize("u07@acme.com", {"--action", "org.users.invite"});
    EXPECT_EQ(not_admin.status, 1) << not_admin.err;
    Result unmapped = authorize("eve@globex.example", {"--action", "org.metrics.read"});
    EXPECT_EQ(unmapped.status, 1);
    EXPECT_EQ(unmapped.out, "deny: eve@globex.example is not a member of org acme\n");

    auto recorded = runs();
    ASSERT_EQ(recorded.size(), 1U);
    EXPECT_EQ(recorded[0].result, "applied");
}

TEST_F(SyncCliTest, SecondPlanAndSyncHaveNothingToDo) {
    ASSERT_NO_FATAL_FAILURE(synced());
    Result again = plan();
    EXPECT_EQ(again.status, 0) << again.err;
    EXPECT_EQ(again.out,
              "plan for source corp: 0 changes, 0 held\n"
              "  users: 12 in the mirror, 10 mapped, 1 unmapped, 1 with an invalid address\n");
    Result json_plan = plan({"--json"});
    json plans = json::parse(json_plan.out, nullptr, false);
    ASSERT_FALSE(plans.is_discarded()) << json_plan.out;
    EXPECT_EQ(plans[0]["changes"], json::array());
    EXPECT_EQ(plans[0]["summary"]["source_members"], 10);

    Result second = sync({"--source", "corp"});
    EXPECT_EQ(second.status, 0) << second.err;
    EXPECT_EQ(second.out, "corp: applied, 0 changes, 0 held\n");
    EXPECT_EQ(second.err, "");
    EXPECT_EQ(runs().size(), 2U);
}

// ---- deletion guard ------------------------------------------------------

TEST_F(SyncCliTest, ShrunkMirrorIsBlockedUntilForced) {
    ASSERT_NO_FATAL_FAILURE(synced());
    auto fewer = acme_users();
    std::erase_if(
        fewer, [](const MirrorUser& user) { return user.id == "id-u09" || user.id == "id-u10"; });
    ASSERT_NO_FATAL_FAILURE(write_mirror(fewer));
    const std::string why =
        "would remove or deactivate 2 of the 10 users corp asserts in org acme (more than 10%); "
        "review the plan and run with --force to apply it";

    Result planned = plan();
    EXPECT_EQ(planned.status, 0) << planned.err;
    EXPECT_EQ(planned.out,
              "plan for source corp: 2 changes, 0 held\n"
              "  - member u09@acme.com from acme (was internal member)  [no longer stated by "
              "corp]\n"
              "  - member u10@acme.com from acme (was internal member)  [no longer stated by "
              "corp]\n"
              "  users: 10 in the mirror, 8 mapped, 1 unmapped, 1 with an invalid address\n"
              "  blocked: " +
                  why + "\n");
    Result planned_json = plan({"--json"});
    json plans = json::parse(planned_json.out, nullptr, false);
    ASSERT_FALSE(plans.is_discarded()) << planned_json.out;
    EXPECT_EQ(plans[0]["blocked"], why);

    Result blocked = sync();
    EXPECT_EQ(blocked.status, 1) << blocked.err;
    EXPECT_EQ(blocked.out, "corp: blocked, 2 changes, 0 held: " + why + "\n");
    EXPECT_EQ(blocked.err, "");
    Result still = authorize("u10@acme.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(still.status, 0) << still.out << still.err;
    auto recorded = runs();
    ASSERT_EQ(recorded.size(), 2U);
    EXPECT_EQ(recorded[0].result, "blocked");
    EXPECT_EQ(recorded[0].message, why);

    Result forced = sync({"--force"});
    EXPECT_EQ(forced.status, 0) << forced.err;
    EXPECT_EQ(forced.out, "corp: applied, 2 changes, 0 held\n");
    Result gone = authorize("u10@acme.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(gone.status, 1);
    EXPECT_EQ(gone.out, "deny: u10@acme.com is not a member of org acme\n");
    Result kept = authorize("u08@acme.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(kept.status, 0) << kept.out;

    Result after = sync();
    EXPECT_EQ(after.status, 0);
    EXPECT_EQ(after.out, "corp: applied, 0 changes, 0 held\n");
}

TEST_F(SyncCliTest, RemovingOneUserInTenIsNotBlocked) {
    ASSERT_NO_FATAL_FAILURE(synced());
    auto fewer = acme_users();
    std::erase_if(fewer, [](const MirrorUser& user) { return user.id == "id-u10"; });
    ASSERT_NO_FATAL_FAILURE(write_mirror(fewer));
    Result run = sync();
    EXPECT_EQ(run.status, 0) << run.out << run.err;
    EXPECT_EQ(run.out, "corp: applied, 1 change, 0 held\n");
}

// ---- mapping changes -----------------------------------------------------

TEST_F(SyncCliTest, MappingChangeIsPlannedAndAppliedWithoutAMirrorChange) {
    ASSERT_NO_FATAL_FAILURE(synced());
    write_mapping("read");

    Result planned = plan();
    EXPECT_EQ(planned.status, 0) << planned.err;
    EXPECT_EQ(planned.out,
              "plan for source corp: 1 change, 0 held\n"
              "  ~ grant on acme/project vision to group " +
                  k_vision +
                  ": write -> read  [grant rule in the mapping]\n"
                  "  users: 12 in the mirror, 10 mapped, 1 unmapped, 1 with an invalid address\n");
    Result planned_json = plan({"--json"});
    json plans = json::parse(planned_json.out, nullptr, false);
    ASSERT_FALSE(plans.is_discarded()) << planned_json.out;
    EXPECT_EQ(plans[0]["changes"], json::array({json{{"kind", "change_grant"},
                                                     {"org", "acme"},
                                                     {"group", k_vision},
                                                     {"project", "vision"},
                                                     {"level", "read"},
                                                     {"from_level", "write"},
                                                     {"why", "grant rule in the mapping"}}}));

    Result run = sync();
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.out, "corp: applied, 1 change, 0 held\n");
    Result write =
        authorize("Bob@acme.com", {"--project", "vision", "--action", "project.resources.write"});
    EXPECT_EQ(write.status, 1);
    Result read =
        authorize("Bob@acme.com", {"--project", "vision", "--action", "project.resources.read"});
    EXPECT_EQ(read.status, 0) << read.out;
    EXPECT_EQ(read.out, "allow: read via group " + k_vision + "\n");

    Result again = plan();
    EXPECT_TRUE(again.out.starts_with("plan for source corp: 0 changes, 0 held\n")) << again.out;
}

// A user disabled in the source counts against the guard of the orgs they
// are in, not of every org the source asserts users in.
TEST_F(SyncCliTest, DeactivationCountsOnlyInTheUsersOrg) {
    std::ofstream(m_mapping) << mapping_text("write") +
                                    "\n[[org]]\n"
                                    "slug = \"globex\"\n"
                                    "name = \"Globex\"\n"
                                    "owner = \"boss@globex.example\"\n"
                                    "  [[org.domain]]\n"
                                    "  name = \"globex.example\"\n";
    auto users = acme_users();  // eve@globex.example now joins globex
    for (int i = 1; i <= 5; ++i) {
        users.push_back({"id-g" + std::to_string(i), "g" + std::to_string(i) + "@globex.example"});
    }
    ASSERT_NO_FATAL_FAILURE(write_mirror(users));
    Result first = sync();
    ASSERT_EQ(first.status, 0) << first.out << first.err;

    // u10 is one of acme's 10 (10 %, not more than the limit) and none of
    // globex's 6.
    for (auto& user : users) {
        if (user.id == "id-u10") {
            user.active = false;
        }
    }
    ASSERT_NO_FATAL_FAILURE(write_mirror(users));
    Result planned = plan();
    EXPECT_EQ(planned.status, 0) << planned.err;
    EXPECT_EQ(planned.out,
              "plan for source corp: 1 change, 0 held\n"
              "  - deactivate u10@acme.com  [disabled in corp]\n"
              "  users: 17 in the mirror, 16 mapped, 0 unmapped, 1 with an invalid address\n");
    Result run = sync();
    EXPECT_EQ(run.status, 0) << run.out << run.err;
    EXPECT_EQ(run.out, "corp: applied, 1 change, 0 held\n");
}

// A project the mapping adds later gets the org's current owner as its first
// admin, not the mapping's initial owner.
TEST_F(SyncCliTest, NewProjectGetsTheCurrentOwnerAsFirstAdmin) {
    ASSERT_NO_FATAL_FAILURE(synced());
    {
        auto store = Store::open(m_store);
        ASSERT_TRUE(store) << store.error().message;
        auto moved = (*store)->write("manual", [](Transaction& tx) -> Expected<void> {
            auto org = tx.find_org_id("acme");
            auto alice = tx.find_user_id("alice@acme.com");
            if (!org || !*org || !alice || !*alice) {
                return std::unexpected(Error{ErrorCode::not_found, "acme or alice missing", {}});
            }
            return tx.transfer_ownership(**org, **alice);
        });
        ASSERT_TRUE(moved) << moved.error().message;
    }
    std::ofstream(m_mapping) << mapping_text("write") +
                                    "\n  [[org.project]]\n"
                                    "  slug = \"labs\"\n";
    Result planned = plan();
    EXPECT_EQ(planned.status, 0) << planned.err;
    EXPECT_EQ(planned.out,
              "plan for source corp: 1 change, 0 held\n"
              "  + project acme/labs, first admin alice@acme.com  [declared in the mapping]\n"
              "  users: 12 in the mirror, 10 mapped, 1 unmapped, 1 with an invalid address\n");
    Result run = sync();
    EXPECT_EQ(run.status, 0) << run.out << run.err;
    EXPECT_EQ(run.out, "corp: applied, 1 change, 0 held\n");
    Result alice = authorize("alice@acme.com", {"--project", "labs", "--action", "project.delete"});
    EXPECT_EQ(alice.status, 0) << alice.out << alice.err;
}

// ---- errors --------------------------------------------------------------

TEST_F(SyncCliTest, UnknownSourceExitsTwo) {
    const std::string message = "orgsyncd: no source named nope in " + m_config.string() + "\n";
    Result planned = plan({"--source", "nope"});
    EXPECT_EQ(planned.status, 2);
    EXPECT_EQ(planned.out, "");
    EXPECT_EQ(planned.err, message);
    Result run = sync({"--source", "nope"});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, message);
    EXPECT_FALSE(fs::exists(m_store));
}

class SyncCliBrokenMappingTest : public SyncCliTest {
  protected:
    void SetUp() override {
        SyncCliTest::SetUp();
        break_mapping();
    }

    // Three errors: an unknown key, a rule naming an unconfigured source, a
    // grant on an undeclared project.
    void break_mapping() {
        std::ofstream(m_mapping) << "[[org]]\n"
                                    "slug = \"acme\"\n"
                                    "name = \"Acme Corp\"\n"
                                    "owner = \"ceo@acme.com\"\n"
                                    "colour = \"red\"\n"
                                    "  [[org.grant]]\n"
                                    "  source = \"hr\"\n"
                                    "  group = \"g\"\n"
                                    "  project = \"vision\"\n"
                                    "  level = \"write\"\n";
    }

    std::string expected_errors() const {
        const std::string path = m_mapping.string();
        return path + ":5:1: unknown key \"colour\" in [[org]] \"acme\"\n" + path +
               ":7:12: key \"source\" in [[org.grant]] #1 of org \"acme\": unknown source "
               "\"hr\"; the daemon configuration defines corp\n" +
               path +
               ":9:13: key \"project\" in [[org.grant]] #1 of org \"acme\": unknown project "
               "\"vision\"; no [[org.project]] of this org has this slug\n";
    }
};

TEST_F(SyncCliBrokenMappingTest, CheckConfigExitsOneWithPositions) {
    Result run = orgsyncd({"check-config", "-c", m_config.string()});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, expected_errors());
}

TEST_F(SyncCliBrokenMappingTest, PlanExitsTwoWithTheSameLines) {
    Result run = plan();
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, expected_errors());
    Result json_run = plan({"--json"});
    EXPECT_EQ(json_run.status, 2);
    EXPECT_EQ(json_run.out, "");
    EXPECT_EQ(json_run.err, expected_errors());
}

TEST_F(SyncCliBrokenMappingTest, SyncExitsTwoAndCreatesNoStore) {
    Result run = sync();
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, expected_errors());
    EXPECT_FALSE(fs::exists(m_store));
}

TEST_F(SyncCliBrokenMappingTest, SyncWithABrokenMappingChangesNothing) {
    // A good mapping, one applied sync; then the mapping breaks.
    write_mapping("write");
    ASSERT_NO_FATAL_FAILURE(synced());
    break_mapping();
    Result run = sync();
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, expected_errors());
    EXPECT_EQ(runs().size(), 1U);
    Result bob =
        authorize("Bob@acme.com", {"--project", "vision", "--action", "project.resources.write"});
    EXPECT_EQ(bob.status, 0) << bob.out;
}

}  // namespace
}  // namespace orgsync::daemon
