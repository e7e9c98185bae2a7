package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Conformance cases for MFA exceptions.

// exception returns a fresh exception of identity for one day from base.
func exception(id, identityID string) *store.Exception {
	return &store.Exception{
		ID:                   id,
		IdentityID:           identityID,
		Type:                 "mfa_bypass",
		Justification:        "token lost in transit: " + id,
		CompensatingControls: "VPN only",
		Owner:                "owner@example.com",
		CreatedBy:            "approver@example.com",
		Created:              base,
		ExpiresAt:            at(24 * time.Hour),
	}
}

func createExceptions(t *testing.T, s store.Store, es ...*store.Exception) {
	t.Helper()
	putAll(t, s, store.Tx.CreateException, es...)
}

func getException(t *testing.T, s store.Store, id string) (*store.Exception, error) {
	return read(t, s, func(tx store.ReadTx) (*store.Exception, error) { return tx.GetException(t.Context(), id) })
}

func mustGetException(t *testing.T, s store.Store, id string) *store.Exception {
	t.Helper()
	got, err := getException(t, s, id)
	if err != nil {
		t.Fatalf("GetException(%q): %v", id, err)
	}
	return got
}

func wantException(t *testing.T, s store.Store, want *store.Exception) {
	t.Helper()
	if d := exceptionDiff(mustGetException(t, s, want.ID), want); d != "" {
		t.Fatalf("exception %q: %s", want.ID, d)
	}
}

func wantNoException(t *testing.T, s store.Store, id string) {
	t.Helper()
	if got, err := getException(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetException(%q) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// listExceptions returns the committed Exceptions(identityID).
func listExceptions(t *testing.T, s store.Store, identityID string) []*store.Exception {
	t.Helper()
	return mustRead(t, s, func(tx store.ReadTx) ([]*store.Exception, error) { return tx.Exceptions(t.Context(), identityID) })
}

func exceptionIDs(es []*store.Exception) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// exceptionDiff compares every field; a zero Ended must come back zero.
func exceptionDiff(got, want *store.Exception) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"IdentityID", got.IdentityID, want.IdentityID},
		{"Type", got.Type, want.Type},
		{"Justification", got.Justification, want.Justification},
		{"CompensatingControls", got.CompensatingControls, want.CompensatingControls},
		{"Owner", got.Owner, want.Owner},
		{"CreatedBy", got.CreatedBy, want.CreatedBy},
		{"EndedBy", got.EndedBy, want.EndedBy},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"Created", got.Created, want.Created},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"Ended", got.Ended, want.Ended},
	} {
		if !sameTime(f.got, f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

func testExceptionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC-03:30", -(3*3600 + 30*60))
	ada := identity("ada", store.StateActive)
	putIdentities(t, s, ada)

	full := &store.Exception{
		ID:                   "exc-1",
		IdentityID:           "ada",
		Type:                 "mfa_bypass",
		Justification:        "Hardware key lost; replacement ships Monday.\nTicket SEC-42 — «urgent»",
		CompensatingControls: "VPN only; session 1h; daily review",
		Owner:                "Grace <grace@example.com>",
		CreatedBy:            "scim-token:hr-admin",
		Created:              base.In(zone),
		ExpiresAt:            at(72*time.Hour + 7*time.Nanosecond).In(zone),
	}
	// A write transaction sees its own writes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.CreateException(ctx, full); err != nil {
			return err
		}
		got, err := tx.GetException(ctx, full.ID)
		if err != nil {
			return err
		}
		if d := exceptionDiff(got, full); d != "" {
			t.Errorf("exception read in its own transaction: %s", d)
		}
		return nil
	})
	wantException(t, s, full) // Ended zero, EndedBy ""
	wantNoException(t, s, "exc-2")
	wantNoException(t, s, "EXC-1") // ids are exact
	wantIdentity(t, s, ada)        // untouched

	// Empty free-text fields round-trip as empty.
	bare := exception("exc-2", "ada")
	bare.Justification, bare.CompensatingControls, bare.Owner, bare.CreatedBy = "", "", "", ""
	createExceptions(t, s, bare)
	wantException(t, s, bare)

	// Ending sets exactly Ended and EndedBy, to the nanosecond.
	ended := *full
	ended.Ended = at(time.Hour + time.Nanosecond).In(zone)
	ended.EndedBy = "security@example.com"
	update(t, s, func(tx store.Tx) error { return tx.EndException(ctx, full.ID, ended.Ended, ended.EndedBy) })
	wantException(t, s, &ended)
	wantException(t, s, bare)
}

// An unknown type and a missing expiry are refused and write nothing.
func testExceptionInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	noType := exception("no-type", "i")
	noType.Type = ""
	otherType := exception("other-type", "i")
	otherType.Type = "MFA_BYPASS"
	noExpiry := exception("no-expiry", "i")
	noExpiry.ExpiresAt = time.Time{}
	for _, e := range []*store.Exception{noType, otherType, noExpiry} {
		update(t, s, func(tx store.Tx) error {
			if err := tx.CreateException(ctx, e); err == nil {
				t.Errorf("CreateException(%q) with Type %q, ExpiresAt %v: no error", e.ID, e.Type, e.ExpiresAt)
			}
			return nil
		})
		wantNoException(t, s, e.ID)
	}
	if got := listExceptions(t, s, ""); len(got) != 0 {
		t.Errorf("Exceptions after refused creates = %v, want none", exceptionIDs(got))
	}
}

func testExceptionDuplicateID(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("a", store.StateActive), identity("b", store.StateActive))
	first := exception("x", "a")
	createExceptions(t, s, first)
	for _, dup := range []*store.Exception{exception("x", "a"), exception("x", "b")} {
		dup.Justification = "second"
		dup.ExpiresAt = at(48 * time.Hour)
		// The conflict leaves the transaction usable and writes nothing.
		update(t, s, func(tx store.Tx) error {
			if err := tx.CreateException(ctx, dup); !errors.Is(err, store.ErrConflict) {
				t.Errorf("CreateException with taken id for identity %q: err = %v, want ErrConflict", dup.IdentityID, err)
			}
			return nil
		})
	}
	wantException(t, s, first)
	if got := exceptionIDs(listExceptions(t, s, "b")); len(got) != 0 {
		t.Errorf("Exceptions(b) = %v, want none", got)
	}
}

func testExceptionMissingIdentity(t *testing.T, s store.Store) {
	ctx := t.Context()
	// "Ghost" differs from a stored id only in case: ids are exact.
	putIdentities(t, s, identity("ghost", store.StateActive))
	for _, identityID := range []string{"nobody", "Ghost"} {
		e := exception("for-"+identityID, identityID)
		update(t, s, func(tx store.Tx) error {
			if err := tx.CreateException(ctx, e); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("CreateException for identity %q: err = %v, want ErrNotFound", identityID, err)
			}
			return nil
		})
		wantNoException(t, s, e.ID)
	}
	wantNoIdentity(t, s, "nobody")
	if got := exceptionIDs(listExceptions(t, s, "")); len(got) != 0 {
		t.Errorf("Exceptions after creates for missing identities = %v, want none", got)
	}
}

func testListExceptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("a", store.StateActive), identity("b", store.StateActive),
		identity("c", store.StateAwaitingMFA))
	// Created order is not insertion order and not id order; e2/e4/e5 tie on
	// Created and e3/e6 differ by 1ns only.
	mk := func(id, identityID string, created time.Duration) *store.Exception {
		e := exception(id, identityID)
		e.Created = at(created)
		e.ExpiresAt = at(created + time.Hour)
		return e
	}
	all := map[string]*store.Exception{}
	for _, e := range []*store.Exception{
		mk("e5", "b", time.Minute),
		mk("e1", "a", 2*time.Minute),
		mk("e3", "a", -time.Hour),
		mk("e4", "a", time.Minute),
		mk("e6", "b", -time.Hour+time.Nanosecond),
		mk("e2", "b", time.Minute),
	} {
		all[e.ID] = e
		createExceptions(t, s, e)
	}
	// An ended exception is still listed.
	update(t, s, func(tx store.Tx) error { return tx.EndException(ctx, "e4", at(2*time.Minute), "sec") })
	all["e4"].Ended, all["e4"].EndedBy = at(2*time.Minute), "sec"

	tests := []struct {
		identityID string
		want       []string
	}{
		{"", []string{"e3", "e6", "e2", "e4", "e5", "e1"}},
		{"a", []string{"e3", "e4", "e1"}},
		{"b", []string{"e6", "e2", "e5"}},
		{"c", []string{}},      // an identity without exceptions
		{"nobody", []string{}}, // no such identity
		{"A", []string{}},      // ids are exact
	}
	for _, tc := range tests {
		got := listExceptions(t, s, tc.identityID)
		if ids := exceptionIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Exceptions(%q) = %v, want %v", tc.identityID, ids, tc.want)
		}
		for _, e := range got {
			if d := exceptionDiff(e, all[e.ID]); d != "" {
				t.Errorf("Exceptions(%q): exception %q: %s", tc.identityID, e.ID, d)
			}
		}
	}

	// A transaction lists its own uncommitted exception.
	update(t, s, func(tx store.Tx) error {
		if err := tx.CreateException(ctx, mk("e0", "c", -2*time.Hour)); err != nil {
			return err
		}
		got, err := tx.Exceptions(ctx, "")
		if err != nil {
			return err
		}
		if ids := exceptionIDs(got); !slices.Equal(ids, []string{"e0", "e3", "e6", "e2", "e4", "e5", "e1"}) {
			t.Errorf("Exceptions(\"\") in the creating transaction = %v", ids)
		}
		return nil
	})
}

func testEndException(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	e, other := exception("e", "i"), exception("other", "i")
	createExceptions(t, s, e, other)

	ended := *e
	ended.Ended, ended.EndedBy = at(time.Hour), "first@example.com"
	// Ending is visible in the same transaction.
	update(t, s, func(tx store.Tx) error {
		if err := tx.EndException(ctx, e.ID, ended.Ended, ended.EndedBy); err != nil {
			return err
		}
		got, err := tx.GetException(ctx, e.ID)
		if err != nil {
			return err
		}
		if d := exceptionDiff(got, &ended); d != "" {
			t.Errorf("exception after EndException in the same transaction: %s", d)
		}
		return nil
	})
	wantException(t, s, &ended)
	wantException(t, s, other) // untouched

	// Ending again is a conflict and keeps the first end, even later or
	// earlier; ending a missing one is not found. Neither writes.
	tests := []struct {
		name string
		id   string
		at   time.Time
		want error
	}{
		{"again later", e.ID, at(2 * time.Hour), store.ErrConflict},
		{"again earlier", e.ID, at(time.Minute), store.ErrConflict},
		{"again at the same time", e.ID, ended.Ended, store.ErrConflict},
		{"missing", "nobody", at(time.Hour), store.ErrNotFound},
		{"differs in case", "E", at(time.Hour), store.ErrNotFound},
	}
	for _, tc := range tests {
		update(t, s, func(tx store.Tx) error {
			if err := tx.EndException(ctx, tc.id, tc.at, "second@example.com"); !errors.Is(err, tc.want) {
				t.Errorf("EndException %s: err = %v, want %v", tc.name, err, tc.want)
			}
			return nil
		})
	}
	wantException(t, s, &ended)
	wantException(t, s, other)
	wantNoException(t, s, "nobody")
}

// Live is checked on exceptions as the store returns them, so a time that
// lost precision on the way shows at the boundaries.
func testExceptionLive(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	expires := at(24*time.Hour + time.Nanosecond)
	open := exception("open", "i")
	open.ExpiresAt = expires
	early := exception("early", "i")
	early.ExpiresAt = expires
	late := exception("late", "i") // ended after it had expired
	late.ExpiresAt = expires
	createExceptions(t, s, open, early, late)
	endedAt := at(time.Hour + time.Nanosecond)
	update(t, s, func(tx store.Tx) error {
		if err := tx.EndException(ctx, "early", endedAt, "sec"); err != nil {
			return err
		}
		return tx.EndException(ctx, "late", expires.Add(time.Hour), "sec")
	})

	tests := []struct {
		id   string
		now  time.Time
		want bool
	}{
		{"open", base, true},
		{"open", expires.Add(-time.Nanosecond), true},
		{"open", expires, false}, // exactly at ExpiresAt
		{"open", expires.In(time.FixedZone("X", 7200)), false},
		{"open", expires.Add(time.Nanosecond), false},
		{"early", base, true},
		{"early", endedAt.Add(-time.Nanosecond), true},
		{"early", endedAt, false}, // exactly at Ended
		{"early", endedAt.Add(time.Nanosecond), false},
		{"early", expires.Add(-time.Nanosecond), false},
		{"late", expires.Add(-time.Nanosecond), true},
		{"late", expires, false},
		{"late", expires.Add(2 * time.Hour), false},
	}
	for _, tc := range tests {
		e := mustGetException(t, s, tc.id)
		if got := e.Live(tc.now); got != tc.want {
			t.Errorf("exception %q (expires %v, ended %v).Live(%v) = %t, want %t",
				tc.id, e.ExpiresAt, e.Ended, tc.now, got, tc.want)
		}
	}
}

func testExceptionRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	kept := exception("kept", "i")
	createExceptions(t, s, kept)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateException(ctx, exception("new", "i")); err != nil {
			return err
		}
		if err := tx.EndException(ctx, "kept", at(time.Hour), "sec"); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	wantNoException(t, s, "new")
	wantException(t, s, kept) // still not ended
	if got := exceptionIDs(listExceptions(t, s, "i")); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("Exceptions(i) after rollback = %v, want [kept]", got)
	}
	// The rolled-back id and end are free again.
	createExceptions(t, s, exception("new", "i"))
	update(t, s, func(tx store.Tx) error { return tx.EndException(ctx, "kept", at(time.Hour), "sec") })
	wantException(t, s, exception("new", "i"))
	if got := mustGetException(t, s, "kept"); !sameTime(got.Ended, at(time.Hour)) {
		t.Errorf("kept Ended = %v, want %v", got.Ended, at(time.Hour))
	}
}
