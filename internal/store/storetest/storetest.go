// Package storetest is the conformance suite of the store contract. Every
// engine runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// Behaviour changes go into this suite, not into one engine's tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Run runs every conformance test against stores made by open. Tests run in
// parallel and each one calls open once, so open must return a fresh, empty,
// migrated store and arrange its Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ResourceRoundTrip", testResourceRoundTrip},
		{"DuplicateID", testDuplicateID},
		{"VersionCheck", testVersionCheck},
		{"UserNameUnique", testUserNameUnique},
		{"NameReuse", testNameReuse},
		{"GroupNamesNotUnique", testGroupNamesNotUnique},
		{"ListResources", testListResources},
		{"UpdateKeepsIndexes", testUpdateKeepsIndexes},
		{"ScanResources", testScanResources},
		{"Members", testMembers},
		{"GroupsOfEach", testGroupsOfEach},
		{"CountsTrackWrites", testCountsTrackWrites},
		{"ScanHonoursCancel", testScanHonoursCancel},
		{"Lookup", testLookup},
		{"AddMembersMissing", testAddMembersMissing},
		{"Tokens", testTokens},
		{"Audit", testAudit},
		{"IdentityRoundTrip", testIdentityRoundTrip},
		{"IdentityInsertConflict", testIdentityInsertConflict},
		{"IdentityVersionCheck", testIdentityVersionCheck},
		{"ListIdentities", testListIdentities},
		{"DueIdentities", testDueIdentities},
		{"AuditFor", testAuditFor},
		{"IdentityRollback", testIdentityRollback},
		{"TOTPRoundTrip", testTOTPRoundTrip},
		{"TOTPInsertConflict", testTOTPInsertConflict},
		{"TOTPVersionCheck", testTOTPVersionCheck},
		{"TOTPMissingIdentity", testTOTPMissingIdentity},
		{"TOTPDelete", testTOTPDelete},
		{"TOTPRollback", testTOTPRollback},
		{"ExceptionRoundTrip", testExceptionRoundTrip},
		{"ExceptionInvalid", testExceptionInvalid},
		{"ExceptionDuplicateID", testExceptionDuplicateID},
		{"ExceptionMissingIdentity", testExceptionMissingIdentity},
		{"ListExceptions", testListExceptions},
		{"EndException", testEndException},
		{"ExceptionLive", testExceptionLive},
		{"ExceptionRollback", testExceptionRollback},
		{"ApprovalRoundTrip", testApprovalRoundTrip},
		{"ApprovalInvalid", testApprovalInvalid},
		{"ApprovalInsertConflict", testApprovalInsertConflict},
		{"ApprovalMissingIdentity", testApprovalMissingIdentity},
		{"ApprovalVersionCheck", testApprovalVersionCheck},
		{"ListApprovals", testListApprovals},
		{"ApprovalRollback", testApprovalRollback},
		{"EnqueueDelivery", testEnqueueDelivery},
		{"DeliveryOnePairAtATime", testDeliveryOnePairAtATime},
		{"ClaimDeliveries", testClaimDeliveries},
		{"DeliveryWrongState", testDeliveryWrongState},
		{"FailDelivery", testFailDelivery},
		{"RetryDelivery", testRetryDelivery},
		{"FinishDelivery", testFinishDelivery},
		{"RequeueRunning", testRequeueRunning},
		{"QueueStats", testQueueStats},
		{"ListDeliveries", testListDeliveries},
		{"HasDueDelivery", testHasDueDelivery},
		{"DeliveryRollback", testDeliveryRollback},
		{"Accounts", testAccounts},
		{"SETJTIRecord", testSETJTIRecord},
		{"SETJTIRollback", testSETJTIRollback},
		{"SETJTIExpiry", testSETJTIExpiry},
		{"SETJTIInvalid", testSETJTIInvalid},
		{"UpdateRollbackOnError", testRollbackOnError},
		{"UpdateRollbackOnPanic", testRollbackOnPanic},
		{"UpdateCanceledContext", testCanceledContext},
		{"ViewIsolation", testViewIsolation},
		{"ConcurrentWriters", testConcurrentWriters},
		{"MigrateIdempotent", testMigrateIdempotent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// base has a nanosecond part so that any rounding shows.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

func newResource(typ, id, name string) *store.Resource {
	return &store.Resource{
		Type:         typ,
		ID:           id,
		Name:         name,
		Display:      name,
		Version:      1,
		Created:      base,
		LastModified: base,
		Data:         fmt.Appendf(nil, `{"name":%q}`, name),
	}
}

func user(id, name string) *store.Resource  { return newResource(store.TypeUser, id, name) }
func group(id, name string) *store.Resource { return newResource(store.TypeGroup, id, name) }

// next returns a copy of r prepared for UpdateResource.
func next(r *store.Resource) *store.Resource {
	c := *r
	c.Version++
	c.LastModified = c.LastModified.Add(time.Second)
	return &c
}

func update(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(store.ReadTx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// putAll writes each v with put (a store.Tx method expression such as
// store.Tx.PutIdentity) in one committed Update.
func putAll[T any](t *testing.T, s store.Store, put func(store.Tx, context.Context, T) error, vs ...T) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, v := range vs {
			if err := put(tx, t.Context(), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// read returns what get reads in a View, and its error.
func read[T any](t *testing.T, s store.Store, get func(store.ReadTx) (T, error)) (T, error) {
	var got T
	err := s.View(t.Context(), func(tx store.ReadTx) error {
		var err error
		got, err = get(tx)
		return err
	})
	return got, err
}

// mustRead is read for reads that must succeed.
func mustRead[T any](t *testing.T, s store.Store, get func(store.ReadTx) (T, error)) T {
	t.Helper()
	got, err := read(t, s, get)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func create(t *testing.T, s store.Store, rs ...*store.Resource) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, r := range rs {
			if err := tx.CreateResource(t.Context(), r); err != nil {
				return err
			}
		}
		return nil
	})
}

// get returns the committed resource, or nil and the error.
func get(t *testing.T, s store.Store, typ, id string) (*store.Resource, error) {
	t.Helper()
	var r *store.Resource
	err := s.View(t.Context(), func(tx store.ReadTx) error {
		var err error
		r, err = tx.GetResource(t.Context(), typ, id)
		return err
	})
	return r, err
}

func mustGet(t *testing.T, s store.Store, typ, id string) *store.Resource {
	t.Helper()
	r, err := get(t, s, typ, id)
	if err != nil {
		t.Fatalf("GetResource(%s, %q): %v", typ, id, err)
	}
	return r
}

func wantNotFound(t *testing.T, s store.Store, typ, id string) {
	t.Helper()
	if r, err := get(t, s, typ, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetResource(%s, %q) = %+v, %v; want ErrNotFound", typ, id, r, err)
	}
}

// sameTime reports whether got is want to the nanosecond and in UTC (the
// zero time is accepted as is).
func sameTime(got, want time.Time) bool {
	return got.Equal(want) && (got.IsZero() || got.Location() == time.UTC)
}

func resourceDiff(got, want *store.Resource) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.Type != want.Type {
		add("Type", got.Type, want.Type)
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.ExternalID != want.ExternalID {
		add("ExternalID", got.ExternalID, want.ExternalID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if got.Display != want.Display {
		add("Display", got.Display, want.Display)
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	if !sameTime(got.Created, want.Created) {
		add("Created", got.Created, want.Created)
	}
	if !sameTime(got.LastModified, want.LastModified) {
		add("LastModified", got.LastModified, want.LastModified)
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("Data", string(got.Data), string(want.Data))
	}
	return strings.Join(d, "; ")
}

func wantResource(t *testing.T, got, want *store.Resource) {
	t.Helper()
	if d := resourceDiff(got, want); d != "" {
		t.Fatalf("resource %q: %s", want.ID, d)
	}
}

func ids(rs []*store.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testResourceRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	for _, typ := range []string{store.TypeUser, store.TypeGroup} {
		id := "rt-" + typ
		want := &store.Resource{
			Type:         typ,
			ID:           id,
			ExternalID:   "ext-" + typ,
			Name:         "Name " + typ,
			Display:      "Display " + typ,
			Version:      1,
			Created:      base.In(zone),
			LastModified: at(time.Hour + time.Nanosecond),
			Data:         []byte(`{"emails":[{"value":"a@example.com"}],"x":1.50}`),
		}
		// A write transaction sees its own writes.
		update(t, s, func(tx store.Tx) error {
			if err := tx.CreateResource(ctx, want); err != nil {
				return err
			}
			got, err := tx.GetResource(ctx, typ, id)
			if err != nil {
				return err
			}
			wantResource(t, got, want)
			return nil
		})
		wantResource(t, mustGet(t, s, typ, id), want)

		other := store.TypeGroup
		if typ == store.TypeGroup {
			other = store.TypeUser
		}
		wantNotFound(t, s, other, id)

		upd := next(want)
		upd.ExternalID = "" // removed
		upd.Name = "Renamed " + typ
		upd.Display = "Shown " + typ
		upd.Data = []byte(`{}`)
		update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, upd) })
		wantResource(t, mustGet(t, s, typ, id), upd)

		update(t, s, func(tx store.Tx) error { return tx.DeleteResource(ctx, typ, id) })
		wantNotFound(t, s, typ, id)

		for name, fn := range map[string]func(store.Tx) error{
			"delete again":      func(tx store.Tx) error { return tx.DeleteResource(ctx, typ, id) },
			"update deleted":    func(tx store.Tx) error { return tx.UpdateResource(ctx, next(upd)) },
			"delete other type": func(tx store.Tx) error { return tx.DeleteResource(ctx, other, id) },
		} {
			if err := s.Update(ctx, fn); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s %s: err = %v, want ErrNotFound", typ, name, err)
			}
		}
	}
}

func testDuplicateID(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, user("dup", "first"))
	for _, r := range []*store.Resource{user("dup", "second"), group("dup", "a group")} {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateResource(ctx, r) }); !errors.Is(err, store.ErrConflict) {
			t.Errorf("create %s with taken id: err = %v, want ErrConflict", r.Type, err)
		}
	}
	wantResource(t, mustGet(t, s, store.TypeUser, "dup"), user("dup", "first"))
	wantNotFound(t, s, store.TypeGroup, "dup")
}

func testVersionCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := user("u", "ursula")
	v2 := next(v1)
	v2.Data = []byte(`{"v":2}`)
	create(t, s, v1)
	update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, v2) })

	for _, version := range []int64{0, 1, 2, 4} {
		stale := next(v2)
		stale.Version = version
		stale.Data = []byte(`{"stale":true}`)
		err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateResource(ctx, stale) })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("update with Version %d over stored 2: err = %v, want ErrConflict", version, err)
		}
	}
	wantResource(t, mustGet(t, s, store.TypeUser, "u"), v2)
}

func testUserNameUnique(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct{ stored, clash string }{
		{"alice", "alice"},
		{"bob", "BOB"},
		{"Carol.Smith@Example.COM", "carol.smith@example.com"},
		{"Émile", "éMILE"},
	}
	for i, tc := range tests {
		stored := user(fmt.Sprintf("s%d", i), tc.stored)
		clash := user(fmt.Sprintf("c%d", i), tc.clash)
		other := user(fmt.Sprintf("o%d", i), fmt.Sprintf("other%d", i))

		// The conflict leaves the transaction usable and writes nothing.
		update(t, s, func(tx store.Tx) error {
			if err := tx.CreateResource(ctx, stored); err != nil {
				return err
			}
			if err := tx.CreateResource(ctx, clash); !errors.Is(err, store.ErrConflict) {
				t.Errorf("create %q over %q: err = %v, want ErrConflict", tc.clash, tc.stored, err)
			}
			return tx.CreateResource(ctx, other)
		})
		wantNotFound(t, s, store.TypeUser, clash.ID)

		renamed := next(other)
		renamed.Name = tc.clash
		err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateResource(ctx, renamed) })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("rename to %q over %q: err = %v, want ErrConflict", tc.clash, tc.stored, err)
		}
		wantResource(t, mustGet(t, s, store.TypeUser, other.ID), other)

		// A user may change the case of its own name.
		recased := next(stored)
		recased.Name = tc.clash
		update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, recased) })
		wantResource(t, mustGet(t, s, store.TypeUser, stored.ID), recased)
	}
}

func testNameReuse(t *testing.T, s store.Store) {
	ctx := t.Context()
	deleted := user("d1", "dana")
	renamed := user("r1", "rick")
	create(t, s, deleted, renamed)
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteResource(ctx, store.TypeUser, deleted.ID); err != nil {
			return err
		}
		r := next(renamed)
		r.Name = "rick2"
		return tx.UpdateResource(ctx, r)
	})
	create(t, s, user("d2", "DANA"), user("r2", "Rick"))
	mustGet(t, s, store.TypeUser, "d2")
	mustGet(t, s, store.TypeUser, "r2")
}

func testGroupNamesNotUnique(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, group("g1", "Eng"), group("g2", "eng"), group("g3", "Eng"), user("u1", "eng"))
	view(t, s, func(tx store.ReadTx) error {
		got, total, err := tx.ListResources(ctx, store.ListQuery{
			Type: store.TypeGroup, IndexAttr: store.IndexName, IndexValue: "ENG", Limit: -1,
		})
		if err != nil {
			return err
		}
		if want := []string{"g1", "g2", "g3"}; total != 3 || !slices.Equal(ids(got), want) {
			t.Errorf("groups named ENG = %v (total %d), want %v (total 3)", ids(got), total, want)
		}
		return nil
	})
}

// testUpdateKeepsIndexes checks that every indexed lookup and sort follows
// an update, whichever columns it changes: an engine may skip index work
// for columns an update leaves alone, and must not skip it for the rest.
func testUpdateKeepsIndexes(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := user("u1", "Alice")
	u.ExternalID, u.Display = "e1", "Zed"
	other := user("u2", "bob")
	other.ExternalID, other.Display = "e2", "Mid"
	create(t, s, u, other)
	lookup := func(attr store.IndexAttr, value string) []string {
		var out []string
		view(t, s, func(tx store.ReadTx) error {
			got, _, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, IndexAttr: attr, IndexValue: value, Limit: -1})
			out = ids(got)
			return err
		})
		return out
	}
	byDisplay := func() []string {
		var out []string
		view(t, s, func(tx store.ReadTx) error {
			got, _, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, Sort: store.SortDisplay, Limit: -1})
			out = ids(got)
			return err
		})
		return out
	}
	steps := []struct {
		name              string
		edit              func(r *store.Resource)
		name1, ext1, gone string // lookups that must find u1; one that must not
		display           []string
	}{
		{"display only", func(r *store.Resource) { r.Display = "Aaron" }, "alice", "e1", "", []string{"u1", "u2"}},
		{"externalId only", func(r *store.Resource) { r.ExternalID = "e9" }, "alice", "e9", "e1", []string{"u1", "u2"}},
		{"name case only", func(r *store.Resource) { r.Name = "ALICE" }, "Alice", "e9", "", []string{"u1", "u2"}},
		{"rename", func(r *store.Resource) { r.Name = "carol" }, "carol", "e9", "alice", []string{"u1", "u2"}},
		{"display and externalId removed", func(r *store.Resource) { r.Display, r.ExternalID = "Zz", "" }, "carol", "", "e9", []string{"u2", "u1"}},
	}
	cur := u
	for _, st := range steps {
		upd := next(cur)
		st.edit(upd)
		update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, upd) })
		wantResource(t, mustGet(t, s, store.TypeUser, "u1"), upd)
		if got := lookup(store.IndexName, st.name1); !slices.Equal(got, []string{"u1"}) {
			t.Errorf("%s: userName %q finds %v, want [u1]", st.name, st.name1, got)
		}
		if st.ext1 != "" {
			if got := lookup(store.IndexExternalID, st.ext1); !slices.Equal(got, []string{"u1"}) {
				t.Errorf("%s: externalId %q finds %v, want [u1]", st.name, st.ext1, got)
			}
		}
		if st.gone != "" {
			if got := lookup(store.IndexName, st.gone); len(got) != 0 {
				t.Errorf("%s: old userName %q still finds %v", st.name, st.gone, got)
			}
			if got := lookup(store.IndexExternalID, st.gone); len(got) != 0 {
				t.Errorf("%s: old externalId %q still finds %v", st.name, st.gone, got)
			}
		}
		if got := byDisplay(); !slices.Equal(got, st.display) {
			t.Errorf("%s: sorted by display = %v, want %v", st.name, got, st.display)
		}
		cur = upd
	}
	// The name freed by the rename is free; bob's is still taken.
	create(t, s, user("u3", "alice"))
	taken := next(cur)
	taken.Name = "BOB"
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateResource(ctx, taken) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto a taken userName: err = %v, want ErrConflict", err)
	}
}

func testListResources(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, name, ext, display string, created, modified time.Duration) *store.Resource {
		r := user(id, name)
		r.ExternalID, r.Display = ext, display
		r.Created, r.LastModified = at(created), at(modified)
		return r
	}
	// Creation order u1..u5. Ties: u2/u3 on created, u1/u2 on lastModified,
	// u2/u5 on a missing externalId. Binary order of names and displays
	// differs from the case-insensitive one.
	fixture := []*store.Resource{
		mk("u1", "carol", "e3", "Zed", 2*time.Second, 5*time.Second),
		mk("u2", "alice", "", "mallory", time.Second, 5*time.Second),
		mk("u3", "Bob", "e1", "ALBERT", time.Second, time.Second),
		mk("u4", "dave", "e2", "kim", 3*time.Second, 2*time.Second),
		mk("u5", "erin", "", "Bea", 0, 9*time.Second),
	}
	g := group("g1", "alice")
	g.ExternalID = "e1"
	create(t, s, append(fixture, g)...)

	users := func(q store.ListQuery) store.ListQuery { q.Type = store.TypeUser; return q }
	tests := []struct {
		name  string
		q     store.ListQuery
		want  []string
		total int
	}{
		{"all", users(store.ListQuery{Limit: -1}), []string{"u1", "u2", "u3", "u4", "u5"}, 5},
		{"all descending", users(store.ListQuery{Limit: -1, Descending: true}), []string{"u5", "u4", "u3", "u2", "u1"}, 5},
		{"groups", store.ListQuery{Type: store.TypeGroup, Limit: -1}, []string{"g1"}, 1},

		{"by id", users(store.ListQuery{IndexAttr: store.IndexID, IndexValue: "u3", Limit: -1}), []string{"u3"}, 1},
		{"by id of other type", users(store.ListQuery{IndexAttr: store.IndexID, IndexValue: "g1", Limit: -1}), []string{}, 0},
		{"by unknown id", users(store.ListQuery{IndexAttr: store.IndexID, IndexValue: "nope", Limit: -1}), []string{}, 0},
		{"by externalId", users(store.ListQuery{IndexAttr: store.IndexExternalID, IndexValue: "e1", Limit: -1}), []string{"u3"}, 1},
		{"by externalId is case-exact", users(store.ListQuery{IndexAttr: store.IndexExternalID, IndexValue: "E1", Limit: -1}), []string{}, 0},
		{"by empty externalId", users(store.ListQuery{IndexAttr: store.IndexExternalID, IndexValue: "", Limit: -1}), []string{}, 0},
		{"by name folds case", users(store.ListQuery{IndexAttr: store.IndexName, IndexValue: "ALICE", Limit: -1}), []string{"u2"}, 1},
		{"by name folds stored case", users(store.ListQuery{IndexAttr: store.IndexName, IndexValue: "bob", Limit: -1}), []string{"u3"}, 1},
		{"group by name", store.ListQuery{Type: store.TypeGroup, IndexAttr: store.IndexName, IndexValue: "Alice", Limit: -1}, []string{"g1"}, 1},
		{"by name, count only", users(store.ListQuery{IndexAttr: store.IndexName, IndexValue: "alice"}), []string{}, 1},

		{"name", users(store.ListQuery{Sort: store.SortName, Limit: -1}), []string{"u2", "u3", "u1", "u4", "u5"}, 5},
		{"name descending", users(store.ListQuery{Sort: store.SortName, Descending: true, Limit: -1}), []string{"u5", "u4", "u1", "u3", "u2"}, 5},
		{"externalId", users(store.ListQuery{Sort: store.SortExternalID, Limit: -1}), []string{"u3", "u4", "u1", "u2", "u5"}, 5},
		{"externalId descending", users(store.ListQuery{Sort: store.SortExternalID, Descending: true, Limit: -1}), []string{"u5", "u2", "u1", "u4", "u3"}, 5},
		{"created", users(store.ListQuery{Sort: store.SortCreated, Limit: -1}), []string{"u5", "u2", "u3", "u1", "u4"}, 5},
		{"created descending", users(store.ListQuery{Sort: store.SortCreated, Descending: true, Limit: -1}), []string{"u4", "u1", "u3", "u2", "u5"}, 5},
		{"lastModified", users(store.ListQuery{Sort: store.SortLastModified, Limit: -1}), []string{"u3", "u4", "u1", "u2", "u5"}, 5},
		{"lastModified descending", users(store.ListQuery{Sort: store.SortLastModified, Descending: true, Limit: -1}), []string{"u5", "u2", "u1", "u4", "u3"}, 5},
		{"display", users(store.ListQuery{Sort: store.SortDisplay, Limit: -1}), []string{"u3", "u5", "u4", "u2", "u1"}, 5},
		{"display descending", users(store.ListQuery{Sort: store.SortDisplay, Descending: true, Limit: -1}), []string{"u1", "u2", "u4", "u5", "u3"}, 5},

		{"page", users(store.ListQuery{Offset: 1, Limit: 2}), []string{"u2", "u3"}, 5},
		{"sorted page", users(store.ListQuery{Sort: store.SortName, Descending: true, Offset: 1, Limit: 2}), []string{"u4", "u1"}, 5},
		{"last partial page", users(store.ListQuery{Offset: 3, Limit: 10}), []string{"u4", "u5"}, 5},
		{"offset without cap", users(store.ListQuery{Offset: 3, Limit: -1}), []string{"u4", "u5"}, 5},
		{"limit 0 counts only", users(store.ListQuery{Limit: 0}), []string{}, 5},
		{"offset at end", users(store.ListQuery{Offset: 5, Limit: 2}), []string{}, 5},
		{"offset past end", users(store.ListQuery{Offset: 50, Limit: 2}), []string{}, 5},
	}
	for _, tc := range tests {
		view(t, s, func(tx store.ReadTx) error {
			got, total, err := tx.ListResources(ctx, tc.q)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return nil
			}
			if !slices.Equal(ids(got), tc.want) || total != tc.total {
				t.Errorf("%s: got %v (total %d), want %v (total %d)", tc.name, ids(got), total, tc.want, tc.total)
			}
			return nil
		})
	}

	// Pages carry whole resources.
	view(t, s, func(tx store.ReadTx) error {
		got, _, err := tx.ListResources(ctx, users(store.ListQuery{Limit: -1}))
		if err != nil {
			return err
		}
		for i, r := range got {
			wantResource(t, r, fixture[i])
		}
		return nil
	})

	for name, q := range map[string]store.ListQuery{
		"unknown sort key":        users(store.ListQuery{Sort: "userName; DROP TABLE x", Limit: -1}),
		"unknown index attribute": users(store.ListQuery{IndexAttr: "emails", IndexValue: "x", Limit: -1}),
	} {
		err := s.View(ctx, func(tx store.ReadTx) error {
			_, _, err := tx.ListResources(ctx, q)
			return err
		})
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func testScanResources(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 600 // more than any sensible engine batch
	var want []string
	update(t, s, func(tx store.Tx) error {
		for i := range n {
			r := user(fmt.Sprintf("u%04d", n-i), fmt.Sprintf("user%d", i)) // ids descend: order is not by id
			if err := tx.CreateResource(ctx, r); err != nil {
				return err
			}
			want = append(want, r.ID)
			if i == 10 {
				if err := tx.CreateResource(ctx, group("g", "a group")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	// An update keeps the resource's place; a deletion leaves no gap.
	first := mustGet(t, s, store.TypeUser, want[0])
	update(t, s, func(tx store.Tx) error {
		if err := tx.UpdateResource(ctx, next(first)); err != nil {
			return err
		}
		return tx.DeleteResource(ctx, store.TypeUser, want[1])
	})
	want = slices.Delete(want, 1, 2)

	var got []string
	view(t, s, func(tx store.ReadTx) error {
		return tx.ScanResources(ctx, store.TypeUser, func(r *store.Resource) error {
			got = append(got, r.ID)
			return nil
		})
	})
	if !slices.Equal(got, want) {
		t.Errorf("scan visited %d users, want %d in creation order; first difference at %d",
			len(got), len(want), firstDiff(got, want))
	}

	errStop := errors.New("stop")
	calls := 0
	err := s.View(ctx, func(tx store.ReadTx) error {
		return tx.ScanResources(ctx, store.TypeUser, func(*store.Resource) error {
			calls++
			if calls == 3 {
				return errStop
			}
			return nil
		})
	})
	if !errors.Is(err, errStop) || calls != 3 {
		t.Errorf("early stop: err = %v after %d calls, want errStop after 3", err, calls)
	}

	// Inside Update the scan sees the transaction's own writes and may use it.
	update(t, s, func(tx store.Tx) error {
		if err := tx.CreateResource(ctx, user("new", "newcomer")); err != nil {
			return err
		}
		var last string
		seen := 0
		err := tx.ScanResources(ctx, store.TypeUser, func(r *store.Resource) error {
			seen++
			last = r.ID
			_, err := tx.GetResource(ctx, r.Type, r.ID)
			return err
		})
		if err != nil {
			return err
		}
		if seen != len(want)+1 || last != "new" {
			t.Errorf("scan in Update: %d users ending with %q, want %d ending with \"new\"", seen, last, len(want)+1)
		}
		return nil
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func members(t *testing.T, s store.Store, groupID string) []store.Member {
	t.Helper()
	var ms []store.Member
	view(t, s, func(tx store.ReadTx) error {
		var err error
		ms, err = tx.Members(t.Context(), groupID)
		return err
	})
	return ms
}

func groupsOf(t *testing.T, s store.Store, id string) []store.GroupRef {
	t.Helper()
	var gs []store.GroupRef
	view(t, s, func(tx store.ReadTx) error {
		var err error
		gs, err = tx.GroupsOf(t.Context(), id)
		return err
	})
	return gs
}

func wantMembers(t *testing.T, s store.Store, groupID string, want ...store.Member) {
	t.Helper()
	if got := members(t, s, groupID); !slices.Equal(got, want) {
		t.Errorf("Members(%q) = %+v, want %+v", groupID, got, want)
	}
}

func wantGroups(t *testing.T, s store.Store, id string, want ...store.GroupRef) {
	t.Helper()
	if got := groupsOf(t, s, id); !slices.Equal(got, want) {
		t.Errorf("GroupsOf(%q) = %+v, want %+v", id, got, want)
	}
}

func testMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b, c := user("a", "amy"), user("b", "ben"), user("c", "cat")
	a.Display = "Amy A"
	g, g2, g3 := group("g", "Eng"), group("g2", "Ops"), group("g3", "All")
	create(t, s, a, b, c, g, g2, g3)

	add := func(groupID string, ms ...store.Member) {
		t.Helper()
		update(t, s, func(tx store.Tx) error { return tx.AddMembers(ctx, groupID, ms) })
	}
	add("g", store.Member{Value: "c", Type: store.TypeUser}, store.Member{Value: "a", Type: store.TypeUser},
		store.Member{Value: "g2", Type: store.TypeGroup})
	// Adding present members again changes nothing; Display is never taken
	// from the input.
	add("g", store.Member{Value: "a", Type: store.TypeUser, Display: "ignored"}, store.Member{Value: "a", Type: store.TypeUser})
	add("g3", store.Member{Value: "a", Type: store.TypeUser}, store.Member{Value: "g", Type: store.TypeGroup})

	mA := store.Member{Value: "a", Type: store.TypeUser, Display: "Amy A"}
	mC := store.Member{Value: "c", Type: store.TypeUser, Display: "cat"}
	mG2 := store.Member{Value: "g2", Type: store.TypeGroup, Display: "Ops"}
	wantMembers(t, s, "g", mA, mC, mG2)
	wantMembers(t, s, "g2")
	wantMembers(t, s, "missing")
	wantGroups(t, s, "a", store.GroupRef{ID: "g", Display: "Eng"}, store.GroupRef{ID: "g3", Display: "All"})
	wantGroups(t, s, "g", store.GroupRef{ID: "g3", Display: "All"})
	wantGroups(t, s, "b")

	// Display follows the member resource.
	a2 := next(a)
	a2.Display = "Amy Renamed"
	update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, a2) })
	mA.Display = "Amy Renamed"
	wantMembers(t, s, "g", mA, mC, mG2)

	// Removing absent members is not an error.
	update(t, s, func(tx store.Tx) error { return tx.RemoveMembers(ctx, "g", []string{"c", "b", "nobody"}) })
	wantMembers(t, s, "g", mA, mG2)
	update(t, s, func(tx store.Tx) error { return tx.RemoveMembers(ctx, "missing", []string{"a"}) })

	// Deleting a member removes it from its groups.
	update(t, s, func(tx store.Tx) error { return tx.DeleteResource(ctx, store.TypeUser, "a") })
	wantMembers(t, s, "g", mG2)
	wantMembers(t, s, "g3", store.Member{Value: "g", Type: store.TypeGroup, Display: "Eng"})
	wantGroups(t, s, "a")

	// Deleting a group removes its memberships, both ways.
	update(t, s, func(tx store.Tx) error { return tx.DeleteResource(ctx, store.TypeGroup, "g") })
	wantMembers(t, s, "g")
	wantMembers(t, s, "g3")
	wantGroups(t, s, "g2")

	// A re-created resource with the same id does not inherit memberships.
	create(t, s, group("g", "Eng again"))
	wantMembers(t, s, "g")
	wantGroups(t, s, "g")
}

func testAddMembersMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, user("a", "amy"), group("g", "Eng"), group("g2", "Ops"))
	tests := []struct {
		name    string
		groupID string
		ms      []store.Member
	}{
		{"missing group", "nope", []store.Member{{Value: "a", Type: store.TypeUser}}},
		{"user as group", "a", []store.Member{{Value: "g", Type: store.TypeGroup}}},
		{"missing member after a good one", "g", []store.Member{{Value: "a", Type: store.TypeUser}, {Value: "ghost", Type: store.TypeUser}}},
		{"member of the wrong type", "g", []store.Member{{Value: "g2", Type: store.TypeUser}}},
	}
	for _, tc := range tests {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AddMembers(ctx, tc.groupID, tc.ms) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
		// Nothing was added, even inside a transaction that goes on.
		update(t, s, func(tx store.Tx) error {
			if err := tx.AddMembers(ctx, tc.groupID, tc.ms); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s in a transaction: err = %v, want ErrNotFound", tc.name, err)
			}
			return nil
		})
		wantMembers(t, s, "g")
		wantGroups(t, s, "a")
	}
}

func tokenDiff(got, want *store.Token) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		add("Hash", got.Hash, want.Hash)
	}
	if !slices.Equal(got.Scopes, want.Scopes) {
		add("Scopes", got.Scopes, want.Scopes)
	}
	if !sameTime(got.Created, want.Created) {
		add("Created", got.Created, want.Created)
	}
	if !sameTime(got.Expires, want.Expires) {
		add("Expires", got.Expires, want.Expires)
	}
	if !sameTime(got.Revoked, want.Revoked) {
		add("Revoked", got.Revoked, want.Revoked)
	}
	return strings.Join(d, "; ")
}

func hash(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	ci := &store.Token{ID: "t1", Name: "ci", Hash: hash(1), Scopes: []string{"scim", "audit"}, Created: base}
	ops := &store.Token{ID: "t2", Name: "ops", Hash: hash(2), Scopes: []string{"admin"}, Created: at(time.Second),
		Expires: at(24 * time.Hour)}
	bare := &store.Token{ID: "t3", Name: "bare", Hash: hash(3), Created: at(2 * time.Second)}
	update(t, s, func(tx store.Tx) error {
		for _, tk := range []*store.Token{ops, ci, bare} {
			if err := tx.CreateToken(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})

	for name, tk := range map[string]*store.Token{
		"duplicate id":   {ID: "t1", Name: "other", Hash: hash(9), Created: base},
		"duplicate name": {ID: "t9", Name: "ci", Hash: hash(9), Created: base},
		"duplicate hash": {ID: "t9", Name: "other", Hash: hash(2), Created: base},
	} {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateToken(ctx, tk) }); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", name, err)
		}
	}

	byHash := func(h []byte) (*store.Token, error) {
		var tk *store.Token
		err := s.View(ctx, func(tx store.ReadTx) error {
			var err error
			tk, err = tx.TokenByHash(ctx, h)
			return err
		})
		return tk, err
	}
	for _, want := range []*store.Token{ci, ops, bare} {
		got, err := byHash(want.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(%s): %v", want.Name, err)
		}
		if d := tokenDiff(got, want); d != "" {
			t.Errorf("token %s: %s", want.Name, d)
		}
	}
	if tk, err := byHash(hash(7)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown) = %+v, %v; want ErrNotFound", tk, err)
	}

	revokedAt := at(time.Hour + 7*time.Nanosecond)
	update(t, s, func(tx store.Tx) error { return tx.RevokeToken(ctx, "ops", revokedAt) })
	for _, name := range []string{"ops", "unknown"} {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, name, at(2*time.Hour)) }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeToken(%s): err = %v, want ErrNotFound", name, err)
		}
	}
	revoked := *ops
	revoked.Revoked = revokedAt
	got, err := byHash(ops.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(revoked): %v", err)
	}
	if d := tokenDiff(got, &revoked); d != "" {
		t.Errorf("revoked token: %s", d)
	}

	view(t, s, func(tx store.ReadTx) error {
		all, err := tx.Tokens(ctx)
		if err != nil {
			return err
		}
		want := []*store.Token{bare, ci, &revoked}
		if len(all) != len(want) {
			t.Fatalf("Tokens() returned %d tokens, want %d", len(all), len(want))
		}
		for i := range want {
			if d := tokenDiff(all[i], want[i]); d != "" {
				t.Errorf("Tokens()[%d]: %s", i, d)
			}
		}
		return nil
	})
}

func auditDiff(got, want *store.AuditRecord) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.Seq != want.Seq {
		add("Seq", got.Seq, want.Seq)
	}
	if !sameTime(got.Time, want.Time) {
		add("Time", got.Time, want.Time)
	}
	for _, f := range []struct{ name, got, want string }{
		{"Actor", got.Actor, want.Actor},
		{"Action", got.Action, want.Action},
		{"ResourceType", got.ResourceType, want.ResourceType},
		{"ResourceID", got.ResourceID, want.ResourceID},
		{"RequestID", got.RequestID, want.RequestID},
		{"BeforeDigest", got.BeforeDigest, want.BeforeDigest},
		{"AfterDigest", got.AfterDigest, want.AfterDigest},
	} {
		if f.got != f.want {
			add(f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(got.PrevHash, want.PrevHash) {
		add("PrevHash", got.PrevHash, want.PrevHash)
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		add("Hash", got.Hash, want.Hash)
	}
	return strings.Join(d, "; ")
}

func auditRecord(seq int64) *store.AuditRecord {
	r := &store.AuditRecord{
		Seq:          seq,
		Time:         at(time.Duration(seq) * time.Nanosecond),
		Actor:        "token:ci",
		Action:       "user.create",
		ResourceType: store.TypeUser,
		ResourceID:   fmt.Sprintf("u%d", seq),
		RequestID:    fmt.Sprintf("req-%d", seq),
		AfterDigest:  strings.Repeat("ab", 32),
		PrevHash:     hash(byte(seq - 1)),
		Hash:         hash(byte(seq)),
	}
	if seq == 1 {
		r.PrevHash = nil
	}
	if seq%2 == 0 {
		r.BeforeDigest = strings.Repeat("cd", 32)
	}
	return r
}

func auditRange(t *testing.T, s store.Store, from int64, limit int) []*store.AuditRecord {
	t.Helper()
	var recs []*store.AuditRecord
	view(t, s, func(tx store.ReadTx) error {
		var err error
		recs, err = tx.AuditRange(t.Context(), from, limit)
		return err
	})
	return recs
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.View(ctx, func(tx store.ReadTx) error {
		_, err := tx.AuditHead(ctx)
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AuditHead on an empty chain: err = %v, want ErrNotFound", err)
	}
	if recs := auditRange(t, s, 1, -1); len(recs) != 0 {
		t.Errorf("AuditRange on an empty chain returned %d records", len(recs))
	}

	const n = 5
	for seq := int64(1); seq <= n; seq++ {
		update(t, s, func(tx store.Tx) error { return tx.AppendAudit(ctx, auditRecord(seq)) })
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, auditRecord(3)) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("append taken sequence 3: err = %v, want ErrConflict", err)
	}

	view(t, s, func(tx store.ReadTx) error {
		head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		if d := auditDiff(head, auditRecord(n)); d != "" {
			t.Errorf("AuditHead: %s", d)
		}
		return nil
	})

	tests := []struct {
		from  int64
		limit int
		want  []int64
	}{
		{1, -1, []int64{1, 2, 3, 4, 5}},
		{1, 100, []int64{1, 2, 3, 4, 5}},
		{0, 2, []int64{1, 2}},
		{2, 2, []int64{2, 3}},
		{4, 10, []int64{4, 5}},
		{5, 1, []int64{5}},
		{6, 10, nil},
		{1, 0, nil},
	}
	for _, tc := range tests {
		recs := auditRange(t, s, tc.from, tc.limit)
		var got []int64
		for _, r := range recs {
			got = append(got, r.Seq)
			if d := auditDiff(r, auditRecord(r.Seq)); d != "" {
				t.Errorf("AuditRange(%d, %d) record %d: %s", tc.from, tc.limit, r.Seq, d)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AuditRange(%d, %d) = %v, want %v", tc.from, tc.limit, got, tc.want)
		}
	}
}

// wantNothingWritten checks that the user "ghost" and any audit record are
// absent.
func wantNothingWritten(t *testing.T, s store.Store) {
	t.Helper()
	wantNotFound(t, s, store.TypeUser, "ghost")
	if err := s.View(t.Context(), func(tx store.ReadTx) error {
		_, err := tx.AuditHead(t.Context())
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AuditHead after rollback: err = %v, want ErrNotFound", err)
	}
}

// writeGhost creates the user "ghost" and its audit record.
func writeGhost(ctx context.Context, tx store.Tx) error {
	if err := tx.CreateResource(ctx, user("ghost", "ghost")); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, auditRecord(1))
}

// wantUsable checks that the store still takes writes.
func wantUsable(t *testing.T, s store.Store) {
	t.Helper()
	create(t, s, user("after", "after"))
	mustGet(t, s, store.TypeUser, "after")
}

func testRollbackOnError(t *testing.T, s store.Store) {
	errBoom := errors.New("boom")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := writeGhost(t.Context(), tx); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	wantNothingWritten(t, s)
	wantUsable(t, s)
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	type boom struct{}
	func() {
		defer func() {
			if r := recover(); r != (boom{}) {
				t.Errorf("recovered %v, want the panic value re-raised", r)
			}
		}()
		_ = s.Update(t.Context(), func(tx store.Tx) error {
			if err := writeGhost(t.Context(), tx); err != nil {
				return err
			}
			panic(boom{})
		})
		t.Error("Update returned instead of panicking")
	}()
	wantNothingWritten(t, s)
	wantUsable(t, s)
}

func testCanceledContext(t *testing.T, s store.Store) {
	// Canceled before Update begins: fn's writes cannot happen.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(ctx, func(tx store.Tx) error { return writeGhost(ctx, tx) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a canceled context: err = %v, want context.Canceled", err)
	}
	wantNothingWritten(t, s)

	// Canceled while fn runs: nothing commits even though fn succeeds.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := writeGhost(ctx, tx); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update canceled during fn: err = %v, want context.Canceled", err)
	}
	wantNothingWritten(t, s)
	wantUsable(t, s)
}

func countUsers(ctx context.Context, tx store.ReadTx) (int, error) {
	_, n, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser})
	return n, err
}

func testViewIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, user("u1", "one"))

	// Writes are invisible to View until committed.
	update(t, s, func(tx store.Tx) error {
		if err := tx.CreateResource(ctx, user("u2", "two")); err != nil {
			return err
		}
		view(t, s, func(r store.ReadTx) error {
			if _, err := r.GetResource(ctx, store.TypeUser, "u2"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("View saw an uncommitted create: err = %v", err)
			}
			return nil
		})
		return nil
	})
	mustGet(t, s, store.TypeUser, "u2")

	// A View reads one snapshot even while a write commits.
	view(t, s, func(r store.ReadTx) error {
		before, err := countUsers(ctx, r)
		if err != nil {
			return err
		}
		create(t, s, user("u3", "three"))
		after, err := countUsers(ctx, r)
		if err != nil {
			return err
		}
		if before != 2 || after != 2 {
			t.Errorf("user count in one View went %d -> %d across a commit, want 2 -> 2", before, after)
		}
		if _, err := r.GetResource(ctx, store.TypeUser, "u3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("View saw a create committed after its snapshot: err = %v", err)
		}
		return nil
	})
	mustGet(t, s, store.TypeUser, "u3")
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Read-modify-write of the audit head: correct only if
				// writers are serialised.
				err := s.Update(ctx, func(tx store.Tx) error {
					id := fmt.Sprintf("w%d-%d", w, i)
					if err := tx.CreateResource(ctx, user(id, id)); err != nil {
						return err
					}
					seq := int64(1)
					head, err := tx.AuditHead(ctx)
					switch {
					case err == nil:
						seq = head.Seq + 1
					case !errors.Is(err, store.ErrNotFound):
						return err
					}
					return tx.AppendAudit(ctx, auditRecord(seq))
				})
				if err != nil {
					t.Errorf("writer %d, update %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	recs := auditRange(t, s, 1, -1)
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("audit record %d has sequence %d", i+1, r.Seq)
		}
	}
	if len(recs) != writers*each {
		t.Errorf("%d audit records, want %d", len(recs), writers*each)
	}
	view(t, s, func(tx store.ReadTx) error {
		n, err := countUsers(ctx, tx)
		if n != writers*each {
			t.Errorf("%d users, want %d", n, writers*each)
		}
		return err
	})
}

func testMigrateIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, user("u", "kept"))
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d on a migrated store: %v", i+1, err)
		}
		if err := s.Ready(ctx); err != nil {
			t.Fatalf("Ready after Migrate #%d: %v", i+1, err)
		}
	}
	mustGet(t, s, store.TypeUser, "u")
}

func testGroupsOfEach(t *testing.T, s store.Store) {
	ctx := t.Context()
	create(t, s, user("a", "amy"), user("b", "ben"), user("c", "cat"), group("g1", "Eng"), group("g2", "Ops"))
	update(t, s, func(tx store.Tx) error {
		if err := tx.AddMembers(ctx, "g1", []store.Member{{Value: "a", Type: store.TypeUser}, {Value: "b", Type: store.TypeUser}}); err != nil {
			return err
		}
		return tx.AddMembers(ctx, "g2", []store.Member{{Value: "a", Type: store.TypeUser}, {Value: "g1", Type: store.TypeGroup}})
	})
	var got map[string][]store.GroupRef
	view(t, s, func(tx store.ReadTx) error {
		var err error
		got, err = tx.GroupsOfEach(ctx, []string{"a", "b", "c", "g1", "nobody"})
		return err
	})
	for _, id := range []string{"a", "b", "c", "g1", "nobody"} {
		if want := groupsOf(t, s, id); !slices.Equal(got[id], want) {
			t.Errorf("GroupsOfEach[%q] = %+v, GroupsOf = %+v", id, got[id], want)
		}
	}
	if _, ok := got["c"]; ok {
		t.Errorf("GroupsOfEach has an entry for a member of no group: %+v", got["c"])
	}
	// ListQuery.WithGroups reads the same groups with the resources.
	for _, q := range []store.ListQuery{
		{Type: store.TypeUser, Limit: -1, WithGroups: true},
		{Type: store.TypeUser, Limit: 2, Offset: 1, WithGroups: true},
		{Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: "AMY", Limit: -1, WithGroups: true},
		{Type: store.TypeGroup, Limit: -1, WithGroups: true},
	} {
		var rs []*store.Resource
		view(t, s, func(tx store.ReadTx) error {
			var err error
			rs, _, err = tx.ListResources(ctx, q)
			return err
		})
		if len(rs) == 0 {
			t.Fatalf("%+v: no resources", q)
		}
		for _, r := range rs {
			if want := groupsOf(t, s, r.ID); !r.GroupsRead || !slices.Equal(r.Groups, want) {
				t.Errorf("%+v: %s Groups = %+v (read %v), GroupsOf = %+v", q, r.ID, r.Groups, r.GroupsRead, want)
			}
		}
	}
	view(t, s, func(tx store.ReadTx) error {
		rs, _, err := tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, Limit: -1})
		for _, r := range rs {
			if r.GroupsRead || r.Groups != nil {
				t.Errorf("groups read without WithGroups: %+v", r)
			}
		}
		return err
	})
	view(t, s, func(tx store.ReadTx) error {
		empty, err := tx.GroupsOfEach(ctx, nil)
		if err == nil && len(empty) != 0 {
			t.Errorf("GroupsOfEach(nil) = %+v", empty)
		}
		return err
	})
}

// The total of an unfiltered list must follow every committed insert and
// delete, and nothing a rolled-back transaction did.
func testCountsTrackWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	total := func(typ string) int {
		t.Helper()
		var n int
		view(t, s, func(tx store.ReadTx) error {
			var err error
			_, n, err = tx.ListResources(ctx, store.ListQuery{Type: typ, Limit: 0})
			return err
		})
		return n
	}
	create(t, s, user("a", "amy"), user("b", "ben"), user("c", "cat"), group("g1", "Eng"))
	if u, g := total(store.TypeUser), total(store.TypeGroup); u != 3 || g != 1 {
		t.Fatalf("after creates: %d users, %d groups; want 3, 1", u, g)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteResource(ctx, store.TypeUser, "b") })
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateResource(ctx, user("d", "dan")); err != nil {
			return err
		}
		if err := tx.DeleteResource(ctx, store.TypeGroup, "g1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	renamed := next(user("a", "amy"))
	renamed.Name = "amelia"
	update(t, s, func(tx store.Tx) error { return tx.UpdateResource(ctx, renamed) })
	if u, g := total(store.TypeUser), total(store.TypeGroup); u != 2 || g != 1 {
		t.Fatalf("after delete, rollback and rename: %d users, %d groups; want 2, 1", u, g)
	}
	var page []*store.Resource
	var n int
	view(t, s, func(tx store.ReadTx) error {
		var err error
		page, n, err = tx.ListResources(ctx, store.ListQuery{Type: store.TypeUser, Offset: 1, Limit: 5})
		return err
	})
	if n != 2 || !slices.Equal(ids(page), []string{"c"}) {
		t.Fatalf("page after offset 1: total %d, %v", n, ids(page))
	}
}

// A long scan stops soon after its context ends, with the context's error.
func testScanHonoursCancel(t *testing.T, s store.Store) {
	const n = 1200
	rs := make([]*store.Resource, n)
	for i := range rs {
		rs[i] = user(fmt.Sprintf("u%04d", i), fmt.Sprintf("user%04d", i))
	}
	create(t, s, rs...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := s.View(ctx, func(tx store.ReadTx) error {
		return tx.ScanResources(ctx, store.TypeUser, func(*store.Resource) error {
			calls++
			cancel()
			return nil
		})
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("scan after cancel: err = %v, want context.Canceled", err)
	}
	if calls >= n {
		t.Fatalf("scan visited all %d resources after its context ended", calls)
	}
}

// Lookup answers exactly what ListResources answers for the queries it
// takes, and refuses the ones that need a count.
func testLookup(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := user("a", "Amy"), user("b", "ben")
	a.ExternalID, b.ExternalID = "x1", "x1"
	create(t, s, a, b, group("g", "Eng"))
	update(t, s, func(tx store.Tx) error {
		return tx.AddMembers(ctx, "g", []store.Member{{Value: "a", Type: store.TypeUser}})
	})
	for _, q := range []store.ListQuery{
		{Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: "AMY", Limit: -1, WithGroups: true},
		{Type: store.TypeUser, IndexAttr: store.IndexName, IndexValue: "nobody", Limit: -1},
		{Type: store.TypeUser, IndexAttr: store.IndexID, IndexValue: "b", Limit: -1},
		{Type: store.TypeUser, IndexAttr: store.IndexExternalID, IndexValue: "x1", Limit: -1, Descending: true},
		{Type: store.TypeGroup, Limit: -1},
	} {
		got, err := s.Lookup(ctx, q)
		if err != nil {
			t.Fatalf("Lookup(%+v): %v", q, err)
		}
		var want []*store.Resource
		view(t, s, func(tx store.ReadTx) error {
			var err error
			want, _, err = tx.ListResources(ctx, q)
			return err
		})
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("Lookup(%+v) = %v, ListResources = %v", q, ids(got), ids(want))
		}
		for i := range got {
			wantResource(t, got[i], want[i])
			if !slices.Equal(got[i].Groups, want[i].Groups) || got[i].GroupsRead != want[i].GroupsRead {
				t.Fatalf("Lookup(%+v) groups %+v, ListResources %+v", q, got[i].Groups, want[i].Groups)
			}
		}
	}
	for _, q := range []store.ListQuery{
		{Type: store.TypeUser, Limit: 10},
		{Type: store.TypeUser, Limit: -1, Offset: 1},
		{Type: store.TypeUser, Limit: 0},
	} {
		if _, err := s.Lookup(ctx, q); err == nil {
			t.Errorf("Lookup(%+v) accepted a query that needs a count", q)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Lookup(cctx, store.ListQuery{Type: store.TypeUser, Limit: -1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup with a canceled context: %v", err)
	}
}
