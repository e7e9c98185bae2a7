// Package auth authenticates bearer credentials and carries the caller's
// scopes.
//
// Three kinds of credential are accepted: tokens declared (as SHA-256
// hashes) in the configuration file, tokens stored (also hashed) in the
// store, and, when configured, JWTs signed by a key of an identity
// provider's JWKS. The package knows nothing about HTTP; the HTTP layer
// extracts the bearer value and maps the errors below to 401/403.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Authenticate wraps them with %w and a reason that never
// contains the credential; callers test with errors.Is. Any other error
// means the credential could not be checked (store or JWKS unavailable) and
// is the server's fault, not the caller's.
var (
	// ErrMissing: no credential was presented.
	ErrMissing = errors.New("auth: missing bearer credential")
	// ErrInvalid: the credential is unknown, malformed, or fails
	// verification (signature, issuer, audience, algorithm, key id).
	ErrInvalid = errors.New("auth: invalid credential")
	// ErrExpired: the credential was valid but its expiry has passed.
	ErrExpired = errors.New("auth: credential expired")
	// ErrRevoked: the stored token was revoked.
	ErrRevoked = errors.New("auth: credential revoked")
)

// Scope is a permission a caller holds. Scopes are independent: admin does
// not imply the others (an administrator approving their own requests would
// defeat the approval step).
type Scope string

// Scopes.
const (
	ScopeSCIM    Scope = "scim"    // HR clients: /scim/v2/*
	ScopeApprove Scope = "approve" // IT: approvals and exceptions
	ScopeAudit   Scope = "audit"   // auditors: read-only history and evidence
	ScopeAdmin   Scope = "admin"   // connectors, secrets, dead letters
)

// AllScopes lists every scope in documentation order.
var AllScopes = []Scope{ScopeSCIM, ScopeApprove, ScopeAudit, ScopeAdmin}

func knownScope(s string) (Scope, bool) {
	for _, k := range AllScopes {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// ParseScopes converts scope names, dropping duplicates and keeping the
// order given. An unknown name is an error naming it.
func ParseScopes(names []string) ([]Scope, error) {
	out := make([]Scope, 0, len(names))
	for _, n := range names {
		s, ok := knownScope(n)
		if !ok {
			return nil, fmt.Errorf("auth: unknown scope %q (want scim, approve, audit, admin)", n)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// knownScopes keeps the names that are scopes, deduplicated; others are
// ignored (used for JWT claims and stored tokens).
func knownScopes(names []string) []Scope {
	var out []Scope
	for _, n := range names {
		if s, ok := knownScope(n); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// TokenPrefix starts every token NewToken makes, so leaked tokens are easy
// to recognise (for example by secret scanners).
const TokenPrefix = "jmg_"

// NewToken returns a fresh random token, TokenPrefix followed by the 43
// base64url characters of 32 random bytes, and its SHA-256 (what the store
// and the configuration file keep). The error comes from the system's random
// source.
func NewToken() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("auth: generating token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken returns the SHA-256 of token, as stored.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Principal is an authenticated caller. Treat it as read-only.
type Principal struct {
	// Name identifies the caller in audit records: the token name, or
	// "jwt:" + sub for a JWT.
	Name   string
	Scopes []Scope
	// Kind is "config-token", "token" (from the store) or "jwt".
	Kind string
	// Subject is the token name for config tokens, the token ID for stored
	// tokens, and the sub claim for JWTs.
	Subject string
	// Expires is when the credential stops being accepted; zero: never.
	Expires time.Time
}

// Principal kinds.
const (
	KindConfigToken = "config-token"
	KindToken       = "token"
	KindJWT         = "jwt"
)

// Has reports whether p holds scope s. A nil Principal holds nothing.
func (p *Principal) Has(s Scope) bool {
	return p != nil && slices.Contains(p.Scopes, s)
}

// String names the principal for logs.
func (p *Principal) String() string {
	if p == nil {
		return "anonymous"
	}
	scopes := make([]string, len(p.Scopes))
	for i, s := range p.Scopes {
		scopes[i] = string(s)
	}
	return fmt.Sprintf("%s (%s; scopes %s)", p.Name, p.Kind, strings.Join(scopes, ","))
}
