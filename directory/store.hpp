#pragma once

// The SQLite store: the one place org state is written. Every write runs in
// one SQLite transaction; DESIGN §1's invariants are checked inside it and a
// violation rolls the whole transaction back and returns a typed Error, so a
// failed call changes nothing. After each commit the in-memory policy
// snapshot of every touched org is rebuilt and published, so decisions
// (policy.hpp) reflect a write as soon as the write call returns, and readers
// never wait on a writer.
//
// Threading: a Store may be shared by threads. Writes are serialised by an
// internal mutex; snapshot() is lock-free for readers.

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/names.hpp"
#include "directory/snapshot.hpp"

namespace SQLite {
class Database;
}

namespace orgsync::directory {

// A user as one source states it (the source mirror of DESIGN §2).
struct SourceUser {
    std::string source;
    std::string external_id;  // the source's stable id (entryUUID, objectGUID, SCIM id)
    std::string email;        // as the source states it, not canonicalised
    std::string display_name;
    bool active = true;
    std::string attributes;  // JSON object: everything else the source said
};

struct SourceGroup {
    std::string source;
    std::string external_id;
    std::string name;  // DN for LDAP, displayName for SCIM
    std::string attributes;
    std::vector<std::string> member_ids;  // external ids of member users
};

// A 128-bit digest of what the mirror stores of a record (not its source
// or id): equal digests mean the stored record needs no rewrite. Empty
// attributes digest as "{}", and a group's members as a sorted set, as the
// store keeps them.
struct MirrorDigest {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    bool operator==(const MirrorDigest&) const = default;
};
MirrorDigest mirror_digest(const SourceUser& user);
MirrorDigest mirror_digest(const SourceGroup& group);
// A digest of a whole mirror: every record with its id and what
// mirror_digest covers, in any order (a record given twice counts twice).
MirrorDigest mirror_set_digest(std::span<const SourceUser> users,
                               std::span<const SourceGroup> groups);

// Everything one source asserts, by name, for the sync planner to diff. A
// source asserts hundreds of thousands of memberships over a few orgs and
// groups: the memberships hold names (`names[member.email]`), not strings.
struct SourceAssertions {
    Names names;  // the members' and group members' orgs, groups and addresses
    struct Member {
        Names::Id org = 0;
        Names::Id email = 0;
        UserType user_type = UserType::external;
        OrgRole role = OrgRole::guest;
    };
    struct GroupMember {
        Names::Id org = 0;
        Names::Id group = 0;
        Names::Id email = 0;
    };
    struct GroupGrant {
        std::string org;
        std::string group;
        std::string project;        // set for a project grant
        std::string dataset;        // set for a dataset grant
        Level level = Level::read;  // the project level, or the dataset access as read/write
    };
    std::vector<Member> members;
    std::vector<GroupMember> group_members;
    std::vector<GroupGrant> grants;
};

// One member a sync adds (Transaction::add_members); the strings are the
// caller's and outlive the call.
struct NewMember {
    std::string_view email;  // canonicalised like upsert_user's
    std::string_view display_name;
    std::string_view external_id;  // the source's "id" for the user; may be empty
    UserType user_type = UserType::external;
    OrgRole role = OrgRole::guest;
};

struct UserState {
    UserId id = 0;
    std::string email;
    bool active = true;
};

// One recorded sync run: applied, blocked by a guard (its plan kept for
// review) or failed.
struct SyncRun {
    std::int64_t id = 0;
    std::string source;
    std::string started_at;  // UTC, ISO 8601
    std::string finished_at;
    std::string result;         // applied | blocked | failed
    std::string message;        // why it was blocked or failed
    std::string summary;        // JSON object: counts
    std::string plan;           // JSON object: the plan, including held changes
    std::string kind = "full";  // full (the whole source read) | delta (changes since a cursor)
};

struct AuditEvent {
    std::int64_t id = 0;
    std::string at;  // UTC, ISO 8601
    std::string source;
    std::string kind;  // e.g. membership.added, role.changed, grant.removed
    std::string org;   // slug, empty for global events
    std::string subject;
    std::string detail;  // JSON object
};

// The mutation API, valid only inside Store::write. Calls check their own
// preconditions (returning an Error that the caller normally propagates);
// state invariants (2, 3, 5) are checked once, when the callback returns, so a
// batch may pass through an intermediate state (revoke an admin, then grant
// the replacement). Every change appends an audit event in the same
// transaction, and the same event to the outbox for outbound webhooks.
class Transaction {
  public:
    virtual ~Transaction() = default;

    // Users. `email` is canonicalised; an invalid address is invalid_argument.
    // upsert_user returns the existing user's id when the email is known.
    virtual Expected<UserId> upsert_user(std::string_view email, std::string_view display_name) = 0;
    virtual Expected<void> set_user_active(UserId user, bool active) = 0;
    virtual Expected<void> set_external_id(UserId user, const ExternalId& id) = 0;
    // Gives the user a new (canonicalised) address; already_exists when
    // another user has it. Memberships are unchanged: domain auto-join
    // re-evaluates them (sync/auto_join.hpp).
    virtual Expected<void> change_user_email(UserId user, std::string_view new_email) = 0;

    // Orgs. The owner (created as a user if unknown) becomes an internal
    // member with role owner; `source` records who created the org.
    virtual Expected<OrgId> create_org(std::string_view slug, std::string_view name, bool workforce,
                                       std::string_view owner_email) = 0;
    // Invariant 1: `new_owner` must be an internal member of `org`; it becomes
    // owner and the former owner becomes admin (a manual assertion).
    virtual Expected<void> transfer_ownership(OrgId org, UserId new_owner) = 0;

    // Memberships. `assertion.role` may not be owner. Asserting replaces that
    // source's previous assertion; the effective type and role are the highest
    // asserted (the owner stays owner).
    virtual Expected<void> assert_membership(OrgId org, UserId user,
                                             const MembershipAssertion& assertion) = 0;
    // Withdraws `source`'s assertion. When no assertion is left the
    // membership ends, with the user's grants and group memberships in that
    // org; the owner cannot be removed (owner_immutable), an admin only after
    // demotion (admin_must_be_demoted). Retracting what was never asserted is
    // a no-op.
    virtual Expected<void> retract_membership(OrgId org, UserId user, std::string_view source) = 0;

    // Bulk forms for syncs, which add members by the hundred thousand.
    // add_members has the effects, checks and audit events of, for each
    // entry in order: upsert_user, set_external_id({source, "id",
    // external_id}) when the id is set (an id another user holds stays
    // with them) and assert_membership; add_group_members those of
    // add_group_member for each address (not_found for an unknown one).
    // The first error stops them. New users and memberships take a few
    // set-based statements per call; other entries fall back to the single
    // calls. Their audit events are written per entry, grouped by kind, and
    // reach the outbox in batches (see the outbox note at audit()).
    virtual Expected<void> add_members(OrgId org, std::string_view source,
                                       const std::vector<NewMember>& members) = 0;
    virtual Expected<void> add_group_members(GroupId group, std::string_view source,
                                             const std::vector<std::string>& emails) = 0;

    // Groups. Names are unique per org.
    virtual Expected<GroupId> create_group(OrgId org, std::string_view name) = 0;
    virtual Expected<void> delete_group(GroupId group) = 0;
    // The user must be a member of the group's org (not_a_member).
    virtual Expected<void> add_group_member(GroupId group, UserId user,
                                            std::string_view source) = 0;
    virtual Expected<void> remove_group_member(GroupId group, UserId user,
                                               std::string_view source) = 0;

    // Projects: created with their first explicit admin (invariant 5), who
    // must be a member (owner or admin, or gets the grant via invariant 6).
    virtual Expected<ProjectId> create_project(OrgId org, std::string_view slug,
                                               Visibility visibility,
                                               const std::vector<std::string>& tags,
                                               UserId first_admin) = 0;
    virtual Expected<void> set_project_visibility(ProjectId project, Visibility visibility) = 0;
    virtual Expected<void> set_project_tags(ProjectId project,
                                            const std::vector<std::string>& tags) = 0;
    virtual Expected<void> delete_project(ProjectId project) = 0;

    virtual Expected<DatasetId> create_dataset(OrgId org, std::string_view slug) = 0;
    virtual Expected<void> attach_dataset(DatasetId dataset, ProjectId project) = 0;
    virtual Expected<void> delete_dataset(DatasetId dataset) = 0;

    // Grants, asserted per source like memberships; the effective level is
    // the highest asserted. Invariant 6: granting a user who is not a member
    // first makes them a guest, of type `new_member_type` (external when
    // unset), or workforce when they are internal in a workforce org
    // (invariant 8). Group principals must belong to the grant's org
    // (invalid_argument otherwise).
    virtual Expected<void> grant_project(ProjectId project, Principal principal, Level level,
                                         std::string_view source,
                                         std::optional<UserType> new_member_type = {}) = 0;
    virtual Expected<void> revoke_project(ProjectId project, Principal principal,
                                          std::string_view source) = 0;
    virtual Expected<void> grant_dataset(DatasetId dataset, Principal principal,
                                         DatasetAccess access, std::string_view source,
                                         std::optional<UserType> new_member_type = {}) = 0;
    virtual Expected<void> revoke_dataset(DatasetId dataset, Principal principal,
                                          std::string_view source) = 0;

    // Source mirror: each source's own view, replaced record by record.
    virtual Expected<void> put_source_user(const SourceUser& user) = 0;
    virtual Expected<void> delete_source_user(std::string_view source,
                                              std::string_view external_id) = 0;
    // Its member ids are kept sorted and unique; an id holding a NUL byte is
    // invalid_argument.
    virtual Expected<void> put_source_group(const SourceGroup& group) = 0;
    virtual Expected<void> delete_source_group(std::string_view source,
                                               std::string_view external_id) = 0;
    // The source's resume point (see Store::source_cursor); nullopt clears
    // it. Written in the transaction that writes the mirror it describes,
    // so the two never disagree after a crash.
    virtual Expected<void> set_source_cursor(std::string_view source,
                                             std::optional<std::string_view> cursor) = 0;

    // Lookups by name, seeing this transaction's own writes.
    virtual Expected<std::optional<OrgId>> find_org_id(std::string_view slug) = 0;
    virtual Expected<std::optional<UserId>> find_user_id(std::string_view email) = 0;
    virtual Expected<std::optional<GroupId>> find_group_id(OrgId org, std::string_view name) = 0;
    virtual Expected<std::optional<ProjectId>> find_project_id(OrgId org,
                                                               std::string_view slug) = 0;
    virtual Expected<std::optional<DatasetId>> find_dataset_id(OrgId org,
                                                               std::string_view slug) = 0;

    // Records a sync run (its id is assigned by the store).
    virtual Expected<void> record_sync_run(const SyncRun& run) = 0;

    // How many memberships `source` asserts, by org slug, as this
    // transaction leaves them so far (Store::source_member_counts).
    virtual Expected<std::map<std::string, std::size_t>> source_member_counts(
        std::string_view source) = 0;

    // Records that the plan of a full sync of `source` under `key` (the
    // caller's name for the mapping and planner it used) is empty for the
    // store as this transaction leaves it, with the caller's `summary` text
    // of that plan, provided the store's generation is still `generation`,
    // i.e. nothing was committed since the caller read what it planned
    // from. Otherwise records nothing. See Store::settled_summary.
    virtual Expected<void> mark_settled(std::string_view source, std::string_view key,
                                        std::int64_t generation, std::string_view summary) = 0;

    // The source that the audit events of this transaction are recorded
    // under, and that membership/grant helpers default to.
    virtual std::string_view source() const = 0;
};

// ---- Outbox delivery (daemon/outbox_delivery.hpp) ---------------------------
// Each webhook target, keyed by its URL, walks the outbox in id order on its
// own: a target that is down holds back no other. A position inside the
// outbox addresses one event: row `row`'s event number `offset` (a single
// event row has one, a batch row up to 1,000).

struct OutboxPosition {
    std::int64_t row = 0;     // the next event is in the first outbox row with id >= row
    std::int64_t offset = 0;  // and is that row's event number `offset` (from 0)
    bool operator==(const OutboxPosition&) const = default;
};

struct OutboxRow {
    std::int64_t id = 0;
    std::string event_id;
    std::string created_at;  // UTC, ISO 8601
    std::string org;
    std::string kind;         // the event's kind, or "batch"
    std::string payload;      // JSON object; for "batch": {"type":"batch","events":[…]}
    std::int64_t events = 1;  // how many events the row holds
};

// What is committed about one target. `attempts` counts failed requests in
// a row for the events from `next` on; it is reset when they are delivered
// or dead-lettered.
struct DeliveryState {
    std::string target;  // URL
    OutboxPosition next;
    int attempts = 0;
    std::int64_t retry_at_ms = 0;    // Unix ms before which no retry is due
    std::string last_error;          // of the last failed request, "" after a success
    std::int64_t delivered = 0;      // events acknowledged (2xx), ever
    std::int64_t dead_lettered = 0;  // events given up on, ever
};

// A request given up on after its last attempt, kept for inspection and
// replay.
struct DeadLetter {
    std::int64_t id = 0;  // assigned by the store
    std::string target;
    std::string at;  // UTC, ISO 8601; assigned by the store
    int attempts = 0;
    std::string last_error;
    std::int64_t events = 0;
    std::string first_event_id;
    std::string last_event_id;
    std::string body;  // the last request body sent (JSON)
};

class Store {
  public:
    // Opens (creating if missing) the store at `path`, enables WAL and foreign
    // keys, and runs every pending migration in one transaction each. A file
    // from a newer orgsync is refused (schema_too_new) and left untouched.
    static Expected<std::unique_ptr<Store>> open(const std::filesystem::path& path);

    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // The schema version this build writes, and the one the file has.
    static int latest_schema_version();
    int schema_version() const;

    // Runs `body` in one transaction recorded under `source`. Commits when
    // `body` succeeds and every invariant holds; otherwise rolls back and
    // returns the first error. Serialised with other writes and reads: `body`
    // works through the Transaction it is given; a Store method called from
    // inside it fails with invalid_argument.
    Expected<void> write(std::string_view source,
                         const std::function<Expected<void>(Transaction&)>& body);

    // Runs `body` and the invariant checks exactly like write(), then rolls
    // back whatever happened: the answer to "would this write succeed?".
    Expected<void> check_write(std::string_view source,
                               const std::function<Expected<void>(Transaction&)>& body);

    // The current decision snapshot: immutable, safe to keep and read from any
    // thread; never blocks.
    std::shared_ptr<const Snapshot> snapshot() const;

    // Reads (from SQLite, consistent at the time of the call).
    Expected<std::optional<Org>> find_org(std::string_view slug) const;
    Expected<std::vector<Org>> list_orgs() const;
    Expected<std::optional<User>> find_user(std::string_view email) const;
    Expected<std::optional<User>> find_user_by_external_id(std::string_view source,
                                                           std::string_view kind,
                                                           std::string_view value) const;
    Expected<std::optional<Membership>> membership(OrgId org, UserId user) const;
    Expected<std::vector<Membership>> list_members(OrgId org) const;
    Expected<std::vector<Group>> list_groups(OrgId org) const;
    Expected<std::optional<Group>> find_group(OrgId org, std::string_view name) const;
    Expected<std::vector<std::string>> group_members(GroupId group) const;  // emails
    Expected<std::vector<Project>> list_projects(OrgId org) const;
    Expected<std::optional<Project>> find_project(OrgId org, std::string_view slug) const;
    Expected<std::optional<Dataset>> find_dataset(OrgId org, std::string_view slug) const;
    Expected<std::vector<ProjectGrant>> list_project_grants(ProjectId project) const;
    Expected<std::vector<DatasetGrant>> list_dataset_grants(DatasetId dataset) const;
    Expected<std::vector<SourceUser>> list_source_users(std::string_view source) const;
    Expected<std::vector<SourceGroup>> list_source_groups(std::string_view source) const;
    Expected<std::vector<AuditEvent>> audit_events(std::int64_t after_id, int limit) const;
    Expected<SourceAssertions> source_assertions(std::string_view source) const;
    Expected<std::vector<UserState>> list_users() const;
    // The addresses of the accounts that are disabled.
    Expected<StringSet> inactive_users() const;
    // Canonical addresses that a source other than `source` mirrors as
    // disabled, each with those sources (which of them may disable the
    // account is the mapping's to say: mapping::speaks_for_account).
    using DisabledBy = std::unordered_map<std::string, std::vector<std::string>>;
    Expected<DisabledBy> disabled_elsewhere(std::string_view source) const;
    // The users one source knows by an external id of `kind`: value → email.
    Expected<std::unordered_map<std::string, std::string>> external_ids(
        std::string_view source, std::string_view kind) const;
    // The connector's resume point for `source` (a syncrepl cookie, a highest
    // uSNChanged), as last committed with its mirror; nullopt when there is
    // none (never synced, or the last full read gave none).
    Expected<std::optional<std::string>> source_cursor(std::string_view source) const;

    // The store's generation: raised by every committed write that changed
    // a row, so two equal readings mean nothing was committed in between.
    Expected<std::int64_t> generation() const;
    // The summary that Transaction::mark_settled recorded for `source`,
    // when it was recorded under `key` and the store is still at the
    // generation that transaction left: the plan under `key` of the mirror
    // that transaction left is empty. nullopt otherwise.
    Expected<std::optional<std::string>> settled_summary(std::string_view source,
                                                         std::string_view key,
                                                         std::int64_t generation) const;

    // Scoped reads for incremental syncs: each costs time in proportion to
    // what it is asked about, not to the size of the mirror or the store.
    // Mirrored users with these external ids (absent ones are skipped).
    Expected<std::vector<SourceUser>> find_source_users(
        std::string_view source, const std::vector<std::string>& external_ids) const;
    // Mirrored users whose canonical address is one of `emails`.
    Expected<std::vector<SourceUser>> source_users_with_email(
        std::string_view source, const std::vector<std::string>& emails) const;
    // Mirrored groups with these external ids, or with these names; with
    // their member lists when `with_members`.
    Expected<std::vector<SourceGroup>> find_source_groups(
        std::string_view source, const std::vector<std::string>& external_ids,
        bool with_members) const;
    Expected<std::vector<SourceGroup>> source_groups_named(std::string_view source,
                                                           const std::vector<std::string>& names,
                                                           bool with_members) const;
    // (group external id, member id) for every mirrored group membership of
    // these users, by member id then group id: one lookup per user in the
    // member index (source_member_groups) that put_source_group keeps.
    Expected<std::vector<std::pair<std::string, std::string>>> source_memberships_of(
        std::string_view source, const std::vector<std::string>& member_ids) const;
    // What `source` asserts about these users (by canonical address: their
    // memberships and group memberships) and these groups (by name: their
    // grants).
    Expected<SourceAssertions> source_assertions_for(
        std::string_view source, const std::vector<std::string>& emails,
        const std::vector<std::string>& group_names) const;
    // How many memberships `source` asserts, by org slug.
    Expected<std::map<std::string, std::size_t>> source_member_counts(
        std::string_view source) const;
    // The digest of every mirrored user and group of `source`, by external
    // id: what a full run compares a fetch with, in a fraction of the
    // memory of the mirror itself.
    Expected<std::unordered_map<std::string, MirrorDigest>> source_user_digests(
        std::string_view source) const;
    Expected<std::unordered_map<std::string, MirrorDigest>> source_group_digests(
        std::string_view source) const;
    // How many users the source's mirror holds.
    Expected<std::size_t> source_user_count(std::string_view source) const;
    Expected<std::size_t> source_group_count(std::string_view source) const;

    // What a SCIM server looks records up by, in a mirror whose attributes
    // are SCIM resources (indexed since schema v5): the attributes'
    // `userName` compared folding ASCII case (users), the group's name
    // compared folding ASCII case (groups), and the attributes'
    // `externalId` compared exactly (both).
    enum class MirrorKey : std::uint8_t { user_name, display_name, client_id };
    // The records of `source` whose `key` equals `value`, by external id;
    // invalid_argument for a key the record kind does not have.
    Expected<std::vector<SourceUser>> find_source_users_by(std::string_view source, MirrorKey key,
                                                           std::string_view value) const;
    Expected<std::vector<SourceGroup>> find_source_groups_by(std::string_view source, MirrorKey key,
                                                             std::string_view value,
                                                             bool with_members) const;
    // One page of the source's records in external-id order: `limit` records
    // after skipping `offset`.
    Expected<std::vector<SourceUser>> source_users_page(std::string_view source, std::size_t offset,
                                                        std::size_t limit) const;
    Expected<std::vector<SourceGroup>> source_groups_page(std::string_view source,
                                                          std::size_t offset, std::size_t limit,
                                                          bool with_members) const;
    // The users with these canonical addresses (absent ones are skipped).
    Expected<std::vector<UserState>> find_users(const std::vector<std::string>& emails) const;
    // external_ids() and disabled_elsewhere() for these values / addresses.
    Expected<std::unordered_map<std::string, std::string>> external_ids(
        std::string_view source, std::string_view kind,
        const std::vector<std::string>& values) const;
    Expected<DisabledBy> disabled_elsewhere(std::string_view source,
                                            const std::vector<std::string>& emails) const;

    // The most recent runs of `source` (every source when empty), newest first.
    Expected<std::vector<SyncRun>> sync_runs(std::string_view source, int limit) const;
    // Outbox rows not yet delivered: one event each, or a batch of up to
    // 1,000 events written by a bulk call (see Transaction::add_members).
    Expected<std::int64_t> outbox_depth() const;

    // ---- Outbox delivery (daemon/outbox_delivery.hpp) ----------------------
    // The committed state of `target`. A target seen for the first time
    // starts at the oldest row not yet delivered to every target (so with
    // no target before, at the start of the outbox); this first call writes
    // its row.
    Expected<DeliveryState> delivery_state(std::string_view target);
    // Every target's state, by URL (removed targets included), for status.
    Expected<std::vector<DeliveryState>> delivery_states() const;
    // Outbox rows from `from` on (the row at from.row included whole, even
    // when from.offset skips part of it), in id order, stopping once the
    // events past `from` reach `max_events`.
    Expected<std::vector<OutboxRow>> outbox_rows(OutboxPosition from,
                                                 std::int64_t max_events) const;
    // Commits that `target` is done with every event before `next`:
    // `events` more of them acknowledged, or, with `dead_letter`, given up
    // on and stored. Resets attempts. Rows that every target of `targets`
    // is done with get their delivered_at (outbox_depth stops counting
    // them).
    Expected<void> advance_delivery(std::string_view target, OutboxPosition next,
                                    std::int64_t events,
                                    const std::optional<DeadLetter>& dead_letter,
                                    const std::vector<std::string>& targets);
    // Commits a failed request: the attempt count, when the next is due and
    // why it failed; the outbox rows first_row..last_row count one more
    // attempt.
    Expected<void> delivery_failed(std::string_view target, int attempts, std::int64_t retry_at_ms,
                                   std::string_view error, std::int64_t first_row,
                                   std::int64_t last_row);
    // Dead letters of `target` (every target when empty) with id > after_id,
    // oldest first.
    Expected<std::vector<DeadLetter>> dead_letters(std::string_view target, std::int64_t after_id,
                                                   int limit) const;

  private:
    Expected<void> run_write(std::string_view source,
                             const std::function<Expected<void>(Transaction&)>& body, bool commit);

    struct Impl;
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace orgsync::directory
