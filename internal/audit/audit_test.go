package audit_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 123456789, time.UTC)

// chain writes n records into a fresh SQLite store and returns its path.
func chain(t *testing.T, n int) (string, store.Store) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		err := st.Update(ctx, func(tx store.Tx) error {
			_, err := audit.Append(ctx, tx, t0.Add(time.Duration(i)*time.Second), audit.Entry{
				Actor: "entra", Action: "scim.user.create", ResourceType: "User",
				ResourceID: fmt.Sprintf("u%d", i), RequestID: fmt.Sprintf("r%d", i),
				After: map[string]any{"userName": fmt.Sprintf("user%d@example.com", i)},
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return path, st
}

// tamper edits the database behind the store's back, as an attacker with
// file access would: the append-only triggers are dropped first.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range append([]string{"DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"}, stmts...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestVerifyIntactChain(t *testing.T) {
	t.Parallel()
	_, st := chain(t, 25)
	n, err := audit.VerifyStore(context.Background(), st)
	if err != nil || n != 25 {
		t.Fatalf("verify: %d records, %v", n, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	// Forging a record with a correct own hash: the attacker recomputes
	// the edited record's hash, so only the next record's link betrays it.
	forge := func(t *testing.T, path string) string {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var rec *store.AuditRecord
		_ = st.View(ctx, func(tx store.ReadTx) error {
			rs, err := tx.AuditRange(ctx, 3, 1)
			if err == nil {
				rec = rs[0]
			}
			return err
		})
		rec.Actor = "mallory"
		return fmt.Sprintf("UPDATE audit SET actor='mallory', hash=X'%s' WHERE seq=3", hex.EncodeToString(audit.Hash(rec)))
	}
	cases := []struct {
		name    string
		stmts   func(t *testing.T, path string) []string
		wantSeq int64
		want    string
	}{
		{"edited field", func(*testing.T, string) []string {
			return []string{"UPDATE audit SET actor='mallory' WHERE seq=3"}
		}, 3, "edited"},
		{"edited digest", func(*testing.T, string) []string {
			return []string{"UPDATE audit SET after_digest='00' WHERE seq=5"}
		}, 5, "edited"},
		{"edited time", func(*testing.T, string) []string {
			return []string{"UPDATE audit SET time=time+1 WHERE seq=1"}
		}, 1, "edited"},
		{"edited and rehashed", func(t *testing.T, p string) []string { return []string{forge(t, p)} }, 4, "previous-hash"},
		{"deleted", func(*testing.T, string) []string {
			return []string{"DELETE FROM audit WHERE seq=4"}
		}, 4, "deleted"},
		{"deleted first", func(*testing.T, string) []string {
			return []string{"DELETE FROM audit WHERE seq=1"}
		}, 1, "deleted"},
		{"reordered", func(*testing.T, string) []string {
			return []string{"UPDATE audit SET seq=100 WHERE seq=2", "UPDATE audit SET seq=2 WHERE seq=3", "UPDATE audit SET seq=3 WHERE seq=100"}
		}, 2, "previous-hash"},
		{"inserted", func(*testing.T, string) []string {
			return []string{
				"UPDATE audit SET seq=seq+1000 WHERE seq>=3", "UPDATE audit SET seq=seq-999 WHERE seq>=1003",
				"INSERT INTO audit SELECT 3, time, 'mallory', action, resource_type, 'x', request_id, before_digest, after_digest, prev_hash, hash FROM audit WHERE seq=2",
			}
		}, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path, st := chain(t, 6)
			tamper(t, path, c.stmts(t, path)...)
			n, err := audit.VerifyStore(context.Background(), st)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("tampering not detected: %d records verified, err %v", n, err)
			}
			if ve.Seq != c.wantSeq || !strings.Contains(ve.Reason, c.want) {
				t.Fatalf("got %v, want record %d (%q)", ve, c.wantSeq, c.want)
			}
		})
	}
}

func TestAppendOnlyThroughTheStore(t *testing.T) {
	t.Parallel()
	path, _ := chain(t, 2)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{"UPDATE audit SET actor='x' WHERE seq=1", "DELETE FROM audit WHERE seq=2"} {
		if _, err := db.Exec(s); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: want append-only refusal, got %v", s, err)
		}
	}
}

// The encoding is a contract with every verifier ever shipped: a change
// must bump the version byte, not silently alter hashes. The expected value
// was computed independently (Python: sha256(0x00 || encoding) per Encode's doc).
func TestEncodingIsStable(t *testing.T) {
	t.Parallel()
	rec := &store.AuditRecord{
		Seq: 7, Time: t0, Actor: "entra", Action: "scim.user.patch", ResourceType: "User", ResourceID: "u1",
		RequestID: "r1", BeforeDigest: "aa", AfterDigest: "bb", PrevHash: []byte{1, 2, 3},
	}
	const want = "e19d0277f457856aeb94db6898e9060367dcac3aff7219b469c24bcefd2b3da4"
	if got := hex.EncodeToString(audit.Hash(rec)); got != want {
		t.Fatalf("hash of the reference record changed: %s", got)
	}
	if audit.Encode(rec)[0] != 1 {
		t.Fatal("encoding version byte changed")
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	a := audit.Digest(map[string]any{"b": 1, "a": "x"})
	b := audit.Digest(map[string]any{"a": "x", "b": 1})
	if a != b || len(a) != 64 {
		t.Fatalf("digest not canonical: %s %s", a, b)
	}
	if audit.Digest(nil) != "" {
		t.Fatal("nil digest must be empty")
	}
	if a == audit.Digest(map[string]any{"a": "y", "b": 1}) {
		t.Fatal("different documents, same digest")
	}
}
