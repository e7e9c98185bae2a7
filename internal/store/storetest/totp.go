package storetest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Conformance cases for TOTP enrollments.

// enrollment returns a fresh, unverified enrollment of identity id.
func enrollment(id string) *store.TOTPEnrollment {
	return &store.TOTPEnrollment{
		IdentityID: id,
		Secret:     "sealed." + id,
		Created:    base,
		Version:    1,
	}
}

// nextTOTP returns a copy of e prepared for a replacing PutTOTP.
func nextTOTP(e *store.TOTPEnrollment) *store.TOTPEnrollment {
	c := *e
	c.Version++
	return &c
}

func putTOTPs(t *testing.T, s store.Store, es ...*store.TOTPEnrollment) {
	t.Helper()
	putAll(t, s, store.Tx.PutTOTP, es...)
}

func getTOTP(t *testing.T, s store.Store, id string) (*store.TOTPEnrollment, error) {
	return read(t, s, func(tx store.ReadTx) (*store.TOTPEnrollment, error) { return tx.GetTOTP(t.Context(), id) })
}

func wantTOTP(t *testing.T, s store.Store, want *store.TOTPEnrollment) {
	t.Helper()
	got, err := getTOTP(t, s, want.IdentityID)
	if err != nil {
		t.Fatalf("GetTOTP(%q): %v", want.IdentityID, err)
	}
	if d := totpDiff(got, want); d != "" {
		t.Fatalf("totp of %q: %s", want.IdentityID, d)
	}
}

func wantNoTOTP(t *testing.T, s store.Store, id string) {
	t.Helper()
	if got, err := getTOTP(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTOTP(%q) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// totpDiff compares every field; zero times must come back zero.
func totpDiff(got, want *store.TOTPEnrollment) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.IdentityID != want.IdentityID {
		add("IdentityID", got.IdentityID, want.IdentityID)
	}
	if got.Secret != want.Secret {
		add("Secret", got.Secret, want.Secret)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"Created", got.Created, want.Created},
		{"Verified", got.Verified, want.Verified},
		{"LockedUntil", got.LockedUntil, want.LockedUntil},
	} {
		if !sameTime(f.got, f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	if got.LastStep != want.LastStep {
		add("LastStep", got.LastStep, want.LastStep)
	}
	if got.Failures != want.Failures {
		add("Failures", got.Failures, want.Failures)
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	return strings.Join(d, "; ")
}

func testTOTPRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+09:00", 9*3600)
	putIdentities(t, s, identity("ada", store.StateAwaitingMFA), identity("bob", store.StateAwaitingMFA))

	full := &store.TOTPEnrollment{
		IdentityID:  "ada",
		Secret:      "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ciphertext.tag",
		Created:     base.In(zone),
		Verified:    at(time.Minute + time.Nanosecond),
		LastStep:    math.MaxInt64,
		Failures:    7,
		LockedUntil: at(15*time.Minute + 3*time.Nanosecond).In(zone),
		Version:     1,
	}
	// A write transaction sees its own writes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutTOTP(ctx, full); err != nil {
			return err
		}
		got, err := tx.GetTOTP(ctx, full.IdentityID)
		if err != nil {
			return err
		}
		if d := totpDiff(got, full); d != "" {
			t.Errorf("totp read in its own transaction: %s", d)
		}
		return nil
	})
	wantTOTP(t, s, full)
	wantNoTOTP(t, s, "bob")                                     // an identity without an enrollment
	wantNoTOTP(t, s, "nobody")                                  // no such identity
	wantIdentity(t, s, identity("ada", store.StateAwaitingMFA)) // untouched

	// Each version replaces every field; optional times clear to zero.
	cleared := nextTOTP(full)
	cleared.Secret = "resealed"
	cleared.Created = at(time.Hour)
	cleared.Verified, cleared.LockedUntil = time.Time{}, time.Time{}
	cleared.LastStep, cleared.Failures = 0, 0
	negative := nextTOTP(cleared)
	negative.LastStep = -1 // any int64 round-trips
	set := nextTOTP(negative)
	set.Verified = at(2 * time.Hour)
	set.LastStep = 59_000_001
	for _, want := range []*store.TOTPEnrollment{cleared, negative, set} {
		putTOTPs(t, s, want)
		wantTOTP(t, s, want)
	}

	// An enrollment that starts with every optional field zero.
	fresh := enrollment("bob")
	putTOTPs(t, s, fresh)
	wantTOTP(t, s, fresh)
	wantTOTP(t, s, set)
}

func testTOTPInsertConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateAwaitingMFA))
	first := enrollment("i")
	putTOTPs(t, s, first)
	second := enrollment("i")
	second.Secret = "another"
	second.Failures = 3
	err := s.Update(ctx, func(tx store.Tx) error { return tx.PutTOTP(ctx, second) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutTOTP version 1 over an existing enrollment: err = %v, want ErrConflict", err)
	}
	wantTOTP(t, s, first)
}

func testTOTPVersionCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateAwaitingMFA), identity("bare", store.StateAwaitingMFA))
	v1 := enrollment("i")
	v2 := nextTOTP(v1)
	v2.Verified = at(time.Minute)
	v2.LastStep = 100
	putTOTPs(t, s, v1)
	putTOTPs(t, s, v2)

	tests := []struct {
		name    string
		id      string
		version int64
	}{
		{"version 0", "i", 0},
		{"negative version", "i", -1},
		{"version 1 again", "i", 1},
		{"same version", "i", 2},
		{"skips a version", "i", 4},
		{"replaces a missing enrollment", "bare", 2},
	}
	for _, tc := range tests {
		stale := nextTOTP(v2)
		stale.IdentityID = tc.id
		stale.Version = tc.version
		stale.Secret = "stale"
		stale.Failures = 5
		stale.LockedUntil = at(time.Hour)
		// The failed put writes nothing even though the transaction commits.
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutTOTP(ctx, stale); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
			}
			return nil
		})
	}
	wantTOTP(t, s, v2)
	wantNoTOTP(t, s, "bare")

	v3 := nextTOTP(v2)
	v3.Failures = 1
	putTOTPs(t, s, v3)
	wantTOTP(t, s, v3)
}

func testTOTPMissingIdentity(t *testing.T, s store.Store) {
	ctx := t.Context()
	// "Ghost" differs from a stored id only in case: ids are exact.
	putIdentities(t, s, identity("ghost", store.StateAwaitingMFA))
	for _, tc := range []struct {
		id      string
		version int64
	}{
		{"nobody", 1},
		{"Ghost", 1},
		{"nobody", 2},
	} {
		e := enrollment(tc.id)
		e.Version = tc.version
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutTOTP(ctx, e); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("PutTOTP(%q, version %d) without the identity: err = %v, want ErrNotFound", tc.id, tc.version, err)
			}
			return nil
		})
		wantNoTOTP(t, s, tc.id)
	}
	wantNoIdentity(t, s, "nobody")
	wantNoTOTP(t, s, "ghost")
}

func testTOTPDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := []*store.Identity{identity("a", store.StateActive), identity("b", store.StateActive), identity("c", store.StateAwaitingMFA)}
	putIdentities(t, s, ids...)
	a, b := enrollment("a"), enrollment("b")
	putTOTPs(t, s, a, b)

	// Deleting is visible in the same transaction.
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteTOTP(ctx, "a"); err != nil {
			return err
		}
		if got, err := tx.GetTOTP(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTOTP after DeleteTOTP in the same transaction = %+v, %v; want ErrNotFound", got, err)
		}
		return nil
	})
	wantNoTOTP(t, s, "a")
	wantTOTP(t, s, b)
	for _, id := range ids {
		wantIdentity(t, s, id) // the identity stays
	}

	// Deleting nothing is not an error and touches nothing.
	for _, id := range []string{"a", "c", "nobody", "B"} {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteTOTP(ctx, id) }); err != nil {
			t.Errorf("DeleteTOTP(%q) with no enrollment: %v", id, err)
		}
	}
	wantTOTP(t, s, b)

	// After a delete the identity can enroll again from version 1.
	again := enrollment("a")
	again.Secret = "re-enrolled"
	putTOTPs(t, s, again)
	wantTOTP(t, s, again)
}

func testTOTPRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("kept", store.StateActive), identity("gone", store.StateActive),
		identity("new", store.StateAwaitingMFA))
	kept, gone := enrollment("kept"), enrollment("gone")
	putTOTPs(t, s, kept, gone)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutTOTP(ctx, enrollment("new")); err != nil {
			return err
		}
		changed := nextTOTP(kept)
		changed.Failures = 3
		changed.LockedUntil = at(time.Hour)
		if err := tx.PutTOTP(ctx, changed); err != nil {
			return err
		}
		if err := tx.DeleteTOTP(ctx, "gone"); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	wantNoTOTP(t, s, "new")
	wantTOTP(t, s, kept)
	wantTOTP(t, s, gone)
	// The rolled-back version and insert are free again.
	putTOTPs(t, s, nextTOTP(kept), enrollment("new"))
	wantTOTP(t, s, nextTOTP(kept))
	wantTOTP(t, s, enrollment("new"))
}
