package workflows

import (
	"context"
	"fmt"
	"slices"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// Audit resource of the role rules: each set of rules the gateway started
// with is recorded once, so the history shows when access rules changed.
const (
	configResourceType = "Config"
	rolesResourceID    = "roles"
)

// resyncBatch is how many identities one write transaction re-evaluates,
// so a start-up resync never holds the writer long against live traffic.
const resyncBatch = 100

// SyncRoles re-evaluates every identity when the role rules differ from
// the ones the store last ran with, and then records the new rules
// ("config.roles", its digest covering rules) in the audit chain. Rules
// are the roles as configured (any JSON-encodable value that changes when
// they do). Each identity is re-evaluated as a SCIM write would: desired
// access, approvals, and deliveries of whatever changed, in batches of
// resyncBatch per transaction. It returns how many identities it visited
// (0 when the rules are unchanged). A crash midway leaves the rules
// unrecorded, so the next start does it again; re-evaluating an unchanged
// identity writes nothing.
func (e *Engine) SyncRoles(ctx context.Context, st store.Store, rules any) (int, error) {
	ctx = reqctx.WithActor(ctx, "config")
	digest := audit.Digest(rules)
	var last string
	err := st.View(ctx, func(tx store.ReadTx) error {
		recs, err := tx.AuditFor(ctx, configResourceType, rolesResourceID, 1, -1)
		if len(recs) > 0 {
			last = recs[len(recs)-1].AfterDigest
		}
		return err
	})
	if err != nil || last == digest {
		return 0, err
	}
	n, err := forEachIdentity(ctx, st, func(tx store.Tx, id *store.Identity) error {
		return e.apply(ctx, tx, id.ID, e.Now().UTC())
	})
	if err != nil {
		return n, fmt.Errorf("lifecycle: re-evaluate after a roles change: %w", err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		_, err := audit.Append(ctx, tx, e.Now().UTC(), audit.Entry{Actor: "config", Action: "config.roles",
			ResourceType: configResourceType, ResourceID: rolesResourceID, After: rules})
		return err
	})
	return n, err
}

// Resync queues a delivery for every identity and configured connector
// where what may be sent differs from what the connector was last known to
// hold: a connector added to the configuration, a delivery lost to a bug or
// a restored backup. It compares the store with itself (no connector is
// called), reading in snapshots and writing only the deliveries it queues
// (a delivery is level-triggered, so one queued after the state moved on
// is harmless), and returns how many it queued.
func (d *Dispatcher) Resync(ctx context.Context) (int, error) {
	ctx = reqctx.WithActor(ctx, "dispatcher")
	type gap struct {
		identity, connector string
		priority            int
	}
	queued, after := 0, ""
	for {
		var (
			ids  []*store.Identity
			gaps []gap
		)
		err := d.Store.View(ctx, func(tx store.ReadTx) error {
			var err error
			if ids, err = tx.ListIdentities(ctx, store.IdentityQuery{After: after, Limit: resyncBatch}); err != nil {
				return err
			}
			for _, idn := range ids {
				want, err := Sendable(idn)
				if err != nil {
					return err
				}
				accts, err := tx.Accounts(ctx, idn.ID)
				if err != nil {
					return err
				}
				have := map[string]*store.Account{}
				for _, a := range accts {
					have[a.Connector] = a
				}
				dead, err := tx.Deliveries(ctx, store.DeliveryQuery{IdentityID: idn.ID, State: store.DeliveryDead})
				if err != nil {
					return err
				}
				for _, t := range d.sortedTargets() {
					_, sessions := t.Conn.(connectors.SessionRevoker)
					ops := Plan(want[t.Name], have[t.Name], sessions)
					if len(ops) == 0 || slices.ContainsFunc(dead, func(x *store.Delivery) bool { return x.Connector == t.Name }) {
						continue // in sync, or waiting for a human on its dead letter
					}
					p := store.PriorityGrant
					if ops[0].Kind != OpEnsure && ops[0].Kind != OpGrant {
						p = store.PriorityRevoke
					}
					gaps = append(gaps, gap{idn.ID, t.Name, p})
				}
			}
			return nil
		})
		if err == nil && len(gaps) > 0 {
			err = d.Store.Update(ctx, func(tx store.Tx) error {
				for _, g := range gaps {
					if _, err := tx.EnqueueDelivery(ctx, g.identity, g.connector, g.priority, d.now()); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return queued, fmt.Errorf("deliveries: resync: %w", err)
		}
		queued += len(gaps)
		if len(ids) < resyncBatch {
			return queued, nil
		}
		after = ids[len(ids)-1].ID
		if err := ctx.Err(); err != nil {
			return queued, err
		}
	}
}

// forEachIdentity calls fn for every identity, in id order, resyncBatch
// identities per write transaction; fn's error stops the walk.
func forEachIdentity(ctx context.Context, st store.Store, fn func(store.Tx, *store.Identity) error) (int, error) {
	after, n := "", 0
	for {
		var ids []*store.Identity
		err := st.Update(ctx, func(tx store.Tx) error {
			var err error
			if ids, err = tx.ListIdentities(ctx, store.IdentityQuery{After: after, Limit: resyncBatch}); err != nil {
				return err
			}
			for _, id := range ids {
				if err := fn(tx, id); err != nil {
					return fmt.Errorf("identity %q: %w", id.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(ids)
		if len(ids) < resyncBatch {
			return n, nil
		}
		after = ids[len(ids)-1].ID
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
}
