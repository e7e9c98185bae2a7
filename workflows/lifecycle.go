// Package workflows is jmlgate's joiner-mover-leaver engine: it turns what
// HR pushes over SCIM into each identity's lifecycle state and desired
// access (DESIGN.md "Lifecycle").
//
// The engine runs inside the transaction of the write that caused it
// (Engine.UserChanged is the SCIM server's lifecycle hook), so a SCIM write,
// the identity change it implies and their audit records commit together or
// not at all. Time-driven transitions (start and end dates) run from Tick,
// which a scheduler calls at least once a minute and once at start-up, so
// whatever fell due while the gateway was down is caught up.
//
// The MFA gate: an identity is active only while it has proven MFA
// enrollment (MFAProven) or a live MFA exception; evaluate opens and closes
// the gate on exactly those two facts. Until then desired access is computed
// and recorded, but nothing is granted.
package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim/schema"
	"github.com/jmlgate/jmlgate/workflows/roles"
)

// Engine applies lifecycle rules. It is safe for concurrent use.
type Engine struct {
	// Roles computes desired access; nil means no roles are configured.
	Roles *roles.Set
	Now   func() time.Time
	Log   *slog.Logger
	// ApprovalTTL is how long a privileged grant's approval request stays
	// open (default DefaultApprovalTTL).
	ApprovalTTL time.Duration
	// Connectors names the configured connectors. A change to what may be
	// sent to one of them enqueues a delivery in the same transaction
	// (invariant 2); grants naming other connectors are recorded as
	// desired access but never delivered. nil: no deliveries.
	Connectors map[string]bool
	// Revoked, when set, is told the time-to-revoke of each leaver whose
	// revocation completed through connectors (for a histogram; leavers
	// with nothing to revoke are not measurements). The dispatcher calls
	// it after its transaction committed.
	Revoked func(ttr time.Duration)
}

// inputs are the lifecycle-relevant facts of a user.
type inputs struct {
	exists     bool
	userName   string
	active     bool
	start, end time.Time
}

// userInputs reads them from a normalized SCIM user document.
func userInputs(doc map[string]any) inputs {
	in := inputs{exists: true}
	in.userName, _ = doc["userName"].(string)
	in.active, _ = doc["active"].(bool) // absent: not active
	if ext, ok := doc[schema.LifecycleURN].(map[string]any); ok {
		in.start = parseDate(ext["startDate"])
		in.end = parseDate(ext["endDate"])
	}
	return in
}

// parseDate reads an xsd:dateTime; one without a zone is UTC (as the
// filter and sort code read it).
func parseDate(v any) time.Time {
	s, _ := v.(string)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	t, _ := time.Parse("2006-01-02T15:04:05.999999999", s)
	return t
}

// transition computes the next state and the event that names the move
// ("" when the state does not change). prev is "" for a new identity.
//
//   - joiner: a new user is pre_hire when not active or not started yet,
//     else awaiting_mfa (terminated if its end date already passed);
//   - start: pre_hire becomes awaiting_mfa once active and started;
//   - leaver: active: false or a reached end date terminates anyone not yet
//     terminated (a pre_hire who is not active just stays pre_hire);
//   - rehire: active: true on a terminated identity whose end date is not
//     reached goes back to awaiting_mfa (pre_hire with a future start);
//   - delete: the user's deletion makes the identity deleted, keeping it.
func transition(prev string, in inputs, now time.Time) (state, event string) {
	ended := !in.end.IsZero() && !in.end.After(now)
	notStarted := !in.start.IsZero() && in.start.After(now)
	switch {
	case !in.exists:
		if prev == store.StateDeleted {
			return prev, ""
		}
		return store.StateDeleted, "delete"
	case prev == "":
		switch {
		case !in.active || notStarted:
			return store.StatePreHire, "joiner"
		case ended:
			return store.StateTerminated, "joiner"
		}
		return store.StateAwaitingMFA, "joiner"
	case prev == store.StatePreHire:
		switch {
		case ended:
			return store.StateTerminated, "leaver"
		case !in.active || notStarted:
			return prev, ""
		}
		return store.StateAwaitingMFA, "start"
	case prev == store.StateAwaitingMFA || prev == store.StateActive:
		if !in.active || ended {
			return store.StateTerminated, "leaver"
		}
		return prev, ""
	case prev == store.StateTerminated:
		if !in.active || ended {
			return prev, ""
		}
		if notStarted {
			return store.StatePreHire, "rehire"
		}
		return store.StateAwaitingMFA, "rehire"
	}
	return prev, "" // deleted stays deleted
}

// nextCheck is when a date could next change the state of an identity in
// state with inputs in; zero when none can.
func nextCheck(state string, in inputs, now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch state {
	case store.StatePreHire:
		if in.active {
			consider(in.start)
		}
		consider(in.end)
	case store.StateAwaitingMFA, store.StateActive:
		consider(in.end)
	}
	return next
}

// DesiredAccess is one grant an identity's roles give it.
type DesiredAccess struct {
	Connector   string   `json:"connector"`
	Entitlement string   `json:"entitlement"`
	Roles       []string `json:"roles"`
	Privileged  bool     `json:"privileged"`
	// Held is true while the grant awaits approval: every role that gives
	// it is privileged and none of those is approved. Nothing held is sent.
	Held bool `json:"held"`
}

// matches evaluates the roles for a user who is a joiner or employee; none
// for a leaver or a deleted user.
func (e *Engine) matches(state string, doc map[string]any, groups []string) ([]roles.Match, error) {
	if e.Roles == nil || doc == nil || state == store.StateTerminated || state == store.StateDeleted {
		return nil, nil
	}
	return e.Roles.Evaluate(roles.UserFromSCIM(doc, groups))
}

// desired is the union of the matches' grants, with privileged grants held
// until one of their roles is approved.
func desired(ms []roles.Match, approved map[string]bool) []DesiredAccess {
	privileged := map[string]bool{}
	for _, m := range ms {
		privileged[m.Role] = m.Privileged
	}
	out := []DesiredAccess{}
	for _, g := range roles.Desired(ms) {
		held := true
		for _, r := range g.Roles {
			if !privileged[r] || approved[r] {
				held = false
			}
		}
		out = append(out, DesiredAccess{Connector: g.Connector, Entitlement: g.Entitlement, Roles: g.Roles, Privileged: g.Privileged, Held: held})
	}
	return out
}

// UserChanged brings the identity of user id in line with the user as tx
// now sees it (or its absence), inside tx: state, desired access, next
// time-driven check, and an audit record "lifecycle.<event>" when the state
// or the desired access changed. Errors abort the caller's transaction.
func (e *Engine) UserChanged(ctx context.Context, tx store.Tx, id string) error {
	return e.apply(ctx, tx, id, e.Now().UTC())
}

// UserUpdated is UserChanged for a user replaced or patched in this
// transaction, with its new normalized document, which is not re-read.
func (e *Engine) UserUpdated(ctx context.Context, tx store.Tx, id string, doc map[string]any) error {
	return e.applyDoc(ctx, tx, id, e.Now().UTC(), doc)
}

func (e *Engine) apply(ctx context.Context, tx store.Tx, id string, now time.Time) error {
	var doc map[string]any
	res, err := tx.GetResource(ctx, store.TypeUser, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if doc, err = decodeDoc(res.Data); err != nil {
			return fmt.Errorf("lifecycle: user %q: %w", id, err)
		}
	}
	return e.applyDoc(ctx, tx, id, now, doc)
}

// applyDoc is apply once the user's document (nil: the user is gone) is
// known.
func (e *Engine) applyDoc(ctx context.Context, tx store.Tx, id string, now time.Time, doc map[string]any) error {
	prev, err := tx.GetIdentity(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if doc == nil {
			return nil // never an identity
		}
		prev = nil
	} else if err != nil {
		return err
	}
	var groups []string
	if doc != nil {
		gs, err := tx.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range gs {
			groups = append(groups, g.Display)
		}
		sort.Strings(groups)
	}
	exceptions, err := tx.Exceptions(ctx, id)
	if err != nil {
		return err
	}
	approvals, err := tx.Approvals(ctx, store.ApprovalQuery{IdentityID: id})
	if err != nil {
		return err
	}
	return e.evaluate(ctx, tx, id, now, prev, doc, groups, exceptions, approvals)
}

// UserCreated is UserChanged for a user created in this transaction, with
// its normalized document: a new id has no identity, exceptions, approvals
// or memberships yet, so nothing needs reading.
func (e *Engine) UserCreated(ctx context.Context, tx store.Tx, id string, doc map[string]any) error {
	return e.evaluate(ctx, tx, id, e.Now().UTC(), nil, doc, nil, nil, nil)
}

// evaluate applies the rules to what apply or UserCreated gathered.
func (e *Engine) evaluate(ctx context.Context, tx store.Tx, id string, now time.Time, prev *store.Identity,
	doc map[string]any, groups []string, exceptions []*store.Exception, approvals []*store.Approval) error {
	in := inputs{}
	if doc != nil {
		in = userInputs(doc)
	}
	prevState := ""
	if prev != nil {
		prevState = prev.State
	}
	live := liveException(exceptions, now)
	state, event := transition(prevState, in, now)
	ms, err := e.matches(state, doc, groups)
	if err != nil {
		return fmt.Errorf("lifecycle: roles for %q: %w", id, err)
	}

	next := &store.Identity{ID: id, State: state, Version: 1, Created: now, Updated: now}
	if prev != nil {
		c := *prev
		next = &c
		next.State, next.Version, next.Updated = state, prev.Version+1, now
	}
	if doc != nil {
		next.UserName, next.StartDate, next.EndDate = in.userName, in.start, in.end
	}
	next.NextCheck = nextCheck(state, in, now)
	// The MFA gate. Proven MFA (even proven while pre_hire) or a live
	// exception lets an identity that would await MFA be active; an active
	// identity with neither goes back to awaiting MFA.
	gateOpen := (next.MFAMethod != "" && event != "rehire") || live != nil
	switch {
	case next.State == store.StateAwaitingMFA && gateOpen:
		next.State = store.StateActive
		if event == "" {
			event = "activate"
		}
	case next.State == store.StateActive && !gateOpen:
		next.State = store.StateAwaitingMFA
		if event == "" {
			event = "deactivate"
		}
	}
	if live != nil && next.State != store.StateTerminated && next.State != store.StateDeleted &&
		(next.NextCheck.IsZero() || live.ExpiresAt.Before(next.NextCheck)) {
		next.NextCheck = live.ExpiresAt // re-evaluate when the exception lapses
	}
	approved, err := e.syncApprovals(ctx, tx, id, next.State, ms, approvals, now)
	if err != nil {
		return err
	}
	want := desired(ms, approved)
	desiredJSON, err := json.Marshal(want)
	if err != nil {
		return err
	}
	next.Desired = desiredJSON
	freshLeaver := false
	switch event {
	case "leaver", "delete":
		if prevState != store.StateTerminated {
			next.LeaverAt, next.RevokedAt = now, time.Time{}
			freshLeaver = true
		}
		// Leavers lose their MFA enrollment; a rehire must enrol afresh.
		next.MFAMethod, next.MFAEnrolledAt = "", time.Time{}
	case "rehire":
		next.LeaverAt, next.RevokedAt = time.Time{}, time.Time{}
		next.MFAMethod, next.MFAEnrolledAt = "", time.Time{}
	}
	if event == "" && prev != nil {
		if string(prev.Desired) != string(desiredJSON) {
			event = "mover"
		} else if sameIdentity(prev, next) {
			return nil // nothing lifecycle-relevant changed
		}
	}
	jobs, err := e.deliveries(ctx, tx, prev, next, want, freshLeaver)
	if err != nil {
		return err
	}
	revokedNow := false
	if freshLeaver && len(jobs) == 0 {
		// Nothing to take away anywhere (and nothing outstanding): the
		// revocation is complete as of this request.
		outstanding, err := tx.Deliveries(ctx, store.DeliveryQuery{IdentityID: id, Limit: 1})
		if err != nil {
			return err
		}
		if len(outstanding) == 0 {
			next.RevokedAt, revokedNow = now, true
		}
	}
	if err := tx.PutIdentity(ctx, next); err != nil {
		return fmt.Errorf("lifecycle: save identity %q: %w", id, err)
	}
	for _, j := range jobs {
		if _, err := tx.EnqueueDelivery(ctx, id, j.connector, j.priority, now); err != nil {
			return fmt.Errorf("lifecycle: enqueue delivery of %q to %s: %w", id, j.connector, err)
		}
	}
	switch event {
	case "leaver", "delete", "rehire":
		// The enrollment goes with the MFA status: a rehire enrols afresh.
		if err := tx.DeleteTOTP(ctx, id); err != nil {
			return err
		}
		// A leaver's exceptions end with employment.
		for _, x := range exceptions {
			if x.Live(now) {
				if err := tx.EndException(ctx, x.ID, now, "lifecycle."+event); err != nil {
					return err
				}
			}
		}
	}
	if event == "" {
		return nil // dates or name moved; no lifecycle event
	}
	if _, err := audit.Append(ctx, tx, now, audit.Entry{
		Actor: reqctx.Actor(ctx), Action: "lifecycle." + event, ResourceType: store.TypeIdentity, ResourceID: id,
		RequestID: reqctx.RequestID(ctx), Before: summary(prev), After: summary(next),
	}); err != nil {
		return err
	}
	if revokedNow {
		// Nothing had to be taken away: recorded for the history, but not
		// a time-to-revoke measurement of any connector (no histogram).
		_, err := auditRevoked(ctx, tx, reqctx.Actor(ctx), next, now)
		return err
	}
	return nil
}

// liveException returns the live exception that lasts longest, or nil.
func liveException(xs []*store.Exception, now time.Time) *store.Exception {
	var best *store.Exception
	for _, x := range xs {
		if x.Live(now) && (best == nil || x.ExpiresAt.After(best.ExpiresAt)) {
			best = x
		}
	}
	return best
}

// Reevaluate re-runs the lifecycle rules for identity id inside tx, e.g.
// after an exception was granted or ended.
func (e *Engine) Reevaluate(ctx context.Context, tx store.Tx, id string) error {
	return e.apply(ctx, tx, id, e.Now().UTC())
}

// sameIdentity reports whether b differs from a only in bookkeeping.
func sameIdentity(a, b *store.Identity) bool {
	return a.State == b.State && a.UserName == b.UserName && a.StartDate.Equal(b.StartDate) &&
		a.EndDate.Equal(b.EndDate) && a.NextCheck.Equal(b.NextCheck) && string(a.Desired) == string(b.Desired)
}

// summary is what an identity's audit digest covers.
func summary(id *store.Identity) any {
	if id == nil {
		return nil
	}
	return map[string]any{
		"state": id.State, "userName": id.UserName, "desired": json.RawMessage(id.Desired),
		"mfa": id.MFAMethod != "", "startDate": id.StartDate, "endDate": id.EndDate,
	}
}

// Tick applies every time-driven transition due at the engine's now, in
// batches of one transaction each, and returns how many identities it
// re-evaluated. The scheduler calls it; tests call it with an injected
// clock.
func (e *Engine) Tick(ctx context.Context, st store.Store) (int, error) {
	const batch = 100
	now := e.Now().UTC()
	total := 0
	for {
		n := 0
		err := st.Update(reqctx.WithActor(ctx, "scheduler"), func(tx store.Tx) error {
			if total == 0 && n == 0 {
				if _, err := e.expireApprovals(reqctx.WithActor(ctx, "scheduler"), tx, now); err != nil {
					return err
				}
			}
			due, err := tx.DueIdentities(ctx, now, batch)
			if err != nil {
				return err
			}
			n = len(due)
			for _, id := range due {
				if err := e.apply(reqctx.WithActor(ctx, "scheduler"), tx, id.ID, now); err != nil {
					return err
				}
			}
			return nil
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// Run calls Tick at once (catching up on everything that fell due while the
// gateway was down) and then every interval until ctx ends.
func (e *Engine) Run(ctx context.Context, st store.Store, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := e.Tick(ctx, st); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.Log.ErrorContext(ctx, "lifecycle: scheduled transitions failed", "error", err)
		} else if n > 0 {
			e.Log.InfoContext(ctx, "lifecycle: scheduled transitions applied", "identities", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
