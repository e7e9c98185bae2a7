package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

const identityCols = `id, user_name, state, start_date, end_date, mfa_method, mfa_enrolled_at, desired, leaver_at, revoked_at, next_check, version, created, updated`

// identityStates are the states the identities table's CHECK admits.
var identityStates = map[string]bool{
	store.StatePreHire:     true,
	store.StateAwaitingMFA: true,
	store.StateActive:      true,
	store.StateTerminated:  true,
	store.StateDeleted:     true,
}

func scanIdentity(row rowScanner) (*store.Identity, error) {
	var (
		id                                               store.Identity
		start, end, mfaAt, leaverAt, revokedAt, nextTime sql.NullInt64
		desired                                          sql.NullString
		created, updated                                 int64
	)
	if err := row.Scan(&id.ID, &id.UserName, &id.State, &start, &end, &id.MFAMethod, &mfaAt, &desired,
		&leaverAt, &revokedAt, &nextTime, &id.Version, &created, &updated); err != nil {
		return nil, err
	}
	id.StartDate = fromOptNanos(start)
	id.EndDate = fromOptNanos(end)
	id.MFAEnrolledAt = fromOptNanos(mfaAt)
	if desired.Valid {
		id.Desired = []byte(desired.String)
	}
	id.LeaverAt = fromOptNanos(leaverAt)
	id.RevokedAt = fromOptNanos(revokedAt)
	id.NextCheck = fromOptNanos(nextTime)
	id.Created = fromNanos(created)
	id.Updated = fromNanos(updated)
	return &id, nil
}

func collectIdentities(rows *sql.Rows) ([]*store.Identity, error) {
	defer rows.Close()
	var out []*store.Identity
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// GetIdentity implements store.ReadTx.
func (t *readTx) GetIdentity(ctx context.Context, id string) (*store.Identity, error) {
	got, err := scanIdentity(t.queryRow(ctx, `SELECT `+identityCols+` FROM identities WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get identity %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get identity %q: %w", id, err)
	}
	return got, nil
}

// ListIdentities implements store.ReadTx: a range scan of the primary key,
// or of identities_state when q.State is set. A state no identity can have
// matches nothing; q.Limit must be positive.
func (t *readTx) ListIdentities(ctx context.Context, q store.IdentityQuery) ([]*store.Identity, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("sqlite: list identities: limit %d, want > 0", q.Limit)
	}
	var (
		rows *sql.Rows
		err  error
	)
	if q.State == "" {
		rows, err = t.query(ctx, `SELECT `+identityCols+` FROM identities WHERE id > ? ORDER BY id LIMIT ?`,
			q.After, q.Limit)
	} else {
		rows, err = t.query(ctx, `SELECT `+identityCols+` FROM identities WHERE state = ? AND id > ? ORDER BY id LIMIT ?`,
			q.State, q.After, q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list identities after %q: %w", q.After, err)
	}
	out, err := collectIdentities(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list identities after %q: %w", q.After, err)
	}
	return out, nil
}

// DueIdentities implements store.ReadTx from the partial index
// identities_due; ties on NextCheck go by id. limit 0 returns nothing and
// limit < 0 has no cap.
func (t *readTx) DueIdentities(ctx context.Context, now time.Time, limit int) ([]*store.Identity, error) {
	n, err := nanos(now, "now")
	if err != nil {
		return nil, fmt.Errorf("sqlite: due identities: %w", err)
	}
	if limit == 0 {
		return nil, nil
	}
	if limit < 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.query(ctx, `SELECT `+identityCols+` FROM identities
		WHERE next_check IS NOT NULL AND next_check <= ? ORDER BY next_check, id LIMIT ?`, n, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due identities: %w", err)
	}
	out, err := collectIdentities(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due identities: %w", err)
	}
	return out, nil
}

// AuditFor implements store.ReadTx from the index audit_resource.
func (t *readTx) AuditFor(ctx context.Context, resourceType, resourceID string, fromSeq int64, limit int) ([]*store.AuditRecord, error) {
	if limit == 0 {
		return nil, nil
	}
	if limit < 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.query(ctx, `SELECT `+auditCols+` FROM audit
		WHERE resource_type = ? AND resource_id = ? AND seq >= ? ORDER BY seq LIMIT ?`,
		resourceType, resourceID, fromSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit for %s %q from %d: %w", resourceType, resourceID, fromSeq, err)
	}
	defer rows.Close()
	var out []*store.AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit for %s %q from %d: %w", resourceType, resourceID, fromSeq, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit for %s %q from %d: %w", resourceType, resourceID, fromSeq, err)
	}
	return out, nil
}

// identityArgs validates id and returns its column values in the order
// user_name, state, start_date, end_date, mfa_method, mfa_enrolled_at,
// desired, leaver_at, revoked_at, next_check, version, created, updated.
func identityArgs(id *store.Identity) ([]any, error) {
	if id.ID == "" {
		return nil, errors.New("empty id")
	}
	if !identityStates[id.State] {
		return nil, fmt.Errorf("unknown state %q", id.State)
	}
	var desired sql.NullString // nil and empty are stored as NULL
	if len(id.Desired) > 0 {
		if !json.Valid(id.Desired) {
			return nil, errors.New("desired is not valid JSON")
		}
		desired = sql.NullString{String: string(id.Desired), Valid: true}
	}
	opt := []struct {
		t     time.Time
		field string
	}{
		{id.StartDate, "startDate"}, {id.EndDate, "endDate"}, {id.MFAEnrolledAt, "mfaEnrolledAt"},
		{id.LeaverAt, "leaverAt"}, {id.RevokedAt, "revokedAt"}, {id.NextCheck, "nextCheck"},
	}
	var o [6]sql.NullInt64
	for i, f := range opt {
		var err error
		if o[i], err = optNanos(f.t, f.field); err != nil {
			return nil, err
		}
	}
	created, err := nanos(id.Created, "created")
	if err != nil {
		return nil, err
	}
	updated, err := nanos(id.Updated, "updated")
	if err != nil {
		return nil, err
	}
	return []any{id.UserName, id.State, o[0], o[1], id.MFAMethod, o[2], desired, o[3], o[4], o[5],
		id.Version, created, updated}, nil
}

// PutIdentity implements store.Tx. Version 1 inserts; Version n > 1
// replaces every column of the stored version n-1 in one statement. A taken
// id (for Version 1), a stored version other than n-1 or no stored identity
// (for n > 1), and a Version below 1 are ErrConflict; invalid values (empty
// id, unknown state, Desired not JSON, unstorable times) are plain errors.
// Nothing is written on any error.
func (t *writeTx) PutIdentity(ctx context.Context, id *store.Identity) error {
	if id.Version < 1 {
		return fmt.Errorf("sqlite: put identity %q: version %d: %w", id.ID, id.Version, store.ErrConflict)
	}
	args, err := identityArgs(id)
	if err != nil {
		return fmt.Errorf("sqlite: put identity %q: %w", id.ID, err)
	}
	if id.Version == 1 {
		_, err := t.exec(ctx, `INSERT INTO identities (`+identityCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append([]any{id.ID}, args...)...)
		if isConflict(err) {
			return fmt.Errorf("sqlite: put identity %q: version 1 but the identity exists: %w", id.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: put identity %q: %w", id.ID, err)
		}
		return nil
	}
	res, err := t.exec(ctx, `
		UPDATE identities SET user_name = ?, state = ?, start_date = ?, end_date = ?, mfa_method = ?,
			mfa_enrolled_at = ?, desired = ?, leaver_at = ?, revoked_at = ?, next_check = ?, version = ?,
			created = ?, updated = ?
		WHERE id = ? AND version = ?`,
		append(args, id.ID, id.Version-1)...)
	if err != nil {
		return fmt.Errorf("sqlite: put identity %q: %w", id.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: put identity %q: %w", id.ID, err)
	} else if n == 1 {
		return nil
	}
	var stored int64
	err = t.queryRow(ctx, `SELECT version FROM identities WHERE id = ?`, id.ID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: put identity %q: version %d but no identity is stored: %w", id.ID, id.Version, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put identity %q: %w", id.ID, err)
	}
	return fmt.Errorf("sqlite: put identity %q: stored version is %d, not %d: %w", id.ID, stored, id.Version-1, store.ErrConflict)
}
