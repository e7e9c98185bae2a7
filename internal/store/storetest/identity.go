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

// Conformance cases for identities and the per-resource audit view.

func identity(id, state string) *store.Identity {
	return &store.Identity{
		ID:       id,
		UserName: "user-" + id,
		State:    state,
		Version:  1,
		Created:  base,
		Updated:  base,
	}
}

// nextIdentity returns a copy of id prepared for a replacing PutIdentity.
func nextIdentity(id *store.Identity) *store.Identity {
	c := *id
	c.Version++
	c.Updated = c.Updated.Add(time.Second)
	return &c
}

func putIdentities(t *testing.T, s store.Store, ids ...*store.Identity) {
	t.Helper()
	putAll(t, s, store.Tx.PutIdentity, ids...)
}

func getIdentity(t *testing.T, s store.Store, id string) (*store.Identity, error) {
	return read(t, s, func(tx store.ReadTx) (*store.Identity, error) { return tx.GetIdentity(t.Context(), id) })
}

func wantIdentity(t *testing.T, s store.Store, want *store.Identity) {
	t.Helper()
	got, err := getIdentity(t, s, want.ID)
	if err != nil {
		t.Fatalf("GetIdentity(%q): %v", want.ID, err)
	}
	if d := identityDiff(got, want); d != "" {
		t.Fatalf("identity %q: %s", want.ID, d)
	}
}

func wantNoIdentity(t *testing.T, s store.Store, id string) {
	t.Helper()
	if got, err := getIdentity(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetIdentity(%q) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// identityDiff compares every field. Desired must come back byte for byte,
// nil when nil was stored; an empty non-nil Desired may come back nil.
func identityDiff(got, want *store.Identity) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"UserName", got.UserName, want.UserName},
		{"State", got.State, want.State},
		{"MFAMethod", got.MFAMethod, want.MFAMethod},
	} {
		if f.got != f.want {
			add(f.name, f.got, f.want)
		}
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"StartDate", got.StartDate, want.StartDate},
		{"EndDate", got.EndDate, want.EndDate},
		{"MFAEnrolledAt", got.MFAEnrolledAt, want.MFAEnrolledAt},
		{"LeaverAt", got.LeaverAt, want.LeaverAt},
		{"RevokedAt", got.RevokedAt, want.RevokedAt},
		{"NextCheck", got.NextCheck, want.NextCheck},
		{"Created", got.Created, want.Created},
		{"Updated", got.Updated, want.Updated},
	} {
		if !sameTime(f.got, f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(got.Desired, want.Desired) || (want.Desired == nil && got.Desired != nil) {
		add("Desired", fmt.Sprintf("%q (nil: %t)", got.Desired, got.Desired == nil),
			fmt.Sprintf("%q (nil: %t)", want.Desired, want.Desired == nil))
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	return strings.Join(d, "; ")
}

func identityIDs(ids []*store.Identity) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, id.ID)
	}
	return out
}

func testIdentityRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC-03:00", -3*3600)
	full := &store.Identity{
		ID:            "id-1",
		UserName:      "Ada.Lovelace@example.com",
		State:         store.StateActive,
		StartDate:     at(-48 * time.Hour).In(zone),
		EndDate:       at(365*24*time.Hour + 3*time.Nanosecond),
		MFAMethod:     "webauthn",
		MFAEnrolledAt: at(time.Minute + time.Nanosecond),
		Desired:       []byte(`[{"connector":"github","entitlement":"org:acme"} , {"b":1,"a":[ ]}]`),
		LeaverAt:      at(2 * time.Hour),
		RevokedAt:     at(2*time.Hour + 5*time.Minute + time.Nanosecond).In(zone),
		NextCheck:     at(365*24*time.Hour + 3*time.Nanosecond).In(zone),
		Version:       1,
		Created:       base.In(zone),
		Updated:       at(time.Nanosecond),
	}
	// A write transaction sees its own writes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutIdentity(ctx, full); err != nil {
			return err
		}
		got, err := tx.GetIdentity(ctx, full.ID)
		if err != nil {
			return err
		}
		if d := identityDiff(got, full); d != "" {
			t.Errorf("identity read in its own transaction: %s", d)
		}
		return nil
	})
	wantIdentity(t, s, full)
	wantNoIdentity(t, s, "id-2")

	// Each version replaces every field; optional times and Desired clear.
	cleared := nextIdentity(full)
	cleared.UserName = "ada"
	cleared.State = store.StateTerminated
	cleared.StartDate, cleared.EndDate, cleared.MFAEnrolledAt = time.Time{}, time.Time{}, time.Time{}
	cleared.LeaverAt, cleared.RevokedAt, cleared.NextCheck = time.Time{}, time.Time{}, time.Time{}
	cleared.MFAMethod = ""
	cleared.Desired = nil
	emptyArray := nextIdentity(cleared)
	emptyArray.Desired = []byte(`[]`)
	for _, want := range []*store.Identity{cleared, emptyArray} {
		putIdentities(t, s, want)
		wantIdentity(t, s, want)
	}

	// An empty non-nil Desired reads back empty (nil allowed).
	empty := nextIdentity(emptyArray)
	empty.Desired = []byte{}
	putIdentities(t, s, empty)
	got, err := getIdentity(t, s, empty.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Desired) != 0 {
		t.Errorf("Desired stored as []byte{} read back as %q", got.Desired)
	}

	// Every state is storable.
	for i, state := range []string{store.StatePreHire, store.StateAwaitingMFA, store.StateActive, store.StateTerminated, store.StateDeleted} {
		want := identity(fmt.Sprintf("state-%d", i), state)
		putIdentities(t, s, want)
		wantIdentity(t, s, want)
	}
}

func testIdentityInsertConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := identity("dup", store.StatePreHire)
	putIdentities(t, s, first)
	second := identity("dup", store.StateActive)
	second.UserName = "someone-else"
	err := s.Update(ctx, func(tx store.Tx) error { return tx.PutIdentity(ctx, second) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutIdentity version 1 over an existing identity: err = %v, want ErrConflict", err)
	}
	wantIdentity(t, s, first)
}

func testIdentityVersionCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := identity("i", store.StateAwaitingMFA)
	v2 := nextIdentity(v1)
	v2.State = store.StateActive
	putIdentities(t, s, v1)
	putIdentities(t, s, v2)

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
		{"replaces a missing identity", "missing", 2},
	}
	for _, tc := range tests {
		stale := nextIdentity(v2)
		stale.ID = tc.id
		stale.Version = tc.version
		stale.State = store.StateTerminated
		stale.Desired = []byte(`["stale"]`)
		// The failed put writes nothing even though the transaction commits.
		update(t, s, func(tx store.Tx) error {
			if err := tx.PutIdentity(ctx, stale); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
			}
			return nil
		})
	}
	wantIdentity(t, s, v2)
	wantNoIdentity(t, s, "missing")

	v3 := nextIdentity(v2)
	v3.State = store.StateTerminated
	putIdentities(t, s, v3)
	wantIdentity(t, s, v3)
}

func testListIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	states := map[string]string{
		"a": store.StateActive, "b": store.StatePreHire, "c": store.StateActive,
		"d": store.StateTerminated, "e": store.StateActive, "f": store.StateAwaitingMFA,
		"g": store.StateDeleted,
	}
	// Inserted out of id order, so id order is not insertion order.
	all := map[string]*store.Identity{}
	for _, id := range []string{"e", "b", "g", "a", "f", "c", "d"} {
		all[id] = identity(id, states[id])
		all[id].Desired = fmt.Appendf(nil, `[%q]`, id)
		putIdentities(t, s, all[id])
	}
	list := func(q store.IdentityQuery) []*store.Identity {
		t.Helper()
		var out []*store.Identity
		view(t, s, func(tx store.ReadTx) error {
			var err error
			out, err = tx.ListIdentities(ctx, q)
			return err
		})
		for _, got := range out {
			if d := identityDiff(got, all[got.ID]); d != "" {
				t.Errorf("ListIdentities(%+v): identity %q: %s", q, got.ID, d)
			}
		}
		return out
	}

	tests := []struct {
		q    store.IdentityQuery
		want []string
	}{
		{store.IdentityQuery{Limit: 100}, []string{"a", "b", "c", "d", "e", "f", "g"}},
		{store.IdentityQuery{Limit: 3}, []string{"a", "b", "c"}},
		{store.IdentityQuery{After: "c", Limit: 3}, []string{"d", "e", "f"}},
		{store.IdentityQuery{After: "bb", Limit: 100}, []string{"c", "d", "e", "f", "g"}},
		{store.IdentityQuery{After: "g", Limit: 100}, []string{}},
		{store.IdentityQuery{State: store.StateActive, Limit: 100}, []string{"a", "c", "e"}},
		{store.IdentityQuery{State: store.StateActive, Limit: 2}, []string{"a", "c"}},
		{store.IdentityQuery{State: store.StateActive, After: "a", Limit: 100}, []string{"c", "e"}},
		{store.IdentityQuery{State: store.StateActive, After: "e", Limit: 100}, []string{}},
		{store.IdentityQuery{State: store.StateDeleted, Limit: 100}, []string{"g"}},
	}
	for _, tc := range tests {
		if got := identityIDs(list(tc.q)); !slices.Equal(got, tc.want) {
			t.Errorf("ListIdentities(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}

	// Walking the cursor visits everything once, per state and overall.
	for _, state := range []string{"", store.StateActive} {
		var got []string
		after := ""
		for range 10 {
			page := list(store.IdentityQuery{State: state, After: after, Limit: 2})
			if len(page) == 0 {
				break
			}
			got = append(got, identityIDs(page)...)
			after = page[len(page)-1].ID
		}
		want := identityIDs(list(store.IdentityQuery{State: state, Limit: 100}))
		if !slices.Equal(got, want) {
			t.Errorf("paging state %q by 2 = %v, want %v", state, got, want)
		}
	}

	// A state change moves the identity between filtered lists.
	moved := nextIdentity(all["a"])
	moved.State = store.StateTerminated
	putIdentities(t, s, moved)
	all["a"] = moved
	if got := identityIDs(list(store.IdentityQuery{State: store.StateTerminated, Limit: 100})); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("terminated after moving a = %v, want [a d]", got)
	}
}

func testDueIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	checks := map[string]time.Time{
		"late":   at(-time.Hour),
		"early":  at(-2 * time.Hour),
		"now":    at(0),
		"1ns":    at(time.Nanosecond), // just after now: not due
		"future": at(24 * time.Hour),
		"never":  {},
	}
	for id, check := range checks {
		i := identity(id, store.StatePreHire)
		i.NextCheck = check
		putIdentities(t, s, i)
	}
	due := func(now time.Time, limit int) []string {
		t.Helper()
		var out []*store.Identity
		view(t, s, func(tx store.ReadTx) error {
			var err error
			out, err = tx.DueIdentities(ctx, now, limit)
			return err
		})
		for _, got := range out {
			if !sameTime(got.NextCheck, checks[got.ID]) {
				t.Errorf("DueIdentities: %q NextCheck = %v, want %v", got.ID, got.NextCheck, checks[got.ID])
			}
		}
		return identityIDs(out)
	}
	tests := []struct {
		now   time.Time
		limit int
		want  []string
	}{
		{at(0), 10, []string{"early", "late", "now"}},
		{at(0).In(time.FixedZone("X", 3600)), 10, []string{"early", "late", "now"}},
		{at(0), 2, []string{"early", "late"}},
		{at(0), 1, []string{"early"}},
		{at(-time.Nanosecond), 10, []string{"early", "late"}},
		{at(-3 * time.Hour), 10, []string{}},
		{at(time.Nanosecond), 10, []string{"early", "late", "now", "1ns"}},
		{at(100 * 365 * 24 * time.Hour), 10, []string{"early", "late", "now", "1ns", "future"}},
	}
	for _, tc := range tests {
		if got := due(tc.now, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("DueIdentities(%v, %d) = %v, want %v", tc.now, tc.limit, got, tc.want)
		}
	}

	// Clearing NextCheck takes the identity out; setting it puts it back.
	early, err := getIdentity(t, s, "early")
	if err != nil {
		t.Fatal(err)
	}
	cleared := nextIdentity(early)
	cleared.NextCheck = time.Time{}
	putIdentities(t, s, cleared)
	never, err := getIdentity(t, s, "never")
	if err != nil {
		t.Fatal(err)
	}
	set := nextIdentity(never)
	set.NextCheck = at(-90 * time.Minute)
	putIdentities(t, s, set)
	checks["never"] = set.NextCheck
	if got, want := due(at(0), 10), []string{"never", "late", "now"}; !slices.Equal(got, want) {
		t.Errorf("DueIdentities after changes = %v, want %v", got, want)
	}
}

func testAuditFor(t *testing.T, s store.Store) {
	ctx := t.Context()
	about := []struct{ typ, id string }{
		{store.TypeUser, "u1"},     // 1
		{store.TypeUser, "u2"},     // 2
		{"Identity", "u1"},         // 3
		{store.TypeUser, "u1"},     // 4
		{store.TypeGroup, "u1"},    // 5: same id, other type
		{store.TypeUser, "u1"},     // 6
		{store.TypeUser, "u10"},    // 7: id with u1 as prefix
		{store.TypeUser, "u1"},     // 8
		{store.TypeUser, "U1"},     // 9: ids are case-sensitive
		{store.TypeUser, "u1 "},    // 10
		{store.TypeUser, "u1"},     // 11
		{"Identity", "u1"},         // 12
		{store.TypeGroup, "other"}, // 13
	}
	recs := map[int64]*store.AuditRecord{}
	update(t, s, func(tx store.Tx) error {
		for i, a := range about {
			r := auditRecord(int64(i + 1))
			r.ResourceType, r.ResourceID = a.typ, a.id
			recs[r.Seq] = r
			if err := tx.AppendAudit(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		typ, id string
		from    int64
		limit   int
		want    []int64
	}{
		{store.TypeUser, "u1", 0, -1, []int64{1, 4, 6, 8, 11}},
		{store.TypeUser, "u1", 1, 100, []int64{1, 4, 6, 8, 11}},
		{store.TypeUser, "u1", 2, -1, []int64{4, 6, 8, 11}},
		{store.TypeUser, "u1", 4, 2, []int64{4, 6}},
		{store.TypeUser, "u1", 7, 2, []int64{8, 11}},
		{store.TypeUser, "u1", 11, 5, []int64{11}},
		{store.TypeUser, "u1", 12, -1, nil},
		{store.TypeUser, "u1", 1, 0, nil},
		{"Identity", "u1", 0, -1, []int64{3, 12}},
		{store.TypeGroup, "u1", 0, -1, []int64{5}},
		{store.TypeUser, "u2", 0, -1, []int64{2}},
		{store.TypeUser, "U1", 0, -1, []int64{9}},
		{store.TypeUser, "nobody", 0, -1, nil},
		{"Identity", "u2", 0, -1, nil},
	}
	for _, tc := range tests {
		var got []int64
		view(t, s, func(tx store.ReadTx) error {
			out, err := tx.AuditFor(ctx, tc.typ, tc.id, tc.from, tc.limit)
			for _, r := range out {
				got = append(got, r.Seq)
				if d := auditDiff(r, recs[r.Seq]); d != "" {
					t.Errorf("AuditFor(%s, %q, %d, %d) record %d: %s", tc.typ, tc.id, tc.from, tc.limit, r.Seq, d)
				}
			}
			return err
		})
		if !slices.Equal(got, tc.want) {
			t.Errorf("AuditFor(%s, %q, %d, %d) = %v, want %v", tc.typ, tc.id, tc.from, tc.limit, got, tc.want)
		}
	}
}

func testIdentityRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	kept := identity("kept", store.StatePreHire)
	putIdentities(t, s, kept)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutIdentity(ctx, identity("ghost", store.StateActive)); err != nil {
			return err
		}
		changed := nextIdentity(kept)
		changed.State = store.StateActive
		if err := tx.PutIdentity(ctx, changed); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	wantNoIdentity(t, s, "ghost")
	wantIdentity(t, s, kept)
	// The rolled-back version is free again.
	again := nextIdentity(kept)
	putIdentities(t, s, again)
	wantIdentity(t, s, again)
}
