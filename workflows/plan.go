package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// Operation kinds, in the order a plan lists them.
const (
	OpDisable        = "disable"         // DisableAccount
	OpRevokeSessions = "revoke_sessions" // SessionRevoker.RevokeSessions
	OpRevoke         = "revoke"          // Revoke(entitlement)
	OpEnsure         = "ensure"          // EnsureAccount
	OpGrant          = "grant"           // Grant(entitlement)
	// OpFind looks up an account an unconfirmed ensure may have created
	// (Finder.FindAccount), so it can be disabled; the rest of the plan
	// follows from what it finds.
	OpFind = "find"
)

// Op is one call a delivery makes to a connector.
type Op struct {
	Kind        string `json:"op"`
	Entitlement string `json:"entitlement,omitempty"`
}

func (o Op) String() string {
	if o.Entitlement == "" {
		return o.Kind
	}
	return o.Kind + " " + o.Entitlement
}

// Sendable is the access that may reach connectors for an identity, by
// connector: its desired grants that are not held for approval, and only
// while the identity is active. This is where invariant 1 (no grant without
// MFA) lives for delivery: an identity that is not active (awaiting MFA,
// pre-hire, terminated, deleted) has nothing sendable, whatever its roles
// say. Entitlements are sorted and unique.
func Sendable(idn *store.Identity) (map[string][]string, error) {
	if idn == nil || idn.State != store.StateActive || len(idn.Desired) == 0 {
		return nil, nil
	}
	var ds []DesiredAccess
	if err := json.Unmarshal(idn.Desired, &ds); err != nil {
		return nil, fmt.Errorf("workflows: desired access of %q: %w", idn.ID, err)
	}
	return sendableOf(idn.State, ds), nil
}

func sendableOf(state string, ds []DesiredAccess) map[string][]string {
	if state != store.StateActive {
		return nil
	}
	out := map[string][]string{}
	for _, d := range ds {
		if !d.Held {
			out[d.Connector] = append(out[d.Connector], d.Entitlement)
		}
	}
	for c, es := range out {
		slices.Sort(es)
		out[c] = slices.Compact(es)
	}
	return out
}

// Plan returns the operations that make one connector match want (the
// identity's sendable entitlements there) given what jmlgate last knew to
// be true there (acct; nil when nothing was ever sent). sessions says the
// connector can revoke sessions.
//
// With something to grant, the account is ensured (if it is not known to
// be enabled), then entitlements no longer wanted are revoked before new
// ones are granted, so access never briefly exceeds both sets. With nothing
// to grant, a known account is disabled first (the fastest way to cut
// access), its sessions ended, and then its entitlements revoked one by one
// so a later rehire does not inherit them; an account an unconfirmed ensure
// may have created is first looked up (OpFind). An empty plan means the
// connector already matches.
func Plan(want []string, acct *store.Account, sessions bool) []Op {
	var have, maybe []string
	known := acct != nil && acct.Ref != ""
	if known {
		have, maybe = acct.Entitlements, acct.Maybe
	}
	// What may be held: confirmed grants and unconfirmed ones (revoked
	// when unwanted; granted again, idempotently, while wanted).
	held := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(have), maybe...))))
	var ops []Op
	if len(want) == 0 {
		if !known {
			if acct != nil && acct.Pending {
				return []Op{{Kind: OpFind}}
			}
			return nil
		}
		if acct.Enabled {
			ops = append(ops, Op{Kind: OpDisable})
			if sessions {
				ops = append(ops, Op{Kind: OpRevokeSessions})
			}
		}
		for _, e := range held {
			ops = append(ops, Op{Kind: OpRevoke, Entitlement: e})
		}
		return ops
	}
	if !known || !acct.Enabled {
		ops = append(ops, Op{Kind: OpEnsure})
	}
	for _, e := range held {
		if !slices.Contains(want, e) {
			ops = append(ops, Op{Kind: OpRevoke, Entitlement: e})
		}
	}
	for _, e := range want {
		if !slices.Contains(have, e) {
			ops = append(ops, Op{Kind: OpGrant, Entitlement: e})
		}
	}
	return ops
}

// job is a delivery the engine enqueues.
type job struct {
	connector string
	priority  int
}

// deliveries returns the deliveries a change from prev to next implies:
// one for every configured connector where what may be sent changed, with
// revoke priority when anything is taken away. A fresh leaver also gets
// one for every connector holding an account for them, whatever the
// desired access said, so nothing granted earlier survives.
func (e *Engine) deliveries(ctx context.Context, tx store.Tx, prev, next *store.Identity, want []DesiredAccess, freshLeaver bool) ([]job, error) {
	if len(e.Connectors) == 0 {
		return nil, nil
	}
	before, err := Sendable(prev)
	if err != nil {
		return nil, err
	}
	after := sendableOf(next.State, want)
	names := map[string]bool{}
	for c := range before {
		names[c] = true
	}
	for c := range after {
		names[c] = true
	}
	if freshLeaver {
		accts, err := tx.Accounts(ctx, next.ID)
		if err != nil {
			return nil, err
		}
		for _, a := range accts {
			names[a.Connector] = true
		}
	}
	var out []job
	for _, c := range slices.Sorted(maps.Keys(names)) {
		if !e.Connectors[c] {
			continue
		}
		b, a := before[c], after[c]
		if slices.Equal(b, a) && !freshLeaver {
			continue
		}
		p := store.PriorityGrant
		if len(a) == 0 || slices.ContainsFunc(b, func(x string) bool { return !slices.Contains(a, x) }) {
			p = store.PriorityRevoke
		}
		out = append(out, job{connector: c, priority: p})
	}
	return out, nil
}

// auditRevoked records that the leaver idn's revocation completed at
// idn.RevokedAt ("lifecycle.revoked", with the time-to-revoke) and returns
// the time-to-revoke.
func auditRevoked(ctx context.Context, tx store.Tx, actor string, idn *store.Identity, now time.Time) (time.Duration, error) {
	ttr := idn.RevokedAt.Sub(idn.LeaverAt)
	_, err := audit.Append(ctx, tx, now, audit.Entry{
		Actor: actor, Action: "lifecycle.revoked", ResourceType: store.TypeIdentity, ResourceID: idn.ID,
		RequestID: reqctx.RequestID(ctx),
		After:     map[string]any{"leaver_at": idn.LeaverAt, "revoked_at": idn.RevokedAt, "time_to_revoke_ms": ttr.Milliseconds()},
	})
	return ttr, err
}
