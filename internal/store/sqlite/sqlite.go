// Package sqlite is the embedded store engine: one SQLite database file in
// WAL mode, reached through modernc.org/sqlite (pure Go, no cgo).
//
// A Store holds two connection pools on the same file. Writes go through a
// pool of exactly one connection whose transactions start with BEGIN
// IMMEDIATE, so writers queue in Go (honouring their context) instead of
// failing with SQLITE_BUSY. Reads go through a pool of read-only
// (query_only) connections; WAL lets them read a committed snapshot while a
// write is in progress.
//
// The schema is managed by goose with the SQL files embedded from
// migrations/. Open never migrates: the CLI (or a test) calls Migrate, and
// Ready reports a database whose schema is behind.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/jmlgate/jmlgate/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is goose's bookkeeping table.
const versionTable = "goose_db_version"

// busyTimeoutMS bounds how long a connection waits for a lock held by another
// process on the same file (this process's writers never contend: they share
// one connection).
const busyTimeoutMS = 10000

// Option configures Open.
type Option func(*config)

type config struct {
	logger *slog.Logger
}

// WithLogger sets the logger that reports applied migrations. The default
// discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// Page cache per connection. SQLite's default (2 MiB) is smaller than the
// name index alone at 100,000 users, so every lookup re-read index pages
// with pread. These sizes hold the indexes' upper levels and most of the
// name index at that size, and bound all caches at 8 + 4×4 MiB: the peak
// RSS target (150 MiB at 100,000 users) is measured with them.
const (
	writerCacheKiB = 8 << 10
	readerCacheKiB = 4 << 10
)

// walCheckpointPages is the WAL size (in 4 KiB pages, about 16 MiB) that
// triggers a checkpoint. Every write rewrites a few hot pages (index roots,
// the counts row, the audit tail); checkpointing less often copies each of
// them to the database once per interval instead of many times, which took
// a third of the commit cost at SQLite's default of 1,000 pages. Larger
// intervals make each checkpoint (run by the committing writer) stall
// writes for longer: 10,000 pages put create p99 above 100 ms.
const walCheckpointPages = 4000

// Store is a store.Store backed by one SQLite file. It is safe for
// concurrent use.
type Store struct {
	path     string
	log      *slog.Logger
	writer   *sql.DB // exactly one connection, BEGIN IMMEDIATE
	reader   *sql.DB // query_only connections
	provider *goose.Provider
	versions database.Store
	// prepared statements per pool
	wcache, rcache *stmtCache
	// group commit: Update sends to writes, writeLoop runs batches
	writes   chan *writeReq
	stop     chan struct{}
	loopDone chan struct{}
	stopOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and checks that
// it answers. It does not apply migrations: call Migrate. path must be a plain
// file name; ":memory:", "file:" URIs and names holding '?' are rejected
// because the writer and the readers must share one file.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case path == "":
		return nil, errors.New("sqlite: open: empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path", path)
	case strings.ContainsRune(path, '?'):
		return nil, fmt.Errorf("sqlite: open %q: path must not contain '?'", path)
	}

	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", busyTimeoutMS)
	writer, err := sql.Open("sqlite", path+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"+
		fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=wal_autocheckpoint(%d)&_pragma=temp_store(memory)", writerCacheKiB, walCheckpointPages))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The writer connection switches the file to WAL; open it before any
	// reader so readers never see a rollback-journal database.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}

	reader, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1"+fmt.Sprintf("&_pragma=cache_size(-%d)", readerCacheKiB))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)
	if err := reader.PingContext(ctx); err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}

	s := &Store{
		log:  cfg.logger,
		path: path, writer: writer, reader: reader, wcache: newStmtCache(writer), rcache: newStmtCache(reader),
		writes: make(chan *writeReq), stop: make(chan struct{}), loopDone: make(chan struct{}),
	}
	go s.writeLoop()
	if s.provider, s.versions, err = newProvider(writer, cfg.logger); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	return s, nil
}

func newProvider(db *sql.DB, logger *slog.Logger) (*goose.Provider, database.Store, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(versionTable),
		goose.WithVerbose(false), // Migrate logs one line per migration
		goose.WithSlog(logger),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	versions, err := database.NewStore(database.DialectSQLite3, versionTable)
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, versions, nil
}

// Migrate applies every pending migration, each in its own transaction on
// the writer connection (so it waits for running writers). Applying none is
// not an error.
func (s *Store) Migrate(ctx context.Context) error {
	results, err := s.provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate %q: %w", s.path, err)
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "store: migration applied", "migration", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Ready returns nil when a reader connection answers and every embedded
// migration is recorded as applied. It never writes (unlike goose's
// HasPending, which creates the version table).
func (s *Store) Ready(ctx context.Context) error {
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ready: %w", err)
	}
	applied, err := s.versions.ListMigrations(ctx, s.reader)
	if err != nil {
		return fmt.Errorf("sqlite: ready: schema not migrated: %w", err)
	}
	have := make(map[int64]bool, len(applied))
	for _, m := range applied {
		have[m.Version] = true
	}
	for _, src := range s.provider.ListSources() {
		if !have[src.Version] {
			return fmt.Errorf("sqlite: ready: migration %d is not applied", src.Version)
		}
	}
	return nil
}

// Update runs fn on the single writer connection, in its own SAVEPOINT of a
// BEGIN IMMEDIATE transaction that concurrent Updates share (group commit,
// see groupcommit.go). fn's writes commit if it returns nil; if it returns
// an error, panics, or ctx ends first, everything fn wrote is rolled back
// (a panic is re-raised in the caller after the rollback). Update returns
// nil only once the COMMIT succeeded. fn's error is returned unchanged; a
// failure to begin or commit is wrapped, e.g. with context.Canceled. fn may
// call View (it sees the state before this transaction) but must not call
// Update, which would wait for fn forever.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: begin write: %w", err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case s.writes <- r:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: begin write: %w", ctx.Err())
	case <-s.stop:
		return errClosed
	}
	<-r.done // fn may be running: wait for its outcome even if ctx ends
	if r.panicked {
		panic(r.pval)
	}
	return r.err
}

// View runs fn in a read transaction on a reader connection. The snapshot is
// taken at fn's first read and holds until fn returns; writes committed after
// that are not seen, and uncommitted writes never are. fn's error is returned
// unchanged.
func (s *Store) View(ctx context.Context, fn func(store.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	// Not bound to ctx: statements check it themselves (see readTx.query).
	tx, err := s.reader.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a read transaction has nothing to keep
	return fn(&readTx{tx, s.rcache})
}

// Lookup implements store.Store on the reader pool.
func (s *Store) Lookup(ctx context.Context, q store.ListQuery) ([]*store.Resource, error) {
	if q.Limit >= 0 || q.Offset != 0 {
		return nil, fmt.Errorf("sqlite: lookup %s: needs Limit < 0 and Offset 0 (one statement); use View", q.Type)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := planList(q)
	if err != nil {
		return nil, err
	}
	query := p.pageSQL(q)
	ctx = context.WithoutCancel(ctx) // see readTx.query
	var rows *sql.Rows
	if st := s.rcache.get(query); st != nil {
		rows, err = st.QueryContext(ctx, p.args...)
	} else {
		rows, err = s.reader.QueryContext(ctx, query, p.args...)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: lookup %s: %w", q.Type, err)
	}
	out, err := collectResources(rows, q.WithGroups)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lookup %s: %w", q.Type, err)
	}
	return out, nil
}

// Close closes both connection pools. Transactions still running fail.
func (s *Store) Close() error {
	// s.provider.Close would only close s.writer again.
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.loopDone
	s.rcache.close()
	s.wcache.close()
	if err := errors.Join(s.reader.Close(), s.writer.Close()); err != nil {
		return fmt.Errorf("sqlite: close %q: %w", s.path, err)
	}
	return nil
}
