-- The delivery queue (level-triggered jobs "make connector C match the
-- desired access of identity I"), what jmlgate last knew of each account in
-- each connector, and the time a leaver's revocation completed. Times are
-- INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE deliveries (
    -- AUTOINCREMENT: an id is never reused, even after the newest row is
    -- deleted, so a finished job's id never names a later job and an After
    -- cursor never skips one.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_id TEXT    NOT NULL REFERENCES identities (id),
    connector   TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'dead')),
    priority    INTEGER NOT NULL,    -- lower runs first
    attempts    INTEGER NOT NULL CHECK (attempts >= 0),
    run_at      INTEGER NOT NULL,    -- not before
    enqueued    INTEGER NOT NULL,    -- the oldest change the job covers
    last_error  TEXT    NOT NULL DEFAULT '',
    updated     INTEGER NOT NULL
) STRICT;

-- At most one pending delivery per identity and connector: EnqueueDelivery
-- upserts on it. Running and dead rows are not in it.
CREATE UNIQUE INDEX deliveries_pending ON deliveries (identity_id, connector) WHERE state = 'pending';

-- ClaimDeliveries walks one connector's pending rows in claim order (the
-- rowid id ends every index entry); QueueStats and connector listings
-- group and filter on its prefix.
CREATE INDEX deliveries_claim ON deliveries (connector, state, priority, run_at);

-- One pair's rows by state: the "already running" check of claims, the dead
-- rows FinishDelivery clears, and listings by identity, in id order.
CREATE INDEX deliveries_pair ON deliveries (identity_id, connector, state);

CREATE TABLE accounts (
    identity_id  TEXT    NOT NULL REFERENCES identities (id),
    connector    TEXT    NOT NULL,
    ref          TEXT    NOT NULL, -- '' if never created
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    entitlements TEXT    NOT NULL CHECK (json_valid(entitlements)), -- sorted JSON array of strings
    updated      INTEGER NOT NULL,
    PRIMARY KEY (identity_id, connector)
) STRICT, WITHOUT ROWID;

-- ConnectorAccounts: one connector's accounts in identity order.
CREATE INDEX accounts_connector ON accounts (connector, identity_id);

-- When the last connector acknowledged a leaver's revocation; NULL: zero.
ALTER TABLE identities ADD COLUMN revoked_at INTEGER;

-- +goose Down
ALTER TABLE identities DROP COLUMN revoked_at;
DROP TABLE accounts;
DROP TABLE deliveries;
