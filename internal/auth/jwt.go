package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jmlgate/jmlgate/internal/config"
	jwkset "github.com/jmlgate/jmlgate/internal/jwks"
)

// Settings of the JWKS loader.
const (
	// MinJWKSReload is the shortest interval between two JWKS loads, whether
	// for the periodic refresh, an unknown key id, or a failed load: a flood
	// of tokens with made-up key ids cannot flood the identity provider.
	MinJWKSReload = jwkset.MinReload
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
	leeway                  time.Duration
	keys                    *jwkset.Cache
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
		load := func(context.Context) ([]byte, error) { return os.ReadFile(path) }
		// Fail fast on a missing or broken file.
		data, err := load(context.Background())
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: %w", err)
		}
		keys, err := jwkset.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: %s: %w", path, err)
		}
		// The first token reloads the file and starts the clock, which
		// lets tests inject time freely.
		v.keys = jwkset.NewCache(path, load, c.JWKSRefresh.D(), keys)
	} else {
		url := c.JWKSURL
		client := &http.Client{Timeout: jwkset.Timeout}
		v.keys = jwkset.NewCache(url, func(ctx context.Context) ([]byte, error) { return jwkset.Fetch(ctx, client, url) },
			c.JWKSRefresh.D(), nil)
	}
	return v, nil
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

	cands, have, loadErr := v.keys.Keys(ctx, kid, alg, now)
	if !have {
		return nil, fmt.Errorf("auth: jwt: no key set from %s: %v", v.keys.Source(), loadErr)
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
