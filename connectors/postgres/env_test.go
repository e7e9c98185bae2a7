package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jmlgate/jmlgate/connectors"
)

// envDSN names the variable that points the tests at a PostgreSQL server
// on which the DSN's role is a superuser (it creates and drops roles).
const envDSN = "JMLGATE_TEST_POSTGRES"

var admin struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if admin.pool != nil {
		admin.pool.Close()
	}
	os.Exit(code)
}

// testDSN returns the DSN of the test server, or skips.
func testDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(envDSN)
	if dsn == "" {
		t.Skip(envDSN + " is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): skipping tests against a real PostgreSQL")
	}
	return dsn
}

// adminPool is a superuser pool, independent of any connector, that the
// tests use to set up, inspect and clean up.
func adminPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := testDSN(t)
	admin.once.Do(func() {
		conf, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			admin.err = err
			return
		}
		conf.MaxConns = 6
		admin.pool, admin.err = pgxpool.NewWithConfig(context.Background(), conf)
	})
	if admin.err != nil {
		t.Fatalf("admin pool: %v", admin.err)
	}
	return admin.pool
}

func tctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func adminExec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := adminPool(t).Exec(tctx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// env is one test's namespace on the shared server: every role it or the
// connector under test creates starts with stem, and t.Cleanup drops them.
type env struct {
	stem   string // "t<8 hex>"
	prefix string // stem + "_": the connector's role_prefix
	groups []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := adminPool(t)
	b := make([]byte, 4)
	rand.Read(b)
	e := &env{stem: "t" + hex.EncodeToString(b)}
	e.prefix = e.stem + "_"
	t.Cleanup(func() { e.dropAll(t, pool) })
	for _, g := range []string{"read", "write"} {
		name := e.stem + "g" + g
		adminExec(t, "CREATE ROLE "+ident(name)+" NOLOGIN")
		e.groups = append(e.groups, name)
	}
	return e
}

// dropAll drops every role whose name starts with the stem, after ending
// their sessions, and checks none is left.
func (e *env) dropAll(t *testing.T, pool *pgxpool.Pool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE starts_with(usename, $1)`, e.stem)
	if err != nil {
		t.Errorf("cleanup: terminating sessions: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)`, e.stem)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, n := range names {
		if _, err := pool.Exec(ctx, "DROP ROLE IF EXISTS "+ident(n)); err != nil {
			t.Errorf("cleanup: DROP ROLE %s: %v", n, err)
		}
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)`, e.stem).Scan(&left); err != nil || left != 0 {
		t.Errorf("cleanup left %d roles starting with %s (err %v)", left, e.stem, err)
	}
}

// open builds a connector in e's namespace, talking to the server through
// a proxy (returned, for Hang and recording). mod adjusts the config.
func (e *env) open(t *testing.T, mod func(*Config)) (*Conn, *proxy) {
	t.Helper()
	dsn := testDSN(t)
	p := startProxy(t, serverAddr(t, dsn))
	conf := NewConfig().(*Config)
	conf.DSN = Secret(dsnVia(t, dsn, p.addr()))
	conf.RolePrefix = e.prefix
	conf.MaxConns = 3
	if mod != nil {
		mod(conf)
	}
	c, err := conf.Open("pg-test", nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(c.(*Conn).Close)
	return c.(*Conn), p
}

// inspect reads role ref straight from the catalogs, parsing the comment
// itself rather than through the connector.
func inspect(t *testing.T, ref string) (st connectors.AccountState, found bool) {
	t.Helper()
	var comment string
	err := adminPool(t).QueryRow(tctx(t), `SELECT r.rolcanlogin, coalesce(shobj_description(r.oid, 'pg_authid'), ''),
			array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid ORDER BY 1)
		FROM pg_roles r WHERE r.rolname = $1`, ref).Scan(&st.Enabled, &comment, &st.Entitlements)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, false
	}
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	st.Ref = ref
	lines := strings.SplitN(comment, "\n", 2)
	st.IdentityID = strings.TrimPrefix(lines[0], "jmlgate:")
	if len(lines) == 2 {
		st.UserName = strings.TrimPrefix(lines[1], "userName=")
	}
	return st, true
}

// roleComment returns the comment of a role ("" for none).
func roleComment(t *testing.T, name string) string {
	t.Helper()
	var c string
	err := adminPool(t).QueryRow(tctx(t), `SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1`, name).Scan(&c)
	if err != nil {
		t.Fatalf("comment of %s: %v", name, err)
	}
	return c
}

func serverAddr(t *testing.T, dsn string) string {
	t.Helper()
	conf, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s: %v", envDSN, err)
	}
	return net.JoinHostPort(conf.Host, strconv.Itoa(int(conf.Port)))
}

// dsnVia rewrites dsn to connect to addr instead.
func dsnVia(t *testing.T, dsn, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", envDSN, err)
		}
		u.Host = addr
		q := u.Query()
		q.Del("host")
		q.Del("port")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " host=" + host + " port=" + port // later keywords win
}

// proxy is a TCP relay between a connector and the server: a network
// partition on demand (hang) and a recording of what the client sent.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	hung  bool
	shut  bool
	sent  bytes.Buffer
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.shut {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(u, c, true)
		go p.pipe(c, u, false)
	}
}

func (p *proxy) pipe(dst, src net.Conn, record bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.hung {
				p.cond.Wait()
			}
			if record {
				p.sent.Write(buf[:n])
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hang holds every byte in both directions until release is called.
func (p *proxy) hang() (release func()) {
	p.mu.Lock()
	p.hung = true
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.hung = false
			p.cond.Broadcast()
			p.mu.Unlock()
		})
	}
}

// clientBytes returns everything the client has sent so far.
func (p *proxy) clientBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.sent.Bytes())
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.shut = true
	p.hung = false
	p.cond.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}
