-- Approval requests for privileged roles: a role's grants wait here until
-- enough distinct approvers decide. Grants and decisions are JSON owned by
-- package workflows, stored exactly as given. Times are INTEGER unix
-- nanoseconds (UTC).

-- +goose Up
CREATE TABLE approvals (
    id           TEXT    PRIMARY KEY,
    identity_id  TEXT    NOT NULL REFERENCES identities (id),
    role         TEXT    NOT NULL,
    grants       TEXT    NOT NULL CHECK (json_valid(grants)),
    required     INTEGER NOT NULL CHECK (required >= 1), -- distinct approvers needed
    state        TEXT    NOT NULL CHECK (state IN
                     ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
    requested_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decisions    TEXT    NULL CHECK (decisions IS NULL OR json_valid(decisions)), -- NULL: none
    updated      INTEGER NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0)
) STRICT;

-- Approvals by state (with or without an identity), by requested_at then id.
CREATE INDEX approvals_state ON approvals (state, requested_at, id);

-- Approvals of one identity, by requested_at then id.
CREATE INDEX approvals_identity ON approvals (identity_id, requested_at, id);

-- +goose Down
DROP TABLE approvals;
