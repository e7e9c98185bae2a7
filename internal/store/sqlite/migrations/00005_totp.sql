-- Built-in TOTP authenticators (RFC 6238), at most one per identity. The
-- secret is stored sealed by the vault, never in clear. Times are INTEGER unix
-- nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE totp (
    identity_id  TEXT    PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    secret       TEXT    NOT NULL, -- JWE compact, sealed by internal/secrets
    created      INTEGER NOT NULL,
    verified     INTEGER,          -- NULL until the first accepted code
    last_step    INTEGER NOT NULL, -- last accepted time step (replay guard)
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    locked_until INTEGER,          -- NULL: not locked
    version      INTEGER NOT NULL CHECK (version > 0)
) STRICT;

-- +goose Down
DROP TABLE totp;
