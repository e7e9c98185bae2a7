-- Per-type resource counts, maintained by triggers in the transaction that
-- inserts or deletes the resource, so an unfiltered list's totalResults is
-- one row read instead of a count(*) over every user.

-- +goose Up
CREATE TABLE resource_counts (
    type TEXT    PRIMARY KEY CHECK (type IN ('User', 'Group')),
    n    INTEGER NOT NULL CHECK (n >= 0)
) STRICT;

INSERT INTO resource_counts (type, n)
    SELECT 'User', count(*) FROM resources WHERE type = 'User';
INSERT INTO resource_counts (type, n)
    SELECT 'Group', count(*) FROM resources WHERE type = 'Group';

-- +goose StatementBegin
CREATE TRIGGER resources_count_insert AFTER INSERT ON resources
BEGIN
    UPDATE resource_counts SET n = n + 1 WHERE type = NEW.type;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER resources_count_delete AFTER DELETE ON resources
BEGIN
    UPDATE resource_counts SET n = n - 1 WHERE type = OLD.type;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER resources_type_fixed BEFORE UPDATE OF type ON resources
BEGIN
    SELECT RAISE(ABORT, 'a resource cannot change type');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER resources_type_fixed;
DROP TRIGGER resources_count_delete;
DROP TRIGGER resources_count_insert;
DROP TABLE resource_counts;
