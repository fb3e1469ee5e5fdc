// The orgsyncd command line, run as a real process against a real store file.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "directory/store.hpp"
#include "tests/daemon/process.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using test::Result;
using test::run_orgsyncd;
using test::slurp;
using namespace orgsync::directory;

class CliTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::random_device random;
        m_dir = fs::temp_directory_path() / ("orgsync-cli-" + std::to_string(random()));
        fs::create_directories(m_dir);
        m_config = m_dir / "orgsyncd.toml";
        std::ofstream(m_config) << "[store]\npath = \"store.db\"\n";
        std::ofstream(m_dir / "mapping.toml") << "# no orgs yet\n";
    }
    void TearDown() override { fs::remove_all(m_dir); }

    Result orgsyncd(const std::vector<std::string>& args) { return run_orgsyncd(args, m_dir); }

    Result authorize(const std::string& user, const std::vector<std::string>& rest) {
        std::vector<std::string> args{"authorize", "-c",  m_config.string(), "--user", user,
                                      "--org",     "acme"};
        args.insert(args.end(), rest.begin(), rest.end());
        return orgsyncd(args);
    }

    // acme: owner ceo, member bob in vision-team (write on private project vision).
    void seed() {
        auto store = Store::open(m_dir / "store.db");
        ASSERT_TRUE(store) << store.error().message;
        auto done = (*store)->write("manual", [](Transaction& tx) -> Expected<void> {
            auto acme = tx.create_org("acme", "Acme", false, "ceo@acme.com");
            auto ceo = tx.upsert_user("ceo@acme.com", "");
            auto bob = tx.upsert_user("bob@acme.com", "Bob");
            if (!acme || !ceo || !bob) {
                return std::unexpected(Error{ErrorCode::storage, "seed failed", {}});
            }
            auto joined =
                tx.assert_membership(*acme, *bob, {"manual", UserType::internal, OrgRole::member});
            auto team = tx.create_group(*acme, "vision-team");
            auto vision = tx.create_project(*acme, "vision", Visibility::private_, {}, *ceo);
            if (!joined || !team || !vision) {
                return std::unexpected(Error{ErrorCode::storage, "seed failed", {}});
            }
            if (auto added = tx.add_group_member(*team, *bob, "manual"); !added) {
                return added;
            }
            return tx.grant_project(*vision, {PrincipalKind::group, *team}, Level::write, "manual");
        });
        ASSERT_TRUE(done) << done.error().message;
    }

    fs::path m_dir;
    fs::path m_config;
};

TEST_F(CliTest, VersionPrintsTheVersion) {
    Result run = orgsyncd({"version"});
    EXPECT_EQ(run.status, 0);
    EXPECT_TRUE(run.out.starts_with("orgsyncd ")) << run.out;
}

TEST_F(CliTest, NoCommandIsAnError) {
    Result run = orgsyncd({});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.err.find("A subcommand is required"), std::string::npos) << run.err;
}

TEST_F(CliTest, AuthorizeAllowExitsZeroWithTheReason) {
    seed();
    Result run =
        authorize("bob@acme.com", {"--project", "vision", "--action", "project.resources.write"});
    EXPECT_EQ(run.status, 0);
    EXPECT_EQ(run.out, "allow: write via group vision-team\n");
    EXPECT_EQ(run.err, "");
}

TEST_F(CliTest, AuthorizeDenyExitsOne) {
    seed();
    Result run = authorize("bob@acme.com", {"--project", "vision", "--action", "project.delete"});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.out,
              "deny: write via group vision-team is below admin needed for project.delete\n");
}

TEST_F(CliTest, AuthorizeNonMemberIsDenied) {
    seed();
    Result run = authorize("eve@globex.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.out, "deny: eve@globex.com is not a member of org acme\n");
}

TEST_F(CliTest, AuthorizeJsonHasTheApiShape) {
    seed();
    Result run = authorize("bob@ACME.com",
                           {"--project", "vision", "--action", "project.resources.read", "--json"});
    EXPECT_EQ(run.status, 0);
    EXPECT_EQ(run.out,
              "{\"allow\":true,\"level\":\"write\",\"reason\":\"write via group "
              "vision-team\",\"role\":\"member\"}\n");
}

TEST_F(CliTest, AuthorizeUnknownActionExitsTwo) {
    seed();
    Result run = authorize("bob@acme.com", {"--project", "vision", "--action", "project.launch"});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, "orgsyncd: unknown action \"project.launch\"\n");
}

TEST_F(CliTest, AuthorizeUnknownProjectExitsTwo) {
    seed();
    Result run =
        authorize("bob@acme.com", {"--project", "nope", "--action", "project.resources.read"});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "orgsyncd: no project nope in org acme\n");
}

TEST_F(CliTest, AuthorizeWithoutAStoreExitsTwoAndCreatesNothing) {
    Result run = authorize("bob@acme.com", {"--action", "org.metrics.read"});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "orgsyncd: store " + (m_dir / "store.db").string() + " does not exist\n");
    EXPECT_FALSE(fs::exists(m_dir / "store.db"));
}

TEST_F(CliTest, AuthorizeMissingArgumentExitsTwo) {
    Result run =
        orgsyncd({"authorize", "-c", m_config.string(), "--org", "acme", "--action", "org.edit"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.err.find("--user is required"), std::string::npos) << run.err;
}

TEST_F(CliTest, CheckConfigAcceptsAValidFile) {
    Result run = orgsyncd({"check-config", "-c", m_config.string()});
    EXPECT_EQ(run.status, 0);
    EXPECT_EQ(run.out, m_config.string() + ": OK (0 sources)\n" +
                           (m_dir / "mapping.toml").string() + ": OK (0 orgs)\n");
}

TEST_F(CliTest, CheckConfigPrintsEveryErrorWithItsPosition) {
    std::ofstream(m_config) << "[store]\n"
                               "path = 42\n"
                               "[http]\n"
                               "lisen = \"127.0.0.1:8650\"\n";
    Result run = orgsyncd({"check-config", "-c", m_config.string()});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.out, "");
    const std::string path = m_config.string();
    EXPECT_EQ(run.err, path + ":2:8: key \"path\" in [store]: expected a string, got an integer\n" +
                           path + ":4:1: unknown key \"lisen\" in [http]\n");
}

TEST_F(CliTest, CheckConfigDoesNotPrintSecrets) {
    std::ofstream(m_config) << "[http]\napi_token_file = \"hunter2-secret-token\"\nport = 1\n";
    Result run = orgsyncd({"check-config", "-c", m_config.string()});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.err.find("hunter2"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace orgsync::daemon
