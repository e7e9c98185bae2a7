package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
	"github.com/jmlgate/jmlgate/workflows/roles"
)

var deliveryRoles = []config.Role{
	{Name: "everyone", When: "true", Grants: []config.Grant{{Connector: "app", Entitlement: "member"}}},
	{Name: "engineering", When: `user.department == "Engineering"`, Grants: []config.Grant{{Connector: "app", Entitlement: "eng"}}},
	{Name: "admins", When: `"admins" in user.groups`, Privileged: true, ApprovalsRequired: 1,
		Grants: []config.Grant{{Connector: "app", Entitlement: "admin"}}},
}

// testWriter sends log lines to the test log, where an unexpected error
// shows next to the failure it causes.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type deliveryEnv struct {
	*env
	app *connectortest.Memory
	d   *workflows.Dispatcher
}

func newDeliveryEnv(t *testing.T) *deliveryEnv {
	t.Helper()
	e := newEnv(t, deliveryRoles)
	e.engine.Connectors = map[string]bool{"app": true}
	app := connectortest.NewMemory()
	d := &workflows.Dispatcher{
		Store: e.st, Engine: e.engine, Now: e.clock.now,
		Targets:     map[string]*workflows.Target{"app": {Name: "app", Type: "test", Conn: app, MaxAttempts: 3}},
		BackoffBase: time.Minute, BackoffMax: time.Hour,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	return &deliveryEnv{env: e, app: app, d: d}
}

func (e *deliveryEnv) drain() int {
	e.t.Helper()
	n, err := e.d.Drain(context.Background())
	if err != nil {
		e.t.Fatalf("drain: %v", err)
	}
	return n
}

func (e *deliveryEnv) activate(id string) {
	e.t.Helper()
	ctx := reqctx.WithActor(context.Background(), "it")
	err := e.st.Update(ctx, func(tx store.Tx) error {
		return e.engine.MFAProven(ctx, tx, id, "totp", e.clock.now())
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *deliveryEnv) deliveries(state string) []*store.Delivery {
	e.t.Helper()
	var out []*store.Delivery
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		var err error
		out, err = tx.Deliveries(context.Background(), store.DeliveryQuery{State: state})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *deliveryEnv) createUser(userName, dept string) string {
	e.t.Helper()
	status, body := e.do("POST", "/Users", map[string]any{
		"schemas": []string{userURN, entURN}, "userName": userName, "active": true,
		entURN: map[string]any{"department": dept},
	})
	if status != 201 {
		e.t.Fatalf("create %s: %d %v", userName, status, body)
	}
	return body["id"].(string)
}

func (e *deliveryEnv) patch(id string, ops ...map[string]any) {
	e.t.Helper()
	if status, body := e.do("PATCH", "/Users/"+id, map[string]any{"schemas": []string{patchURN}, "Operations": ops}); status != 200 {
		e.t.Fatalf("patch: %d %v", status, body)
	}
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("calls to the target:\n got %q\nwant %q", got, want)
	}
}

// The whole joiner-mover-leaver-rehire path as the target sees it.
func TestDeliveryLifecycle(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("ada@example.com", "Engineering")

	// Invariant 1: awaiting MFA, nothing is queued or sent.
	if n := e.drain(); n != 0 || len(e.app.TakeCalls()) != 0 {
		t.Fatalf("a joiner awaiting MFA got %d deliveries", n)
	}
	e.activate(id)
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "ensure ada@example.com", "grant ada@example.com eng", "grant ada@example.com member")

	// Mover: leaves Engineering; the lost grant is revoked, nothing else.
	e.patch(id, map[string]any{"op": "replace", "path": entURN + ":department", "value": "Sales"})
	if ds := e.deliveries(store.DeliveryPending); len(ds) != 1 || ds[0].Priority != store.PriorityRevoke {
		t.Fatalf("mover queued %+v, want one revoke-priority delivery", ds)
	}
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "revoke ada@example.com eng")

	// A change that does not touch access queues nothing.
	e.patch(id, map[string]any{"op": "replace", "path": "displayName", "value": "Ada L."})
	if ds := e.deliveries(""); len(ds) != 0 {
		t.Fatalf("a display name change queued %+v", ds)
	}

	// Leaver: disable first, sessions, then what is left; time-to-revoke.
	e.clock.advance(time.Minute)
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	leaverAt := e.clock.now()
	if idn := e.identity(id); !idn.RevokedAt.IsZero() {
		t.Fatalf("revoked at %v before any connector acknowledged", idn.RevokedAt)
	}
	e.clock.advance(1500 * time.Millisecond)
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "disable ada@example.com", "revoke_sessions ada@example.com", "revoke ada@example.com member")
	if a, found := e.app.AccountNamed("ada@example.com"); !found || a.Enabled || len(a.Entitlements) != 0 {
		t.Fatalf("leaver's account: found=%v enabled=%v entitlements=%q", found, a.Enabled, a.Entitlements)
	}
	idn := e.identity(id)
	if got := idn.RevokedAt.Sub(idn.LeaverAt); !idn.LeaverAt.Equal(leaverAt) || got != 1500*time.Millisecond {
		t.Fatalf("leaver_at %v revoked_at %v: time-to-revoke %v, want 1.5s", idn.LeaverAt, idn.RevokedAt, got)
	}
	acts := e.lifecycleActions(id)
	if !slices.Contains(acts, "lifecycle.revoked by dispatcher") || !slices.Contains(acts, "delivery.applied by dispatcher") {
		t.Fatalf("audit lacks the delivery and the revocation: %q", acts)
	}

	// Rehire: MFA again, then the same account comes back (ensure re-enables).
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": true})
	e.drain()
	if calls := e.app.TakeCalls(); len(calls) != 0 {
		t.Fatalf("a rehire awaiting MFA got %q", calls)
	}
	e.activate(id)
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "ensure ada@example.com", "grant ada@example.com member")
	if idn := e.identity(id); !idn.RevokedAt.IsZero() || !idn.LeaverAt.IsZero() {
		t.Fatalf("rehire kept leaver_at %v / revoked_at %v", idn.LeaverAt, idn.RevokedAt)
	}
}

// Invariant 2: a grant queued before a revocation can never be delivered
// after it. The job is level-triggered: whatever was queued, the worker
// sends what is true when it runs.
func TestStaleGrantNeverOvertakesRevocation(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("bob@example.com", "Engineering")
	e.activate(id) // grants queued, not yet delivered
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	if ds := e.deliveries(store.DeliveryPending); len(ds) != 1 || ds[0].Priority != store.PriorityRevoke {
		t.Fatalf("pending %+v, want the one delivery, raised to revoke priority", ds)
	}
	e.drain()
	if calls := e.app.TakeCalls(); len(calls) != 0 {
		t.Fatalf("a leaver whose grants were never delivered got %q", calls)
	}
	if idn := e.identity(id); idn.RevokedAt.IsZero() {
		t.Fatal("revocation not recorded complete once its only delivery ran")
	}
}

// Invariant 1 as the target sees it, across random-ish interleavings: every
// ensure and grant reaches the target only while the identity is active.
func summaryOf(idn *store.Identity) any {
	if idn == nil {
		return nil
	}
	return struct{ State, MFA string }{idn.State, idn.MFAMethod}
}

func TestNoGrantReachesTargetWithoutMFA(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.app.OnCall(func(c connectortest.Call) error {
		if c.Op != "ensure" && c.Op != "grant" {
			return nil
		}
		identityID := c.IdentityID
		var idn *store.Identity
		_ = e.st.View(context.Background(), func(tx store.ReadTx) error {
			var err error
			idn, err = tx.GetIdentity(context.Background(), identityID)
			return err
		})
		if idn == nil || idn.State != store.StateActive || idn.MFAMethod == "" {
			t.Errorf("target received %q for %s: identity %+v", c, identityID, summaryOf(idn))
		}
		return nil
	})
	ids := []string{e.createUser("u1@example.com", "Engineering"), e.createUser("u2@example.com", "Sales")}
	for round := range 4 {
		for i, id := range ids {
			switch (round + i) % 4 {
			case 0:
				e.activate(id)
			case 1:
				e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
			case 2:
				e.patch(id, map[string]any{"op": "replace", "path": "active", "value": true})
			case 3:
				ctx := reqctx.WithActor(context.Background(), "idp")
				if err := e.st.Update(ctx, func(tx store.Tx) error {
					return e.engine.MFARevoked(ctx, tx, id, e.clock.now())
				}); err != nil {
					t.Fatal(err)
				}
			}
			if round%2 == 1 {
				e.drain()
			}
		}
	}
	e.drain()
}

// Failures: retryable ones back off (Retry-After wins), permanent ones and
// exhausted attempts dead-letter; a later success resolves the dead letter.
func TestDeliveryRetryAndDeadLetter(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("cy@example.com", "Sales")
	e.activate(id)

	e.app.FailNext(connectors.RetryAfter(42*time.Second, errors.New("slow down")))
	e.drain()
	p := e.deliveries(store.DeliveryPending)
	if len(p) != 1 || p[0].Attempts != 1 || !p[0].RunAt.Equal(e.clock.now().Add(42*time.Second)) || !strings.Contains(p[0].LastError, "slow down") {
		t.Fatalf("after a 429: %+v", p)
	}
	if n := e.drain(); n != 0 {
		t.Fatal("a delivery ran before its Retry-After")
	}

	// Two more retryable failures exhaust MaxAttempts (3): dead letter.
	for i := range 2 {
		e.clock.advance(2 * time.Hour)
		e.app.FailNext(fmt.Errorf("connection reset %d", i))
		e.drain()
	}
	dead := e.deliveries(store.DeliveryDead)
	if len(dead) != 1 || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "connection reset 1") {
		t.Fatalf("dead letters %+v, want one after 3 attempts", dead)
	}
	if acts := e.lifecycleActions(id); !slices.Contains(acts, "delivery.dead by dispatcher") {
		t.Fatalf("dead letter not audited: %q", acts)
	}

	// A new change queues a fresh delivery; its success resolves the dead one.
	e.patch(id, map[string]any{"op": "replace", "path": entURN + ":department", "value": "Engineering"})
	e.drain()
	if a, _ := e.app.AccountNamed("cy@example.com"); !a.Enabled || !slices.Equal(a.Entitlements, []string{"eng", "member"}) {
		t.Fatalf("target after recovery: enabled=%v %q", a.Enabled, a.Entitlements)
	}
	if dead := e.deliveries(store.DeliveryDead); len(dead) != 0 {
		t.Fatalf("dead letter survived a successful delivery: %+v", dead)
	}

	// Permanent: dead at once, no retries.
	e.patch(id, map[string]any{"op": "replace", "path": entURN + ":department", "value": "Sales"})
	e.app.FailNext(connectors.Errorf(connectors.Permanent, "403 forbidden"))
	e.drain()
	if dead := e.deliveries(store.DeliveryDead); len(dead) != 1 || dead[0].Attempts != 1 {
		t.Fatalf("permanent failure: dead %+v, want one after 1 attempt", dead)
	}
}

// Progress within a delivery is kept: an ensure that succeeded before a
// grant failed is not repeated, and nothing already granted is re-sent.
func TestPartialProgressIsKept(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("di@example.com", "Engineering")
	e.activate(id)
	e.app.FailNext(nil, nil, errors.New("timeout")) // ensure, grant eng ok; grant member fails (and is logged)
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "ensure di@example.com", "grant di@example.com eng", "grant di@example.com member")
	e.clock.advance(time.Hour)
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "grant di@example.com member")
}

// A crash leaves deliveries running; the next start requeues them.
func TestRunRequeuesAfterCrash(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("ed@example.com", "Sales")
	e.activate(id)
	ctx := context.Background()
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.ClaimDeliveries(ctx, "app", e.clock.now(), 10) // then "crash"
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := e.drain(); n != 0 {
		t.Fatal("a running delivery was claimed twice")
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	e.d.Poll = 5 * time.Millisecond
	go func() { done <- e.d.Run(run) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, _ := e.app.AccountNamed("ed@example.com"); a.Enabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the requeued delivery never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	acct := func(ref string, enabled bool, ents ...string) *store.Account {
		return &store.Account{Ref: ref, Enabled: enabled, Entitlements: ents}
	}
	cases := []struct {
		name     string
		want     []string
		acct     *store.Account
		sessions bool
		ops      string
	}{
		{"nothing anywhere", nil, nil, true, ""},
		{"joiner", []string{"a", "b"}, nil, false, "ensure, grant a, grant b"},
		{"in sync", []string{"a"}, acct("r", true, "a"), false, ""},
		{"mover swaps", []string{"b"}, acct("r", true, "a"), false, "revoke a, grant b"},
		{"rehire re-enables", []string{"a"}, acct("r", false), false, "ensure, grant a"},
		{"leaver with sessions", nil, acct("r", true, "a", "b"), true, "disable, revoke_sessions, revoke a, revoke b"},
		{"leaver without sessions", nil, acct("r", true, "a"), false, "disable, revoke a"},
		{"already disabled, grants left", nil, acct("r", false, "a"), true, "revoke a"},
		{"never created", nil, acct("", false), true, ""},
		{"unconfirmed grant, unwanted", []string{"a"}, &store.Account{Ref: "r", Enabled: true, Entitlements: []string{"a"}, Maybe: []string{"b"}}, false, "revoke b"},
		{"unconfirmed grant, wanted", []string{"a", "b"}, &store.Account{Ref: "r", Enabled: true, Entitlements: []string{"a"}, Maybe: []string{"b"}}, false, "grant b"},
		{"leaver with an unconfirmed grant", nil, &store.Account{Ref: "r", Enabled: true, Entitlements: []string{"a"}, Maybe: []string{"b"}}, false, "disable, revoke a, revoke b"},
		{"unconfirmed creation, leaver", nil, &store.Account{Pending: true}, true, "find"},
	}
	for _, c := range cases {
		var got []string
		for _, op := range workflows.Plan(c.want, c.acct, c.sessions) {
			got = append(got, op.String())
		}
		if s := strings.Join(got, ", "); s != c.ops {
			t.Errorf("%s: plan %q, want %q", c.name, s, c.ops)
		}
	}
}

// The audit chain stays intact through deliveries.
func TestDeliveryAuditChain(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("fay@example.com", "Engineering")
	e.activate(id)
	e.drain()
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	e.drain()
	if _, err := audit.VerifyStore(context.Background(), e.st); err != nil {
		t.Fatal(err)
	}
}

// The token bucket paces every call: with one token and none coming back
// soon, the account is ensured and the grant waits (here, past the run's
// deadline, so the delivery is retried later with its progress kept).
func TestRateLimitPacesCalls(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.d.Targets["app"].Limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	id := e.createUser("gus@example.com", "Sales")
	e.activate(id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.app.TakeCalls(), "ensure gus@example.com")
	p := e.deliveries(store.DeliveryPending)
	if len(p) != 1 || !strings.Contains(p[0].LastError, "rate limit") {
		t.Fatalf("after the bucket ran dry: %+v", p)
	}
}

// No more than Concurrency deliveries to one connector run at once.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.d.Targets["app"].Concurrency = 2
	e.d.Poll = 5 * time.Millisecond
	var (
		mu            sync.Mutex
		running, peak int
	)
	release := make(chan struct{})
	e.app.OnCall(func(c connectortest.Call) error {
		if c.Op != "ensure" {
			return nil
		}
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	for i := range 6 {
		e.activate(e.createUser(fmt.Sprintf("c%d@example.com", i), "Sales"))
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	// Wait until two calls are held, give the loop time to (wrongly)
	// start more, then let everything through.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		r := running
		mu.Unlock()
		if r == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries running, want 2", r)
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	for len(e.deliveries(store.DeliveryPending))+len(e.deliveries(store.DeliveryRunning)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("deliveries did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if peak != 2 {
		t.Fatalf("peak concurrency %d, want 2", peak)
	}
}

// A connector added to the configuration after people were activated gets
// their access at the next start: Resync compares what may be sent with
// what each connector was last known to hold.
func TestResyncQueuesWhatAConnectorLacks(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.engine.Connectors = nil // "app" is not configured yet
	id := e.createUser("hal@example.com", "Engineering")
	e.activate(id)
	if ds := e.deliveries(""); len(ds) != 0 {
		t.Fatalf("queued for an unconfigured connector: %+v", ds)
	}
	e.engine.Connectors = map[string]bool{"app": true}
	n, err := e.d.Resync(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Resync = %d, %v; want 1 delivery", n, err)
	}
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "ensure hal@example.com", "grant hal@example.com eng", "grant hal@example.com member")
	if n, err := e.d.Resync(context.Background()); err != nil || n != 0 {
		t.Fatalf("Resync of a converged store = %d, %v; want 0", n, err)
	}
}

// New role rules re-evaluate everyone once, deliver the difference, and are
// recorded in the audit chain; the same rules at the next start do nothing.
func TestSyncRolesReevaluatesOnChange(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	ctx := context.Background()
	if n, err := e.engine.SyncRoles(ctx, e.st, deliveryRoles); err != nil || n != 0 {
		t.Fatalf("first start, no identities: %d, %v", n, err)
	}
	id := e.createUser("ivy@example.com", "Engineering")
	e.activate(id)
	e.drain()
	e.app.TakeCalls()

	// The operator drops the engineering role.
	newRoles := []config.Role{deliveryRoles[0], deliveryRoles[2]}
	set, err := roles.Compile(newRoles)
	if err != nil {
		t.Fatal(err)
	}
	e.engine.Roles = set
	if n, err := e.engine.SyncRoles(ctx, e.st, newRoles); err != nil || n != 1 {
		t.Fatalf("SyncRoles after a change = %d, %v; want 1 identity", n, err)
	}
	if got := desired(t, e.identity(id)); !slices.Equal(got, []string{"app:member"}) {
		t.Fatalf("desired after the change: %q", got)
	}
	e.drain()
	wantCalls(t, e.app.TakeCalls(), "revoke ivy@example.com eng")
	if n, err := e.engine.SyncRoles(ctx, e.st, newRoles); err != nil || n != 0 {
		t.Fatalf("same rules again = %d, %v; want nothing re-evaluated", n, err)
	}
	var recs []*store.AuditRecord
	_ = e.st.View(ctx, func(tx store.ReadTx) error {
		recs, err = tx.AuditFor(ctx, "Config", "roles", 1, -1)
		return err
	})
	if len(recs) != 2 || recs[1].AfterDigest != audit.Digest(newRoles) {
		t.Fatalf("config.roles records: %d, want one per distinct rule set", len(recs))
	}
}

// hangingEnsure is a target whose EnsureAccount hangs until its context
// ends, as a stuck socket or a held database lock does.
type hangingEnsure struct{ *connectortest.Memory }

func (h hangingEnsure) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// A target that hangs fails the op after OpTimeout, as retryable: the
// delivery slot is freed and the delivery runs again later.
func TestOpTimeoutFreesTheSlot(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.d.OpTimeout = 50 * time.Millisecond
	e.d.Targets["app"].Conn = hangingEnsure{e.app}
	id := e.createUser("jo@example.com", "Sales")
	e.activate(id)
	done := make(chan struct{})
	go func() { e.drain(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a hanging target held the delivery past its op timeout")
	}
	p := e.deliveries(store.DeliveryPending)
	if len(p) != 1 || p[0].Attempts != 1 || !strings.Contains(p[0].LastError, "deadline") {
		t.Fatalf("after a hung call: %+v", p)
	}
}

// An MFA exception that lapsed before the scheduler noticed (the identity
// still reads "active") lets no grant through at send time.
func TestLapsedExceptionSendsNoGrant(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("kim@example.com", "Sales")
	xs := e.exceptionsAPI("it-admin")
	if status, body := xs("POST", "/api/v1/exceptions", exceptionBody(id, e.clock.now().Add(time.Hour))); status != 201 {
		t.Fatalf("exception: %d %v", status, body)
	}
	if st := e.identity(id).State; st != store.StateActive {
		t.Fatalf("state %s, want active on the exception", st)
	}
	e.clock.advance(2 * time.Hour) // lapsed; no Tick yet
	e.drain()
	if calls := e.app.TakeCalls(); len(calls) != 0 {
		t.Fatalf("grants sent on a lapsed exception: %q", calls)
	}
}

// A leaver committed while a delivery is sending grants stops the rest of
// them; the delivery is planned again and revokes what got through.
func TestLeaverMidDeliveryStopsGrants(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("lee@example.com", "Engineering")
	e.activate(id)
	left := false
	e.app.OnCall(func(c connectortest.Call) error {
		if c.Op == "grant" && !left {
			left = true
			// HR's PATCH lands while the first grant is in flight.
			go e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
			deadline := time.Now().Add(10 * time.Second)
			for e.identity(id).State != store.StateTerminated {
				if time.Now().After(deadline) {
					t.Error("leaver never committed")
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	})
	e.drain()
	e.drain()
	calls := e.app.TakeCalls()
	if slices.Contains(calls, "grant lee@example.com member") {
		t.Fatalf("a grant went out after the leaver committed: %q", calls)
	}
	if on, ents, _ := accountState(e.app, "lee@example.com"); on || len(ents) != 0 {
		t.Fatalf("leaver's account enabled=%v %q after the re-plan; calls %q", on, ents, calls)
	}
}

func accountState(m *connectortest.Memory, userName string) (bool, []string, bool) {
	a, ok := m.AccountNamed(userName)
	return a.Enabled, a.Entitlements, ok
}

// Revocations are retried past MaxAttempts (a long outage must not leave a
// leaver's access in place); grants are dead-lettered.
func TestRevocationsOutliveMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	id := e.createUser("max@example.com", "Sales")
	e.activate(id)
	e.drain()
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	for range 5 { // MaxAttempts is 3
		e.app.FailNext(errors.New("503 service unavailable"))
		e.drain()
		e.clock.advance(2 * time.Hour)
	}
	if dead := e.deliveries(store.DeliveryDead); len(dead) != 0 {
		t.Fatalf("a revocation was dead-lettered for attempts: %+v", dead)
	}
	e.drain()
	if on, _, _ := accountState(e.app, "max@example.com"); on {
		t.Fatal("the revocation never landed")
	}
}

// A connector that panics fails its delivery permanently; the dispatcher
// (and the gateway) goes on.
type panicky struct{ *connectortest.Memory }

func (panicky) EnsureAccount(context.Context, connectors.Account) (string, error) { panic("boom") }

func TestConnectorPanicIsContained(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	e.d.Targets["app"].Conn = panicky{e.app}
	e.activate(e.createUser("pam@example.com", "Sales"))
	e.drain()
	dead := e.deliveries(store.DeliveryDead)
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "panicked") {
		t.Fatalf("dead letters %+v, want the panicking delivery", dead)
	}
}

// lostAnswer creates the account but loses the answer, as a timeout after
// the target acted does.
type lostAnswer struct{ *connectortest.Memory }

func (l lostAnswer) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if _, err := l.Memory.EnsureAccount(ctx, a); err != nil {
		return "", err
	}
	return "", errors.New("read tcp: i/o timeout")
}

// An ensure whose answer was lost may have created the account: when the
// person leaves before the retry, the leaver's delivery finds that account
// and disables it, and only then is the revocation complete.
func TestUnconfirmedEnsureIsFoundForALeaver(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	mem := e.app
	e.d.Targets["app"].Conn = lostAnswer{mem}
	id := e.createUser("ned@example.com", "Sales")
	e.activate(id)
	e.drain()
	if on, _, found := accountState(mem, "ned@example.com"); !found || !on {
		t.Fatalf("the target should hold the enabled account the lost answer created (found %v, enabled %v)", found, on)
	}
	e.d.Targets["app"].Conn = mem // the target answers again
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	e.drain()
	if on, _, _ := accountState(mem, "ned@example.com"); on {
		t.Fatalf("a leaver's account created by an unconfirmed ensure is still enabled; calls %q", mem.TakeCalls())
	}
	if idn := e.identity(id); idn.RevokedAt.IsZero() {
		t.Fatal("revocation not recorded complete after the account was found and disabled")
	}
}

// A connector that cannot look accounts up dead-letters such a leaver's
// delivery for a human instead of calling the revocation complete.
func TestUnconfirmedEnsureWithoutFinderDeadLetters(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	mem := e.app
	e.d.Targets["app"].Conn = lostAnswer{mem}
	id := e.createUser("ola@example.com", "Sales")
	e.activate(id)
	e.drain()
	e.d.Targets["app"].Conn = mem.Bare()
	e.patch(id, map[string]any{"op": "replace", "path": "active", "value": false})
	e.drain()
	if dead := e.deliveries(store.DeliveryDead); len(dead) != 1 || !strings.Contains(dead[0].LastError, "not confirmed") {
		t.Fatalf("dead letters %+v, want the unconfirmed account flagged", dead)
	}
	if idn := e.identity(id); !idn.RevokedAt.IsZero() {
		t.Fatal("revocation recorded complete with an account possibly left enabled")
	}
}

// lostGrant applies a grant but loses the answer, as a timeout after the
// target acted does.
type lostGrant struct{ *connectortest.Memory }

func (l lostGrant) Grant(ctx context.Context, ref, e string) error {
	if err := l.Memory.Grant(ctx, ref, e); err != nil {
		return err
	}
	return errors.New("read tcp: i/o timeout")
}

// A grant whose answer was lost may be held: when the person moves out of
// the role before the retry, the entitlement is revoked anyway.
func TestUnconfirmedGrantIsRevokedForAMover(t *testing.T) {
	t.Parallel()
	e := newDeliveryEnv(t)
	mem := e.app
	id := e.createUser("pia@example.com", "Sales")
	e.activate(id)
	e.drain() // ensure + member, confirmed
	e.d.Targets["app"].Conn = lostGrant{mem}
	e.patch(id, map[string]any{"op": "replace", "path": entURN + ":department", "value": "Engineering"})
	e.drain() // grant eng: applied, answer lost
	e.d.Targets["app"].Conn = mem
	e.patch(id, map[string]any{"op": "replace", "path": entURN + ":department", "value": "Sales"})
	e.clock.advance(time.Hour)
	e.drain()
	if _, ents, _ := accountState(mem, "pia@example.com"); slices.Contains(ents, "eng") {
		t.Fatalf("an unconfirmed grant survived the mover: target holds %q; calls %q", ents, mem.TakeCalls())
	}
}
