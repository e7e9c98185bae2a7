package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

// setJTIPurgeBatch is how many expired set_jti rows one RecordSETJTI
// deletes at most. Each call adds at most one row and removes up to this
// many expired ones, so the table shrinks back to the live replay window
// however long the gateway ran, without a background job.
const setJTIPurgeBatch = 8

// RecordSETJTI implements store.Tx with one upsert that replaces the pair
// only when its stored expiry is before the wall clock's now (so a live pair
// is ErrConflict and is left as it was), then one DELETE of at most
// setJTIPurgeBatch expired rows found through set_jti_expires. Invalid
// arguments are plain errors and write nothing.
func (t *writeTx) RecordSETJTI(ctx context.Context, issuer, jti string, expires time.Time) error {
	if issuer == "" {
		return errors.New("sqlite: record SET jti: empty issuer")
	}
	if jti == "" {
		return fmt.Errorf("sqlite: record SET jti from %q: empty jti", issuer)
	}
	if expires.IsZero() {
		return fmt.Errorf("sqlite: record SET jti %q from %q: zero expires", jti, issuer)
	}
	exp, err := nanos(expires, "expires")
	if err != nil {
		return fmt.Errorf("sqlite: record SET jti %q from %q: %w", jti, issuer, err)
	}
	now := time.Now().UnixNano()
	res, err := t.exec(ctx, `
		INSERT INTO set_jti (issuer, jti, expires) VALUES (?, ?, ?)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires = excluded.expires WHERE set_jti.expires < ?`,
		issuer, jti, exp, now)
	if err != nil {
		return fmt.Errorf("sqlite: record SET jti %q from %q: %w", jti, issuer, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: record SET jti %q from %q: %w", jti, issuer, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: record SET jti %q from %q: already recorded (a replay): %w", jti, issuer, store.ErrConflict)
	}
	if _, err := t.exec(ctx, `
		DELETE FROM set_jti WHERE rowid IN
			(SELECT rowid FROM set_jti WHERE expires < ? ORDER BY expires LIMIT 8)`, now); err != nil {
		return fmt.Errorf("sqlite: record SET jti %q from %q: purge expired: %w", jti, issuer, err)
	}
	return nil
}
