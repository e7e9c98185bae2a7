package postgres

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// caFile writes a self-signed CA certificate for sslrootcert.
func caFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSRequired: a DSN reaching a non-loopback host without verified TLS
// is a config error unless insecure_tls is set, which logs a warning.
func TestTLSRequired(t *testing.T) {
	t.Parallel()
	ca := caFile(t)
	remote := "postgres://jmlgate:" + pw + "@db.example.com:5432/app"
	cases := []struct {
		name     string
		dsn      string
		insecure bool
		bad      []string // hosts the error must name; nil: accepted
	}{
		{"remote without sslmode (prefer)", remote, false, []string{"db.example.com:5432"}},
		{"remote disable", remote + "?sslmode=disable", false, []string{"db.example.com:5432"}},
		{"remote allow", remote + "?sslmode=allow", false, []string{"db.example.com:5432"}},
		{"remote prefer", remote + "?sslmode=prefer", false, []string{"db.example.com:5432"}},
		{"remote require", remote + "?sslmode=require", false, []string{"db.example.com:5432"}},
		{"remote ssl=true", remote + "?ssl=true", false, []string{"db.example.com:5432"}},
		{"remote key=value without sslmode", "host=10.1.2.3 user=jmlgate password=" + pw + " dbname=app", false, []string{"10.1.2.3:5432"}},
		{"remote verify-full", remote + "?sslmode=verify-full", false, nil},
		{"remote verify-ca", remote + "?sslmode=verify-ca&sslrootcert=" + url.QueryEscape(ca), false, nil},
		{"remote require with sslrootcert (verify-ca)", remote + "?sslmode=require&sslrootcert=" + url.QueryEscape(ca), false, nil},
		{"remote key=value verify-full", "host=db.example.com user=jmlgate password=" + pw + " sslmode=verify-full", false, nil},
		{"multi-host, one remote in plaintext", "host=127.0.0.1,db2.example.com port=5432,5433 user=jmlgate password=" + pw + " sslmode=disable", false, []string{"db2.example.com:5433"}},
		{"multi-host verify-full", "host=db1.example.com,db2.example.com user=jmlgate password=" + pw + " sslmode=verify-full", false, nil},
		{"127.0.0.1 disable", "postgres://jmlgate:" + pw + "@127.0.0.1:5432/app?sslmode=disable", false, nil},
		{"127.0.0.2 without sslmode", "postgres://jmlgate:" + pw + "@127.0.0.2/app", false, nil},
		{"::1 disable", "postgres://jmlgate:" + pw + "@[::1]:5432/app?sslmode=disable", false, nil},
		{"localhost without sslmode", "postgres://jmlgate:" + pw + "@localhost/app", false, nil},
		{"unix socket", "host=/var/run/postgresql user=jmlgate password=" + pw + " sslmode=disable", false, nil},
		{"insecure_tls, remote disable", remote + "?sslmode=disable", true, nil},
		{"insecure_tls, remote prefer", remote, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewConfig().(*Config)
			c.DSN = Secret(tc.dsn)
			c.InsecureTLS = tc.insecure
			var logged bytes.Buffer
			conn, err := c.Open("pg", slog.New(slog.NewTextHandler(&logged, nil)))
			if err == nil {
				conn.(*Conn).Close()
			}
			if tc.bad == nil && err != nil {
				t.Fatalf("Open: %v", err)
			}
			if tc.bad != nil {
				if err == nil {
					t.Fatal("Open accepted a DSN without verified TLS to a remote host")
				}
				msg := err.Error()
				lines := strings.Split(msg, "\n")
				if len(lines) != len(tc.bad) {
					t.Errorf("%d error lines, want %d: %q", len(lines), len(tc.bad), msg)
				}
				for i, host := range tc.bad {
					if i < len(lines) && (!strings.HasPrefix(lines[i], "dsn: ") || !strings.Contains(lines[i], host) || !strings.Contains(lines[i], "insecure_tls")) {
						t.Errorf("error line %q: want it to start with dsn:, name %s and insecure_tls", lines[i], host)
					}
				}
				if strings.Contains(msg, pw) || strings.Contains(msg, tc.dsn) || strings.Contains(msg, "jmlgate:") {
					t.Errorf("error shows the DSN or password: %q", msg)
				}
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "insecure_tls")
			if warned != tc.insecure {
				t.Errorf("warning logged = %v, want %v: %s", warned, tc.insecure, logged.String())
			}
			if strings.Contains(logged.String(), pw) {
				t.Errorf("log shows the password: %s", logged.String())
			}
		})
	}
}

// TestConnDoesNotPrintSecrets: however a *Conn is printed or logged, the
// DSN and password stay out, and what is shown identifies the target.
func TestConnDoesNotPrintSecrets(t *testing.T) {
	t.Parallel()
	dsn := "postgres://jmlgate:" + pw + "@db.example.com:6432/appdb?sslmode=verify-full"
	cfg := NewConfig().(*Config)
	cfg.DSN = Secret(dsn)
	cfg.RolePrefix = "acme_"
	opened, err := cfg.Open("pg-prod", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := opened.(*Conn)
	defer c.Close()
	holder := struct{ Conn connectors.Connector }{c}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("started", "conn", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("started", "conn", c)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%s": fmt.Sprintf("%s", c), "%q": fmt.Sprintf("%q", c), "String": c.String(),
		"%+v in a struct": fmt.Sprintf("%+v", holder), "%#v in a struct": fmt.Sprintf("%#v", holder),
		"slog text": text.String(), "slog json": js.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, pw) || strings.Contains(out, "Hunter2") || strings.Contains(out, dsn) {
			t.Errorf("%s shows the password or DSN: %s", how, out)
		}
		for _, want := range []string{"pg-prod", "acme_", "db.example.com:6432", "appdb", "jmlgate"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s = %s: lacks %q", how, out, want)
			}
		}
		if strings.Contains(out, "0x") {
			t.Errorf("%s = %s: prints the struct's pointers", how, out)
		}
	}
}

// withParam returns dsn with key set to value (user as the URL's user).
func withParam(t *testing.T, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if key == "user" {
			u.User = url.User(value)
		} else {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

// TestGrantEscalation: Grant refuses every group through which an account
// would gain more than the group's own object privileges, however deep the
// path, and grants the harmless group next to them.
func TestGrantEscalation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := func(s string) string { return e.stem + s }
	for _, sql := range []string{
		"CREATE ROLE " + r("cr") + " NOLOGIN CREATEROLE",
		"CREATE ROLE " + r("viacr") + " NOLOGIN IN ROLE " + r("cr"),
		"CREATE ROLE " + r("deep") + " NOLOGIN IN ROLE " + r("viacr"),
		"CREATE ROLE " + r("brls") + " NOLOGIN BYPASSRLS",
		"CREATE ROLE " + r("viabrls") + " NOLOGIN IN ROLE " + r("brls"),
		"CREATE ROLE " + r("repl") + " NOLOGIN REPLICATION",
		"CREATE ROLE " + r("viarepl") + " NOLOGIN IN ROLE " + r("repl"),
		"CREATE ROLE " + r("human") + " LOGIN",
		"CREATE ROLE " + r("viahuman") + " NOLOGIN IN ROLE " + r("human"),
		"CREATE ROLE " + r("stats") + " NOLOGIN IN ROLE pg_read_all_stats",
		"CREATE ROLE " + r("viastats") + " NOLOGIN IN ROLE " + r("stats"),
		"CREATE ROLE " + r("files") + " NOLOGIN IN ROLE pg_write_server_files",
		"CREATE ROLE " + r("plain") + " NOLOGIN IN ROLE " + e.groups[0],
		// The connector's own role for the current_user case: a
		// CREATEROLE login role it connects as.
		"CREATE ROLE " + r("svc") + " LOGIN CREATEROLE",
		"CREATE ROLE " + r("viasvc") + " NOLOGIN IN ROLE " + r("svc"),
	} {
		adminExec(t, sql)
	}
	open, _ := e.open(t, nil)
	listed, _ := e.open(t, func(c *Config) {
		c.AllowedGroups = []string{r("stats"), "pg_read_all_stats", r("viastats"), r("cr"), r("human"), r("files")}
	})
	asSvc, _ := e.open(t, func(c *Config) { c.DSN = Secret(withParam(t, string(c.DSN), "user", r("svc"))) })
	ctx := tctx(t)
	ref, err := open.EnsureAccount(ctx, account(1, "grantee"))
	must(t, err)

	cases := []struct {
		name  string
		conn  *Conn
		group string
		why   string // in the refusal; "": granted
	}{
		{"harmless group", open, r("plain"), ""},
		{"CREATEROLE", open, r("cr"), "has CREATEROLE"},
		{"member of CREATEROLE", open, r("viacr"), fmt.Sprintf("leads to %q, which has CREATEROLE", r("cr"))},
		{"two steps from CREATEROLE", open, r("deep"), fmt.Sprintf("leads to %q, which has CREATEROLE", r("cr"))},
		{"listed CREATEROLE", listed, r("cr"), "has CREATEROLE"},
		{"BYPASSRLS", open, r("brls"), "has BYPASSRLS"},
		{"member of BYPASSRLS", open, r("viabrls"), "has BYPASSRLS"},
		{"REPLICATION", open, r("repl"), "has REPLICATION"},
		{"member of REPLICATION", open, r("viarepl"), "has REPLICATION"},
		{"a human's login role", open, r("human"), "can log in"},
		{"listed login role", listed, r("human"), "can log in"},
		{"member of a login role", open, r("viahuman"), fmt.Sprintf("leads to %q, which can log in", r("human"))},
		{"member of unlisted pg_read_all_stats", open, r("stats"), `leads to "pg_read_all_stats", which is a PostgreSQL predefined role`},
		{"listed group, pg_* not listed", listed, r("files"), `leads to "pg_write_server_files", which is a PostgreSQL predefined role`},
		{"two steps from pg_read_all_stats", open, r("viastats"), `"pg_read_all_stats"`},
		{"listed group and listed pg_*", listed, r("stats"), ""},
		{"listed, two steps from listed pg_*", listed, r("viastats"), ""},
		{"the connector's own role", asSvc, r("svc"), "is the connector's own role"},
		{"member of the connector's own role", asSvc, r("viasvc"), fmt.Sprintf("leads to %q, which is the connector's own role", r("svc"))},
		{"superuser, as before", open, "postgres", "is a superuser"},
	}
	var granted []string
	for _, tc := range cases {
		err := tc.conn.Grant(ctx, ref, tc.group)
		if tc.why == "" {
			if err != nil {
				t.Errorf("%s: Grant %q: %v", tc.name, tc.group, err)
			}
			granted = append(granted, tc.group)
			continue
		}
		wantClass(t, tc.name, err, connectors.Permanent)
		if err != nil && !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: refusal %q does not say %q", tc.name, err, tc.why)
		}
	}
	slices.Sort(granted)
	if st, _ := inspect(t, ref); !slices.Equal(st.Entitlements, granted) {
		t.Errorf("memberships = %q, want exactly %q", st.Entitlements, granted)
	}
}

// TestLockAndStatementTimeout: a DBA's open transaction holding a lock on
// the role makes DisableAccount fail Retryable with the server's timeout
// error, well before the caller's deadline, and changes nothing.
func TestLockAndStatementTimeout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		lock, stm time.Duration
		code      string
	}{
		{"lock_timeout", 200 * time.Millisecond, time.Minute, "55P03"},
		{"statement_timeout", 10 * time.Minute, 300 * time.Millisecond, "57014"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c, _ := e.open(t, func(c *Config) {
				c.LockTimeout, c.StatementTimeout = Duration(tc.lock), Duration(tc.stm)
			})
			ctx := tctx(t)
			ref, err := c.EnsureAccount(ctx, account(1, "locked"))
			must(t, err)
			tx, err := adminPool(t).Begin(ctx)
			must(t, err)
			defer tx.Rollback(context.Background())
			_, err = tx.Exec(ctx, "ALTER ROLE "+ident(ref)+" CONNECTION LIMIT 5")
			must(t, err)

			// The caller's deadline is far off: only the server's
			// timeout can end the wait in time.
			callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err = c.DisableAccount(callCtx, ref)
			if errors.Is(err, context.DeadlineExceeded) || callCtx.Err() != nil {
				t.Fatalf("DisableAccount waited on the lock until the caller's deadline: %v", err)
			}
			wantClass(t, "DisableAccount behind a lock", err, connectors.Retryable)
			if got := sqlState(err); got != tc.code {
				t.Errorf("SQLSTATE %q (%v), want %s", got, err, tc.code)
			}
			must(t, tx.Rollback(ctx))
			if st, _ := inspect(t, ref); !st.Enabled {
				t.Error("the failed DisableAccount took effect")
			}
			must(t, c.DisableAccount(ctx, ref))
		})
	}
}

// TestTransientServerErrorsRetryable: a DSN that reaches a server in
// read-only mode (a standby after a failover) and a login the server
// rejects (28000 here; an LDAP outage gives 28P01) are Retryable.
func TestTransientServerErrorsRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, key, value, code string
	}{
		{"read-only server", "default_transaction_read_only", "on", "25006"},
		{"authentication rejected", "user", e.stem + "nobody", "28000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := e.open(t, func(c *Config) { c.DSN = Secret(withParam(t, string(c.DSN), tc.key, tc.value)) })
			_, err := c.EnsureAccount(tctx(t), account(1, "standby"))
			wantClass(t, "EnsureAccount", err, connectors.Retryable)
			if got := sqlState(err); got != tc.code {
				t.Errorf("SQLSTATE %q (%v), want %s", got, err, tc.code)
			}
		})
	}
}
