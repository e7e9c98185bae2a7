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

// Conformance cases for the delivery queue and the account records.

// enqueue commits EnqueueDelivery and returns the pending delivery's id.
func enqueue(t *testing.T, s store.Store, identityID, connector string, priority int, now time.Time) int64 {
	t.Helper()
	var id int64
	update(t, s, func(tx store.Tx) error {
		var err error
		id, err = tx.EnqueueDelivery(t.Context(), identityID, connector, priority, now)
		return err
	})
	return id
}

// claim commits ClaimDeliveries and returns the claimed deliveries.
func claim(t *testing.T, s store.Store, connector string, now time.Time, limit int) []*store.Delivery {
	t.Helper()
	var out []*store.Delivery
	update(t, s, func(tx store.Tx) error {
		var err error
		out, err = tx.ClaimDeliveries(t.Context(), connector, now, limit)
		return err
	})
	return out
}

// claimIDs is claim reduced to the ids, in the order returned.
func claimIDs(t *testing.T, s store.Store, connector string, now time.Time, limit int) []int64 {
	t.Helper()
	return deliveryIDs(claim(t, s, connector, now, limit))
}

func getDelivery(t *testing.T, s store.Store, id int64) (*store.Delivery, error) {
	return read(t, s, func(tx store.ReadTx) (*store.Delivery, error) { return tx.GetDelivery(t.Context(), id) })
}

func mustDelivery(t *testing.T, s store.Store, id int64) *store.Delivery {
	t.Helper()
	d, err := getDelivery(t, s, id)
	if err != nil {
		t.Fatalf("GetDelivery(%d): %v", id, err)
	}
	return d
}

func wantDelivery(t *testing.T, s store.Store, want *store.Delivery) {
	t.Helper()
	if d := deliveryDiff(mustDelivery(t, s, want.ID), want); d != "" {
		t.Errorf("delivery %d: %s", want.ID, d)
	}
}

func wantNoDelivery(t *testing.T, s store.Store, id int64) {
	t.Helper()
	if got, err := getDelivery(t, s, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDelivery(%d) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

func listDeliveries(t *testing.T, s store.Store, q store.DeliveryQuery) []*store.Delivery {
	t.Helper()
	return mustRead(t, s, func(tx store.ReadTx) ([]*store.Delivery, error) { return tx.Deliveries(t.Context(), q) })
}

func deliveryIDs(ds []*store.Delivery) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// deliveryDiff compares every field.
func deliveryDiff(got, want *store.Delivery) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	for _, f := range []struct{ name, got, want string }{
		{"IdentityID", got.IdentityID, want.IdentityID},
		{"Connector", got.Connector, want.Connector},
		{"State", got.State, want.State},
		{"LastError", got.LastError, want.LastError},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if got.Priority != want.Priority {
		add("Priority", got.Priority, want.Priority)
	}
	if got.Attempts != want.Attempts {
		add("Attempts", got.Attempts, want.Attempts)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"RunAt", got.RunAt, want.RunAt},
		{"Enqueued", got.Enqueued, want.Enqueued},
		{"Updated", got.Updated, want.Updated},
	} {
		if !sameTime(f.got, f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

// pending is the delivery EnqueueDelivery inserts.
func pending(id int64, identityID, connector string, priority int, now time.Time) *store.Delivery {
	return &store.Delivery{ID: id, IdentityID: identityID, Connector: connector, State: store.DeliveryPending,
		Priority: priority, RunAt: now, Enqueued: now, Updated: now}
}

// queueIdentities stores an active identity for each id.
func queueIdentities(t *testing.T, s store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		putIdentities(t, s, identity(id, store.StateActive))
	}
}

func testEnqueueDelivery(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")

	// A transaction sees its own enqueue.
	var id int64
	update(t, s, func(tx store.Tx) error {
		var err error
		if id, err = tx.EnqueueDelivery(ctx, "a", "github", store.PriorityGrant, at(0)); err != nil {
			return err
		}
		got, err := tx.GetDelivery(ctx, id)
		if err != nil {
			return err
		}
		if d := deliveryDiff(got, pending(id, "a", "github", store.PriorityGrant, at(0))); d != "" {
			t.Errorf("delivery read in its own transaction: %s", d)
		}
		return nil
	})
	want := pending(id, "a", "github", store.PriorityGrant, at(0))
	wantDelivery(t, s, want)

	// Enqueuing again for the pair keeps the one pending delivery: the
	// priority only becomes more urgent, RunAt never moves later, Enqueued
	// stays the oldest change.
	steps := []struct {
		name     string
		priority int
		now      time.Time
		want     int // Priority afterwards
	}{
		{"same priority, later", store.PriorityGrant, at(time.Minute), store.PriorityGrant},
		{"revoke wins", store.PriorityRevoke, at(2 * time.Minute), store.PriorityRevoke},
		{"grant does not undo it", store.PriorityGrant, at(3*time.Minute + time.Nanosecond), store.PriorityRevoke},
	}
	for _, st := range steps {
		if got := enqueue(t, s, "a", "github", st.priority, st.now); got != id {
			t.Fatalf("%s: EnqueueDelivery = %d, want the pending %d", st.name, got, id)
		}
		want.Priority, want.Updated = st.want, st.now
		wantDelivery(t, s, want)
	}

	// Other pairs get their own deliveries.
	other := map[int64]bool{id: true}
	for _, p := range []struct{ identityID, connector string }{{"a", "okta"}, {"b", "github"}, {"b", "okta"}} {
		got := enqueue(t, s, p.identityID, p.connector, store.PriorityRevoke, at(time.Hour))
		if other[got] {
			t.Errorf("EnqueueDelivery(%s, %s) = %d, an id already used", p.identityID, p.connector, got)
		}
		other[got] = true
		wantDelivery(t, s, pending(got, p.identityID, p.connector, store.PriorityRevoke, at(time.Hour)))
	}
	if got := listDeliveries(t, s, store.DeliveryQuery{IdentityID: "a", Connector: "github"}); len(got) != 1 {
		t.Errorf("deliveries of (a, github) = %v, want one", deliveryIDs(got))
	}

	// A new change cuts a back-off short: a retried delivery pending at a
	// later RunAt is brought forward to now, keeping its id, Attempts and
	// LastError.
	claimed := claimIDs(t, s, "github", at(time.Hour), 10)
	if !slices.Contains(claimed, id) {
		t.Fatalf("claim = %v, want %d among them", claimed, id)
	}
	update(t, s, func(tx store.Tx) error {
		return tx.FailDelivery(ctx, id, at(5*time.Hour), false, "HTTP 503", at(time.Hour))
	})
	if got := enqueue(t, s, "a", "github", store.PriorityGrant, at(2*time.Hour)); got != id {
		t.Fatalf("EnqueueDelivery over a backed-off delivery = %d, want %d", got, id)
	}
	want.Attempts, want.LastError = 1, "HTTP 503"
	want.RunAt, want.Updated = at(2*time.Hour), at(2*time.Hour)
	wantDelivery(t, s, want)

	// An identity that does not exist is ErrNotFound and leaves the
	// transaction usable; empty ids and connectors are refused.
	update(t, s, func(tx store.Tx) error {
		for _, identityID := range []string{"nobody", "A"} {
			if got, err := tx.EnqueueDelivery(ctx, identityID, "github", store.PriorityGrant, at(0)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("EnqueueDelivery for missing identity %q = %d, %v; want ErrNotFound", identityID, got, err)
			}
		}
		for _, bad := range []struct{ identityID, connector string }{{"", "github"}, {"a", ""}} {
			if got, err := tx.EnqueueDelivery(ctx, bad.identityID, bad.connector, store.PriorityGrant, at(0)); err == nil {
				t.Errorf("EnqueueDelivery(%q, %q) = %d, no error", bad.identityID, bad.connector, got)
			}
		}
		_, err := tx.EnqueueDelivery(ctx, "b", "slack", store.PriorityGrant, at(0))
		return err
	})
	for _, identityID := range []string{"nobody", "A"} {
		if got := listDeliveries(t, s, store.DeliveryQuery{IdentityID: identityID}); len(got) != 0 {
			t.Errorf("deliveries of %q = %v, want none", identityID, deliveryIDs(got))
		}
	}
	if got := listDeliveries(t, s, store.DeliveryQuery{}); len(got) != 5 {
		t.Errorf("all deliveries = %v, want 5", deliveryIDs(got))
	}
}

// testDeliveryOnePairAtATime: a change made while a pair's delivery runs
// gets a second, pending delivery, which is not claimed until the first one
// is over.
func testDeliveryOnePairAtATime(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")
	first := enqueue(t, s, "a", "github", store.PriorityGrant, at(0))
	if got := claimIDs(t, s, "github", at(time.Second), 10); !slices.Equal(got, []int64{first}) {
		t.Fatalf("claim = %v, want [%d]", got, first)
	}
	second := enqueue(t, s, "a", "github", store.PriorityRevoke, at(2*time.Second))
	if second == first {
		t.Fatalf("EnqueueDelivery while %d runs returned it", first)
	}
	wantDelivery(t, s, pending(second, "a", "github", store.PriorityRevoke, at(2*time.Second)))
	other := enqueue(t, s, "b", "github", store.PriorityGrant, at(3*time.Second))

	// Only the other pair is claimable while first runs, however late.
	if got := claimIDs(t, s, "github", at(time.Hour), 10); !slices.Equal(got, []int64{other}) {
		t.Fatalf("claim while %d runs = %v, want [%d]", first, got, other)
	}
	if got := claimIDs(t, s, "github", at(2*time.Hour), 10); len(got) != 0 {
		t.Fatalf("claim while %d and %d run = %v, want none", first, other, got)
	}
	update(t, s, func(tx store.Tx) error { return tx.FinishDelivery(ctx, first) })
	wantNoDelivery(t, s, first)
	got := claim(t, s, "github", at(3*time.Hour), 10)
	want := pending(second, "a", "github", store.PriorityRevoke, at(2*time.Second))
	want.State, want.Attempts, want.Updated = store.DeliveryRunning, 1, at(3*time.Hour)
	if len(got) != 1 {
		t.Fatalf("claim after finishing %d = %v, want [%d]", first, deliveryIDs(got), second)
	}
	if d := deliveryDiff(got[0], want); d != "" {
		t.Errorf("claimed delivery: %s", d)
	}
}

func testClaimDeliveries(t *testing.T, s store.Store) {
	queueIdentities(t, s, "a", "b", "c", "d", "e", "f")
	// Inserted so that id order is neither priority nor RunAt order.
	ids := map[string]int64{}
	for _, e := range []struct {
		name, identityID, connector string
		priority                    int
		now                         time.Duration
	}{
		{"grant+10s", "a", "github", store.PriorityGrant, 10 * time.Second},
		{"grant+5s", "b", "github", store.PriorityGrant, 5 * time.Second},
		{"revoke+20s", "c", "github", store.PriorityRevoke, 20 * time.Second},
		{"revoke+20s'", "d", "github", store.PriorityRevoke, 20 * time.Second}, // ties: by id
		{"grant+2h", "e", "github", store.PriorityGrant, 2 * time.Hour},        // not due yet
		{"grant+1m", "f", "github", store.PriorityGrant, time.Minute},          // due exactly at now
		{"other", "a", "okta", store.PriorityRevoke, 0},
		{"revoke+19s", "f", "okta", store.PriorityRevoke, 19 * time.Second},
	} {
		ids[e.name] = enqueue(t, s, e.identityID, e.connector, e.priority, at(e.now))
	}
	all := listDeliveries(t, s, store.DeliveryQuery{})
	stored := map[int64]*store.Delivery{}
	for _, d := range all {
		stored[d.ID] = d
	}
	names := func(ns ...string) []int64 {
		out := []int64{}
		for _, n := range ns {
			out = append(out, ids[n])
		}
		return out
	}
	now := at(time.Minute)
	steps := []struct {
		connector string
		now       time.Time
		limit     int
		want      []int64
	}{
		{"github", now, 0, names()},
		{"github", now, -1, names()},
		{"github", now, 2, names("revoke+20s", "revoke+20s'")},
		{"github", now, 1, names("grant+5s")},
		{"github", now, 10, names("grant+10s", "grant+1m")},
		{"github", now, 10, names()},                 // the rest is not due
		{"GitHub", at(3 * time.Hour), 10, names()},   // connectors are exact
		{"github", at(2*time.Hour - 1), 10, names()}, // 1ns early
		{"github", at(3 * time.Hour), 10, names("grant+2h")},
		{"okta", at(time.Minute), 10, names("other", "revoke+19s")},
	}
	claimedAt := map[int64]time.Time{}
	for i, st := range steps {
		got := claim(t, s, st.connector, st.now, st.limit)
		if ids := deliveryIDs(got); !slices.Equal(ids, st.want) {
			t.Fatalf("step %d: ClaimDeliveries(%q, %v, %d) = %v, want %v", i, st.connector, st.now, st.limit, ids, st.want)
		}
		for _, d := range got {
			want := *stored[d.ID]
			want.State, want.Attempts, want.Updated = store.DeliveryRunning, 1, st.now
			if diff := deliveryDiff(d, &want); diff != "" {
				t.Errorf("step %d: claimed %d: %s", i, d.ID, diff)
			}
			claimedAt[d.ID] = st.now
		}
		// Claims are committed: nothing else of the connector changed.
		for _, d := range listDeliveries(t, s, store.DeliveryQuery{}) {
			want := *stored[d.ID]
			if when, ok := claimedAt[d.ID]; ok {
				want.State, want.Attempts, want.Updated = store.DeliveryRunning, 1, when
			}
			if diff := deliveryDiff(d, &want); diff != "" {
				t.Errorf("step %d: delivery %d: %s", i, d.ID, diff)
			}
		}
	}
}

// stateErrorCases lists, for each method that needs a delivery in a given
// state, a call of it and the states (or "missing") it must refuse with
// ErrNotFound.
func stateErrorCases() []struct {
	method string
	call   func(tx store.Tx, t *testing.T, id int64) error
	wrong  []string // states (or "missing") that must be ErrNotFound
} {
	return []struct {
		method string
		call   func(tx store.Tx, t *testing.T, id int64) error
		wrong  []string
	}{
		{"FinishDelivery", func(tx store.Tx, t *testing.T, id int64) error {
			return tx.FinishDelivery(t.Context(), id)
		}, []string{store.DeliveryPending, store.DeliveryDead, "missing"}},
		{"FailDelivery retry", func(tx store.Tx, t *testing.T, id int64) error {
			return tx.FailDelivery(t.Context(), id, at(48*time.Hour), false, "late", at(47*time.Hour))
		}, []string{store.DeliveryPending, store.DeliveryDead, "missing"}},
		{"FailDelivery dead", func(tx store.Tx, t *testing.T, id int64) error {
			return tx.FailDelivery(t.Context(), id, time.Time{}, true, "late", at(47*time.Hour))
		}, []string{store.DeliveryPending, store.DeliveryDead, "missing"}},
		{"RetryDelivery", func(tx store.Tx, t *testing.T, id int64) error {
			return tx.RetryDelivery(t.Context(), id, at(47*time.Hour))
		}, []string{store.DeliveryPending, store.DeliveryRunning, "missing"}},
	}
}

func testDeliveryWrongState(t *testing.T, s store.Store) {
	queueIdentities(t, s, "p", "r", "d")
	// One delivery in each state, each of its own pair.
	byState := map[string]int64{
		store.DeliveryPending: enqueue(t, s, "p", "github", store.PriorityGrant, at(time.Hour)),
		store.DeliveryRunning: enqueue(t, s, "r", "github", store.PriorityGrant, at(0)),
		store.DeliveryDead:    enqueue(t, s, "d", "github", store.PriorityGrant, at(time.Second)),
	}
	if got := claimIDs(t, s, "github", at(time.Minute), 10); len(got) != 2 {
		t.Fatalf("claim = %v, want two", got)
	}
	update(t, s, func(tx store.Tx) error {
		return tx.FailDelivery(t.Context(), byState[store.DeliveryDead], time.Time{}, true, "gone", at(2*time.Minute))
	})
	byState["missing"] = byState[store.DeliveryDead] + 1000
	before := listDeliveries(t, s, store.DeliveryQuery{})
	for _, tc := range stateErrorCases() {
		for _, state := range tc.wrong {
			update(t, s, func(tx store.Tx) error {
				if err := tc.call(tx, t, byState[state]); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s of a %s delivery: err = %v, want ErrNotFound", tc.method, state, err)
				}
				return nil
			})
		}
	}
	after := listDeliveries(t, s, store.DeliveryQuery{})
	if len(after) != len(before) {
		t.Fatalf("deliveries after refused calls = %v, want %v", deliveryIDs(after), deliveryIDs(before))
	}
	for i := range before {
		if d := deliveryDiff(after[i], before[i]); d != "" {
			t.Errorf("delivery %d after refused calls: %s", before[i].ID, d)
		}
	}
}

func testFailDelivery(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")
	id := enqueue(t, s, "a", "github", store.PriorityGrant, at(0))
	claimIDs(t, s, "github", at(time.Second), 1)

	// Retry: pending at runAt with the error, not claimable before.
	update(t, s, func(tx store.Tx) error {
		return tx.FailDelivery(ctx, id, at(time.Hour), false, "HTTP 503: unavailable", at(2*time.Second))
	})
	want := pending(id, "a", "github", store.PriorityGrant, at(0))
	want.Attempts, want.RunAt, want.LastError, want.Updated = 1, at(time.Hour), "HTTP 503: unavailable", at(2*time.Second)
	wantDelivery(t, s, want)
	if got := claimIDs(t, s, "github", at(time.Hour-1), 10); len(got) != 0 {
		t.Fatalf("claim before runAt = %v, want none", got)
	}
	if got := claim(t, s, "github", at(time.Hour), 10); len(got) != 1 || got[0].ID != id || got[0].Attempts != 2 {
		t.Fatalf("claim at runAt = %+v, want %d at its second attempt", got, id)
	}

	// Dead: listed for a human, never claimed.
	update(t, s, func(tx store.Tx) error {
		return tx.FailDelivery(ctx, id, time.Time{}, true, "HTTP 403: forbidden", at(time.Hour+time.Second))
	})
	want.State, want.Attempts, want.LastError, want.Updated = store.DeliveryDead, 2, "HTTP 403: forbidden", at(time.Hour+time.Second)
	wantDelivery(t, s, want)
	if got := deliveryIDs(listDeliveries(t, s, store.DeliveryQuery{State: store.DeliveryDead})); !slices.Equal(got, []int64{id}) {
		t.Errorf("dead deliveries = %v, want [%d]", got, id)
	}
	if got := claimIDs(t, s, "github", at(1000*time.Hour), 10); len(got) != 0 {
		t.Errorf("claim with only a dead delivery = %v, want none", got)
	}

	// A change made while a delivery ran is folded into it when it goes
	// back to pending: one pending delivery per pair, with the failed id,
	// the more urgent priority, the earlier RunAt and the older Enqueued.
	var run int64
	var folded *store.Delivery
	for _, tc := range []struct {
		connector                 string
		running, change, priority int
	}{
		{"github", store.PriorityGrant, store.PriorityRevoke, store.PriorityRevoke},
		{"okta", store.PriorityRevoke, store.PriorityGrant, store.PriorityRevoke},
	} {
		id := enqueue(t, s, "b", tc.connector, tc.running, at(time.Minute))
		claimIDs(t, s, tc.connector, at(2*time.Minute), 10)
		change := enqueue(t, s, "b", tc.connector, tc.change, at(3*time.Minute))
		update(t, s, func(tx store.Tx) error {
			return tx.FailDelivery(ctx, id, at(time.Hour), false, "timeout", at(4*time.Minute))
		})
		wantNoDelivery(t, s, change)
		want := pending(id, "b", tc.connector, tc.priority, at(time.Minute))
		want.Attempts, want.RunAt, want.LastError, want.Updated = 1, at(3*time.Minute), "timeout", at(4*time.Minute)
		wantDelivery(t, s, want)
		q := store.DeliveryQuery{IdentityID: "b", Connector: tc.connector, State: store.DeliveryPending}
		if got := listDeliveries(t, s, q); len(got) != 1 {
			t.Errorf("pending deliveries of (b, %s) = %v, want one", tc.connector, deliveryIDs(got))
		}
		if tc.connector == "github" {
			run, folded = id, want
		}
	}

	// A change made while a delivery ran stays pending when it dies.
	claimIDs(t, s, "github", at(5*time.Minute), 10)
	change := enqueue(t, s, "b", "github", store.PriorityGrant, at(6*time.Minute))
	update(t, s, func(tx store.Tx) error {
		return tx.FailDelivery(ctx, run, time.Time{}, true, "HTTP 400", at(7*time.Minute))
	})
	folded.State, folded.Attempts, folded.LastError, folded.Updated = store.DeliveryDead, 2, "HTTP 400", at(7*time.Minute)
	wantDelivery(t, s, folded)
	wantDelivery(t, s, pending(change, "b", "github", store.PriorityGrant, at(6*time.Minute)))
}

func testRetryDelivery(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")
	// dead returns a delivery of the pair that died at its second attempt.
	dead := func(identityID string, from time.Duration) *store.Delivery {
		id := enqueue(t, s, identityID, "github", store.PriorityRevoke, at(from))
		for i := range 2 {
			claimIDs(t, s, "github", at(from+time.Duration(i+1)*time.Minute), 10)
			update(t, s, func(tx store.Tx) error {
				return tx.FailDelivery(ctx, id, at(from+time.Duration(i+1)*time.Minute), i == 1, fmt.Sprintf("error %d", i),
					at(from+time.Duration(i+1)*time.Minute))
			})
		}
		return mustDelivery(t, s, id)
	}

	// A dead delivery comes back pending, due now, with a fresh budget.
	d := dead("a", 0)
	if d.State != store.DeliveryDead || d.Attempts != 2 {
		t.Fatalf("setup: %+v, want dead at attempt 2", d)
	}
	update(t, s, func(tx store.Tx) error { return tx.RetryDelivery(ctx, d.ID, at(time.Hour)) })
	want := *d
	want.State, want.Attempts, want.RunAt, want.Updated = store.DeliveryPending, 0, at(time.Hour), at(time.Hour)
	wantDelivery(t, s, &want)
	if got := claimIDs(t, s, "github", at(time.Hour), 10); !slices.Equal(got, []int64{d.ID}) {
		t.Errorf("claim after retry = %v, want [%d]", got, d.ID)
	}

	// With a pending delivery for the pair the dead one goes, and the
	// pending one is left as it was.
	d = dead("b", 2*time.Hour)
	p := enqueue(t, s, "b", "github", store.PriorityGrant, at(3*time.Hour))
	update(t, s, func(tx store.Tx) error { return tx.RetryDelivery(ctx, d.ID, at(4*time.Hour)) })
	wantNoDelivery(t, s, d.ID)
	wantDelivery(t, s, pending(p, "b", "github", store.PriorityGrant, at(3*time.Hour)))
}

func testFinishDelivery(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")
	kill := func(identityID, connector string, when time.Duration) int64 {
		id := enqueue(t, s, identityID, connector, store.PriorityGrant, at(when))
		if got := claimIDs(t, s, connector, at(when), 10); !slices.Contains(got, id) {
			t.Fatalf("claim = %v, want %d among them", got, id)
		}
		update(t, s, func(tx store.Tx) error {
			return tx.FailDelivery(ctx, id, time.Time{}, true, "dead", at(when))
		})
		return id
	}
	deadA1 := kill("a", "github", 0)
	deadA2 := kill("a", "github", time.Minute) // two dead for the pair
	deadAOkta := kill("a", "okta", 2*time.Minute)
	deadB := kill("b", "github", 3*time.Minute)

	run := enqueue(t, s, "a", "github", store.PriorityGrant, at(time.Hour))
	if got := claimIDs(t, s, "github", at(time.Hour), 10); !slices.Equal(got, []int64{run}) {
		t.Fatalf("claim = %v, want [%d]", got, run)
	}
	later := enqueue(t, s, "a", "github", store.PriorityGrant, at(2*time.Hour))
	update(t, s, func(tx store.Tx) error { return tx.FinishDelivery(ctx, run) })

	for _, id := range []int64{run, deadA1, deadA2} {
		wantNoDelivery(t, s, id)
	}
	for _, id := range []int64{deadAOkta, deadB} {
		if d := mustDelivery(t, s, id); d.State != store.DeliveryDead {
			t.Errorf("dead delivery %d of another pair: state %q", id, d.State)
		}
	}
	wantDelivery(t, s, pending(later, "a", "github", store.PriorityGrant, at(2*time.Hour)))
}

func testRequeueRunning(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b", "c", "d", "e")
	r1 := enqueue(t, s, "a", "github", store.PriorityGrant, at(0))
	r2 := enqueue(t, s, "b", "okta", store.PriorityGrant, at(time.Second))
	r3 := enqueue(t, s, "e", "okta", store.PriorityRevoke, at(time.Second))
	if got := claimIDs(t, s, "github", at(time.Minute), 10); !slices.Equal(got, []int64{r1}) {
		t.Fatalf("claim github = %v", got)
	}
	if got := claimIDs(t, s, "okta", at(time.Minute), 10); !slices.Equal(got, []int64{r3, r2}) {
		t.Fatalf("claim okta = %v", got)
	}
	// Changes made while r1 and r3 run.
	change := enqueue(t, s, "a", "github", store.PriorityRevoke, at(2*time.Minute))
	change3 := enqueue(t, s, "e", "okta", store.PriorityGrant, at(2*time.Minute))
	notDue := enqueue(t, s, "c", "github", store.PriorityGrant, at(24*time.Hour))
	dead := enqueue(t, s, "d", "github", store.PriorityGrant, at(0))
	claimIDs(t, s, "github", at(3*time.Minute), 10)
	update(t, s, func(tx store.Tx) error { return tx.FailDelivery(ctx, dead, time.Time{}, true, "x", at(3*time.Minute)) })
	untouched := []*store.Delivery{mustDelivery(t, s, notDue), mustDelivery(t, s, dead)}

	now := at(time.Hour)
	var n int
	update(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.RequeueRunning(ctx, now)
		return err
	})
	if n != 3 {
		t.Errorf("RequeueRunning = %d, want 3", n)
	}
	want2 := pending(r2, "b", "okta", store.PriorityGrant, at(time.Second))
	want2.Attempts, want2.RunAt, want2.Updated = 1, now, now
	wantDelivery(t, s, want2)
	// r1 and r3 absorbed the changes made while they ran: the more urgent
	// priority, the older Enqueued, due by now.
	for _, f := range []struct {
		id, change int64
		enqueued   time.Time
	}{{r1, change, at(0)}, {r3, change3, at(time.Second)}} {
		wantNoDelivery(t, s, f.change)
		d := mustDelivery(t, s, f.id)
		if d.State != store.DeliveryPending || d.Priority != store.PriorityRevoke || d.Attempts != 1 ||
			!sameTime(d.Enqueued, f.enqueued) || d.RunAt.After(now) {
			t.Errorf("requeued %d with a pending change = %+v; want pending, revoke priority, attempt 1, enqueued %v, due by %v",
				f.id, d, f.enqueued, now)
		}
	}
	for _, want := range untouched {
		wantDelivery(t, s, want)
	}
	update(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.RequeueRunning(ctx, at(2*time.Hour))
		return err
	})
	if n != 0 {
		t.Errorf("second RequeueRunning = %d, want 0", n)
	}
	if got := claimIDs(t, s, "github", now, 10); !slices.Equal(got, []int64{r1}) {
		t.Errorf("claim after requeue = %v, want [%d]", got, r1)
	}
}

func testQueueStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	stats := func() map[string]store.QueueStats {
		t.Helper()
		return mustRead(t, s, func(tx store.ReadTx) (map[string]store.QueueStats, error) { return tx.QueueStats(ctx) })
	}
	check := func(step string, want map[string]store.QueueStats) {
		t.Helper()
		got := stats()
		if len(got) != len(want) {
			t.Errorf("%s: QueueStats = %+v, want %+v", step, got, want)
			return
		}
		for c, w := range want {
			g, ok := got[c]
			if !ok || g.Pending != w.Pending || g.Running != w.Running || g.Dead != w.Dead ||
				!sameTime(g.OldestPending, w.OldestPending) || g.OldestPending.IsZero() != w.OldestPending.IsZero() {
				t.Errorf("%s: QueueStats[%q] = %+v (present %t), want %+v", step, c, g, ok, w)
			}
		}
	}
	check("empty", map[string]store.QueueStats{})

	queueIdentities(t, s, "a", "b", "c", "d")
	a := enqueue(t, s, "a", "github", store.PriorityGrant, at(time.Minute))
	enqueue(t, s, "b", "github", store.PriorityGrant, at(2*time.Minute))
	enqueue(t, s, "c", "github", store.PriorityGrant, at(3*time.Minute+time.Nanosecond))
	enqueue(t, s, "a", "github", store.PriorityRevoke, at(4*time.Minute)) // keeps Enqueued
	d := enqueue(t, s, "d", "okta", store.PriorityGrant, at(0))
	check("pending", map[string]store.QueueStats{
		"github": {Pending: 3, OldestPending: at(time.Minute)},
		"okta":   {Pending: 1, OldestPending: at(0)},
	})

	// Claiming the oldest moves OldestPending to the next one.
	if got := claimIDs(t, s, "github", at(time.Hour), 1); !slices.Equal(got, []int64{a}) {
		t.Fatalf("claim = %v, want [%d]", got, a)
	}
	claimIDs(t, s, "okta", at(time.Hour), 1)
	update(t, s, func(tx store.Tx) error { return tx.FailDelivery(ctx, d, time.Time{}, true, "x", at(time.Hour)) })
	check("claimed", map[string]store.QueueStats{
		"github": {Pending: 2, Running: 1, OldestPending: at(2 * time.Minute)},
		"okta":   {Dead: 1},
	})

	// A connector with no delivery left is not listed.
	update(t, s, func(tx store.Tx) error { return tx.FinishDelivery(ctx, a) })
	claimIDs(t, s, "okta", at(time.Hour), 1)
	d2 := enqueue(t, s, "d", "okta", store.PriorityGrant, at(2*time.Hour))
	claimIDs(t, s, "okta", at(2*time.Hour), 1)
	update(t, s, func(tx store.Tx) error { return tx.FinishDelivery(ctx, d2) }) // clears the dead one too
	check("finished", map[string]store.QueueStats{
		"github": {Pending: 2, OldestPending: at(2 * time.Minute)},
	})
}

func testListDeliveries(t *testing.T, s store.Store) {
	queueIdentities(t, s, "a", "b")
	ids := map[string]int64{}
	for _, e := range []struct{ name, identityID, connector string }{
		{"a-github", "a", "github"}, {"b-github", "b", "github"}, {"a-okta", "a", "okta"},
		{"b-okta", "b", "okta"}, {"a-slack", "a", "slack"}, {"b-slack", "b", "slack"},
	} {
		ids[e.name] = enqueue(t, s, e.identityID, e.connector, store.PriorityGrant, at(0))
	}
	claimIDs(t, s, "github", at(0), 10)    // a-github, b-github running
	claimIDs(t, s, "okta", at(0), 1)       // a-okta running …
	update(t, s, func(tx store.Tx) error { // … then dead
		return tx.FailDelivery(t.Context(), ids["a-okta"], time.Time{}, true, "x", at(time.Second))
	})
	all := map[int64]*store.Delivery{}
	for _, d := range listDeliveries(t, s, store.DeliveryQuery{}) {
		all[d.ID] = d
	}
	names := func(ns ...string) []int64 {
		out := []int64{}
		for _, n := range ns {
			out = append(out, ids[n])
		}
		return out
	}
	type q = store.DeliveryQuery
	tests := []struct {
		q    q
		want []int64
	}{
		{q{}, names("a-github", "b-github", "a-okta", "b-okta", "a-slack", "b-slack")},
		{q{State: store.DeliveryPending}, names("b-okta", "a-slack", "b-slack")},
		{q{State: store.DeliveryRunning}, names("a-github", "b-github")},
		{q{State: store.DeliveryDead}, names("a-okta")},
		{q{State: "Dead"}, names()},
		{q{Connector: "okta"}, names("a-okta", "b-okta")},
		{q{Connector: "OKTA"}, names()},
		{q{IdentityID: "a"}, names("a-github", "a-okta", "a-slack")},
		{q{IdentityID: "nobody"}, names()},
		{q{IdentityID: "a", Connector: "slack"}, names("a-slack")},
		{q{IdentityID: "b", State: store.DeliveryPending}, names("b-okta", "b-slack")},
		{q{Connector: "github", State: store.DeliveryRunning}, names("a-github", "b-github")},
		{q{IdentityID: "a", Connector: "okta", State: store.DeliveryDead}, names("a-okta")},
		{q{IdentityID: "a", Connector: "okta", State: store.DeliveryPending}, names()},
		{q{Limit: 2}, names("a-github", "b-github")},
		{q{After: ids["b-github"], Limit: 3}, names("a-okta", "b-okta", "a-slack")},
		{q{After: ids["b-slack"]}, names()},
		{q{IdentityID: "b", After: ids["b-github"], Limit: 1}, names("b-okta")},
		{q{State: store.DeliveryPending, After: ids["a-slack"]}, names("b-slack")},
	}
	for _, tc := range tests {
		got := listDeliveries(t, s, tc.q)
		if gotIDs := deliveryIDs(got); !slices.Equal(gotIDs, tc.want) {
			t.Errorf("Deliveries(%+v) = %v, want %v", tc.q, gotIDs, tc.want)
		}
		for _, d := range got {
			if diff := deliveryDiff(d, all[d.ID]); diff != "" {
				t.Errorf("Deliveries(%+v): %d: %s", tc.q, d.ID, diff)
			}
		}
	}

	// Walking the cursor by two visits everything once.
	var walked []int64
	var after int64
	for range 10 {
		page := listDeliveries(t, s, store.DeliveryQuery{After: after, Limit: 2})
		if len(page) == 0 {
			break
		}
		walked = append(walked, deliveryIDs(page)...)
		after = page[len(page)-1].ID
	}
	if want := deliveryIDs(listDeliveries(t, s, store.DeliveryQuery{})); !slices.Equal(walked, want) {
		t.Errorf("paging by 2 = %v, want %v", walked, want)
	}

	// Limit <= 0 means 100.
	update(t, s, func(tx store.Tx) error {
		for i := range 100 {
			if _, err := tx.EnqueueDelivery(t.Context(), "a", fmt.Sprintf("c%03d", i), store.PriorityGrant, at(0)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, limit := range []int{0, -1} {
		if got := listDeliveries(t, s, store.DeliveryQuery{Limit: limit}); len(got) != 100 {
			t.Errorf("Deliveries(Limit %d) returned %d, want 100", limit, len(got))
		}
	}
	if got := listDeliveries(t, s, store.DeliveryQuery{Limit: 200}); len(got) != 106 {
		t.Errorf("Deliveries(Limit 200) returned %d, want 106", len(got))
	}
}

func getAccount(t *testing.T, s store.Store, identityID, connector string) (*store.Account, error) {
	return read(t, s, func(tx store.ReadTx) (*store.Account, error) {
		return tx.GetAccount(t.Context(), identityID, connector)
	})
}

// accountDiff compares every field; nil and empty Entitlements are equal.
func accountDiff(got, want *store.Account) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct{ name, got, want string }{
		{"IdentityID", got.IdentityID, want.IdentityID},
		{"Connector", got.Connector, want.Connector},
		{"Ref", got.Ref, want.Ref},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if got.Enabled != want.Enabled {
		add("Enabled", got.Enabled, want.Enabled)
	}
	if got.Pending != want.Pending {
		add("Pending", got.Pending, want.Pending)
	}
	if !slices.Equal(got.Maybe, want.Maybe) {
		add("Maybe", fmt.Sprintf("%q", got.Maybe), fmt.Sprintf("%q", want.Maybe))
	}
	if !slices.Equal(got.Entitlements, want.Entitlements) {
		add("Entitlements", fmt.Sprintf("%q", got.Entitlements), fmt.Sprintf("%q", want.Entitlements))
	}
	if !sameTime(got.Updated, want.Updated) {
		add("Updated", got.Updated, want.Updated)
	}
	return strings.Join(d, "; ")
}

func wantAccount(t *testing.T, s store.Store, want *store.Account) {
	t.Helper()
	got, err := getAccount(t, s, want.IdentityID, want.Connector)
	if err != nil {
		t.Fatalf("GetAccount(%q, %q): %v", want.IdentityID, want.Connector, err)
	}
	if d := accountDiff(got, want); d != "" {
		t.Errorf("account (%q, %q): %s", want.IdentityID, want.Connector, d)
	}
}

func wantNoAccount(t *testing.T, s store.Store, identityID, connector string) {
	t.Helper()
	if got, err := getAccount(t, s, identityID, connector); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAccount(%q, %q) = %+v, %v; want ErrNotFound", identityID, connector, got, err)
	}
}

func accountKeys(as []*store.Account) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.IdentityID+"/"+a.Connector)
	}
	return out
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b", "c")
	zone := time.FixedZone("UTC+02:00", 2*3600)
	given := []string{"team:ops", "org:acme", "team:ops", "Org:acme", "", "org:acme"}
	in := &store.Account{IdentityID: "a", Connector: "github", Ref: "12345", Enabled: true,
		Entitlements: given, Updated: at(time.Nanosecond).In(zone)}
	putAll(t, s, store.Tx.PutAccount, in)
	if !slices.Equal(in.Entitlements, []string{"team:ops", "org:acme", "team:ops", "Org:acme", "", "org:acme"}) {
		t.Errorf("PutAccount changed the caller's Entitlements to %q", in.Entitlements)
	}
	want := *in
	want.Entitlements = []string{"", "Org:acme", "org:acme", "team:ops"}
	wantAccount(t, s, &want)

	// Replacing changes every field; no entitlements and disabled store too.
	for _, ents := range [][]string{nil, {}, {"b", "a"}} {
		repl := &store.Account{IdentityID: "a", Connector: "github", Ref: "", Enabled: false,
			Entitlements: ents, Updated: at(time.Hour)}
		putAll(t, s, store.Tx.PutAccount, repl)
		want := *repl
		want.Entitlements = slices.Sorted(slices.Values(ents))
		wantAccount(t, s, &want)
	}

	// A pending ensure (no ref yet) round-trips, and is cleared by a put.
	pend := &store.Account{IdentityID: "a", Connector: "github", Pending: true, Updated: at(2 * time.Hour)}
	putAll(t, s, store.Tx.PutAccount, pend)
	wantAccount(t, s, pend)
	settled := &store.Account{IdentityID: "a", Connector: "github", Ref: "r1", Enabled: true, Updated: at(3 * time.Hour)}
	putAll(t, s, store.Tx.PutAccount, settled)
	wantAccount(t, s, settled)
	// Unconfirmed grants round-trip sorted and deduplicated, and clear.
	unsure := &store.Account{IdentityID: "a", Connector: "github", Ref: "r1", Enabled: true,
		Entitlements: []string{"x"}, Maybe: []string{"z", "y", "z"}, Updated: at(4 * time.Hour)}
	putAll(t, s, store.Tx.PutAccount, unsure)
	wantUnsure := *unsure
	wantUnsure.Maybe = []string{"y", "z"}
	wantAccount(t, s, &wantUnsure)
	putAll(t, s, store.Tx.PutAccount, settled)
	wantAccount(t, s, settled)

	// Listings: an identity's by connector, a connector's by identity.
	for _, k := range []struct{ identityID, connector string }{
		{"c", "okta"}, {"b", "github"}, {"a", "okta"}, {"a", "aws"}, {"b", "okta"},
	} {
		putAll(t, s, store.Tx.PutAccount, &store.Account{IdentityID: k.identityID, Connector: k.connector,
			Ref: k.identityID + "@" + k.connector, Enabled: true, Entitlements: []string{"x"}, Updated: at(0)})
	}
	accounts := func(identityID string) []string {
		return accountKeys(mustRead(t, s, func(tx store.ReadTx) ([]*store.Account, error) { return tx.Accounts(ctx, identityID) }))
	}
	connectorAccounts := func(connector string) []string {
		return accountKeys(mustRead(t, s, func(tx store.ReadTx) ([]*store.Account, error) {
			return tx.ConnectorAccounts(ctx, connector)
		}))
	}
	lists := []struct {
		name string
		got  []string
		want []string
	}{
		{"Accounts(a)", accounts("a"), []string{"a/aws", "a/github", "a/okta"}},
		{"Accounts(b)", accounts("b"), []string{"b/github", "b/okta"}},
		{"Accounts(nobody)", accounts("nobody"), []string{}},
		{"ConnectorAccounts(okta)", connectorAccounts("okta"), []string{"a/okta", "b/okta", "c/okta"}},
		{"ConnectorAccounts(github)", connectorAccounts("github"), []string{"a/github", "b/github"}},
		{"ConnectorAccounts(Okta)", connectorAccounts("Okta"), []string{}},
	}
	for _, l := range lists {
		if !slices.Equal(l.got, l.want) {
			t.Errorf("%s = %v, want %v", l.name, l.got, l.want)
		}
	}
	wantNoAccount(t, s, "c", "github")
	wantNoAccount(t, s, "A", "okta")

	// Delete: gone, others stay, deleting again is no error.
	for range 2 {
		update(t, s, func(tx store.Tx) error { return tx.DeleteAccount(ctx, "a", "okta") })
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteAccount(ctx, "nobody", "okta") })
	wantNoAccount(t, s, "a", "okta")
	if got := connectorAccounts("okta"); !slices.Equal(got, []string{"b/okta", "c/okta"}) {
		t.Errorf("ConnectorAccounts(okta) after delete = %v", got)
	}

	// A missing identity is ErrNotFound, empty keys are refused; the
	// transaction stays usable.
	update(t, s, func(tx store.Tx) error {
		for _, a := range []*store.Account{
			{IdentityID: "nobody", Connector: "okta", Updated: at(0)},
			{IdentityID: "A", Connector: "okta", Updated: at(0)},
		} {
			if err := tx.PutAccount(ctx, a); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("PutAccount for missing identity %q: err = %v, want ErrNotFound", a.IdentityID, err)
			}
		}
		for _, a := range []*store.Account{
			{IdentityID: "", Connector: "okta", Updated: at(0)},
			{IdentityID: "a", Connector: "", Updated: at(0)},
		} {
			if err := tx.PutAccount(ctx, a); err == nil {
				t.Errorf("PutAccount(%q, %q): no error", a.IdentityID, a.Connector)
			}
		}
		return tx.PutAccount(ctx, &store.Account{IdentityID: "c", Connector: "github", Updated: at(0)})
	})
	wantNoAccount(t, s, "nobody", "okta")
	wantAccount(t, s, &store.Account{IdentityID: "c", Connector: "github", Updated: at(0)})
}

func testDeliveryRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	queueIdentities(t, s, "a", "b")
	running := enqueue(t, s, "a", "github", store.PriorityGrant, at(0))
	claimIDs(t, s, "github", at(0), 10)
	kept := &store.Account{IdentityID: "a", Connector: "github", Ref: "1", Enabled: true,
		Entitlements: []string{"x"}, Updated: at(0)}
	putAll(t, s, store.Tx.PutAccount, kept)
	before := listDeliveries(t, s, store.DeliveryQuery{})

	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.EnqueueDelivery(ctx, "b", "github", store.PriorityRevoke, at(time.Minute)); err != nil {
			return err
		}
		if _, err := tx.EnqueueDelivery(ctx, "a", "github", store.PriorityRevoke, at(time.Minute)); err != nil {
			return err
		}
		if err := tx.FinishDelivery(ctx, running); err != nil {
			return err
		}
		if _, err := tx.ClaimDeliveries(ctx, "github", at(time.Minute), 10); err != nil {
			return err
		}
		if err := tx.PutAccount(ctx, &store.Account{IdentityID: "b", Connector: "github", Updated: at(time.Minute)}); err != nil {
			return err
		}
		if err := tx.DeleteAccount(ctx, "a", "github"); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	after := listDeliveries(t, s, store.DeliveryQuery{})
	if len(after) != len(before) {
		t.Fatalf("deliveries after rollback = %v, want %v", deliveryIDs(after), deliveryIDs(before))
	}
	for i := range before {
		if d := deliveryDiff(after[i], before[i]); d != "" {
			t.Errorf("delivery %d after rollback: %s", before[i].ID, d)
		}
	}
	wantAccount(t, s, kept)
	wantNoAccount(t, s, "b", "github")
	// The rolled-back finish can happen for real.
	update(t, s, func(tx store.Tx) error { return tx.FinishDelivery(ctx, running) })
	wantNoDelivery(t, s, running)
}

func hasDue(t *testing.T, s store.Store, connector string, now time.Time) bool {
	t.Helper()
	return mustRead(t, s, func(tx store.ReadTx) (bool, error) { return tx.HasDueDelivery(t.Context(), connector, now) })
}

func testHasDueDelivery(t *testing.T, s store.Store) {
	queueIdentities(t, s, "a", "b", "c")
	if hasDue(t, s, "github", at(time.Hour)) {
		t.Fatal("empty queue: due")
	}
	enqueue(t, s, "a", "github", store.PriorityGrant, at(time.Minute))
	enqueue(t, s, "b", "github", store.PriorityRevoke, at(2*time.Minute))
	enqueue(t, s, "c", "okta", store.PriorityRevoke, at(0))
	cases := []struct {
		connector string
		now       time.Duration
		want      bool
	}{
		{"github", 30 * time.Second, false},
		{"github", time.Minute, true}, // the grant, due exactly now
		{"github", 90 * time.Second, true},
		{"gitlab", time.Hour, false},
		{"okta", 0, true},
	}
	for _, c := range cases {
		if got := hasDue(t, s, c.connector, at(c.now)); got != c.want {
			t.Errorf("HasDueDelivery(%s, +%v) = %v, want %v", c.connector, c.now, got, c.want)
		}
	}
	// Running and dead deliveries are not due; only pending ones are.
	for _, d := range claim(t, s, "github", at(time.Hour), 10) {
		update(t, s, func(tx store.Tx) error {
			return tx.FailDelivery(t.Context(), d.ID, at(3*time.Hour), d.IdentityID == "b", "x", at(time.Hour))
		})
	}
	if hasDue(t, s, "github", at(2*time.Hour)) {
		t.Error("a backed-off delivery is due before its RunAt (or a dead one counts)")
	}
	if !hasDue(t, s, "github", at(3*time.Hour)) {
		t.Error("the backed-off delivery is not due at its RunAt")
	}
}
