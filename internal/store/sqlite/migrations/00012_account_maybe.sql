-- Entitlements whose grant was sent but not confirmed (the answer was lost):
-- they may be held at the target, so they are revoked when no longer
-- wanted, and granted again (idempotently) while they are.

-- +goose Up
ALTER TABLE accounts ADD COLUMN maybe TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(maybe));

-- +goose Down
ALTER TABLE accounts DROP COLUMN maybe;
