-- Every resource insert maintained eight B-trees. No SCIM request path
-- orders by display name, creation time or modification time through an
-- index (creation order is seq, served by resources_type_seq), so these
-- three only cost write throughput. The sorts still work; SQLite sorts the
-- selected rows instead.

-- +goose Up
DROP INDEX resources_type_display;
DROP INDEX resources_type_created;
DROP INDEX resources_type_modified;

-- +goose Down
CREATE INDEX resources_type_display ON resources (type, display_key, seq);
CREATE INDEX resources_type_created ON resources (type, created, seq);
CREATE INDEX resources_type_modified ON resources (type, modified, seq);
