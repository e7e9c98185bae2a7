package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

const exceptionCols = `id, identity_id, type, justification, compensating_controls, owner, created_by, created, expires_at, ended, ended_by`

// exceptionTypes are the types the exceptions table's CHECK admits.
var exceptionTypes = map[string]bool{"mfa_bypass": true}

func scanException(row rowScanner) (*store.Exception, error) {
	var (
		e                store.Exception
		created, expires int64
		ended            sql.NullInt64
	)
	if err := row.Scan(&e.ID, &e.IdentityID, &e.Type, &e.Justification, &e.CompensatingControls, &e.Owner,
		&e.CreatedBy, &created, &expires, &ended, &e.EndedBy); err != nil {
		return nil, err
	}
	e.Created = fromNanos(created)
	e.ExpiresAt = fromNanos(expires)
	e.Ended = fromOptNanos(ended)
	return &e, nil
}

// GetException implements store.ReadTx.
func (t *readTx) GetException(ctx context.Context, id string) (*store.Exception, error) {
	e, err := scanException(t.queryRow(ctx, `SELECT `+exceptionCols+` FROM exceptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get exception %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get exception %q: %w", id, err)
	}
	return e, nil
}

// Exceptions implements store.ReadTx: a range scan of exceptions_identity,
// or of exceptions_created when identityID is "". An identity without
// exceptions, or one that does not exist, lists nothing.
func (t *readTx) Exceptions(ctx context.Context, identityID string) ([]*store.Exception, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if identityID == "" {
		rows, err = t.query(ctx, `SELECT `+exceptionCols+` FROM exceptions ORDER BY created, id`)
	} else {
		rows, err = t.query(ctx, `SELECT `+exceptionCols+` FROM exceptions WHERE identity_id = ? ORDER BY created, id`,
			identityID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: exceptions of identity %q: %w", identityID, err)
	}
	defer rows.Close()
	var out []*store.Exception
	for rows.Next() {
		e, err := scanException(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: exceptions of identity %q: %w", identityID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: exceptions of identity %q: %w", identityID, err)
	}
	return out, nil
}

// exceptionArgs validates e and returns its column values in the order of
// exceptionCols.
func exceptionArgs(e *store.Exception) ([]any, error) {
	if e.ID == "" {
		return nil, errors.New("empty id")
	}
	if e.IdentityID == "" {
		return nil, errors.New("empty identity id")
	}
	if !exceptionTypes[e.Type] {
		return nil, fmt.Errorf("unknown type %q", e.Type)
	}
	if e.ExpiresAt.IsZero() {
		return nil, errors.New("zero expiresAt (an exception must expire)")
	}
	created, err := nanos(e.Created, "created")
	if err != nil {
		return nil, err
	}
	expires, err := nanos(e.ExpiresAt, "expiresAt")
	if err != nil {
		return nil, err
	}
	ended, err := optNanos(e.Ended, "ended")
	if err != nil {
		return nil, err
	}
	return []any{e.ID, e.IdentityID, e.Type, e.Justification, e.CompensatingControls, e.Owner, e.CreatedBy,
		created, expires, ended, e.EndedBy}, nil
}

// CreateException implements store.Tx: one INSERT of every field as given,
// after checking that the identity exists (ErrNotFound if not). A taken id
// is ErrConflict; invalid values (empty id or identity id, a type other
// than "mfa_bypass", a zero ExpiresAt, unstorable times) are plain errors.
// Nothing is written on any error.
func (t *writeTx) CreateException(ctx context.Context, e *store.Exception) error {
	args, err := exceptionArgs(e)
	if err != nil {
		return fmt.Errorf("sqlite: create exception %q: %w", e.ID, err)
	}
	ok, err := t.identityExists(ctx, e.IdentityID)
	if err != nil {
		return fmt.Errorf("sqlite: create exception %q: %w", e.ID, err)
	}
	if !ok {
		return fmt.Errorf("sqlite: create exception %q: no such identity %q: %w", e.ID, e.IdentityID, store.ErrNotFound)
	}
	_, err = t.exec(ctx, `INSERT INTO exceptions (`+exceptionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if isConflict(err) {
		return fmt.Errorf("sqlite: create exception %q: id already taken: %w", e.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create exception %q: %w", e.ID, err)
	}
	return nil
}

// EndException implements store.Tx: one UPDATE of a row whose ended is
// still NULL. No row with that id is ErrNotFound; a row already ended is
// ErrConflict and keeps its first Ended and EndedBy. An unstorable at is a
// plain error. An exception that has expired but was not ended can still
// be ended; its Live answer does not change.
func (t *writeTx) EndException(ctx context.Context, id string, at time.Time, by string) error {
	n, err := nanos(at, "end time")
	if err != nil {
		return fmt.Errorf("sqlite: end exception %q: %w", id, err)
	}
	res, err := t.exec(ctx, `UPDATE exceptions SET ended = ?, ended_by = ? WHERE id = ? AND ended IS NULL`, n, by, id)
	if err != nil {
		return fmt.Errorf("sqlite: end exception %q: %w", id, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: end exception %q: %w", id, err)
	} else if k == 1 {
		return nil
	}
	var ended int64
	err = t.queryRow(ctx, `SELECT ended FROM exceptions WHERE id = ?`, id).Scan(&ended)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: end exception %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: end exception %q: %w", id, err)
	}
	return fmt.Errorf("sqlite: end exception %q: already ended at %s: %w", id,
		fromNanos(ended).Format(time.RFC3339Nano), store.ErrConflict)
}
