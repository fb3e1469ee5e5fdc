#pragma once

// Shared fixtures for the directory tests: a Store opened on a real SQLite
// file in a fresh temporary directory (removed in TearDown), helpers to build
// state inside Store::write, and a textual dump of everything the store and
// its snapshot hold, so "the store is unchanged" is one string comparison.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/policy.hpp"
#include "directory/snapshot.hpp"
#include "directory/store.hpp"

// Propagates the error of an Expected inside a Store::write body.
#define ORGSYNC_TRY(expr)                                        \
    do {                                                         \
        auto orgsync_try_result_ = (expr);                       \
        if (!orgsync_try_result_) {                              \
            return std::unexpected(orgsync_try_result_.error()); \
        }                                                        \
    } while (false)

// Assigns the value of an Expected to `lhs`, or propagates its error.
#define ORGSYNC_ASSIGN(lhs, expr)                                \
    do {                                                         \
        auto orgsync_try_result_ = (expr);                       \
        if (!orgsync_try_result_) {                              \
            return std::unexpected(orgsync_try_result_.error()); \
        }                                                        \
        (lhs) = *std::move(orgsync_try_result_);                 \
    } while (false)

namespace orgsync::directory {

// Readable gtest failure messages for the model's enumerations.
inline void PrintTo(UserType value, std::ostream* out) {
    *out << to_string(value);
}
inline void PrintTo(OrgRole value, std::ostream* out) {
    *out << to_string(value);
}
inline void PrintTo(Level value, std::ostream* out) {
    *out << to_string(value);
}
inline void PrintTo(ErrorCode value, std::ostream* out) {
    *out << to_string(value);
}

}  // namespace orgsync::directory

namespace orgsync::directory::test_support {

using Body = std::function<Expected<void>(Transaction&)>;

inline std::string describe(const Error& error) {
    return std::string(to_string(error.code)) + ": " + error.message;
}

// The value of a read that must succeed; a failure aborts the test (gtest
// reports the exception).
template <typename T>
T must(Expected<T> result, std::string_view what = "store call") {
    if (!result) {
        throw std::runtime_error(std::string(what) + " failed: " + describe(result.error()));
    }
    return *std::move(result);
}

inline void must(Expected<void> result, std::string_view what = "store call") {
    if (!result) {
        throw std::runtime_error(std::string(what) + " failed: " + describe(result.error()));
    }
}

// The id of an existing dataset, read back from the store. Fixtures use this
// rather than create_dataset's return value so that one wrong id shows up in
// the test for it (StoreTest.CreateDatasetReturnsTheNewDatasetsId) instead of
// in every test built on the fixture.
inline DatasetId dataset_id(const Store& store, OrgId org, std::string_view slug) {
    auto dataset = must(store.find_dataset(org, slug), "find_dataset");
    if (!dataset) {
        throw std::runtime_error("no dataset " + std::string(slug));
    }
    return dataset->id;
}

inline MembershipAssertion assertion(std::string_view source, UserType type, OrgRole role) {
    return MembershipAssertion{std::string(source), type, role};
}

inline Principal user_principal(UserId id) {
    return Principal{PrincipalKind::user, id};
}
inline Principal group_principal(GroupId id) {
    return Principal{PrincipalKind::group, id};
}

// The outcome of a call without its value (std::expected::transform needs GCC 13).
template <typename T>
Expected<void> discard(Expected<T> result) {
    if (!result) {
        return std::unexpected(std::move(result.error()));
    }
    return {};
}

// Creates (or finds) the user and asserts their membership under the
// transaction's source.
inline Expected<UserId> add_member(Transaction& tx, OrgId org, std::string_view email,
                                   UserType type, OrgRole role) {
    auto user = tx.upsert_user(email, email.substr(0, email.find('@')));
    if (!user) {
        return user;
    }
    auto asserted = tx.assert_membership(org, *user, assertion(tx.source(), type, role));
    if (!asserted) {
        return std::unexpected(asserted.error());
    }
    return *user;
}

// A directory that exists for the lifetime of the object.
class TempDir {
  public:
    TempDir() {
        std::random_device random;
        const auto base = std::filesystem::temp_directory_path();
        for (int attempt = 0; attempt < 100; ++attempt) {
            std::ostringstream name;
            name << "orgsync-directory-test-" << ::getpid() << '-' << std::hex << random()
                 << random();
            auto candidate = base / name.str();
            std::error_code error;
            if (std::filesystem::create_directory(candidate, error)) {
                m_path = std::move(candidate);
                return;
            }
        }
        throw std::runtime_error("cannot create a temporary directory in " + base.string());
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return m_path; }

  private:
    std::filesystem::path m_path;
};

inline std::size_t audit_count(const Store& store) {
    return must(store.audit_events(0, 1'000'000), "audit_events").size();
}

inline std::vector<AuditEvent> audit_after(const Store& store, std::int64_t after_id) {
    return must(store.audit_events(after_id, 1'000'000), "audit_events");
}

inline std::int64_t last_audit_id(const Store& store) {
    auto events = must(store.audit_events(0, 1'000'000), "audit_events");
    std::int64_t last = 0;
    for (const auto& event : events) {
        last = std::max(last, event.id);
    }
    return last;
}

template <typename T>
std::vector<T> sorted(std::vector<T> values) {
    std::sort(values.begin(), values.end());
    return values;
}

inline std::string join(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& value : values) {
        if (!out.empty()) {
            out += ',';
        }
        out += value;
    }
    return out;
}

// Everything the decision snapshot holds, in a stable order (ids of groups
// inside an OrgView are replaced by names, so a rebuild may order them freely).
inline std::string dump_snapshot(const Snapshot& snapshot) {
    std::vector<std::string> org_slugs;
    for (const auto& [slug, view] : snapshot.orgs) {
        org_slugs.push_back(slug);
    }
    std::sort(org_slugs.begin(), org_slugs.end());
    std::ostringstream out;
    for (const auto& slug : org_slugs) {
        const OrgView& org = *snapshot.orgs.find(slug)->second;
        out << "snapshot org " << slug << " id=" << org.id << " view_slug=" << org.slug << '\n';
        auto group_name = [&](GroupIndex index) -> std::string {
            return index < org.groups->names.size()
                       ? org.groups->names[index]
                       : "<bad group index " + std::to_string(index) + ">";
        };
        out << "  groups " << join(sorted(org.groups->names)) << '\n';
        std::vector<std::string> lines;
        for (const auto& [email, member] : org.members) {
            std::vector<std::string> groups;
            for (GroupIndex index : member.groups) {
                groups.push_back(group_name(index));
            }
            std::ostringstream line;
            line << "  member " << email << " id=" << member.id
                 << " type=" << to_string(member.user_type) << " role=" << to_string(member.role)
                 << " active=" << member.active << " groups=" << join(sorted(groups));
            lines.push_back(line.str());
        }
        auto grants_lines = [&](const auto& grants, std::string_view prefix) {
            std::vector<std::string> result;
            for (const auto& [user, access] : grants.users) {
                result.push_back(std::string(prefix) + " user " + std::to_string(user) + " " +
                                 std::string(to_string(access)));
            }
            for (const auto& [index, access] : grants.groups) {
                result.push_back(std::string(prefix) + " group " + group_name(index) + " " +
                                 std::string(to_string(access)));
            }
            return sorted(std::move(result));
        };
        for (const auto& [project_slug, project] : org.projects) {
            lines.push_back("  project " + project_slug + " id=" + std::to_string(project.id) +
                            " visibility=" + std::string(to_string(project.visibility)));
            for (auto& line :
                 grants_lines(project.grants, "  project " + project_slug + " grant")) {
                lines.push_back(std::move(line));
            }
        }
        for (const auto& [dataset_slug, dataset] : org.datasets) {
            lines.push_back("  dataset " + dataset_slug + " id=" + std::to_string(dataset.id));
            for (auto& line :
                 grants_lines(dataset.grants, "  dataset " + dataset_slug + " grant")) {
                lines.push_back(std::move(line));
            }
        }
        for (const auto& line : sorted(std::move(lines))) {
            out << line << '\n';
        }
    }
    return out.str();
}

// Everything the store's read API returns (orgs, members with their
// assertions, users with external ids, groups with members, projects with
// grants, datasets with grants), the decision snapshot and the length of the
// audit log. `extra_emails` names users to include even when they belong to
// no org.
inline std::string dump_state(const Store& store,
                              const std::vector<std::string>& extra_emails = {}) {
    std::ostringstream out;
    auto orgs = must(store.list_orgs(), "list_orgs");
    std::sort(orgs.begin(), orgs.end(), [](const Org& a, const Org& b) { return a.slug < b.slug; });
    std::vector<std::string> emails = extra_emails;
    auto snapshot = store.snapshot();
    for (const auto& org : orgs) {
        out << "org " << org.slug << " id=" << org.id << " name=" << org.name
            << " workforce=" << org.workforce << " owner=" << org.owner << '\n';
        auto members = must(store.list_members(org.id), "list_members");
        std::sort(members.begin(), members.end(),
                  [](const Membership& a, const Membership& b) { return a.email < b.email; });
        for (const auto& member : members) {
            emails.push_back(member.email);
            std::vector<std::string> assertions;
            for (const auto& item : member.assertions) {
                assertions.push_back(item.source + ":" + std::string(to_string(item.user_type)) +
                                     "/" + std::string(to_string(item.role)));
            }
            out << "  member " << member.email << " user=" << member.user << " org=" << member.org
                << " type=" << to_string(member.user_type) << " role=" << to_string(member.role)
                << " asserted=" << join(sorted(assertions)) << '\n';
        }
        auto groups = must(store.list_groups(org.id), "list_groups");
        std::sort(groups.begin(), groups.end(),
                  [](const Group& a, const Group& b) { return a.name < b.name; });
        for (const auto& group : groups) {
            out << "  group " << group.name << " id=" << group.id << " org=" << group.org
                << " members=" << join(sorted(must(store.group_members(group.id), "group_members")))
                << '\n';
        }
        auto projects = must(store.list_projects(org.id), "list_projects");
        std::sort(projects.begin(), projects.end(),
                  [](const Project& a, const Project& b) { return a.slug < b.slug; });
        for (const auto& project : projects) {
            out << "  project " << project.slug << " id=" << project.id
                << " visibility=" << to_string(project.visibility)
                << " tags=" << join(sorted(project.tags)) << '\n';
            std::vector<std::string> lines;
            for (const auto& grant : must(store.list_project_grants(project.id), "grants")) {
                lines.push_back("    grant " + std::string(to_string(grant.principal.kind)) + ":" +
                                std::to_string(grant.principal.id) + " " + grant.principal_name +
                                " " + std::string(to_string(grant.level)) +
                                " sources=" + join(sorted(grant.sources)));
            }
            for (const auto& line : sorted(std::move(lines))) {
                out << line << '\n';
            }
        }
        std::vector<std::string> dataset_slugs;
        if (const OrgView* view = snapshot->find_org(org.slug)) {
            for (const auto& [slug, dataset] : view->datasets) {
                dataset_slugs.push_back(slug);
            }
        }
        for (const auto& slug : sorted(std::move(dataset_slugs))) {
            auto dataset = must(store.find_dataset(org.id, slug), "find_dataset");
            if (!dataset) {
                out << "  dataset " << slug << " in snapshot but not in store\n";
                continue;
            }
            out << "  dataset " << slug << " id=" << dataset->id
                << " projects=" << join(sorted(dataset->projects)) << '\n';
            std::vector<std::string> lines;
            for (const auto& grant : must(store.list_dataset_grants(dataset->id), "grants")) {
                lines.push_back("    grant " + std::string(to_string(grant.principal.kind)) + ":" +
                                std::to_string(grant.principal.id) + " " + grant.principal_name +
                                " " + std::string(to_string(grant.access)) +
                                " sources=" + join(sorted(grant.sources)));
            }
            for (const auto& line : sorted(std::move(lines))) {
                out << line << '\n';
            }
        }
    }
    std::sort(emails.begin(), emails.end());
    emails.erase(std::unique(emails.begin(), emails.end()), emails.end());
    for (const auto& email : emails) {
        auto user = must(store.find_user(email), "find_user");
        if (!user) {
            out << "user " << email << " absent\n";
            continue;
        }
        std::vector<std::string> ids;
        for (const auto& id : user->external_ids) {
            ids.push_back(id.source + "/" + id.kind + "=" + id.value);
        }
        out << "user " << user->email << " id=" << user->id << " name=" << user->display_name
            << " active=" << user->active << " external_ids=" << join(sorted(ids)) << '\n';
    }
    out << dump_snapshot(*snapshot);
    out << "audit events " << audit_count(store) << '\n';
    return out.str();
}

inline std::string describe(const Decision& decision) {
    std::ostringstream out;
    out << (decision.allow ? "allow" : "deny") << " reason=\"" << decision.reason
        << "\" role=" << (decision.role ? to_string(*decision.role) : "<unset>")
        << " level=" << (decision.level ? to_string(*decision.level) : "<unset>");
    return out.str();
}

inline Request request(std::string user, std::string org, std::string action,
                       std::optional<std::string> project = {},
                       std::optional<std::string> dataset = {}) {
    return Request{std::move(user), std::move(org), std::move(project), std::move(dataset),
                   std::move(action)};
}

// A Store on a fresh file `orgsync.db` in a temporary directory. `Base` is
// ::testing::Test or ::testing::TestWithParam<P>.
template <typename Base>
class BasicStoreFixture : public Base {
  protected:
    void SetUp() override {
        m_dir = std::make_unique<TempDir>();
        open_store();
    }

    void TearDown() override {
        m_store.reset();
        m_dir.reset();
    }

    std::filesystem::path db_path() const { return m_dir->path() / "orgsync.db"; }

    void open_store() {
        auto opened = Store::open(db_path());
        if (!opened) {
            throw std::runtime_error("Store::open failed: " + describe(opened.error()));
        }
        m_store = *std::move(opened);
    }

    // Destroys the Store and opens the same file again.
    void reopen() {
        m_store.reset();
        open_store();
    }

    Store& store() { return *m_store; }

    // A write that must commit.
    void write_ok(std::string_view source, const Body& body) {
        auto result = m_store->write(source, body);
        if (!result) {
            throw std::runtime_error("write(" + std::string(source) +
                                     ") failed: " + describe(result.error()));
        }
    }
    void write_ok(const Body& body) { write_ok(k_manual_source, body); }

    Expected<void> write(const Body& body) { return m_store->write(k_manual_source, body); }
    Expected<void> write(std::string_view source, const Body& body) {
        return m_store->write(source, body);
    }

    Decision decide(const Request& req) {
        auto decision = authorize(*m_store->snapshot(), req);
        if (!decision) {
            throw std::runtime_error("authorize failed: " + describe(decision.error()));
        }
        return *std::move(decision);
    }

    std::optional<Membership> membership_of(OrgId org, UserId user) {
        return must(m_store->membership(org, user), "membership");
    }

    UserId user_id(std::string_view email) {
        auto user = must(m_store->find_user(email), "find_user");
        if (!user) {
            throw std::runtime_error("no user " + std::string(email));
        }
        return user->id;
    }

    std::unique_ptr<TempDir> m_dir;
    std::unique_ptr<Store> m_store;
};

using StoreFixture = BasicStoreFixture<::testing::Test>;

template <typename Param>
using StoreFixtureWithParam = BasicStoreFixture<::testing::TestWithParam<Param>>;

// EXPECT_TRUE(fails_with(result, ErrorCode::x)): the call failed with that code.
template <typename T>
::testing::AssertionResult fails_with(const Expected<T>& result, ErrorCode expected) {
    if (result) {
        return ::testing::AssertionFailure()
               << "succeeded, expected " << to_string(expected) << " error";
    }
    if (result.error().code != expected) {
        return ::testing::AssertionFailure() << "failed with " << describe(result.error())
                                             << ", expected " << to_string(expected);
    }
    return ::testing::AssertionSuccess() << describe(result.error());
}

// EXPECT_TRUE(succeeds(result)): the call succeeded (shows the error otherwise).
template <typename T>
::testing::AssertionResult succeeds(const Expected<T>& result) {
    if (!result) {
        return ::testing::AssertionFailure() << "failed with " << describe(result.error());
    }
    return ::testing::AssertionSuccess();
}

}  // namespace orgsync::directory::test_support
