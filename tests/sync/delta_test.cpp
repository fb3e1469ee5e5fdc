// Incremental syncs (run_sync_delta) and source cursors: a delta leaves the
// store exactly as a full run over the patched mirror would, and the cursor
// is committed with the mirror or not at all.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "directory/email.hpp"
#include "sync/run.hpp"
#include "tests/directory/test_support.hpp"

namespace orgsync::sync {
namespace {

using namespace directory;
using namespace directory::test_support;

const SourceSpec k_corp{"corp", "ldap", ""};

SourceUser user(std::string id, std::string email, bool active = true) {
    return SourceUser{"corp", std::move(id), std::move(email), "", active, "{}"};
}

SourceGroup group(std::string id, std::string name, std::vector<std::string> members) {
    return SourceGroup{"corp", std::move(id), std::move(name), "{}", std::move(members)};
}

// acme (acme.com, a workforce org) and beta (beta.org); corp's groups give
// roles and grants in both, and some groups are named by no rule.
mapping::Mapping two_orgs() {
    mapping::OrgMapping acme;
    acme.slug = "acme";
    acme.name = "Acme";
    acme.owner = "ceo@acme.com";
    acme.workforce = true;
    acme.domains.push_back(
        mapping::DomainRule{"acme.com", false, UserType::internal, OrgRole::member});
    acme.roles.push_back(mapping::RoleRule{"corp", "cn=admins", OrgRole::admin});
    acme.projects.push_back(mapping::ProjectDecl{"vision", Visibility::private_, {"cv"}});
    acme.datasets.push_back(mapping::DatasetDecl{"scenes", {"vision"}});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=vision", "vision", std::nullopt,
                                             Level::write, DatasetAccess::read});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=vision-admins", "vision", std::nullopt,
                                             Level::admin, DatasetAccess::read});
    acme.grants.push_back(mapping::GrantRule{"corp", "cn=labelers", std::nullopt, "scenes",
                                             Level::read, DatasetAccess::write});
    mapping::OrgMapping beta;
    beta.slug = "beta";
    beta.name = "Beta";
    beta.owner = "boss@beta.org";
    beta.domains.push_back(
        mapping::DomainRule{"beta.org", false, UserType::internal, OrgRole::member});
    beta.roles.push_back(mapping::RoleRule{"corp", "cn=beta-admins", OrgRole::admin});
    beta.roles.push_back(mapping::RoleRule{"corp", "cn=labelers", OrgRole::guest});
    beta.projects.push_back(mapping::ProjectDecl{"nlp", Visibility::public_, {}});
    beta.grants.push_back(mapping::GrantRule{"corp", "cn=vision", "nlp", std::nullopt, Level::read,
                                             DatasetAccess::read});
    mapping::Mapping result;
    result.orgs.push_back(std::move(acme));
    result.orgs.push_back(std::move(beta));
    return result;
}

// A mirror as a map by external id, patched the way the store patches it.
struct Mirror {
    std::map<std::string, SourceUser> users;
    std::map<std::string, SourceGroup> groups;

    void apply(const SourceDelta& delta) {
        for (const auto& item : delta.upsert_users) {
            users[item.external_id] = item;
        }
        for (const auto& id : delta.removed_user_ids) {
            users.erase(id);
        }
        for (const auto& item : delta.upsert_groups) {
            groups[item.external_id] = item;
        }
        for (const auto& id : delta.removed_group_ids) {
            groups.erase(id);
        }
    }

    // In external id order, as the store lists a mirror.
    SourceData data() const {
        SourceData out;
        for (const auto& [id, item] : users) {
            out.users.push_back(item);
        }
        for (const auto& [id, item] : groups) {
            SourceGroup sorted = item;
            std::sort(sorted.member_ids.begin(), sorted.member_ids.end());
            out.groups.push_back(std::move(sorted));
        }
        return out;
    }
};

// Random deltas over a small address and group-name space, so that
// addresses collide, users move between orgs, groups are renamed onto names
// other groups have, and admins come and go.
class DeltaGenerator {
  public:
    explicit DeltaGenerator(std::uint64_t seed) : m_random(seed) {}

    std::string address() {
        static const std::vector<std::string> domains{"acme.com", "ACME.com", "beta.org",
                                                      "gmail.com", "Beta.ORG"};
        if (chance(0.03)) {
            return "not an address";
        }
        return fmt::format("u{}@{}", below(14), domains[below(domains.size())]);
    }

    std::string group_name() {
        static const std::vector<std::string> names{
            "cn=admins",      "cn=vision", "cn=vision-admins", "cn=labelers",
            "cn=beta-admins", "cn=unused", "cn=other"};
        return names[below(names.size())];
    }

    SourceUser new_user() {
        SourceUser made = user(fmt::format("u-{:03}", m_next_user++), address(), !chance(0.1));
        made.display_name = fmt::format("Person {}", below(3));
        return made;
    }

    std::vector<std::string> members(const Mirror& mirror) {
        std::vector<std::string> ids;
        for (const auto& [id, item] : mirror.users) {
            if (chance(0.3)) {
                ids.push_back(id);
            }
        }
        if (chance(0.2)) {
            ids.push_back("u-gone");  // a member the mirror does not have
        }
        return ids;
    }

    SourceGroup new_group(const Mirror& mirror) {
        return group(fmt::format("g-{:03}", m_next_group++), group_name(), members(mirror));
    }

    SourceDelta initial(Mirror& mirror) {
        SourceDelta delta;
        for (int i = 0; i < 16; ++i) {
            delta.upsert_users.push_back(new_user());
        }
        mirror.apply(delta);
        for (int i = 0; i < 7; ++i) {
            delta.upsert_groups.push_back(new_group(mirror));
        }
        mirror.apply(delta);
        return delta;
    }

    SourceDelta next(const Mirror& mirror) {
        SourceDelta delta;
        std::set<std::string> touched;
        auto pick_user = [&]() -> const SourceUser* {
            if (mirror.users.empty()) {
                return nullptr;
            }
            auto it = std::next(mirror.users.begin(),
                                static_cast<std::ptrdiff_t>(below(mirror.users.size())));
            return touched.insert(it->first).second ? &it->second : nullptr;
        };
        for (std::size_t i = below(4); i > 0; --i) {
            if (chance(0.3)) {
                delta.upsert_users.push_back(new_user());
                continue;
            }
            const SourceUser* old = pick_user();
            if (old == nullptr) {
                continue;
            }
            SourceUser changed = *old;
            double what = unit();
            if (what < 0.4) {
                changed.email = address();
            } else if (what < 0.6) {
                changed.active = !changed.active;
            } else if (what < 0.7) {
                changed.display_name = "Renamed";
            } else if (what < 0.8) {
                // Another spelling of the same address.
                auto at = changed.email.find('@');
                if (at != std::string::npos) {
                    for (std::size_t c = at + 1; c < changed.email.size(); ++c) {
                        changed.email[c] = static_cast<char>(std::toupper(changed.email[c]));
                    }
                }
            }
            delta.upsert_users.push_back(std::move(changed));
        }
        if (mirror.users.size() > 3 && chance(0.4)) {
            if (const SourceUser* gone = pick_user()) {
                delta.removed_user_ids.push_back(gone->external_id);
            }
        }
        if (chance(0.1)) {
            delta.removed_user_ids.push_back("u-never-seen");
        }
        std::set<std::string> touched_groups;
        for (std::size_t i = below(3); i > 0; --i) {
            if (mirror.groups.empty() || chance(0.25)) {
                delta.upsert_groups.push_back(new_group(mirror));
                continue;
            }
            auto it = std::next(mirror.groups.begin(),
                                static_cast<std::ptrdiff_t>(below(mirror.groups.size())));
            if (!touched_groups.insert(it->first).second) {
                continue;
            }
            SourceGroup changed = it->second;
            double what = unit();
            if (what < 0.25) {
                changed.name = group_name();
            } else if (what < 0.6 && !changed.member_ids.empty()) {
                changed.member_ids.erase(
                    changed.member_ids.begin() +
                    static_cast<std::ptrdiff_t>(below(changed.member_ids.size())));
            } else if (!mirror.users.empty()) {
                changed.member_ids.push_back(
                    std::next(mirror.users.begin(),
                              static_cast<std::ptrdiff_t>(below(mirror.users.size())))
                        ->first);
            }
            delta.upsert_groups.push_back(std::move(changed));
        }
        if (mirror.groups.size() > 2 && chance(0.2)) {
            auto it = std::next(mirror.groups.begin(),
                                static_cast<std::ptrdiff_t>(below(mirror.groups.size())));
            if (touched_groups.insert(it->first).second) {
                delta.removed_group_ids.push_back(it->first);
            }
        }
        return delta;
    }

  private:
    std::size_t below(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(m_random);
    }
    double unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(m_random); }
    bool chance(double p) { return unit() < p; }

    std::mt19937_64 m_random;
    int m_next_user = 0;
    int m_next_group = 0;
};

std::string dump_mirror(const Store& store) {
    std::string out;
    for (const auto& item : must(store.list_source_users("corp"), "list_source_users")) {
        out += fmt::format("user {} {} {} {} {}\n", item.external_id, item.email, item.display_name,
                           item.active, item.attributes);
    }
    for (const auto& item : must(store.list_source_groups("corp"), "list_source_groups")) {
        out += fmt::format("group {} {} {}\n", item.external_id, item.name, join(item.member_ids));
    }
    return out;
}

class DeltaTest : public BasicStoreFixture<::testing::TestWithParam<std::uint64_t>> {
  protected:
    mapping::Mapping m_mapping = two_orgs();
};

// Store A takes every delta; store B takes a full run over the mirror the
// deltas add up to. After each step both hold the same state.
TEST_P(DeltaTest, RandomDeltasLeaveTheStoreAsAFullRunWould) {
    auto full_store = must(Store::open(m_dir->path() / "full.db"), "open");
    DeltaGenerator generator(GetParam());
    Mirror mirror;
    std::set<std::string> addresses{"ceo@acme.com", "boss@beta.org"};
    auto note_addresses = [&]() {
        for (const auto& [id, item] : mirror.users) {
            if (auto canonical = canonical_email(item.email)) {
                addresses.insert(*canonical);
            }
        }
    };
    const RunOptions force{true};
    for (int step = 0; step < 25; ++step) {
        SourceDelta delta = step == 0 ? generator.initial(mirror) : generator.next(mirror);
        if (step > 0) {
            mirror.apply(delta);
        }
        note_addresses();
        delta.cursor = fmt::format("cookie-{}", step);

        Plan delta_plan = must(prepare_delta_plan(store(), m_mapping, k_corp, delta), "plan");
        RunResult by_delta =
            must(run_sync_delta(store(), m_mapping, k_corp, delta, force), "delta");
        SourceData full = mirror.data();
        full.cursor = delta.cursor;
        RunResult by_full = must(run_sync(*full_store, m_mapping, k_corp, full, force), "full");

        SCOPED_TRACE(fmt::format("seed {} step {}\ndelta plan:\n{}full plan:\n{}", GetParam(), step,
                                 to_text(by_delta.plan), to_text(by_full.plan)));
        ASSERT_EQ(by_delta.result, by_full.result) << by_delta.message << " / " << by_full.message;
        EXPECT_EQ(by_delta.plan.changes.size(), by_full.plan.changes.size());
        EXPECT_EQ(delta_plan.changes.size(), by_delta.plan.changes.size());
        std::vector<std::string> extra(addresses.begin(), addresses.end());
        ASSERT_EQ(dump_state(store(), extra), dump_state(*full_store, extra));
        ASSERT_EQ(dump_mirror(store()), dump_mirror(*full_store));
        // The decision views the writes updated in place are the ones a
        // fresh open builds.
        std::string updated = dump_state(store(), extra);
        reopen();
        ASSERT_EQ(dump_state(store(), extra), updated);
        EXPECT_EQ(must(store().source_cursor("corp"), "cursor"), delta.cursor);
        EXPECT_EQ(must(full_store->source_cursor("corp"), "cursor"), delta.cursor);

        // Nothing is left to do either way.
        EXPECT_TRUE(must(prepare_plan(store(), m_mapping, k_corp, mirror.data()), "plan").empty());
        EXPECT_TRUE(
            must(prepare_delta_plan(store(), m_mapping, k_corp, SourceDelta{}), "plan").empty());
    }
    auto runs = must(store().sync_runs("corp", 1), "sync_runs");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].kind, "delta");
    EXPECT_EQ(must(full_store->sync_runs("corp", 1), "sync_runs")[0].kind, "full");
}

INSTANTIATE_TEST_SUITE_P(Seeds, DeltaTest, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));

class CursorTest : public StoreFixture {
  protected:
    std::optional<std::string> cursor() { return must(store().source_cursor("corp"), "cursor"); }

    SourceData data() {
        SourceData out{{user("u1", "alice@acme.com"), user("u2", "bob@acme.com"),
                        user("u3", "carol@acme.com")},
                       {group("g1", "cn=admins", {"u1"})}};
        for (int i = 0; i < 7; ++i) {
            out.users.push_back(user(fmt::format("x{}", i), fmt::format("x{}@acme.com", i)));
        }
        return out;
    }

    mapping::Mapping m_mapping = two_orgs();
};

TEST_F(CursorTest, FullRunsStoreClearOrKeepTheCursor) {
    EXPECT_EQ(cursor(), std::nullopt);
    SourceData fetched = data();
    fetched.cursor = "cookie-1";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");
    EXPECT_EQ(cursor(), "cookie-1");

    // A run from the stored mirror (a mapping change) keeps it.
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, std::nullopt, {}), "run").result,
              "applied");
    EXPECT_EQ(cursor(), "cookie-1");

    // A full read without a resume point clears it.
    fetched.cursor.reset();
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");
    EXPECT_EQ(cursor(), std::nullopt);

    // It survives a restart.
    fetched.cursor = "cookie-2";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");
    reopen();
    EXPECT_EQ(cursor(), "cookie-2");
}

TEST_F(CursorTest, FailedOrBlockedFullRunsKeepTheCursor) {
    SourceData fetched = data();
    fetched.cursor = "cookie-1";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");

    SourceData incomplete = data();
    incomplete.cursor = "cookie-2";
    incomplete.incomplete = "size limit";
    EXPECT_EQ(must(run_sync(store(), m_mapping, k_corp, incomplete, {}), "run").result, "failed");
    EXPECT_EQ(cursor(), "cookie-1");

    SourceData most_gone = data();
    most_gone.users.resize(2);
    most_gone.cursor = "cookie-3";
    std::string before = dump_mirror(store());
    EXPECT_EQ(must(run_sync(store(), m_mapping, k_corp, most_gone, {}), "run").result, "blocked");
    EXPECT_EQ(cursor(), "cookie-1");
    EXPECT_EQ(dump_mirror(store()), before);
}

TEST_F(CursorTest, AppliedDeltaStoresItsCursorWithThePatchedMirror) {
    SourceData fetched = data();
    fetched.cursor = "cookie-1";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");

    SourceDelta delta;
    delta.upsert_users.push_back(user("u4", "dave@acme.com"));
    delta.upsert_groups.push_back(group("g1", "cn=admins", {"u1", "u4"}));
    delta.cursor = "cookie-2";
    RunResult run = must(run_sync_delta(store(), m_mapping, k_corp, delta, {}), "delta");
    ASSERT_EQ(run.result, "applied") << run.message;
    EXPECT_EQ(cursor(), "cookie-2");
    auto acme = must(store().find_org("acme"), "find_org");
    ASSERT_TRUE(acme);
    auto dave = must(store().membership(acme->id, user_id("dave@acme.com")), "membership");
    ASSERT_TRUE(dave);
    EXPECT_EQ(dave->role, OrgRole::admin);
    EXPECT_EQ(must(store().find_source_users("corp", {"u4"}), "mirror").size(), 1u);

    // A delta without a cursor keeps the stored one.
    SourceDelta no_cursor;
    no_cursor.removed_user_ids.push_back("x0");
    ASSERT_EQ(must(run_sync_delta(store(), m_mapping, k_corp, no_cursor, {}), "delta").result,
              "applied");
    EXPECT_EQ(cursor(), "cookie-2");
}

TEST_F(CursorTest, IncompleteOrBlockedDeltaChangesNothingAndKeepsTheCursor) {
    SourceData fetched = data();
    fetched.cursor = "cookie-1";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");
    std::string state = dump_state(store());
    std::string mirror = dump_mirror(store());

    SourceDelta incomplete;
    incomplete.upsert_users.push_back(user("u9", "new@acme.com"));
    incomplete.cursor = "cookie-2";
    incomplete.incomplete = "time limit";
    RunResult failed = must(run_sync_delta(store(), m_mapping, k_corp, incomplete, {}), "delta");
    EXPECT_EQ(failed.result, "failed");
    EXPECT_NE(failed.message.find("time limit"), std::string::npos) << failed.message;

    SourceDelta many_gone;
    many_gone.removed_user_ids = {"x0", "x1", "x2", "x3"};
    many_gone.cursor = "cookie-3";
    RunResult blocked = must(run_sync_delta(store(), m_mapping, k_corp, many_gone, {}), "delta");
    EXPECT_EQ(blocked.result, "blocked");

    EXPECT_EQ(cursor(), "cookie-1");
    EXPECT_EQ(dump_mirror(store()), mirror);
    // Only the two run records were added.
    auto runs = must(store().sync_runs("corp", 2), "sync_runs");
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0].result, "blocked");
    EXPECT_EQ(runs[0].kind, "delta");
    EXPECT_EQ(runs[1].result, "failed");
    EXPECT_EQ(dump_state(store()), state);

    RunResult forced = must(run_sync_delta(store(), m_mapping, k_corp, many_gone, {true}), "delta");
    EXPECT_EQ(forced.result, "applied");
    EXPECT_EQ(cursor(), "cookie-3");
}

TEST_F(CursorTest, ADeltaThatFailsToApplyLeavesMirrorAndCursorTogether) {
    SourceData fetched = data();
    fetched.cursor = "cookie-1";
    ASSERT_EQ(must(run_sync(store(), m_mapping, k_corp, fetched, {}), "run").result, "applied");
    std::string mirror = dump_mirror(store());
    std::string state = dump_state(store());

    // The second record cannot be stored: the whole transaction, with the
    // first record's membership and the cursor, rolls back.
    SourceDelta delta;
    delta.upsert_users.push_back(user("u7", "gina@acme.com"));
    SourceUser broken = user("u8", "hal@acme.com");
    broken.attributes = "not json";
    delta.upsert_users.push_back(broken);
    delta.cursor = "cookie-2";
    RunResult run = must(run_sync_delta(store(), m_mapping, k_corp, delta, {}), "delta");
    EXPECT_EQ(run.result, "failed");
    EXPECT_EQ(cursor(), "cookie-1");
    EXPECT_EQ(dump_mirror(store()), mirror);
    EXPECT_EQ(dump_state(store()), state);
}

TEST_F(CursorTest, AnIdBothChangedAndRemovedIsInvalid) {
    SourceDelta delta;
    delta.upsert_users.push_back(user("u1", "alice@acme.com"));
    delta.removed_user_ids.push_back("u1");
    auto run = run_sync_delta(store(), m_mapping, k_corp, delta, {});
    EXPECT_TRUE(fails_with(run, ErrorCode::invalid_argument));
}

}  // namespace
}  // namespace orgsync::sync
