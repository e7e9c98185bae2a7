package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Conformance cases for Security Event Token replay protection.
//
// RecordSETJTI compares expiries with the engine's wall clock, so these
// cases use expiries far from any date the suite runs on: live ones in
// 2200, expired ones a year before base.
var (
	jtiLive    = time.Date(2200, 1, 1, 0, 0, 0, 7, time.UTC)
	jtiExpired = base.AddDate(-1, 0, 0)
)

// recordJTI runs RecordSETJTI in a transaction of its own that commits
// whatever the call returned, and returns that.
func recordJTI(t *testing.T, s store.Store, issuer, jti string, expires time.Time) error {
	t.Helper()
	var err error
	update(t, s, func(tx store.Tx) error {
		err = tx.RecordSETJTI(t.Context(), issuer, jti, expires)
		return nil
	})
	return err
}

func wantRecorded(t *testing.T, s store.Store, issuer, jti string) {
	t.Helper()
	if err := recordJTI(t, s, issuer, jti, jtiLive); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RecordSETJTI(%q, %q) again: err = %v, want ErrConflict (a replay)", issuer, jti, err)
	}
}

func wantNotRecorded(t *testing.T, s store.Store, issuer, jti string) {
	t.Helper()
	if err := recordJTI(t, s, issuer, jti, jtiLive); err != nil {
		t.Errorf("RecordSETJTI(%q, %q) of a pair not recorded: %v", issuer, jti, err)
	}
}

func testSETJTIRecord(t *testing.T, s store.Store) {
	ctx := t.Context()
	const a, b = "https://idp-a.example.com", "https://idp-b.example.com"
	// A replay in the same transaction is refused and leaves it usable.
	update(t, s, func(tx store.Tx) error {
		if err := tx.RecordSETJTI(ctx, a, "j1", jtiLive); err != nil {
			return err
		}
		if err := tx.RecordSETJTI(ctx, a, "j1", jtiLive); !errors.Is(err, store.ErrConflict) {
			t.Errorf("replay in the recording transaction: err = %v, want ErrConflict", err)
		}
		return tx.RecordSETJTI(ctx, a, "j2", jtiLive)
	})
	wantRecorded(t, s, a, "j1")
	wantRecorded(t, s, a, "j2")

	// A refused replay keeps the stored expiry: a replay carrying an
	// expiry in the past must not shorten the protection.
	if err := recordJTI(t, s, a, "j1", jtiExpired); !errors.Is(err, store.ErrConflict) {
		t.Errorf("replay with an expired expiry: err = %v, want ErrConflict", err)
	}
	wantRecorded(t, s, a, "j1")

	// The pair is the key: the same jti from another issuer, and ids that
	// differ only in case or by a prefix, are other pairs.
	for _, p := range []struct{ issuer, jti string }{
		{b, "j1"},
		{a, "J1"},
		{a, "j"},
		{a + "/", "j1"},
		{"https://IDP-A.example.com", "j1"},
	} {
		wantNotRecorded(t, s, p.issuer, p.jti)
		wantRecorded(t, s, p.issuer, p.jti)
	}
	// Neither issuer nor jti is split on any separator.
	wantNotRecorded(t, s, a+"\x00j", "1")
	wantNotRecorded(t, s, "x", "y z")
	wantNotRecorded(t, s, "x y", "z")
}

func testSETJTIRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	errBoom := errors.New("boom")
	if err := recordJTI(t, s, "iss", "kept", jtiLive); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.RecordSETJTI(ctx, "iss", "new", jtiLive); err != nil {
			return err
		}
		if err := tx.RecordSETJTI(ctx, "other", "new", jtiLive); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	// Nothing of the failed transaction stays; what was there before does.
	wantNotRecorded(t, s, "iss", "new")
	wantNotRecorded(t, s, "other", "new")
	wantRecorded(t, s, "iss", "kept")
}

// An expired pair counts as absent, and purging expired pairs never drops
// a live one.
func testSETJTIExpiry(t *testing.T, s store.Store) {
	// Recorded with an expiry already past: recording again succeeds, with a
	// live expiry that then protects it.
	if err := recordJTI(t, s, "iss", "old", jtiExpired); err != nil {
		t.Fatal(err)
	}
	wantNotRecorded(t, s, "iss", "old")
	wantRecorded(t, s, "iss", "old")

	// Many expired pairs interleaved with live ones, then enough new
	// records to purge every expired pair several times over.
	var expired, live []string
	for i := range 40 {
		jti := fmt.Sprintf("e%02d", i)
		exp := jtiExpired.Add(time.Duration(i) * time.Second)
		if i%8 == 3 {
			jti, exp = fmt.Sprintf("l%02d", i), jtiLive.Add(-time.Duration(i)*time.Nanosecond)
			live = append(live, jti)
		} else {
			expired = append(expired, jti)
		}
		if err := recordJTI(t, s, "iss", jti, exp); err != nil {
			t.Fatalf("RecordSETJTI(iss, %q): %v", jti, err)
		}
	}
	for i := range 20 {
		if err := recordJTI(t, s, "purge", fmt.Sprint(i), jtiLive); err != nil {
			t.Fatalf("RecordSETJTI(purge, %d): %v", i, err)
		}
	}
	for _, jti := range live {
		wantRecorded(t, s, "iss", jti)
	}
	for i := range 20 {
		wantRecorded(t, s, "purge", fmt.Sprint(i))
	}
	wantRecorded(t, s, "iss", "old")
	for _, jti := range expired {
		wantNotRecorded(t, s, "iss", jti)
	}
}

// Invalid arguments are plain errors (not a replay) and write nothing.
func testSETJTIInvalid(t *testing.T, s store.Store) {
	tests := []struct {
		name, issuer, jti string
		expires           time.Time
	}{
		{"empty issuer", "", "j", jtiLive},
		{"empty jti", "iss", "", jtiLive},
		{"zero expires", "iss", "zero", time.Time{}},
		{"unstorable expires", "iss", "far", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		err := recordJTI(t, s, tc.issuer, tc.jti, tc.expires)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("RecordSETJTI %s: err = %v, want a plain error", tc.name, err)
		}
	}
	wantNotRecorded(t, s, "iss", "zero")
	wantNotRecorded(t, s, "iss", "far")
}
