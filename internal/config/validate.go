package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scope names a static token may carry. internal/auth defines the same set.
var scopeNames = []string{"scim", "approve", "audit", "admin"}

// Signature algorithms a jwt section may allow: asymmetric only, so a
// public JWKS key can never be used as an HMAC secret.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate checks every value and returns an *Error listing every problem
// found, or nil. It does not touch the file system or the network (a
// jwks_file that cannot be read is reported by internal/auth).
func (c *Config) Validate() error {
	v := validator{lines: c.lines}
	c.validateServer(&v)
	c.validateStore(&v)

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.add("log.level", "unknown level %q (want debug, info, warn, error)", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		v.add("log.format", "unknown format %q (want json, text)", c.Log.Format)
	}

	c.validateTokens(&v)
	if c.Auth.JWT != nil {
		c.Auth.JWT.validate(&v, "auth.jwt")
	}

	if c.MFA.ExceptionMax <= 0 || c.MFA.ExceptionMax.D() > 365*24*time.Hour {
		v.add("mfa.exception_max", "must be between 1ns and 8760h (a year), got %s", c.MFA.ExceptionMax)
	}
	c.validateEventIssuers(&v)
	if c.SCIM.MaxResults < 1 {
		v.add("scim.max_results", "must be at least 1, got %d", c.SCIM.MaxResults)
	}
	if c.SCIM.Bulk.MaxOperations < 1 {
		v.add("scim.bulk.max_operations", "must be at least 1, got %d", c.SCIM.Bulk.MaxOperations)
	}
	if c.SCIM.Bulk.MaxPayloadBytes < 1 {
		v.add("scim.bulk.max_payload_bytes", "must be at least 1, got %d", c.SCIM.Bulk.MaxPayloadBytes)
	}
	c.validateRoles(&v)
	c.validateConnectors(&v)
	if len(v.problems) > 0 {
		return &Error{File: c.file, Problems: v.problems}
	}
	return nil
}

type validator struct {
	lines    map[string]int
	problems []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Line: v.lines[path], Message: fmt.Sprintf(format, args...)})
}

// addIn is add for a key that may be missing from the file: the problem
// points at the line of the enclosing item (such as a list element) when
// the key itself has no line.
func (v *validator) addIn(parent, path, format string, args ...any) {
	line := v.lines[path]
	if line == 0 {
		line = v.lines[parent]
	}
	v.problems = append(v.problems, Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

func (c *Config) validateServer(v *validator) {
	s := &c.Server
	host, port, err := net.SplitHostPort(s.Listen)
	switch {
	case err != nil:
		v.add("server.listen", "want host:port, got %q", s.Listen)
	case !validPort(port):
		v.add("server.listen", "port %q is not a number from 0 to 65535", port)
	case strings.ContainsAny(host, " /"):
		v.add("server.listen", "invalid host %q", host)
	}
	if s.BaseURL != "" {
		u, err := url.Parse(s.BaseURL)
		switch {
		case err != nil:
			v.add("server.base_url", "not a URL: %q", s.BaseURL)
		case u.Scheme != "http" && u.Scheme != "https":
			v.add("server.base_url", "want an absolute http or https URL, got %q", s.BaseURL)
		case u.Host == "":
			v.add("server.base_url", "missing host in %q", s.BaseURL)
		case u.User != nil:
			v.add("server.base_url", "must not contain credentials")
		case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s.BaseURL, "?"):
			v.add("server.base_url", "must not have a query or fragment, got %q", s.BaseURL)
		}
	}
	if s.BodyLimit < 1 {
		v.add("server.body_limit_bytes", "must be at least 1, got %d", s.BodyLimit)
	}
	if s.RequestTimeout <= 0 {
		v.add("server.request_timeout", "must be positive, got %s", s.RequestTimeout)
	}
	if s.ShutdownTimeout <= 0 {
		v.add("server.shutdown_timeout", "must be positive, got %s", s.ShutdownTimeout)
	}
	if rl := s.RateLimit; rl.Enabled {
		if !(rl.RequestsPerSecond > 0) { // also rejects NaN
			v.add("server.rate_limit.requests_per_second", "must be positive when the rate limit is enabled, got %v", rl.RequestsPerSecond)
		}
		if rl.Burst < 1 {
			v.add("server.rate_limit.burst", "must be at least 1 when the rate limit is enabled, got %d", rl.Burst)
		}
	}
}

func (c *Config) validateStore(v *validator) {
	s := &c.Store
	switch s.Driver {
	case "sqlite":
		if s.Path == "" {
			v.add("store.path", "required with driver sqlite")
		}
		if s.DSN != "" {
			v.add("store.dsn", "only used with driver postgres; sqlite uses store.path")
		}
	case "postgres":
		if s.DSN == "" {
			v.add("store.dsn", "required with driver postgres")
		}
	default:
		v.add("store.driver", "unknown driver %q (want sqlite, postgres)", s.Driver)
	}
}

func (c *Config) validateTokens(v *validator) {
	names := map[string]int{}
	hashes := map[string]int{}
	for i, t := range c.Auth.Tokens {
		p := fmt.Sprintf("auth.tokens[%d]", i)
		switch {
		case t.Name == "":
			v.add(p+".name", "required")
		case len(t.Name) > 64 || strings.ContainsFunc(t.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			v.add(p+".name", "want at most 64 characters without spaces or control characters")
		default:
			if j, dup := names[t.Name]; dup {
				v.add(p+".name", "duplicate token name %q (also auth.tokens[%d])", t.Name, j)
			} else {
				names[t.Name] = i
			}
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			// The value is a hash, not a secret, but quoting it is useless.
			v.add(p+".sha256", "must be 64 hex characters (the SHA-256 of the token), got %d characters", len(t.SHA256))
		} else {
			h := strings.ToLower(t.SHA256)
			if j, dup := hashes[h]; dup {
				v.add(p+".sha256", "same hash as auth.tokens[%d]", j)
			} else {
				hashes[h] = i
			}
		}
		if len(t.Scopes) == 0 {
			v.add(p+".scopes", "at least one scope is required (scim, approve, audit, admin)")
		}
		for j, s := range t.Scopes {
			sp := fmt.Sprintf("%s.scopes[%d]", p, j)
			switch {
			case !slices.Contains(scopeNames, s):
				v.add(sp, "unknown scope %q (want %s)", s, strings.Join(scopeNames, ", "))
			case slices.Index(t.Scopes, s) < j:
				v.add(sp, "duplicate scope %q", s)
			}
		}
	}
}

// roleName is the shape of a role name: short, lower-case, safe in URLs,
// logs and metric labels.
var roleName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// MaxApprovals bounds Role.ApprovalsRequired for a privileged role.
const MaxApprovals = 5

func (c *Config) validateRoles(v *validator) {
	names := map[string]int{}
	for i, r := range c.Roles {
		p := fmt.Sprintf("roles[%d]", i)
		switch {
		case r.Name == "":
			v.addIn(p, p+".name", "required")
		case !roleName.MatchString(r.Name):
			v.add(p+".name", `invalid name %q: want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit`, r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				v.add(p+".name", "duplicate role name %q (also roles[%d])", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if strings.TrimSpace(r.When) == "" {
			v.addIn(p, p+".when", `required: a CEL expression over user, such as user.department == "Engineering"`)
		}
		if len(r.Grants) == 0 {
			v.addIn(p, p+".grants", "at least one grant {connector, entitlement} is required")
		}
		grants := map[Grant]int{}
		for j, g := range r.Grants {
			gp := fmt.Sprintf("%s.grants[%d]", p, j)
			missing := false
			if strings.TrimSpace(g.Connector) == "" {
				v.addIn(gp, gp+".connector", "required")
				missing = true
			}
			if strings.TrimSpace(g.Entitlement) == "" {
				v.addIn(gp, gp+".entitlement", "required")
				missing = true
			}
			if missing {
				continue
			}
			if k, dup := grants[g]; dup {
				v.add(gp, "duplicate grant of %q in connector %q (also %s.grants[%d])", g.Entitlement, g.Connector, p, k)
			} else {
				grants[g] = j
			}
		}
		switch {
		case r.Privileged && (r.ApprovalsRequired < 1 || r.ApprovalsRequired > MaxApprovals):
			v.add(p+".approvals_required", "must be from 1 to %d for a privileged role, got %d", MaxApprovals, r.ApprovalsRequired)
		case !r.Privileged && r.ApprovalsRequired != 0:
			v.add(p+".approvals_required", "must be 0 (or absent) when the role is not privileged, got %d", r.ApprovalsRequired)
		}
	}
}

func (j *JWT) validate(v *validator, p string) {
	if j.Issuer == "" {
		v.add(p+".issuer", "required")
	}
	if j.Audience == "" {
		v.add(p+".audience", "required")
	}
	validateJWKSSource(v, p, j.JWKSFile, j.JWKSURL)
	if j.ScopesClaim == "" {
		v.add(p+".scopes_claim", "must not be empty")
	}
	validateAlgorithms(v, p, j.Algorithms)
	if j.Leeway < 0 {
		v.add(p+".leeway", "must not be negative, got %s", j.Leeway)
	}
	if j.JWKSRefresh <= 0 {
		v.add(p+".jwks_refresh", "must be positive, got %s", j.JWKSRefresh)
	}
}

// validateJWKSSource checks that exactly one of a section's jwks_file and
// jwks_url is set, and that the URL is https or http to a loopback host.
// Problems about the pair are reported at the section's path p.
func validateJWKSSource(v *validator, p, file, jwksURL string) {
	switch {
	case file == "" && jwksURL == "":
		v.add(p, "set one of jwks_file and jwks_url")
	case file != "" && jwksURL != "":
		v.add(p, "set only one of jwks_file and jwks_url, not both")
	case jwksURL != "":
		u, err := url.Parse(jwksURL)
		switch {
		case err != nil || u.Host == "":
			v.add(p+".jwks_url", "want an absolute https URL, got %q", jwksURL)
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopback(u.Hostname()):
		default:
			v.add(p+".jwks_url", "want https (http only to a loopback host), got %q", jwksURL)
		}
	}
}

// validateAlgorithms checks a signature allow-list at p+".algorithms":
// non-empty, asymmetric algorithms only.
func validateAlgorithms(v *validator, p string, algs []string) {
	if len(algs) == 0 {
		v.addIn(p, p+".algorithms", "at least one algorithm is required (%s)", strings.Join(jwtAlgorithms, ", "))
	}
	for i, a := range algs {
		ap := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case strings.EqualFold(a, "none") || strings.HasPrefix(a, "HS"):
			v.add(ap, "%q is not allowed: only asymmetric signatures are accepted (%s)", a, strings.Join(jwtAlgorithms, ", "))
		case !slices.Contains(jwtAlgorithms, a):
			v.add(ap, "unknown algorithm %q (want %s)", a, strings.Join(jwtAlgorithms, ", "))
		}
	}
}

// MaxEventAge bounds EventIssuer.MaxAge: the iat window, and so how long
// each accepted SET's jti is kept against replay.
const MaxEventAge = 24 * time.Hour

func (c *Config) validateEventIssuers(v *validator) {
	issuers := map[string]int{}
	for i, e := range c.MFA.EventIssuers {
		p := fmt.Sprintf("mfa.event_issuers[%d]", i)
		switch {
		case e.Issuer == "":
			v.addIn(p, p+".issuer", "required: the iss of the identity provider's SETs")
		default:
			if j, dup := issuers[e.Issuer]; dup {
				v.add(p+".issuer", "duplicate issuer %q (also mfa.event_issuers[%d])", e.Issuer, j)
			} else {
				issuers[e.Issuer] = i
			}
		}
		if e.Audience == "" {
			v.addIn(p, p+".audience", "required: the aud the identity provider addresses this receiver by")
		}
		validateJWKSSource(v, p, e.JWKSFile, e.JWKSURL)
		validateAlgorithms(v, p, e.Algorithms)
		if e.MaxAge <= 0 || e.MaxAge.D() > MaxEventAge {
			v.addIn(p, p+".max_age", "must be between 1ns and %s, got %s", MaxEventAge, e.MaxAge)
		}
		if e.JWKSRefresh <= 0 {
			v.addIn(p, p+".jwks_refresh", "must be positive, got %s", e.JWKSRefresh)
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

var connectorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validateConnectors checks the connector list's shape. CheckConnectors
// checks what needs the list of connector types; each type's own section is
// checked when the connector is opened (DecodeSection).
func (c *Config) validateConnectors(v *validator) {
	seen := map[string]bool{}
	for i, cn := range c.Connectors {
		p := fmt.Sprintf("connectors[%d]", i)
		switch {
		case cn.Name == "":
			v.add(p+".name", "required")
		case !connectorName.MatchString(cn.Name):
			v.add(p+".name", "%q: use lowercase letters, digits, '-' and '_' (at most 63)", cn.Name)
		case seen[cn.Name]:
			v.add(p+".name", "%q is already used by another connector", cn.Name)
		}
		seen[cn.Name] = true
		if cn.Type == "" {
			v.add(p+".type", "required (scim, webhook or postgres)")
		}
		if cn.Concurrency < 1 || cn.Concurrency > 256 {
			v.add(p+".concurrency", "must be between 1 and 256, got %d", cn.Concurrency)
		}
		if cn.Rate < 0 {
			v.add(p+".rate", "must not be negative, got %g", cn.Rate)
		}
		if cn.Burst < 0 {
			v.add(p+".burst", "must not be negative, got %d", cn.Burst)
		}
		if cn.MaxAttempts < 1 || cn.MaxAttempts > 100 {
			v.add(p+".max_attempts", "must be between 1 and 100, got %d", cn.MaxAttempts)
		}
		if cn.Drift != "report" && cn.Drift != "revoke" {
			v.add(p+".drift", "unknown value %q (want report or revoke)", cn.Drift)
		}
		if cn.ReconcileInterval < 0 || (cn.ReconcileInterval > 0 && cn.ReconcileInterval.D() < time.Minute) {
			v.add(p+".reconcile_interval", "must be 0 (on demand only) or at least 1m, got %s", cn.ReconcileInterval)
		}
	}
	d := c.Delivery
	if d.Poll != 0 && (d.Poll.D() < time.Millisecond || d.Poll.D() > time.Minute) {
		v.add("delivery.poll", "must be between 1ms and 1m, got %s", d.Poll)
	}
	if d.OpTimeout < 0 {
		v.add("delivery.op_timeout", "must not be negative, got %s", d.OpTimeout)
	}
	if d.BackoffBase < 0 {
		v.add("delivery.backoff_base", "must not be negative, got %s", d.BackoffBase)
	}
	if d.BackoffMax < 0 || (d.BackoffMax > 0 && d.BackoffMax < d.BackoffBase) {
		v.add("delivery.backoff_max", "must be at least backoff_base (%s), got %s", d.BackoffBase, d.BackoffMax)
	}
}

// CheckConnectors reports, all at once, connectors whose type is not among
// types and role grants that name no configured connector. Validate cannot
// do it: the types are registered by the binary, and a role file is often
// validated on its own. Returns nil or an *Error.
func (c *Config) CheckConnectors(types []string) error {
	v := validator{lines: c.lines}
	names := map[string]bool{}
	for i, cn := range c.Connectors {
		names[cn.Name] = true
		if cn.Type != "" && !slices.Contains(types, cn.Type) {
			v.add(fmt.Sprintf("connectors[%d].type", i), "unknown type %q (want one of %s)", cn.Type, strings.Join(types, ", "))
		}
	}
	for i, r := range c.Roles {
		for j, g := range r.Grants {
			if g.Connector != "" && !names[g.Connector] {
				v.add(fmt.Sprintf("roles[%d].grants[%d].connector", i, j), "no connector named %q is configured (see connectors)", g.Connector)
			}
		}
	}
	if len(v.problems) > 0 {
		return &Error{File: c.file, Problems: v.problems}
	}
	return nil
}
