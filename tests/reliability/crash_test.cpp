// Crash consistency (DESIGN §4): the real orgsyncd is killed with SIGKILL at
// random moments, during a large LDAP sync and during bursts of SCIM writes.
// After each kill the store file must pass SQLite's integrity check and hold
// the state before or after whole transactions: the LDAP sync's
// memberships, mirror, audit log and run record all from before the run or
// all from after it; every SCIM write answered 2xx present, the write in
// flight either whole or absent. A daemon restarted on that store must then
// re-derive nothing, converge on a requested sync and accept writes again.
//
// The kill delays come from a seed printed at the start; ORGSYNC_CRASH_SEED
// replays a run, ORGSYNC_CRASH_TRIALS sets the trials per scenario (default
// 20) and ORGSYNC_CRASH_USERS the size of the LDAP directory.

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/daemon_process.hpp"
#include "tests/support/scim_writer.hpp"
#include "tests/support/slapd.hpp"

namespace orgsync::reliability {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using orgsync::test::DaemonProcess;
using orgsync::test::ScimMirror;
using orgsync::test::ScimWriter;
using orgsync::testing::Slapd;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* k_api_token = "api-token-for-crash-tests";
constexpr const char* k_scim_token = "scim-token-for-crash-tests";
constexpr const char* k_suffix = "dc=example,dc=com";

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    return text != nullptr && *text != '\0' ? std::stoull(text) : fallback;
}

std::uint64_t seed() {
    static const std::uint64_t value = env_number("ORGSYNC_CRASH_SEED", std::random_device{}());
    return value;
}

int trials() {
    return static_cast<int>(env_number("ORGSYNC_CRASH_TRIALS", 20));
}

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
}

// The store with its WAL, as a SIGKILL left it (no -shm: SQLite rebuilds it).
void copy_store(const fs::path& from, const fs::path& to) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
        fs::remove(to.string() + suffix);
    }
    for (const char* suffix : {"", "-wal"}) {
        if (fs::exists(from.string() + suffix)) {
            fs::copy_file(from.string() + suffix, to.string() + suffix);
        }
    }
}

// PRAGMA integrity_check and foreign_key_check: "ok" or what they report.
//
// SQLite 3.40.0 to 3.41.0 (Debian 12 has 3.40.1) report "NULL value in
// T.C" for every row of a WITHOUT ROWID table whose primary key lists its
// columns in another order than the table declares them (group_members,
// project_user_grants, dataset_user_grants here), whatever the row holds.
// Such a line counts only when T really has a NULL in C (typeof, since
// SQLite folds `C IS NULL` to false on a NOT NULL column); the error limit
// is raised so that these lines cannot crowd out others.
std::string integrity(const fs::path& store) {
    SQLite::Database db(store.string(), SQLite::OPEN_READWRITE);
    std::string report;
    std::set<std::string> null_claims;
    SQLite::Statement check(db, "PRAGMA integrity_check(10000000)");
    while (check.executeStep()) {
        const std::string line = check.getColumn(0).getString();
        constexpr std::string_view k_null = "NULL value in ";
        if (line.starts_with(k_null) && line.find('.') != std::string::npos) {
            null_claims.insert(line.substr(k_null.size()));
        } else if (line != "ok") {
            report += line + "\n";
        }
    }
    for (const auto& claim : null_claims) {
        const auto dot = claim.find('.');
        const std::string table = claim.substr(0, dot);
        const std::string column = claim.substr(dot + 1);
        const auto nulls =
            db.execAndGet(fmt::format("SELECT count(*) FROM \"{}\" WHERE typeof(\"{}\") = 'null'",
                                      table, column))
                .getInt64();
        if (nulls != 0) {
            report += fmt::format("{} NULL values in {}\n", nulls, claim);
        }
    }
    if (!report.empty()) {
        return report;
    }
    SQLite::Statement keys(db, "PRAGMA foreign_key_check");
    std::size_t broken = 0;
    while (keys.executeStep()) {
        ++broken;
    }
    return broken == 0 ? "ok" : fmt::format("{} rows break a foreign key", broken);
}

// The line of `log` with `event`, or "".
bool logged(const std::string& log, const std::string& text) {
    return log.find(text) != std::string::npos;
}

// What the daemon had got to when it was killed, from its log.
std::string phase_of(const std::string& log, const std::string& sync_done) {
    if (logged(log, sync_done)) {
        return "after the run";
    }
    if (logged(log, "event=sync.started")) {
        return "during the run";
    }
    if (logged(log, "event=http.listening")) {
        return "listening";
    }
    return "starting";
}

httplib::Headers api_auth() {
    return {{"Authorization", std::string("Bearer ") + k_api_token}};
}

// ---- scenario A: a large LDAP sync --------------------------------------------

// Two versions of one directory, A and B (what a store synced with A meets
// at the next run): B lacks 1 user in 40 of A, adds a third more, gives 1 in
// 50 a new address, and adds admins and vision-team members. Entries have
// fixed entryUUIDs, the connector's stable ids, so both versions name the
// same person alike. The slapds run without syncprov: its slapadd -w
// (Debian 12's OpenLDAP 2.5) aborts with a corrupted heap on such entries
// when a group has a few thousand members; the runs read by change marker,
// and the run to B reads in full (another server).
struct Person {
    bool present = false;
    std::string mail;
    bool admin = false;
    bool vision = false;
};

Person person(int i, bool b) {
    const bool acme = i % 10 < 7;
    Person out;
    out.present = b ? i % 40 != 1 : i % 3 != 0;
    out.mail =
        fmt::format("{}{:05}@{}", b && i % 50 == 7 ? "n" : "u", i, acme ? "acme.com" : "beta.org");
    out.admin = acme && (i % 97 == 2 || (b && i % 89 == 5));
    out.vision = acme && (i % 5 == 0 || (b && i % 7 == 0));
    return out;
}

std::string user_dn(int i) {
    return fmt::format("uid=u{:05},ou=people,{}", i, k_suffix);
}

std::string directory_ldif(int users, bool b) {
    std::string ldif;
    std::vector<int> admins;
    std::vector<int> vision;
    for (int i = 0; i < users; ++i) {
        const Person p = person(i, b);
        if (!p.present) {
            continue;
        }
        ldif += fmt::format(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: u{:05}\ncn: Person {}\nsn: {}\nmail: {}\n"
            "entryUUID: 00000000-0000-4000-8000-{:012}\n\n",
            user_dn(i), i, i, i, p.mail, i);
        if (p.admin) {
            admins.push_back(i);
        }
        if (p.vision) {
            vision.push_back(i);
        }
    }
    int group = 0;
    for (const auto& [name, members] :
         {std::pair{"acme-admins", admins}, std::pair{"vision-team", vision}}) {
        ldif += fmt::format(
            "dn: cn={},ou=groups,{}\nobjectClass: groupOfNames\ncn: {}\n"
            "entryUUID: 00000000-0000-4000-9000-{:012}\n",
            name, k_suffix, name, group++);
        for (int member : members) {
            ldif += "member: " + user_dn(member) + "\n";
        }
        ldif += "\n";
    }
    return ldif;
}

using Members = std::map<std::string, std::map<std::string, std::string>>;  // org -> email -> role

Members expected_members(int users, bool b) {
    Members out{{"acme", {{"ceo@acme.com", "owner"}}}, {"beta", {{"ceo@beta.org", "owner"}}}};
    for (int i = 0; i < users; ++i) {
        const Person p = person(i, b);
        if (p.present) {
            out[p.mail.ends_with("@acme.com") ? "acme" : "beta"][p.mail] =
                p.admin ? "admin" : "member";
        }
    }
    return out;
}

Members stored_members(const fs::path& store) {
    SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
    SQLite::Statement query(db,
                            "SELECT o.slug, u.email, m.role FROM memberships m "
                            "JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id");
    Members out;
    while (query.executeStep()) {
        out[query.getColumn(0).getString()][query.getColumn(1).getString()] =
            query.getColumn(2).getString();
    }
    return out;
}

// Everything a sync writes but the timestamps and the cursor (which holds
// the time of its read), folded into one digest, plus what a failure
// message needs.
struct Fingerprint {
    std::uint64_t digest = 14695981039346656037ull;
    std::size_t members = 0;
    std::size_t mirror_users = 0;
    std::size_t audit = 0;
    std::size_t outbox = 0;
    std::string cursor;
    std::string text() const {
        return fmt::format("{} memberships, {} mirrored users, {} audit rows, {} outbox rows",
                           members, mirror_users, audit, outbox);
    }
};

Fingerprint fingerprint(const fs::path& store) {
    SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
    Fingerprint out;
    auto fold = [&](const std::string& text) {
        for (char c : text) {
            out.digest = (out.digest ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        }
        out.digest = (out.digest ^ 0xff) * 1099511628211ull;
    };
    const std::vector<std::string> queries = {
        "SELECT email, display_name, active FROM users ORDER BY email",
        "SELECT u.email, x.source, x.kind, x.value FROM user_external_ids x "
        "JOIN users u ON u.id = x.user_id ORDER BY 1, 2, 3, 4",
        "SELECT o.slug, u.email, m.user_type, m.role FROM memberships m JOIN orgs o ON "
        "o.id = m.org_id JOIN users u ON u.id = m.user_id ORDER BY 1, 2",
        "SELECT o.slug, u.email, a.source, a.user_type, a.role FROM membership_assertions a "
        "JOIN orgs o ON o.id = a.org_id JOIN users u ON u.id = a.user_id ORDER BY 1, 2, 3",
        "SELECT o.slug, g.name FROM groups g JOIN orgs o ON o.id = g.org_id ORDER BY 1, 2",
        "SELECT g.name, u.email, gm.source FROM group_members gm JOIN groups g ON "
        "g.id = gm.group_id JOIN users u ON u.id = gm.user_id ORDER BY 1, 2, 3",
        "SELECT p.slug, g.name, x.source, x.level FROM project_group_grants x JOIN projects p "
        "ON p.id = x.project_id JOIN groups g ON g.id = x.group_id ORDER BY 1, 2, 3",
        "SELECT p.slug, u.email, x.source, x.level FROM project_user_grants x JOIN projects p "
        "ON p.id = x.project_id JOIN users u ON u.id = x.user_id ORDER BY 1, 2, 3",
        "SELECT source, external_id, email, display_name, active, attributes, email_key "
        "FROM source_users ORDER BY 1, 2",
        "SELECT source, external_id, name, attributes FROM source_groups ORDER BY 1, 2",
        "SELECT source, external_id, hex(members) FROM source_group_member_lists ORDER BY 1, 2",
        "SELECT source, member_id, group_external_id FROM source_member_groups ORDER BY 1, 2, 3",
        "SELECT source, kind, org, subject, detail FROM audit_log ORDER BY id",
        "SELECT org, kind FROM outbox ORDER BY id",
    };
    for (const auto& sql : queries) {
        fold(sql);
        SQLite::Statement query(db, sql);
        while (query.executeStep()) {
            for (int column = 0; column < query.getColumnCount(); ++column) {
                fold(query.getColumn(column).getString());
            }
        }
    }
    out.members =
        static_cast<std::size_t>(db.execAndGet("SELECT count(*) FROM memberships").getInt64());
    out.mirror_users =
        static_cast<std::size_t>(db.execAndGet("SELECT count(*) FROM source_users").getInt64());
    out.audit =
        static_cast<std::size_t>(db.execAndGet("SELECT count(*) FROM audit_log").getInt64());
    out.outbox = static_cast<std::size_t>(db.execAndGet("SELECT count(*) FROM outbox").getInt64());
    SQLite::Statement cursor(db, "SELECT cursor FROM source_state WHERE source = 'corp'");
    if (cursor.executeStep() && !cursor.getColumn(0).isNull()) {
        out.cursor = cursor.getColumn(0).getString();
    }
    return out;
}

// The sync runs recorded after `after_id`: (result, changes).
std::vector<std::pair<std::string, std::int64_t>> runs_after(const fs::path& store,
                                                             std::int64_t after_id) {
    SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
    SQLite::Statement query(
        db, "SELECT result, summary FROM sync_runs WHERE source = 'corp' AND id > ? ORDER BY id");
    query.bind(1, after_id);
    std::vector<std::pair<std::string, std::int64_t>> out;
    while (query.executeStep()) {
        auto summary = json::parse(query.getColumn(1).getString(), nullptr, false);
        out.emplace_back(query.getColumn(0).getString(),
                         summary.is_object() ? summary.value("changes", std::int64_t{-1}) : -1);
    }
    return out;
}

std::int64_t last_run_id(const fs::path& store) {
    SQLite::Database db(store.string(), SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT coalesce(max(id), 0) FROM sync_runs").getInt64();
}

class CrashTest : public ::testing::Test {
  protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() /
                fmt::format("orgsync-crash-{}-{}", ::getpid(),
                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        write_file(m_dir / "api-token", k_api_token);
        write_file(m_dir / "scim-token", k_scim_token);
        std::printf("crash test seed %llu (replay: ORGSYNC_CRASH_SEED=%llu), %d trials\n",
                    static_cast<unsigned long long>(seed()),
                    static_cast<unsigned long long>(seed()), trials());
    }

    void TearDown() override {
        m_daemon.reset();
        if (!HasFailure()) {
            fs::remove_all(m_dir);
        } else {
            std::printf("kept %s\n", m_dir.c_str());
        }
    }

    void write_config(const std::string& sources) {
        write_file(m_dir / "orgsyncd.toml", R"([store]
path = "orgsync.db"
[http]
listen = "127.0.0.1:0"
api_token_file = "api-token"
[mapping]
file = "mapping.toml"
)" + sources);
    }

    std::string ldap_source(const Slapd& slapd) const {
        return fmt::format(
            "[[source]]\nname = \"corp\"\ntype = \"ldap\"\nuri = [\"{}\"]\nbind_dn = \"{}\"\n"
            "bind_password_file = \"{}\"\nuser_base = \"ou=people,{}\"\n"
            "group_base = \"ou=groups,{}\"\ninterval = \"1h\"\ntimeout = \"60s\"\n",
            slapd.uri(), slapd.reader_dn(), slapd.reader_password_file().string(), k_suffix,
            k_suffix);
    }

    std::unique_ptr<httplib::Client> client() const {
        auto out = std::make_unique<httplib::Client>("127.0.0.1", m_daemon->port());
        out->set_read_timeout(120, 0);
        return out;
    }

    Members api_members() {
        Members out;
        auto http = client();
        for (const char* org : {"acme", "beta"}) {
            auto reply = http->Get(fmt::format("/v1/orgs/{}/members", org), api_auth());
            if (!reply || reply->status != 200) {
                ADD_FAILURE() << "GET members of " << org << ": "
                              << (reply ? reply->body : httplib::to_string(reply.error()));
                continue;
            }
            const json body = json::parse(reply->body);
            for (const auto& member : body["members"]) {
                out[org][member["email"]] = member["role"];
            }
        }
        return out;
    }

    // Polls the log until it has `text`; the time it took, or nullopt.
    std::optional<Clock::duration> wait_logged(const std::string& text, Clock::time_point since,
                                               std::chrono::seconds timeout = 120s) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            if (logged(m_daemon->log(), text)) {
                return Clock::now() - since;
            }
            std::this_thread::sleep_for(5ms);
        }
        return std::nullopt;
    }

    fs::path m_dir;
    std::unique_ptr<DaemonProcess> m_daemon;
};

TEST_F(CrashTest, LdapSyncKilledAtRandomLeavesTheStoreBeforeOrAfterTheRun) {
    const int users = static_cast<int>(env_number("ORGSYNC_CRASH_USERS", 20000));
    write_file(m_dir / "a.ldif", directory_ldif(users, false));
    write_file(m_dir / "b.ldif", directory_ldif(users, true));
    Slapd slapd_a({.suffix = k_suffix,
                   .memberof = false,
                   .syncprov = false,
                   .initial_ldif = m_dir / "a.ldif"});
    Slapd slapd_b({.suffix = k_suffix,
                   .memberof = false,
                   .syncprov = false,
                   .initial_ldif = m_dir / "b.ldif"});
    write_file(m_dir / "mapping.toml", fmt::format(R"([[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
project_admin_fallback = "owner"
  [[org.domain]]
  name = "acme.com"
  user_type = "internal"
  role = "member"
  [[org.project]]
  slug = "vision"
  [[org.role]]
  source = "corp"
  group = "cn=acme-admins,ou=groups,{0}"
  role = "admin"
  [[org.grant]]
  source = "corp"
  group = "cn=vision-team,ou=groups,{0}"
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
)",
                                                   k_suffix));
    const fs::path store = m_dir / "orgsync.db";
    const fs::path before_store = m_dir / "before.db";
    const fs::path after_store = m_dir / "after.db";
    const Members members_a = expected_members(users, false);
    const Members members_b = expected_members(users, true);
    const std::string applied = "event=sync.applied source=corp trigger=start mode=full";

    // The state before: the store after a sync with version A.
    write_config(ldap_source(slapd_a));
    m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
    ASSERT_TRUE(wait_logged(applied, Clock::now())) << m_daemon->log();
    ASSERT_EQ(m_daemon->stop(SIGTERM), 0);
    ASSERT_EQ(stored_members(store), members_a);
    copy_store(store, before_store);
    const Fingerprint before = fingerprint(before_store);
    const std::int64_t before_runs = last_run_id(before_store);

    // The state after, and how long the daemon takes from its start to the
    // run's commit: the window the kills are spread over (the shorter of two
    // runs; the first finds slapd's cache cold).
    write_config(ldap_source(slapd_b));
    std::optional<Clock::duration> took;
    for (int run = 0; run < 2; ++run) {
        copy_store(before_store, store);
        const auto spawned = Clock::now();
        m_daemon = DaemonProcess::spawn(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        auto this_run = wait_logged(applied, spawned);
        ASSERT_TRUE(this_run) << m_daemon->log();
        ASSERT_EQ(m_daemon->stop(SIGTERM), 0);
        ASSERT_EQ(stored_members(store), members_b);
        took = took ? std::min(*took, *this_run) : *this_run;
    }
    copy_store(store, after_store);
    const Fingerprint after = fingerprint(after_store);
    const auto after_runs = runs_after(after_store, before_runs);
    std::int64_t run_changes = 0;
    for (const auto& [result, changes] : after_runs) {
        run_changes = std::max(run_changes, changes);
    }
    ASSERT_GT(run_changes, 0);
    ASSERT_NE(before.digest, after.digest);
    const double window = std::chrono::duration<double>(*took).count() * 1.15;
    std::printf(
        "directory: %d users in version A, %d in B (%zu and %zu members); the run to B: %lld "
        "changes, committed %.2f s after the daemon's start; kills in [0, %.2f s]\n"
        "before: %s\nafter:  %s\n",
        static_cast<int>(members_a.at("acme").size() + members_a.at("beta").size() - 2),
        static_cast<int>(members_b.at("acme").size() + members_b.at("beta").size() - 2),
        before.members, after.members, static_cast<long long>(run_changes),
        std::chrono::duration<double>(*took).count(), window, before.text().c_str(),
        after.text().c_str());

    std::mt19937_64 random(seed());
    std::map<std::string, int> phases;
    int ended_before = 0;
    int ended_after = 0;
    for (int trial = 0; trial < trials() && !HasFatalFailure(); ++trial) {
        SCOPED_TRACE(fmt::format("trial {} (seed {})", trial, seed()));
        copy_store(before_store, store);
        const auto delay = std::chrono::duration<double>(
            std::uniform_real_distribution<double>(0.0, window)(random));
        const auto start = Clock::now();
        m_daemon = DaemonProcess::spawn(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(delay));
        ASSERT_EQ(m_daemon->stop(SIGKILL), 128 + SIGKILL);
        const std::string phase = phase_of(m_daemon->log(), applied);
        std::printf("trial %d: killed %.3f s after the start, %s\n", trial, delay.count(),
                    phase.c_str());
        ++phases[phase];

        ASSERT_EQ(integrity(store), "ok");
        const Fingerprint found = fingerprint(store);
        const bool is_before = found.digest == before.digest;
        const bool is_after = found.digest == after.digest;
        ASSERT_TRUE(is_before || is_after) << fmt::format(
            "killed {:.3f} s after the start ({}): the store is neither before "
            "nor after the run\nfound:  {}\nbefore: {}\nafter:  {}",
            delay.count(), phase, found.text(), before.text(), after.text());
        (is_before ? ended_before : ended_after)++;
        EXPECT_EQ(stored_members(store), is_before ? members_a : members_b);
        // The run record and the cursor went with the run.
        const auto runs = runs_after(store, before_runs);
        int with_changes = 0;
        for (const auto& [result, changes] : runs) {
            EXPECT_EQ(result, "applied");
            if (changes != 0) {
                EXPECT_EQ(changes, run_changes);
                ++with_changes;
            }
        }
        EXPECT_EQ(with_changes, is_before ? 0 : 1);
        if (is_before) {
            EXPECT_EQ(found.cursor, before.cursor);
        } else {
            EXPECT_NE(found.cursor, before.cursor);
        }

        // Restarted on that store: nothing to re-derive; a requested run
        // converges on the directory.
        m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        EXPECT_TRUE(logged(m_daemon->log(),
                           "event=sync.applied source=corp trigger=start mode=mirror changes=0 "))
            << m_daemon->log();
        auto reply = client()->Post("/v1/sync/corp?wait=true", api_auth(), "", "text/plain");
        ASSERT_TRUE(reply && reply->status == 200) << m_daemon->log();
        EXPECT_EQ(json::parse(reply->body)["last_run"]["result"], "applied") << reply->body;
        EXPECT_EQ(api_members(), members_b);
        EXPECT_EQ(m_daemon->stop(SIGTERM), 0) << m_daemon->log();
    }
    std::printf("LDAP: %d trials; killed: ", trials());
    for (const auto& [phase, count] : phases) {
        std::printf("%s %d, ", phase.c_str(), count);
    }
    std::printf("\nLDAP: the store was before the run %d times, after it %d times\n", ended_before,
                ended_after);
}

// ---- scenario B: bursts of SCIM writes -------------------------------------------

TEST_F(CrashTest, ScimWritesKilledAtRandomKeepEveryAcknowledgedWrite) {
    write_config(R"([[source]]
name = "entra"
type = "scim"
org = "acme"
token_file = "scim-token"
)");
    write_file(m_dir / "mapping.toml", R"([[org]]
slug = "acme"
name = "Acme"
owner = "ceo@acme.com"
  [[org.domain]]
  name = "acme.com"
  user_type = "internal"
  role = "member"
  [[org.role]]
  source = "entra"
  group = "Acme Admins"
  role = "admin"
)");
    const fs::path store = m_dir / "orgsync.db";
    constexpr int k_clients = 4;
    constexpr double k_burst_seconds = 2.0;
    std::mt19937_64 random(seed());
    std::vector<ScimWriter> writers;
    for (int c = 0; c < k_clients; ++c) {
        writers.emplace_back(c, seed() + 1 + static_cast<std::uint64_t>(c), k_scim_token);
    }

    // Every acknowledged user, read back through the restarted daemon.
    auto check_through_api = [&] {
        auto http = client();
        const httplib::Headers auth{{"Authorization", std::string("Bearer ") + k_scim_token}};
        for (const auto& writer : writers) {
            for (const auto& [name, user] : writer.model().users) {
                auto reply = http->Get("/scim/v2/Users/" + user.id, auth);
                ASSERT_TRUE(reply && reply->status == 200) << name;
                auto body = json::parse(reply->body);
                EXPECT_EQ(body["userName"], name);
                EXPECT_EQ(body["displayName"], user.display_name) << name;
                EXPECT_EQ(body["active"], user.active) << name;
            }
        }
    };

    std::size_t in_flight = 0;
    std::size_t in_flight_applied = 0;
    std::size_t acknowledged = 0;
    std::vector<double> kills;
    for (int trial = 0; trial < trials() && !HasFatalFailure(); ++trial) {
        SCOPED_TRACE(fmt::format("trial {} (seed {})", trial, seed()));
        m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
        if (trial > 0) {
            EXPECT_TRUE(logged(m_daemon->log(),
                               "event=sync.applied source=entra trigger=start mode=mirror "
                               "changes=0 "))
                << m_daemon->log();
            check_through_api();
        }
        std::atomic<bool> stop{false};
        std::vector<std::thread> clients;
        for (auto& writer : writers) {
            clients.emplace_back([&, port = m_daemon->port()] {
                httplib::Client http("127.0.0.1", port);
                http.set_read_timeout(60, 0);
                while (!stop) {
                    if (writer.write_one(http) == ScimWriter::Outcome::no_answer) {
                        return;
                    }
                }
            });
        }
        const double delay = std::uniform_real_distribution<double>(0.05, k_burst_seconds)(random);
        kills.push_back(delay);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        const int status = m_daemon->stop(SIGKILL);
        stop = true;
        for (auto& thread : clients) {
            thread.join();
        }
        ASSERT_EQ(status, 128 + SIGKILL);

        ASSERT_EQ(integrity(store), "ok");
        const ScimMirror mirror = test::read_scim_mirror(store, "entra");
        for (auto& writer : writers) {
            const bool pending = writer.pending();
            const std::string what = writer.pending_description();
            bool applied = false;
            for (const auto& problem : writer.reconcile(mirror, &applied)) {
                ADD_FAILURE() << "killed " << delay << " s into the burst: " << problem;
            }
            in_flight += pending ? 1 : 0;
            in_flight_applied += applied ? 1 : 0;
            if (pending) {
                std::printf("trial %d: %s in flight, %s\n", trial, what.c_str(),
                            applied ? "committed" : "not committed");
            }
        }
        for (const auto& [id, user] : mirror.users) {
            bool owned = false;
            for (const auto& writer : writers) {
                owned = owned || writer.owns_user(user.user_name);
            }
            EXPECT_TRUE(owned) << "user " << user.user_name << " in the store, never written";
        }
        for (const auto& problem : test::check_scim_org(store, "entra", "acme", "Acme Admins")) {
            ADD_FAILURE() << problem;
        }
    }

    // Restarted once more: the store is whole and writes are accepted.
    m_daemon = DaemonProcess::start(ORGSYNCD_BINARY, m_dir / "orgsyncd.toml", m_dir / "log");
    EXPECT_TRUE(logged(m_daemon->log(),
                       "event=sync.applied source=entra trigger=start mode=mirror changes=0 "))
        << m_daemon->log();
    check_through_api();
    {
        httplib::Client http("127.0.0.1", m_daemon->port());
        EXPECT_EQ(writers[0].write_one(http), ScimWriter::Outcome::acknowledged);
    }
    EXPECT_EQ(m_daemon->stop(SIGTERM), 0);

    std::size_t refused = 0;
    std::size_t busy = 0;
    std::map<std::string, std::size_t> by_kind;
    for (const auto& writer : writers) {
        acknowledged += writer.stats().acknowledged;
        refused += writer.stats().client_errors + writer.stats().server_errors;
        busy += writer.stats().busy;
        for (const auto& [kind, count] : writer.stats().acknowledged_by_kind) {
            by_kind[kind] += count;
        }
        for (const auto& refusal : writer.stats().refusals) {
            ADD_FAILURE() << "refused: " << refusal;
        }
    }
    EXPECT_EQ(refused, 0u);
    EXPECT_EQ(busy, 0u);
    std::sort(kills.begin(), kills.end());
    std::printf(
        "SCIM: %d trials, %d clients, kills %.2f-%.2f s into a burst; %zu writes acknowledged "
        "and all present; %zu in flight at a kill, %zu of them committed\nSCIM: acknowledged ",
        trials(), k_clients, kills.front(), kills.back(), acknowledged, in_flight,
        in_flight_applied);
    for (const auto& [kind, count] : by_kind) {
        std::printf("%s %zu, ", kind.c_str(), count);
    }
    std::printf("\n");
}

}  // namespace
}  // namespace orgsync::reliability
