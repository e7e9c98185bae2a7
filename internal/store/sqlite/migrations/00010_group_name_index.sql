-- Users are found and sorted by name through the unique user_key index
-- (user_key is the case-folded userName, NULL for groups), so the
-- (type, name_key, seq) index only served groups, yet every user insert and
-- rename paid for an entry on a random page of it. It becomes a partial
-- index of groups; group queries say `type = 'Group'` so SQLite can use it.

-- +goose Up
DROP INDEX resources_type_name;
CREATE INDEX resources_group_name ON resources (name_key, seq) WHERE type = 'Group';

-- +goose Down
DROP INDEX resources_group_name;
CREATE INDEX resources_type_name ON resources (type, name_key, seq);
