-- Initial schema. Times are INTEGER unix nanoseconds (UTC) so they round-trip
-- exactly and sort numerically; NULL stands for the zero time where a time is
-- optional.

-- +goose Up
CREATE TABLE resources (
    -- seq aliases the rowid: it only grows, so it is the creation order.
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL CHECK (type IN ('User', 'Group')),
    external_id TEXT,             -- NULL when absent
    name        TEXT    NOT NULL, -- userName or group displayName
    name_key    TEXT    NOT NULL, -- case-folded name, computed by the engine
    -- name_key for users, NULL for groups: userName is unique among users,
    -- case-insensitively; group names are not. (A partial unique index would
    -- do the same but makes SQLite re-prepare every "type = ?" query.)
    user_key    TEXT    UNIQUE CHECK ((type = 'User') = (user_key IS NOT NULL)),
    display     TEXT    NOT NULL,
    display_key TEXT    NOT NULL, -- case-folded display, for sorting
    version     INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    modified    INTEGER NOT NULL,
    data        TEXT    NOT NULL  -- JSON object
) STRICT;

CREATE INDEX resources_type_name ON resources (type, name_key, seq);
CREATE INDEX resources_type_external ON resources (type, external_id, seq);
CREATE INDEX resources_type_seq ON resources (type, seq);
CREATE INDEX resources_type_display ON resources (type, display_key, seq);
CREATE INDEX resources_type_created ON resources (type, created, seq);
CREATE INDEX resources_type_modified ON resources (type, modified, seq);

CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX group_members_member ON group_members (member_id, group_id);

CREATE TABLE tokens (
    id      TEXT    PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    hash    BLOB    NOT NULL UNIQUE,
    scopes  TEXT    NOT NULL, -- JSON array of strings
    created INTEGER NOT NULL,
    expires INTEGER,          -- NULL: never
    revoked INTEGER           -- NULL: live
) STRICT;

CREATE TABLE audit (
    seq           INTEGER PRIMARY KEY CHECK (seq > 0),
    time          INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    before_digest TEXT    NOT NULL,
    after_digest  TEXT    NOT NULL,
    prev_hash     BLOB    NOT NULL,
    hash          BLOB    NOT NULL
) STRICT;

-- The audit chain is append-only through this engine.
-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit;
DROP TABLE tokens;
DROP TABLE group_members;
DROP TABLE resources;
