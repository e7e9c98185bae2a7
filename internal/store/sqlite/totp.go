package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmlgate/jmlgate/internal/store"
)

const totpCols = `identity_id, secret, created, verified, last_step, failures, locked_until, version`

func scanTOTP(row rowScanner) (*store.TOTPEnrollment, error) {
	var (
		e                     store.TOTPEnrollment
		created               int64
		verified, lockedUntil sql.NullInt64
	)
	if err := row.Scan(&e.IdentityID, &e.Secret, &created, &verified, &e.LastStep, &e.Failures,
		&lockedUntil, &e.Version); err != nil {
		return nil, err
	}
	e.Created = fromNanos(created)
	e.Verified = fromOptNanos(verified)
	e.LockedUntil = fromOptNanos(lockedUntil)
	return &e, nil
}

// GetTOTP implements store.ReadTx.
func (t *readTx) GetTOTP(ctx context.Context, identityID string) (*store.TOTPEnrollment, error) {
	e, err := scanTOTP(t.queryRow(ctx, `SELECT `+totpCols+` FROM totp WHERE identity_id = ?`, identityID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get totp of identity %q: %w", identityID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get totp of identity %q: %w", identityID, err)
	}
	return e, nil
}

// totpArgs validates e and returns its column values in the order secret,
// created, verified, last_step, failures, locked_until, version. Messages
// never include the secret.
func totpArgs(e *store.TOTPEnrollment) ([]any, error) {
	if e.IdentityID == "" {
		return nil, errors.New("empty identity id")
	}
	if e.Secret == "" {
		return nil, errors.New("empty secret")
	}
	if e.Failures < 0 {
		return nil, fmt.Errorf("failures %d, want >= 0", e.Failures)
	}
	created, err := nanos(e.Created, "created")
	if err != nil {
		return nil, err
	}
	verified, err := optNanos(e.Verified, "verified")
	if err != nil {
		return nil, err
	}
	lockedUntil, err := optNanos(e.LockedUntil, "lockedUntil")
	if err != nil {
		return nil, err
	}
	return []any{e.Secret, created, verified, e.LastStep, e.Failures, lockedUntil, e.Version}, nil
}

// identityExists reports whether the identities table holds id.
func (t *readTx) identityExists(ctx context.Context, id string) (bool, error) {
	var n int
	if err := t.queryRow(ctx, `SELECT count(*) FROM identities WHERE id = ?`, id).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// PutTOTP implements store.Tx. Version 1 inserts, after checking that the
// identity exists (ErrNotFound if not); Version n > 1 replaces every column
// of the stored version n-1 in one statement. A stored enrollment (for
// Version 1), a stored version other than n-1 or no stored enrollment of an
// existing identity (for n > 1), and a Version below 1 are ErrConflict; a
// missing identity is ErrNotFound for any Version from 1. Invalid values
// (empty identity id or secret, negative Failures, unstorable times) are
// plain errors. Nothing is written on any error.
func (t *writeTx) PutTOTP(ctx context.Context, e *store.TOTPEnrollment) error {
	if e.Version < 1 {
		return fmt.Errorf("sqlite: put totp of identity %q: version %d: %w", e.IdentityID, e.Version, store.ErrConflict)
	}
	args, err := totpArgs(e)
	if err != nil {
		return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
	}
	if e.Version == 1 {
		ok, err := t.identityExists(ctx, e.IdentityID)
		if err != nil {
			return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
		}
		if !ok {
			return fmt.Errorf("sqlite: put totp of identity %q: no such identity: %w", e.IdentityID, store.ErrNotFound)
		}
		_, err = t.exec(ctx, `INSERT INTO totp (`+totpCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			append([]any{e.IdentityID}, args...)...)
		if isConflict(err) {
			return fmt.Errorf("sqlite: put totp of identity %q: version 1 but an enrollment exists: %w", e.IdentityID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
		}
		return nil
	}
	res, err := t.exec(ctx, `
		UPDATE totp SET secret = ?, created = ?, verified = ?, last_step = ?, failures = ?,
			locked_until = ?, version = ?
		WHERE identity_id = ? AND version = ?`,
		append(args, e.IdentityID, e.Version-1)...)
	if err != nil {
		return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
	} else if n == 1 {
		return nil
	}
	var stored int64
	err = t.queryRow(ctx, `SELECT version FROM totp WHERE identity_id = ?`, e.IdentityID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		ok, err := t.identityExists(ctx, e.IdentityID)
		if err != nil {
			return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
		}
		if !ok {
			return fmt.Errorf("sqlite: put totp of identity %q: no such identity: %w", e.IdentityID, store.ErrNotFound)
		}
		return fmt.Errorf("sqlite: put totp of identity %q: version %d but no enrollment is stored: %w", e.IdentityID, e.Version, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put totp of identity %q: %w", e.IdentityID, err)
	}
	return fmt.Errorf("sqlite: put totp of identity %q: stored version is %d, not %d: %w", e.IdentityID, stored, e.Version-1, store.ErrConflict)
}

// DeleteTOTP implements store.Tx; deleting an absent enrollment (or one of
// a missing identity) succeeds and changes nothing.
func (t *writeTx) DeleteTOTP(ctx context.Context, identityID string) error {
	if _, err := t.exec(ctx, `DELETE FROM totp WHERE identity_id = ?`, identityID); err != nil {
		return fmt.Errorf("sqlite: delete totp of identity %q: %w", identityID, err)
	}
	return nil
}
