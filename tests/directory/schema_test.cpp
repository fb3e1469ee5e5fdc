// Migrations: a file written by an older schema version is brought up to
// date at open without losing data; a file from a newer orgsync is refused
// and left untouched.

#include "directory/schema.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

#include "directory/policy.hpp"
#include "directory/store.hpp"

namespace orgsync::directory {
namespace {

namespace fs = std::filesystem;

class SchemaTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::random_device random;
        m_dir = fs::temp_directory_path() / ("orgsync-schema-" + std::to_string(random()));
        fs::create_directories(m_dir);
        m_path = m_dir / "store.db";
    }
    void TearDown() override { fs::remove_all(m_dir); }

    // Writes a file as an orgsync at schema `version` would have.
    void create_at_version(int version) {
        SQLite::Database db(m_path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        for (const auto& migration : schema::migrations()) {
            if (migration.version <= version) {
                db.exec(std::string(migration.sql));
            }
        }
        db.exec("PRAGMA user_version = " + std::to_string(version));
    }

    fs::path m_dir;
    fs::path m_path;
};

TEST_F(SchemaTest, VersionsAreConsecutiveFromOne) {
    int expected = 1;
    for (const auto& migration : schema::migrations()) {
        EXPECT_EQ(migration.version, expected++);
    }
    EXPECT_EQ(Store::latest_schema_version(), expected - 1);
}

TEST_F(SchemaTest, NewFileGetsEveryMigration) {
    auto store = Store::open(m_path);
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ((*store)->schema_version(), Store::latest_schema_version());
}

TEST_F(SchemaTest, OlderFileIsMigratedAndKeepsItsData) {
    create_at_version(1);
    {
        // Data as an orgsync at version 1 wrote it.
        SQLite::Database db(m_path.string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA foreign_keys = ON");
        db.exec("INSERT INTO users (id, email) VALUES (1, 'ceo@acme.com'), (2, 'bob@acme.com')");
        db.exec("INSERT INTO orgs (id, slug, name, owner_id) VALUES (1, 'acme', 'Acme', 1)");
        db.exec(
            "INSERT INTO memberships VALUES (1, 1, 'internal', 'owner'), (1, 2, 'internal', "
            "'member')");
        db.exec(
            "INSERT INTO membership_assertions VALUES (1, 1, 'manual', 'internal', 'admin'), (1, "
            "2, 'manual', 'internal', 'member')");
        db.exec(
            "INSERT INTO projects (id, org_id, slug, visibility) VALUES (1, 1, 'vision', "
            "'private')");
        db.exec(
            "INSERT INTO project_user_grants VALUES (1, 1, 1, 'manual', 'admin'), (1, 1, 2, "
            "'manual', 'write')");
    }

    auto store = Store::open(m_path);
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ((*store)->schema_version(), Store::latest_schema_version());

    auto decision = authorize(
        *(*store)->snapshot(),
        Request{"bob@acme.com", "acme", "vision", std::nullopt, "project.resources.write"});
    ASSERT_TRUE(decision);
    EXPECT_TRUE(decision->allow);
    EXPECT_EQ(decision->reason, "write via direct grant");

    // The tables of version 2 exist and work.
    auto mirrored = (*store)->write("corp", [](Transaction& tx) -> Expected<void> {
        return tx.put_source_user(SourceUser{"corp", "uuid-1", "bob@acme.com", "Bob", true, "{}"});
    });
    ASSERT_TRUE(mirrored) << mirrored.error().message;
    EXPECT_EQ((*store)->list_source_users("corp")->size(), 1u);
}

TEST_F(SchemaTest, MirroredUsersOfAnOlderFileAreFoundByTheirCanonicalAddress) {
    create_at_version(3);
    {
        SQLite::Database db(m_path.string(), SQLite::OPEN_READWRITE);
        db.exec(
            "INSERT INTO source_users (source, external_id, email) VALUES ('corp', 'u1', "
            "'Bob@ACME.com'), ('corp', 'u2', 'not an address')");
    }
    auto store = Store::open(m_path);
    ASSERT_TRUE(store) << store.error().message;
    auto found = (*store)->source_users_with_email("corp", {"Bob@acme.com"});
    ASSERT_TRUE(found) << found.error().message;
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ((*found)[0].external_id, "u1");
    EXPECT_EQ((*store)->source_cursor("corp").value(), std::nullopt);
}

TEST_F(SchemaTest, NewerFileIsRefusedAndLeftAlone) {
    create_at_version(Store::latest_schema_version());
    {
        SQLite::Database db(m_path.string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA user_version = 999");
    }
    auto store = Store::open(m_path);
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().code, ErrorCode::schema_too_new);

    SQLite::Database db(m_path.string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(), 999);
}

TEST_F(SchemaTest, StoreRunsInWalModeWithForeignKeys) {
    auto store = Store::open(m_path);
    ASSERT_TRUE(store);
    SQLite::Database db(m_path.string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
}

TEST_F(SchemaTest, UnreadableFileIsAStorageError) {
    {
        std::FILE* file = std::fopen(m_path.c_str(), "wb");
        std::fputs("this is not a database, just some text long enough to have a header", file);
        std::fclose(file);
    }
    auto store = Store::open(m_path);
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().code, ErrorCode::storage);
}

}  // namespace
}  // namespace orgsync::directory
