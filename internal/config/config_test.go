package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	hashA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	hashB = "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// problems returns the rendered problems of err, failing the test if err is
// not an *Error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	var out []string
	for _, p := range e.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestLoadEmptyPathGivesDefaults(t *testing.T) {
	t.Parallel()
	got, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			BodyLimit:       1048576,
			RequestTimeout:  Duration(30 * time.Second),
			ShutdownTimeout: Duration(15 * time.Second),
			RateLimit:       RateLimit{Enabled: true, RequestsPerSecond: 50, Burst: 100},
		},
		Store: Store{Driver: "sqlite", Path: "jmlgate.db"},
		Log:   Log{Level: "info", Format: "json"},
		SCIM:  SCIM{MaxResults: 1000, Bulk: Bulk{MaxOperations: 1000, MaxPayloadBytes: 1048576}},
		MFA:   MFA{ExceptionMax: Duration(720 * time.Hour)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(\"\") =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	full := `# full configuration
server:
  listen: "0.0.0.0:9443"
  base_url: https://jml.example.com/
  body_limit_bytes: 2048
  request_timeout: 10s
  shutdown_timeout: 1m30s
  rate_limit:
    enabled: false
    requests_per_second: 0.5
    burst: 3
store:
  driver: postgres
  dsn: "${PG_DSN}"
log: {level: debug, format: text}
auth:
  tokens:
    - name: hr
      sha256: ` + hashA + `
      scopes: [scim]
    - name: it
      sha256: ` + hashB + `
      scopes: [approve, audit]
      expires: 2027-01-31T00:00:00Z
  jwt:
    issuer: https://idp.example.com
    audience: jmlgate
    jwks_url: https://idp.example.com/jwks.json
    leeway: 0s
scim:
  max_results: 200
  bulk:
    max_operations: 10
    max_payload_bytes: 65536
`
	want := &Config{
		Server: Server{
			Listen:          "0.0.0.0:9443",
			BaseURL:         "https://jml.example.com",
			BodyLimit:       2048,
			RequestTimeout:  Duration(10 * time.Second),
			ShutdownTimeout: Duration(90 * time.Second),
			RateLimit:       RateLimit{Enabled: false, RequestsPerSecond: 0.5, Burst: 3},
		},
		Store: Store{Driver: "postgres", Path: "jmlgate.db", DSN: "postgres://u:p@db/jml?sslmode=require"},
		Log:   Log{Level: "debug", Format: "text"},
		Auth: Auth{
			Tokens: []StaticToken{
				{Name: "hr", SHA256: hashA, Scopes: []string{"scim"}},
				{Name: "it", SHA256: hashB, Scopes: []string{"approve", "audit"}, Expires: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
			},
			JWT: &JWT{
				Issuer:      "https://idp.example.com",
				Audience:    "jmlgate",
				JWKSURL:     "https://idp.example.com/jwks.json",
				ScopesClaim: "scope",
				Algorithms:  []string{"RS256", "ES256", "EdDSA"},
				Leeway:      0,
				JWKSRefresh: Duration(15 * time.Minute),
			},
		},
		SCIM: SCIM{MaxResults: 200, Bulk: Bulk{MaxOperations: 10, MaxPayloadBytes: 65536}},
		MFA:  MFA{ExceptionMax: Duration(720 * time.Hour)},
	}
	partialWant := Default()
	partialWant.Log.Level = "warn"

	tests := []struct {
		name string
		src  string
		want *Config
	}{
		{"full", full, want},
		{"partial keeps other defaults", "log:\n  level: warn\n", partialWant},
		{"null sections keep defaults", "server:\nstore: null\nlog: {level: warn}\n", partialWant},
		{"empty file", "", Default()},
		{"only comments", "# nothing here\n# ${UNDEFINED} in a comment is ignored\n", Default()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(tt.src), env(map[string]string{"PG_DSN": "postgres://u:p@db/jml?sslmode=require"}))
			if err != nil {
				t.Fatal(err)
			}
			if got.lines == nil && tt.src != "" && !strings.HasPrefix(tt.src, "#") {
				t.Error("lines not recorded")
			}
			got.lines = nil
			if got.Auth.JWT != nil && tt.want.Auth.JWT != nil && !reflect.DeepEqual(*got.Auth.JWT, *tt.want.Auth.JWT) {
				t.Errorf("jwt = %+v\nwant %+v", *got.Auth.JWT, *tt.want.Auth.JWT)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	tok := func(extra string) string {
		return "auth:\n  tokens:\n    - name: a\n      sha256: " + hashA + "\n      scopes: [scim]\n" + extra
	}
	jwt := func(body string) string {
		return "auth:\n  jwt:\n" + body
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"listen without port", "server: {listen: localhost}", []string{`server.listen: want host:port, got "localhost" (line 1)`}},
		{"listen bad port", "server: {listen: ':99999'}", []string{`server.listen: port "99999" is not a number from 0 to 65535 (line 1)`}},
		{"base_url relative", "server: {base_url: /jml}", []string{`server.base_url: want an absolute http or https URL, got "/jml" (line 1)`}},
		{"base_url ftp", "server: {base_url: 'ftp://x'}", []string{`server.base_url: want an absolute http or https URL, got "ftp://x" (line 1)`}},
		{"base_url query", "server: {base_url: 'https://x/?a=b'}", []string{`server.base_url: must not have a query or fragment, got "https://x/?a=b" (line 1)`}},
		{"base_url credentials", "server: {base_url: 'https://u:p@x'}", []string{`server.base_url: must not contain credentials (line 1)`}},
		{"base_url no host", "server: {base_url: 'https:///x'}", []string{`server.base_url: missing host in "https:///x" (line 1)`}},
		{"zero body limit", "server:\n  body_limit_bytes: 0", []string{`server.body_limit_bytes: must be at least 1, got 0 (line 2)`}},
		{"timeouts", "server:\n  request_timeout: 0s\n  shutdown_timeout: -1s", []string{
			`server.request_timeout: must be positive, got 0s (line 2)`,
			`server.shutdown_timeout: must be positive, got -1s (line 3)`,
		}},
		{"rate limit", "server:\n  rate_limit: {requests_per_second: 0, burst: 0}", []string{
			`server.rate_limit.requests_per_second: must be positive when the rate limit is enabled, got 0 (line 2)`,
			`server.rate_limit.burst: must be at least 1 when the rate limit is enabled, got 0 (line 2)`,
		}},
		{"rate limit disabled ignores values", "server:\n  rate_limit: {enabled: false, requests_per_second: 0, burst: 0}", nil},
		{"store driver", "store: {driver: mysql}", []string{`store.driver: unknown driver "mysql" (want sqlite, postgres) (line 1)`}},
		{"postgres without dsn", "store: {driver: postgres}", []string{`store.dsn: required with driver postgres`}},
		{"sqlite with dsn", "store: {dsn: 'postgres://x'}", []string{`store.dsn: only used with driver postgres; sqlite uses store.path (line 1)`}},
		{"sqlite empty path", "store: {path: ''}", []string{`store.path: required with driver sqlite (line 1)`}},
		{"log", "log:\n  level: verbose\n  format: xml", []string{
			`log.level: unknown level "verbose" (want debug, info, warn, error) (line 2)`,
			`log.format: unknown format "xml" (want json, text) (line 3)`,
		}},
		{"valid token", tok(""), nil},
		{"token problems", `auth:
  tokens:
    - name: ""
      sha256: abc
      scopes: []
    - name: has space
      sha256: ` + hashA + `
      scopes: [scim, admn, scim]
    - name: b
      sha256: ` + strings.ToUpper(hashA) + `
      scopes: [audit]
    - name: b
      sha256: ` + hashB + `
      scopes: [admin]
`, []string{
			`auth.tokens[0].name: required (line 3)`,
			`auth.tokens[0].sha256: must be 64 hex characters (the SHA-256 of the token), got 3 characters (line 4)`,
			`auth.tokens[0].scopes: at least one scope is required (scim, approve, audit, admin) (line 5)`,
			`auth.tokens[1].name: want at most 64 characters without spaces or control characters (line 6)`,
			`auth.tokens[1].scopes[1]: unknown scope "admn" (want scim, approve, audit, admin) (line 8)`,
			`auth.tokens[1].scopes[2]: duplicate scope "scim" (line 8)`,
			`auth.tokens[2].sha256: same hash as auth.tokens[1] (line 10)`,
			`auth.tokens[3].name: duplicate token name "b" (also auth.tokens[2]) (line 12)`,
		}},
		{"non-hex sha256", tok("    - name: z\n      sha256: " + strings.Repeat("g", 64) + "\n      scopes: [scim]\n"), []string{
			`auth.tokens[1].sha256: must be 64 hex characters (the SHA-256 of the token), got 64 characters (line 7)`,
		}},
		{"jwt neither source", jwt("    issuer: i\n    audience: a\n"), []string{`auth.jwt: set one of jwks_file and jwks_url (line 3)`}},
		{"jwt both sources", jwt("    issuer: i\n    audience: a\n    jwks_file: k.json\n    jwks_url: https://x/k\n"), []string{`auth.jwt: set only one of jwks_file and jwks_url, not both (line 3)`}},
		{"jwt http url", jwt("    issuer: i\n    audience: a\n    jwks_url: http://idp.example.com/k\n"), []string{`auth.jwt.jwks_url: want https (http only to a loopback host), got "http://idp.example.com/k" (line 5)`}},
		{"jwt http loopback ok", jwt("    issuer: i\n    audience: a\n    jwks_url: http://127.0.0.1:9000/k\n"), nil},
		{"jwt relative url", jwt("    issuer: i\n    audience: a\n    jwks_url: /k\n"), []string{`auth.jwt.jwks_url: want an absolute https URL, got "/k" (line 5)`}},
		{"jwt missing fields", jwt("    jwks_file: k.json\n    scopes_claim: ''\n    algorithms: []\n    leeway: -1s\n    jwks_refresh: 0s\n"), []string{
			`auth.jwt.issuer: required`,
			`auth.jwt.audience: required`,
			`auth.jwt.scopes_claim: must not be empty (line 4)`,
			`auth.jwt.algorithms: at least one algorithm is required (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 5)`,
			`auth.jwt.leeway: must not be negative, got -1s (line 6)`,
			`auth.jwt.jwks_refresh: must be positive, got 0s (line 7)`,
		}},
		{"jwt algorithms", jwt("    issuer: i\n    audience: a\n    jwks_file: k.json\n    algorithms: [none, HS256, RS256, XS1]\n"), []string{
			`auth.jwt.algorithms[0]: "none" is not allowed: only asymmetric signatures are accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 6)`,
			`auth.jwt.algorithms[1]: "HS256" is not allowed: only asymmetric signatures are accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 6)`,
			`auth.jwt.algorithms[3]: unknown algorithm "XS1" (want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 6)`,
		}},
		{"scim limits", "scim:\n  max_results: 0\n  bulk: {max_operations: -1, max_payload_bytes: 0}\n", []string{
			`scim.max_results: must be at least 1, got 0 (line 2)`,
			`scim.bulk.max_operations: must be at least 1, got -1 (line 3)`,
			`scim.bulk.max_payload_bytes: must be at least 1, got 0 (line 3)`,
		}},
		{"every section at once", "server: {listen: x}\nstore: {driver: x}\nlog: {level: x}\nscim: {max_results: 0}\n", []string{
			`server.listen: want host:port, got "x" (line 1)`,
			`store.driver: unknown driver "x" (want sqlite, postgres) (line 2)`,
			`log.level: unknown level "x" (want debug, info, warn, error) (line 3)`,
			`scim.max_results: must be at least 1, got 0 (line 4)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.src), nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if c != nil {
				t.Error("Parse returned a Config along with problems")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestValidateOnStructs(t *testing.T) {
	t.Parallel()
	// Validate works on a Config built in code (no lines known).
	c := Default()
	c.Server.Listen = ""
	c.Auth.JWT = &JWT{}
	got := problems(t, c.Validate())
	want := []string{
		`server.listen: want host:port, got ""`,
		`auth.jwt.issuer: required`,
		`auth.jwt.audience: required`,
		`auth.jwt: set one of jwks_file and jwks_url`,
		`auth.jwt.scopes_claim: must not be empty`,
		`auth.jwt.algorithms: at least one algorithm is required (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
		`auth.jwt.jwks_refresh: must be positive, got 0s`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestUnknownKeysAndTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"all unknown keys reported with paths", `servr:
  listen: x
server:
  listne: "127.0.0.1:1"
  bodyLimitBytes: 5
  rate_limit:
    rps: 3
store:
  driver: sqlite
  pth: x
auth:
  tokens:
    - name: a
      scope: [scim]
    - name: b
      sha: x
  jwt:
    issuer: x
    jwks: y
scim:
  bulk:
    max_ops: 1
colour: blue
`, []string{
			`servr: unknown key (did you mean "server"?) (line 1)`,
			`server.listne: unknown key (did you mean "listen"?) (line 4)`,
			`server.bodyLimitBytes: unknown key (did you mean "body_limit_bytes"?) (line 5)`,
			`server.rate_limit.rps: unknown key (line 7)`,
			`store.pth: unknown key (did you mean "path"?) (line 10)`,
			`auth.tokens[0].scope: unknown key (did you mean "scopes"?) (line 14)`,
			`auth.tokens[1].sha: unknown key (line 16)`,
			`auth.jwt.jwks: unknown key (line 19)`,
			`scim.bulk.max_ops: unknown key (line 22)`,
			`colour: unknown key (line 23)`,
		}},
		{"wrong types all reported", `server:
  listen: [a, b]
  body_limit_bytes: lots
  request_timeout: 30
  shutdown_timeout: soon
  rate_limit:
    enabled: yes
    requests_per_second: fast
    burst: 99999999999999999999999
store: sqlite
auth:
  tokens:
    name: a
  jwt:
    algorithms: RS256
scim:
  max_results: {a: 1}
`, []string{
			`server.listen: want a string, got a list (line 2)`,
			`server.body_limit_bytes: want an integer, got "lots" (line 3)`,
			`server.request_timeout: want a duration like "30s", got "30" (line 4)`,
			`server.shutdown_timeout: want a duration like "30s", got "soon" (line 5)`,
			`server.rate_limit.enabled: want true or false, got "yes" (line 7)`,
			`server.rate_limit.requests_per_second: want a number, got "fast" (line 8)`,
			`server.rate_limit.burst: 99999999999999999999999 is out of range for an integer (line 9)`,
			`store: want a mapping, got "sqlite" (line 10)`,
			`auth.tokens: want a list, got a mapping (line 13)`,
			`auth.jwt.algorithms: want a list, got "RS256" (line 15)`,
			`scim.max_results: want an integer, got a mapping (line 17)`,
		}},
		{"bad timestamp", "auth:\n  tokens:\n    - name: a\n      sha256: " + hashA + "\n      scopes: [scim]\n      expires: tomorrow\n", []string{
			`auth.tokens[0].expires: want an RFC 3339 timestamp like 2027-01-31T00:00:00Z, got "tomorrow" (line 6)`,
		}},
		{"date without time", "auth:\n  tokens:\n    - expires: 2027-01-31\n", []string{
			`auth.tokens[0].expires: want an RFC 3339 timestamp like 2027-01-31T00:00:00Z, got "2027-01-31" (line 3)`,
		}},
		{"root is a list", "- a\n- b\n", []string{`line 1: want a mapping, got a list`}},
		{"root is a scalar", "hello\n", []string{`line 1: want a mapping, got "hello"`}},
		{"two documents", "log: {level: info}\n---\nlog: {level: warn}\n", []string{`line 3: 2 YAML documents: want one`}},
		{"merge keys are checked", "x-base: &b\n  level: debug\nlog:\n  <<: *b\n  fromat: text\n", []string{
			`x-base: unknown key (line 1)`,
			`log.fromat: unknown key (did you mean "format"?) (line 5)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src), nil)
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestMalformedYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string
	}{
		{"unclosed flow sequence", "log:\n  level: info\nauth:\n  tokens: [a\n", 4, "invalid YAML: "},
		{"bad indentation", "server:\n  listen: x\n    base_url: y\n", 2, "invalid YAML: "},
		{"duplicate key", "log:\n  level: info\n  level: warn\n", 3, `invalid YAML: mapping key "level" already defined at [2:3]`},
		{"tab indentation", "log:\n\tlevel: info\n", 2, "invalid YAML: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src), nil)
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) != 1 {
				t.Fatalf("error = %v, want one problem", err)
			}
			p := e.Problems[0]
			if p.Line != tt.wantLine || !strings.HasPrefix(p.Message, tt.wantMsg) || !strings.Contains(p.Message, "(column ") {
				t.Errorf("problem = %+v, want line %d and message starting %q with a column", p, tt.wantLine, tt.wantMsg)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{"HOST": "db.example.com", "EMPTY": "", "PORT": "5432"})
	tests := []struct {
		name         string
		src          string
		want         string
		wantProblems []string
	}{
		{"no references", "a: b\n", "a: b\n", nil},
		{"defined", "dsn: postgres://${HOST}:${PORT}/x\n", "dsn: postgres://db.example.com:5432/x\n", nil},
		{"default when unset", "a: ${NOPE:-fallback value}\n", "a: fallback value\n", nil},
		{"default when empty", "a: ${EMPTY:-d}\n", "a: d\n", nil},
		{"set value wins over default", "a: ${HOST:-d}\n", "a: db.example.com\n", nil},
		{"empty default", "a: '${NOPE:-}'\n", "a: ''\n", nil},
		{"empty but defined", "a: '${EMPTY}'\n", "a: ''\n", nil},
		{"dollar dollar", "a: pa$$word $${HOST}\n", "a: pa$word ${HOST}\n", nil},
		{"lone dollar kept", "a: $HOST costs $5 $\n", "a: $HOST costs $5 $\n", nil},
		{"comment lines untouched", "  # ${NOPE} $$\na: 1\n", "  # ${NOPE} $$\na: 1\n", nil},
		{"missing reported with lines", "a: 1\nb: ${NOPE}\nc: ${ALSO_NOPE}${HOST}\n", "a: 1\nb: \nc: db.example.com\n", []string{
			"line 2: environment variable NOPE is not set (use ${NOPE:-default} for a fallback)",
			"line 3: environment variable ALSO_NOPE is not set (use ${ALSO_NOPE:-default} for a fallback)",
		}},
		{"malformed", "a: ${1X}\nb: ${\nc: ${}\n", "a: \nb: \nc: \n", []string{
			"line 1: invalid environment reference ${1X}: want ${VAR} or ${VAR:-default} with VAR made of letters, digits and _",
			`line 2: unterminated "${": want ${VAR} or ${VAR:-default}, or $$ for a literal $`,
			"line 3: invalid environment reference ${}: want ${VAR} or ${VAR:-default} with VAR made of letters, digits and _",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, probs := expandEnv([]byte(tt.src), vars)
			if string(got) != tt.want {
				t.Errorf("expanded = %q, want %q", got, tt.want)
			}
			var ps []string
			for _, p := range probs {
				ps = append(ps, p.String())
			}
			if !reflect.DeepEqual(ps, tt.wantProblems) {
				t.Errorf("problems = %q, want %q", ps, tt.wantProblems)
			}
		})
	}
}

func TestParseReportsEnvAndKeyProblemsTogether(t *testing.T) {
	t.Parallel()
	src := "store:\n  driver: postgres\n  dsn: ${PG_DSN}\n  pool: 3\n"
	_, err := Parse([]byte(src), nil)
	got := problems(t, err)
	want := []string{
		"line 3: environment variable PG_DSN is not set (use ${PG_DSN:-default} for a fallback)",
		"store.pool: unknown key (line 4)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("log:\n  level: error\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("log:\n  levle: error\n  format: yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Load(good)
	if err != nil || c.Log.Level != "error" {
		t.Fatalf("Load(good) = %+v, %v", c, err)
	}

	_, err = Load(bad)
	var e *Error
	if !errors.As(err, &e) || e.File != bad {
		t.Fatalf("Load(bad) error = %v, want *Error naming the file", err)
	}
	wantMsg := "config " + bad + `: log.levle: unknown key (did you mean "level"?) (line 2)`
	if err.Error() != wantMsg {
		t.Errorf("Error() = %q, want %q", err.Error(), wantMsg)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	e := &Error{File: "c.yaml", Problems: []Problem{
		{Path: "server.listen", Line: 2, Message: "bad"},
		{Path: "store.dsn", Message: "required"},
		{Line: 7, Message: "env"},
		{Message: "whole"},
	}}
	want := "config c.yaml: 4 problems:\n  server.listen: bad (line 2)\n  store.dsn: required\n  line 7: env\n  whole"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	d := Duration(90 * time.Second)
	if d.D() != 90*time.Second || d.String() != "1m30s" {
		t.Errorf("D() = %v, String() = %q", d.D(), d.String())
	}
	v, err := d.MarshalYAML()
	if err != nil || v != "1m30s" {
		t.Errorf("MarshalYAML() = %v, %v", v, err)
	}
}
