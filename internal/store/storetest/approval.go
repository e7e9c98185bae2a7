package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Conformance cases for approvals of privileged roles.

// approval returns a fresh pending approval for identityID, requested at
// base and expiring a day later.
func approval(id, identityID string) *store.Approval {
	return &store.Approval{
		ID:          id,
		IdentityID:  identityID,
		Role:        "admin",
		Grants:      []byte(`[{"connector":"github","entitlement":"org:admin"}]`),
		Required:    2,
		State:       store.ApprovalPending,
		RequestedAt: base,
		ExpiresAt:   at(24 * time.Hour),
		Updated:     base,
		Version:     1,
	}
}

// nextApproval returns a copy of a prepared for a replacing PutApproval.
func nextApproval(a *store.Approval) *store.Approval {
	c := *a
	c.Version++
	c.Updated = c.Updated.Add(time.Second)
	return &c
}

func putApprovals(t *testing.T, s store.Store, as ...*store.Approval) {
	t.Helper()
	putAll(t, s, store.Tx.PutApproval, as...)
}

func getApproval(t *testing.T, s store.Store, id string) (*store.Approval, error) {
	return read(t, s, func(tx store.ReadTx) (*store.Approval, error) { return tx.GetApproval(t.Context(), id) })
}

func wantApproval(t *testing.T, s store.Store, want *store.Approval) {
	t.Helper()
	got, err := getApproval(t, s, want.ID)
	if err != nil {
		t.Fatalf("GetApproval(%q): %v", want.ID, err)
	}
	if d := approvalDiff(got, want); d != "" {
		t.Fatalf("approval %q: %s", want.ID, d)
	}
}

func wantNoApproval(t *testing.T, s store.Store, id string) {
	t.Helper()
	if got, err := getApproval(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetApproval(%q) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// listApprovals returns the committed Approvals(q).
func listApprovals(t *testing.T, s store.Store, q store.ApprovalQuery) []*store.Approval {
	t.Helper()
	return mustRead(t, s, func(tx store.ReadTx) ([]*store.Approval, error) { return tx.Approvals(t.Context(), q) })
}

func approvalIDs(as []*store.Approval) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// approvalDiff compares every field. Grants and Decisions must come back
// byte for byte, Decisions nil when nil was stored; an empty non-nil
// Decisions may come back nil.
func approvalDiff(got, want *store.Approval) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"IdentityID", got.IdentityID, want.IdentityID},
		{"Role", got.Role, want.Role},
		{"State", got.State, want.State},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if !bytes.Equal(got.Grants, want.Grants) {
		add("Grants", fmt.Sprintf("%q", got.Grants), fmt.Sprintf("%q", want.Grants))
	}
	if got.Required != want.Required {
		add("Required", got.Required, want.Required)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"RequestedAt", got.RequestedAt, want.RequestedAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"Updated", got.Updated, want.Updated},
	} {
		if !sameTime(f.got, f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(got.Decisions, want.Decisions) || (want.Decisions == nil && got.Decisions != nil) {
		add("Decisions", fmt.Sprintf("%q (nil: %t)", got.Decisions, got.Decisions == nil),
			fmt.Sprintf("%q (nil: %t)", want.Decisions, want.Decisions == nil))
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	return strings.Join(d, "; ")
}

func testApprovalRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+01:00", 3600)
	putIdentities(t, s, identity("ada", store.StateActive), identity("bob", store.StateActive))
	full := &store.Approval{
		ID:          "ap-1",
		IdentityID:  "ada",
		Role:        "Prod Admin (EU)",
		Grants:      []byte(`[ {"connector":"aws","entitlement":"arn:aws:iam::1:role/Admin"} , {"b":1,"a":[ ]} ]`),
		Required:    3,
		State:       store.ApprovalPending,
		RequestedAt: base.In(zone),
		ExpiresAt:   at(72*time.Hour + 7*time.Nanosecond),
		Decisions:   []byte(`[{"by":"cto@example.com","approve":true, "at":"2026-03-01T12:00:00.123456789Z"}]`),
		Updated:     at(time.Nanosecond).In(zone),
		Version:     1,
	}
	// A write transaction sees its own writes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutApproval(ctx, full); err != nil {
			return err
		}
		got, err := tx.GetApproval(ctx, full.ID)
		if err != nil {
			return err
		}
		if d := approvalDiff(got, full); d != "" {
			t.Errorf("approval read in its own transaction: %s", d)
		}
		return nil
	})
	wantApproval(t, s, full)
	wantNoApproval(t, s, "ap-2")
	wantNoApproval(t, s, "AP-1")                           // ids are exact
	wantIdentity(t, s, identity("ada", store.StateActive)) // untouched

	// Each version replaces every field; Decisions clears to nil.
	cleared := nextApproval(full)
	cleared.IdentityID = "bob"
	cleared.Role = ""
	cleared.Grants = []byte(`{}`)
	cleared.Required = 1
	cleared.State = store.ApprovalApproved
	cleared.RequestedAt = at(-time.Hour)
	cleared.ExpiresAt = at(-time.Minute - time.Nanosecond)
	cleared.Decisions = nil
	emptyArray := nextApproval(cleared)
	emptyArray.Decisions = []byte(`[]`)
	for _, want := range []*store.Approval{cleared, emptyArray} {
		putApprovals(t, s, want)
		wantApproval(t, s, want)
	}

	// An empty non-nil Decisions reads back empty (nil allowed).
	empty := nextApproval(emptyArray)
	empty.Decisions = []byte{}
	putApprovals(t, s, empty)
	got, err := getApproval(t, s, empty.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Decisions) != 0 {
		t.Errorf("Decisions stored as []byte{} read back as %q", got.Decisions)
	}

	// Every state is storable, with or without Decisions.
	for i, state := range []string{store.ApprovalPending, store.ApprovalApproved, store.ApprovalRejected,
		store.ApprovalExpired, store.ApprovalCancelled} {
		want := approval(fmt.Sprintf("state-%d", i), "ada")
		want.State = state
		if i%2 == 1 {
			want.Decisions = []byte(`[{"by":"x"}]`)
		}
		putApprovals(t, s, want)
		wantApproval(t, s, want)
	}
}

func testApprovalInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	stored := approval("stored", "i")
	putApprovals(t, s, stored)
	mk := func(id string, change func(a *store.Approval)) *store.Approval {
		a := approval(id, "i")
		change(a)
		return a
	}
	bad := []*store.Approval{
		mk("", func(*store.Approval) {}),
		mk("no-identity", func(a *store.Approval) { a.IdentityID = "" }),
		mk("nil-grants", func(a *store.Approval) { a.Grants = nil }),
		mk("bad-grants", func(a *store.Approval) { a.Grants = []byte(`[{"a":1}`) }),
		mk("zero-required", func(a *store.Approval) { a.Required = 0 }),
		mk("negative-required", func(a *store.Approval) { a.Required = -1 }),
		mk("no-state", func(a *store.Approval) { a.State = "" }),
		mk("other-state", func(a *store.Approval) { a.State = "Pending" }),
		mk("bad-decisions", func(a *store.Approval) { a.Decisions = []byte(`{"by":`) }),
		mk("zero-requested", func(a *store.Approval) { a.RequestedAt = time.Time{} }),
		mk("zero-expires", func(a *store.Approval) { a.ExpiresAt = time.Time{} }),
		mk("zero-updated", func(a *store.Approval) { a.Updated = time.Time{} }),
	}
	for _, a := range bad {
		for _, version := range []int64{1, 2} {
			a := *a
			if version == 2 && a.ID != "" {
				a.ID = stored.ID // a replacement of a stored approval
			}
			a.Version = version
			update(t, s, func(tx store.Tx) error {
				if err := tx.PutApproval(ctx, &a); err == nil {
					t.Errorf("PutApproval(%q, version %d) of %+v: no error", a.ID, version, a)
				}
				return nil
			})
		}
		if a.ID != "" {
			wantNoApproval(t, s, a.ID)
		}
	}
	wantApproval(t, s, stored)
	if got := approvalIDs(listApprovals(t, s, store.ApprovalQuery{})); !slices.Equal(got, []string{"stored"}) {
		t.Errorf("Approvals after refused puts = %v, want [stored]", got)
	}
}

func testApprovalInsertConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("a", store.StateActive), identity("b", store.StateActive))
	first := approval("dup", "a")
	putApprovals(t, s, first)
	for _, identityID := range []string{"a", "b"} {
		second := approval("dup", identityID)
		second.Role = "other"
		second.State = store.ApprovalRejected
		// The conflict leaves the transaction usable and writes nothing.
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutApproval(ctx, second); !errors.Is(err, store.ErrConflict) {
				t.Errorf("PutApproval version 1 over an existing approval (identity %q): err = %v, want ErrConflict", identityID, err)
			}
			return tx.PutApproval(ctx, approval("after-"+identityID, identityID))
		})
	}
	wantApproval(t, s, first)
	wantApproval(t, s, approval("after-a", "a"))
	wantApproval(t, s, approval("after-b", "b"))
}

func testApprovalMissingIdentity(t *testing.T, s store.Store) {
	ctx := t.Context()
	// "Ghost" differs from a stored id only in case: ids are exact.
	putIdentities(t, s, identity("ghost", store.StateActive))
	stored := approval("stored", "ghost")
	putApprovals(t, s, stored)
	for _, tc := range []struct {
		id, identityID string
		version        int64
	}{
		{"new", "nobody", 1},
		{"new", "Ghost", 1},
		{"stored", "nobody", 2}, // moving a stored approval to a missing identity
	} {
		a := approval(tc.id, tc.identityID)
		a.Version = tc.version
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutApproval(ctx, a); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("PutApproval(%q, version %d) for identity %q: err = %v, want ErrNotFound",
					tc.id, tc.version, tc.identityID, err)
			}
			return nil
		})
	}
	wantNoApproval(t, s, "new")
	wantApproval(t, s, stored)
	wantNoIdentity(t, s, "nobody")
	for _, identityID := range []string{"nobody", "Ghost"} {
		if got := approvalIDs(listApprovals(t, s, store.ApprovalQuery{IdentityID: identityID})); len(got) != 0 {
			t.Errorf("Approvals(identity %q) = %v, want none", identityID, got)
		}
	}
}

func testApprovalVersionCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	v1 := approval("a", "i")
	v2 := nextApproval(v1)
	v2.Decisions = []byte(`[{"by":"one"}]`)
	putApprovals(t, s, v1)
	putApprovals(t, s, v2)

	tests := []struct {
		name    string
		id      string
		version int64
	}{
		{"version 0", "a", 0},
		{"negative version", "a", -1},
		{"version 1 again", "a", 1},
		{"same version", "a", 2},
		{"skips a version", "a", 4},
		{"replaces a missing approval", "missing", 2},
	}
	for _, tc := range tests {
		stale := nextApproval(v2)
		stale.ID = tc.id
		stale.Version = tc.version
		stale.State = store.ApprovalApproved
		stale.Decisions = []byte(`["stale"]`)
		// The failed put writes nothing even though the transaction commits.
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutApproval(ctx, stale); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
			}
			return nil
		})
	}
	wantApproval(t, s, v2)
	wantNoApproval(t, s, "missing")

	v3 := nextApproval(v2)
	v3.State = store.ApprovalApproved
	v3.Decisions = []byte(`[{"by":"one"},{"by":"two"}]`)
	putApprovals(t, s, v3)
	wantApproval(t, s, v3)
}

func testListApprovals(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("a", store.StateActive), identity("b", store.StateActive),
		identity("c", store.StateActive))
	// RequestedAt order is neither insertion nor id order: p2/p4/p5 tie
	// (so go by id), p3/p6 differ by 1ns only.
	mk := func(id, identityID, state string, requested time.Duration) *store.Approval {
		a := approval(id, identityID)
		a.State = state
		a.RequestedAt = at(requested)
		a.ExpiresAt = at(requested + time.Hour)
		return a
	}
	all := map[string]*store.Approval{}
	for _, a := range []*store.Approval{
		mk("p5", "b", store.ApprovalPending, time.Minute),
		mk("p1", "a", store.ApprovalApproved, 2*time.Minute),
		mk("p3", "a", store.ApprovalPending, -time.Hour),
		mk("p4", "a", store.ApprovalRejected, time.Minute),
		mk("p6", "b", store.ApprovalPending, -time.Hour+time.Nanosecond),
		mk("p2", "b", store.ApprovalApproved, time.Minute),
		mk("p7", "a", store.ApprovalPending, time.Minute),
	} {
		all[a.ID] = a
		putApprovals(t, s, a)
	}
	// A changed approval moves between states but keeps its place.
	moved := nextApproval(all["p4"])
	moved.State = store.ApprovalPending
	putApprovals(t, s, moved)
	all["p4"] = moved

	q := func(state, identityID string) store.ApprovalQuery {
		return store.ApprovalQuery{State: state, IdentityID: identityID}
	}
	tests := []struct {
		q    store.ApprovalQuery
		want []string
	}{
		{q("", ""), []string{"p3", "p6", "p2", "p4", "p5", "p7", "p1"}},
		{q(store.ApprovalPending, ""), []string{"p3", "p6", "p4", "p5", "p7"}},
		{q(store.ApprovalApproved, ""), []string{"p2", "p1"}},
		{q(store.ApprovalRejected, ""), []string{}}, // p4 left it
		{q(store.ApprovalCancelled, ""), []string{}},
		{q("Pending", ""), []string{}}, // states are exact
		{q("bogus", ""), []string{}},
		{q("", "a"), []string{"p3", "p4", "p7", "p1"}},
		{q("", "b"), []string{"p6", "p2", "p5"}},
		{q("", "c"), []string{}},      // an identity without approvals
		{q("", "nobody"), []string{}}, // no such identity
		{q("", "A"), []string{}},      // ids are exact
		{q(store.ApprovalPending, "a"), []string{"p3", "p4", "p7"}},
		{q(store.ApprovalPending, "b"), []string{"p6", "p5"}},
		{q(store.ApprovalApproved, "a"), []string{"p1"}},
		{q(store.ApprovalApproved, "b"), []string{"p2"}},
		{q(store.ApprovalExpired, "a"), []string{}},
		{q(store.ApprovalPending, "c"), []string{}},
		{q(store.ApprovalPending, "nobody"), []string{}},
	}
	for _, tc := range tests {
		got := listApprovals(t, s, tc.q)
		if ids := approvalIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Approvals(%+v) = %v, want %v", tc.q, ids, tc.want)
		}
		for _, a := range got {
			if d := approvalDiff(a, all[a.ID]); d != "" {
				t.Errorf("Approvals(%+v): approval %q: %s", tc.q, a.ID, d)
			}
		}
	}

	// A transaction lists its own uncommitted writes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutApproval(ctx, mk("p0", "c", store.ApprovalPending, -2*time.Hour)); err != nil {
			return err
		}
		done := nextApproval(all["p3"])
		done.State = store.ApprovalExpired
		if err := tx.PutApproval(ctx, done); err != nil {
			return err
		}
		for _, tc := range []struct {
			q    store.ApprovalQuery
			want []string
		}{
			{q("", ""), []string{"p0", "p3", "p6", "p2", "p4", "p5", "p7", "p1"}},
			{q(store.ApprovalPending, ""), []string{"p0", "p6", "p4", "p5", "p7"}},
			{q("", "c"), []string{"p0"}},
			{q(store.ApprovalExpired, "a"), []string{"p3"}},
		} {
			got, err := tx.Approvals(ctx, tc.q)
			if err != nil {
				return err
			}
			if ids := approvalIDs(got); !slices.Equal(ids, tc.want) {
				t.Errorf("Approvals(%+v) in the writing transaction = %v, want %v", tc.q, ids, tc.want)
			}
		}
		return nil
	})
}

func testApprovalRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	putIdentities(t, s, identity("i", store.StateActive))
	kept := approval("kept", "i")
	putApprovals(t, s, kept)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutApproval(ctx, approval("new", "i")); err != nil {
			return err
		}
		changed := nextApproval(kept)
		changed.State = store.ApprovalApproved
		changed.Decisions = []byte(`[{"by":"x"}]`)
		if err := tx.PutApproval(ctx, changed); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	wantNoApproval(t, s, "new")
	wantApproval(t, s, kept)
	if got := approvalIDs(listApprovals(t, s, store.ApprovalQuery{State: store.ApprovalApproved})); len(got) != 0 {
		t.Errorf("approved Approvals after rollback = %v, want none", got)
	}
	// The rolled-back version and insert are free again.
	putApprovals(t, s, nextApproval(kept), approval("new", "i"))
	wantApproval(t, s, nextApproval(kept))
	wantApproval(t, s, approval("new", "i"))
}
