package auth

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/store"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected time source that tests advance by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// mapSource is an in-memory TokenSource: a fake of our own interface, not
// of the store.
type mapSource struct {
	mu     sync.Mutex
	tokens map[string]*store.Token // by hex hash
	err    error
	calls  atomic.Int64
}

func newMapSource(toks ...*store.Token) *mapSource {
	s := &mapSource{tokens: map[string]*store.Token{}}
	for _, t := range toks {
		s.tokens[hex.EncodeToString(t.Hash)] = t
	}
	return s
}

func (s *mapSource) TokenByHash(_ context.Context, hash []byte) (*store.Token, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	t, ok := s.tokens[hex.EncodeToString(hash)]
	if !ok {
		return nil, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	cp := *t
	return &cp, nil
}

func (s *mapSource) revoke(hash []byte, at time.Time) {
	s.mu.Lock()
	s.tokens[hex.EncodeToString(hash)].Revoked = at
	s.mu.Unlock()
}

func hexHash(token string) string { return hex.EncodeToString(HashToken(token)) }

// checkErr asserts err matches want (nil, a sentinel, or errOther for "an
// error that is none of the sentinels") and never quotes the credential.
var errOther = errors.New("other")

func checkErr(t *testing.T, err, want error, bearer string) {
	t.Helper()
	switch {
	case want == nil:
		if err != nil {
			t.Fatalf("error = %v, want nil", err)
		}
		return
	case want == errOther:
		if err == nil {
			t.Fatal("error = nil, want an internal error")
		}
		for _, s := range []error{ErrMissing, ErrInvalid, ErrExpired, ErrRevoked} {
			if errors.Is(err, s) {
				t.Fatalf("error = %v, want no sentinel (got %v)", err, s)
			}
		}
	case !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
	if len(bearer) >= 8 && strings.Contains(err.Error(), bearer) {
		t.Fatalf("error %q contains the credential", err)
	}
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	tok1, h1, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^jmg_[A-Za-z0-9_-]{43}$`).MatchString(tok1) {
		t.Errorf("token %q does not match jmg_ + 43 base64url characters", tok1)
	}
	if tok1 == tok2 {
		t.Error("two tokens are equal")
	}
	if !reflect.DeepEqual(h1, HashToken(tok1)) || len(h1) != 32 {
		t.Errorf("hash = %x, want SHA-256 of the token %x", h1, HashToken(tok1))
	}
	// Known answer: SHA-256("test").
	if got := hexHash("test"); got != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
		t.Errorf("HashToken(test) = %s", got)
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      []string
		want    []Scope
		wantErr string
	}{
		{nil, []Scope{}, ""},
		{[]string{"scim"}, []Scope{ScopeSCIM}, ""},
		{[]string{"admin", "audit", "admin", "approve"}, []Scope{ScopeAdmin, ScopeAudit, ScopeApprove}, ""},
		{[]string{"scim", "admn"}, nil, `auth: unknown scope "admn" (want scim, approve, audit, admin)`},
		{[]string{"SCIM"}, nil, `auth: unknown scope "SCIM" (want scim, approve, audit, admin)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			t.Parallel()
			got, err := ParseScopes(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseScopes = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestPrincipalHas(t *testing.T) {
	t.Parallel()
	admin := &Principal{Scopes: []Scope{ScopeAdmin}}
	both := &Principal{Scopes: []Scope{ScopeSCIM, ScopeAudit}}
	tests := []struct {
		p    *Principal
		s    Scope
		want bool
	}{
		{both, ScopeSCIM, true},
		{both, ScopeAudit, true},
		{both, ScopeApprove, false},
		{admin, ScopeAdmin, true},
		{admin, ScopeApprove, false}, // admin implies nothing else
		{admin, ScopeSCIM, false},
		{&Principal{}, ScopeSCIM, false},
		{nil, ScopeSCIM, false},
	}
	for _, tt := range tests {
		if got := tt.p.Has(tt.s); got != tt.want {
			t.Errorf("%v.Has(%s) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

func TestStaticTokens(t *testing.T) {
	t.Parallel()
	cfg := config.Auth{Tokens: []config.StaticToken{
		{Name: "hr", SHA256: hexHash("hr-secret-token"), Scopes: []string{"scim"}},
		{Name: "auditor", SHA256: strings.ToUpper(hexHash("audit-secret-token")), Scopes: []string{"audit", "approve"}, Expires: t0.Add(time.Hour)},
		{Name: "old", SHA256: hexHash("old-secret-token"), Scopes: []string{"admin"}, Expires: t0},
	}}
	// A store that knows none of them: config tokens must not reach it.
	src := newMapSource()
	a, err := New(cfg, src, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		bearer string
		want   *Principal
		err    error
	}{
		{"good", "hr-secret-token", &Principal{Name: "hr", Scopes: []Scope{ScopeSCIM}, Kind: KindConfigToken, Subject: "hr"}, nil},
		{"uppercase hash in config", "audit-secret-token", &Principal{Name: "auditor", Scopes: []Scope{ScopeAudit, ScopeApprove}, Kind: KindConfigToken, Subject: "auditor", Expires: t0.Add(time.Hour)}, nil},
		{"expired exactly now", "old-secret-token", nil, ErrExpired},
		{"unknown", "nope-secret-token", nil, ErrInvalid},
		{"prefix of a token", "hr-secret-toke", nil, ErrInvalid},
		{"empty", "", nil, ErrMissing},
		{"with space", "hr-secret-token x", nil, ErrInvalid},
		{"non-ASCII", "hr-sécret-token", nil, ErrInvalid},
		{"too long", strings.Repeat("a", maxBearerLen+1), nil, ErrInvalid},
		{"JWT-shaped without JWT configured", "aaaa.bbbb.cccc", nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := a.Authenticate(context.Background(), tt.bearer)
			checkErr(t, err, tt.err, tt.bearer)
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("principal = %s, want %s", dump(p), dump(tt.want))
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  config.Auth
		want string
	}{
		{"short hash", config.Auth{Tokens: []config.StaticToken{{Name: "a", SHA256: "abcd", Scopes: []string{"scim"}}}}, `auth: tokens[0] ("a"): sha256 must be 64 hex characters`},
		{"bad scope", config.Auth{Tokens: []config.StaticToken{{Name: "a", SHA256: hexHash("x"), Scopes: []string{"root"}}}}, `auth: tokens[0] ("a"): auth: unknown scope "root" (want scim, approve, audit, admin)`},
		{"jwt no issuer", config.Auth{JWT: &config.JWT{Audience: "a", JWKSURL: "http://127.0.0.1/"}}, "auth: jwt: issuer is required"},
		{"jwt no audience", config.Auth{JWT: &config.JWT{Issuer: "i", JWKSURL: "http://127.0.0.1/"}}, "auth: jwt: audience is required"},
		{"jwt two sources", config.Auth{JWT: &config.JWT{Issuer: "i", Audience: "a", JWKSURL: "http://127.0.0.1/", JWKSFile: "x"}}, "auth: jwt: set exactly one of jwks_file and jwks_url"},
		{"jwt no source", config.Auth{JWT: &config.JWT{Issuer: "i", Audience: "a"}}, "auth: jwt: set exactly one of jwks_file and jwks_url"},
		{"jwt HS256", config.Auth{JWT: &config.JWT{Issuer: "i", Audience: "a", JWKSURL: "http://127.0.0.1/", Algorithms: []string{"RS256", "HS256"}}}, `auth: jwt: algorithm "HS256" is not allowed (only asymmetric algorithms)`},
		{"jwt none", config.Auth{JWT: &config.JWT{Issuer: "i", Audience: "a", JWKSURL: "http://127.0.0.1/", Algorithms: []string{"none"}}}, `auth: jwt: algorithm "none" is not allowed (only asymmetric algorithms)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg, nil, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("New error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestStoreTokens(t *testing.T) {
	t.Parallel()
	tok := func(name, secret string, mod func(*store.Token)) *store.Token {
		st := &store.Token{ID: "id-" + name, Name: name, Hash: HashToken(secret), Scopes: []string{"scim", "audit"}, Created: t0.Add(-time.Hour)}
		if mod != nil {
			mod(st)
		}
		return st
	}
	src := newMapSource(
		tok("live", "live-secret", nil),
		tok("expiring", "expiring-secret", func(s *store.Token) { s.Expires = t0.Add(time.Minute) }),
		tok("expired", "expired-secret", func(s *store.Token) { s.Expires = t0.Add(-time.Second) }),
		tok("revoked", "revoked-secret", func(s *store.Token) { s.Revoked = t0.Add(-time.Minute) }),
		tok("odd-scopes", "odd-secret", func(s *store.Token) { s.Scopes = []string{"admin", "frobnicate", "admin"} }),
	)
	a, err := New(config.Auth{}, src, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	a.CacheTTL = 0
	failing := newMapSource()
	failing.err = errors.New("database is locked")
	af, err := New(config.Auth{}, failing, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		a      *Authenticator
		bearer string
		want   *Principal
		err    error
	}{
		{"live", a, "live-secret", &Principal{Name: "live", Scopes: []Scope{ScopeSCIM, ScopeAudit}, Kind: KindToken, Subject: "id-live"}, nil},
		{"expiring later", a, "expiring-secret", &Principal{Name: "expiring", Scopes: []Scope{ScopeSCIM, ScopeAudit}, Kind: KindToken, Subject: "id-expiring", Expires: t0.Add(time.Minute)}, nil},
		{"expired", a, "expired-secret", nil, ErrExpired},
		{"revoked", a, "revoked-secret", nil, ErrRevoked},
		{"unknown scopes dropped", a, "odd-secret", &Principal{Name: "odd-scopes", Scopes: []Scope{ScopeAdmin}, Kind: KindToken, Subject: "id-odd-scopes"}, nil},
		{"not found", a, "missing-secret", nil, ErrInvalid},
		{"store failure is not the caller's fault", af, "live-secret", nil, errOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := tt.a.Authenticate(context.Background(), tt.bearer)
			checkErr(t, err, tt.err, tt.bearer)
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("principal = %s, want %s", dump(p), dump(tt.want))
			}
		})
	}

	t.Run("no token source", func(t *testing.T) {
		t.Parallel()
		a, err := New(config.Auth{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Authenticate(context.Background(), "live-secret")
		checkErr(t, err, ErrInvalid, "live-secret")
	})
}

func TestStoreTokenCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newAuth := func(ttl time.Duration, toks ...*store.Token) (*Authenticator, *mapSource, *clock) {
		src := newMapSource(toks...)
		clk := newClock()
		a, err := New(config.Auth{}, src, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		a.CacheTTL = ttl
		return a, src, clk
	}
	live := func() *store.Token {
		return &store.Token{ID: "1", Name: "ci", Hash: HashToken("ci-secret"), Scopes: []string{"scim"}, Expires: t0.Add(time.Hour)}
	}

	t.Run("revocation takes effect within the TTL", func(t *testing.T) {
		t.Parallel()
		a, src, clk := newAuth(5*time.Second, live())
		for range 3 {
			if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
				t.Fatal(err)
			}
		}
		if n := src.calls.Load(); n != 1 {
			t.Errorf("store lookups = %d, want 1 (cached)", n)
		}
		src.revoke(HashToken("ci-secret"), clk.Now())
		clk.Advance(4 * time.Second)
		if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
			t.Errorf("within TTL: error = %v, want the cached token accepted", err)
		}
		clk.Advance(time.Second)
		_, err := a.Authenticate(ctx, "ci-secret")
		checkErr(t, err, ErrRevoked, "ci-secret")
		if n := src.calls.Load(); n != 2 {
			t.Errorf("store lookups = %d, want 2", n)
		}
	})

	t.Run("Forget makes a revocation immediate", func(t *testing.T) {
		t.Parallel()
		a, src, clk := newAuth(time.Hour, live())
		if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
			t.Fatal(err)
		}
		src.revoke(HashToken("ci-secret"), clk.Now())
		a.Forget(HashToken("ci-secret"))
		_, err := a.Authenticate(ctx, "ci-secret")
		checkErr(t, err, ErrRevoked, "ci-secret")
	})

	t.Run("expiry is exact even when cached", func(t *testing.T) {
		t.Parallel()
		a, _, clk := newAuth(time.Hour, live())
		if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		_, err := a.Authenticate(ctx, "ci-secret")
		checkErr(t, err, ErrExpired, "ci-secret")
	})

	t.Run("TTL 0 disables the cache", func(t *testing.T) {
		t.Parallel()
		a, src, _ := newAuth(0, live())
		for range 3 {
			if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
				t.Fatal(err)
			}
		}
		if n := src.calls.Load(); n != 3 {
			t.Errorf("store lookups = %d, want 3", n)
		}
	})

	t.Run("misses are not cached", func(t *testing.T) {
		t.Parallel()
		a, src, _ := newAuth(time.Hour)
		_, err := a.Authenticate(ctx, "ci-secret")
		checkErr(t, err, ErrInvalid, "ci-secret")
		src.mu.Lock()
		src.tokens[hexHash("ci-secret")] = live()
		src.mu.Unlock()
		if _, err := a.Authenticate(ctx, "ci-secret"); err != nil {
			t.Errorf("token created after a miss: %v", err)
		}
	})

	t.Run("size is bounded", func(t *testing.T) {
		t.Parallel()
		var toks []*store.Token
		for i := range 10 {
			toks = append(toks, &store.Token{ID: fmt.Sprint(i), Name: fmt.Sprint("t", i), Hash: HashToken(fmt.Sprint("secret-", i)), Scopes: []string{"scim"}})
		}
		a, src, _ := newAuth(time.Hour, toks...)
		a.CacheSize = 3
		for i := range 10 {
			if _, err := a.Authenticate(ctx, fmt.Sprint("secret-", i)); err != nil {
				t.Fatal(err)
			}
		}
		a.mu.Lock()
		n := len(a.cache)
		a.mu.Unlock()
		if n != 3 {
			t.Errorf("cache holds %d entries, want 3", n)
		}
		// The most recent entry survived the evictions.
		before := src.calls.Load()
		if _, err := a.Authenticate(ctx, "secret-9"); err != nil {
			t.Fatal(err)
		}
		if src.calls.Load() != before {
			t.Error("most recent token was evicted")
		}
	})
}

func TestNewTokenRoundTrip(t *testing.T) {
	t.Parallel()
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(config.Auth{Tokens: []config.StaticToken{{Name: "gen", SHA256: hex.EncodeToString(hash), Scopes: []string{"admin"}}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), tok)
	if err != nil || p.Name != "gen" || !p.Has(ScopeAdmin) {
		t.Fatalf("Authenticate(new token) = %+v, %v", p, err)
	}
}

func dump(p *Principal) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *p)
}
