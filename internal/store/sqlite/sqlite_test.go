package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/internal/store/storetest"
)

// openFile opens a store on a fresh file, unmigrated, closed at cleanup.
func openFile(tb testing.TB) (*sqlite.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "jmlgate.db")
	s, err := sqlite.Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func openMigrated(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, _ := openFile(tb)
	if err := s.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openMigrated(t) })
}

func TestReadyNeedsMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, path := openFile(t)
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready before Migrate: no error")
	}
	// Ready wrote nothing, so it still fails.
	if err := s.Ready(ctx); err == nil {
		t.Fatal("second Ready before Migrate: no error")
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after Migrate: %v", err)
	}

	// A second store on the migrated file is ready without migrating.
	s2, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if err := s2.Ready(ctx); err != nil {
		t.Fatalf("Ready on reopened file: %v", err)
	}
}

func TestOpenRejectsPaths(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", path)
		}
	}
}

// TestFileSettings checks what the writer leaves in the file: WAL mode and
// the schema, seen from an independent connection.
func TestFileSettings(t *testing.T) {
	t.Parallel()
	s, path := openFile(t)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	// The audit table refuses edits, whoever connects.
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		return tx.AppendAudit(t.Context(), &store.AuditRecord{Seq: 1, Time: time.Now(), Hash: []byte{1}})
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit SET actor = 'x'`, `DELETE FROM audit`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
}

// TestRejectsUnstorableValues checks validation the contract leaves to
// engines: times int64 nanoseconds cannot hold and unknown types.
func TestRejectsUnstorableValues(t *testing.T) {
	t.Parallel()
	s := openMigrated(t)
	ctx := t.Context()
	ok := func() *store.Resource {
		now := time.Now()
		return &store.Resource{Type: store.TypeUser, ID: "u", Name: "u", Display: "u", Version: 1, Created: now, LastModified: now, Data: []byte(`{}`)}
	}
	tests := map[string]func(*store.Resource){
		"zero created":       func(r *store.Resource) { r.Created = time.Time{} },
		"year 3000 modified": func(r *store.Resource) { r.LastModified = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"unknown type":       func(r *store.Resource) { r.Type = "Device" },
		"empty id":           func(r *store.Resource) { r.ID = "" },
	}
	for name, mutate := range tests {
		r := ok()
		mutate(r)
		err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateResource(ctx, r) })
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
}

// BenchmarkCreate measures one SCIM-create-shaped write transaction (a user
// plus its audit record) with 16 goroutines competing for the writer.
func BenchmarkCreate(b *testing.B) {
	s := openMigrated(b)
	ctx := b.Context()
	var next atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			err := s.Update(ctx, func(tx store.Tx) error {
				now := time.Now()
				id := fmt.Sprintf("%016x", n)
				r := &store.Resource{Type: store.TypeUser, ID: id, Name: "user" + id, Display: "User " + id,
					Version: 1, Created: now, LastModified: now,
					Data: fmt.Appendf(nil, `{"userName":"user%s","active":true,"emails":[{"value":"%s@example.com"}]}`, id, id)}
				if err := tx.CreateResource(ctx, r); err != nil {
					return err
				}
				rec := &store.AuditRecord{Seq: 1, Time: now, Actor: "bench", Action: "user.create",
					ResourceType: store.TypeUser, ResourceID: id, AfterDigest: strings.Repeat("ab", 32), Hash: make([]byte, 32)}
				head, err := tx.AuditHead(ctx)
				switch {
				case err == nil:
					rec.Seq, rec.PrevHash = head.Seq+1, head.Hash
				case !errors.Is(err, store.ErrNotFound):
					return err
				}
				return tx.AppendAudit(ctx, rec)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLookupByName measures a userName lookup (a SCIM `userName eq`
// filter) in a View over 100,000 users.
func BenchmarkLookupByName(b *testing.B) {
	const users = 100_000
	s := openMigrated(b)
	ctx := b.Context()
	now := time.Now()
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range users {
			id := fmt.Sprintf("%08d", i)
			r := &store.Resource{Type: store.TypeUser, ID: id, Name: "User" + id, Display: "User " + id,
				Version: 1, Created: now, LastModified: now, Data: []byte(`{"active":true}`)}
			if err := tx.CreateResource(ctx, r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	lookup := func(b *testing.B, i int) {
		name := fmt.Sprintf("user%08d", i%users) // other case than stored
		err := s.View(ctx, func(tx store.ReadTx) error {
			got, total, err := tx.ListResources(ctx, store.ListQuery{
				Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: name, Limit: -1,
			})
			if err == nil && (total != 1 || len(got) != 1) {
				err = fmt.Errorf("lookup %q: %d results", name, total)
			}
			return err
		})
		if err != nil {
			b.Error(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			lookup(b, i*7919)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lookup(b, int(n.Add(1))*7919)
			}
		})
	})
}
