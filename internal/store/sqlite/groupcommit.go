package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmlgate/jmlgate/internal/store"
)

// Group commit. SQLite has one writer, and with WAL and synchronous=NORMAL
// most of a small write transaction's cost is its COMMIT (writing the dirty
// pages to the WAL, then checkpointing). Update therefore hands its function
// to one writer goroutine, which runs every function waiting at that moment
// inside ONE transaction, each in its own SAVEPOINT, and commits once.
//
// What callers see is unchanged:
//   - a function that returns an error, panics, or whose context ends is
//     rolled back to its savepoint alone; the others in the batch go on;
//   - Update returns nil only after the shared COMMIT succeeded, so nothing
//     is acknowledged that is not durable; if the COMMIT (or anything that
//     leaves the shared transaction unusable) fails, every function of the
//     batch fails with that error;
//   - functions run one after another and see each other's committed-to-be
//     writes, exactly as serialised transactions would.

// maxBatch bounds how many functions share one transaction.
const maxBatch = 64

type writeReq struct {
	ctx      context.Context
	fn       func(store.Tx) error
	err      error
	panicked bool
	pval     any
	done     chan struct{}
}

var errClosed = errors.New("sqlite: store closed")

// writeLoop is the single writer. It exits when stop closes, failing
// whatever is still queued.
func (s *Store) writeLoop() {
	defer close(s.loopDone)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case <-s.stop:
			for {
				select {
				case r := <-s.writes:
					r.err = errClosed
					close(r.done)
				default:
					return
				}
			}
		case r := <-s.writes:
			batch = append(batch[:0], r)
		drain:
			for len(batch) < maxBatch {
				select {
				case r := <-s.writes:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			s.runBatch(batch)
		}
	}
}

// runBatch runs batch in one transaction and completes every request.
func (s *Store) runBatch(batch []*writeReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	// The transaction belongs to no single caller: one caller's
	// cancellation must not roll back the others.
	ctx := context.Background()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("sqlite: begin write: %w", err)
		}
		return
	}
	var applied []*writeReq
	// The audit head is read afresh for every batch: other processes (the
	// CLI creating a token) may have appended since the last one.
	bs := &batchState{}
	failAll := func(err error) {
		_ = tx.Rollback()
		for _, r := range batch {
			if r.err == nil && !r.panicked {
				r.err = err
			}
		}
	}
	// A batch of one needs no savepoint: its failure rolls back the
	// transaction itself (two statements saved on a quiet store).
	single := len(batch) == 1
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("sqlite: begin write: %w", err)
			continue
		}
		if !single {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
				failAll(fmt.Errorf("sqlite: savepoint: %w", err))
				return
			}
		}
		r.run(&writeTx{readTx{tx, s.wcache}, bs})
		if r.err == nil && !r.panicked {
			if err := r.ctx.Err(); err != nil {
				// The caller gave up while fn ran: do not commit its writes.
				r.err = fmt.Errorf("sqlite: commit: %w", err)
			}
		}
		if single {
			if r.err != nil || r.panicked {
				_ = tx.Rollback()
				return
			}
			applied = append(applied, r)
			break
		}
		if r.err != nil || r.panicked {
			bs.head = nil // the rolled-back function's records are gone
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				// SQLite may have rolled back the whole transaction (an
				// interrupted statement does): nothing in it can commit.
				failAll(fmt.Errorf("sqlite: rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
			failAll(fmt.Errorf("sqlite: release savepoint: %w", err))
			return
		}
		if r.err == nil && !r.panicked {
			applied = append(applied, r)
		}
	}
	if err := tx.Commit(); err != nil {
		for _, r := range applied {
			r.err = fmt.Errorf("sqlite: commit: %w", err)
		}
	}
}

// run calls fn, turning a panic into a value re-raised in the caller.
func (r *writeReq) run(tx store.Tx) {
	defer func() {
		if v := recover(); v != nil {
			r.panicked, r.pval = true, v
		}
	}()
	r.err = r.fn(tx)
}
