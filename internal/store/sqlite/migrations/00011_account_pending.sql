-- An ensure whose outcome is unknown (a timeout, a crash before the answer
-- was recorded) leaves the account "pending": it may exist at the target,
-- so a leaver's delivery must find and disable it rather than assume
-- there is nothing to take away.

-- +goose Up
ALTER TABLE accounts ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));

-- +goose Down
ALTER TABLE accounts DROP COLUMN pending;
