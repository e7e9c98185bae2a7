package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps one prepared *sql.Stmt per query text and pool, so SQLite
// parses and plans each statement once per connection instead of on every
// call (parsing was a third of a lookup's CPU).
//
// A parent statement can only be prepared with a free connection, and a
// transaction holds one: preparing inside a transaction on the one-connection
// writer pool would wait for itself. So a miss runs the query unprepared and
// hands the text to a background goroutine that holds no connection and
// prepares it when one is free. Transactions then bind the parent with
// Tx.StmtContext, which database/sql prepares at most once per connection.
type stmtCache struct {
	db      *sql.DB
	mu      sync.RWMutex
	m       map[string]*sql.Stmt
	pending map[string]bool
	work    chan string
	cancel  context.CancelFunc
	done    chan struct{}
}

// maxCachedStatements bounds the cache; jmlgate's statements come from a
// fixed set, so the bound only guards against a future dynamic query.
const maxCachedStatements = 256

func newStmtCache(db *sql.DB) *stmtCache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &stmtCache{
		db: db, m: map[string]*sql.Stmt{}, pending: map[string]bool{},
		work: make(chan string, 64), cancel: cancel, done: make(chan struct{}),
	}
	go c.run(ctx)
	return c
}

func (c *stmtCache) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-c.work:
			st, err := c.db.PrepareContext(ctx, q)
			c.mu.Lock()
			delete(c.pending, q)
			if err == nil {
				// A failure (e.g. a table not migrated yet) is not cached:
				// the next miss asks again.
				c.m[q] = st
			}
			c.mu.Unlock()
		}
	}
}

// get returns the prepared statement for q, or nil after scheduling its
// preparation.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[q] == nil && !c.pending[q] && len(c.m)+len(c.pending) < maxCachedStatements {
		select {
		case c.work <- q:
			c.pending[q] = true
		default: // the preparer is busy; a later miss asks again
		}
	}
	return nil
}

// close stops the preparer and closes every cached statement. Call before
// closing the pool.
func (c *stmtCache) close() {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

// stmt binds the cached statement for q to tx, or returns nil on a miss.
func (c *stmtCache) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st := c.get(q); st != nil {
		return tx.StmtContext(ctx, st)
	}
	return nil
}

// query, queryRow and exec run q in tx, prepared when the cache has it.
//
// ctx is checked when a statement starts, and the statement then runs
// without it. Statements here are short, and passing a cancellable context
// down would cost two goroutines per statement (database/sql's and the
// driver's interrupt watchers); worse, SQLite answers an interrupted write
// by rolling back the whole transaction, which with group commit would undo
// other callers' work. Long reads (ScanResources) check ctx between batches.
func (t *readTx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if st := t.cache.stmt(ctx, t.tx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *readTx) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	ctx = context.WithoutCancel(ctx)
	if st := t.cache.stmt(ctx, t.tx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t *readTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if st := t.cache.stmt(ctx, t.tx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

// errRow is a row whose Scan reports why the query never ran.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
