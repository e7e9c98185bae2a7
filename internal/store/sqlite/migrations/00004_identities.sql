-- Lifecycle identities (one per SCIM user id, outliving the user) and the
-- per-resource view of the audit chain that an identity's history reads.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE identities (
    id              TEXT    PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN
                        ('pre_hire', 'awaiting_mfa', 'active', 'terminated', 'deleted')),
    start_date      INTEGER,
    end_date        INTEGER,
    mfa_method      TEXT    NOT NULL, -- '' when not enrolled
    mfa_enrolled_at INTEGER,
    -- JSON exactly as given by the lifecycle engine; NULL when it gave none.
    desired         TEXT    CHECK (desired IS NULL OR json_valid(desired)),
    leaver_at       INTEGER,
    next_check      INTEGER,          -- NULL: no time-driven transition pending
    version         INTEGER NOT NULL CHECK (version > 0),
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL
) STRICT;

-- DueIdentities: the earliest pending checks, ties by id, without a sort.
-- Identities with nothing pending are not in the index at all.
CREATE INDEX identities_due ON identities (next_check, id) WHERE next_check IS NOT NULL;

-- ListIdentities filtered by state, in id order.
CREATE INDEX identities_state ON identities (state, id);

-- AuditFor: one resource's records in sequence order.
CREATE INDEX audit_resource ON audit (resource_type, resource_id, seq);

-- +goose Down
DROP INDEX audit_resource;
DROP TABLE identities;
