package auth

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/store"
)

// TokenSource finds stored tokens by the SHA-256 of their value. It returns
// store.ErrNotFound (possibly wrapped) when there is none; revoked tokens are
// returned too, with Revoked set.
type TokenSource interface {
	TokenByHash(ctx context.Context, hash []byte) (*store.Token, error)
}

// Defaults for the store-token cache.
const (
	DefaultCacheTTL  = 5 * time.Second
	DefaultCacheSize = 10000
)

// maxBearerLen bounds what is hashed or parsed; longer values are invalid.
const maxBearerLen = 16 << 10

// Authenticator verifies bearer credentials. It is safe for concurrent use
// once its exported fields are set.
type Authenticator struct {
	// CacheTTL is how long a stored token found by TokenSource is reused
	// without asking again. A revocation or deletion therefore takes effect
	// within CacheTTL (at once in this process if Forget is called); an
	// expiry is checked on every request and takes effect exactly. 0
	// disables the cache. Default DefaultCacheTTL. Set before first use.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached tokens. Default
	// DefaultCacheSize. Set before first use.
	CacheSize int

	now    func() time.Time
	tokens TokenSource
	static []staticToken
	jwt    *jwtVerifier

	mu    sync.Mutex
	cache map[[32]byte]cacheEntry
}

type staticToken struct {
	hash    []byte
	name    string
	scopes  []Scope
	expires time.Time
}

type cacheEntry struct {
	tok *store.Token
	at  time.Time
}

// New builds an Authenticator over the configured tokens and JWT settings,
// stored tokens from tokens (nil: none), and the clock now (nil: time.Now).
//
// It fails if a configured token has a malformed hash or an unknown scope,
// if the JWT settings are incomplete or allow a symmetric algorithm, or if
// jwks_file cannot be read or holds no usable key. A jwks_url is not fetched
// here but on the first JWT presented.
func New(cfg config.Auth, tokens TokenSource, now func() time.Time) (*Authenticator, error) {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{
		CacheTTL:  DefaultCacheTTL,
		CacheSize: DefaultCacheSize,
		now:       now,
		tokens:    tokens,
		cache:     map[[32]byte]cacheEntry{},
	}
	for i, t := range cfg.Tokens {
		h, err := hex.DecodeString(t.SHA256)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("auth: tokens[%d] (%q): sha256 must be 64 hex characters", i, t.Name)
		}
		scopes, err := ParseScopes(t.Scopes)
		if err != nil {
			return nil, fmt.Errorf("auth: tokens[%d] (%q): %w", i, t.Name, err)
		}
		a.static = append(a.static, staticToken{hash: h, name: t.Name, scopes: scopes, expires: t.Expires})
	}
	if cfg.JWT != nil {
		v, err := newJWTVerifier(*cfg.JWT)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Authenticate verifies bearer, the credential of an Authorization: Bearer
// header without the "Bearer " prefix.
//
// With JWT configured, a value made of three dot-separated parts is checked
// as a JWT only; anything else is hashed and looked up among the configured
// tokens (compared in constant time) and then the stored ones.
//
// Errors: ErrMissing for "", ErrInvalid for an unknown or unverifiable
// credential, ErrExpired after its expiry, ErrRevoked for a revoked stored
// token, all wrapped with the reason; any other error means the store or
// the JWKS could not be reached and the credential was not judged.
func (a *Authenticator) Authenticate(ctx context.Context, bearer string) (*Principal, error) {
	if bearer == "" {
		return nil, ErrMissing
	}
	if len(bearer) > maxBearerLen {
		return nil, fmt.Errorf("%w: credential longer than %d bytes", ErrInvalid, maxBearerLen)
	}
	if strings.ContainsFunc(bearer, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, fmt.Errorf("%w: credential contains spaces or non-ASCII characters", ErrInvalid)
	}
	now := a.now()
	if a.jwt != nil && strings.Count(bearer, ".") == 2 {
		return a.jwt.verify(ctx, bearer, now)
	}

	hash := HashToken(bearer)
	if t := a.matchStatic(hash); t != nil {
		if !t.expires.IsZero() && !now.Before(t.expires) {
			return nil, fmt.Errorf("%w: token %q expired at %s", ErrExpired, t.name, t.expires.UTC().Format(time.RFC3339))
		}
		return &Principal{
			Name:    t.name,
			Scopes:  slices.Clone(t.scopes),
			Kind:    KindConfigToken,
			Subject: t.name,
			Expires: t.expires,
		}, nil
	}
	if a.tokens == nil {
		return nil, fmt.Errorf("%w: unknown token", ErrInvalid)
	}
	tok, err := a.lookup(ctx, hash, now)
	if err != nil {
		return nil, err
	}
	switch {
	case !tok.Revoked.IsZero():
		return nil, fmt.Errorf("%w: token %q was revoked at %s", ErrRevoked, tok.Name, tok.Revoked.UTC().Format(time.RFC3339))
	case !tok.Expires.IsZero() && !now.Before(tok.Expires):
		return nil, fmt.Errorf("%w: token %q expired at %s", ErrExpired, tok.Name, tok.Expires.UTC().Format(time.RFC3339))
	}
	return &Principal{
		Name:    tok.Name,
		Scopes:  knownScopes(tok.Scopes), // the store only holds known ones; drop any other
		Kind:    KindToken,
		Subject: tok.ID,
		Expires: tok.Expires,
	}, nil
}

// matchStatic compares hash with every configured token in constant time,
// without stopping at a match, so timing tells nothing about which or how
// many tokens exist. It returns the match or nil.
func (a *Authenticator) matchStatic(hash []byte) *staticToken {
	var found *staticToken
	for i := range a.static {
		if subtle.ConstantTimeCompare(a.static[i].hash, hash) == 1 {
			found = &a.static[i]
		}
	}
	return found
}

// lookup returns the stored token with that hash, from the cache when a
// fresh entry exists. Only found tokens are cached, so a token created a
// moment ago is never hidden by an earlier miss.
func (a *Authenticator) lookup(ctx context.Context, hash []byte, now time.Time) (*store.Token, error) {
	key := [32]byte(hash)
	if a.CacheTTL > 0 {
		a.mu.Lock()
		e, ok := a.cache[key]
		a.mu.Unlock()
		if ok && now.Sub(e.at) < a.CacheTTL && !now.Before(e.at) {
			return e.tok, nil
		}
	}
	tok, err := a.tokens.TokenByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: unknown token", ErrInvalid)
	case err != nil:
		return nil, fmt.Errorf("auth: looking up token: %w", err)
	case tok == nil:
		return nil, fmt.Errorf("auth: looking up token: token source returned nothing")
	}
	if a.CacheTTL > 0 && a.CacheSize > 0 {
		a.mu.Lock()
		if _, present := a.cache[key]; !present && len(a.cache) >= a.CacheSize {
			a.evictLocked(now)
		}
		a.cache[key] = cacheEntry{tok: tok, at: now}
		a.mu.Unlock()
	}
	return tok, nil
}

// evictLocked drops stale entries, and if none were stale one arbitrary
// entry, making room for one more.
func (a *Authenticator) evictLocked(now time.Time) {
	before := len(a.cache)
	for k, e := range a.cache {
		if now.Sub(e.at) >= a.CacheTTL {
			delete(a.cache, k)
		}
	}
	if len(a.cache) < before {
		return
	}
	for k := range a.cache { // map order is random: a random victim
		delete(a.cache, k)
		return
	}
}

// Forget drops the cached lookup of the token with that hash, so a
// revocation made by this process takes effect at once.
func (a *Authenticator) Forget(hash []byte) {
	if len(hash) != 32 {
		return
	}
	a.mu.Lock()
	delete(a.cache, [32]byte(hash))
	a.mu.Unlock()
}
