package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// Reconciliation errors; Reconcile wraps them with the connector's name.
var (
	// ErrNotLister: the connector cannot enumerate its target
	// (connectors.Lister), so it cannot be reconciled.
	ErrNotLister = errors.New("workflows: connector cannot list its accounts, so it cannot be reconciled")
	// ErrUnknownConnector: no target of that name is configured.
	ErrUnknownConnector = errors.New("workflows: unknown connector")
)

// Finding kinds.
const (
	// driftUnmanagedAccount: an enabled account in the target that nobody
	// in jmlgate owns, or whose identity may have nothing there.
	driftUnmanagedAccount = "unmanaged_account"
	// driftUnmanagedEntitlement: an entitlement the target holds that is
	// not in the identity's sendable access (or held by nobody jmlgate
	// knows).
	driftUnmanagedEntitlement = "unmanaged_entitlement"
	// driftMissingEntitlement: sendable access the target does not hold.
	driftMissingEntitlement = "missing_entitlement"
	// driftAccountDisabled: the identity has sendable access there but the
	// target's account is disabled (or gone).
	driftAccountDisabled = "account_disabled"
)

// Finding actions.
const (
	actionReported = "reported" // audited and reported, nothing changed
	actionRevoked  = "revoked"  // Revoke called on the target and acknowledged
	actionDisabled = "disabled" // DisableAccount called and acknowledged
	actionEnqueued = "enqueued" // a delivery was enqueued to repair it
	actionFailed   = "failed"   // the direct call failed; see Error
)

// Drift policies of Target.Drift.
const (
	driftReport = "report"
	driftRevoke = "revoke"
)

// reconcilerActor is the audit actor when the context names no caller.
const reconcilerActor = "reconciler"

// Finding is one difference between a target and what jmlgate decided.
type Finding struct {
	// Kind is unmanaged_account, unmanaged_entitlement,
	// missing_entitlement or account_disabled.
	Kind string `json:"kind"`
	// Ref and UserName are the target's; IdentityID is "" for accounts
	// nobody in jmlgate knows.
	Ref         string `json:"ref"`
	UserName    string `json:"user_name,omitempty"`
	IdentityID  string `json:"identity_id,omitempty"`
	Entitlement string `json:"entitlement,omitempty"`
	// Action is what reconciliation did: reported, revoked, disabled,
	// enqueued, or failed (with Error).
	Action string `json:"action"`
	Error  string `json:"error,omitempty"`
}

// ReconcileReport is the outcome of one reconciliation of one connector.
type ReconcileReport struct {
	Connector string    `json:"connector"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	// Accounts is how many accounts the target listed.
	Accounts int       `json:"accounts"`
	Findings []Finding `json:"findings"`
}

// Reconcile compares connector name's target with what jmlgate decided
// and acts on the drift according to the target's Drift policy.
//
// The target must be a connectors.Lister (else ErrNotLister; an unknown
// name is ErrUnknownConnector). A listed account belongs to the identity
// whose id the target stores (AccountState.IdentityID) when jmlgate knows
// that identity, else to the identity whose recorded ref it has.
//
// Accounts of identities jmlgate knows are never touched directly, since a
// delivery may be running for the pair. The identities involved are read
// in one snapshot after the listing; for each one whose accounts show
// drift there, ONE store transaction re-reads the identity and account,
// records the target's state as the account's last known state (so the
// level-triggered delivery plans from the truth), enqueues a delivery
// (revoke priority when anything must be taken away) and writes a
// "drift.<kind>" audit record (resource Identity) per finding. The
// recorded state is left alone while a delivery of the pair is running or
// when one recorded progress since the snapshot taken before the listing;
// the delivery is still enqueued and runs after it. Missing access
// (missing_entitlement, account_disabled) is always repaired this way;
// with Drift "report" (the default) unmanaged access is only audited and
// reported, and the recorded state never learns of it, so no later
// delivery revokes it either. A recorded account that the target no
// longer lists, of an identity with sendable access there, is
// account_disabled plus missing_entitlement for each entitlement: the
// delivery ensures it again. When one identity has several accounts in the
// target, the one with the recorded ref (else the first listed) is
// reconciled and the others are only reported.
//
// Accounts nobody in jmlgate knows are reported with Drift "report"; with
// "revoke" they are disabled and each entitlement revoked by direct calls
// (paced by the target's Limiter), each finding "disabled", "revoked" or
// "failed" with the error. Either way every finding is audited
// ("drift.<kind>", resource "Connector", id the connector name) in one
// transaction per account that survives ctx ending.
//
// The audit actor is reqctx.Actor(ctx), or "reconciler" when none is set.
// A failure to list is returned wrapped (connector failures keep their
// connectors.Error class). A store failure stops the run: the report then
// holds the findings handled so far, and the error is returned with it.
func (d *Dispatcher) Reconcile(ctx context.Context, name string) (*ReconcileReport, error) {
	t := d.Targets[name]
	if t == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownConnector, name)
	}
	lister, ok := t.Conn.(connectors.Lister)
	if !ok {
		return nil, fmt.Errorf("%w: %q (type %s)", ErrNotLister, name, t.Type)
	}
	// One pass per target at a time: the periodic loop and the API would
	// otherwise list the same target twice and report the same findings.
	t.reconciling.Lock()
	defer t.reconciling.Unlock()
	rc := &reconciler{d: d, t: t, actor: reqctx.Actor(ctx), requestID: reqctx.RequestID(ctx)}
	if rc.actor == "" || rc.actor == "anonymous" {
		rc.actor = reconcilerActor
	}
	rep := &ReconcileReport{Connector: name, Started: d.now(), Findings: []Finding{}}

	// The recorded accounts are read before the listing, so a delivery
	// that records progress while the listing runs is noticed later.
	var recorded []*store.Account
	if err := d.Store.View(ctx, func(tx store.ReadTx) error {
		var err error
		recorded, err = tx.ConnectorAccounts(ctx, name)
		return err
	}); err != nil {
		return nil, fmt.Errorf("workflows: reconcile %q: %w", name, err)
	}
	byID := make(map[string]*store.Account, len(recorded))
	byRef := make(map[string]*store.Account, len(recorded))
	for _, a := range recorded {
		byID[a.IdentityID] = a
		if a.Ref != "" {
			byRef[a.Ref] = a
		}
	}

	if t.Limiter != nil {
		if err := t.Limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("workflows: reconcile %q: rate limit: %w", name, err)
		}
	}
	listed, err := lister.ListAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("workflows: reconcile %q: list accounts: %w", name, err)
	}
	rep.Accounts = len(listed)

	// One read of every identity the listing names or the records hold.
	idns := map[string]*store.Identity{}
	var ask []string
	for _, s := range listed {
		if s.IdentityID != "" && !slices.Contains(ask, s.IdentityID) {
			ask = append(ask, s.IdentityID)
		}
	}
	for _, a := range recorded {
		if !slices.Contains(ask, a.IdentityID) {
			ask = append(ask, a.IdentityID)
		}
	}
	if err := d.Store.View(ctx, func(tx store.ReadTx) error {
		for _, id := range ask {
			idn, err := tx.GetIdentity(ctx, id)
			switch {
			case err == nil:
				idns[id] = idn
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("workflows: reconcile %q: %w", name, err)
	}

	byIdentity := map[string][]connectors.AccountState{}
	var unknown []connectors.AccountState
	for _, s := range listed {
		switch {
		case s.IdentityID != "" && idns[s.IdentityID] != nil:
			byIdentity[s.IdentityID] = append(byIdentity[s.IdentityID], s)
		case s.Ref != "" && byRef[s.Ref] != nil && idns[byRef[s.Ref].IdentityID] != nil:
			id := byRef[s.Ref].IdentityID
			byIdentity[id] = append(byIdentity[id], s)
		default:
			unknown = append(unknown, s)
		}
	}
	// Recorded accounts the target no longer lists are checked too.
	for _, a := range recorded {
		if _, ok := byIdentity[a.IdentityID]; !ok && a.Ref != "" && idns[a.IdentityID] != nil {
			byIdentity[a.IdentityID] = nil
		}
	}

	finish := func(err error) (*ReconcileReport, error) {
		rep.Finished = d.now()
		if err != nil {
			return rep, fmt.Errorf("workflows: reconcile %q: %w", name, err)
		}
		return rep, nil
	}
	for _, id := range slices.Sorted(maps.Keys(byIdentity)) {
		// Accounts without drift in this snapshot need no write
		// transaction; those with drift are assessed again inside one.
		if a, err := rc.assess(idns[id], byIdentity[id], byID[id], rep.Started); err != nil {
			return finish(err)
		} else if len(a.findings) == 0 {
			continue
		}
		fs, err := rc.identity(ctx, id, byIdentity[id], byID[id])
		rep.Findings = append(rep.Findings, fs...)
		if err != nil {
			return finish(err)
		}
	}
	for _, s := range unknown {
		fs, err := rc.unknown(ctx, s)
		rep.Findings = append(rep.Findings, fs...)
		if err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// reconciler carries one run's settings.
type reconciler struct {
	d         *Dispatcher
	t         *Target
	actor     string
	requestID string
}

func (rc *reconciler) revoke() bool { return rc.t.Drift == driftRevoke }

// assessment is what reconciling one identity's accounts finds and would do.
type assessment struct {
	findings []Finding
	next     *store.Account // the account state to record when repairing
	repair   bool           // a delivery must be enqueued
	takeAway bool           // ... with revoke priority
}

// assess compares the target's accounts states of identity idn (nil: none
// listed) with its sendable access, given its recorded account cur (nil:
// none). It reads nothing and writes nothing.
func (rc *reconciler) assess(idn *store.Identity, states []connectors.AccountState, cur *store.Account, now time.Time) (assessment, error) {
	var a assessment
	sendable, err := Sendable(idn)
	if err != nil {
		return a, err
	}
	want := sendable[rc.t.Name]

	// The account with the recorded ref, else the first listed, is the
	// one a delivery acts on; others are extras.
	var primary *connectors.AccountState
	var extras []connectors.AccountState
	for i := range states {
		if primary == nil && cur != nil && cur.Ref != "" && states[i].Ref == cur.Ref {
			primary = &states[i]
		}
	}
	for i := range states {
		switch {
		case primary == nil:
			primary = &states[i]
		case &states[i] != primary:
			extras = append(extras, states[i])
		}
	}

	add := func(kind, ref, user, ent string) {
		f := Finding{Kind: kind, Ref: ref, UserName: user, IdentityID: idn.ID, Entitlement: ent, Action: actionReported}
		unmanaged := kind == driftUnmanagedAccount || kind == driftUnmanagedEntitlement
		if !unmanaged || rc.revoke() {
			f.Action = actionEnqueued
			a.repair = true
			a.takeAway = a.takeAway || unmanaged
		}
		a.findings = append(a.findings, f)
	}
	switch {
	case primary == nil:
		// Recorded, not listed: gone from the target.
		if len(want) == 0 || cur == nil || cur.Ref == "" {
			break
		}
		add(driftAccountDisabled, cur.Ref, idn.UserName, "")
		for _, e := range want {
			add(driftMissingEntitlement, cur.Ref, idn.UserName, e)
		}
		a.next = &store.Account{IdentityID: idn.ID, Connector: rc.t.Name, Ref: cur.Ref, Enabled: false, Updated: now}
	default:
		s := primary
		if len(want) == 0 {
			if s.Enabled {
				add(driftUnmanagedAccount, s.Ref, s.UserName, "")
			}
		} else if !s.Enabled {
			add(driftAccountDisabled, s.Ref, s.UserName, "")
		}
		for _, e := range want {
			if !slices.Contains(s.Entitlements, e) {
				add(driftMissingEntitlement, s.Ref, s.UserName, e)
			}
		}
		for _, e := range s.Entitlements {
			if !slices.Contains(want, e) {
				add(driftUnmanagedEntitlement, s.Ref, s.UserName, e)
			}
		}
		a.next = rc.recordOf(idn.ID, s, want, cur, now)
	}
	for _, s := range extras {
		// Only the recorded account can be repaired by a delivery.
		if s.Enabled {
			a.findings = append(a.findings, Finding{Kind: driftUnmanagedAccount, Ref: s.Ref, UserName: s.UserName,
				IdentityID: idn.ID, Action: actionReported})
		}
		for _, e := range s.Entitlements {
			a.findings = append(a.findings, Finding{Kind: driftUnmanagedEntitlement, Ref: s.Ref, UserName: s.UserName,
				IdentityID: idn.ID, Entitlement: e, Action: actionReported})
		}
	}
	return a, nil
}

// identity reconciles the accounts states (nil: none listed) of identity
// id, whose recorded account before the listing was base (nil: none), in
// one transaction that reads the identity and its account afresh.
func (rc *reconciler) identity(ctx context.Context, id string, states []connectors.AccountState, base *store.Account) ([]Finding, error) {
	name := rc.t.Name
	var out []Finding
	err := rc.d.Store.Update(ctx, func(tx store.Tx) error {
		out = nil
		now := rc.d.now()
		idn, err := tx.GetIdentity(ctx, id)
		if err != nil {
			return err
		}
		cur, err := tx.GetAccount(ctx, id, name)
		if errors.Is(err, store.ErrNotFound) {
			cur, err = nil, nil
		}
		if err != nil {
			return err
		}
		running, err := tx.Deliveries(ctx, store.DeliveryQuery{
			IdentityID: id, Connector: name, State: store.DeliveryRunning, Limit: 1})
		if err != nil {
			return err
		}
		busy := len(running) > 0 || !sameAccount(base, cur)
		a, err := rc.assess(idn, states, cur, now)
		if err != nil {
			return err
		}
		if a.repair {
			if !busy {
				if err := tx.PutAccount(ctx, a.next); err != nil {
					return err
				}
			}
			prio := store.PriorityGrant
			if a.takeAway {
				prio = store.PriorityRevoke
			}
			if _, err := tx.EnqueueDelivery(ctx, id, name, prio, now); err != nil {
				return err
			}
		}
		for _, f := range a.findings {
			if err := rc.audit(ctx, tx, now, store.TypeIdentity, id, f); err != nil {
				return err
			}
		}
		out = a.findings
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordOf is the account state to record for identity id from the
// target's state s. With Drift "revoke" it is the target's state exactly,
// so the delivery takes away whatever is not wanted. With "report" the
// target's unmanaged entitlements are left out (only what is wanted or what
// jmlgate itself granted earlier is kept), so no delivery revokes them.
// (Report mode only records when something is wanted there, so an enabled
// account is never recorded as enabled against the policy.)
func (rc *reconciler) recordOf(id string, s *connectors.AccountState, want []string, cur *store.Account, now time.Time) *store.Account {
	next := &store.Account{IdentityID: id, Connector: rc.t.Name, Ref: s.Ref, Enabled: s.Enabled, Updated: now,
		Entitlements: slices.Clone(s.Entitlements)}
	if rc.revoke() {
		return next
	}
	var granted []string
	if cur != nil {
		granted = cur.Entitlements
	}
	next.Entitlements = slices.DeleteFunc(next.Entitlements, func(e string) bool {
		return !slices.Contains(want, e) && !slices.Contains(granted, e)
	})
	return next
}

// sameAccount reports whether two reads of an account record agree.
func sameAccount(a, b *store.Account) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Ref == b.Ref && a.Enabled == b.Enabled && slices.Equal(a.Entitlements, b.Entitlements)
}

// unknown reports, and with Drift "revoke" removes, the access of an
// account nobody in jmlgate knows, then audits its findings. An account
// that carries an identity id jmlgate does not know (another provisioner
// set the target's externalId, say) is only ever reported: it is not
// jmlgate's to touch.
func (rc *reconciler) unknown(ctx context.Context, s connectors.AccountState) ([]Finding, error) {
	var fs []Finding
	if s.Enabled {
		fs = append(fs, Finding{Kind: driftUnmanagedAccount, Ref: s.Ref, UserName: s.UserName, Action: actionReported})
	}
	for _, e := range s.Entitlements {
		fs = append(fs, Finding{Kind: driftUnmanagedEntitlement, Ref: s.Ref, UserName: s.UserName, Entitlement: e, Action: actionReported})
	}
	if len(fs) == 0 {
		return nil, nil
	}
	if rc.revoke() && s.IdentityID == "" {
		// Disable first, the fastest way to cut access, as Plan does.
		for i := range fs {
			f := &fs[i]
			err := rc.call(ctx, f)
			switch {
			case err != nil:
				f.Action, f.Error = actionFailed, safeError(err)
				rc.d.log().Warn("reconcile: removing unmanaged access failed", "connector", rc.t.Name,
					"ref", f.Ref, "kind", f.Kind, "error", f.Error)
			case f.Kind == driftUnmanagedAccount:
				f.Action = actionDisabled
			default:
				f.Action = actionRevoked
			}
		}
	}
	// What was done to the target is recorded even if the caller left.
	wctx := context.WithoutCancel(ctx)
	err := rc.d.Store.Update(wctx, func(tx store.Tx) error {
		now := rc.d.now()
		for _, f := range fs {
			if err := rc.audit(wctx, tx, now, "Connector", rc.t.Name, f); err != nil {
				return err
			}
		}
		return nil
	})
	return fs, err
}

// call makes the direct call that removes f from the target.
func (rc *reconciler) call(ctx context.Context, f *Finding) error {
	if rc.t.Limiter != nil {
		if err := rc.t.Limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
	}
	var err error
	if f.Kind == driftUnmanagedAccount {
		err = rc.t.Conn.DisableAccount(ctx, f.Ref)
	} else {
		err = rc.t.Conn.Revoke(ctx, f.Ref, f.Entitlement)
	}
	if connectors.IsNotFound(err) {
		return nil
	}
	return err
}

func (rc *reconciler) audit(ctx context.Context, tx store.Tx, now time.Time, typ, id string, f Finding) error {
	after := map[string]any{"connector": rc.t.Name, "ref": f.Ref, "action": f.Action}
	if f.Entitlement != "" {
		after["entitlement"] = f.Entitlement
	}
	if f.Error != "" {
		after["error"] = f.Error
	}
	_, err := audit.Append(ctx, tx, now, audit.Entry{
		Actor: rc.actor, Action: "drift." + f.Kind, ResourceType: typ, ResourceID: id,
		RequestID: rc.requestID, After: after,
	})
	return err
}

// reconcileLoop reconciles t every t.ReconcileInterval until ctx ends. It
// returns at once when the interval is 0 or t's connector is not a Lister.
// A failed run is logged and tried again at the next tick.
func (d *Dispatcher) reconcileLoop(ctx context.Context, t *Target) {
	if t.ReconcileInterval <= 0 {
		return
	}
	if _, ok := t.Conn.(connectors.Lister); !ok {
		return
	}
	tick := time.NewTicker(t.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rep, err := d.Reconcile(reqctx.WithActor(ctx, reconcilerActor), t.Name)
		if err != nil {
			if ctx.Err() == nil {
				d.log().Error("reconcile failed", "connector", t.Name, "error", err)
			}
			continue
		}
		byKind := map[string]int{}
		failed := 0
		for _, f := range rep.Findings {
			byKind[f.Kind]++
			if f.Action == actionFailed {
				failed++
			}
		}
		lvl := slog.LevelInfo
		if len(rep.Findings) > 0 {
			lvl = slog.LevelWarn
		}
		d.log().Log(ctx, lvl, "reconciled", "connector", t.Name, "accounts", rep.Accounts,
			"findings", len(rep.Findings), "failed", failed,
			driftUnmanagedAccount, byKind[driftUnmanagedAccount],
			driftUnmanagedEntitlement, byKind[driftUnmanagedEntitlement],
			driftMissingEntitlement, byKind[driftMissingEntitlement],
			driftAccountDisabled, byKind[driftAccountDisabled],
			"duration", rep.Finished.Sub(rep.Started))
	}
}
