package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jmlgate/jmlgate/internal/config"
)

// Settings of the JWKS loader.
const (
	// MinJWKSReload is the shortest interval between two JWKS loads, whether
	// for the periodic refresh, an unknown key id, or a failed load: a flood
	// of tokens with made-up key ids cannot flood the identity provider.
	MinJWKSReload = time.Minute
	// jwksTimeout bounds one fetch of a jwks_url.
	jwksTimeout = 10 * time.Second
	// maxJWKSBytes bounds a key set document.
	maxJWKSBytes = 1 << 20
)

// asymmetric is every signature algorithm a JWT may use: never "none" nor
// an HMAC, so a public key can never serve as a shared secret.
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// jwtVerifier checks JWTs against a JWKS loaded from a file or a URL and
// reloaded lazily: every refresh interval, and when a token names an
// unknown key id, at most once per MinJWKSReload either way. A failed
// reload keeps the previous keys.
type jwtVerifier struct {
	issuer, audience, claim string
	algs                    []jose.SignatureAlgorithm
	leeway, refresh         time.Duration
	source                  string // for messages: the file or URL
	load                    func(ctx context.Context) ([]byte, error)

	loadMu sync.Mutex // serialises loads

	mu        sync.Mutex // guards the fields below
	keys      []jose.JSONWebKey
	loaded    time.Time // last successful load
	attempted time.Time // last load attempt
	loadErr   error     // error of the last attempt, if it failed
}

func newJWTVerifier(c config.JWT) (*jwtVerifier, error) {
	d := config.DefaultJWT()
	if c.ScopesClaim == "" {
		c.ScopesClaim = d.ScopesClaim
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = d.Algorithms
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = d.JWKSRefresh
	}
	switch {
	case c.Issuer == "":
		return nil, errors.New("auth: jwt: issuer is required")
	case c.Audience == "":
		return nil, errors.New("auth: jwt: audience is required")
	case (c.JWKSFile == "") == (c.JWKSURL == ""):
		return nil, errors.New("auth: jwt: set exactly one of jwks_file and jwks_url")
	case c.Leeway < 0:
		return nil, errors.New("auth: jwt: leeway must not be negative")
	}
	v := &jwtVerifier{
		issuer:   c.Issuer,
		audience: c.Audience,
		claim:    c.ScopesClaim,
		leeway:   c.Leeway.D(),
		refresh:  c.JWKSRefresh.D(),
	}
	for _, a := range c.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !slices.Contains(asymmetric, alg) {
			return nil, fmt.Errorf("auth: jwt: algorithm %q is not allowed (only asymmetric algorithms)", a)
		}
		v.algs = append(v.algs, alg)
	}
	if c.JWKSFile != "" {
		path := c.JWKSFile
		v.source = path
		v.load = func(context.Context) ([]byte, error) { return os.ReadFile(path) }
		// Fail fast on a missing or broken file.
		data, err := v.load(context.Background())
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: %w", err)
		}
		keys, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: %s: %w", path, err)
		}
		v.keys = keys
		// loaded/attempted stay zero: the first token reloads the file and
		// starts the clock, which lets tests inject time freely.
	} else {
		url := c.JWKSURL
		v.source = url
		client := &http.Client{Timeout: jwksTimeout}
		v.load = func(ctx context.Context) ([]byte, error) { return fetch(ctx, client, url) }
	}
	return v, nil
}

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSBytes)
	}
	return data, nil
}

// parseJWKS decodes a key set and keeps the public signature keys; private
// halves are dropped and symmetric keys ignored.
func parseJWKS(data []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("invalid JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		pub := k.Public()
		if !pub.IsPublic() || !pub.Valid() {
			continue // symmetric or unusable
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no public signature key")
	}
	return keys, nil
}

// reload loads the key set unless a load was attempted less than
// MinJWKSReload ago. With wait false it gives up at once if another load is
// running. The load outlives a cancelled ctx (bounded by its own timeout):
// its result serves every caller.
func (v *jwtVerifier) reload(ctx context.Context, now time.Time, wait bool) {
	if wait {
		v.loadMu.Lock()
	} else if !v.loadMu.TryLock() {
		return
	}
	defer v.loadMu.Unlock()
	v.mu.Lock()
	recent := !v.attempted.IsZero() && now.Sub(v.attempted) < MinJWKSReload && !now.Before(v.attempted)
	if !recent {
		v.attempted = now
	}
	v.mu.Unlock()
	if recent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	defer cancel()
	data, err := v.load(ctx)
	var keys []jose.JSONWebKey
	if err == nil {
		keys, err = parseJWKS(data)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.loadErr = err
		return
	}
	v.keys, v.loaded, v.loadErr = keys, now, nil
}

func (v *jwtVerifier) snapshot() ([]jose.JSONWebKey, time.Time, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys, v.loaded, v.loadErr
}

// candidates returns the keys that may have signed a token with that key id
// and algorithm.
func candidates(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (v *jwtVerifier) verify(ctx context.Context, bearer string, now time.Time) (*Principal, error) {
	tok, err := jwt.ParseSigned(bearer, v.algs)
	if err != nil {
		// Covers a malformed token and an algorithm outside the allow-list
		// (including "none" and HMAC).
		return nil, fmt.Errorf("%w: jwt: malformed or signed with an algorithm not allowed (want %s)", ErrInvalid, algNames(v.algs))
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: jwt: want exactly one signature", ErrInvalid)
	}
	kid, alg := tok.Headers[0].KeyID, tok.Headers[0].Algorithm

	keys, loaded, _ := v.snapshot()
	if keys == nil || loaded.IsZero() || now.Sub(loaded) >= v.refresh {
		// Block only if there is nothing to verify with yet.
		v.reload(ctx, now, keys == nil)
		keys, _, _ = v.snapshot()
	}
	cands := candidates(keys, kid, alg)
	if len(cands) == 0 && kid != "" {
		// Perhaps the provider rotated its keys.
		v.reload(ctx, now, true)
		keys, _, _ = v.snapshot()
		cands = candidates(keys, kid, alg)
	}
	if keys == nil {
		_, _, loadErr := v.snapshot()
		return nil, fmt.Errorf("auth: jwt: no key set from %s: %v", v.source, loadErr)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: jwt: no key with id %q for %s in the key set", ErrInvalid, kid, alg)
	}

	var (
		c        jwt.Claims
		raw      map[string]any // for the scopes claim
		verified bool
	)
	for _, k := range cands {
		if err := tok.Claims(k.Key, &c, &raw); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: jwt: signature does not verify", ErrInvalid)
	}

	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: jwt: no exp claim", ErrInvalid)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: jwt: no sub claim", ErrInvalid)
	}
	err = c.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.issuer,
		AnyAudience: jwt.Audience{v.audience},
		Time:        now,
	}, v.leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, fmt.Errorf("%w: jwt: expired at %s", ErrExpired, c.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, fmt.Errorf("%w: jwt: issuer is not %q", ErrInvalid, v.issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, fmt.Errorf("%w: jwt: audience does not include %q", ErrInvalid, v.audience)
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, fmt.Errorf("%w: jwt: not valid before %s", ErrInvalid, c.NotBefore.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, fmt.Errorf("%w: jwt: issued in the future", ErrInvalid)
	case err != nil:
		return nil, fmt.Errorf("%w: jwt: claims do not validate", ErrInvalid)
	}

	return &Principal{
		Name:    "jwt:" + c.Subject,
		Scopes:  knownScopes(scopeNames(raw[v.claim])),
		Kind:    KindJWT,
		Subject: c.Subject,
		Expires: c.Expiry.Time().UTC(),
	}, nil
}

// scopeNames reads a scopes claim: a space-separated string or an array of
// strings. Anything else yields nothing.
func scopeNames(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func algNames(algs []jose.SignatureAlgorithm) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
