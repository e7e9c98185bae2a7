package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jmlgate/jmlgate/internal/config"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "jmlgate"
)

type testKeys struct {
	ed, edOther ed25519.PrivateKey
	rsa         *rsa.PrivateKey
	ec          *ecdsa.PrivateKey
}

// keys are generated once: RSA generation is slow under -race.
var keys = sync.OnceValue(func() testKeys {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	_, edOther, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKeys{ed: ed, edOther: edOther, rsa: r, ec: ec}
})

// jwks returns the public key set for the named keys ("ed1", "rsa1", "ec1",
// "ed2"); ed2 is edOther.
func jwks(kids ...string) []byte {
	k := keys()
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		var pub any
		alg := ""
		switch kid {
		case "ed1":
			pub, alg = k.ed.Public(), "EdDSA"
		case "ed2":
			pub, alg = k.edOther.Public(), "EdDSA"
		case "rsa1":
			pub, alg = k.rsa.Public(), "RS256"
		case "ec1":
			pub = k.ec.Public() // no alg: any allowed algorithm may try it
		default:
			panic(kid)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func baseClaims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss":   testIssuer,
		"aud":   testAudience,
		"sub":   "alice",
		"iat":   t0.Add(-time.Minute).Unix(),
		"exp":   t0.Add(10 * time.Minute).Unix(),
		"scope": "openid scim audit",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwksServer serves a key set that tests can replace, counting requests.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int64
}

// newJWKSServerB serves a fixed key set for a benchmark and returns its URL.
func newJWKSServerB(b *testing.B, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	b.Cleanup(srv.Close)
	return srv.URL
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.set(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if code := int(s.status.Load()); code != http.StatusOK {
			http.Error(w, "down", code)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(b []byte) { s.body.Store(&b) }

func jwtConfig(mod func(*config.JWT)) config.Auth {
	j := config.DefaultJWT()
	j.Issuer, j.Audience = testIssuer, testAudience
	mod(&j)
	return config.Auth{JWT: &j}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	k := keys()
	set := jwks("ed1", "rsa1", "ec1")

	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, set)

	// Tokens are built once and checked against both sources.
	rsaPub, err := json.Marshal(jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "rsa1"})
	if err != nil {
		t.Fatal(err)
	}
	alice := &Principal{Name: "jwt:alice", Scopes: []Scope{ScopeSCIM, ScopeAudit}, Kind: KindJWT, Subject: "alice", Expires: t0.Add(10 * time.Minute)}
	tests := []struct {
		name  string
		token string
		want  *Principal
		err   error
	}{
		{"Ed25519", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(nil)), alice, nil},
		{"RSA", sign(t, jose.RS256, k.rsa, "rsa1", baseClaims(nil)), alice, nil},
		{"ECDSA", sign(t, jose.ES256, k.ec, "ec1", baseClaims(nil)), alice, nil},
		{"no kid: every key is tried", sign(t, jose.EdDSA, k.ed, "", baseClaims(nil)), alice, nil},
		{"scopes as an array, unknown ones ignored", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) {
			c["scope"] = []string{"approve", "root", "approve", "admin"}
		})), &Principal{Name: "jwt:alice", Scopes: []Scope{ScopeApprove, ScopeAdmin}, Kind: KindJWT, Subject: "alice", Expires: t0.Add(10 * time.Minute)}, nil},
		{"none of our scopes", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["scope"] = "openid profile" })),
			&Principal{Name: "jwt:alice", Kind: KindJWT, Subject: "alice", Expires: t0.Add(10 * time.Minute)}, nil},
		{"scope claim of another type", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["scope"] = 42 })),
			&Principal{Name: "jwt:alice", Kind: KindJWT, Subject: "alice", Expires: t0.Add(10 * time.Minute)}, nil},
		{"audience array", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["aud"] = []string{"other", testAudience} })), alice, nil},
		{"expired within leeway", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["exp"] = t0.Add(-30 * time.Second).Unix() })),
			&Principal{Name: "jwt:alice", Scopes: []Scope{ScopeSCIM, ScopeAudit}, Kind: KindJWT, Subject: "alice", Expires: t0.Add(-30 * time.Second)}, nil},
		{"expired", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["exp"] = t0.Add(-2 * time.Minute).Unix() })), nil, ErrExpired},
		{"wrong issuer", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["iss"] = "https://evil.example" })), nil, ErrInvalid},
		{"wrong audience", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["aud"] = "someone-else" })), nil, ErrInvalid},
		{"no audience", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { delete(c, "aud") })), nil, ErrInvalid},
		{"not yet valid", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["nbf"] = t0.Add(5 * time.Minute).Unix() })), nil, ErrInvalid},
		{"issued in the future", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["iat"] = t0.Add(5 * time.Minute).Unix() })), nil, ErrInvalid},
		{"no exp", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { delete(c, "exp") })), nil, ErrInvalid},
		{"no sub", sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { delete(c, "sub") })), nil, ErrInvalid},
		{"alg none", b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"iss":"`+testIssuer+`","aud":"jmlgate","sub":"alice","exp":1999999999,"scope":"admin"}`) + ".", nil, ErrInvalid},
		{"HS256 keyed with the public RSA key", sign(t, jose.HS256, rsaPub, "rsa1", baseClaims(nil)), nil, ErrInvalid},
		{"algorithm not allowed", sign(t, jose.RS384, k.rsa, "rsa1", baseClaims(nil)), nil, ErrInvalid},
		{"key's alg differs from the token's", sign(t, jose.PS256, k.rsa, "rsa1", baseClaims(nil)), nil, ErrInvalid},
		{"signed by another key under a known kid", sign(t, jose.EdDSA, k.edOther, "ed1", baseClaims(nil)), nil, ErrInvalid},
		{"unknown kid", sign(t, jose.EdDSA, k.edOther, "ed2", baseClaims(nil)), nil, ErrInvalid},
		{"tampered payload", func() string {
			parts := strings.Split(sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(nil)), ".")
			parts[1] = b64(`{"iss":"` + testIssuer + `","aud":"jmlgate","sub":"mallory","exp":1999999999,"scope":"admin"}`)
			return strings.Join(parts, ".")
		}(), nil, ErrInvalid},
		{"garbage with two dots", "not.a.jwt", nil, ErrInvalid},
	}

	sources := []struct {
		name string
		mod  func(*config.JWT)
	}{
		{"file", func(j *config.JWT) { j.JWKSFile = file }},
		{"url", func(j *config.JWT) { j.JWKSURL = srv.URL }},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(jwtConfig(func(j *config.JWT) {
				src.mod(j)
				j.Algorithms = []string{"EdDSA", "RS256", "ES256", "PS256"}
			}), nil, newClock().Now)
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					p, err := a.Authenticate(context.Background(), tt.token)
					checkErr(t, err, tt.err, tt.token)
					if !reflect.DeepEqual(p, tt.want) {
						t.Errorf("principal = %s, want %s", dump(p), dump(tt.want))
					}
				})
			}
		})
	}
}

func TestJWTScopesClaimAndLeeway(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwks("ed1"))
	a, err := New(jwtConfig(func(j *config.JWT) {
		j.JWKSURL = srv.URL
		j.ScopesClaim = "jmlgate_roles"
		j.Leeway = 0
	}), nil, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims map[string]any
		want   []Scope
		err    error
	}{
		{"configured claim", baseClaims(func(c map[string]any) { c["jmlgate_roles"] = []string{"approve"} }), []Scope{ScopeApprove}, nil},
		{"default claim is ignored", baseClaims(nil), nil, nil},
		{"no leeway: expired a second ago", baseClaims(func(c map[string]any) { c["exp"] = t0.Add(-time.Second).Unix() }), nil, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := sign(t, jose.EdDSA, k.ed, "ed1", tt.claims)
			p, err := a.Authenticate(context.Background(), tok)
			checkErr(t, err, tt.err, tok)
			if err == nil && !reflect.DeepEqual(p.Scopes, tt.want) {
				t.Errorf("scopes = %v, want %v", p.Scopes, tt.want)
			}
		})
	}
}

func TestJWKSRotationAndRefresh(t *testing.T) {
	t.Parallel()
	k := keys()
	ctx := context.Background()
	srv := newJWKSServer(t, jwks("ed1"))
	clk := newClock()
	a, err := New(jwtConfig(func(j *config.JWT) {
		j.JWKSURL = srv.URL
		j.JWKSRefresh = config.Duration(15 * time.Minute)
	}), nil, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if srv.hits.Load() != 0 {
		t.Fatal("New fetched the JWKS; it should wait for the first token")
	}
	// Tokens valid for the whole test.
	claims := baseClaims(func(c map[string]any) { c["exp"] = t0.Add(24 * time.Hour).Unix() })
	old := sign(t, jose.EdDSA, k.ed, "ed1", claims)
	rotated := sign(t, jose.EdDSA, k.edOther, "ed2", claims)

	steps := []struct {
		name     string
		advance  time.Duration
		serve    []string // key set served from this step on; nil: unchanged
		token    string
		err      error
		wantHits int64
	}{
		{"first token loads the set", 0, nil, old, nil, 1},
		{"cached", 10 * time.Second, nil, old, nil, 1},
		{"provider rotates; unknown kid reloads at most once a minute", 0, []string{"ed1", "ed2"}, rotated, ErrInvalid, 1},
		{"still within the minute: no reload", 40 * time.Second, nil, rotated, ErrInvalid, 1},
		{"a minute after the last load: reload picks up the new key", 20 * time.Second, nil, rotated, nil, 2},
		{"old key still in the set", 0, nil, old, nil, 2},
		{"provider drops the old key; cached set still has it", time.Minute, []string{"ed2"}, old, nil, 2},
		{"periodic refresh after jwks_refresh drops it", 15 * time.Minute, nil, old, ErrInvalid, 3},
		{"new key keeps working", 0, nil, rotated, nil, 3},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.serve != nil {
			srv.set(jwks(s.serve...))
		}
		_, err := a.Authenticate(ctx, s.token)
		if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
			t.Fatalf("%s: error = %v, want %v", s.name, err, s.err)
		}
		if got := srv.hits.Load(); got != s.wantHits {
			t.Fatalf("%s: JWKS fetched %d times, want %d", s.name, got, s.wantHits)
		}
	}
}

func TestJWKSUnavailable(t *testing.T) {
	t.Parallel()
	k := keys()
	ctx := context.Background()
	srv := newJWKSServer(t, jwks("ed1"))
	srv.status.Store(http.StatusServiceUnavailable)
	clk := newClock()
	a, err := New(jwtConfig(func(j *config.JWT) { j.JWKSURL = srv.URL }), nil, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(func(c map[string]any) { c["exp"] = t0.Add(time.Hour).Unix() }))

	_, err = a.Authenticate(ctx, tok)
	checkErr(t, err, errOther, tok) // the server's problem, not the caller's
	srv.status.Store(http.StatusOK)
	clk.Advance(30 * time.Second)
	_, err = a.Authenticate(ctx, tok)
	checkErr(t, err, errOther, tok) // failed loads are rate-limited too
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	clk.Advance(30 * time.Second)
	if _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}

	// A failed periodic refresh keeps the keys already loaded.
	srv.status.Store(http.StatusInternalServerError)
	clk.Advance(20 * time.Minute)
	if _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatalf("failed refresh dropped the keys: %v", err)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Errorf("JWKS fetched %d times, want 3", n)
	}
}

func TestJWKSFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
		{"not JSON", write("bad.json", "{"), "invalid JWKS"},
		{"only a symmetric key", write("oct.json", `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`), "JWKS holds no public signature key"},
		{"only an encryption key", write("enc.json", string(jwksWithUse("enc"))), "JWKS holds no public signature key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(jwtConfig(func(j *config.JWT) { j.JWKSFile = tt.path }), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func jwksWithUse(use string) []byte {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: keys().ed.Public(), KeyID: "e", Use: use}}})
	if err != nil {
		panic(err)
	}
	return b
}

func TestJWTPrivateKeyInSetIsUsedAsPublic(t *testing.T) {
	t.Parallel()
	k := keys()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ed, KeyID: "ed1"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, b)
	a, err := New(jwtConfig(func(j *config.JWT) { j.JWKSURL = srv.URL }), nil, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), sign(t, jose.EdDSA, k.ed, "ed1", baseClaims(nil))); err != nil {
		t.Fatal(err)
	}
}
