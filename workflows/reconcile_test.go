package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
)

// reconState returns the target's account ref as "enabled [a b]" /
// "disabled [a]", or "absent".
func reconState(m *connectortest.Memory, ref string) string {
	a, found := m.Account(ref)
	if !found {
		return "absent"
	}
	s := "disabled"
	if a.Enabled {
		s = "enabled"
	}
	return fmt.Sprintf("%s %v", s, a.Entitlements)
}

var reconNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type reconEnv struct {
	t    *testing.T
	st   store.Store
	d    *Dispatcher
	conn *connectortest.Memory
}

// put stores an account in app's target as if created out of band.
func (e *reconEnv) put(ref, identityID, userName string, enabled bool, ents ...string) {
	e.conn.Put(connectors.AccountState{Ref: ref, IdentityID: identityID, UserName: userName, Enabled: enabled, Entitlements: ents})
}

// newReconEnv opens a fresh SQLite store and a dispatcher with one Lister
// target "app" (drift policy drift) and one non-Lister "plain".
func newReconEnv(t *testing.T, drift string) *reconEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "reconcile.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn := connectortest.NewMemory()
	d := &Dispatcher{
		Store: st,
		Now:   func() time.Time { return reconNow },
		Targets: map[string]*Target{
			"app":   {Name: "app", Type: "memory", Conn: conn, Drift: drift, MaxAttempts: 1},
			"plain": {Name: "plain", Type: "memory", Conn: connectortest.NewMemory().Bare()},
		},
	}
	return &reconEnv{t: t, st: st, d: d, conn: conn}
}

// identity stores an identity in state with sendable access to app.
func (e *reconEnv) identity(id, state string, ents ...string) {
	e.t.Helper()
	var ds []DesiredAccess
	for _, x := range ents {
		ds = append(ds, DesiredAccess{Connector: "app", Entitlement: x, Roles: []string{"r"}})
	}
	desired, _ := json.Marshal(ds)
	e.update(func(tx store.Tx) error {
		idn := &store.Identity{ID: id, UserName: id + "@example.com", State: state,
			Desired: desired, Version: 1, Created: reconNow.Add(-time.Hour), Updated: reconNow.Add(-time.Hour)}
		if state == store.StateActive { // active only with proven MFA
			idn.MFAMethod, idn.MFAEnrolledAt = "totp", reconNow.Add(-time.Hour)
		}
		return tx.PutIdentity(context.Background(), idn)
	})
}

// record stores what jmlgate believes about id's account in app.
func (e *reconEnv) record(id, ref string, enabled bool, ents ...string) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		return tx.PutAccount(context.Background(), &store.Account{IdentityID: id, Connector: "app", Ref: ref,
			Enabled: enabled, Entitlements: ents, Updated: reconNow.Add(-time.Hour)})
	})
}

func (e *reconEnv) update(fn func(store.Tx) error) {
	e.t.Helper()
	if err := e.st.Update(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *reconEnv) view(fn func(store.ReadTx) error) {
	e.t.Helper()
	if err := e.st.View(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

// account returns id's recorded account in app as "ref enabled [a b]".
func (e *reconEnv) account(id string) string {
	e.t.Helper()
	out := "none"
	e.view(func(tx store.ReadTx) error {
		a, err := tx.GetAccount(context.Background(), id, "app")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		s := "disabled"
		if a.Enabled {
			s = "enabled"
		}
		out = fmt.Sprintf("%s %s %v", a.Ref, s, a.Entitlements)
		return nil
	})
	return out
}

// deliveries returns the app deliveries as "identity state priority".
func (e *reconEnv) deliveries() []string {
	e.t.Helper()
	var out []string
	e.view(func(tx store.ReadTx) error {
		ds, err := tx.Deliveries(context.Background(), store.DeliveryQuery{Connector: "app"})
		for _, d := range ds {
			out = append(out, fmt.Sprintf("%s %s %d", d.IdentityID, d.State, d.Priority))
		}
		return err
	})
	return out
}

// auditActions returns the actions audited about one resource, "action by actor".
func (e *reconEnv) auditActions(typ, id string) []string {
	e.t.Helper()
	var out []string
	e.view(func(tx store.ReadTx) error {
		recs, err := tx.AuditFor(context.Background(), typ, id, 1, -1)
		for _, r := range recs {
			out = append(out, r.Action+" by "+r.Actor)
		}
		return err
	})
	return out
}

// fixture is the drift every mode test starts from (connector "app"):
//
//	alice  active, wants eng+wiki; target: eng+admin (found by identity id)
//	bob    terminated; target: enabled with eng (found by recorded ref only)
//	carol  active, wants eng; target: disabled with eng
//	erin   active, wants eng; recorded e1, which the target no longer has
//	frank  active, wants eng; target matches
//	x1     unknown ("ghost" is no identity): enabled with admin+eng
//	x2     unknown, disabled, nothing held: no finding
func (e *reconEnv) fixture() {
	e.identity("alice", store.StateActive, "eng", "wiki")
	e.record("alice", "a1", true, "eng", "wiki")
	e.put("a1", "alice", "alice", true, "eng", "admin")

	e.identity("bob", store.StateTerminated)
	e.record("bob", "b1", false)
	e.put("b1", "", "bob", true, "eng")

	e.identity("carol", store.StateActive, "eng")
	e.record("carol", "c1", true, "eng")
	e.put("c1", "carol", "carol", false, "eng")

	e.identity("erin", store.StateActive, "eng")
	e.record("erin", "e1", true, "eng")

	e.identity("frank", store.StateActive, "eng")
	e.record("frank", "f1", true, "eng")
	e.put("f1", "frank", "frank", true, "eng")

	e.put("x1", "", "mallory", true, "admin", "eng")
	e.put("x2", "", "old", false)
}

func findingStrings(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%s %s %s %s", f.IdentityID, f.Ref, f.Kind, f.Action)
		if f.Entitlement != "" {
			s += " " + f.Entitlement
		}
		out = append(out, s)
	}
	return out
}

func TestReconcileModes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		drift    string
		findings []string
		calls    []string // direct calls to the target during Reconcile
		accounts map[string]string
		queue    []string
		// after a Drain, the target's accounts
		target map[string]string
	}{
		{
			drift: "report",
			findings: []string{
				"alice a1 missing_entitlement enqueued wiki",
				"alice a1 unmanaged_entitlement reported admin",
				"bob b1 unmanaged_account reported",
				"bob b1 unmanaged_entitlement reported eng",
				"carol c1 account_disabled enqueued",
				"erin e1 account_disabled enqueued",
				"erin e1 missing_entitlement enqueued eng",
				" x1 unmanaged_account reported",
				" x1 unmanaged_entitlement reported admin",
				" x1 unmanaged_entitlement reported eng",
			},
			calls: nil,
			accounts: map[string]string{
				"alice": "a1 enabled [eng]", // admin is not jmlgate's: left out, never revoked
				"bob":   "b1 disabled []",   // untouched
				"carol": "c1 disabled [eng]",
				"erin":  "e1 disabled []",
				"frank": "f1 enabled [eng]",
			},
			queue: []string{"alice pending 1", "carol pending 1", "erin pending 1"},
			target: map[string]string{
				"a1": "enabled [admin eng wiki]", // wiki granted, admin reported only
				"b1": "enabled [eng]",
				"c1": "enabled [eng]",
				"x1": "enabled [admin eng]",
				"x2": "disabled []",
				"f1": "enabled [eng]",
			},
		},
		{
			drift: "revoke",
			findings: []string{
				"alice a1 missing_entitlement enqueued wiki",
				"alice a1 unmanaged_entitlement enqueued admin",
				"bob b1 unmanaged_account enqueued",
				"bob b1 unmanaged_entitlement enqueued eng",
				"carol c1 account_disabled enqueued",
				"erin e1 account_disabled enqueued",
				"erin e1 missing_entitlement enqueued eng",
				" x1 unmanaged_account disabled",
				" x1 unmanaged_entitlement revoked admin",
				" x1 unmanaged_entitlement revoked eng",
			},
			calls: []string{"disable mallory", "revoke mallory admin", "revoke mallory eng"},
			accounts: map[string]string{
				"alice": "a1 enabled [admin eng]",
				"bob":   "b1 enabled [eng]",
				"carol": "c1 disabled [eng]",
				"erin":  "e1 disabled []",
				"frank": "f1 enabled [eng]",
			},
			queue: []string{"alice pending 0", "bob pending 0", "carol pending 1", "erin pending 1"},
			target: map[string]string{
				"a1": "enabled [eng wiki]",
				"b1": "disabled []",
				"c1": "enabled [eng]",
				"x1": "disabled []",
				"x2": "disabled []",
				"f1": "enabled [eng]",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.drift, func(t *testing.T) {
			t.Parallel()
			e := newReconEnv(t, c.drift)
			e.fixture()
			rep, err := e.d.Reconcile(reqctx.WithActor(context.Background(), "token:ops"), "app")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Connector != "app" || rep.Accounts != 6 || !rep.Started.Equal(reconNow) || !rep.Finished.Equal(reconNow) {
				t.Errorf("report header = %+v", rep)
			}
			if got := findingStrings(rep.Findings); !slices.Equal(got, c.findings) {
				t.Errorf("findings:\n got %q\nwant %q", got, c.findings)
			}
			for _, f := range rep.Findings {
				if f.IdentityID == "" && f.UserName != "mallory" || f.IdentityID == "alice" && f.UserName != "alice" {
					t.Errorf("finding %+v: wrong user name", f)
				}
			}
			if calls := e.conn.Calls(); !slices.Equal(calls, c.calls) {
				t.Errorf("direct calls = %q, want %q", calls, c.calls)
			}
			if got := reconState(e.conn, "a1"); got != "enabled [admin eng]" {
				t.Errorf("Reconcile touched a known identity's account directly: a1 = %s", got)
			}
			for id, want := range c.accounts {
				if got := e.account(id); got != want {
					t.Errorf("recorded account of %s = %s, want %s", id, got, want)
				}
			}
			if got := e.deliveries(); !slices.Equal(got, c.queue) {
				t.Errorf("deliveries = %q, want %q", got, c.queue)
			}
			if got := e.auditActions(store.TypeIdentity, "alice"); !slices.Equal(got,
				[]string{"drift.missing_entitlement by token:ops", "drift.unmanaged_entitlement by token:ops"}) {
				t.Errorf("alice's audit = %q", got)
			}
			if got := e.auditActions("Connector", "app"); !slices.Equal(got, []string{
				"drift.unmanaged_account by token:ops", "drift.unmanaged_entitlement by token:ops", "drift.unmanaged_entitlement by token:ops"}) {
				t.Errorf("connector audit = %q", got)
			}
			if got := e.auditActions(store.TypeIdentity, "frank"); len(got) != 0 {
				t.Errorf("frank has no drift but audit = %q", got)
			}
			if _, err := audit.VerifyStore(context.Background(), e.st); err != nil {
				t.Errorf("audit chain: %v", err)
			}

			// The deliveries repair what they should, and only that.
			if _, err := e.d.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			for ref, want := range c.target {
				if got := reconState(e.conn, ref); got != want {
					t.Errorf("after delivery, target %s = %s, want %s", ref, got, want)
				}
			}
			if got := e.deliveries(); len(got) != 0 {
				t.Errorf("deliveries left after drain: %q", got)
			}
			// erin's account came back under a new ref.
			if got := e.account("erin"); got != "ref-erin enabled [eng]" {
				t.Errorf("erin's account after repair = %s", got)
			}
			// A second pass finds only what the policy leaves in place.
			rep, err = e.d.Reconcile(context.Background(), "app")
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, f := range rep.Findings {
				left = append(left, f.Ref+" "+f.Kind+" "+f.Entitlement)
			}
			wantLeft := []string{"a1 unmanaged_entitlement admin", "b1 unmanaged_account ", "b1 unmanaged_entitlement eng",
				"x1 unmanaged_account ", "x1 unmanaged_entitlement admin", "x1 unmanaged_entitlement eng"}
			if c.drift == "revoke" {
				wantLeft = nil
			}
			if !slices.Equal(left, wantLeft) {
				t.Errorf("second pass findings = %q, want %q", left, wantLeft)
			}
			if c.drift == "report" {
				if got := e.auditActions("Connector", "app"); got[len(got)-1] != "drift.unmanaged_entitlement by reconciler" {
					t.Errorf("without an actor in ctx the audit actor should be reconciler: %q", got)
				}
			}
		})
	}
}

func TestReconcileDirectFailure(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "revoke")
	e.put("x1", "", "mallory", true, "admin", "eng")
	e.conn.FailOn("revoke mallory admin", connectors.Errorf(connectors.Permanent, "PATCH /Users/x1: HTTP 403: forbidden"))
	e.conn.FailOn("disable mallory", connectors.Errorf(connectors.NotFound, "gone")) // absent counts as done
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{" x1 unmanaged_account disabled", " x1 unmanaged_entitlement failed admin", " x1 unmanaged_entitlement revoked eng"}
	if got := findingStrings(rep.Findings); !slices.Equal(got, want) {
		t.Fatalf("findings = %q, want %q", got, want)
	}
	if f := rep.Findings[1]; !strings.Contains(f.Error, "HTTP 403") {
		t.Errorf("failed finding error = %q", f.Error)
	}
	if got := reconState(e.conn, "x1"); got != "enabled [admin]" {
		t.Errorf("x1 = %s; want the failed revocation left and the rest done", got)
	}
	if got := e.auditActions("Connector", "app"); len(got) != 3 {
		t.Errorf("audit = %q, want one record per finding", got)
	}
}

// A delivery running for a pair owns its recorded account: reconciliation
// does not overwrite it, leaves the running delivery alone and queues a
// follow-up.
func TestReconcileRespectsRunningDelivery(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "revoke")
	e.identity("alice", store.StateActive, "eng")
	e.record("alice", "a1", true, "eng")
	e.put("a1", "alice", "alice", true, "eng", "admin")
	var running int64
	e.update(func(tx store.Tx) error {
		if _, err := tx.EnqueueDelivery(context.Background(), "alice", "app", store.PriorityGrant, reconNow); err != nil {
			return err
		}
		js, err := tx.ClaimDeliveries(context.Background(), "app", reconNow, 1)
		if err == nil && len(js) == 1 {
			running = js[0].ID
		}
		return err
	})
	if running == 0 {
		t.Fatal("no delivery claimed")
	}
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := findingStrings(rep.Findings); !slices.Equal(got, []string{"alice a1 unmanaged_entitlement enqueued admin"}) {
		t.Errorf("findings = %q", got)
	}
	if got := e.account("alice"); got != "a1 enabled [eng]" {
		t.Errorf("recorded account overwritten while a delivery ran: %s", got)
	}
	var ds []*store.Delivery
	e.view(func(tx store.ReadTx) error {
		var err error
		ds, err = tx.Deliveries(context.Background(), store.DeliveryQuery{IdentityID: "alice"})
		return err
	})
	if len(ds) != 2 || ds[0].ID != running || ds[0].State != store.DeliveryRunning ||
		ds[1].State != store.DeliveryPending || ds[1].Priority != store.PriorityRevoke {
		t.Errorf("deliveries = %+v, want the running one untouched and a pending revoke after it", ds)
	}
	if got := e.conn.Calls(); len(got) != 0 {
		t.Errorf("direct calls for a known identity: %q", got)
	}
}

// A delivery that records progress while the target is being listed makes
// the listing stale for that pair: the record it wrote is kept.
func TestReconcileKeepsProgressMadeDuringListing(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "revoke")
	e.identity("alice", store.StateActive, "eng", "wiki")
	e.record("alice", "a1", true, "eng")
	e.put("a1", "alice", "alice", true, "eng")
	e.conn.OnList(func() {
		// As if a delivery granted wiki and recorded it just after the
		// target answered the listing.
		e.record("alice", "a1", true, "eng", "wiki")
	})
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := findingStrings(rep.Findings); !slices.Equal(got, []string{"alice a1 missing_entitlement enqueued wiki"}) {
		t.Errorf("findings = %q", got)
	}
	if got := e.account("alice"); got != "a1 enabled [eng wiki]" {
		t.Errorf("recorded account = %s, want the delivery's newer record kept", got)
	}
	if got := e.deliveries(); !slices.Equal(got, []string{"alice pending 1"}) {
		t.Errorf("deliveries = %q", got)
	}
}

func TestReconcileErrors(t *testing.T) {
	t.Parallel()
	listFail := connectors.Errorf(connectors.Retryable, "GET /Users: HTTP 503")
	cases := []struct {
		name      string
		connector string
		listErr   error
		want      error
	}{
		{"unknown connector", "nope", nil, ErrUnknownConnector},
		{"not a lister", "plain", nil, ErrNotLister},
		{"listing fails", "app", listFail, listFail},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newReconEnv(t, "revoke")
			e.fixture()
			e.conn.FailOn("list", c.listErr) // nil: no fault
			rep, err := e.d.Reconcile(context.Background(), c.connector)
			if !errors.Is(err, c.want) || rep != nil {
				t.Fatalf("Reconcile = %v, %v; want %v", rep, err, c.want)
			}
			if !strings.Contains(err.Error(), c.connector) {
				t.Errorf("error %q does not name the connector", err)
			}
			if got := e.deliveries(); len(got) != 0 {
				t.Errorf("deliveries after a failed reconcile: %q", got)
			}
			if got := e.conn.Calls(); len(got) != 0 {
				t.Errorf("calls after a failed reconcile: %q", got)
			}
			var head *store.AuditRecord
			e.view(func(tx store.ReadTx) error {
				var err error
				head, err = tx.AuditHead(context.Background())
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			})
			if head != nil {
				t.Errorf("audit written by a failed reconcile: %+v", head)
			}
		})
	}
}

func TestReconcileLoop(t *testing.T) {
	t.Parallel()
	t.Run("does not run without an interval or a lister", func(t *testing.T) {
		t.Parallel()
		e := newReconEnv(t, "report")
		for _, tg := range []*Target{
			{Name: "app", Conn: e.conn},
			{Name: "plain", Conn: e.conn.Bare(), ReconcileInterval: time.Millisecond},
		} {
			done := make(chan struct{})
			go func() { e.d.reconcileLoop(context.Background(), tg); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("reconcileLoop(%s) did not return", tg.Name)
			}
		}
		if n := e.conn.Lists(); n != 0 {
			t.Errorf("listed %d times", n)
		}
	})
	t.Run("runs every interval until cancelled", func(t *testing.T) {
		t.Parallel()
		e := newReconEnv(t, "report")
		e.put("x1", "", "mallory", true)
		tg := e.d.Targets["app"]
		tg.ReconcileInterval = time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.d.reconcileLoop(ctx, tg); close(done) }()
		deadline := time.Now().Add(10 * time.Second)
		for e.conn.Lists() < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
		if n := e.conn.Lists(); n < 2 {
			t.Fatalf("listed %d times", n)
		}
		got := e.auditActions("Connector", "app")
		if len(got) < 2 || got[0] != "drift.unmanaged_account by reconciler" {
			t.Errorf("audit = %q", got)
		}
	})
}

// In report mode jmlgate does not forget access it granted itself and no
// longer wants: the repair delivery still revokes it.
func TestReconcileReportKeepsOwnGrants(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "report")
	e.identity("alice", store.StateActive, "eng")
	e.record("alice", "a1", true, "eng", "old")
	e.put("a1", "alice", "alice", true, "old", "other")
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice a1 missing_entitlement enqueued eng", "alice a1 unmanaged_entitlement reported old",
		"alice a1 unmanaged_entitlement reported other"}
	if got := findingStrings(rep.Findings); !slices.Equal(got, want) {
		t.Errorf("findings = %q, want %q", got, want)
	}
	if got := e.account("alice"); got != "a1 enabled [old]" {
		t.Errorf("recorded account = %s", got)
	}
	if _, err := e.d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := reconState(e.conn, "a1"); got != "enabled [eng other]" {
		t.Errorf("target after delivery = %s, want eng granted, old revoked, other left", got)
	}
}

// A second account of a known identity is only reported: a delivery can
// repair only the recorded one, and nothing is called directly.
func TestReconcileDuplicateAccount(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "revoke")
	e.identity("alice", store.StateActive, "eng")
	e.record("alice", "a2", true, "eng")
	e.put("a1", "alice", "alice", true, "eng")
	e.put("a2", "alice", "alice", true, "eng")
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice a1 unmanaged_account reported", "alice a1 unmanaged_entitlement reported eng"}
	if got := findingStrings(rep.Findings); !slices.Equal(got, want) {
		t.Errorf("findings = %q, want %q", got, want)
	}
	if got := e.deliveries(); len(got) != 0 {
		t.Errorf("deliveries = %q", got)
	}
	if got := e.conn.Calls(); len(got) != 0 {
		t.Errorf("direct calls = %q", got)
	}
	if got := e.auditActions(store.TypeIdentity, "alice"); len(got) != 2 {
		t.Errorf("audit = %q", got)
	}
}

// An account carrying an identity id jmlgate does not know belongs to
// another provisioner: even with drift "revoke" it is only reported.
func TestReconcileLeavesForeignAccountsAlone(t *testing.T) {
	t.Parallel()
	e := newReconEnv(t, "revoke")
	e.put("o1", "okta-00u1abc", "olga", true, "admin")
	rep, err := e.d.Reconcile(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.Action != actionReported {
			t.Errorf("foreign account finding %+v: want reported only", f)
		}
	}
	if len(rep.Findings) == 0 {
		t.Fatal("a foreign account's access went unreported")
	}
	if calls := e.conn.Calls(); len(calls) != 0 {
		t.Fatalf("direct calls on a foreign account: %q", calls)
	}
}
