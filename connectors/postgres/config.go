package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jmlgate/jmlgate/connectors"
)

// Defaults of NewConfig.
const (
	DefaultRolePrefix       = "jml_"
	DefaultMaxConns         = 4
	DefaultConnectTimeout   = 10 * time.Second
	DefaultLockTimeout      = 10 * time.Second
	DefaultStatementTimeout = 60 * time.Second

	maxRolePrefix       = 32
	maxMaxConns         = 100
	maxConnectTimeout   = 5 * time.Minute
	maxLockTimeout      = 10 * time.Minute
	maxStatementTimeout = time.Hour
)

// Config is the `connectors[i].config` section of a PostgreSQL target:
//
//	dsn: postgres://jmlgate:...@db.example.com:5432/app?sslmode=verify-full  # required; URL or key=value
//	role_prefix: jml_          # every role this connector creates starts with it
//	allowed_groups: [app_read, app_write]  # if set, the only entitlements Grant accepts
//	shared_accounts: [app_reporting]       # roles whose password RotateSecret may set
//	max_conns: 4
//	connect_timeout: 10s
//	lock_timeout: 10s          # a statement waiting longer for a lock fails (retryable)
//	statement_timeout: 60s     # a statement running longer fails (retryable)
//	insecure_tls: false        # never in production; logged at start-up
//
// dsn is a Secret: it never prints, logs or marshals, and no error message
// of this package contains it or the password it holds (nor a password pgx
// found in PGPASSWORD or a passfile). The role it names needs CREATEROLE;
// on PostgreSQL 16 and later also ADMIN OPTION on every group role it
// grants and every shared account (it has that on the roles it creates);
// for RevokeSessions, membership in pg_signal_backend. It need not be a
// superuser, and should not be.
//
// role_prefix is the connector's namespace: it manages only roles whose name
// starts with it and whose comment carries the jmlgate marker. It must be
// 1 to 32 bytes of [a-z0-9_], start with a letter or underscore, and not
// start with "pg_" (PostgreSQL reserves those names). Two connectors on one
// cluster need different prefixes.
//
// The dsn must protect its connection with TLS that verifies the server:
// for every host it names that is not loopback (127.0.0.0/8, ::1,
// localhost) or a Unix socket directory, sslmode must be verify-full or
// verify-ca (or require with sslrootcert, which libpq treats as
// verify-ca). A dsn without sslmode gets libpq's "prefer", which accepts
// any certificate and falls back to plaintext: it is refused, and so is
// sslmode=disable, allow or require, unless insecure_tls is true. The check
// applies to what pgx resolved, so PGSSLMODE and service files count.
//
// allowed_groups and shared_accounts hold role names exactly as PostgreSQL
// stores them (case matters).
//
// lock_timeout (1ms to 10m) and statement_timeout (1ms to 1h) are set on
// every transaction the connector runs (SET LOCAL, so they hold behind a
// transaction-pooling proxy such as PgBouncer): a DBA's open transaction
// holding a lock on a role makes a call fail Retryable (SQLSTATE 55P03 or
// 57014) instead of holding a delivery slot for ever. Keep lock_timeout
// below statement_timeout for the clearer error. RevokeSessions waits up to
// 5 s for each backend it terminates, within statement_timeout.
type Config struct {
	DSN              Secret   `yaml:"dsn"`
	RolePrefix       string   `yaml:"role_prefix"`
	AllowedGroups    []string `yaml:"allowed_groups"`
	SharedAccounts   []string `yaml:"shared_accounts"`
	MaxConns         int      `yaml:"max_conns"`
	ConnectTimeout   Duration `yaml:"connect_timeout"`
	LockTimeout      Duration `yaml:"lock_timeout"`
	StatementTimeout Duration `yaml:"statement_timeout"`
	// InsecureTLS accepts a dsn whose non-loopback hosts are reached
	// without a verified TLS connection (sslmode prefer, require, allow or
	// disable). Only an explicit true does; Open then logs a warning.
	InsecureTLS bool `yaml:"insecure_tls"`
}

// NewConfig returns a Config with the defaults filled in. It is the
// connectors.Factory of the "postgres" connector type.
func NewConfig() connectors.Config {
	return &Config{
		RolePrefix:       DefaultRolePrefix,
		MaxConns:         DefaultMaxConns,
		ConnectTimeout:   Duration(DefaultConnectTimeout),
		LockTimeout:      Duration(DefaultLockTimeout),
		StatementTimeout: Duration(DefaultStatementTimeout),
	}
}

var _ connectors.Factory = NewConfig

// Open validates every field, reporting all problems at once (each message
// starts with its yaml key), and builds the connector. It parses the DSN
// (pgx may read PGPASSWORD, a passfile or a service file, as libpq does)
// but opens no connection: the pool connects on first use, so a database
// that is down at start-up surfaces as retryable delivery errors. log may
// be nil. The returned *Conn holds a pool: call Close on shutdown.
func (c *Config) Open(name string, log *slog.Logger) (connectors.Connector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var poolConf *pgxpool.Config
	switch {
	case c.DSN == "":
		bad("dsn: required")
	case strings.IndexByte(string(c.DSN), 0) >= 0:
		bad("dsn: must not contain NUL bytes")
	default:
		var err error
		// pgx redacts passwords from parse errors on a best-effort basis
		// only (a malformed string has ambiguous boundaries), so none of
		// its message is repeated here.
		if poolConf, err = pgxpool.ParseConfig(string(c.DSN)); err != nil {
			poolConf = nil
			bad("dsn: cannot be parsed as a PostgreSQL URL or key=value connection string (details withheld: they could contain the password)")
		} else if !c.InsecureTLS {
			for _, host := range unverifiedHosts(&poolConf.ConnConfig.Config) {
				bad("dsn: host %q is not loopback and is not reached over verified TLS: set sslmode=verify-full (or verify-ca), or insecure_tls: true to accept that", host)
			}
		}
	}
	if err := checkPrefix(c.RolePrefix); err != nil {
		bad("role_prefix: %v", err)
	}
	for i, g := range c.AllowedGroups {
		if err := checkRoleName(g); err != nil {
			bad("allowed_groups[%d]: %v", i, err)
		} else if slices.Index(c.AllowedGroups, g) < i {
			bad("allowed_groups[%d]: %q is listed twice", i, g)
		}
	}
	for i, a := range c.SharedAccounts {
		switch err := checkRoleName(a); {
		case err != nil:
			bad("shared_accounts[%d]: %v", i, err)
		case slices.Index(c.SharedAccounts, a) < i:
			bad("shared_accounts[%d]: %q is listed twice", i, a)
		case c.RolePrefix != "" && strings.HasPrefix(a, c.RolePrefix):
			bad("shared_accounts[%d]: %q starts with role_prefix %q: that namespace holds personal accounts", i, a, c.RolePrefix)
		}
	}
	if c.MaxConns < 1 || c.MaxConns > maxMaxConns {
		bad("max_conns: must be between 1 and %d, got %d", maxMaxConns, c.MaxConns)
	}
	if d := time.Duration(c.ConnectTimeout); d < time.Millisecond || d > maxConnectTimeout {
		bad("connect_timeout: must be between 1ms and %v, got %v", maxConnectTimeout, d)
	}
	if d := time.Duration(c.LockTimeout); d < time.Millisecond || d > maxLockTimeout {
		bad("lock_timeout: must be between 1ms and %v, got %v", maxLockTimeout, d)
	}
	if d := time.Duration(c.StatementTimeout); d < time.Millisecond || d > maxStatementTimeout {
		bad("statement_timeout: must be between 1ms and %v, got %v", maxStatementTimeout, d)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	poolConf.MaxConns = int32(c.MaxConns)
	poolConf.MinConns = 0 // no connection before first use
	poolConf.MinIdleConns = 0
	cc := poolConf.ConnConfig
	cc.ConnectTimeout = time.Duration(c.ConnectTimeout)
	if _, set := cc.RuntimeParams["application_name"]; !set {
		cc.RuntimeParams["application_name"] = "jmlgate"
	}
	if c.InsecureTLS {
		log.Warn("postgres connector: TLS verification of the database server is not required (insecure_tls); do not use this in production",
			"connector", name, "hosts", hostList(&cc.Config))
	}
	// A context that ends mid-statement cuts the connection at once; pgx
	// then sends the server a cancel request as it closes it, so a backend
	// waiting on a catalog lock does not keep its transaction open.

	red := newRedactor(string(c.DSN), cc.Password)
	pool, err := pgxpool.NewWithConfig(context.Background(), poolConf)
	if err != nil {
		return nil, errors.New(red.apply("dsn: " + err.Error()))
	}
	conn := &Conn{
		name:             name,
		log:              log,
		pool:             pool,
		prefix:           c.RolePrefix,
		allowed:          setOf(c.AllowedGroups),
		shared:           setOf(c.SharedAccounts),
		redact:           red,
		pageSize:         listPage,
		hosts:            hostList(&cc.Config),
		database:         cc.Database,
		user:             cc.User,
		lockTimeout:      strconv.FormatInt(time.Duration(c.LockTimeout).Milliseconds(), 10),
		statementTimeout: strconv.FormatInt(time.Duration(c.StatementTimeout).Milliseconds(), 10),
	}
	return conn, nil
}

// unverifiedHosts returns the hosts (host:port) of cc, its HA hosts and
// sslmode fallbacks included, that are neither loopback nor a Unix socket
// and may be reached without TLS or with TLS that accepts any certificate.
// verify-full leaves InsecureSkipVerify false; verify-ca (and require with
// sslrootcert) sets it but checks the chain in VerifyPeerCertificate.
func unverifiedHosts(cc *pgconn.Config) []string {
	type target struct {
		host string
		port uint16
		tls  *tls.Config
	}
	targets := []target{{cc.Host, cc.Port, cc.TLSConfig}}
	for _, f := range cc.Fallbacks {
		targets = append(targets, target{f.Host, f.Port, f.TLSConfig})
	}
	var out []string
	for _, t := range targets {
		network, addr := pgconn.NetworkAddress(t.host, t.port)
		if network == "unix" || connectors.IsLoopback(t.host) {
			continue
		}
		if t.tls != nil && (!t.tls.InsecureSkipVerify || t.tls.VerifyPeerCertificate != nil) {
			continue
		}
		if !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// hostList is the distinct host:port (or socket path) cc connects to, in
// order of preference, for logs and String.
func hostList(cc *pgconn.Config) []string {
	_, addr := pgconn.NetworkAddress(cc.Host, cc.Port)
	out := []string{addr}
	for _, f := range cc.Fallbacks {
		if _, addr := pgconn.NetworkAddress(f.Host, f.Port); !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// checkPrefix accepts what keeps every derived role name an ordinary,
// unreserved lower-case identifier.
func checkPrefix(p string) error {
	switch {
	case p == "":
		return errors.New("required (it is the namespace of the roles this connector manages)")
	case len(p) > maxRolePrefix:
		return fmt.Errorf("must be at most %d bytes, got %d", maxRolePrefix, len(p))
	case strings.HasPrefix(p, "pg_"):
		return errors.New(`must not start with "pg_" (reserved by PostgreSQL)`)
	case p[0] >= '0' && p[0] <= '9':
		return errors.New("must start with a letter or underscore")
	}
	for i := 0; i < len(p); i++ {
		if !isNameByte(p[i]) {
			return fmt.Errorf("%q: only a-z, 0-9 and _ are allowed", p)
		}
	}
	return nil
}

// checkRoleName accepts a role name PostgreSQL stores as written: 1 to 63
// bytes of UTF-8 without NUL (longer names would be silently truncated).
func checkRoleName(n string) error {
	switch {
	case n == "":
		return errors.New("empty role name")
	case len(n) > maxIdentifier:
		return fmt.Errorf("role name of %d bytes: PostgreSQL allows at most %d", len(n), maxIdentifier)
	case !utf8.ValidString(n):
		return errors.New("role name is not valid UTF-8")
	case strings.IndexByte(n, 0) >= 0:
		return errors.New("role name contains a NUL byte")
	}
	return nil
}

// redactor removes the DSN and its password from error messages. pgx keeps
// passwords out of its own messages; this is the second line of defence
// (a server or a proxy could echo what it received).
type redactor struct{ secrets []string }

func newRedactor(dsn, password string) *redactor {
	r := &redactor{}
	userinfo := strings.TrimPrefix(url.UserPassword("u", password).String(), "u:")
	for _, s := range []string{dsn, password, url.QueryEscape(password), url.PathEscape(password), userinfo} {
		if s != "" && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	// Longest first, so the DSN goes as a whole before its password.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

func (r *redactor) apply(msg string) string {
	if r == nil {
		return msg
	}
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, Secret("x").String())
	}
	return msg
}

// Secret is a value that must not leak (see connectors.Secret).
type Secret = connectors.Secret

// Duration is a time.Duration written as a Go duration string ("10s");
// bare numbers are rejected.
type Duration = connectors.Duration
