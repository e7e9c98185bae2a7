-- Time-bound MFA exceptions: while live, one lets an identity be active
-- without proven MFA. Rows are never deleted; ending one early sets ended.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE exceptions (
    id                    TEXT    PRIMARY KEY,
    identity_id           TEXT    NOT NULL REFERENCES identities (id),
    type                  TEXT    NOT NULL CHECK (type = 'mfa_bypass'),
    justification         TEXT    NOT NULL,
    compensating_controls TEXT    NOT NULL,
    owner                 TEXT    NOT NULL, -- who answers for it
    created_by            TEXT    NOT NULL, -- the approver's principal
    created               INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL, -- mandatory: no open-ended exception
    ended                 INTEGER NULL,     -- NULL unless ended early
    ended_by              TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Exceptions(identityID): one identity's exceptions by created, then id.
CREATE INDEX exceptions_identity ON exceptions (identity_id, created, id);

-- Exceptions(""): every exception by created, then id, without a sort.
CREATE INDEX exceptions_created ON exceptions (created, id);

-- +goose Down
DROP TABLE exceptions;
