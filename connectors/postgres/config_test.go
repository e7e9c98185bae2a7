package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/jmlgate/jmlgate/connectors"
)

// pw is the password in every DSN of these tests: it must never show.
const pw = "Hunter2-s3cr3t"

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	good := func() *Config {
		c := NewConfig().(*Config)
		c.DSN = Secret("postgres://jmlgate:" + pw + "@db.example.com:5432/app?sslmode=verify-full")
		return c
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error, each a line
	}{
		{"defaults with a dsn", func(*Config) {}, nil},
		{"key=value dsn", func(c *Config) {
			c.DSN = Secret("host=db user=jmlgate password=" + pw + " dbname=app sslmode=verify-full")
		}, nil},
		{"allowed and shared", func(c *Config) {
			c.AllowedGroups = []string{"app_read", "pg_read_all_data", "Mixed Case"}
			c.SharedAccounts = []string{"app_reporting"}
		}, nil},
		{"missing dsn", func(c *Config) { c.DSN = "" }, []string{"dsn: required"}},
		{"unparsable url dsn", func(c *Config) { c.DSN = Secret("postgres://jmlgate:" + pw + "@db:notaport/app") }, []string{"dsn: cannot be parsed"}},
		{"unparsable broken userinfo", func(c *Config) { c.DSN = Secret("postgres://jmlgate:" + pw + ":x@db:5432:5/app") }, []string{"dsn: cannot be parsed"}},
		{"unparsable key=value dsn", func(c *Config) { c.DSN = Secret("host=db password='" + pw) }, []string{"dsn: cannot be parsed"}},
		{"NUL in dsn", func(c *Config) { c.DSN = Secret("host=db password=" + pw + "\x00") }, []string{"dsn: must not contain NUL"}},
		{"empty prefix", func(c *Config) { c.RolePrefix = "" }, []string{"role_prefix: required"}},
		{"pg_ prefix", func(c *Config) { c.RolePrefix = "pg_jml_" }, []string{`role_prefix: must not start with "pg_"`}},
		{"upper-case prefix", func(c *Config) { c.RolePrefix = "JML_" }, []string{`role_prefix: "JML_": only a-z, 0-9 and _`}},
		{"quote in prefix", func(c *Config) { c.RolePrefix = `j"_` }, []string{"role_prefix:"}},
		{"digit-first prefix", func(c *Config) { c.RolePrefix = "1jml_" }, []string{"role_prefix: must start with a letter"}},
		{"long prefix", func(c *Config) { c.RolePrefix = strings.Repeat("j", 33) }, []string{"role_prefix: must be at most 32 bytes"}},
		{"bad groups", func(c *Config) { c.AllowedGroups = []string{"ok", "", strings.Repeat("g", 64), "nul\x00", "ok"} }, []string{
			"allowed_groups[1]: empty role name", "allowed_groups[2]: role name of 64 bytes", "allowed_groups[3]: role name contains a NUL", `allowed_groups[4]: "ok" is listed twice`,
		}},
		{"bad shared accounts", func(c *Config) { c.SharedAccounts = []string{"jml_alice", "\xff", "app", "app"} }, []string{
			`shared_accounts[0]: "jml_alice" starts with role_prefix`, "shared_accounts[1]: role name is not valid UTF-8", `shared_accounts[3]: "app" is listed twice`,
		}},
		{"max_conns zero", func(c *Config) { c.MaxConns = 0 }, []string{"max_conns: must be between 1 and 100, got 0"}},
		{"max_conns huge", func(c *Config) { c.MaxConns = 1000 }, []string{"max_conns: must be between 1 and 100"}},
		{"connect_timeout zero", func(c *Config) { c.ConnectTimeout = 0 }, []string{"connect_timeout: must be between 1ms and 5m0s, got 0s"}},
		{"connect_timeout huge", func(c *Config) { c.ConnectTimeout = Duration(time.Hour) }, []string{"connect_timeout:"}},
		{"lock_timeout zero", func(c *Config) { c.LockTimeout = 0 }, []string{"lock_timeout: must be between 1ms and 10m0s, got 0s"}},
		{"lock_timeout huge", func(c *Config) { c.LockTimeout = Duration(time.Hour) }, []string{"lock_timeout: must be between 1ms and 10m0s, got 1h0m0s"}},
		{"statement_timeout negative", func(c *Config) { c.StatementTimeout = Duration(-time.Second) }, []string{"statement_timeout: must be between 1ms and 1h0m0s, got -1s"}},
		{"statement_timeout huge", func(c *Config) { c.StatementTimeout = Duration(2 * time.Hour) }, []string{"statement_timeout: must be between 1ms and 1h0m0s"}},
		{"plaintext to a remote host", func(c *Config) { c.DSN = Secret("postgres://jmlgate:" + pw + "@db.example.com/app?sslmode=disable") }, []string{`dsn: host "db.example.com:5432" is not loopback`}},
		{"everything wrong at once", func(c *Config) {
			c.DSN, c.RolePrefix, c.MaxConns, c.ConnectTimeout, c.LockTimeout, c.StatementTimeout = "", "", -1, -1, -1, 0
		}, []string{"dsn: required", "role_prefix: required", "max_conns:", "connect_timeout:", "lock_timeout:", "statement_timeout:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good()
			tc.mod(c)
			conn, err := c.Open("pg", nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				conn.(*Conn).Close()
				return
			}
			if err == nil {
				conn.(*Conn).Close()
				t.Fatalf("Open succeeded, want errors %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if lines := strings.Split(msg, "\n"); len(lines) < len(tc.want) {
				t.Errorf("error has %d lines, want one per problem (%d): %q", len(lines), len(tc.want), msg)
			}
			for _, line := range strings.Split(msg, "\n") {
				key, _, _ := strings.Cut(line, ":")
				key, _, _ = strings.Cut(key, "[")
				switch key {
				case "dsn", "role_prefix", "allowed_groups", "shared_accounts", "max_conns", "connect_timeout", "lock_timeout", "statement_timeout":
				default:
					t.Errorf("error line %q does not start with a yaml key", line)
				}
			}
			if strings.Contains(msg, pw) || strings.Contains(msg, "Hunter2") {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
}

// TestConfigDecodeAndPrint decodes a YAML section as cmd does and checks
// the DSN never comes out again through fmt, slog, JSON or YAML.
func TestConfigDecodeAndPrint(t *testing.T) {
	t.Parallel()
	src := `
dsn: "postgres://jmlgate:` + pw + `@db.example.com/app"
role_prefix: acme_
allowed_groups: [app_read, app_write]
shared_accounts: [app_reporting]
max_conns: 7
connect_timeout: 3s
lock_timeout: 2s
statement_timeout: 30s
insecure_tls: true
`
	if d := NewConfig().(*Config); time.Duration(d.LockTimeout) != 10*time.Second || time.Duration(d.StatementTimeout) != time.Minute || d.InsecureTLS {
		t.Errorf("defaults: lock_timeout %v, statement_timeout %v, insecure_tls %v", d.LockTimeout, d.StatementTimeout, d.InsecureTLS)
	}
	c := NewConfig().(*Config)
	if err := yaml.UnmarshalWithOptions([]byte(src), c, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c.DSN), pw) || c.RolePrefix != "acme_" || c.MaxConns != 7 ||
		time.Duration(c.ConnectTimeout) != 3*time.Second || len(c.AllowedGroups) != 2 || c.SharedAccounts[0] != "app_reporting" ||
		time.Duration(c.LockTimeout) != 2*time.Second || time.Duration(c.StatementTimeout) != 30*time.Second || !c.InsecureTLS {
		t.Fatalf("decoded %+v", c)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c, "dsn", c.DSN)
	j, _ := json.Marshal(c)
	y, _ := yaml.Marshal(c)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%s": fmt.Sprintf("%s", c.DSN), "%q": fmt.Sprintf("%q", c.DSN), "%x": fmt.Sprintf("%x", c.DSN),
		"slog": logged.String(), "json": string(j), "yaml": string(y),
	}
	for how, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows the password: %s", how, out)
		}
	}
	if !strings.Contains(string(y), "connect_timeout: 3s") {
		t.Errorf("yaml = %s", y)
	}
	bad := NewConfig().(*Config)
	if err := yaml.Unmarshal([]byte("connect_timeout: 10\n"), bad); err == nil {
		t.Error("a bare number was accepted as connect_timeout")
	}
}

// TestDatabaseDown: Open does no I/O, so a database that is down opens
// fine; the calls then fail Retryable, with messages that show neither the
// DSN nor its password, and honour their context.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, dsn := range []string{
		"postgres://jmlgate:" + pw + "@" + addr + "/app?sslmode=disable",
		"host=127.0.0.1 port=" + addr[strings.LastIndex(addr, ":")+1:] + " user=jmlgate password=" + pw + " dbname=app sslmode=disable",
	} {
		c := NewConfig().(*Config)
		c.DSN = Secret(dsn)
		c.ConnectTimeout = Duration(2 * time.Second)
		conn, err := c.Open("pg", nil)
		if err != nil {
			t.Fatalf("Open with the database down: %v", err)
		}
		pg := conn.(*Conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		calls := map[string]error{}
		_, calls["EnsureAccount"] = pg.EnsureAccount(ctx, account(1, "alice"))
		calls["Grant"] = pg.Grant(ctx, "jml_alice", "app_read")
		calls["Revoke"] = pg.Revoke(ctx, "jml_alice", "app_read")
		calls["DisableAccount"] = pg.DisableAccount(ctx, "jml_alice")
		calls["RevokeSessions"] = pg.RevokeSessions(ctx, "jml_alice")
		_, calls["ListAccounts"] = pg.ListAccounts(ctx)
		for name, err := range calls {
			if err == nil {
				t.Errorf("%s against a closed port succeeded", name)
				continue
			}
			if cl, _ := connectors.ClassOf(err); cl != connectors.Retryable {
				t.Errorf("%s: class %v, want retryable: %v", name, cl, err)
			}
			var ce *connectors.Error
			if !errors.As(err, &ce) {
				t.Errorf("%s: %v is not classified", name, err)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), dsn) {
				t.Errorf("%s: error shows the DSN or password: %v", name, err)
			}
		}
		cancel()
		err = pg.DisableAccount(ctx, "jml_alice")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("DisableAccount with a cancelled context: %v", err)
		}
		pg.Close()
	}
}

// TestRedactor covers the second line of defence: whatever a message
// holds of the DSN or the password, in any of its spellings, is removed.
func TestRedactor(t *testing.T) {
	t.Parallel()
	pass := "p@ss word/é"
	dsn := "postgres://u:p%40ss%20word%2F%C3%A9@h/db"
	r := newRedactor(dsn, pass)
	for _, msg := range []string{
		"connecting to " + dsn + " failed",
		"password " + pass + " rejected",
		"echo p%40ss%20word%2F%C3%A9",
		"echo p%40ss+word%2F%C3%A9",
	} {
		out := r.apply(msg)
		if strings.Contains(out, pass) || strings.Contains(out, "p%40ss") || !strings.Contains(out, "[redacted]") {
			t.Errorf("apply(%q) = %q", msg, out)
		}
	}
	if out := newRedactor("host=h", "").apply("host=x"); out != "host=x" {
		t.Errorf("no password: %q", out)
	}
}
