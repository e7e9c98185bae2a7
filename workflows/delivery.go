package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// Target is a configured connector as the dispatcher drives it.
type Target struct {
	Name string
	Type string
	Conn connectors.Connector
	// Concurrency is how many deliveries to this connector run at once
	// (default 4).
	Concurrency int
	// Limiter, when set, paces every call to the connector (a token
	// bucket: rate and burst from config).
	Limiter *rate.Limiter
	// MaxAttempts is how many runs a grant delivery gets before it is
	// dead-lettered (default 10). Revocations keep being retried at the
	// capped back-off. Permanent and conflict failures are dead-lettered
	// at once.
	MaxAttempts int
	// Drift is what reconciliation does with access nobody granted through
	// jmlgate: "report" (default) or "revoke".
	Drift string
	// ReconcileInterval is how often reconciliation runs on its own
	// (0: only on demand). Only for connectors that are Listers.
	ReconcileInterval time.Duration

	reconciling sync.Mutex // held by Reconcile

	mu          sync.Mutex
	lastSuccess time.Time
	lastError   string
	lastErrorAt time.Time
	failing     int // consecutive failed runs
}

// Health is a target's recent delivery history.
type Health struct {
	Status      string    `json:"status"` // "ok", "degraded" (some recent runs failed), "failing", "unknown"
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Health reports the target's status from its last runs.
func (t *Target) Health() Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := Health{LastSuccess: t.lastSuccess, LastError: t.lastError, LastErrorAt: t.lastErrorAt}
	switch {
	case t.failing >= 3:
		h.Status = "failing"
	case t.failing > 0:
		h.Status = "degraded"
	case t.lastSuccess.IsZero():
		h.Status = "unknown"
	default:
		h.Status = "ok"
	}
	return h
}

func (t *Target) record(err error, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.lastSuccess, t.failing = now, 0
		return
	}
	t.lastError, t.lastErrorAt = safeError(err), now
	t.failing++
}

// Dispatcher delivers queued jobs to connectors (DESIGN.md invariant 2).
//
// A delivery is level-triggered: the worker reads the identity's desired
// access and the account's last known state when it runs, applies the
// difference, and records the new state. A delivery that runs late, twice,
// or after a crash therefore sends only what is still true, and a grant can
// never overtake a later revocation of the same access.
type Dispatcher struct {
	Store   store.Store
	Engine  *Engine // for time-to-revoke reporting; may be nil
	Targets map[string]*Target
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *Metrics // may be nil
	// Poll is how often an idle connector's queue is checked (default
	// 100ms).
	Poll time.Duration
	// OpTimeout bounds each call to a connector (default
	// DefaultOpTimeout); connectors' own request timeouts are usually
	// shorter.
	OpTimeout time.Duration
	// DrainTimeout is how long Run lets in-flight deliveries finish after
	// its context ends before cancelling them (default 10s).
	DrainTimeout time.Duration
	// BackoffBase and BackoffMax shape the retry delay: base * 2^(n-1),
	// capped at max, with full jitter over its upper half (defaults 1s
	// and 15m). A Retry-After from the target replaces it.
	BackoffBase, BackoffMax time.Duration
}

// DefaultConcurrency and DefaultMaxAttempts apply when a Target leaves
// them 0, DefaultOpTimeout when the Dispatcher does.
const (
	DefaultConcurrency = 4
	DefaultMaxAttempts = 10
	DefaultOpTimeout   = 2 * time.Minute
)

func (d *Dispatcher) now() time.Time {
	if d.Now == nil {
		return time.Now().UTC()
	}
	return d.Now().UTC()
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// Run requeues whatever was running when the gateway last stopped, then
// delivers until ctx ends. It then claims nothing more, lets in-flight
// deliveries finish for up to DrainTimeout, and cancels the rest, which go
// back to pending: nothing is lost either way.
func (d *Dispatcher) Run(ctx context.Context) error {
	// Nothing may be delivered before what a crash left running is back
	// in the queue (a pair with a stale "running" row would never be
	// claimed): keep trying rather than serve without deliveries.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 30*time.Second) {
		err := d.requeue(ctx)
		if err == nil {
			break
		}
		d.log().Error("deliveries: cannot start", "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	for _, t := range d.Targets {
		wg.Go(func() { d.runTarget(ctx, work, t) })
		if t.ReconcileInterval > 0 {
			wg.Go(func() { d.reconcileLoop(ctx, t) })
		}
	}
	<-ctx.Done()
	drain := d.DrainTimeout
	if drain <= 0 {
		drain = 10 * time.Second
	}
	stop := time.AfterFunc(drain, cancelWork)
	defer stop.Stop()
	wg.Wait()
	return nil
}

func (d *Dispatcher) requeue(ctx context.Context) error {
	var n int
	err := d.Store.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
		var err error
		n, err = tx.RequeueRunning(ctx, d.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("deliveries: requeue after restart: %w", err)
	}
	if n > 0 {
		d.log().Info("deliveries requeued after restart", "count", n)
	}
	return nil
}

// runTarget keeps up to Concurrency deliveries of one connector running
// until ctx ends, then waits for those in flight (which run under work).
func (d *Dispatcher) runTarget(ctx, work context.Context, t *Target) {
	limit := t.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	poll := d.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	done := make(chan struct{}, limit)
	inflight := 0
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		if free := limit - inflight; free > 0 && ctx.Err() == nil {
			jobs, err := d.claim(ctx, t, free)
			if err != nil && ctx.Err() == nil {
				d.log().Error("deliveries: claim", "connector", t.Name, "error", err)
			}
			for _, j := range jobs {
				inflight++
				go func() {
					d.deliver(work, t, j)
					done <- struct{}{}
				}()
			}
			if len(jobs) == free {
				continue // there may be more: claim again at once
			}
		}
		select {
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-done
			}
			return
		case <-done:
			inflight--
			// Collect whatever else finished, so one claim fills every
			// free slot instead of one claim (a write) per finished job.
			for more := true; more; {
				select {
				case <-done:
					inflight--
				default:
					more = false
				}
			}
		case <-ticker.C:
		}
	}
}

// claim takes up to n due deliveries of t, after a cheap read that skips
// the write transaction when the queue is empty.
func (d *Dispatcher) claim(ctx context.Context, t *Target, n int) ([]*store.Delivery, error) {
	var due bool
	err := d.Store.View(ctx, func(tx store.ReadTx) error {
		var err error
		due, err = tx.HasDueDelivery(ctx, t.Name, d.now())
		return err
	})
	if err != nil || !due {
		return nil, err
	}
	var jobs []*store.Delivery
	err = d.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		jobs, err = tx.ClaimDeliveries(ctx, t.Name, d.now(), n)
		return err
	})
	return jobs, err
}

// Drain runs every delivery that is due now, connector by connector, until
// none is left, and returns how many ran. Deliveries that fail and are
// rescheduled for later are not waited for. It is for tests and for the
// load generator, which need a quiescent point without a running loop.
func (d *Dispatcher) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		ran := 0
		for _, t := range d.sortedTargets() {
			jobs, err := d.claim(ctx, t, 64)
			if err != nil {
				return total, err
			}
			for _, j := range jobs {
				d.deliver(ctx, t, j)
			}
			ran += len(jobs)
		}
		if ran == 0 {
			return total, nil
		}
		total += ran
	}
}

// Planned is one connector's part of an identity's plan.
type Planned struct {
	Connector string   `json:"connector"`
	Want      []string `json:"want"`
	Have      []string `json:"have"`
	Ops       []Op     `json:"ops"`
}

// PlanFor is the dry run of the next delivery of identity id to every
// configured connector: what it would send, computed exactly as a worker
// would now. Connectors with nothing to do are included with no ops.
func (d *Dispatcher) PlanFor(ctx context.Context, tx store.ReadTx, id string) ([]Planned, error) {
	idn, err := tx.GetIdentity(ctx, id)
	if err != nil {
		return nil, err
	}
	want, err := Sendable(idn)
	if err != nil {
		return nil, err
	}
	accts, err := tx.Accounts(ctx, id)
	if err != nil {
		return nil, err
	}
	byConn := map[string]*store.Account{}
	for _, a := range accts {
		byConn[a.Connector] = a
	}
	out := []Planned{}
	for _, t := range d.sortedTargets() {
		name := t.Name
		_, sessions := t.Conn.(connectors.SessionRevoker)
		p := Planned{Connector: name, Want: want[name], Ops: Plan(want[name], byConn[name], sessions)}
		if a := byConn[name]; a != nil {
			p.Have = a.Entitlements
		}
		if p.Want == nil {
			p.Want = []string{}
		}
		if p.Have == nil {
			p.Have = []string{}
		}
		if p.Ops == nil {
			p.Ops = []Op{}
		}
		out = append(out, p)
	}
	return out, nil
}

// deliver runs one claimed delivery and records its outcome. It never
// returns an error: failures are recorded on the delivery (retry or dead
// letter); a failure to record is logged, and the delivery stays running
// until the next start requeues it.
func (d *Dispatcher) deliver(ctx context.Context, t *Target, job *store.Delivery) {
	start := time.Now()
	defer func() {
		// A panicking connector must not take the gateway (and every
		// other delivery) down, nor panic again after each restart: it
		// is a permanent failure of this delivery.
		if v := recover(); v != nil {
			d.log().Error("delivery panicked", "connector", t.Name, "delivery", job.ID, "panic", fmt.Sprint(v))
			d.finish(ctx, t, job, nil, nil, nil, nil, connectors.Errorf(connectors.Permanent, "connector panicked: %v", v))
		}
	}()
	var (
		idn  *store.Identity
		acct *store.Account
		user map[string]any
		open bool
	)
	err := d.Store.View(ctx, func(tx store.ReadTx) error {
		var err error
		if idn, err = tx.GetIdentity(ctx, job.IdentityID); err != nil {
			return err
		}
		if acct, err = tx.GetAccount(ctx, job.IdentityID, t.Name); errors.Is(err, store.ErrNotFound) {
			acct, err = nil, nil
		}
		if err != nil {
			return err
		}
		if user, err = userDoc(ctx, tx, job.IdentityID); err != nil {
			return err
		}
		open, err = gateOpen(ctx, tx, idn, d.now())
		return err
	})
	var (
		done []Op
		next *store.Account
	)
	ctx = connectors.WithDelivery(ctx, job.ID, job.Updated.UnixNano()) // Updated is the claim time
	if err == nil {
		var want map[string][]string
		if want, err = Sendable(idn); err == nil {
			if !open {
				// The stored state still says active, but the MFA
				// exception it rested on has lapsed and the scheduler has
				// not caught up: send no grant, only revocations.
				want = nil
			}
			done, next, err = d.apply(ctx, t, idn, user, want[t.Name], acct)
		}
	}
	d.finish(ctx, t, job, idn, acct, next, done, err)
	if d.Metrics != nil {
		d.Metrics.observeRun(t.Name, time.Since(start))
	}
}

// apply executes the plan op by op. It returns the ops that succeeded and
// the account state they produced (nil when nothing changed), even when a
// later op failed: progress is kept, and the retry plans only the rest.
func (d *Dispatcher) apply(ctx context.Context, t *Target, idn *store.Identity, user map[string]any,
	want []string, acct *store.Account) ([]Op, *store.Account, error) {
	_, sessions := t.Conn.(connectors.SessionRevoker)
	ops := Plan(want, acct, sessions)
	if len(ops) == 0 {
		return nil, nil, nil
	}
	next := &store.Account{IdentityID: idn.ID, Connector: t.Name}
	if acct != nil {
		*next = *acct
		next.Entitlements = slices.Clone(acct.Entitlements)
		next.Maybe = slices.Clone(acct.Maybe)
	}
	var done []Op
	if ops[0].Kind == OpFind {
		// An earlier ensure may have created the account: look it up
		// (never ensure for someone who may not have access), then plan
		// from what is there.
		finder, ok := t.Conn.(connectors.Finder)
		if !ok {
			return nil, nil, connectors.Errorf(connectors.Permanent,
				"an earlier account creation was not confirmed and connector %s cannot look accounts up: check the target", t.Name)
		}
		ref, found, err := finder.FindAccount(ctx, accountOf(idn, user))
		if d.Metrics != nil {
			d.Metrics.observeOp(t.Name, OpFind, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", OpFind, err)
		}
		done = append(done, Op{Kind: OpFind})
		next.Pending = false
		if found {
			next.Ref, next.Enabled = ref, true
		}
		if ops = Plan(want, next, sessions); len(ops) == 0 {
			return done, changed(acct, next), nil
		}
	}
	for i, op := range ops {
		if t.Limiter != nil {
			if err := t.Limiter.Wait(ctx); err != nil {
				return done, changed(acct, next), fmt.Errorf("%s: rate limit: %w", op, err)
			}
		}
		if op.Kind == OpEnsure || op.Kind == OpGrant {
			// Invariant 1 at the moment of sending: a leaver, an MFA
			// revocation or a lapsed exception committed since the plan
			// (a rate-limited plan can take a while) stops the grants;
			// the delivery is planned again at once.
			if err := d.stillSendable(ctx, idn); err != nil {
				return done, changed(acct, next), err
			}
		}
		if op.Kind == OpEnsure && next.Ref == "" && !next.Pending {
			// Write ahead: once the request is sent the account may exist
			// whatever happens to the answer (a timeout, a crash), and a
			// leaver's delivery must then look for it (OpFind).
			next.Pending = true
			if err := d.putPending(ctx, next); err != nil {
				next.Pending = false
				return done, changed(acct, next), err
			}
		}
		err := d.call(ctx, t, idn, user, next, op)
		if d.Metrics != nil {
			d.Metrics.observeOp(t.Name, op.Kind, err)
		}
		if err != nil {
			if op.Kind == OpGrant && connectors.IsNotFound(err) {
				// The target lost the account (deleted out of band):
				// forget it, so the retry ensures it again (or, for a
				// leaver, has nothing left to disable).
				next.Ref, next.Enabled, next.Entitlements = "", false, nil
			}
			return done, changed(acct, next), fmt.Errorf("%s: %w", op, err)
		}
		done = append(done, op)
		switch op.Kind {
		case OpDisable:
			// Recorded as disabled only once sessions are revoked too,
			// so a failed revocation is retried, not forgotten.
			if !(i+1 < len(ops) && ops[i+1].Kind == OpRevokeSessions) {
				next.Enabled = false
			}
		case OpRevokeSessions:
			next.Enabled = false
		}
	}
	return done, changed(acct, next), nil
}

// errReplan stops a delivery whose identity changed while it ran; it is
// planned again at once, without counting as a failure of the target.
var errReplan = errors.New("the identity changed while delivering; planning again")

// stillSendable re-reads the identity: errReplan unless it is the same
// version and its MFA gate is still open.
func (d *Dispatcher) stillSendable(ctx context.Context, idn *store.Identity) error {
	return d.Store.View(ctx, func(tx store.ReadTx) error {
		cur, err := tx.GetIdentity(ctx, idn.ID)
		if err != nil {
			return err
		}
		if cur.Version != idn.Version {
			return errReplan
		}
		open, err := gateOpen(ctx, tx, cur, d.now())
		if err == nil && !open {
			err = errReplan
		}
		return err
	})
}

// gateOpen reports whether grants may flow to idn at now: it is active and
// has proven MFA or an MFA exception live at now (the scheduler may not
// have applied an expiry yet).
func gateOpen(ctx context.Context, tx store.ReadTx, idn *store.Identity, now time.Time) (bool, error) {
	if idn.State != store.StateActive {
		return false, nil
	}
	if idn.MFAMethod != "" {
		return true, nil
	}
	xs, err := tx.Exceptions(ctx, idn.ID)
	if err != nil {
		return false, err
	}
	return liveException(xs, now) != nil, nil
}

// changed returns next unless it equals acct.
func changed(acct, next *store.Account) *store.Account {
	if acct != nil && acct.Ref == next.Ref && acct.Enabled == next.Enabled && acct.Pending == next.Pending &&
		slices.Equal(acct.Entitlements, next.Entitlements) && slices.Equal(acct.Maybe, next.Maybe) {
		return nil
	}
	if acct == nil && next.Ref == "" && !next.Pending {
		return nil
	}
	return next
}

// putPending records that an ensure is about to be sent for a (an
// account with no ref yet), before it is sent.
func (d *Dispatcher) putPending(ctx context.Context, a *store.Account) error {
	rec := *a
	rec.Updated = d.now()
	wctx := context.WithoutCancel(ctx)
	return d.Store.Update(wctx, func(tx store.Tx) error { return tx.PutAccount(wctx, &rec) })
}

// call performs one op, bounded by OpTimeout, and updates next with its
// effect. A target that hangs (a lock held in a database, a stuck socket)
// fails the op as retryable instead of holding a delivery slot for good.
func (d *Dispatcher) call(ctx context.Context, t *Target, idn *store.Identity, user map[string]any, next *store.Account, op Op) error {
	timeout := d.OpTimeout
	if timeout <= 0 {
		timeout = DefaultOpTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch op.Kind {
	case OpEnsure:
		ref, err := t.Conn.EnsureAccount(ctx, accountOf(idn, user))
		if err != nil {
			return err
		}
		next.Ref, next.Enabled, next.Pending = ref, true, false
	case OpGrant:
		if err := t.Conn.Grant(ctx, next.Ref, op.Entitlement); err != nil {
			if c, _ := connectors.ClassOf(err); c == connectors.Retryable {
				// Sent, outcome unknown (a timeout, a reset): it may be
				// held, so a later plan revokes it if it is unwanted.
				next.Maybe = insertSorted(next.Maybe, op.Entitlement)
			}
			return err
		}
		next.Entitlements = insertSorted(next.Entitlements, op.Entitlement)
		next.Maybe = remove(next.Maybe, op.Entitlement)
	case OpRevoke:
		if err := t.Conn.Revoke(ctx, next.Ref, op.Entitlement); err != nil && !connectors.IsNotFound(err) {
			return err
		}
		next.Entitlements = remove(next.Entitlements, op.Entitlement)
		next.Maybe = remove(next.Maybe, op.Entitlement)
	case OpDisable:
		if err := t.Conn.DisableAccount(ctx, next.Ref); err != nil && !connectors.IsNotFound(err) {
			return err
		}
	case OpRevokeSessions:
		sr := t.Conn.(connectors.SessionRevoker)
		if err := sr.RevokeSessions(ctx, next.Ref); err != nil && !connectors.IsNotFound(err) {
			return err
		}
	default:
		return fmt.Errorf("unknown op %q", op.Kind)
	}
	return nil
}

func remove(s []string, v string) []string {
	return slices.DeleteFunc(s, func(e string) bool { return e == v })
}

func insertSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

// finish records a delivery's outcome in one transaction: the account
// state reached, the delivery finished, rescheduled or dead-lettered, its
// audit record, and, when it was a leaver's last outstanding delivery, the
// time-to-revoke.
func (d *Dispatcher) finish(ctx context.Context, t *Target, job *store.Delivery, idn *store.Identity,
	prev, next *store.Account, done []Op, runErr error) {
	now := d.now()
	// Recording must outlive a shutdown that cancelled the run itself.
	wctx := reqctx.WithActor(context.WithoutCancel(ctx), "dispatcher")
	class, retryAfter := connectors.ClassOf(runErr)
	interrupted := runErr != nil && (ctx.Err() != nil || errors.Is(runErr, errReplan))
	// Revocations are never given up on for counting attempts: a target
	// that is down for an hour gets them when it returns (at the capped
	// back-off). Only a failure the target says is permanent dead-letters
	// them.
	exhausted := job.Attempts >= t.maxAttempts() && job.Priority != store.PriorityRevoke
	dead := runErr != nil && !interrupted &&
		(class == connectors.Permanent || class == connectors.Conflict || exhausted)
	var ttr time.Duration
	revoked := false
	err := d.record(ctx, t, job, func(tx store.Tx) error {
		if next != nil {
			next.Updated = now
			if err := tx.PutAccount(wctx, next); err != nil {
				return err
			}
		}
		if len(done) > 0 {
			if _, err := audit.Append(wctx, tx, now, audit.Entry{
				Actor: "dispatcher", Action: "delivery.applied", ResourceType: store.TypeIdentity, ResourceID: job.IdentityID,
				Before: accountSummary(prev), After: map[string]any{"connector": t.Name, "delivery": job.ID, "ops": done, "account": accountSummary(next)},
			}); err != nil {
				return err
			}
		}
		if runErr != nil {
			runAt := now
			if !interrupted {
				runAt = now.Add(d.backoff(job.Attempts, retryAfter))
			}
			if err := tx.FailDelivery(wctx, job.ID, runAt, dead, safeError(runErr), now); err != nil {
				return err
			}
			if dead {
				_, err := audit.Append(wctx, tx, now, audit.Entry{
					Actor: "dispatcher", Action: "delivery.dead", ResourceType: store.TypeIdentity, ResourceID: job.IdentityID,
					After: map[string]any{"connector": t.Name, "delivery": job.ID, "attempts": job.Attempts, "class": class.String(), "error": safeError(runErr)},
				})
				return err
			}
			return nil
		}
		if err := tx.FinishDelivery(wctx, job.ID); err != nil {
			return err
		}
		// A leaver's revocation is complete when nothing is outstanding.
		cur, err := tx.GetIdentity(wctx, job.IdentityID)
		if err != nil || cur.LeaverAt.IsZero() || !cur.RevokedAt.IsZero() {
			return err
		}
		left, err := tx.Deliveries(wctx, store.DeliveryQuery{IdentityID: job.IdentityID, Limit: 1})
		if err != nil || len(left) > 0 {
			return err
		}
		c := *cur
		c.RevokedAt, c.Version, c.Updated = now, cur.Version+1, now
		if err := tx.PutIdentity(wctx, &c); err != nil {
			return err
		}
		ttr, err = auditRevoked(wctx, tx, "dispatcher", &c, now)
		revoked = err == nil
		return err
	})
	if err != nil {
		return // logged by record; the next start requeues the delivery
	}
	if !interrupted {
		t.record(runErr, now)
	}
	if revoked && d.Engine != nil && d.Engine.Revoked != nil {
		d.Engine.Revoked(ttr)
	}
	if d.Metrics != nil {
		switch {
		case runErr == nil:
			d.Metrics.jobs.WithLabelValues(t.Name, "success").Inc()
		case dead:
			d.Metrics.jobs.WithLabelValues(t.Name, "dead").Inc()
		default:
			d.Metrics.jobs.WithLabelValues(t.Name, "retry").Inc()
		}
	}
	if runErr != nil && !interrupted {
		d.log().Warn("delivery failed", "connector", t.Name, "delivery", job.ID, "identity", job.IdentityID,
			"attempt", job.Attempts, "class", class.String(), "dead", dead, "error", safeError(runErr))
	}
}

// record runs fn (a delivery's outcome) in a write transaction, retrying
// with back-off while the store fails: a delivery left "running" blocks
// its (identity, connector) pair, revocations included, so giving up is
// only for shutdown (ctx ended), after which the next start requeues it.
func (d *Dispatcher) record(ctx context.Context, t *Target, job *store.Delivery, fn func(store.Tx) error) error {
	wctx := reqctx.WithActor(context.WithoutCancel(ctx), "dispatcher")
	wait := 100 * time.Millisecond
	for {
		err := d.Store.Update(wctx, fn)
		if err == nil {
			return nil
		}
		d.log().Error("deliveries: record outcome", "connector", t.Name, "delivery", job.ID, "error", err)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return err // not the store failing: the delivery is gone or moved on
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (t *Target) maxAttempts() int {
	if t.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return t.MaxAttempts
}

// backoff is the delay before attempt n+1: the target's Retry-After when it
// gave one, else exponential with jitter over the upper half.
func (d *Dispatcher) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	base, maxD := d.BackoffBase, d.BackoffMax
	if base <= 0 {
		base = time.Second
	}
	if maxD <= 0 {
		maxD = 15 * time.Minute
	}
	delay := base
	for i := 1; i < n && delay < maxD; i++ {
		delay *= 2 // base <= maxD/2 before doubling: no overflow
	}
	delay = min(delay, maxD)
	half := delay / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// maxErrorLen bounds the error text stored on a delivery.
const maxErrorLen = 500

// safeError is the error text stored and shown for a delivery. Connectors
// keep secrets out of their errors (their conformance suites check it);
// this only bounds the length.
func safeError(err error) string {
	s := err.Error()
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen] + "…"
	}
	return s
}

func accountSummary(a *store.Account) any {
	if a == nil {
		return nil
	}
	return map[string]any{"ref": a.Ref, "enabled": a.Enabled, "entitlements": a.Entitlements,
		"unconfirmed": a.Maybe, "pending": a.Pending}
}

// userDoc reads the SCIM user behind an identity (nil once deleted).
func userDoc(ctx context.Context, tx store.ReadTx, id string) (map[string]any, error) {
	res, err := tx.GetResource(ctx, store.TypeUser, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeDoc(res.Data)
}

// accountOf is what a connector learns about the person.
func accountOf(idn *store.Identity, doc map[string]any) connectors.Account {
	a := connectors.Account{IdentityID: idn.ID, UserName: idn.UserName}
	if doc == nil {
		return a
	}
	str := func(v any) string { s, _ := v.(string); return s }
	a.UserName = str(doc["userName"])
	a.DisplayName = str(doc["displayName"])
	if n, ok := doc["name"].(map[string]any); ok {
		a.GivenName, a.FamilyName = str(n["givenName"]), str(n["familyName"])
	}
	if emails, ok := doc["emails"].([]any); ok {
		for _, e := range emails {
			m, _ := e.(map[string]any)
			if v := str(m["value"]); v != "" && (a.Email == "" || m["primary"] == true) {
				a.Email = v
			}
		}
	}
	return a
}

// sortedTargets lists the targets by name.
func (d *Dispatcher) sortedTargets() []*Target {
	out := make([]*Target, 0, len(d.Targets))
	for _, name := range slices.Sorted(maps.Keys(d.Targets)) {
		out = append(out, d.Targets[name])
	}
	return out
}

func classOf(err error) (string, time.Duration) {
	c, after := connectors.ClassOf(err)
	return c.String(), after
}
