#include "directory/schema.hpp"

#include <array>

namespace orgsync::directory::schema {
namespace {

// Version 1: organizations, users, memberships with their per-source
// assertions, groups, projects, datasets and grants. User grants reference
// the membership, so ending a membership removes them (invariant 6).
constexpr std::string_view k_v1 = R"sql(
CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    email        TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

CREATE TABLE user_external_ids (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (source, kind, value)
);
CREATE INDEX user_external_ids_by_user ON user_external_ids (user_id);

CREATE TABLE orgs (
    id        INTEGER PRIMARY KEY,
    slug      TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL,
    workforce INTEGER NOT NULL DEFAULT 0 CHECK (workforce IN (0, 1)),
    owner_id  INTEGER NOT NULL REFERENCES users (id)
);

CREATE TABLE memberships (
    org_id    INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id),
    user_type TEXT NOT NULL CHECK (user_type IN ('internal', 'workforce', 'external')),
    role      TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE membership_assertions (
    org_id    INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    source    TEXT NOT NULL,
    user_type TEXT NOT NULL CHECK (user_type IN ('internal', 'workforce', 'external')),
    role      TEXT NOT NULL CHECK (role IN ('admin', 'member', 'guest')),
    PRIMARY KEY (org_id, user_id, source),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE groups (
    id     INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    org_id   INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    source   TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id, source),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX group_members_by_member ON group_members (org_id, user_id);

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    org_id     INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    slug       TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    UNIQUE (org_id, slug)
);

CREATE TABLE project_tags (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (project_id, tag)
) WITHOUT ROWID;

CREATE TABLE datasets (
    id     INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    slug   TEXT NOT NULL,
    UNIQUE (org_id, slug)
);

CREATE TABLE dataset_projects (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    PRIMARY KEY (dataset_id, project_id)
) WITHOUT ROWID;

CREATE TABLE project_user_grants (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    org_id     INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('read', 'write', 'admin')),
    PRIMARY KEY (project_id, user_id, source),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX project_user_grants_by_member ON project_user_grants (org_id, user_id);

CREATE TABLE project_group_grants (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('read', 'write', 'admin')),
    PRIMARY KEY (project_id, group_id, source)
) WITHOUT ROWID;
CREATE INDEX project_group_grants_by_group ON project_group_grants (group_id);

CREATE TABLE dataset_user_grants (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    org_id     INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    source     TEXT NOT NULL,
    access     TEXT NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (dataset_id, user_id, source),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX dataset_user_grants_by_member ON dataset_user_grants (org_id, user_id);

CREATE TABLE dataset_group_grants (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    access     TEXT NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (dataset_id, group_id, source)
) WITHOUT ROWID;
CREATE INDEX dataset_group_grants_by_group ON dataset_group_grants (group_id);
)sql";

// Version 2: the per-source mirrors (DESIGN §2) and the audit log.
constexpr std::string_view k_v2 = R"sql(
CREATE TABLE source_users (
    source       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    attributes   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;

CREATE TABLE source_groups (
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;

CREATE TABLE source_group_members (
    source            TEXT NOT NULL,
    group_external_id TEXT NOT NULL,
    member_id         TEXT NOT NULL,
    PRIMARY KEY (source, group_external_id, member_id),
    FOREIGN KEY (source, group_external_id)
        REFERENCES source_groups (source, external_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    source  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    org     TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
);
)sql";

// Version 3: the outbox of change events for outbound webhooks (written in
// the same transaction as the change) and the record of sync runs.
constexpr std::string_view k_v3 = R"sql(
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    org          TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    result      TEXT NOT NULL CHECK (result IN ('applied', 'blocked', 'failed')),
    message     TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(summary)),
    plan        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(plan))
);
CREATE INDEX sync_runs_by_source ON sync_runs (source, id);
)sql";

// Version 4: incremental syncs. Each source's resume point (`cursor`: a
// syncrepl cookie, a highest uSNChanged) is written in the same transaction
// as the mirror it describes. Mirrored users carry their canonical address
// (`email_key`, '' when it is not a valid address; filled in by Store::open
// for rows written before), and the mirror is indexed by address, member
// and group name so that a delta reads only the records it touches.
constexpr std::string_view k_v4 = R"sql(
CREATE TABLE source_state (
    source     TEXT PRIMARY KEY,
    cursor     TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

ALTER TABLE source_users ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
CREATE INDEX source_users_by_email ON source_users (email_key);
CREATE INDEX source_group_members_by_member ON source_group_members (source, member_id);
CREATE INDEX source_groups_by_name ON source_groups (source, name);

ALTER TABLE sync_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'delta'));
)sql";

// Version 5: lookups a SCIM server answers from the mirror (RFC 7644
// §3.4.2): a user by userName (unique per source, compared folding ASCII
// case, as SQLite's lower() does), any record by the client's externalId, and
// a group by displayName folding case. The SCIM resource is the mirrored
// record's attributes, so these are expression indexes over it; rows of
// other sources have no such keys and index as NULL.
constexpr std::string_view k_v5 = R"sql(
CREATE INDEX source_users_by_user_name
    ON source_users (source, lower(json_extract(attributes, '$.userName')));
CREATE INDEX source_users_by_client_id
    ON source_users (source, json_extract(attributes, '$.externalId'));
CREATE INDEX source_groups_by_client_id
    ON source_groups (source, json_extract(attributes, '$.externalId'));
CREATE INDEX source_groups_by_folded_name ON source_groups (source, lower(name));
)sql";

// Version 6: outbound webhook delivery (daemon/outbox_delivery.hpp): where each target
// stands in the outbox (the next event: row and offset in a batch row), its
// failed attempts, and the requests given up on. Self-contained, so its
// number is the only thing to change when migrations are reordered.
constexpr std::string_view k_webhook_delivery = R"sql(
CREATE TABLE webhook_delivery (
    target        TEXT PRIMARY KEY,
    next_row      INTEGER NOT NULL,
    next_offset   INTEGER NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry_at_ms   INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    delivered     INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

CREATE TABLE webhook_dead_letters (
    id             INTEGER PRIMARY KEY,
    target         TEXT NOT NULL,
    at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    attempts       INTEGER NOT NULL,
    last_error     TEXT NOT NULL DEFAULT '',
    events         INTEGER NOT NULL,
    first_event_id TEXT NOT NULL,
    last_event_id  TEXT NOT NULL,
    body           TEXT NOT NULL CHECK (json_valid(body))
);
CREATE INDEX webhook_dead_letters_by_target ON webhook_dead_letters (target, id);
)sql";

// Version 7: a mirrored group keeps its member list in one value
// (`members`: the member ids, sorted and unique, each followed by a NUL
// byte) instead of one row per member. A first sync of a large directory
// wrote 300,000 member rows with two b-trees (the rows by group, the index
// by member); now it writes one list per group, beside `source_groups`
// (rows of a WITHOUT ROWID table should stay small), that goes with its
// group. The groups of a member are found through `source_member_groups`,
// one b-tree keyed by member (Store::source_memberships_of: a user's
// groups for incremental syncs and SCIM); Transaction::put_source_group
// writes only the members a list gained or lost there.
constexpr std::string_view k_packed_members = R"sql(
CREATE TABLE source_group_member_lists (
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    members     BLOB NOT NULL,
    PRIMARY KEY (source, external_id),
    FOREIGN KEY (source, external_id)
        REFERENCES source_groups (source, external_id) ON DELETE CASCADE
);
INSERT INTO source_group_member_lists (source, external_id, members)
SELECT g.source, g.external_id, coalesce((
    SELECT CAST(group_concat(member_id || char(0), '') AS BLOB) FROM (
        SELECT member_id FROM source_group_members m
        WHERE m.source = g.source AND m.group_external_id = g.external_id
        ORDER BY member_id)), x'')
FROM source_groups g;

CREATE TABLE source_member_groups (
    source            TEXT NOT NULL,
    member_id         TEXT NOT NULL,
    group_external_id TEXT NOT NULL,
    PRIMARY KEY (source, member_id, group_external_id)
) WITHOUT ROWID;
INSERT INTO source_member_groups (source, member_id, group_external_id)
SELECT source, member_id, group_external_id FROM source_group_members;

DROP TABLE source_group_members;
)sql";

// Version 8: settled sources. `store_generation` counts the committed
// writes that changed a row (Store::write raises it); `source_settled`
// records, per source, that a full sync's plan was empty for the store at
// that generation, under a key naming the mapping and the planner, so that
// a full sync that reads an unchanged mirror into an unchanged store can
// skip planning (Store::settled_summary).
constexpr std::string_view k_settled_sources = R"sql(
CREATE TABLE store_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO store_generation (id, value) VALUES (1, 0);

CREATE TABLE source_settled (
    source     TEXT PRIMARY KEY,
    key        TEXT NOT NULL,
    generation INTEGER NOT NULL,
    summary    TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
)sql";

constexpr std::array<Migration, 8> k_migrations{{
    {1, "organizations, users, memberships, groups, projects, datasets, grants", k_v1},
    {2, "source mirrors and audit log", k_v2},
    {3, "outbox and sync runs", k_v3},
    {4, "source cursors, mirror indexes for incremental syncs", k_v4},
    {5, "mirror indexes for SCIM lookups", k_v5},
    {6, "outbound webhook delivery: per-target progress, dead letters", k_webhook_delivery},
    {7, "mirrored group members packed into one value per group, member index", k_packed_members},
    {8, "store generation and settled sources", k_settled_sources},
}};

}  // namespace

std::span<const Migration> migrations() {
    return k_migrations;
}

}  // namespace orgsync::directory::schema
