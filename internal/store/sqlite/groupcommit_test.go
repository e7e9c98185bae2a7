package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/store"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "gc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func userRes(id string) *store.Resource {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	return &store.Resource{Type: store.TypeUser, ID: id, Name: id + "@example.com", Display: id, Version: 1,
		Created: now, LastModified: now, Data: []byte(`{}`)}
}

func req(ctx context.Context, fn func(store.Tx) error) *writeReq {
	return &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
}

func createFn(id string) func(store.Tx) error {
	return func(tx store.Tx) error { return tx.CreateResource(context.Background(), userRes(id)) }
}

func exists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	var ok bool
	err := s.View(t.Context(), func(tx store.ReadTx) error {
		_, err := tx.GetResource(t.Context(), store.TypeUser, id)
		ok = err == nil
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// In one shared transaction, each function's failure is its own.
func TestBatchIsolatesFailures(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	gaveUp, giveUp := context.WithCancel(context.Background())
	boom := errors.New("boom")
	batch := []*writeReq{
		req(context.Background(), createFn("ok1")),
		req(context.Background(), func(tx store.Tx) error {
			if err := createFn("failed")(tx); err != nil {
				return err
			}
			return boom
		}),
		req(context.Background(), func(tx store.Tx) error {
			_ = createFn("panicked")(tx)
			panic("kaboom")
		}),
		req(canceled, createFn("never-started")),
		req(gaveUp, func(tx store.Tx) error {
			err := createFn("abandoned")(tx)
			giveUp()
			return err
		}),
		// Sees ok1 (same transaction), and not "failed" (rolled back).
		req(context.Background(), func(tx store.Tx) error {
			if _, err := tx.GetResource(context.Background(), store.TypeUser, "ok1"); err != nil {
				return err
			}
			if _, err := tx.GetResource(context.Background(), store.TypeUser, "failed"); !errors.Is(err, store.ErrNotFound) {
				return errors.New("saw a rolled-back write")
			}
			return createFn("ok2")(tx)
		}),
	}
	s.runBatch(batch)
	for i, r := range batch {
		select {
		case <-r.done:
		default:
			t.Fatalf("request %d not completed", i)
		}
	}
	if batch[0].err != nil || batch[5].err != nil {
		t.Fatalf("successful functions failed: %v, %v", batch[0].err, batch[5].err)
	}
	if !errors.Is(batch[1].err, boom) || !batch[2].panicked || batch[2].pval != "kaboom" ||
		!errors.Is(batch[3].err, context.Canceled) || !errors.Is(batch[4].err, context.Canceled) {
		t.Fatalf("outcomes: %v / %v %v / %v / %v", batch[1].err, batch[2].panicked, batch[2].pval, batch[3].err, batch[4].err)
	}
	for id, want := range map[string]bool{"ok1": true, "ok2": true, "failed": false, "panicked": false, "never-started": false, "abandoned": false} {
		if got := exists(t, s, id); got != want {
			t.Errorf("%s exists = %v, want %v", id, got, want)
		}
	}
}

// A COMMIT that fails fails every function of the batch: none of them may
// be acknowledged. The failure is a deferred foreign-key violation, which
// SQLite reports only at COMMIT.
func TestBatchCommitFailureFailsEveryone(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	batch := []*writeReq{
		req(context.Background(), createFn("a")),
		req(context.Background(), func(tx store.Tx) error {
			w := tx.(*writeTx)
			if _, err := w.tx.ExecContext(context.Background(), "PRAGMA defer_foreign_keys = ON"); err != nil {
				return err
			}
			_, err := w.tx.ExecContext(context.Background(),
				"INSERT INTO group_members (group_id, member_id, member_type) VALUES ('nope', 'nobody', 'User')")
			return err
		}),
		req(context.Background(), createFn("b")),
	}
	s.runBatch(batch)
	for i, r := range batch {
		if r.err == nil || !strings.Contains(r.err.Error(), "commit") {
			t.Errorf("request %d: err = %v, want the commit failure", i, r.err)
		}
	}
	if exists(t, s, "a") || exists(t, s, "b") {
		t.Fatal("writes of a failed commit are visible")
	}
	// The writer is usable afterwards.
	if err := s.Update(t.Context(), createFn("c")); err != nil || !exists(t, s, "c") {
		t.Fatalf("after a failed commit: %v", err)
	}
}

// Close fails queued writers instead of leaving them waiting.
func TestCloseFailsPendingWrites(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), createFn("x")); !errors.Is(err, errClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
}

// The batch's cached audit head must not outlive a rolled-back function:
// the next append links to the last record that will commit.
func TestBatchAuditHeadAcrossRollback(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	appendFn := func(action string, fail bool) func(store.Tx) error {
		return func(tx store.Tx) error {
			if _, err := audit.Append(context.Background(), tx, at, audit.Entry{Actor: "t", Action: action}); err != nil {
				return err
			}
			if fail {
				return errors.New("boom")
			}
			return nil
		}
	}
	for round := 0; round < 2; round++ { // second round starts from a committed head
		batch := []*writeReq{
			req(context.Background(), appendFn("a", false)),
			req(context.Background(), appendFn("b", true)),
			req(context.Background(), appendFn("c", false)),
			req(context.Background(), appendFn("d", true)),
		}
		s.runBatch(batch)
	}
	n, err := audit.VerifyStore(context.Background(), s)
	if err != nil || n != 4 {
		t.Fatalf("chain after rolled-back appends: %d records, %v", n, err)
	}
}

// A batch of one runs without a savepoint; its failure, panic or abandoned
// context still leaves nothing behind, and its success commits.
func TestSingleBatch(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	boom := errors.New("boom")
	gaveUp, giveUp := context.WithCancel(context.Background())
	cases := []struct {
		id   string
		r    *writeReq
		kept bool
	}{
		{"fails", req(context.Background(), func(tx store.Tx) error { _ = createFn("fails")(tx); return boom }), false},
		{"panics", req(context.Background(), func(tx store.Tx) error { _ = createFn("panics")(tx); panic("kaboom") }), false},
		{"abandoned", req(gaveUp, func(tx store.Tx) error { err := createFn("abandoned")(tx); giveUp(); return err }), false},
		{"commits", req(context.Background(), createFn("commits")), true},
	}
	for _, c := range cases {
		s.runBatch([]*writeReq{c.r})
		<-c.r.done
		if got := exists(t, s, c.id); got != c.kept {
			t.Errorf("%s: stored = %v, want %v (err %v, panicked %v)", c.id, got, c.kept, c.r.err, c.r.panicked)
		}
		if c.kept != (c.r.err == nil && !c.r.panicked) {
			t.Errorf("%s: err %v panicked %v", c.id, c.r.err, c.r.panicked)
		}
	}
	// The writer connection is usable after each of those.
	if err := s.Update(t.Context(), createFn("after")); err != nil || !exists(t, s, "after") {
		t.Fatalf("write after single batches: %v", err)
	}
}
