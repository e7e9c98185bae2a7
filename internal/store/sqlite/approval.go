package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jmlgate/jmlgate/internal/store"
)

const approvalCols = `id, identity_id, role, grants, required, state, requested_at, expires_at, decisions, updated, version`

// approvalStates are the states the approvals table's CHECK admits.
var approvalStates = map[string]bool{
	store.ApprovalPending:   true,
	store.ApprovalApproved:  true,
	store.ApprovalRejected:  true,
	store.ApprovalExpired:   true,
	store.ApprovalCancelled: true,
}

// The fixed statements of Approvals, one per combination of ApprovalQuery
// fields, each served by an index in (requested_at, id) order except the
// unfiltered one, which sorts (the contract has no index for it).
const (
	approvalsAll        = `SELECT ` + approvalCols + ` FROM approvals ORDER BY requested_at, id`
	approvalsByState    = `SELECT ` + approvalCols + ` FROM approvals WHERE state = ? ORDER BY requested_at, id`
	approvalsByIdentity = `SELECT ` + approvalCols + ` FROM approvals WHERE identity_id = ? ORDER BY requested_at, id`
	approvalsByBoth     = `SELECT ` + approvalCols + ` FROM approvals WHERE identity_id = ? AND state = ? ORDER BY requested_at, id`
)

func scanApproval(row rowScanner) (*store.Approval, error) {
	var (
		a                           store.Approval
		grants                      string
		decisions                   sql.NullString
		requested, expires, updated int64
	)
	if err := row.Scan(&a.ID, &a.IdentityID, &a.Role, &grants, &a.Required, &a.State, &requested, &expires,
		&decisions, &updated, &a.Version); err != nil {
		return nil, err
	}
	a.Grants = []byte(grants)
	if decisions.Valid {
		a.Decisions = []byte(decisions.String)
	}
	a.RequestedAt = fromNanos(requested)
	a.ExpiresAt = fromNanos(expires)
	a.Updated = fromNanos(updated)
	return &a, nil
}

// GetApproval implements store.ReadTx.
func (t *readTx) GetApproval(ctx context.Context, id string) (*store.Approval, error) {
	a, err := scanApproval(t.queryRow(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get approval %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get approval %q: %w", id, err)
	}
	return a, nil
}

// Approvals implements store.ReadTx: a range scan of approvals_identity
// when q.IdentityID is set (filtered by state when q.State is too), of
// approvals_state when only q.State is set, and a sorted scan of the table
// otherwise. A state or identity that no approval has lists nothing.
func (t *readTx) Approvals(ctx context.Context, q store.ApprovalQuery) ([]*store.Approval, error) {
	var (
		rows *sql.Rows
		err  error
	)
	switch {
	case q.State == "" && q.IdentityID == "":
		rows, err = t.query(ctx, approvalsAll)
	case q.IdentityID == "":
		rows, err = t.query(ctx, approvalsByState, q.State)
	case q.State == "":
		rows, err = t.query(ctx, approvalsByIdentity, q.IdentityID)
	default:
		rows, err = t.query(ctx, approvalsByBoth, q.IdentityID, q.State)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: approvals (state %q, identity %q): %w", q.State, q.IdentityID, err)
	}
	defer rows.Close()
	var out []*store.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: approvals (state %q, identity %q): %w", q.State, q.IdentityID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: approvals (state %q, identity %q): %w", q.State, q.IdentityID, err)
	}
	return out, nil
}

// approvalArgs validates a and returns its column values in the order
// identity_id, role, grants, required, state, requested_at, expires_at,
// decisions, updated, version.
func approvalArgs(a *store.Approval) ([]any, error) {
	if a.ID == "" {
		return nil, errors.New("empty id")
	}
	if a.IdentityID == "" {
		return nil, errors.New("empty identity id")
	}
	if !json.Valid(a.Grants) {
		return nil, errors.New("grants is not valid JSON")
	}
	if a.Required < 1 {
		return nil, fmt.Errorf("required %d, want >= 1", a.Required)
	}
	if !approvalStates[a.State] {
		return nil, fmt.Errorf("unknown state %q", a.State)
	}
	var decisions sql.NullString // nil and empty are stored as NULL
	if len(a.Decisions) > 0 {
		if !json.Valid(a.Decisions) {
			return nil, errors.New("decisions is not valid JSON")
		}
		decisions = sql.NullString{String: string(a.Decisions), Valid: true}
	}
	requested, err := nanos(a.RequestedAt, "requestedAt")
	if err != nil {
		return nil, err
	}
	expires, err := nanos(a.ExpiresAt, "expiresAt")
	if err != nil {
		return nil, err
	}
	updated, err := nanos(a.Updated, "updated")
	if err != nil {
		return nil, err
	}
	return []any{a.IdentityID, a.Role, string(a.Grants), a.Required, a.State, requested, expires, decisions,
		updated, a.Version}, nil
}

// isForeignKey reports a FOREIGN KEY violation, by SQLite's extended result
// code.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// PutApproval implements store.Tx. Version 1 inserts, after checking that
// the identity exists (ErrNotFound if not); Version n > 1 replaces every
// column of the stored version n-1 in one statement, and an IdentityID
// naming no identity is ErrNotFound there too. A taken id (for Version 1),
// a stored version other than n-1 or no stored approval (for n > 1), and a
// Version below 1 are ErrConflict. Invalid values (empty id or identity id,
// Grants not JSON, Required below 1, unknown state, Decisions neither empty
// nor JSON, unstorable or zero times) are plain errors. Nil and empty
// Decisions are stored as NULL and read back nil; JSON is kept byte for
// byte. Nothing is written on any error.
func (t *writeTx) PutApproval(ctx context.Context, a *store.Approval) error {
	if a.Version < 1 {
		return fmt.Errorf("sqlite: put approval %q: version %d: %w", a.ID, a.Version, store.ErrConflict)
	}
	args, err := approvalArgs(a)
	if err != nil {
		return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
	}
	if a.Version == 1 {
		ok, err := t.identityExists(ctx, a.IdentityID)
		if err != nil {
			return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
		}
		if !ok {
			return fmt.Errorf("sqlite: put approval %q: no such identity %q: %w", a.ID, a.IdentityID, store.ErrNotFound)
		}
		_, err = t.exec(ctx, `INSERT INTO approvals (`+approvalCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append([]any{a.ID}, args...)...)
		if isConflict(err) {
			return fmt.Errorf("sqlite: put approval %q: version 1 but the approval exists: %w", a.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
		}
		return nil
	}
	res, err := t.exec(ctx, `
		UPDATE approvals SET identity_id = ?, role = ?, grants = ?, required = ?, state = ?, requested_at = ?,
			expires_at = ?, decisions = ?, updated = ?, version = ?
		WHERE id = ? AND version = ?`,
		append(args, a.ID, a.Version-1)...)
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put approval %q: no such identity %q: %w", a.ID, a.IdentityID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
	} else if n == 1 {
		return nil
	}
	var stored int64
	err = t.queryRow(ctx, `SELECT version FROM approvals WHERE id = ?`, a.ID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: put approval %q: version %d but no approval is stored: %w", a.ID, a.Version, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put approval %q: %w", a.ID, err)
	}
	return fmt.Errorf("sqlite: put approval %q: stored version is %d, not %d: %w", a.ID, stored, a.Version-1, store.ErrConflict)
}
