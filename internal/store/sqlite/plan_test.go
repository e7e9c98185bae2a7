package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/internal/store"
)

// TestIndexedLookups pins the query plans the SCIM hot paths rely on: an
// IdP's userName / externalId / id lookup, and name lookups and sorts of
// either type, are answered from an index, never by scanning every row.
func TestIndexedLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		q     store.ListQuery
		index string
	}{
		{store.ListQuery{Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: "ada"}, "sqlite_autoindex_resources_2"}, // user_key UNIQUE
		{store.ListQuery{Type: store.TypeGroup, IndexAttr: store.IndexName, IndexValue: "sre"}, "resources_group_name"},
		{store.ListQuery{Type: store.TypeUser, IndexAttr: store.IndexExternalID, IndexValue: "e1"}, "resources_type_external"},
		{store.ListQuery{Type: store.TypeUser, IndexAttr: store.IndexID, IndexValue: "x"}, "sqlite_autoindex_resources_1"}, // id UNIQUE
		{store.ListQuery{Type: store.TypeUser, Sort: store.SortName, Limit: 10}, "sqlite_autoindex_resources_2"},
		{store.ListQuery{Type: store.TypeUser, Sort: store.SortName, Descending: true, Limit: 10}, "sqlite_autoindex_resources_2"},
		{store.ListQuery{Type: store.TypeGroup, Sort: store.SortName, Limit: 10}, "resources_group_name"},
		{store.ListQuery{Type: store.TypeGroup, Sort: store.SortName, Descending: true, Limit: 10}, "resources_group_name"},
		{store.ListQuery{Type: store.TypeUser, Limit: 100}, "resources_type_seq"},
	}
	for _, c := range cases {
		p, err := planList(c.q)
		if err != nil {
			t.Fatal(err)
		}
		args := append([]any{}, p.args...)
		if p.countFirst {
			args = append(args, 10, 0)
		}
		rows, err := s.reader.QueryContext(ctx, "EXPLAIN QUERY PLAN "+p.pageSQL(c.q), args...)
		if err != nil {
			t.Fatalf("%+v: %v", c.q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, "INDEX "+c.index) || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want it to use %s without a sort", c.q, got, c.index)
		}
	}
}
