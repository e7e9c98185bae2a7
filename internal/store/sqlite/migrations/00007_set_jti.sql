-- Replay protection for Security Event Tokens (RFC 8417/8935): the jti of
-- every accepted SET, per issuer, until the token's iat window closes.
-- expires is INTEGER unix nanoseconds (UTC).

-- +goose Up
CREATE TABLE set_jti (
    issuer  TEXT    NOT NULL,
    jti     TEXT    NOT NULL,
    expires INTEGER NOT NULL, -- after this the pair counts as absent
    PRIMARY KEY (issuer, jti)
) STRICT;

-- The opportunistic purge finds expired rows without a scan.
CREATE INDEX set_jti_expires ON set_jti (expires);

-- +goose Down
DROP TABLE set_jti;
