package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// The delivery queue and the account records (migration 00009).
//
// Every pending row is in the partial unique index deliveries_pending, so
// "at most one pending delivery per pair" is a constraint, not a
// convention: EnqueueDelivery upserts on it, and the methods that turn a
// running or dead row back into a pending one first fold away a pending row
// of the same pair, never leaving two.

const deliveryCols = `id, identity_id, connector, state, priority, attempts, run_at, enqueued, last_error, updated`

// defaultDeliveryLimit is the page size of a DeliveryQuery without Limit.
const defaultDeliveryLimit = 100

func scanDelivery(row rowScanner) (*store.Delivery, error) {
	var (
		d                        store.Delivery
		runAt, enqueued, updated int64
	)
	if err := row.Scan(&d.ID, &d.IdentityID, &d.Connector, &d.State, &d.Priority, &d.Attempts, &runAt, &enqueued,
		&d.LastError, &updated); err != nil {
		return nil, err
	}
	d.RunAt = fromNanos(runAt)
	d.Enqueued = fromNanos(enqueued)
	d.Updated = fromNanos(updated)
	return &d, nil
}

func collectDeliveries(rows *sql.Rows) ([]*store.Delivery, error) {
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// deliveriesQuery returns the statement and arguments of q. The text is
// one of eight (one per combination of filters), so each stays prepared;
// no value of q is ever part of it.
func deliveriesQuery(q store.DeliveryQuery) (string, []any) {
	where, args := `id > ?`, []any{q.After}
	if q.IdentityID != "" {
		where += ` AND identity_id = ?`
		args = append(args, q.IdentityID)
	}
	if q.Connector != "" {
		where += ` AND connector = ?`
		args = append(args, q.Connector)
	}
	if q.State != "" {
		where += ` AND state = ?`
		args = append(args, q.State)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultDeliveryLimit
	}
	return `SELECT ` + deliveryCols + ` FROM deliveries WHERE ` + where + ` ORDER BY id LIMIT ?`, append(args, limit)
}

// Deliveries implements store.ReadTx. With IdentityID set it reads the index
// deliveries_pair; otherwise it walks the table in id order from After,
// filtering, which suits the small dead and running sets an operator pages
// through. A state, connector or identity no delivery has lists nothing.
func (t *readTx) Deliveries(ctx context.Context, q store.DeliveryQuery) ([]*store.Delivery, error) {
	query, args := deliveriesQuery(q)
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries %+v: %w", q, err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries %+v: %w", q, err)
	}
	return out, nil
}

// HasDueDelivery implements store.ReadTx. The claim index orders a
// connector's pending rows by priority then run_at, so this probes at most
// the first row of each priority that is not yet due.
func (t *readTx) HasDueDelivery(ctx context.Context, connector string, now time.Time) (bool, error) {
	n, err := nanos(now, "now")
	if err != nil {
		return false, fmt.Errorf("sqlite: due deliveries of %q: %w", connector, err)
	}
	var due bool
	err = t.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_claim
		WHERE connector = ? AND state = 'pending' AND priority = ? AND run_at <= ?)
		OR EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_claim
		WHERE connector = ? AND state = 'pending' AND priority = ? AND run_at <= ?)`,
		connector, store.PriorityRevoke, n, connector, store.PriorityGrant, n).Scan(&due)
	if err != nil {
		return false, fmt.Errorf("sqlite: due deliveries of %q: %w", connector, err)
	}
	return due, nil
}

// GetDelivery implements store.ReadTx.
func (t *readTx) GetDelivery(ctx context.Context, id int64) (*store.Delivery, error) {
	d, err := scanDelivery(t.queryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get delivery %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get delivery %d: %w", id, err)
	}
	return d, nil
}

// QueueStats implements store.ReadTx with one grouped scan of the queue.
func (t *readTx) QueueStats(ctx context.Context) (map[string]store.QueueStats, error) {
	rows, err := t.query(ctx, `SELECT connector, state, count(*), min(enqueued) FROM deliveries GROUP BY connector, state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: queue stats: %w", err)
	}
	defer rows.Close()
	out := map[string]store.QueueStats{}
	for rows.Next() {
		var (
			connector, state string
			n                int
			oldest           int64
		)
		if err := rows.Scan(&connector, &state, &n, &oldest); err != nil {
			return nil, fmt.Errorf("sqlite: queue stats: %w", err)
		}
		s := out[connector]
		switch state {
		case store.DeliveryPending:
			s.Pending = n
			s.OldestPending = fromNanos(oldest)
		case store.DeliveryRunning:
			s.Running = n
		case store.DeliveryDead:
			s.Dead = n
		}
		out[connector] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: queue stats: %w", err)
	}
	return out, nil
}

// enqueueSQL inserts a pending delivery or, when the pair has one (the
// conflict target names the partial index deliveries_pending, WHERE
// included), makes it at least as urgent and as due as the new change.
const enqueueSQL = `
	INSERT INTO deliveries (identity_id, connector, state, priority, attempts, run_at, enqueued, last_error, updated)
	VALUES (?1, ?2, 'pending', ?3, 0, ?4, ?4, '', ?4)
	ON CONFLICT (identity_id, connector) WHERE state = 'pending' DO UPDATE SET
		priority = min(priority, excluded.priority),
		run_at = min(run_at, excluded.run_at),
		enqueued = min(enqueued, excluded.enqueued),
		updated = excluded.updated
	RETURNING id`

// EnqueueDelivery implements store.Tx with one upsert. A pending delivery
// keeps its id, Attempts and LastError; its Priority and RunAt only ever
// move towards more urgent, and Enqueued keeps the older of its own and now
// (it names the oldest change the job covers). Updated becomes now. An
// identity that does not exist is ErrNotFound (the foreign key refuses the
// row); an empty identity id or connector and an unstorable now are plain
// errors. Nothing is written on any error.
func (t *writeTx) EnqueueDelivery(ctx context.Context, identityID, connector string, priority int, now time.Time) (int64, error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("sqlite: enqueue delivery of identity %q to %q: %w", identityID, connector, err)
	}
	switch {
	case identityID == "":
		return fail(errors.New("empty identity id"))
	case connector == "":
		return fail(errors.New("empty connector"))
	}
	n, err := nanos(now, "now")
	if err != nil {
		return fail(err)
	}
	var id int64
	err = t.queryRow(ctx, enqueueSQL, identityID, connector, priority, n).Scan(&id)
	if isForeignKey(err) {
		return fail(fmt.Errorf("no such identity: %w", store.ErrNotFound))
	}
	if err != nil {
		return fail(err)
	}
	return id, nil
}

// claimSQL picks the due pending rows of one connector in claim order from
// deliveries_claim, leaving out pairs with a running row (a probe of
// deliveries_pair each), and marks them running in the same statement.
const claimSQL = `
	UPDATE deliveries SET state = 'running', attempts = attempts + 1, updated = ?1
	WHERE id IN (
		SELECT d.id FROM deliveries d
		WHERE d.connector = ?2 AND d.state = 'pending' AND d.run_at <= ?1
			AND NOT EXISTS (SELECT 1 FROM deliveries r
				WHERE r.identity_id = d.identity_id AND r.connector = d.connector AND r.state = 'running')
		ORDER BY d.priority, d.run_at, d.id
		LIMIT ?3)
	RETURNING ` + deliveryCols

// ClaimDeliveries implements store.Tx with one UPDATE … RETURNING; rows
// come back in no defined order and are sorted here. A delivery is due when
// RunAt is not after now. limit <= 0 claims nothing. An unstorable now is
// a plain error and claims nothing.
func (t *writeTx) ClaimDeliveries(ctx context.Context, connector string, now time.Time, limit int) ([]*store.Delivery, error) {
	n, err := nanos(now, "now")
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries of %q: %w", connector, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.query(ctx, claimSQL, n, connector, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries of %q: %w", connector, err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries of %q: %w", connector, err)
	}
	slices.SortFunc(out, func(a, b *store.Delivery) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), a.RunAt.Compare(b.RunAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// FinishDelivery implements store.Tx: the running row and the pair's dead
// rows are deleted; a pending row of the pair (a change made while the job
// ran) stays. ErrNotFound, deleting nothing, if id is not running.
func (t *writeTx) FinishDelivery(ctx context.Context, id int64) error {
	var identityID, connector string
	err := t.queryRow(ctx, `DELETE FROM deliveries WHERE id = ? AND state = 'running' RETURNING identity_id, connector`,
		id).Scan(&identityID, &connector)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: finish delivery %d: no running delivery with that id: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: finish delivery %d: %w", id, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM deliveries WHERE identity_id = ? AND connector = ? AND state = 'dead'`,
		identityID, connector); err != nil {
		return fmt.Errorf("sqlite: finish delivery %d: dead deliveries of the pair: %w", id, err)
	}
	return nil
}

// folded is what a pending delivery removed by foldPending covered.
type folded struct {
	priority        int
	runAt, enqueued int64
}

// foldPendingSQL deletes the pending row of running delivery ?1's pair, if
// any, through deliveries_pending (both subqueries are constants).
const foldPendingSQL = `
	DELETE FROM deliveries
	WHERE state = 'pending'
		AND identity_id = (SELECT identity_id FROM deliveries WHERE id = ?1 AND state = 'running')
		AND connector = (SELECT connector FROM deliveries WHERE id = ?1 AND state = 'running')
	RETURNING priority, run_at, enqueued`

// foldPending removes the pending delivery of running delivery id's pair,
// which a change made while id ran created, and returns what it covered
// (nil when there was none, or id is not running). The caller makes id
// pending in its place, as urgent and as due as both and covering both.
func (t *writeTx) foldPending(ctx context.Context, id int64) (*folded, error) {
	var f folded
	err := t.queryRow(ctx, foldPendingSQL, id).Scan(&f.priority, &f.runAt, &f.enqueued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// FailDelivery implements store.Tx. With dead, the row becomes dead with
// lastError and Updated now; RunAt keeps its last value and runAt is not
// looked at. Otherwise it becomes pending at runAt with lastError, keeping
// its id and Attempts; if a change made while it ran left a pending
// delivery for the pair, that one is deleted and folded into this one (the
// more urgent Priority, the earlier RunAt — a new change cuts a back-off
// short, as in EnqueueDelivery — and the earlier Enqueued), so the pair
// still has one pending delivery. ErrNotFound if id is not running; an
// unstorable now (or runAt, when retrying) is a plain error. Nothing is
// written on any error.
func (t *writeTx) FailDelivery(ctx context.Context, id int64, runAt time.Time, dead bool, lastError string, now time.Time) error {
	fail := func(err error) error { return fmt.Errorf("sqlite: fail delivery %d: %w", id, err) }
	n, err := nanos(now, "now")
	if err != nil {
		return fail(err)
	}
	var res sql.Result
	if dead {
		res, err = t.exec(ctx, `UPDATE deliveries SET state = 'dead', last_error = ?, updated = ? WHERE id = ? AND state = 'running'`,
			lastError, n, id)
	} else {
		var due int64
		if due, err = nanos(runAt, "runAt"); err != nil {
			return fail(err)
		}
		var f *folded
		if f, err = t.foldPending(ctx, id); err != nil {
			return fail(err)
		}
		var priority, enqueued sql.NullInt64 // NULL: keep the row's own
		if f != nil {
			priority = sql.NullInt64{Int64: int64(f.priority), Valid: true}
			enqueued = sql.NullInt64{Int64: f.enqueued, Valid: true}
			due = min(due, f.runAt)
		}
		res, err = t.exec(ctx, `
			UPDATE deliveries SET state = 'pending', priority = min(priority, coalesce(?1, priority)), run_at = ?2,
				enqueued = min(enqueued, coalesce(?3, enqueued)), last_error = ?4, updated = ?5
			WHERE id = ?6 AND state = 'running'`,
			priority, due, enqueued, lastError, n, id)
	}
	if err != nil {
		return fail(err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if k == 0 {
		return fail(fmt.Errorf("no running delivery with that id: %w", store.ErrNotFound))
	}
	return nil
}

// RetryDelivery implements store.Tx. The retried row keeps its id,
// Priority, Enqueued and LastError (until its next run replaces it); when
// the pair already has a pending delivery the dead row is deleted and the
// pending one is left as it is. ErrNotFound if id is not dead; an
// unstorable now is a plain error. Nothing is written on any error.
func (t *writeTx) RetryDelivery(ctx context.Context, id int64, now time.Time) error {
	fail := func(err error) error { return fmt.Errorf("sqlite: retry delivery %d: %w", id, err) }
	n, err := nanos(now, "now")
	if err != nil {
		return fail(err)
	}
	res, err := t.exec(ctx, `
		UPDATE deliveries SET state = 'pending', attempts = 0, run_at = ?1, updated = ?1
		WHERE id = ?2 AND state = 'dead' AND NOT EXISTS (SELECT 1 FROM deliveries p
			WHERE p.identity_id = deliveries.identity_id AND p.connector = deliveries.connector AND p.state = 'pending')`,
		n, id)
	if err != nil {
		return fail(err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if k == 1 {
		return nil
	}
	// Not dead, or dead with a pending delivery that covers it.
	if res, err = t.exec(ctx, `DELETE FROM deliveries WHERE id = ? AND state = 'dead'`, id); err != nil {
		return fail(err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if k == 0 {
		return fail(fmt.Errorf("no dead delivery with that id: %w", store.ErrNotFound))
	}
	return nil
}

// RequeueRunning implements store.Tx. Each running row becomes pending due
// at now, keeping its id, Attempts (the interrupted run counts) and
// LastError. A pending row of the same pair (a change made while it ran) is
// folded into it as FailDelivery does; the count does not include folded
// rows. It scans the table, which is fine for what runs once at start-up.
// An unstorable now is a plain error.
func (t *writeTx) RequeueRunning(ctx context.Context, now time.Time) (int, error) {
	fail := func(err error) (int, error) { return 0, fmt.Errorf("sqlite: requeue running deliveries: %w", err) }
	n, err := nanos(now, "now")
	if err != nil {
		return fail(err)
	}
	rows, err := t.query(ctx, `
		DELETE FROM deliveries AS p
		WHERE p.state = 'pending' AND EXISTS (SELECT 1 FROM deliveries r
			WHERE r.identity_id = p.identity_id AND r.connector = p.connector AND r.state = 'running')
		RETURNING identity_id, connector, priority, run_at, enqueued`)
	if err != nil {
		return fail(err)
	}
	type pairFold struct {
		identityID, connector string
		folded
	}
	var folds []pairFold
	for rows.Next() {
		var f pairFold
		if err := rows.Scan(&f.identityID, &f.connector, &f.priority, &f.runAt, &f.enqueued); err != nil {
			rows.Close()
			return fail(err)
		}
		folds = append(folds, f)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fail(err)
	}
	res, err := t.exec(ctx, `UPDATE deliveries SET state = 'pending', run_at = ?1, updated = ?1 WHERE state = 'running'`, n)
	if err != nil {
		return fail(err)
	}
	k, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	for _, f := range folds {
		if _, err := t.exec(ctx, `
			UPDATE deliveries SET priority = min(priority, ?), run_at = min(run_at, ?), enqueued = min(enqueued, ?)
			WHERE identity_id = ? AND connector = ? AND state = 'pending'`,
			f.priority, f.runAt, f.enqueued, f.identityID, f.connector); err != nil {
			return fail(err)
		}
	}
	return int(k), nil
}

const accountCols = `identity_id, connector, ref, enabled, entitlements, updated, pending, maybe`

func scanAccount(row rowScanner) (*store.Account, error) {
	var (
		a                   store.Account
		entitlements, maybe string
		updated             int64
	)
	if err := row.Scan(&a.IdentityID, &a.Connector, &a.Ref, &a.Enabled, &entitlements, &updated, &a.Pending, &maybe); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(entitlements), &a.Entitlements); err != nil {
		return nil, fmt.Errorf("account of %q in %q: entitlements: %w", a.IdentityID, a.Connector, err)
	}
	if err := json.Unmarshal([]byte(maybe), &a.Maybe); err != nil {
		return nil, fmt.Errorf("account of %q in %q: maybe: %w", a.IdentityID, a.Connector, err)
	}
	if len(a.Entitlements) == 0 {
		a.Entitlements = nil
	}
	if len(a.Maybe) == 0 {
		a.Maybe = nil
	}
	a.Updated = fromNanos(updated)
	return &a, nil
}

func collectAccounts(rows *sql.Rows) ([]*store.Account, error) {
	defer rows.Close()
	var out []*store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Accounts implements store.ReadTx from the primary key. No entitlements
// read back as nil.
func (t *readTx) Accounts(ctx context.Context, identityID string) ([]*store.Account, error) {
	rows, err := t.query(ctx, `SELECT `+accountCols+` FROM accounts WHERE identity_id = ? ORDER BY connector`, identityID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: accounts of identity %q: %w", identityID, err)
	}
	out, err := collectAccounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: accounts of identity %q: %w", identityID, err)
	}
	return out, nil
}

// GetAccount implements store.ReadTx.
func (t *readTx) GetAccount(ctx context.Context, identityID, connector string) (*store.Account, error) {
	a, err := scanAccount(t.queryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE identity_id = ? AND connector = ?`,
		identityID, connector))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get account of identity %q in %q: %w", identityID, connector, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get account of identity %q in %q: %w", identityID, connector, err)
	}
	return a, nil
}

// ConnectorAccounts implements store.ReadTx from the index
// accounts_connector.
func (t *readTx) ConnectorAccounts(ctx context.Context, connector string) ([]*store.Account, error) {
	rows, err := t.query(ctx, `SELECT `+accountCols+` FROM accounts WHERE connector = ? ORDER BY identity_id`, connector)
	if err != nil {
		return nil, fmt.Errorf("sqlite: accounts in %q: %w", connector, err)
	}
	out, err := collectAccounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: accounts in %q: %w", connector, err)
	}
	return out, nil
}

// sortedJSON encodes a set of strings as a sorted, deduplicated JSON array.
func sortedJSON(xs []string) (string, error) {
	set := slices.Compact(slices.Sorted(slices.Values(xs)))
	if set == nil {
		set = []string{}
	}
	b, err := json.Marshal(set)
	return string(b), err
}

// PutAccount implements store.Tx with one upsert replacing every column.
// Entitlements are sorted and deduplicated on a copy (a's slice is left as
// it is). An identity that does not exist is ErrNotFound; an empty identity
// id or connector and an unstorable Updated are plain errors. Nothing is
// written on any error.
func (t *writeTx) PutAccount(ctx context.Context, a *store.Account) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: put account of identity %q in %q: %w", a.IdentityID, a.Connector, err)
	}
	switch {
	case a.IdentityID == "":
		return fail(errors.New("empty identity id"))
	case a.Connector == "":
		return fail(errors.New("empty connector"))
	}
	updated, err := nanos(a.Updated, "updated")
	if err != nil {
		return fail(err)
	}
	enc, err := sortedJSON(a.Entitlements)
	if err != nil {
		return fail(err)
	}
	maybe, err := sortedJSON(a.Maybe)
	if err != nil {
		return fail(err)
	}
	_, err = t.exec(ctx, `
		INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (identity_id, connector) DO UPDATE SET
			ref = excluded.ref, enabled = excluded.enabled, entitlements = excluded.entitlements,
			updated = excluded.updated, pending = excluded.pending, maybe = excluded.maybe`,
		a.IdentityID, a.Connector, a.Ref, a.Enabled, enc, updated, a.Pending, maybe)
	if isForeignKey(err) {
		return fail(fmt.Errorf("no such identity: %w", store.ErrNotFound))
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// DeleteAccount implements store.Tx; deleting an absent account (or one of
// a missing identity) succeeds and changes nothing.
func (t *writeTx) DeleteAccount(ctx context.Context, identityID, connector string) error {
	if _, err := t.exec(ctx, `DELETE FROM accounts WHERE identity_id = ? AND connector = ?`, identityID, connector); err != nil {
		return fmt.Errorf("sqlite: delete account of identity %q in %q: %w", identityID, connector, err)
	}
	return nil
}
