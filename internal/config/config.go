// Package config loads jmlgate's YAML configuration into typed structs.
//
// Loading is strict and reports every problem at once: Load expands
// ${VAR} references, rejects every unknown key and every value of the wrong
// type (each with its key path and line), decodes onto the defaults, and then
// runs Validate, which checks the values themselves. All problems come back
// as one *Error; nothing is half-applied because Load returns no Config when
// it fails.
package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// Config is the whole configuration file. Every key is snake_case; a key
// absent from the file keeps the value Default gives it.
type Config struct {
	Server Server `yaml:"server"`
	Store  Store  `yaml:"store"`
	Log    Log    `yaml:"log"`
	Auth   Auth   `yaml:"auth"`
	SCIM   SCIM   `yaml:"scim"`
	// Secrets configures the vault that seals secrets at rest.
	Secrets Secrets `yaml:"secrets"`
	// MFA configures the MFA gate.
	MFA MFA `yaml:"mfa"`
	// Roles are the access rules, in the order they are evaluated and
	// listed. Package workflows/roles compiles them; Validate checks only
	// their shape, not their CEL.
	Roles []Role `yaml:"roles"`
	// Connectors are the applications jmlgate provisions. Every
	// connector a role grants on must be listed here.
	Connectors []Connector `yaml:"connectors"`
	// Delivery tunes the queue that fans changes out to connectors.
	Delivery Delivery `yaml:"delivery"`
	// Webhooks configures the key that signs webhook connector events.
	Webhooks Webhooks `yaml:"webhooks"`

	// lines maps key paths ("server.listen", "auth.tokens[0].name") to the
	// line they were read from, so Validate can point at them.
	lines map[string]int
	// file is the path Load read, for messages.
	file string
}

// File is the path the configuration was loaded from ("" when none).
func (c *Config) File() string { return c.file }

// Server configures the HTTP listener.
type Server struct {
	// Listen is host:port; port 0 picks a free port. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// BaseURL is the external URL clients reach jmlgate at, used to build
	// meta.location. Optional; when set it is an absolute http(s) URL
	// without query or fragment, and Load strips a trailing "/".
	BaseURL string `yaml:"base_url"`
	// BodyLimit caps request bodies in bytes. Default 1 MiB.
	BodyLimit int64 `yaml:"body_limit_bytes"`
	// RequestTimeout bounds one request. Default 30s.
	RequestTimeout Duration `yaml:"request_timeout"`
	// ShutdownTimeout bounds draining in-flight requests. Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// RateLimit is applied per authenticated caller.
	RateLimit RateLimit `yaml:"rate_limit"`
}

// RateLimit is a token bucket per caller.
type RateLimit struct {
	Enabled           bool    `yaml:"enabled"`             // default true
	RequestsPerSecond float64 `yaml:"requests_per_second"` // default 50; > 0 when enabled
	Burst             int     `yaml:"burst"`               // default 100; >= 1 when enabled
}

// Store selects the database.
type Store struct {
	Driver string `yaml:"driver"` // "sqlite" (default) or "postgres"
	Path   string `yaml:"path"`   // SQLite file; default "jmlgate.db"
	DSN    string `yaml:"dsn"`    // PostgreSQL connection string; only with driver postgres
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or text
}

// Auth lists the credentials jmlgate accepts besides the tokens in the store.
type Auth struct {
	Tokens []StaticToken `yaml:"tokens"`
	// JWT, when set, accepts JWTs signed by a key of the configured JWKS.
	JWT *JWT `yaml:"jwt"`
}

// StaticToken is a bearer token declared in the file. Only its SHA-256 is
// written down; `jmlgate token create` prints both.
type StaticToken struct {
	Name string `yaml:"name"` // unique among static tokens
	// SHA256 is the hex SHA-256 of the token value (64 hex characters).
	SHA256 string   `yaml:"sha256"`
	Scopes []string `yaml:"scopes"` // scim, approve, audit, admin
	// Expires is an RFC 3339 timestamp; zero means the token never expires.
	Expires time.Time `yaml:"expires"`
}

// JWT configures verification of JWT bearer tokens. When the jwt key is
// present, keys it omits take the values DefaultJWT gives.
type JWT struct {
	Issuer   string `yaml:"issuer"`   // required; matched exactly against iss
	Audience string `yaml:"audience"` // required; must be one of aud
	// Exactly one of JWKSFile and JWKSURL is set. JWKSURL is https, or http
	// to a loopback host.
	JWKSFile string `yaml:"jwks_file"`
	JWKSURL  string `yaml:"jwks_url"`
	// ScopesClaim names the claim holding scopes, as a space-separated
	// string or an array of strings. Default "scope".
	ScopesClaim string `yaml:"scopes_claim"`
	// Algorithms is the signature allow-list. Default RS256, ES256, EdDSA.
	// Only asymmetric algorithms are accepted.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 60s.
	Leeway Duration `yaml:"leeway"`
	// JWKSRefresh is how often the key set is reloaded. Default 15m.
	JWKSRefresh Duration `yaml:"jwks_refresh"`
}

// MFA configures the MFA gate.
type MFA struct {
	// ExceptionMax caps how long an MFA exception may last (the expiry is
	// mandatory). Default 720h (30 days); at most a year.
	ExceptionMax Duration `yaml:"exception_max"`
	// EventIssuers are the identity providers whose Security Event Tokens
	// (RFC 8417, pushed per RFC 8935 to /api/v1/events) may prove or revoke
	// MFA enrollment. Empty: every SET is refused as from an unknown issuer.
	EventIssuers []EventIssuer `yaml:"event_issuers"`
}

// EventIssuer is one identity provider that pushes Security Event Tokens.
// Keys left out of a file take the values DefaultEventIssuer gives.
type EventIssuer struct {
	// Issuer is matched exactly against a SET's iss (required, unique).
	Issuer string `yaml:"issuer"`
	// Audience must be one of a SET's aud (required): the name the IdP's
	// stream configuration gives this receiver.
	Audience string `yaml:"audience"`
	// Exactly one of JWKSFile and JWKSURL is set. JWKSURL is https, or http
	// to a loopback host.
	JWKSFile string `yaml:"jwks_file"`
	JWKSURL  string `yaml:"jwks_url"`
	// Algorithms is the signature allow-list. Default RS256, ES256, EdDSA.
	// Only asymmetric algorithms are accepted.
	Algorithms []string `yaml:"algorithms"`
	// MaxAge is how old a SET's iat may be (and how long its jti is kept
	// against replay). Default 10m; at most 24h.
	MaxAge Duration `yaml:"max_age"`
	// JWKSRefresh is how often a jwks_url is fetched again. Default 15m.
	JWKSRefresh Duration `yaml:"jwks_refresh"`
}

// DefaultEventIssuer returns the values an event_issuers entry starts from.
func DefaultEventIssuer() EventIssuer {
	return EventIssuer{
		Algorithms:  []string{"RS256", "ES256", "EdDSA"},
		MaxAge:      Duration(10 * time.Minute),
		JWKSRefresh: Duration(15 * time.Minute),
	}
}

// UnmarshalYAML decodes an event_issuers entry on top of
// DefaultEventIssuer, so keys left out keep their defaults.
func (e *EventIssuer) UnmarshalYAML(unmarshal func(any) error) error {
	*e = DefaultEventIssuer()
	type plain EventIssuer // no UnmarshalYAML: avoids recursion
	return unmarshal((*plain)(e))
}

// Secrets configures the vault.
type Secrets struct {
	// KeyFile holds the vault's key ring (created 0600 on first start).
	// Empty: "jmlgate.key" beside the SQLite database. Keep it out of
	// backups of the database: the two together open every sealed secret.
	KeyFile string `yaml:"key_file"`
}

// SCIM configures the SCIM endpoints.
type SCIM struct {
	// MaxResults caps count per page and the number of resources a filter
	// scans. Default 1000.
	MaxResults int  `yaml:"max_results"`
	Bulk       Bulk `yaml:"bulk"`
}

// Bulk configures /scim/v2/Bulk.
type Bulk struct {
	MaxOperations   int   `yaml:"max_operations"`    // default 1000
	MaxPayloadBytes int64 `yaml:"max_payload_bytes"` // default 1 MiB
}

// Role grants access to every person its When expression matches.
type Role struct {
	// Name identifies the role in APIs, approvals and audit records:
	// unique, 1 to 63 characters of a-z, 0-9, "_", "." and "-", starting
	// with a letter or digit.
	Name        string `yaml:"name"`
	Description string `yaml:"description"` // optional, for people
	// When is a CEL expression over `user` that must have type bool
	// (required). Config does not parse it; roles.Compile does.
	When string `yaml:"when"`
	// Grants is what the role gives: at least one, no duplicates.
	Grants []Grant `yaml:"grants"`
	// Privileged grants need approval before they are sent.
	Privileged bool `yaml:"privileged"`
	// ApprovalsRequired is how many distinct approvers a privileged grant
	// needs: 1 to 5 when Privileged, 0 otherwise. In a file it defaults to
	// 1 for a privileged role and 0 otherwise; a Role built in code gets no
	// default and must set it.
	ApprovalsRequired int `yaml:"approvals_required"`
}

// Grant is one entitlement in one connector.
type Grant struct {
	Connector   string `yaml:"connector"`   // connector name
	Entitlement string `yaml:"entitlement"` // connector-specific: group, role, license...
}

// UnmarshalYAML decodes a role and defaults approvals_required when the key
// is absent (or null): 1 for a privileged role, 0 otherwise. An explicit
// value is kept as written, so Validate can reject 0 on a privileged role.
func (r *Role) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Role // no UnmarshalYAML: avoids recursion
	if err := unmarshal((*plain)(r)); err != nil {
		return err
	}
	var keys map[string]any
	if err := unmarshal(&keys); err != nil {
		return err
	}
	if keys["approvals_required"] == nil && r.Privileged {
		r.ApprovalsRequired = 1
	}
	return nil
}

// Connector is one provisioning target.
type Connector struct {
	// Name identifies the connector in roles (grants' connector), the API
	// and metrics: lowercase letters, digits, '-' and '_'.
	Name string `yaml:"name"`
	// Type picks the implementation: scim, webhook or postgres.
	Type string `yaml:"type"`
	// Config is the type's own section, checked as strictly as the rest of
	// the file once the type is known.
	Config Section `yaml:"config"`
	// Concurrency is how many deliveries to this connector run at once
	// (default 4).
	Concurrency int `yaml:"concurrency"`
	// Rate caps calls to the connector per second (0: no cap); Burst is
	// the token bucket's size (default: Rate rounded up, at least 1).
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// MaxAttempts is how many runs a delivery gets before it is
	// dead-lettered (default 10).
	MaxAttempts int `yaml:"max_attempts"`
	// Drift is what reconciliation does with access nobody granted through
	// jmlgate: report (default) or revoke.
	Drift string `yaml:"drift"`
	// ReconcileInterval runs reconciliation periodically (0: on demand
	// only, through the API). Needs a connector that can list accounts.
	ReconcileInterval Duration `yaml:"reconcile_interval"`
}

// UnmarshalYAML applies the connector defaults before decoding.
func (c *Connector) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Connector // no UnmarshalYAML: avoids recursion
	p := plain{Concurrency: 4, MaxAttempts: 10, Drift: "report"}
	if err := unmarshal(&p); err != nil {
		return err
	}
	*c = Connector(p)
	return nil
}

// Delivery tunes the delivery queue.
type Delivery struct {
	// Poll is how often an idle connector's queue is checked (0: the
	// default, 100ms).
	Poll Duration `yaml:"poll"`
	// BackoffBase and BackoffMax shape retry delays: base * 2^(attempt-1)
	// with jitter, capped at max (0: the defaults, 1s and 15m). A target's
	// Retry-After replaces them.
	BackoffBase Duration `yaml:"backoff_base"`
	BackoffMax  Duration `yaml:"backoff_max"`
	// OpTimeout bounds each call to a connector (0: 2m): a target that
	// hangs fails the call as retryable instead of holding a slot.
	OpTimeout Duration `yaml:"op_timeout"`
}

// Webhooks configures webhook signing.
type Webhooks struct {
	// KeyFile holds the Ed25519 signing keys (created 0600 on first use;
	// default: jmlgate-webhook.jwks beside the database).
	KeyFile string `yaml:"key_file"`
}

// Default returns the configuration jmlgate runs with when there is no file.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			BodyLimit:       1 << 20,
			RequestTimeout:  Duration(30 * time.Second),
			ShutdownTimeout: Duration(15 * time.Second),
			RateLimit:       RateLimit{Enabled: true, RequestsPerSecond: 50, Burst: 100},
		},
		Store: Store{Driver: "sqlite", Path: "jmlgate.db"},
		Log:   Log{Level: "info", Format: "json"},
		SCIM:  SCIM{MaxResults: 1000, Bulk: Bulk{MaxOperations: 1000, MaxPayloadBytes: 1 << 20}},
		MFA:   MFA{ExceptionMax: Duration(30 * 24 * time.Hour)},
	}
}

// DefaultJWT returns the values a jwt section starts from.
func DefaultJWT() JWT {
	return JWT{
		ScopesClaim: "scope",
		Algorithms:  []string{"RS256", "ES256", "EdDSA"},
		Leeway:      Duration(60 * time.Second),
		JWKSRefresh: Duration(15 * time.Minute),
	}
}

// UnmarshalYAML decodes a jwt section on top of DefaultJWT, so keys left out
// keep their defaults.
func (j *JWT) UnmarshalYAML(unmarshal func(any) error) error {
	*j = DefaultJWT()
	type plain JWT // no UnmarshalYAML: avoids recursion
	return unmarshal((*plain)(j))
}

// Load reads the file at path and returns the validated configuration. An
// empty path returns Default(), validated.
//
// Errors: a file that cannot be read is returned wrapped as is; every other
// failure is an *Error listing all problems found (undefined environment
// variables, YAML syntax, unknown keys, wrong types, invalid values), each
// with its key path and, where known, its line.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if e, ok := err.(*Error); ok {
		e.File = path
	}
	if c != nil {
		c.file = path
	}
	return c, err
}

// Parse is Load on data already read; lookupEnv resolves ${VAR} references
// (os.LookupEnv in production; nil means no variable is defined).
//
// Environment references are expanded in the text before parsing, on every
// line except full-line comments: ${VAR} is VAR's value, ${VAR:-default}
// is the default when VAR is unset or empty, $$ is a literal $, and any other
// $ is kept as is. A value is inserted verbatim, so quote the scalar
// ("${DSN}") when the value may hold YAML-significant characters.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	expanded, problems := expandEnv(data, lookupEnv)
	c := Default()
	problems = append(problems, decode(expanded, c)...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	c.Server.BaseURL = strings.TrimRight(c.Server.BaseURL, "/")
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Line returns the line of the file that the key path (as in Problem.Path,
// e.g. "roles[2].when") was read from, or 0 when it is unknown: the key was
// not in the file, or c was not parsed from one. Callers that check parts
// of the configuration Validate cannot (such as role expressions) use it to
// report problems the way Validate does.
func (c *Config) Line(path string) int { return c.lines[path] }

// Duration is a time.Duration written as a Go duration string ("30s",
// "15m", "1h30m"). Bare numbers are rejected: they have no unit.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return fmt.Errorf("want a duration like \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like \"30s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// decode parses data, checks it against Config's keys and types, and on
// success decodes it onto c.
func decode(data []byte, c *Config) []Problem {
	lines, problems := check(data)
	if len(problems) > 0 {
		return problems
	}
	if lines == nil { // empty document: keep the defaults
		return nil
	}
	if err := yaml.Unmarshal(data, c); err != nil {
		// check accepted every key and leaf, so this is unexpected (for
		// example a leaf reached only through an alias).
		return []Problem{yamlProblem(err, "")}
	}
	c.lines = lines
	return nil
}
