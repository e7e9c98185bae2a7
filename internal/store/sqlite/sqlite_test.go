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

	"github.com/jmlgate/jmlgate/internal/audit"
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

// TestRejectsUnstorableIdentities checks the identity validation the
// contract leaves to engines; each failed put writes nothing.
func TestRejectsUnstorableIdentities(t *testing.T) {
	t.Parallel()
	s := openMigrated(t)
	ctx := t.Context()
	ok := func() *store.Identity {
		now := time.Now()
		return &store.Identity{ID: "i", UserName: "u", State: store.StateActive, Version: 1, Created: now, Updated: now}
	}
	tests := map[string]func(*store.Identity){
		"empty id":            func(i *store.Identity) { i.ID = "" },
		"unknown state":       func(i *store.Identity) { i.State = "Active" },
		"empty state":         func(i *store.Identity) { i.State = "" },
		"desired not JSON":    func(i *store.Identity) { i.Desired = []byte(`[1,`) },
		"zero created":        func(i *store.Identity) { i.Created = time.Time{} },
		"zero updated":        func(i *store.Identity) { i.Updated = time.Time{} },
		"year 3000 nextCheck": func(i *store.Identity) { i.NextCheck = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	for name, mutate := range tests {
		i := ok()
		mutate(i)
		err := s.Update(ctx, func(tx store.Tx) error { return tx.PutIdentity(ctx, i) })
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	if err := s.View(ctx, func(tx store.ReadTx) error {
		if got, err := tx.ListIdentities(ctx, store.IdentityQuery{Limit: 10}); err != nil || len(got) != 0 {
			t.Errorf("nothing should be stored: ListIdentities = %d identities, %v", len(got), err)
		}
		if _, err := tx.ListIdentities(ctx, store.IdentityQuery{Limit: 0}); err == nil {
			t.Error("ListIdentities with Limit 0: no error")
		}
		if _, err := tx.DueIdentities(ctx, time.Time{}, 10); err == nil {
			t.Error("DueIdentities at the zero time: no error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
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

// BenchmarkIdentityReads measures the lifecycle engine's and the identity
// API's reads over 100,000 identities (1% due, a fifth awaiting MFA) and
// 100,000 audit records about 10,000 users.
func BenchmarkIdentityReads(b *testing.B) {
	const identities, records, users = 100_000, 100_000, 10_000
	s := openMigrated(b)
	ctx := b.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	states := []string{store.StateActive, store.StateAwaitingMFA, store.StateActive, store.StatePreHire, store.StateTerminated}
	desired := []byte(`[{"connector":"github","entitlement":"team:sre"},{"connector":"slack","entitlement":"member"}]`)
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range identities {
			id := &store.Identity{ID: fmt.Sprintf("%08d", i), UserName: fmt.Sprintf("user%08d", i),
				State: states[i%len(states)], Desired: desired, Version: 1, Created: now, Updated: now}
			if i%10 == 0 { // 10% have a check pending, a tenth of them due
				id.NextCheck = now.Add(time.Duration(i%100-10) * time.Hour)
			}
			if err := tx.PutIdentity(ctx, id); err != nil {
				return err
			}
		}
		for seq := int64(1); seq <= records; seq++ {
			if err := tx.AppendAudit(ctx, &store.AuditRecord{Seq: seq, Time: now, Actor: "bench", Action: "user.patch",
				ResourceType: store.TypeUser, ResourceID: fmt.Sprintf("%08d", seq%users),
				AfterDigest: strings.Repeat("ab", 32), Hash: make([]byte, 32)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	run := func(name string, fn func(tx store.ReadTx, i int) (int, error), want int) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				err := s.View(ctx, func(tx store.ReadTx) error {
					n, err := fn(tx, i)
					if err == nil && n != want {
						err = fmt.Errorf("%d results, want %d", n, want)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("GetIdentity", func(tx store.ReadTx, i int) (int, error) {
		_, err := tx.GetIdentity(ctx, fmt.Sprintf("%08d", i*7919%identities))
		return 1, err
	}, 1)
	run("DueIdentities100", func(tx store.ReadTx, _ int) (int, error) {
		got, err := tx.DueIdentities(ctx, now, 100)
		return len(got), err
	}, 100)
	run("ListIdentitiesByState50", func(tx store.ReadTx, i int) (int, error) {
		got, err := tx.ListIdentities(ctx, store.IdentityQuery{State: store.StateAwaitingMFA,
			After: fmt.Sprintf("%08d", i*7919%(identities/2)), Limit: 50})
		return len(got), err
	}, 50)
	run("AuditFor", func(tx store.ReadTx, i int) (int, error) {
		got, err := tx.AuditFor(ctx, store.TypeUser, fmt.Sprintf("%08d", i*7919%users), 0, 50)
		return len(got), err
	}, records/users)
}

// Another process (the CLI creating a token while the gateway runs) may
// append to the audit chain between two of this store's writes; the next
// write must link to that record, not to one remembered from before.
func TestAuditChainSharedWithAnotherProcess(t *testing.T) {
	t.Parallel()
	gateway, path := openFile(t)
	if err := gateway.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	cli, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for i, s := range []*sqlite.Store{gateway, gateway, cli, gateway, cli, cli, gateway} {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			_, err := audit.Append(t.Context(), tx, time.Now(), audit.Entry{Actor: "t", Action: fmt.Sprint("write ", i), ResourceType: "Test", ResourceID: "x"})
			return err
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if n, err := audit.VerifyStore(t.Context(), gateway); err != nil || n != 7 {
		t.Fatalf("chain: %d records, %v", n, err)
	}
}
