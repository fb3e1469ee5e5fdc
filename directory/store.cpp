#include "directory/store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <span>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include "directory/db.hpp"
#include "directory/email.hpp"
#include "directory/schema.hpp"
#include "directory/snapshot_builder.hpp"

namespace orgsync::directory {
namespace {

using nlohmann::json;

constexpr int k_busy_timeout_ms = 5000;
constexpr int k_cache_kib = 8 * 1024;
// The first schema version with `store_generation`.
constexpr int k_generation_version = 8;

// The store (its mutex) whose write body runs on this thread, so that a
// Store call from inside that body fails at once instead of deadlocking.
thread_local const void* t_writing_store = nullptr;

// A mirrored group's member list as stored (schema version 7): the ids,
// sorted and unique, each followed by a NUL byte. Fails on an id holding a
// NUL byte.
Expected<std::string> pack_members(const std::vector<std::string>& ids) {
    std::vector<std::string_view> sorted(ids.begin(), ids.end());
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::size_t size = 0;
    for (auto id : sorted) {
        if (id.find('\0') != std::string_view::npos) {
            return fail(ErrorCode::invalid_argument, "a member id cannot hold a NUL byte");
        }
        size += id.size() + 1;
    }
    std::string packed;
    packed.reserve(size);
    for (auto id : sorted) {
        packed.append(id).push_back('\0');
    }
    return packed;
}

// Calls `each(id)` for every id of a packed member list, in stored order.
template <typename Each>
void for_each_member(std::string_view packed, Each&& each) {
    while (!packed.empty()) {
        auto end = packed.find('\0');
        if (end == std::string_view::npos) {
            end = packed.size();
        }
        each(packed.substr(0, end));
        packed.remove_prefix(std::min(end + 1, packed.size()));
    }
}

// The packed member list in column `index` of the current row.
std::string_view members_column(SQLite::Statement& q, int index) {
    auto column = q.getColumn(index);
    const auto* data = static_cast<const char*>(column.getBlob());
    auto size = static_cast<std::size_t>(column.getBytes());
    return data == nullptr ? std::string_view() : std::string_view(data, size);
}

// The text in column `index` of the current row, valid until the next step.
std::string_view text_column(SQLite::Statement& q, int index) {
    auto column = q.getColumn(index);
    const char* data = column.getText();
    return {data, static_cast<std::size_t>(column.getBytes())};
}

std::vector<std::string> unpack_members(std::string_view packed) {
    std::vector<std::string> ids;
    for_each_member(packed, [&](std::string_view id) { ids.emplace_back(id); });
    return ids;
}

template <typename Row>
std::optional<Row> first(std::vector<Row> rows) {
    if (rows.empty()) {
        return std::nullopt;
    }
    return std::move(rows.front());
}

struct OrgRow {
    std::string slug;
    bool workforce = false;
    UserId owner = 0;
};

// The SQL and event names of one kind of grant (see TransactionImpl::set_grant).
struct GrantTable {
    const char* user_upsert;   // (target, org, user, source, value)
    const char* group_upsert;  // (target, group, source, value)
    const char* user_delete;   // (target, user, source)
    const char* group_delete;  // (target, group, source)
    std::string_view set_event;
    std::string_view removed_event;
    const char* value_key;
};

constexpr GrantTable k_project_grants{
    "INSERT INTO project_user_grants (project_id, org_id, user_id, source, level) VALUES (?, ?, "
    "?, ?, ?) ON CONFLICT (project_id, user_id, source) DO UPDATE SET level = excluded.level "
    "WHERE level != excluded.level",
    "INSERT INTO project_group_grants (project_id, group_id, source, level) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (project_id, group_id, source) DO UPDATE SET level = excluded.level WHERE "
    "level != excluded.level",
    "DELETE FROM project_user_grants WHERE project_id = ? AND user_id = ? AND source = ?",
    "DELETE FROM project_group_grants WHERE project_id = ? AND group_id = ? AND source = ?",
    "grant.project_set",
    "grant.project_removed",
    "level",
};

constexpr GrantTable k_dataset_grants{
    "INSERT INTO dataset_user_grants (dataset_id, org_id, user_id, source, access) VALUES (?, ?, "
    "?, ?, ?) ON CONFLICT (dataset_id, user_id, source) DO UPDATE SET access = excluded.access "
    "WHERE access != excluded.access",
    "INSERT INTO dataset_group_grants (dataset_id, group_id, source, access) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (dataset_id, group_id, source) DO UPDATE SET access = excluded.access WHERE "
    "access != excluded.access",
    "DELETE FROM dataset_user_grants WHERE dataset_id = ? AND user_id = ? AND source = ?",
    "DELETE FROM dataset_group_grants WHERE dataset_id = ? AND group_id = ? AND source = ?",
    "grant.dataset_set",
    "grant.dataset_removed",
    "access",
};

// Like SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now').
std::string now_utc_millis() {
    auto now = std::chrono::system_clock::now();
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    return fmt::format("{}.{:03}Z", text, millis);
}

// JSON text built by hand for the audit details and outbox payloads of the
// bulk calls: far cheaper than a DOM per event.
void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

// One JSON object with string values, keys in the order given (callers
// give them sorted, as nlohmann dumps them, so both paths write the same
// audit detail).
std::string json_object_text(
    std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
    std::string out = "{";
    for (const auto& [key, value] : fields) {
        if (out.size() > 1) {
            out += ',';
        }
        append_json_string(out, key);
        out += ':';
        append_json_string(out, value);
    }
    out += '}';
    return out;
}

// Events of a bulk call reach the outbox in rows of at most this many.
constexpr std::int64_t k_outbox_batch = 1000;

// How many memberships `source` asserts, by org slug. Counted by org id,
// the table's key order, so no sort is needed; the few org rows are joined
// afterwards.
std::map<std::string, std::size_t> member_counts(Db& db, std::string_view source) {
    std::map<std::string, std::size_t> counts;
    auto& q = db.query(
        "SELECT o.slug, c.n FROM (SELECT org_id, COUNT(*) AS n FROM membership_assertions "
        "WHERE source = ? GROUP BY org_id) c JOIN orgs o ON o.id = c.org_id",
        source);
    while (q.executeStep()) {
        counts.emplace(q.getColumn(0).getString(),
                       static_cast<std::size_t>(q.getColumn(1).getInt64()));
    }
    return counts;
}

class TransactionImpl final : public Transaction {
  public:
    TransactionImpl(Db& db, std::string_view source) : m_db(db), m_source(source) {}

    std::string_view source() const override { return m_source; }
    // Frees the bulk calls' caches once the body is done: a first sync's
    // hold every user, and the decision views built next reuse the memory.
    void drop_bulk_caches() {
        m_users = {};
        m_members = {};
        m_id_holders = {};
    }
    // What this transaction changed in each org's decision view.
    std::vector<OrgChanges> view_changes() const {
        std::vector<OrgChanges> changes;
        const auto& touched = sorted_touched_members();
        std::sort(m_touched_grants.begin(), m_touched_grants.end());
        m_touched_grants.erase(std::unique(m_touched_grants.begin(), m_touched_grants.end()),
                               m_touched_grants.end());
        for (OrgId org : m_touched_orgs) {
            OrgChanges& change = changes.emplace_back();
            change.org = org;
            change.rebuild = m_rebuild_orgs.contains(org);
            if (change.rebuild) {
                continue;
            }
            for (auto it = std::lower_bound(touched.begin(), touched.end(),
                                            std::pair<OrgId, UserId>{org, 0});
                 it != touched.end() && it->first == org; ++it) {
                change.members.push_back(it->second);
                if (auto renamed = m_previous_emails.find(it->second);
                    renamed != m_previous_emails.end()) {
                    change.previous_emails.emplace_back(renamed->first, renamed->second);
                }
            }
            for (auto it = std::lower_bound(m_touched_grants.begin(), m_touched_grants.end(),
                                            std::pair<OrgId, UserGrantKey>{org, {}});
                 it != m_touched_grants.end() && it->first == org; ++it) {
                change.user_grants.push_back(it->second);
            }
        }
        return changes;
    }

    // ---- users -------------------------------------------------------------

    Expected<UserId> upsert_user(std::string_view email, std::string_view display_name) override {
        auto canonical = canonical_email(email);
        if (!canonical) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid email \"{}\": {}", email, canonical.error()));
        }
        auto& q = m_db.query("SELECT id, display_name FROM users WHERE email = ?", *canonical);
        if (q.executeStep()) {
            UserId id = q.getColumn(0).getInt64();
            std::string current = q.getColumn(1).getString();
            if (!display_name.empty() && current != display_name) {
                m_users.erase(*canonical);
                m_db.run("UPDATE users SET display_name = ? WHERE id = ?", display_name, id);
                audit("user.updated", "", *canonical, json{{"display_name", display_name}});
            }
            return id;
        }
        m_db.run("INSERT INTO users (email, display_name) VALUES (?, ?)", *canonical, display_name);
        UserId id = m_db.last_insert_id();
        audit("user.created", "", *canonical, json{{"display_name", display_name}});
        return id;
    }

    Expected<void> set_user_active(UserId user, bool active) override {
        auto& q = m_db.query("SELECT email, active FROM users WHERE id = ?", user);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no user with id {}", user));
        }
        std::string email = q.getColumn(0).getString();
        bool current = q.getColumn(1).getInt() != 0;
        if (current == active) {
            return {};
        }
        m_db.run("UPDATE users SET active = ? WHERE id = ?", active, user);
        std::vector<OrgId> orgs;
        {
            auto& rows = m_db.query("SELECT org_id FROM memberships WHERE user_id = ?", user);
            while (rows.executeStep()) {
                orgs.push_back(rows.getColumn(0).getInt64());
            }
        }
        for (OrgId org : orgs) {
            touch_member(org, user);
        }
        audit(active ? "user.activated" : "user.deactivated", "", email, json::object());
        return {};
    }

    Expected<void> set_external_id(UserId user, const ExternalId& id) override {
        auto email = user_email(user);
        if (!email) {
            return std::unexpected(email.error());
        }
        if (id.source.empty() || id.kind.empty() || id.value.empty()) {
            return fail(ErrorCode::invalid_argument,
                        "an external id needs a source, a kind and a value");
        }
        auto& q = m_db.query(
            "SELECT user_id FROM user_external_ids WHERE source = ? AND kind = ? AND value = ?",
            id.source, id.kind, id.value);
        if (q.executeStep()) {
            UserId holder = q.getColumn(0).getInt64();
            if (holder == user) {
                return {};
            }
            return fail(ErrorCode::already_exists,
                        fmt::format("{} {} \"{}\" of source {} already belongs to another user",
                                    id.kind, "value", id.value, id.source));
        }
        m_id_holders.clear();
        m_db.run("DELETE FROM user_external_ids WHERE user_id = ? AND source = ? AND kind = ?",
                 user, id.source, id.kind);
        m_db.run("INSERT INTO user_external_ids (user_id, source, kind, value) VALUES (?, ?, ?, ?)",
                 user, id.source, id.kind, id.value);
        audit("user.external_id_set", "", *email,
              json{{"source", id.source}, {"kind", id.kind}, {"value", id.value}});
        return {};
    }

    Expected<void> change_user_email(UserId user, std::string_view new_email) override {
        auto email = user_email(user);
        if (!email) {
            return std::unexpected(email.error());
        }
        auto canonical = canonical_email(new_email);
        if (!canonical) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid email \"{}\": {}", new_email, canonical.error()));
        }
        if (*canonical == *email) {
            return {};
        }
        if (m_db.query("SELECT 1 FROM users WHERE email = ?", *canonical).executeStep()) {
            return fail(ErrorCode::already_exists,
                        fmt::format("{} already belongs to another user", *canonical), *canonical);
        }
        m_db.run("UPDATE users SET email = ? WHERE id = ?", *canonical, user);
        m_previous_emails.emplace(user, *email);  // the first: what the published view holds
        m_email_cache.erase(user);
        m_users.erase(*email);
        m_users.erase(*canonical);
        std::vector<OrgId> orgs;
        {
            auto& q = m_db.query("SELECT org_id FROM memberships WHERE user_id = ?", user);
            while (q.executeStep()) {
                orgs.push_back(q.getColumn(0).getInt64());
            }
        }
        for (OrgId org : orgs) {
            touch_member(org, user);  // the view moves them to the new address
        }
        audit("user.email_changed", "", *canonical, json{{"previous", *email}});
        return {};
    }

    Expected<std::optional<OrgId>> find_org_id(std::string_view slug) override {
        return optional_id(m_db.query("SELECT id FROM orgs WHERE slug = ?", slug));
    }

    Expected<std::optional<UserId>> find_user_id(std::string_view email) override {
        auto canonical = canonical_email(email);
        if (!canonical) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid email \"{}\": {}", email, canonical.error()));
        }
        return optional_id(m_db.query("SELECT id FROM users WHERE email = ?", *canonical));
    }

    Expected<std::optional<GroupId>> find_group_id(OrgId org, std::string_view name) override {
        return optional_id(
            m_db.query("SELECT id FROM groups WHERE org_id = ? AND name = ?", org, name));
    }

    Expected<std::optional<ProjectId>> find_project_id(OrgId org, std::string_view slug) override {
        return optional_id(
            m_db.query("SELECT id FROM projects WHERE org_id = ? AND slug = ?", org, slug));
    }

    Expected<std::optional<DatasetId>> find_dataset_id(OrgId org, std::string_view slug) override {
        return optional_id(
            m_db.query("SELECT id FROM datasets WHERE org_id = ? AND slug = ?", org, slug));
    }

    // The summary and plan are JSON; the table's CHECK (json_valid) holds
    // them to it without a second parse here.
    Expected<void> record_sync_run(const SyncRun& run) override {
        m_db.run(
            "INSERT INTO sync_runs (source, started_at, result, message, summary, plan, kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            run.source, run.started_at, run.result, run.message,
            run.summary.empty() ? std::string("{}") : run.summary,
            run.plan.empty() ? std::string("{}") : run.plan, run.kind);
        return {};
    }

    // ---- orgs --------------------------------------------------------------

    Expected<OrgId> create_org(std::string_view slug, std::string_view name, bool workforce,
                               std::string_view owner_email) override {
        if (!is_valid_slug(slug)) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid org slug \"{}\": use 1 to 63 of [a-z0-9-]", slug));
        }
        if (name.empty()) {
            return fail(ErrorCode::invalid_argument, fmt::format("org {} needs a name", slug));
        }
        if (m_db.query("SELECT 1 FROM orgs WHERE slug = ?", slug).executeStep()) {
            return fail(ErrorCode::already_exists, fmt::format("org {} already exists", slug));
        }
        auto owner = upsert_user(owner_email, "");
        if (!owner) {
            return std::unexpected(owner.error());
        }
        m_db.run("INSERT INTO orgs (slug, name, workforce, owner_id) VALUES (?, ?, ?, ?)", slug,
                 name, workforce, *owner);
        OrgId org = m_db.last_insert_id();
        m_db.run("INSERT INTO memberships (org_id, user_id, user_type, role) VALUES (?, ?, ?, ?)",
                 org, *owner, UserType::internal, OrgRole::owner);
        m_members.emplace(org, *owner);
        m_db.run(
            "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) "
            "VALUES (?, ?, ?, ?, ?)",
            org, *owner, k_manual_source, UserType::internal, OrgRole::admin);
        touch_member(org, *owner);
        m_org_cache.erase(org);
        audit("org.created", std::string(slug), std::string(name),
              json{{"workforce", workforce}, {"owner", *user_email(*owner)}});
        return org;
    }

    Expected<void> transfer_ownership(OrgId org, UserId new_owner) override {
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        if (row->owner == new_owner) {
            return {};
        }
        auto email = user_email(new_owner);
        if (!email) {
            return std::unexpected(email.error());
        }
        auto member = member_type_role(org, new_owner);
        if (!member) {
            return fail(ErrorCode::not_a_member,
                        fmt::format("{} is not a member of org {}; ownership goes to an "
                                    "internal member",
                                    *email, row->slug));
        }
        if (member->first != UserType::internal) {
            return fail(ErrorCode::role_requires_internal,
                        fmt::format("{} is {} in org {}; only an internal member can become owner",
                                    *email, to_string(member->first), row->slug));
        }
        UserId former = row->owner;
        m_db.run("UPDATE orgs SET owner_id = ? WHERE id = ?", new_owner, org);
        m_org_cache.erase(org);
        m_db.run(
            "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, user_id, source) DO UPDATE SET "
            "user_type = excluded.user_type, role = excluded.role",
            org, former, k_manual_source, UserType::internal, OrgRole::admin);
        // Like the owner create_org records, the new owner is asserted
        // manually, so no source's withdrawal can try to remove them.
        m_db.run(
            "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, user_id, source) DO UPDATE SET "
            "user_type = excluded.user_type, role = excluded.role",
            org, new_owner, k_manual_source, UserType::internal, OrgRole::admin);
        recompute_membership(org, former);
        recompute_membership(org, new_owner);
        audit("org.ownership_transferred", row->slug, *email,
              json{{"from", *user_email(former)}, {"to", *email}});
        return {};
    }

    // ---- memberships -------------------------------------------------------

    Expected<void> assert_membership(OrgId org, UserId user,
                                     const MembershipAssertion& assertion) override {
        if (assertion.role == OrgRole::owner) {
            return fail(ErrorCode::invalid_argument,
                        "no source asserts the owner role: ownership changes by transfer only");
        }
        if (assertion.source.empty()) {
            return fail(ErrorCode::invalid_argument, "a membership assertion needs a source");
        }
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        auto email = user_email(user);
        if (!email) {
            return std::unexpected(email.error());
        }
        auto before = member_type_role(org, user);
        if (!before) {
            m_db.run(
                "INSERT INTO memberships (org_id, user_id, user_type, role) VALUES (?, ?, ?, ?)",
                org, user, assertion.user_type, assertion.role);
            m_members.emplace(org, user);
        }
        m_db.run(
            "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, user_id, source) DO UPDATE SET "
            "user_type = excluded.user_type, role = excluded.role",
            org, user, assertion.source, assertion.user_type, assertion.role);
        // A new membership has this one assertion, so it is the effective
        // type and role (the owner's membership exists from create_org).
        std::pair<UserType, OrgRole> after{assertion.user_type, assertion.role};
        if (before) {
            after = recompute_membership(org, user);
        } else {
            touch_member(org, user);
        }
        if (!before) {
            audit("membership.added", row->slug, *email,
                  json{{"user_type", to_string(after.first)},
                       {"role", to_string(after.second)},
                       {"asserted_by", assertion.source}});
        } else if (*before != after) {
            audit("membership.changed", row->slug, *email,
                  json{{"user_type", to_string(after.first)},
                       {"role", to_string(after.second)},
                       {"previous_user_type", to_string(before->first)},
                       {"previous_role", to_string(before->second)},
                       {"asserted_by", assertion.source}});
        }
        return {};
    }

    Expected<void> retract_membership(OrgId org, UserId user, std::string_view source) override {
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        auto email = user_email(user);
        if (!email) {
            return std::unexpected(email.error());
        }
        if (!m_db.query("SELECT 1 FROM membership_assertions WHERE org_id = ? AND user_id = ? "
                        "AND source = ?",
                        org, user, source)
                 .executeStep()) {
            return {};
        }
        auto& others = m_db.query(
            "SELECT COUNT(*) FROM membership_assertions WHERE org_id = ? AND user_id = ? AND "
            "source != ?",
            org, user, source);
        others.executeStep();
        bool last = others.getColumn(0).getInt() == 0;
        auto before = member_type_role(org, user).value();
        if (last && row->owner == user) {
            return fail(ErrorCode::owner_immutable,
                        fmt::format("{} owns org {}: transfer ownership before removing them",
                                    *email, row->slug));
        }
        if (last && before.second == OrgRole::admin) {
            return fail(ErrorCode::admin_must_be_demoted,
                        fmt::format("{} is an admin of org {}: demote them before removing them",
                                    *email, row->slug));
        }
        touch_member(org, user);
        if (last) {
            // The cascade also removes the user's grants and group
            // memberships in the org; the view drops them.
            touch_user_grants_of(org, user);
            check_admins_through_groups_of(org, user);
            m_members.erase({org, user});
            m_db.run("DELETE FROM memberships WHERE org_id = ? AND user_id = ?", org, user);
            audit("membership.removed", row->slug, *email,
                  json{{"user_type", to_string(before.first)},
                       {"role", to_string(before.second)},
                       {"retracted_by", source}});
            return {};
        }
        m_db.run(
            "DELETE FROM membership_assertions WHERE org_id = ? AND user_id = ? AND source = ?",
            org, user, source);
        auto after = recompute_membership(org, user);
        if (after != before) {
            audit("membership.changed", row->slug, *email,
                  json{{"user_type", to_string(after.first)},
                       {"role", to_string(after.second)},
                       {"previous_user_type", to_string(before.first)},
                       {"previous_role", to_string(before.second)},
                       {"retracted_by", source}});
        }
        return {};
    }

    // ---- groups ------------------------------------------------------------

    Expected<GroupId> create_group(OrgId org, std::string_view name) override {
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        if (name.empty()) {
            return fail(ErrorCode::invalid_argument, "a group needs a name");
        }
        if (m_db.query("SELECT 1 FROM groups WHERE org_id = ? AND name = ?", org, name)
                .executeStep()) {
            return fail(ErrorCode::already_exists,
                        fmt::format("group \"{}\" already exists in org {}", name, row->slug));
        }
        m_db.run("INSERT INTO groups (org_id, name) VALUES (?, ?)", org, name);
        GroupId group = m_db.last_insert_id();
        touch_org(org);
        audit("group.created", row->slug, std::string(name), json::object());
        return group;
    }

    Expected<void> delete_group(GroupId group) override {
        auto info = group_row(group);
        if (!info) {
            return std::unexpected(info.error());
        }
        auto [org, name] = *info;
        check_admins_through(group);  // its grants and members go with it
        m_db.run("DELETE FROM groups WHERE id = ?", group);
        touch_org(org);
        audit("group.deleted", org_row(org)->slug, name, json::object());
        return {};
    }

    Expected<void> add_group_member(GroupId group, UserId user, std::string_view source) override {
        auto info = group_row(group);
        if (!info) {
            return std::unexpected(info.error());
        }
        auto [org, name] = *info;
        auto email = user_email(user);
        if (!email) {
            return std::unexpected(email.error());
        }
        if (!member_type_role(org, user)) {
            return fail(ErrorCode::not_a_member,
                        fmt::format("{} is not a member of org {}, so cannot join group \"{}\"",
                                    *email, org_row(org)->slug, name));
        }
        int added = m_db.run(
            "INSERT OR IGNORE INTO group_members (group_id, org_id, user_id, source) VALUES (?, ?, "
            "?, ?)",
            group, org, user, source);
        if (added > 0) {
            touch_member(org, user);
            audit("group.member_added", org_row(org)->slug, name,
                  json{{"user", *email}, {"asserted_by", source}});
        }
        return {};
    }

    Expected<void> remove_group_member(GroupId group, UserId user,
                                       std::string_view source) override {
        auto info = group_row(group);
        if (!info) {
            return std::unexpected(info.error());
        }
        auto [org, name] = *info;
        int removed =
            m_db.run("DELETE FROM group_members WHERE group_id = ? AND user_id = ? AND source = ?",
                     group, user, source);
        if (removed > 0) {
            touch_member(org, user);
            check_admins_through(group);
            audit("group.member_removed", org_row(org)->slug, name,
                  json{{"user", *user_email(user)}, {"retracted_by", source}});
        }
        return {};
    }

    // ---- projects and datasets ----------------------------------------------

    Expected<ProjectId> create_project(OrgId org, std::string_view slug, Visibility visibility,
                                       const std::vector<std::string>& tags,
                                       UserId first_admin) override {
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        if (!is_valid_slug(slug)) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid project slug \"{}\": use 1 to 63 of [a-z0-9-]", slug));
        }
        if (m_db.query("SELECT 1 FROM projects WHERE org_id = ? AND slug = ?", org, slug)
                .executeStep()) {
            return fail(ErrorCode::already_exists,
                        fmt::format("project {} already exists in org {}", slug, row->slug));
        }
        m_db.run("INSERT INTO projects (org_id, slug, visibility) VALUES (?, ?, ?)", org, slug,
                 visibility);
        ProjectId project = m_db.last_insert_id();
        touch_org(org);
        m_admin_checks.insert(project);  // it must get its first admin
        audit("project.created", row->slug, std::string(slug),
              json{{"visibility", to_string(visibility)}, {"tags", tags}});
        if (auto tagged = write_tags(project, tags); !tagged) {
            return std::unexpected(tagged.error());
        }
        if (auto granted = grant_project(project, Principal{PrincipalKind::user, first_admin},
                                         Level::admin, m_source, std::nullopt);
            !granted) {
            return std::unexpected(granted.error());
        }
        return project;
    }

    Expected<void> set_project_visibility(ProjectId project, Visibility visibility) override {
        auto info = project_row(project);
        if (!info) {
            return std::unexpected(info.error());
        }
        if (m_db.run("UPDATE projects SET visibility = ? WHERE id = ? AND visibility != ?",
                     visibility, project, visibility) > 0) {
            touch_org(info->first);
            audit("project.visibility_changed", org_row(info->first)->slug, info->second,
                  json{{"visibility", to_string(visibility)}});
        }
        return {};
    }

    Expected<void> set_project_tags(ProjectId project,
                                    const std::vector<std::string>& tags) override {
        auto info = project_row(project);
        if (!info) {
            return std::unexpected(info.error());
        }
        m_db.run("DELETE FROM project_tags WHERE project_id = ?", project);
        if (auto tagged = write_tags(project, tags); !tagged) {
            return std::unexpected(tagged.error());
        }
        audit("project.tags_changed", org_row(info->first)->slug, info->second,
              json{{"tags", tags}});
        return {};
    }

    Expected<void> delete_project(ProjectId project) override {
        auto info = project_row(project);
        if (!info) {
            return std::unexpected(info.error());
        }
        m_db.run("DELETE FROM projects WHERE id = ?", project);
        touch_org(info->first);
        audit("project.deleted", org_row(info->first)->slug, info->second, json::object());
        return {};
    }

    Expected<DatasetId> create_dataset(OrgId org, std::string_view slug) override {
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        if (!is_valid_slug(slug)) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid dataset slug \"{}\": use 1 to 63 of [a-z0-9-]", slug));
        }
        if (m_db.query("SELECT 1 FROM datasets WHERE org_id = ? AND slug = ?", org, slug)
                .executeStep()) {
            return fail(ErrorCode::already_exists,
                        fmt::format("dataset {} already exists in org {}", slug, row->slug));
        }
        m_db.run("INSERT INTO datasets (org_id, slug) VALUES (?, ?)", org, slug);
        DatasetId dataset = m_db.last_insert_id();
        touch_org(org);
        audit("dataset.created", row->slug, std::string(slug), json::object());
        return dataset;
    }

    Expected<void> attach_dataset(DatasetId dataset, ProjectId project) override {
        auto data = dataset_row(dataset);
        if (!data) {
            return std::unexpected(data.error());
        }
        auto info = project_row(project);
        if (!info) {
            return std::unexpected(info.error());
        }
        if (data->first != info->first) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("dataset {} and project {} belong to different orgs",
                                    data->second, info->second));
        }
        if (m_db.run("INSERT OR IGNORE INTO dataset_projects (dataset_id, project_id) VALUES (?, "
                     "?)",
                     dataset, project) > 0) {
            audit("dataset.attached", org_row(info->first)->slug, data->second,
                  json{{"project", info->second}});
        }
        return {};
    }

    Expected<void> delete_dataset(DatasetId dataset) override {
        auto data = dataset_row(dataset);
        if (!data) {
            return std::unexpected(data.error());
        }
        m_db.run("DELETE FROM datasets WHERE id = ?", dataset);
        touch_org(data->first);
        audit("dataset.deleted", org_row(data->first)->slug, data->second, json::object());
        return {};
    }

    // ---- grants ------------------------------------------------------------

    Expected<void> grant_project(ProjectId project, Principal principal, Level level,
                                 std::string_view source,
                                 std::optional<UserType> new_member_type) override {
        if (level == Level::none) {
            return fail(ErrorCode::invalid_argument, "a project grant needs read, write or admin");
        }
        return set_grant(k_project_grants, project, project_row(project), principal,
                         to_string(level), source, new_member_type);
    }

    Expected<void> revoke_project(ProjectId project, Principal principal,
                                  std::string_view source) override {
        return remove_grant(k_project_grants, project, project_row(project), principal, source);
    }

    Expected<void> grant_dataset(DatasetId dataset, Principal principal, DatasetAccess access,
                                 std::string_view source,
                                 std::optional<UserType> new_member_type) override {
        return set_grant(k_dataset_grants, dataset, dataset_row(dataset), principal,
                         to_string(access), source, new_member_type);
    }

    Expected<void> revoke_dataset(DatasetId dataset, Principal principal,
                                  std::string_view source) override {
        return remove_grant(k_dataset_grants, dataset, dataset_row(dataset), principal, source);
    }

    // ---- source mirror -----------------------------------------------------

    Expected<void> put_source_user(const SourceUser& user) override {
        auto attributes = checked_attributes(user.attributes);
        if (!attributes) {
            return std::unexpected(attributes.error());
        }
        if (user.source.empty() || user.external_id.empty()) {
            return fail(ErrorCode::invalid_argument, "a mirrored user needs a source and an id");
        }
        auto key = is_canonical_email(user.email) ? Expected<std::string>(user.email)
                                                  : canonical(user.email);
        m_db.run(
            "INSERT INTO source_users (source, external_id, email, display_name, active, "
            "attributes, email_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, "
            "external_id) DO UPDATE SET email = excluded.email, display_name = "
            "excluded.display_name, active = excluded.active, attributes = excluded.attributes, "
            "email_key = excluded.email_key",
            user.source, user.external_id, user.email, user.display_name, user.active, *attributes,
            key ? *key : std::string());
        return {};
    }

    Expected<void> delete_source_user(std::string_view source,
                                      std::string_view external_id) override {
        m_db.run("DELETE FROM source_users WHERE source = ? AND external_id = ?", source,
                 external_id);
        return {};
    }

    Expected<void> put_source_group(const SourceGroup& group) override {
        auto attributes = checked_attributes(group.attributes);
        if (!attributes) {
            return std::unexpected(attributes.error());
        }
        if (group.source.empty() || group.external_id.empty()) {
            return fail(ErrorCode::invalid_argument, "a mirrored group needs a source and an id");
        }
        auto members = pack_members(group.member_ids);
        if (!members) {
            return std::unexpected(members.error());
        }
        auto stored = stored_member_list(group.source, group.external_id);
        m_db.run(
            "INSERT INTO source_groups (source, external_id, name, attributes) VALUES (?, ?, ?, "
            "?) ON CONFLICT (source, external_id) DO UPDATE SET name = excluded.name, attributes "
            "= excluded.attributes",
            group.source, group.external_id, group.name, *attributes);
        if (stored == *members) {
            return {};
        }
        m_db.run_with(
            "INSERT INTO source_group_member_lists (source, external_id, members) VALUES (?, ?, "
            "?) ON CONFLICT (source, external_id) DO UPDATE SET members = excluded.members",
            [&](sqlite3_stmt* statement) {
                Db::bind_view(statement, 1, group.source);
                Db::bind_view(statement, 2, group.external_id);
                sqlite3_bind_blob(statement, 3, members->data(), static_cast<int>(members->size()),
                                  SQLITE_STATIC);
            });
        // Only the members the list gained or lost change the member index;
        // both lists are sorted.
        std::vector<std::string_view> gained;
        std::vector<std::string_view> lost;
        std::vector<std::string_view> old_ids;
        for_each_member(stored, [&](std::string_view id) { old_ids.push_back(id); });
        std::vector<std::string_view> new_ids;
        for_each_member(*members, [&](std::string_view id) { new_ids.push_back(id); });
        std::set_difference(new_ids.begin(), new_ids.end(), old_ids.begin(), old_ids.end(),
                            std::back_inserter(gained));
        std::set_difference(old_ids.begin(), old_ids.end(), new_ids.begin(), new_ids.end(),
                            std::back_inserter(lost));
        unindex_members(group.source, group.external_id, lost);
        index_members(group.source, group.external_id, gained);
        return {};
    }

    Expected<void> delete_source_group(std::string_view source,
                                       std::string_view external_id) override {
        auto stored = stored_member_list(source, external_id);
        std::vector<std::string_view> ids;
        for_each_member(stored, [&](std::string_view id) { ids.push_back(id); });
        unindex_members(source, external_id, ids);
        // The member list goes with its group (foreign key).
        m_db.run("DELETE FROM source_groups WHERE source = ? AND external_id = ?", source,
                 external_id);
        return {};
    }

    Expected<std::map<std::string, std::size_t>> source_member_counts(
        std::string_view source) override {
        return member_counts(m_db, source);
    }

    Expected<void> mark_settled(std::string_view source, std::string_view key,
                                std::int64_t generation, std::string_view summary) override {
        if (source.empty() || key.empty()) {
            return fail(ErrorCode::invalid_argument, "a settled source needs a source and a key");
        }
        auto& q = m_db.query("SELECT value FROM store_generation WHERE id = 1");
        if (!q.executeStep() || q.getColumn(0).getInt64() != generation) {
            return {};
        }
        // Store::run_write raises the generation by one as this commits.
        m_db.run(
            "INSERT INTO source_settled (source, key, generation, summary) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET key = excluded.key, generation = "
            "excluded.generation, summary = excluded.summary",
            source, key, generation + 1, summary);
        return {};
    }

    Expected<void> set_source_cursor(std::string_view source,
                                     std::optional<std::string_view> cursor) override {
        if (source.empty()) {
            return fail(ErrorCode::invalid_argument, "a cursor needs a source");
        }
        if (!cursor) {
            m_db.run("DELETE FROM source_state WHERE source = ?", source);
            return {};
        }
        m_db.run(
            "INSERT INTO source_state (source, cursor) VALUES (?, ?) ON CONFLICT (source) DO "
            "UPDATE SET cursor = excluded.cursor, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
            "'now')",
            source, *cursor);
        return {};
    }

    // ---- bulk forms ------------------------------------------------------

    Expected<void> add_members(OrgId org, std::string_view source,
                               const std::vector<NewMember>& members) override {
        if (source.empty()) {
            return fail(ErrorCode::invalid_argument, "a membership assertion needs a source");
        }
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        // Destroyed last: the batch flushes unchecked too.
        std::optional<ChecksOff> unchecked;
        if (members.size() >= k_unchecked_entries) {
            unchecked.emplace(*this);
        }
        BulkEvents batch(*this, row->slug);
        std::vector<StagedMember> staged;
        std::unordered_set<std::string> seen_emails;
        std::unordered_set<std::string_view> seen_ids;
        for (const NewMember& member : members) {
            if (member.role == OrgRole::owner) {
                return fail(ErrorCode::invalid_argument,
                            "no source asserts the owner role: ownership changes by transfer only");
            }
            auto email = canonical(member.email);
            if (!email) {
                return std::unexpected(email.error());
            }
            // A new membership, of a new user or of one who keeps their name
            // and id, is written here; anything else (and anything an earlier
            // entry of this call touched) takes the single calls.
            bool fresh = seen_emails.insert(*email).second &&
                         (member.external_id.empty() || seen_ids.insert(member.external_id).second);
            UserId id = 0;
            bool fast = false;
            if (fresh) {
                // A user this transaction has not seen is most likely new:
                // inserting is the lookup.
                const KnownUser* known = find_known_user(*email);
                if (known == nullptr &&
                    m_db.run("INSERT INTO users (email, display_name) VALUES (?, ?) ON CONFLICT "
                             "(email) DO NOTHING",
                             *email, member.display_name) > 0) {
                    id = m_db.last_insert_id();
                    m_users.insert_or_assign(*email,
                                             KnownUser{id, std::string(member.display_name), true});
                    audit_text("user.created", "", *email,
                               json_object_text({{"display_name", member.display_name}}));
                    if (!member.external_id.empty() &&
                        m_db.run("INSERT INTO user_external_ids (user_id, source, kind, value) "
                                 "VALUES (?, ?, 'id', ?) ON CONFLICT DO NOTHING",
                                 id, source, member.external_id) > 0) {
                        m_id_holders.insert_or_assign(id_key(source, member.external_id), id);
                        audit_text("user.external_id_set", "", *email,
                                   json_object_text({{"kind", "id"},
                                                     {"source", source},
                                                     {"value", member.external_id}}));
                    }
                    fast = true;
                } else {
                    if (known == nullptr) {
                        known = find_user(*email);  // the insert found it
                    }
                    // Never null here; if it were, the single calls decide.
                    fast =
                        known != nullptr && !is_member(org, *known) &&
                        (member.display_name.empty() || member.display_name == known->name) &&
                        (member.external_id.empty() || id_holder(source, member.external_id) != 0);
                    id = known != nullptr ? known->id : 0;
                }
            }
            if (!fast) {
                write_memberships(org, source, staged);
                auto upserted = upsert_user(*email, member.display_name);
                if (!upserted) {
                    return std::unexpected(upserted.error());
                }
                if (!member.external_id.empty()) {
                    auto set = set_external_id(
                        *upserted,
                        ExternalId{std::string(source), "id", std::string(member.external_id)});
                    if (!set && set.error().code != ErrorCode::already_exists) {
                        return set;
                    }
                }
                auto asserted = assert_membership(
                    org, *upserted,
                    MembershipAssertion{std::string(source), member.user_type, member.role});
                if (!asserted) {
                    return asserted;
                }
                continue;
            }
            staged.push_back(StagedMember{id, member.user_type, member.role});
            m_members.emplace(org, id);
            touch_member(org, id);
            audit_text("membership.added", row->slug, *email,
                       json_object_text({{"asserted_by", source},
                                         {"role", to_string(member.role)},
                                         {"user_type", to_string(member.user_type)}}));
        }
        write_memberships(org, source, staged);
        return {};
    }

    Expected<void> add_group_members(GroupId group, std::string_view source,
                                     const std::vector<std::string>& emails) override {
        auto info = group_row(group);
        if (!info) {
            return std::unexpected(info.error());
        }
        auto [org, name] = *info;
        auto row = org_row(org);
        if (!row) {
            return std::unexpected(row.error());
        }
        std::optional<ChecksOff> unchecked;  // destroyed last, as in add_members
        if (emails.size() >= k_unchecked_entries) {
            unchecked.emplace(*this);
        }
        BulkEvents batch(*this, row->slug);
        for (const auto& given : emails) {
            auto email = canonical(given);
            if (!email) {
                return std::unexpected(email.error());
            }
            const KnownUser* user = find_user(*email);
            if (user == nullptr) {
                return fail(ErrorCode::not_found, fmt::format("no user {}", *email));
            }
            if (!is_member(org, *user)) {
                return fail(ErrorCode::not_a_member,
                            fmt::format("{} is not a member of org {}, so cannot join group \"{}\"",
                                        *email, row->slug, name));
            }
            if (m_db.run("INSERT OR IGNORE INTO group_members (group_id, org_id, user_id, source) "
                         "VALUES (?, ?, ?, ?)",
                         group, org, user->id, source) > 0) {
                touch_member(org, user->id);
                audit_text("group.member_added", row->slug, name,
                           json_object_text({{"asserted_by", source}, {"user", *email}}));
            }
        }
        return {};
    }

    // ---- deferred invariant checks -----------------------------------------

    // Invariants 2 and 3 hold for every member this transaction touched, 5
    // for every project it may have taken an admin from; checked once,
    // before commit.
    Expected<void> check_invariants() {
        if (m_commit_error) {
            return std::unexpected(*m_commit_error);
        }
        const auto& touched = sorted_touched_members();
        if (touched.size() > k_set_based_check) {
            if (auto checked = check_member_invariants_by_org(); !checked) {
                return checked;
            }
        }
        for (const auto& [org, user] : touched) {
            if (touched.size() > k_set_based_check) {
                break;
            }
            auto member = member_type_role(org, user);
            if (!member) {
                continue;
            }
            auto [type, role] = *member;
            if ((role == OrgRole::owner || role == OrgRole::admin) && type != UserType::internal) {
                return fail(ErrorCode::role_requires_internal,
                            fmt::format("{} would be {} of org {} as a {} user; only internal "
                                        "users can be owner or admin",
                                        *user_email(user), to_string(role), org_row(org)->slug,
                                        to_string(type)));
            }
            if (type == UserType::internal) {
                auto& q = m_db.query(
                    "SELECT o.slug FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE "
                    "m.user_id = ? AND m.org_id != ? AND m.user_type = 'internal' LIMIT 1",
                    user, org);
                if (q.executeStep()) {
                    std::string other = q.getColumn(0).getString();
                    return fail(ErrorCode::internal_elsewhere,
                                fmt::format("{} is already internal in org {}; a user is internal "
                                            "in at most one org",
                                            *user_email(user), other));
                }
            }
        }
        return check_project_admins();
    }

  private:
    // Invariant 5 for the projects this transaction may have taken an admin
    // from (m_admin_checks). Every other project kept its admin grants and
    // the members of its admin groups, and had an admin before the
    // transaction (the invariant holds at every commit), so it still has
    // one. Of several projects left without an admin, the error names the
    // first by org id, then slug: the one a scan of every touched org, in
    // id order and by slug, finds first.
    Expected<void> check_project_admins() {
        std::optional<std::pair<OrgId, std::string>> first;
        for (ProjectId project : m_admin_checks) {
            auto& q = m_db.query(
                "SELECT p.org_id, p.slug FROM projects p WHERE p.id = ? AND NOT EXISTS (SELECT 1 "
                "FROM project_user_grants g WHERE g.project_id = p.id AND g.level = 'admin') AND "
                "NOT EXISTS (SELECT 1 FROM project_group_grants g JOIN group_members gm ON "
                "gm.group_id = g.group_id WHERE g.project_id = p.id AND g.level = 'admin')",
                project);
            if (!q.executeStep()) {
                continue;  // it has an admin, or was deleted
            }
            std::pair<OrgId, std::string> found{q.getColumn(0).getInt64(),
                                                q.getColumn(1).getString()};
            if (!first || found < *first) {
                first = std::move(found);
            }
        }
        if (!first) {
            return {};
        }
        const auto& [org, project] = *first;
        std::string org_slug = org_row(org)->slug;
        return fail(ErrorCode::last_project_admin,
                    fmt::format("project {} of org {} would have no admin left; grant admin to a "
                                "replacement first",
                                project, org_slug),
                    org_slug + "/" + project);
    }

    // The projects `group` holds grants on, whose admins may be gone when
    // the group loses members or is deleted (invariant 5). Once per group
    // and transaction: a grant given to the group later in the transaction
    // notes its project itself (touch_grant).
    void check_admins_through(GroupId group) {
        if (!m_admin_check_groups.insert(group).second) {
            return;
        }
        auto& q = m_db.query(
            "SELECT DISTINCT project_id FROM project_group_grants WHERE group_id = ?", group);
        while (q.executeStep()) {
            m_admin_checks.insert(q.getColumn(0).getInt64());
        }
    }

    // Above this many touched members, invariants 2 and 3 are checked with
    // one scan of each touched org instead of a query per member. Every
    // member outside the touched ones held them already, so the answer is
    // the same, including which member an error names (the lowest id).
    static constexpr std::size_t k_set_based_check = 2000;

    Expected<void> check_member_invariants_by_org() {
        for (OrgId org : m_touched_orgs) {
            std::optional<std::pair<UserId, bool>> worst;  // user, breaks invariant 2
            {
                auto& q = m_db.query(
                    "SELECT user_id FROM memberships WHERE org_id = ? AND role IN ('owner', "
                    "'admin') AND user_type != 'internal' ORDER BY user_id LIMIT 1",
                    org);
                if (q.executeStep()) {
                    worst = std::pair{q.getColumn(0).getInt64(), true};
                }
            }
            {
                auto& q = m_db.query(
                    "SELECT m.user_id FROM memberships m WHERE m.org_id = ?1 AND m.user_type = "
                    "'internal' AND EXISTS (SELECT 1 FROM memberships o WHERE o.user_id = "
                    "m.user_id AND o.org_id != ?1 AND o.user_type = 'internal') ORDER BY "
                    "m.user_id LIMIT 1",
                    org);
                if (q.executeStep()) {
                    UserId user = q.getColumn(0).getInt64();
                    if (!worst || user < worst->first) {
                        worst = std::pair{user, false};
                    }
                }
            }
            if (!worst) {
                continue;
            }
            UserId user = worst->first;
            auto [type, role] = member_type_role(org, user).value();
            if (worst->second) {
                return fail(ErrorCode::role_requires_internal,
                            fmt::format("{} would be {} of org {} as a {} user; only internal "
                                        "users can be owner or admin",
                                        *user_email(user), to_string(role), org_row(org)->slug,
                                        to_string(type)));
            }
            auto& q = m_db.query(
                "SELECT o.slug FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE "
                "m.user_id = ? AND m.org_id != ? AND m.user_type = 'internal' LIMIT 1",
                user, org);
            q.executeStep();
            std::string other = q.getColumn(0).getString();
            return fail(ErrorCode::internal_elsewhere,
                        fmt::format("{} is already internal in org {}; a user is internal "
                                    "in at most one org",
                                    *user_email(user), other));
        }
        return {};
    }

    // The tables' CHECK constraints (IN lists, json_valid) cost more than
    // the rows they guard: SQLite builds a temporary index for every IN list
    // of every statement it runs. The bulk calls write only values that are
    // valid by construction (enum spellings, JSON they generate, ids they
    // looked up) and turn the checks off while they run, when they write at
    // least k_unchecked_entries entries; the single calls keep them.
    // Setting the pragma expires every prepared statement of the connection
    // (SQLite recompiles them on their next use, about 20-50 µs each), which
    // costs a small call (one SCIM push: a member or two) more than the
    // checks it skips.
    static constexpr std::size_t k_unchecked_entries = 256;

    class ChecksOff {
      public:
        explicit ChecksOff(TransactionImpl& tx) : m_tx(tx) {
            m_tx.m_db.run("PRAGMA ignore_check_constraints = ON");
        }
        ~ChecksOff() {
            try {
                m_tx.m_db.run("PRAGMA ignore_check_constraints = OFF");
            } catch (const std::exception& error) {
                // Later statements would run unchecked: do not commit.
                m_tx.fail_commit(error);
            }
        }
        ChecksOff(const ChecksOff&) = delete;
        ChecksOff& operator=(const ChecksOff&) = delete;

      private:
        TransactionImpl& m_tx;
    };

    // A failure found where it cannot be returned (a destructor): the
    // transaction rolls back instead of committing.
    void fail_commit(const std::exception& error) {
        if (!m_commit_error) {
            m_commit_error = Error{ErrorCode::storage, fmt::format("store: {}", error.what()), {}};
        }
    }

    struct StagedMember {
        UserId user = 0;
        UserType user_type = UserType::external;
        OrgRole role = OrgRole::guest;
    };

    // New memberships of a bulk call, with their first assertion, written
    // k_rows_per_insert rows per statement: the CHECK (... IN (...))
    // constraints of both tables build a temporary index per statement,
    // which costs several times what the row does.
    void write_memberships(OrgId org, std::string_view source, std::vector<StagedMember>& staged) {
        static const std::string many_members =
            values_sql("INSERT INTO memberships (org_id, user_id, user_type, role) VALUES ", 4);
        static const std::string many_assertions = values_sql(
            "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) VALUES ",
            5);
        std::size_t full = staged.size() - staged.size() % k_rows_per_insert;
        for (std::size_t from = 0; from < full; from += k_rows_per_insert) {
            m_db.run_with(many_members.c_str(), [&](sqlite3_stmt* statement) {
                int index = 0;
                for (std::size_t i = from; i < from + k_rows_per_insert; ++i) {
                    Db::bind_view(statement, ++index, org);
                    Db::bind_view(statement, ++index, staged[i].user);
                    Db::bind_view(statement, ++index, staged[i].user_type);
                    Db::bind_view(statement, ++index, staged[i].role);
                }
            });
        }
        for (std::size_t i = full; i < staged.size(); ++i) {
            m_db.run(
                "INSERT INTO memberships (org_id, user_id, user_type, role) VALUES (?, ?, ?, ?)",
                org, staged[i].user, staged[i].user_type, staged[i].role);
        }
        for (std::size_t from = 0; from < full; from += k_rows_per_insert) {
            m_db.run_with(many_assertions.c_str(), [&](sqlite3_stmt* statement) {
                int index = 0;
                for (std::size_t i = from; i < from + k_rows_per_insert; ++i) {
                    Db::bind_view(statement, ++index, org);
                    Db::bind_view(statement, ++index, staged[i].user);
                    Db::bind_view(statement, ++index, source);
                    Db::bind_view(statement, ++index, staged[i].user_type);
                    Db::bind_view(statement, ++index, staged[i].role);
                }
            });
        }
        for (std::size_t i = full; i < staged.size(); ++i) {
            m_db.run(
                "INSERT INTO membership_assertions (org_id, user_id, source, user_type, role) "
                "VALUES (?, ?, ?, ?, ?)",
                org, staged[i].user, source, staged[i].user_type, staged[i].role);
        }
        staged.clear();
    }

    // The packed member list stored for a mirrored group ('' when none).
    std::string stored_member_list(std::string_view source, std::string_view external_id) {
        auto& q = m_db.query(
            "SELECT members FROM source_group_member_lists WHERE source = ? AND external_id = ?",
            source, external_id);
        std::string packed;
        if (q.executeStep()) {
            packed = members_column(q, 0);
        }
        q.reset();
        return packed;
    }

    // Adds `group` to the member index (source_member_groups) for each of
    // `ids`, k_rows_per_insert rows per statement.
    void index_members(std::string_view source, std::string_view group,
                       const std::vector<std::string_view>& ids) {
        static const std::string many = values_sql(
            "INSERT OR IGNORE INTO source_member_groups (source, member_id, group_external_id) "
            "VALUES ",
            3);
        std::size_t full = ids.size() - ids.size() % k_rows_per_insert;
        for (std::size_t from = 0; from < full; from += k_rows_per_insert) {
            m_db.run_with(many.c_str(), [&](sqlite3_stmt* statement) {
                int index = 0;
                for (std::size_t i = from; i < from + k_rows_per_insert; ++i) {
                    Db::bind_view(statement, ++index, source);
                    Db::bind_view(statement, ++index, ids[i]);
                    Db::bind_view(statement, ++index, group);
                }
            });
        }
        for (std::size_t i = full; i < ids.size(); ++i) {
            m_db.run(
                "INSERT OR IGNORE INTO source_member_groups (source, member_id, "
                "group_external_id) VALUES (?, ?, ?)",
                source, ids[i], group);
        }
    }

    void unindex_members(std::string_view source, std::string_view group,
                         const std::vector<std::string_view>& ids) {
        for (auto id : ids) {
            m_db.run(
                "DELETE FROM source_member_groups WHERE source = ? AND member_id = ? AND "
                "group_external_id = ?",
                source, id, group);
        }
    }

    static constexpr std::size_t k_rows_per_insert = 128;

    // "INSERT ... VALUES (?, ?), (?, ?), ..." for k_rows_per_insert rows.
    static std::string values_sql(std::string_view insert, int columns) {
        std::string row = "(";
        for (int i = 0; i < columns; ++i) {
            row += i == 0 ? "?" : ", ?";
        }
        row += ')';
        std::string sql(insert);
        for (std::size_t i = 0; i < k_rows_per_insert; ++i) {
            sql += i == 0 ? "" : ", ";
            sql += row;
        }
        return sql;
    }

    Expected<std::string> canonical(std::string_view email) {
        if (is_canonical_email(email)) {
            return std::string(email);
        }
        auto checked = canonical_email(email);
        if (!checked) {
            return fail(ErrorCode::invalid_argument,
                        fmt::format("invalid email \"{}\": {}", email, checked.error()));
        }
        return std::move(*checked);
    }

    // What the bulk calls know of a user: created by this transaction, or
    // read by it (and not changed since).
    struct KnownUser {
        UserId id = 0;
        std::string name;
        bool created = false;  // so every membership it has is in m_members
    };

    const KnownUser* find_known_user(const std::string& email) {
        auto cached = m_users.find(email);
        return cached == m_users.end() ? nullptr : &cached->second;
    }

    // The user with this canonical address, which must exist.
    const KnownUser* find_user(const std::string& email) {
        if (const KnownUser* known = find_known_user(email)) {
            return known;
        }
        auto& q = m_db.query("SELECT id, display_name FROM users WHERE email = ?", email);
        if (!q.executeStep()) {
            return nullptr;
        }
        return &m_users
                    .insert_or_assign(email, KnownUser{q.getColumn(0).getInt64(),
                                                       q.getColumn(1).getString(), false})
                    .first->second;
    }

    UserId id_holder(std::string_view source, std::string_view value) {
        if (auto held = m_id_holders.find(id_key(source, value)); held != m_id_holders.end()) {
            return held->second;
        }
        auto& q = m_db.query(
            "SELECT user_id FROM user_external_ids WHERE source = ? AND kind = 'id' AND value = ?",
            source, value);
        return q.executeStep() ? q.getColumn(0).getInt64() : 0;
    }

    static std::string id_key(std::string_view source, std::string_view value) {
        std::string key(source);
        key += '\0';
        key += value;
        return key;
    }

    bool is_member(OrgId org, const KnownUser& user) {
        return m_members.contains({org, user.id}) ||
               (!user.created && member_type_role(org, user.id).has_value());
    }

    // While a bulk call runs, its audit events (and those of the single
    // calls it falls back to) are written k_rows_per_insert per statement,
    // and reach the outbox in batches: one outbox row of kind "batch" per
    // k_outbox_batch events, whose payload {"type":"batch","events":[...]}
    // holds each event as a single event's payload plus its own "id" (the
    // row's event_id, '-', its index), so every event stays individually
    // addressable.
    class BulkEvents {
      public:
        BulkEvents(TransactionImpl& tx, std::string org) : m_tx(tx), m_org(std::move(org)) {
            m_tx.m_batch = this;
        }
        ~BulkEvents() {
            m_tx.m_batch = nullptr;
            try {
                flush_audit();
                flush_outbox();
            } catch (const std::exception& error) {
                // Events are lost: the transaction must not commit.
                m_tx.fail_commit(error);
            }
        }
        BulkEvents(const BulkEvents&) = delete;
        BulkEvents& operator=(const BulkEvents&) = delete;

        void add(std::string_view kind, const std::string& org, const std::string& subject,
                 std::string detail) {
            if (m_count == 0) {
                m_event_id = new_event_id();
                m_payload = R"({"type":"batch","events":[)";
            } else {
                m_payload += ',';
            }
            m_payload += R"({"id":)";
            append_json_string(m_payload, fmt::format("{}-{}", m_event_id, m_count));
            m_payload += R"(,"type":)";
            append_json_string(m_payload, kind);
            m_payload += R"(,"org":)";
            append_json_string(m_payload, org);
            m_payload += R"(,"subject":)";
            append_json_string(m_payload, subject);
            m_payload += R"(,"source":)";
            append_json_string(m_payload, m_tx.m_source);
            m_payload += R"(,"detail":)";
            m_payload += detail;
            m_payload += '}';
            m_audit.push_back(AuditRow{kind, org, subject, std::move(detail)});
            if (m_audit.size() == k_rows_per_insert) {
                flush_audit();
            }
            if (++m_count == k_outbox_batch) {
                flush_outbox();
            }
        }

      private:
        struct AuditRow {
            std::string_view kind;  // a string literal
            std::string org;
            std::string subject;
            std::string detail;
        };

        void flush_audit() {
            static const std::string many = values_sql(
                "INSERT INTO audit_log (at, source, kind, org, subject, detail) VALUES ", 6);
            if (m_audit.size() == k_rows_per_insert) {
                m_tx.m_db.run_with(many.c_str(), [&](sqlite3_stmt* statement) {
                    int index = 0;
                    for (const auto& row : m_audit) {
                        Db::bind_view(statement, ++index, m_tx.m_at);
                        Db::bind_view(statement, ++index, m_tx.m_source);
                        Db::bind_view(statement, ++index, row.kind);
                        Db::bind_view(statement, ++index, row.org);
                        Db::bind_view(statement, ++index, row.subject);
                        Db::bind_view(statement, ++index, row.detail);
                    }
                });
            } else {
                for (const auto& row : m_audit) {
                    m_tx.m_db.run(
                        "INSERT INTO audit_log (at, source, kind, org, subject, detail) VALUES "
                        "(?, ?, ?, ?, ?, ?)",
                        m_tx.m_at, m_tx.m_source, row.kind, row.org, row.subject, row.detail);
                }
            }
            m_audit.clear();
        }

        void flush_outbox() {
            if (m_count == 0) {
                return;
            }
            m_payload += "]}";
            m_tx.m_db.run(
                "INSERT INTO outbox (event_id, created_at, org, kind, payload) VALUES (?, ?, ?, "
                "'batch', ?)",
                m_event_id, m_tx.m_at, m_org, m_payload);
            m_count = 0;
        }

        TransactionImpl& m_tx;
        std::string m_org;
        std::vector<AuditRow> m_audit;
        std::string m_event_id;
        std::string m_payload;
        std::int64_t m_count = 0;
    };

    // Project and dataset grants share one shape: per-source rows for user
    // and group principals, the effective value being the highest.
    Expected<void> set_grant(const GrantTable& table, std::int64_t target,
                             Expected<std::pair<OrgId, std::string>> row, Principal principal,
                             std::string_view value, std::string_view source,
                             std::optional<UserType> new_member_type) {
        if (!row) {
            return std::unexpected(row.error());
        }
        auto [org, slug] = *row;
        auto name = principal_name(org, principal, new_member_type, source);
        if (!name) {
            return std::unexpected(name.error());
        }
        int changed = principal.kind == PrincipalKind::user
                          ? m_db.run(table.user_upsert, target, org, principal.id, source, value)
                          : m_db.run(table.group_upsert, target, principal.id, source, value);
        if (changed > 0) {
            touch_grant(table, org, target, principal);
            audit(table.set_event, org_row(org)->slug, slug,
                  json{{to_string(principal.kind), *name},
                       {table.value_key, value},
                       {"asserted_by", source}});
        }
        return {};
    }

    Expected<void> remove_grant(const GrantTable& table, std::int64_t target,
                                Expected<std::pair<OrgId, std::string>> row, Principal principal,
                                std::string_view source) {
        if (!row) {
            return std::unexpected(row.error());
        }
        auto [org, slug] = *row;
        int removed =
            m_db.run(principal.kind == PrincipalKind::user ? table.user_delete : table.group_delete,
                     target, principal.id, source);
        if (removed > 0) {
            touch_grant(table, org, target, principal);
            audit(table.removed_event, org_row(org)->slug, slug,
                  json{{to_string(principal.kind), display_principal(principal)},
                       {"retracted_by", source}});
        }
        return {};
    }

    static Expected<std::optional<std::int64_t>> optional_id(SQLite::Statement& q) {
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return q.getColumn(0).getInt64();
    }

    // Anything but a member's own row, a membership or a user grant
    // (groups, projects, datasets, group grants): the org's view is rebuilt.
    void touch_org(OrgId org) {
        m_touched_orgs.insert(org);
        m_rebuild_orgs.insert(org);
    }

    // A user grant changes one entry of a project's or dataset's view; a
    // group grant reorders the group grants: the org's view is rebuilt.
    void touch_grant(const GrantTable& table, OrgId org, std::int64_t target, Principal principal) {
        if (&table == &k_project_grants) {
            m_admin_checks.insert(target);
        }
        if (principal.kind != PrincipalKind::user) {
            touch_org(org);
            return;
        }
        GrantTarget kind =
            &table == &k_project_grants ? GrantTarget::project : GrantTarget::dataset;
        m_touched_grants.emplace_back(org, UserGrantKey{kind, target, principal.id});
        m_touched_orgs.insert(org);
    }

    // Before a membership ends: the grants its cascade removes.
    void touch_user_grants_of(OrgId org, UserId user) {
        for (const auto& [table, sql] :
             {std::pair{&k_project_grants,
                        "SELECT DISTINCT project_id FROM project_user_grants WHERE org_id = ? AND "
                        "user_id = ?"},
              std::pair{&k_dataset_grants,
                        "SELECT DISTINCT dataset_id FROM dataset_user_grants WHERE org_id = ? AND "
                        "user_id = ?"}}) {
            auto& q = m_db.query(sql, org, user);
            while (q.executeStep()) {
                touch_grant(*table, org, q.getColumn(0).getInt64(),
                            Principal{PrincipalKind::user, user});
            }
        }
    }

    // Before a membership ends: the projects of the groups its cascade
    // removes the user from.
    void check_admins_through_groups_of(OrgId org, UserId user) {
        std::vector<GroupId> groups;
        {
            auto& q = m_db.query(
                "SELECT DISTINCT group_id FROM group_members WHERE org_id = ? AND user_id = ?", org,
                user);
            while (q.executeStep()) {
                groups.push_back(q.getColumn(0).getInt64());
            }
        }
        for (GroupId group : groups) {
            check_admins_through(group);
        }
    }

    const std::vector<std::pair<OrgId, UserId>>& sorted_touched_members() const {
        if (!m_touched_sorted) {
            std::sort(m_touched_members.begin(), m_touched_members.end());
            m_touched_members.erase(std::unique(m_touched_members.begin(), m_touched_members.end()),
                                    m_touched_members.end());
            m_touched_sorted = true;
        }
        return m_touched_members;
    }

    // A member's type, role, active flag or groups changed: only that
    // member's entry of the org's view is re-read.
    void touch_member(OrgId org, UserId user) {
        m_touched_members.emplace_back(org, user);
        m_touched_sorted = false;
        m_touched_orgs.insert(org);
    }

    // Every change is recorded twice in this transaction: in the audit log,
    // and as an outbox event (with a unique id) for outbound webhooks.
    // Events of one transaction carry its start time.
    void audit(std::string_view kind, const std::string& org, const std::string& subject,
               const json& detail) {
        audit_text(kind, org, subject, detail.dump());
    }

    void audit_text(std::string_view kind, const std::string& org, const std::string& subject,
                    std::string detail) {
        if (m_batch != nullptr) {
            m_batch->add(kind, org, subject, std::move(detail));
            return;
        }
        m_db.run(
            "INSERT INTO audit_log (at, source, kind, org, subject, detail) VALUES (?, ?, ?, ?, "
            "?, ?)",
            m_at, m_source, kind, org, subject, detail);
        std::string payload = R"({"type":)";
        append_json_string(payload, kind);
        payload += R"(,"org":)";
        append_json_string(payload, org);
        payload += R"(,"subject":)";
        append_json_string(payload, subject);
        payload += R"(,"source":)";
        append_json_string(payload, m_source);
        payload += R"(,"detail":)";
        payload += detail;
        payload += '}';
        m_db.run(
            "INSERT INTO outbox (event_id, created_at, org, kind, payload) VALUES (?, ?, ?, ?, ?)",
            new_event_id(), m_at, org, kind, payload);
    }

    // Unique and increasing (microseconds, then a counter, then random
    // bits), so the outbox's unique index grows at its end.
    static std::string new_event_id() {
        thread_local std::mt19937_64 random{std::random_device{}()};
        thread_local std::uint32_t counter = 0;
        auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        return fmt::format("{:016x}{:08x}{:08x}", micros, ++counter,
                           static_cast<std::uint32_t>(random()));
    }

    Expected<OrgRow> org_row(OrgId org) {
        if (auto cached = m_org_cache.find(org); cached != m_org_cache.end()) {
            return cached->second;
        }
        auto& q = m_db.query("SELECT slug, workforce, owner_id FROM orgs WHERE id = ?", org);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no org with id {}", org));
        }
        OrgRow row{q.getColumn(0).getString(), q.getColumn(1).getInt() != 0,
                   q.getColumn(2).getInt64()};
        m_org_cache.emplace(org, row);
        return row;
    }

    Expected<std::string> user_email(UserId user) {
        if (auto cached = m_email_cache.find(user); cached != m_email_cache.end()) {
            return cached->second;
        }
        auto& q = m_db.query("SELECT email FROM users WHERE id = ?", user);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no user with id {}", user));
        }
        return m_email_cache.emplace(user, q.getColumn(0).getString()).first->second;
    }

    Expected<std::pair<OrgId, std::string>> group_row(GroupId group) {
        auto& q = m_db.query("SELECT org_id, name FROM groups WHERE id = ?", group);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no group with id {}", group));
        }
        return std::pair{q.getColumn(0).getInt64(), q.getColumn(1).getString()};
    }

    Expected<std::pair<OrgId, std::string>> project_row(ProjectId project) {
        auto& q = m_db.query("SELECT org_id, slug FROM projects WHERE id = ?", project);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no project with id {}", project));
        }
        return std::pair{q.getColumn(0).getInt64(), q.getColumn(1).getString()};
    }

    Expected<std::pair<OrgId, std::string>> dataset_row(DatasetId dataset) {
        auto& q = m_db.query("SELECT org_id, slug FROM datasets WHERE id = ?", dataset);
        if (!q.executeStep()) {
            return fail(ErrorCode::not_found, fmt::format("no dataset with id {}", dataset));
        }
        return std::pair{q.getColumn(0).getInt64(), q.getColumn(1).getString()};
    }

    std::optional<std::pair<UserType, OrgRole>> member_type_role(OrgId org, UserId user) {
        auto& q = m_db.query(
            "SELECT user_type, role FROM memberships WHERE org_id = ? AND user_id = ?", org, user);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return std::pair{parse_user_type(q.getColumn(0).getString()).value(),
                         parse_org_role(q.getColumn(1).getString()).value()};
    }

    // The effective type and role: the highest asserted, owner for the owner.
    std::pair<UserType, OrgRole> recompute_membership(OrgId org, UserId user) {
        UserType type = UserType::external;
        OrgRole role = OrgRole::guest;
        auto& q = m_db.query(
            "SELECT user_type, role FROM membership_assertions WHERE org_id = ? AND user_id = ?",
            org, user);
        while (q.executeStep()) {
            type = std::max(type, parse_user_type(q.getColumn(0).getString()).value());
            role = std::max(role, parse_org_role(q.getColumn(1).getString()).value());
        }
        if (org_row(org)->owner == user) {
            role = OrgRole::owner;
        }
        m_db.run("UPDATE memberships SET user_type = ?, role = ? WHERE org_id = ? AND user_id = ?",
                 type, role, org, user);
        touch_member(org, user);
        return {type, role};
    }

    // Invariant 6 and 8: a user principal becomes a guest member first if
    // needed; a group principal must belong to the org. Returns a name for
    // the audit log.
    Expected<std::string> principal_name(OrgId org, Principal principal,
                                         std::optional<UserType> new_member_type,
                                         std::string_view source) {
        if (principal.kind == PrincipalKind::group) {
            auto info = group_row(principal.id);
            if (!info) {
                return std::unexpected(info.error());
            }
            if (info->first != org) {
                return fail(ErrorCode::invalid_argument,
                            fmt::format("group \"{}\" belongs to another org", info->second));
            }
            return info->second;
        }
        auto email = user_email(principal.id);
        if (!email) {
            return std::unexpected(email.error());
        }
        if (!member_type_role(org, principal.id)) {
            UserType type = new_member_type.value_or(UserType::external);
            auto& q = m_db.query(
                "SELECT 1 FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ? "
                "AND m.user_type = 'internal' AND o.workforce = 1",
                principal.id);
            if (q.executeStep()) {
                type = UserType::workforce;
            }
            auto joined = assert_membership(
                org, principal.id, MembershipAssertion{std::string(source), type, OrgRole::guest});
            if (!joined) {
                return std::unexpected(joined.error());
            }
        }
        return *email;
    }

    std::string display_principal(Principal principal) {
        if (principal.kind == PrincipalKind::group) {
            auto info = group_row(principal.id);
            return info ? info->second : std::to_string(principal.id);
        }
        auto email = user_email(principal.id);
        return email ? *email : std::to_string(principal.id);
    }

    Expected<void> write_tags(ProjectId project, const std::vector<std::string>& tags) {
        for (const auto& tag : tags) {
            if (tag.empty() || tag.size() > 64) {
                return fail(ErrorCode::invalid_argument,
                            fmt::format("tag \"{}\" must be 1 to 64 characters", tag));
            }
            m_db.run("INSERT OR IGNORE INTO project_tags (project_id, tag) VALUES (?, ?)", project,
                     tag);
        }
        return {};
    }

    // The attributes as stored ("{}" when empty); validated without
    // building a DOM (a sync mirrors a hundred thousand of them).
    static Expected<std::string_view> checked_attributes(const std::string& attributes) {
        if (attributes.empty()) {
            return std::string_view("{}");
        }
        auto first = attributes.find_first_not_of(" \t\r\n");
        if (first == std::string::npos || attributes[first] != '{' || !json::accept(attributes)) {
            return fail(ErrorCode::invalid_argument, "mirrored attributes must be a JSON object");
        }
        return std::string_view(attributes);
    }

    Db& m_db;
    std::string m_source;
    std::set<OrgId> m_touched_orgs;  // orgs whose view changes
    std::set<OrgId> m_rebuild_orgs;  // of those, the ones rebuilt whole
    // Projects whose admins this transaction may have removed (invariant 5),
    // and the groups whose projects are already among them.
    std::set<ProjectId> m_admin_checks;
    std::set<GroupId> m_admin_check_groups;
    // Appended as members are touched (a first sync touches hundreds of
    // thousands), sorted and deduplicated when read.
    mutable std::vector<std::pair<OrgId, UserId>> m_touched_members;
    mutable bool m_touched_sorted = true;
    mutable std::vector<std::pair<OrgId, UserGrantKey>> m_touched_grants;  // user grants
    std::unordered_map<UserId, std::string> m_previous_emails;  // before this transaction
    std::unordered_map<OrgId, OrgRow> m_org_cache;
    std::unordered_map<UserId, std::string> m_email_cache;  // kept true by change_user_email
    // For the bulk calls: users by canonical address (id, display name) and
    // memberships they made, both kept true by the calls that change them.
    std::unordered_map<std::string, KnownUser> m_users;
    std::set<std::pair<OrgId, UserId>> m_members;
    std::unordered_map<std::string, UserId> m_id_holders;  // id_key → user, set by add_members
    BulkEvents* m_batch = nullptr;                         // set while a bulk call runs
    std::optional<Error> m_commit_error;                   // see fail_commit
    std::string m_at = now_utc_millis();
};

// Version 4 adds the canonical address of mirrored users; rows written
// before get it here, in the migration's transaction.
void fill_email_keys(Db& db) {
    std::vector<std::tuple<std::string, std::string, std::string>> keys;
    {
        auto& q = db.query("SELECT source, external_id, email FROM source_users");
        while (q.executeStep()) {
            auto key = canonical_email(q.getColumn(2).getString());
            if (key) {
                keys.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getString(),
                                  std::move(*key));
            }
        }
    }
    for (const auto& [source, id, key] : keys) {
        db.run("UPDATE source_users SET email_key = ? WHERE source = ? AND external_id = ?", key,
               source, id);
    }
}

Error storage_error(const std::exception& error) {
    return Error{ErrorCode::storage, fmt::format("store: {}", error.what()), {}};
}

}  // namespace

// A connection of its own for reads: WAL lets it read the last committed
// state while the writer connection writes.
struct Reader {
    explicit Reader(const std::string& path)
        : database(path, SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX), db(database, true) {
        database.setBusyTimeout(k_busy_timeout_ms);
        database.exec("PRAGMA query_only = ON");
    }

    SQLite::Database database;
    Db db;
};

struct Store::Impl {
    explicit Impl(const std::filesystem::path& file)
        // NOMUTEX: every use of the connection is already serialised by
        // `mutex`, so SQLite's own per-call locking is pure overhead.
        : database(file.string(),
                   SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX),
          db(database),
          path(file.string()),
          pooled_reads(file != ":memory:" && !file.empty()) {}

    SQLite::Database database;
    // Guards `db` and its statement cache: every write goes through it.
    mutable std::mutex mutex;
    mutable Db db;
    // A read finding `mutex` taken (a write in progress, or another read on
    // `db`) runs on a reader connection instead, used by one thread at a
    // time, so that reads never wait for a write. An in-memory store has no
    // file to share: its reads always wait for `db`.
    const std::string path;
    const bool pooled_reads;
    std::mutex readers_mutex;
    std::vector<std::unique_ptr<Reader>> idle_readers;  // guarded by readers_mutex
    int version = 0;
    std::atomic<std::shared_ptr<const Snapshot>> snapshot;
    // Snapshots replaced by a write, kept until no reader holds them so that
    // they are freed here, on the writer's thread (under `mutex`), and a
    // reader never pays for freeing a large org view.
    std::vector<std::shared_ptr<const Snapshot>> retired;

    void retire(std::shared_ptr<const Snapshot> old) {
        std::erase_if(retired, [](const auto& held) { return held.use_count() == 1; });
        retired.push_back(std::move(old));
    }

    // Runs `fn(db)` in one read transaction, so that a read of several
    // statements sees one committed state. Store errors and SQLite
    // exceptions come back as Expected errors.
    template <typename Fn>
    auto read(Fn&& fn) -> decltype(fn(std::declval<Db&>()));

  private:
    std::unique_ptr<Reader> take_reader();
    void give_back(std::unique_ptr<Reader> reader);
};

Store::Store(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Store::~Store() = default;

int Store::latest_schema_version() {
    return schema::migrations().back().version;
}
int Store::schema_version() const {
    return m_impl->version;
}

Expected<std::unique_ptr<Store>> Store::open(const std::filesystem::path& path) {
    try {
        auto impl = std::make_unique<Impl>(path);
        auto& database = impl->database;
        database.setBusyTimeout(k_busy_timeout_ms);
        database.exec("PRAGMA foreign_keys = ON");
        database.exec("PRAGMA journal_mode = WAL");
        database.exec("PRAGMA synchronous = FULL");
        // A first sync writes a few hundred MiB in one transaction; with
        // SQLite's default 2 MiB page cache it spills dirty pages to the WAL
        // over and over. Pages are allocated only as they are used. 8 MiB
        // applied ldap_bench's first sync as fast as 16 MiB did, with 7 MiB
        // less peak memory (docs/BENCHMARKS.md).
        database.exec(fmt::format("PRAGMA cache_size = -{}", k_cache_kib));
        int version = database.execAndGet("PRAGMA user_version").getInt();
        if (version > latest_schema_version()) {
            return fail(ErrorCode::schema_too_new,
                        fmt::format("{} has schema version {}, this orgsync knows up to {}; "
                                    "use a newer orgsync",
                                    path.string(), version, latest_schema_version()));
        }
        for (const auto& migration : schema::migrations()) {
            if (migration.version <= version) {
                continue;
            }
            SQLite::Transaction transaction(database, SQLite::TransactionBehavior::IMMEDIATE);
            database.exec(std::string(migration.sql));
            if (migration.version == 4) {
                fill_email_keys(impl->db);
            }
            database.exec(fmt::format("PRAGMA user_version = {}", migration.version));
            if (migration.version >= k_generation_version) {
                // What a migration changes was never planned with.
                database.exec("UPDATE store_generation SET value = value + 1 WHERE id = 1");
            }
            transaction.commit();
            version = migration.version;
        }
        impl->version = version;

        impl->snapshot.store(build_snapshot(impl->db));
        return std::unique_ptr<Store>(new Store(std::move(impl)));
    } catch (const std::exception& error) {
        return std::unexpected(storage_error(error));
    }
}

Expected<void> Store::write(std::string_view source,
                            const std::function<Expected<void>(Transaction&)>& body) {
    return run_write(source, body, true);
}

Expected<void> Store::check_write(std::string_view source,
                                  const std::function<Expected<void>(Transaction&)>& body) {
    return run_write(source, body, false);
}

Expected<void> Store::run_write(std::string_view source,
                                const std::function<Expected<void>(Transaction&)>& body,
                                bool commit) {
    if (source.empty()) {
        return fail(ErrorCode::invalid_argument, "a write needs a source name");
    }
    if (t_writing_store == &m_impl->mutex) {
        return fail(ErrorCode::invalid_argument,
                    "Store::write was called from inside a write body");
    }
    std::lock_guard lock(m_impl->mutex);
    struct WritingMark {
        explicit WritingMark(const void* store) { t_writing_store = store; }
        ~WritingMark() { t_writing_store = nullptr; }
        WritingMark(const WritingMark&) = delete;
        WritingMark& operator=(const WritingMark&) = delete;
    } mark(&m_impl->mutex);
    try {
        SQLite::Transaction transaction(m_impl->database, SQLite::TransactionBehavior::IMMEDIATE);
        sqlite3* handle = m_impl->database.getHandle();
        const auto changes_before = sqlite3_total_changes64(handle);
        TransactionImpl tx(m_impl->db, source);
        if (auto done = body(tx); !done) {
            return done;
        }
        if (auto checked = tx.check_invariants(); !checked || !commit) {
            return checked;  // the transaction rolls back as it goes out of scope
        }
        tx.drop_bulk_caches();
        // Views are built inside the transaction so they match what commits.
        std::shared_ptr<const Snapshot> current = m_impl->snapshot.load();
        std::shared_ptr<const Snapshot> next;
        if (auto changes = tx.view_changes(); !changes.empty()) {
            next = next_snapshot(m_impl->db, *current, changes);
        }
        if (sqlite3_total_changes64(handle) != changes_before) {
            m_impl->db.run("UPDATE store_generation SET value = value + 1 WHERE id = 1");
        }
        transaction.commit();
        if (next) {
            m_impl->snapshot.store(std::move(next));
            m_impl->retire(std::move(current));
        }
        return {};
    } catch (const std::exception& error) {
        return std::unexpected(storage_error(error));
    }
}

std::shared_ptr<const Snapshot> Store::snapshot() const {
    return m_impl->snapshot.load();
}

// ---- reads ------------------------------------------------------------------

namespace {

Org read_org(SQLite::Statement& q) {
    return Org{q.getColumn(0).getInt64(),  q.getColumn(1).getString(),
               q.getColumn(2).getString(), q.getColumn(3).getInt() != 0,
               q.getColumn(4).getInt64(),  q.getColumn(5).getString()};
}

User read_user(Db& db, SQLite::Statement& q) {
    User user{q.getColumn(0).getInt64(),
              q.getColumn(1).getString(),
              q.getColumn(2).getString(),
              q.getColumn(3).getInt() != 0,
              {}};
    auto& ids = db.query(
        "SELECT source, kind, value FROM user_external_ids WHERE user_id = ? ORDER BY "
        "source, kind",
        user.id);
    while (ids.executeStep()) {
        user.external_ids.push_back(ExternalId{ids.getColumn(0).getString(),
                                               ids.getColumn(1).getString(),
                                               ids.getColumn(2).getString()});
    }
    return user;
}

std::vector<Membership> read_members(Db& db, const char* sql, OrgId org,
                                     std::optional<UserId> user) {
    std::vector<Membership> members;
    {
        auto& q = user ? db.query(sql, org, *user) : db.query(sql, org);
        while (q.executeStep()) {
            Membership member;
            member.org = org;
            member.user = q.getColumn(0).getInt64();
            member.email = q.getColumn(1).getString();
            member.user_type = parse_user_type(q.getColumn(2).getString()).value();
            member.role = parse_org_role(q.getColumn(3).getString()).value();
            members.push_back(std::move(member));
        }
    }
    for (auto& member : members) {
        auto& q = db.query(
            "SELECT source, user_type, role FROM membership_assertions WHERE org_id = ? AND "
            "user_id = ? ORDER BY source",
            org, member.user);
        while (q.executeStep()) {
            member.assertions.push_back(MembershipAssertion{
                q.getColumn(0).getString(), parse_user_type(q.getColumn(1).getString()).value(),
                parse_org_role(q.getColumn(2).getString()).value()});
        }
    }
    return members;
}

// Grants to users and groups, one entry per principal with the highest
// level any source asserts and the list of sources.
template <typename Grant, typename Access, typename Parse>
std::vector<Grant> read_grants(Db& db, const char* sql, std::int64_t target, Parse parse) {
    std::vector<Grant> grants;
    auto& q = db.query(sql, target, target);
    while (q.executeStep()) {
        Principal principal{
            q.getColumn(0).getInt() == 0 ? PrincipalKind::user : PrincipalKind::group,
            q.getColumn(1).getInt64()};
        Access access = parse(q.getColumn(3).getString()).value();
        std::string source = q.getColumn(4).getString();
        if (!grants.empty() && grants.back().principal == principal) {
            auto& grant = grants.back();
            if constexpr (std::is_same_v<Access, Level>) {
                grant.level = std::max(grant.level, access);
            } else {
                grant.access = std::max(grant.access, access);
            }
            grant.sources.push_back(std::move(source));
            continue;
        }
        Grant grant;
        grant.principal = principal;
        grant.principal_name = q.getColumn(2).getString();
        if constexpr (std::is_same_v<Access, Level>) {
            grant.level = access;
        } else {
            grant.access = access;
        }
        grant.sources.push_back(std::move(source));
        grants.push_back(std::move(grant));
    }
    return grants;
}

}  // namespace

std::unique_ptr<Reader> Store::Impl::take_reader() {
    {
        std::lock_guard lock(readers_mutex);
        if (!idle_readers.empty()) {
            auto reader = std::move(idle_readers.back());
            idle_readers.pop_back();
            return reader;
        }
    }
    return std::make_unique<Reader>(path);
}

void Store::Impl::give_back(std::unique_ptr<Reader> reader) {
    std::lock_guard lock(readers_mutex);
    idle_readers.push_back(std::move(reader));
}

template <typename Fn>
auto Store::Impl::read(Fn&& fn) -> decltype(fn(std::declval<Db&>())) {
    if (t_writing_store == &mutex) {
        return fail(ErrorCode::invalid_argument,
                    "a Store read was called from inside a write body; use the Transaction");
    }
    // The writer connection when no write holds it (its page cache is the
    // warmest), otherwise a reader connection.
    std::unique_lock lock(mutex, std::try_to_lock);
    if (lock.owns_lock() || !pooled_reads) {
        if (!lock.owns_lock()) {
            lock.lock();
        }
        try {
            return fn(db);
        } catch (const std::exception& error) {
            return std::unexpected(storage_error(error));
        }
    }
    std::unique_ptr<Reader> reader;
    try {
        reader = take_reader();
        reader->db.run("BEGIN");
        auto result = fn(reader->db);
        reader->db.reset_used();
        reader->db.run("COMMIT");
        give_back(std::move(reader));
        return result;
    } catch (const std::exception& error) {
        if (reader) {
            // A connection that cannot end its transaction is dropped.
            reader->db.reset_used();
            if (sqlite3_get_autocommit(reader->database.getHandle()) != 0 ||
                reader->database.tryExec("ROLLBACK") == SQLITE_OK) {
                give_back(std::move(reader));
            }
        }
        return std::unexpected(storage_error(error));
    }
}

template <typename Fn>
static auto guarded(std::mutex& mutex, Fn&& fn) -> decltype(fn()) {
    if (t_writing_store == &mutex) {
        return fail(ErrorCode::invalid_argument,
                    "a Store read was called from inside a write body; use the Transaction");
    }
    std::lock_guard lock(mutex);
    try {
        return fn();
    } catch (const std::exception& error) {
        return std::unexpected(storage_error(error));
    }
}

Expected<std::optional<Org>> Store::find_org(std::string_view slug) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<Org>> {
        auto& q = db.query(
            "SELECT o.id, o.slug, o.name, o.workforce, o.owner_id, u.email FROM orgs o JOIN users "
            "u ON u.id = o.owner_id WHERE o.slug = ?",
            slug);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return read_org(q);
    });
}

Expected<std::vector<Org>> Store::list_orgs() const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<Org>> {
        std::vector<Org> orgs;
        auto& q = db.query(
            "SELECT o.id, o.slug, o.name, o.workforce, o.owner_id, u.email FROM orgs o "
            "JOIN users u ON u.id = o.owner_id ORDER BY o.slug");
        while (q.executeStep()) {
            orgs.push_back(read_org(q));
        }
        return orgs;
    });
}

Expected<std::optional<User>> Store::find_user(std::string_view email) const {
    auto canonical = canonical_email(email);
    if (!canonical) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("invalid email \"{}\": {}", email, canonical.error()));
    }
    return m_impl->read([&](Db& db) -> Expected<std::optional<User>> {
        auto& q = db.query("SELECT id, email, display_name, active FROM users WHERE email = ?",
                           *canonical);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return read_user(db, q);
    });
}

Expected<std::optional<User>> Store::find_user_by_external_id(std::string_view source,
                                                              std::string_view kind,
                                                              std::string_view value) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<User>> {
        auto& q = db.query(
            "SELECT u.id, u.email, u.display_name, u.active FROM users u JOIN user_external_ids "
            "x ON x.user_id = u.id WHERE x.source = ? AND x.kind = ? AND x.value = ?",
            source, kind, value);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return read_user(db, q);
    });
}

constexpr const char* k_members_sql =
    "SELECT u.id, u.email, m.user_type, m.role FROM memberships m JOIN users u ON u.id = "
    "m.user_id WHERE m.org_id = ? ORDER BY u.email";
constexpr const char* k_member_sql =
    "SELECT u.id, u.email, m.user_type, m.role FROM memberships m JOIN users u ON u.id = "
    "m.user_id WHERE m.org_id = ? AND m.user_id = ?";

Expected<std::optional<Membership>> Store::membership(OrgId org, UserId user) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<Membership>> {
        return first(read_members(db, k_member_sql, org, user));
    });
}

Expected<std::vector<Membership>> Store::list_members(OrgId org) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<Membership>> {
        return read_members(db, k_members_sql, org, std::nullopt);
    });
}

Expected<std::vector<Group>> Store::list_groups(OrgId org) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<Group>> {
        std::vector<Group> groups;
        auto& q = db.query("SELECT id, name FROM groups WHERE org_id = ? ORDER BY name", org);
        while (q.executeStep()) {
            groups.push_back(Group{q.getColumn(0).getInt64(), org, q.getColumn(1).getString()});
        }
        return groups;
    });
}

Expected<std::optional<Group>> Store::find_group(OrgId org, std::string_view name) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<Group>> {
        auto& q = db.query("SELECT id, name FROM groups WHERE org_id = ? AND name = ?", org, name);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return Group{q.getColumn(0).getInt64(), org, q.getColumn(1).getString()};
    });
}

Expected<std::vector<std::string>> Store::group_members(GroupId group) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<std::string>> {
        std::vector<std::string> emails;
        auto& q = db.query(
            "SELECT DISTINCT u.email FROM group_members g JOIN users u ON u.id = g.user_id WHERE "
            "g.group_id = ? ORDER BY u.email",
            group);
        while (q.executeStep()) {
            emails.push_back(q.getColumn(0).getString());
        }
        return emails;
    });
}

namespace {

std::vector<Project> read_projects(Db& db, const char* sql, OrgId org,
                                   std::optional<std::string_view> slug) {
    std::vector<Project> projects;
    {
        auto& q = slug ? db.query(sql, org, *slug) : db.query(sql, org);
        while (q.executeStep()) {
            projects.push_back(Project{q.getColumn(0).getInt64(),
                                       org,
                                       q.getColumn(1).getString(),
                                       parse_visibility(q.getColumn(2).getString()).value(),
                                       {}});
        }
    }
    for (auto& project : projects) {
        auto& q =
            db.query("SELECT tag FROM project_tags WHERE project_id = ? ORDER BY tag", project.id);
        while (q.executeStep()) {
            project.tags.push_back(q.getColumn(0).getString());
        }
    }
    return projects;
}

}  // namespace

Expected<std::vector<Project>> Store::list_projects(OrgId org) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<Project>> {
        return read_projects(
            db, "SELECT id, slug, visibility FROM projects WHERE org_id = ? ORDER BY slug", org,
            std::nullopt);
    });
}

Expected<std::optional<Project>> Store::find_project(OrgId org, std::string_view slug) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<Project>> {
        return first(read_projects(
            db, "SELECT id, slug, visibility FROM projects WHERE org_id = ? AND slug = ?", org,
            slug));
    });
}

Expected<std::optional<Dataset>> Store::find_dataset(OrgId org, std::string_view slug) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<Dataset>> {
        Dataset dataset;
        {
            auto& q =
                db.query("SELECT id, slug FROM datasets WHERE org_id = ? AND slug = ?", org, slug);
            if (!q.executeStep()) {
                return std::nullopt;
            }
            dataset = Dataset{q.getColumn(0).getInt64(), org, q.getColumn(1).getString(), {}};
        }
        auto& q = db.query(
            "SELECT p.slug FROM dataset_projects d JOIN projects p ON p.id = d.project_id WHERE "
            "d.dataset_id = ? ORDER BY p.slug",
            dataset.id);
        while (q.executeStep()) {
            dataset.projects.push_back(q.getColumn(0).getString());
        }
        return dataset;
    });
}

Expected<std::vector<ProjectGrant>> Store::list_project_grants(ProjectId project) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<ProjectGrant>> {
        return read_grants<ProjectGrant, Level>(
            db,
            "SELECT 0, g.user_id, u.email, g.level, g.source FROM project_user_grants g JOIN "
            "users u ON u.id = g.user_id WHERE g.project_id = ? UNION ALL SELECT 1, g.group_id, "
            "gr.name, g.level, g.source FROM project_group_grants g JOIN groups gr ON gr.id = "
            "g.group_id WHERE g.project_id = ? ORDER BY 1, 3, 5",
            project, parse_level);
    });
}

Expected<std::vector<DatasetGrant>> Store::list_dataset_grants(DatasetId dataset) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<DatasetGrant>> {
        return read_grants<DatasetGrant, DatasetAccess>(
            db,
            "SELECT 0, g.user_id, u.email, g.access, g.source FROM dataset_user_grants g JOIN "
            "users u ON u.id = g.user_id WHERE g.dataset_id = ? UNION ALL SELECT 1, g.group_id, "
            "gr.name, g.access, g.source FROM dataset_group_grants g JOIN groups gr ON gr.id = "
            "g.group_id WHERE g.dataset_id = ? ORDER BY 1, 3, 5",
            dataset, parse_dataset_access);
    });
}

Expected<std::vector<SourceUser>> Store::list_source_users(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceUser>> {
        std::vector<SourceUser> users;
        auto& q = db.query(
            "SELECT source, external_id, email, display_name, active, attributes FROM "
            "source_users WHERE source = ? ORDER BY external_id",
            source);
        while (q.executeStep()) {
            users.push_back(SourceUser{q.getColumn(0).getString(), q.getColumn(1).getString(),
                                       q.getColumn(2).getString(), q.getColumn(3).getString(),
                                       q.getColumn(4).getInt() != 0, q.getColumn(5).getString()});
        }
        return users;
    });
}

Expected<std::vector<SourceGroup>> Store::list_source_groups(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceGroup>> {
        std::vector<SourceGroup> groups;
        {
            auto& q = db.query(
                "SELECT g.source, g.external_id, g.name, g.attributes, l.members FROM "
                "source_groups g LEFT JOIN source_group_member_lists l ON l.source = g.source AND "
                "l.external_id = g.external_id WHERE g.source = ? ORDER BY g.external_id",
                source);
            while (q.executeStep()) {
                groups.push_back(SourceGroup{q.getColumn(0).getString(), q.getColumn(1).getString(),
                                             q.getColumn(2).getString(), q.getColumn(3).getString(),
                                             unpack_members(members_column(q, 4))});
            }
        }
        return groups;
    });
}

Expected<std::vector<AuditEvent>> Store::audit_events(std::int64_t after_id, int limit) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<AuditEvent>> {
        std::vector<AuditEvent> events;
        auto& q = db.query(
            "SELECT id, at, source, kind, org, subject, detail FROM audit_log WHERE id > ? ORDER "
            "BY id LIMIT ?",
            after_id, limit);
        while (q.executeStep()) {
            events.push_back(AuditEvent{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                                        q.getColumn(2).getString(), q.getColumn(3).getString(),
                                        q.getColumn(4).getString(), q.getColumn(5).getString(),
                                        q.getColumn(6).getString()});
        }
        return events;
    });
}

Expected<SourceAssertions> Store::source_assertions(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<SourceAssertions> {
        SourceAssertions state;
        {
            auto& q = db.query(
                "SELECT o.slug, u.email, a.user_type, a.role FROM membership_assertions a JOIN "
                "orgs o ON o.id = a.org_id JOIN users u ON u.id = a.user_id WHERE a.source = ?",
                source);
            while (q.executeStep()) {
                state.members.push_back({state.names.intern(text_column(q, 0)),
                                         state.names.intern(text_column(q, 1)),
                                         parse_user_type(q.getColumn(2).getString()).value(),
                                         parse_org_role(q.getColumn(3).getString()).value()});
            }
        }
        {
            auto& q = db.query(
                "SELECT o.slug, g.name, u.email FROM group_members m JOIN groups g ON g.id = "
                "m.group_id JOIN orgs o ON o.id = g.org_id JOIN users u ON u.id = m.user_id "
                "WHERE m.source = ?",
                source);
            while (q.executeStep()) {
                state.group_members.push_back({state.names.intern(text_column(q, 0)),
                                               state.names.intern(text_column(q, 1)),
                                               state.names.intern(text_column(q, 2))});
            }
        }
        {
            auto& q = db.query(
                "SELECT o.slug, g.name, p.slug, '', x.level FROM project_group_grants x JOIN "
                "groups g ON g.id = x.group_id JOIN projects p ON p.id = x.project_id JOIN orgs "
                "o ON o.id = p.org_id WHERE x.source = ?1 UNION ALL SELECT o.slug, g.name, '', "
                "d.slug, x.access FROM dataset_group_grants x JOIN groups g ON g.id = x.group_id "
                "JOIN datasets d ON d.id = x.dataset_id JOIN orgs o ON o.id = d.org_id WHERE "
                "x.source = ?1",
                source);
            while (q.executeStep()) {
                state.grants.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(),
                                        q.getColumn(2).getString(), q.getColumn(3).getString(),
                                        parse_level(q.getColumn(4).getString()).value()});
            }
        }
        return state;
    });
}

Expected<std::unordered_map<std::string, std::string>> Store::external_ids(
    std::string_view source, std::string_view kind) const {
    return m_impl->read([&](Db& db) -> Expected<std::unordered_map<std::string, std::string>> {
        std::unordered_map<std::string, std::string> emails;
        // Users in index order, each with its ids: the other way round reads
        // the users table at random (CROSS JOIN keeps this order).
        auto& q = db.query(
            "SELECT x.value, u.email FROM users u CROSS JOIN user_external_ids x ON x.user_id = "
            "u.id WHERE x.source = ? AND x.kind = ?",
            source, kind);
        while (q.executeStep()) {
            emails.emplace(q.getColumn(0).getString(), q.getColumn(1).getString());
        }
        return emails;
    });
}

Expected<Store::DisabledBy> Store::disabled_elsewhere(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<DisabledBy> {
        DisabledBy disabled;
        auto& q = db.query(
            "SELECT email, source FROM source_users WHERE source != ? AND active = 0", source);
        while (q.executeStep()) {
            if (auto email = canonical_email(q.getColumn(0).getString())) {
                disabled[std::move(*email)].push_back(q.getColumn(1).getString());
            }
        }
        return disabled;
    });
}

Expected<std::vector<UserState>> Store::list_users() const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<UserState>> {
        std::vector<UserState> users;
        auto& q = db.query("SELECT id, email, active FROM users ORDER BY email");
        while (q.executeStep()) {
            users.push_back(UserState{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                                      q.getColumn(2).getInt() != 0});
        }
        return users;
    });
}

Expected<StringSet> Store::inactive_users() const {
    return m_impl->read([&](Db& db) -> Expected<StringSet> {
        StringSet emails;
        auto& q = db.query("SELECT email FROM users WHERE active = 0");
        while (q.executeStep()) {
            emails.emplace(text_column(q, 0));
        }
        return emails;
    });
}

Expected<std::vector<SyncRun>> Store::sync_runs(std::string_view source, int limit) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SyncRun>> {
        std::vector<SyncRun> runs;
        auto& q = db.query(
            "SELECT id, source, started_at, finished_at, result, message, summary, plan, kind "
            "FROM sync_runs WHERE ?1 = '' OR source = ?1 ORDER BY id DESC LIMIT ?2",
            source, limit);
        while (q.executeStep()) {
            runs.push_back(SyncRun{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                                   q.getColumn(2).getString(), q.getColumn(3).getString(),
                                   q.getColumn(4).getString(), q.getColumn(5).getString(),
                                   q.getColumn(6).getString(), q.getColumn(7).getString(),
                                   q.getColumn(8).getString()});
        }
        return runs;
    });
}

Expected<std::int64_t> Store::generation() const {
    return m_impl->read([&](Db& db) -> Expected<std::int64_t> {
        auto& q = db.query("SELECT value FROM store_generation WHERE id = 1");
        return q.executeStep() ? q.getColumn(0).getInt64() : 0;
    });
}

Expected<std::optional<std::string>> Store::settled_summary(std::string_view source,
                                                            std::string_view key,
                                                            std::int64_t generation) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<std::string>> {
        auto& q = db.query(
            "SELECT s.summary FROM source_settled s JOIN store_generation g ON g.id = 1 AND "
            "g.value = s.generation WHERE s.source = ? AND s.key = ? AND s.generation = ?",
            source, key, generation);
        if (!q.executeStep()) {
            return std::nullopt;
        }
        return q.getColumn(0).getString();
    });
}

Expected<std::optional<std::string>> Store::source_cursor(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::optional<std::string>> {
        auto& q = db.query("SELECT cursor FROM source_state WHERE source = ?", source);
        if (!q.executeStep() || q.getColumn(0).isNull()) {
            return std::nullopt;
        }
        return q.getColumn(0).getString();
    });
}

namespace {

SourceUser read_source_user(SQLite::Statement& q) {
    return SourceUser{q.getColumn(0).getString(),   q.getColumn(1).getString(),
                      q.getColumn(2).getString(),   q.getColumn(3).getString(),
                      q.getColumn(4).getInt() != 0, q.getColumn(5).getString()};
}

// Each value once, in order: the scoped reads below run one indexed lookup
// per distinct value.
std::vector<std::string> distinct(std::vector<std::string> values) {
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

void read_group_members(Db& db, std::vector<SourceGroup>& groups) {
    for (auto& group : groups) {
        auto& q = db.query(
            "SELECT members FROM source_group_member_lists WHERE source = ? AND "
            "external_id = ?",
            group.source, group.external_id);
        if (q.executeStep()) {
            group.member_ids = unpack_members(members_column(q, 0));
        }
    }
}

std::vector<SourceGroup> read_source_groups(Db& db, const char* sql, std::string_view source,
                                            const std::vector<std::string>& keys,
                                            bool with_members) {
    std::vector<SourceGroup> groups;
    for (const auto& key : distinct(keys)) {
        auto& q = db.query(sql, source, key);
        while (q.executeStep()) {
            groups.push_back(SourceGroup{q.getColumn(0).getString(),
                                         q.getColumn(1).getString(),
                                         q.getColumn(2).getString(),
                                         q.getColumn(3).getString(),
                                         {}});
        }
    }
    std::sort(groups.begin(), groups.end(), [](const SourceGroup& a, const SourceGroup& b) {
        return a.external_id < b.external_id;
    });
    if (with_members) {
        read_group_members(db, groups);
    }
    return groups;
}

}  // namespace

Expected<std::vector<SourceUser>> Store::find_source_users(
    std::string_view source, const std::vector<std::string>& external_ids) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceUser>> {
        std::vector<SourceUser> users;
        for (const auto& id : distinct(external_ids)) {
            auto& q = db.query(
                "SELECT source, external_id, email, display_name, active, attributes FROM "
                "source_users WHERE source = ? AND external_id = ?",
                source, id);
            if (q.executeStep()) {
                users.push_back(read_source_user(q));
            }
        }
        return users;
    });
}

Expected<std::vector<SourceUser>> Store::source_users_with_email(
    std::string_view source, const std::vector<std::string>& emails) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceUser>> {
        std::vector<SourceUser> users;
        for (const auto& email : distinct(emails)) {
            if (email.empty()) {
                continue;
            }
            auto& q = db.query(
                "SELECT source, external_id, email, display_name, active, attributes FROM "
                "source_users WHERE source = ? AND email_key = ? ORDER BY external_id",
                source, email);
            while (q.executeStep()) {
                users.push_back(read_source_user(q));
            }
        }
        return users;
    });
}

Expected<std::vector<SourceGroup>> Store::find_source_groups(
    std::string_view source, const std::vector<std::string>& external_ids,
    bool with_members) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceGroup>> {
        return read_source_groups(db,
                                  "SELECT source, external_id, name, attributes FROM "
                                  "source_groups WHERE source = ? AND external_id = ?",
                                  source, external_ids, with_members);
    });
}

Expected<std::vector<SourceGroup>> Store::source_groups_named(std::string_view source,
                                                              const std::vector<std::string>& names,
                                                              bool with_members) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceGroup>> {
        return read_source_groups(db,
                                  "SELECT source, external_id, name, attributes FROM "
                                  "source_groups WHERE source = ? AND name = ?",
                                  source, names, with_members);
    });
}

Expected<std::vector<std::pair<std::string, std::string>>> Store::source_memberships_of(
    std::string_view source, const std::vector<std::string>& member_ids) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<std::pair<std::string, std::string>>> {
        std::vector<std::pair<std::string, std::string>> pairs;
        for (const auto& id : distinct(member_ids)) {
            auto& q = db.query(
                "SELECT group_external_id FROM source_member_groups WHERE source = ? AND "
                "member_id = ? ORDER BY group_external_id",
                source, id);
            while (q.executeStep()) {
                pairs.emplace_back(q.getColumn(0).getString(), id);
            }
        }
        return pairs;
    });
}

Expected<SourceAssertions> Store::source_assertions_for(
    std::string_view source, const std::vector<std::string>& emails,
    const std::vector<std::string>& group_names) const {
    return m_impl->read([&](Db& db) -> Expected<SourceAssertions> {
        SourceAssertions state;
        for (const auto& email : distinct(emails)) {
            {
                auto& q = db.query(
                    "SELECT o.slug, u.email, a.user_type, a.role FROM users u JOIN memberships m "
                    "ON m.user_id = u.id JOIN membership_assertions a ON a.org_id = m.org_id AND "
                    "a.user_id = m.user_id AND a.source = ?2 JOIN orgs o ON o.id = m.org_id "
                    "WHERE u.email = ?1",
                    email, source);
                while (q.executeStep()) {
                    state.members.push_back({state.names.intern(text_column(q, 0)),
                                             state.names.intern(text_column(q, 1)),
                                             parse_user_type(q.getColumn(2).getString()).value(),
                                             parse_org_role(q.getColumn(3).getString()).value()});
                }
            }
            auto& q = db.query(
                "SELECT o.slug, g.name, u.email FROM users u JOIN memberships ms ON ms.user_id = "
                "u.id JOIN group_members m ON m.org_id = ms.org_id AND m.user_id = u.id JOIN "
                "groups g ON g.id = m.group_id JOIN orgs o ON o.id = g.org_id WHERE u.email = ?1 "
                "AND m.source = ?2",
                email, source);
            while (q.executeStep()) {
                state.group_members.push_back({state.names.intern(text_column(q, 0)),
                                               state.names.intern(text_column(q, 1)),
                                               state.names.intern(text_column(q, 2))});
            }
        }
        for (const auto& name : distinct(group_names)) {
            auto& q = db.query(
                "SELECT o.slug, g.name, p.slug, '', x.level FROM groups g JOIN "
                "project_group_grants x ON x.group_id = g.id JOIN projects p ON p.id = "
                "x.project_id JOIN orgs o ON o.id = p.org_id WHERE g.name = ?1 AND x.source = ?2 "
                "UNION ALL SELECT o.slug, g.name, '', d.slug, x.access FROM groups g JOIN "
                "dataset_group_grants x ON x.group_id = g.id JOIN datasets d ON d.id = "
                "x.dataset_id JOIN orgs o ON o.id = d.org_id WHERE g.name = ?1 AND x.source = ?2",
                name, source);
            while (q.executeStep()) {
                state.grants.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(),
                                        q.getColumn(2).getString(), q.getColumn(3).getString(),
                                        parse_level(q.getColumn(4).getString()).value()});
            }
        }
        return state;
    });
}

Expected<std::map<std::string, std::size_t>> Store::source_member_counts(
    std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::map<std::string, std::size_t>> {
        return member_counts(db, source);
    });
}

namespace {

// Length-prefixed fields, eight bytes at a time, through two 64-bit lanes
// that feed each other (the shape of MurmurHash3's x64 128-bit body). A
// field's last word is zero-padded; its length prefix keeps that
// unambiguous. Nothing stores these digests: both sides of a comparison
// compute them, so the function can change freely.
class Digester {
  public:
    void add(std::string_view field) {
        mix(field.size());
        std::size_t at = 0;
        for (; at + 8 <= field.size(); at += 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, field.data() + at, 8);
            mix(word);
        }
        if (at < field.size()) {
            std::uint64_t word = 0;
            std::memcpy(&word, field.data() + at, field.size() - at);
            mix(word);
        }
    }
    MirrorDigest digest() const {
        std::uint64_t low = finish(m_low + m_words);
        std::uint64_t high = finish(m_high ^ m_words);
        low += high;
        high += low;
        return {low, high};
    }

  private:
    static constexpr std::uint64_t k_c1 = 0x87c37b91114253d5ULL;
    static constexpr std::uint64_t k_c2 = 0x4cf5ad432745937fULL;

    void mix(std::uint64_t word) {
        ++m_words;
        m_low ^= std::rotl(word * k_c1, 31) * k_c2;
        m_low = (std::rotl(m_low, 27) + m_high) * 5 + 0x52dce729;
        m_high ^= std::rotl(word * k_c2, 33) * k_c1;
        m_high = (std::rotl(m_high, 31) + m_low) * 5 + 0x38495ab5;
    }
    static std::uint64_t finish(std::uint64_t value) {
        value ^= value >> 33;
        value *= 0xff51afd7ed558ccdULL;
        value ^= value >> 33;
        value *= 0xc4ceb9fe1a85ec53ULL;
        return value ^ (value >> 33);
    }
    std::uint64_t m_low = 0x9e3779b97f4a7c15ULL;
    std::uint64_t m_high = 0x6a09e667f3bcc908ULL;
    std::uint64_t m_words = 0;
};

std::string_view stored_attributes(std::string_view attributes) {
    return attributes.empty() ? std::string_view("{}") : attributes;
}

}  // namespace

MirrorDigest mirror_digest(const SourceUser& user) {
    Digester digester;
    digester.add(user.email);
    digester.add(user.display_name);
    digester.add(user.active ? "1" : "0");
    digester.add(stored_attributes(user.attributes));
    return digester.digest();
}

MirrorDigest mirror_digest(const SourceGroup& group) {
    Digester digester;
    digester.add(group.name);
    digester.add(stored_attributes(group.attributes));
    std::vector<std::string_view> members(group.member_ids.begin(), group.member_ids.end());
    // Connectors mostly give members sorted and unique already.
    if (std::ranges::adjacent_find(members, std::greater_equal<>()) != members.end()) {
        std::sort(members.begin(), members.end());
        members.erase(std::unique(members.begin(), members.end()), members.end());
    }
    for (auto member : members) {
        digester.add(member);
    }
    return digester.digest();
}

namespace {

// A record's digest binds its kind and id to its content.
MirrorDigest record_digest(std::string_view kind, std::string_view id,
                           const MirrorDigest& content) {
    std::array<char, 16> words{};
    std::memcpy(words.data(), &content.low, 8);
    std::memcpy(words.data() + 8, &content.high, 8);
    Digester digester;
    digester.add(kind);
    digester.add(id);
    digester.add(std::string_view(words.data(), words.size()));
    return digester.digest();
}

template <typename Record>
MirrorDigest sum_of(std::span<const Record> records, std::string_view kind) {
    MirrorDigest sum;
    for (const auto& record : records) {
        const MirrorDigest digest = record_digest(kind, record.external_id, mirror_digest(record));
        sum.low += digest.low;
        sum.high += digest.high;
    }
    return sum;
}

// From how many member ids the groups are summed on a thread of their
// own, beside the users: the two are far apart in memory and each waits
// mostly on cache misses (a directory of 100,000 users and 300,000 member
// values takes about 28 ms on one thread).
constexpr std::size_t k_parallel_members = 50'000;

}  // namespace

MirrorDigest mirror_set_digest(std::span<const SourceUser> users,
                               std::span<const SourceGroup> groups) {
    // The sum of the records' digests does not depend on their order.
    std::size_t members = 0;
    for (const auto& group : groups) {
        members += group.member_ids.size();
    }
    std::future<MirrorDigest> of_groups;
    if (members >= k_parallel_members && !users.empty()) {
        try {
            of_groups =
                std::async(std::launch::async, [groups] { return sum_of(groups, "group"); });
        } catch (const std::system_error&) {
            // no thread to be had: summed below, on this one
        }
    }
    MirrorDigest sum = sum_of(users, "user");
    const MirrorDigest group_sum = of_groups.valid() ? of_groups.get() : sum_of(groups, "group");
    sum.low += group_sum.low;
    sum.high += group_sum.high;
    return sum;
}

Expected<std::unordered_map<std::string, MirrorDigest>> Store::source_user_digests(
    std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::unordered_map<std::string, MirrorDigest>> {
        std::unordered_map<std::string, MirrorDigest> digests;
        auto& q = db.query(
            "SELECT external_id, email, display_name, active, attributes FROM source_users WHERE "
            "source = ?",
            source);
        while (q.executeStep()) {
            Digester digester;
            digester.add(q.getColumn(1).getText());
            digester.add(q.getColumn(2).getText());
            digester.add(q.getColumn(3).getInt() != 0 ? "1" : "0");
            digester.add(q.getColumn(4).getText());
            digests.emplace(q.getColumn(0).getString(), digester.digest());
        }
        return digests;
    });
}

Expected<std::unordered_map<std::string, MirrorDigest>> Store::source_group_digests(
    std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::unordered_map<std::string, MirrorDigest>> {
        std::unordered_map<std::string, MirrorDigest> digests;
        // Members as stored: sorted and unique, as mirror_digest takes them.
        auto& q = db.query(
            "SELECT g.external_id, g.name, g.attributes, l.members FROM source_groups g LEFT JOIN "
            "source_group_member_lists l ON l.source = g.source AND l.external_id = g.external_id "
            "WHERE g.source = ?",
            source);
        while (q.executeStep()) {
            Digester digester;
            digester.add(q.getColumn(1).getText());
            digester.add(q.getColumn(2).getText());
            for_each_member(members_column(q, 3), [&](std::string_view id) { digester.add(id); });
            digests.emplace(q.getColumn(0).getString(), digester.digest());
        }
        return digests;
    });
}

Expected<std::size_t> Store::source_user_count(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::size_t> {
        auto& q = db.query("SELECT COUNT(*) FROM source_users WHERE source = ?", source);
        q.executeStep();
        return static_cast<std::size_t>(q.getColumn(0).getInt64());
    });
}

Expected<std::size_t> Store::source_group_count(std::string_view source) const {
    return m_impl->read([&](Db& db) -> Expected<std::size_t> {
        auto& q = db.query("SELECT COUNT(*) FROM source_groups WHERE source = ?", source);
        q.executeStep();
        return static_cast<std::size_t>(q.getColumn(0).getInt64());
    });
}

namespace {

// ASCII lower case, as SQLite's lower() folds (the v5 indexes use it).
std::string fold_ascii(std::string_view text) {
    std::string folded(text);
    for (char& c : folded) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return folded;
}

}  // namespace

Expected<std::vector<SourceUser>> Store::find_source_users_by(std::string_view source,
                                                              MirrorKey key,
                                                              std::string_view value) const {
    const char* sql = nullptr;
    std::string bound(value);
    switch (key) {
        case MirrorKey::user_name:
            sql =
                "SELECT source, external_id, email, display_name, active, attributes FROM "
                "source_users INDEXED BY source_users_by_user_name WHERE source = ? AND "
                "lower(json_extract(attributes, '$.userName')) = ? ORDER BY external_id";
            bound = fold_ascii(value);
            break;
        case MirrorKey::client_id:
            sql =
                "SELECT source, external_id, email, display_name, active, attributes FROM "
                "source_users INDEXED BY source_users_by_client_id WHERE source = ? AND "
                "json_extract(attributes, '$.externalId') = ? ORDER BY external_id";
            break;
        case MirrorKey::display_name:
            return fail(ErrorCode::invalid_argument, "users are not looked up by display name");
    }
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceUser>> {
        std::vector<SourceUser> users;
        auto& q = db.query(sql, source, bound);
        while (q.executeStep()) {
            users.push_back(read_source_user(q));
        }
        return users;
    });
}

Expected<std::vector<SourceGroup>> Store::find_source_groups_by(std::string_view source,
                                                                MirrorKey key,
                                                                std::string_view value,
                                                                bool with_members) const {
    const char* sql = nullptr;
    std::string bound(value);
    switch (key) {
        case MirrorKey::display_name:
            sql =
                "SELECT source, external_id, name, attributes FROM source_groups INDEXED BY "
                "source_groups_by_folded_name WHERE source = ? AND lower(name) = ?";
            bound = fold_ascii(value);
            break;
        case MirrorKey::client_id:
            sql =
                "SELECT source, external_id, name, attributes FROM source_groups INDEXED BY "
                "source_groups_by_client_id WHERE source = ? AND json_extract(attributes, "
                "'$.externalId') = ?";
            break;
        case MirrorKey::user_name:
            return fail(ErrorCode::invalid_argument, "groups have no user name");
    }
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceGroup>> {
        return read_source_groups(db, sql, source, {bound}, with_members);
    });
}

Expected<std::vector<SourceUser>> Store::source_users_page(std::string_view source,
                                                           std::size_t offset,
                                                           std::size_t limit) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceUser>> {
        std::vector<SourceUser> users;
        auto& q = db.query(
            "SELECT source, external_id, email, display_name, active, attributes FROM "
            "source_users WHERE source = ? ORDER BY external_id LIMIT ? OFFSET ?",
            source, static_cast<std::int64_t>(limit), static_cast<std::int64_t>(offset));
        while (q.executeStep()) {
            users.push_back(read_source_user(q));
        }
        return users;
    });
}

Expected<std::vector<SourceGroup>> Store::source_groups_page(std::string_view source,
                                                             std::size_t offset, std::size_t limit,
                                                             bool with_members) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<SourceGroup>> {
        std::vector<SourceGroup> groups;
        auto& q = db.query(
            "SELECT source, external_id, name, attributes FROM source_groups WHERE source = ? "
            "ORDER BY external_id LIMIT ? OFFSET ?",
            source, static_cast<std::int64_t>(limit), static_cast<std::int64_t>(offset));
        while (q.executeStep()) {
            groups.push_back(SourceGroup{q.getColumn(0).getString(),
                                         q.getColumn(1).getString(),
                                         q.getColumn(2).getString(),
                                         q.getColumn(3).getString(),
                                         {}});
        }
        if (with_members) {
            read_group_members(db, groups);
        }
        return groups;
    });
}

Expected<std::vector<UserState>> Store::find_users(const std::vector<std::string>& emails) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<UserState>> {
        std::vector<UserState> users;
        for (const auto& email : distinct(emails)) {
            auto& q = db.query("SELECT id, email, active FROM users WHERE email = ?", email);
            if (q.executeStep()) {
                users.push_back(UserState{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                                          q.getColumn(2).getInt() != 0});
            }
        }
        return users;
    });
}

Expected<std::unordered_map<std::string, std::string>> Store::external_ids(
    std::string_view source, std::string_view kind, const std::vector<std::string>& values) const {
    return m_impl->read([&](Db& db) -> Expected<std::unordered_map<std::string, std::string>> {
        std::unordered_map<std::string, std::string> emails;
        for (const auto& value : distinct(values)) {
            auto& q = db.query(
                "SELECT u.email FROM user_external_ids x JOIN users u ON u.id = x.user_id WHERE "
                "x.source = ? AND x.kind = ? AND x.value = ?",
                source, kind, value);
            if (q.executeStep()) {
                emails.emplace(value, q.getColumn(0).getString());
            }
        }
        return emails;
    });
}

Expected<Store::DisabledBy> Store::disabled_elsewhere(
    std::string_view source, const std::vector<std::string>& emails) const {
    return m_impl->read([&](Db& db) -> Expected<DisabledBy> {
        DisabledBy disabled;
        for (const auto& email : distinct(emails)) {
            auto& q = db.query(
                "SELECT source FROM source_users WHERE email_key = ?1 AND source != ?2 AND "
                "active = 0",
                email, source);
            while (q.executeStep()) {
                disabled[email].push_back(q.getColumn(0).getString());
            }
        }
        return disabled;
    });
}

Expected<std::int64_t> Store::outbox_depth() const {
    return m_impl->read([&](Db& db) -> Expected<std::int64_t> {
        auto& q = db.query("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL");
        q.executeStep();
        return q.getColumn(0).getInt64();
    });
}

// ---- Outbox delivery --------------------------------------------------------

namespace {

DeliveryState read_delivery_state(SQLite::Statement& q) {
    DeliveryState state;
    state.target = q.getColumn(0).getString();
    state.next = {q.getColumn(1).getInt64(), q.getColumn(2).getInt64()};
    state.attempts = q.getColumn(3).getInt();
    state.retry_at_ms = q.getColumn(4).getInt64();
    state.last_error = q.getColumn(5).getString();
    state.delivered = q.getColumn(6).getInt64();
    state.dead_lettered = q.getColumn(7).getInt64();
    return state;
}

DeadLetter read_dead_letter(SQLite::Statement& q) {
    DeadLetter letter;
    letter.id = q.getColumn(0).getInt64();
    letter.target = q.getColumn(1).getString();
    letter.at = q.getColumn(2).getString();
    letter.attempts = q.getColumn(3).getInt();
    letter.last_error = q.getColumn(4).getString();
    letter.events = q.getColumn(5).getInt64();
    letter.first_event_id = q.getColumn(6).getString();
    letter.last_event_id = q.getColumn(7).getString();
    letter.body = q.getColumn(8).getString();
    return letter;
}

}  // namespace

Expected<DeliveryState> Store::delivery_state(std::string_view target) {
    return guarded(m_impl->mutex, [&]() -> Expected<DeliveryState> {
        if (target.empty()) {
            return fail(ErrorCode::invalid_argument, "a webhook target needs a URL");
        }
        Db& db = m_impl->db;
        for (int pass = 0; pass < 2; ++pass) {
            auto& q = db.query(
                "SELECT target, next_row, next_offset, attempts, retry_at_ms, last_error, "
                "delivered, dead_lettered FROM webhook_delivery WHERE target = ?",
                target);
            if (q.executeStep()) {
                DeliveryState state = read_delivery_state(q);
                q.reset();
                return state;
            }
            db.run(
                "INSERT INTO webhook_delivery (target, next_row) VALUES (?, COALESCE((SELECT "
                "MIN(id) FROM outbox WHERE delivered_at IS NULL), (SELECT COALESCE(MAX(id), 0) + "
                "1 FROM outbox)))",
                target);
        }
        return fail(ErrorCode::storage, "the webhook delivery state was not written");
    });
}

Expected<std::vector<DeliveryState>> Store::delivery_states() const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<DeliveryState>> {
        auto& q = db.query(
            "SELECT target, next_row, next_offset, attempts, retry_at_ms, last_error, delivered, "
            "dead_lettered FROM webhook_delivery ORDER BY target");
        std::vector<DeliveryState> states;
        while (q.executeStep()) {
            states.push_back(read_delivery_state(q));
        }
        return states;
    });
}

Expected<std::vector<OutboxRow>> Store::outbox_rows(OutboxPosition from,
                                                    std::int64_t max_events) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<OutboxRow>> {
        auto& q = db.query(
            "SELECT id, event_id, created_at, org, kind, payload, CASE kind WHEN 'batch' THEN "
            "COALESCE(json_array_length(payload, '$.events'), 0) ELSE 1 END FROM outbox WHERE id "
            ">= ? ORDER BY id",
            from.row);
        std::vector<OutboxRow> rows;
        std::int64_t events = 0;
        while (events < max_events && q.executeStep()) {
            OutboxRow row;
            row.id = q.getColumn(0).getInt64();
            row.event_id = q.getColumn(1).getString();
            row.created_at = q.getColumn(2).getString();
            row.org = q.getColumn(3).getString();
            row.kind = q.getColumn(4).getString();
            row.payload = q.getColumn(5).getString();
            row.events = q.getColumn(6).getInt64();
            const std::int64_t skipped = row.id == from.row ? from.offset : 0;
            events += std::max<std::int64_t>(0, row.events - skipped);
            rows.push_back(std::move(row));
        }
        q.reset();
        return rows;
    });
}

Expected<void> Store::advance_delivery(std::string_view target, OutboxPosition next,
                                       std::int64_t events,
                                       const std::optional<DeadLetter>& dead_letter,
                                       const std::vector<std::string>& targets) {
    return guarded(m_impl->mutex, [&]() -> Expected<void> {
        Db& db = m_impl->db;
        SQLite::Transaction transaction(m_impl->database, SQLite::TransactionBehavior::IMMEDIATE);
        if (dead_letter) {
            db.run(
                "INSERT INTO webhook_dead_letters (target, attempts, last_error, events, "
                "first_event_id, last_event_id, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                target, dead_letter->attempts, dead_letter->last_error, dead_letter->events,
                dead_letter->first_event_id, dead_letter->last_event_id, dead_letter->body);
        }
        const std::int64_t delivered = dead_letter ? 0 : events;
        const std::int64_t dead = dead_letter ? events : 0;
        const int changed = db.run(
            "UPDATE webhook_delivery SET next_row = ?, next_offset = ?, attempts = 0, "
            "retry_at_ms = 0, last_error = '', delivered = delivered + ?, dead_lettered = "
            "dead_lettered + ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE target = "
            "?",
            next.row, next.offset, delivered, dead, target);
        if (changed == 0) {
            return fail(ErrorCode::not_found, "no delivery state for this webhook target");
        }
        // Rows before the slowest target's next row are done everywhere.
        std::int64_t done_before = std::numeric_limits<std::int64_t>::max();
        for (const std::string& each : targets) {
            auto& q = db.query("SELECT next_row FROM webhook_delivery WHERE target = ?", each);
            done_before = std::min(done_before, q.executeStep() ? q.getColumn(0).getInt64() : 0);
            q.reset();
        }
        if (!targets.empty()) {
            db.run(
                "UPDATE outbox SET delivered_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE "
                "delivered_at IS NULL AND id < ?",
                done_before);
        }
        transaction.commit();
        return {};
    });
}

Expected<void> Store::delivery_failed(std::string_view target, int attempts,
                                      std::int64_t retry_at_ms, std::string_view error,
                                      std::int64_t first_row, std::int64_t last_row) {
    return guarded(m_impl->mutex, [&]() -> Expected<void> {
        Db& db = m_impl->db;
        SQLite::Transaction transaction(m_impl->database, SQLite::TransactionBehavior::IMMEDIATE);
        const int changed = db.run(
            "UPDATE webhook_delivery SET attempts = ?, retry_at_ms = ?, last_error = ?, "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE target = ?",
            attempts, retry_at_ms, error, target);
        if (changed == 0) {
            return fail(ErrorCode::not_found, "no delivery state for this webhook target");
        }
        db.run("UPDATE outbox SET attempts = attempts + 1 WHERE id BETWEEN ? AND ?", first_row,
               last_row);
        transaction.commit();
        return {};
    });
}

Expected<std::vector<DeadLetter>> Store::dead_letters(std::string_view target,
                                                      std::int64_t after_id, int limit) const {
    return m_impl->read([&](Db& db) -> Expected<std::vector<DeadLetter>> {
        auto& q =
            target.empty()
                ? db.query(
                      "SELECT id, target, at, attempts, last_error, events, first_event_id, "
                      "last_event_id, body FROM webhook_dead_letters WHERE id > ? ORDER BY id "
                      "LIMIT ?",
                      after_id, limit)
                : db.query(
                      "SELECT id, target, at, attempts, last_error, events, first_event_id, "
                      "last_event_id, body FROM webhook_dead_letters WHERE target = ? AND id > ? "
                      "ORDER BY id LIMIT ?",
                      target, after_id, limit);
        std::vector<DeadLetter> letters;
        while (q.executeStep()) {
            letters.push_back(read_dead_letter(q));
        }
        return letters;
    });
}

}  // namespace orgsync::directory
