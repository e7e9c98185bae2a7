package scim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// The client id and secret hold characters RFC 6749 section 2.3.1 makes
// the client form-encode before Basic encoding.
const (
	testClientID     = "jml gate:client"
	testClientSecret = "s3cr+t:/%-never-print-me"
)

// clock is an injected time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// idp is an OAuth 2.0 token endpoint (client credentials) whose tokens the
// saas accepts.
type idp struct {
	t  *testing.T
	s  *saas
	ts *httptest.Server

	mu sync.Mutex
	// register makes issued tokens acceptable to s.
	register bool
	// expiresIn is the raw JSON of expires_in; "" leaves it out.
	expiresIn string
	faults    []func(w http.ResponseWriter, r *http.Request)
	scopes    []string // scope parameter of each fetch
	issued    []string
}

func newIDP(t *testing.T, s *saas) *idp {
	p := &idp{t: t, s: s, register: true, expiresIn: "3600"}
	p.ts = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.ts.Close)
	return p
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.faults) > 0 {
		f := p.faults[0]
		p.faults = p.faults[1:]
		f(w, r)
		return
	}
	user, pass, ok := r.BasicAuth()
	id, _ := url.QueryUnescape(user)
	secret, _ := url.QueryUnescape(pass)
	if r.Method != http.MethodPost || !ok || id != testClientID || secret != testClientSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"unsupported_grant_type"}`)
		return
	}
	p.scopes = append(p.scopes, r.PostForm.Get("scope"))
	tok := fmt.Sprintf("at-%d-Zq3Vx9Lm2Pw7", len(p.issued)+1)
	p.issued = append(p.issued, tok)
	if p.register {
		p.s.mu.Lock()
		p.s.tokens[tok] = 0
		p.s.mu.Unlock()
	}
	exp := ""
	if p.expiresIn != "" {
		exp = `,"expires_in":` + p.expiresIn
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer"%s}`, tok, exp)
}

// issuedToken returns the i-th token issued (from 0).
func (p *idp) issuedToken(i int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issued[i]
}

func (p *idp) fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.issued)
}

// revoke makes the saas refuse tok from now on.
func (p *idp) revoke(tok string) {
	p.s.mu.Lock()
	delete(p.s.tokens, tok)
	p.s.mu.Unlock()
}

func (p *idp) config() *Config {
	c := p.s.config()
	c.Token = ""
	c.OAuth2 = &OAuth2{TokenURL: p.ts.URL + "/oauth2/token", ClientID: testClientID,
		ClientSecret: testClientSecret, Scopes: []string{"scim:write", "groups"}}
	return c
}

func TestOAuth2TokenCachedUntilNearExpiry(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	s.createGroup("Engineering")
	p := newIDP(t, s)
	p.expiresIn = "120"
	conn := open(t, p.config())
	clk := newClock()
	conn.now = clk.Now

	// Concurrent first calls share one fetch.
	var wg sync.WaitGroup
	refs := make([]string, 6)
	errs := make([]error, 6)
	for i := range refs {
		wg.Go(func() {
			refs[i], errs[i] = conn.EnsureAccount(testCtx(t), testAccount(i, fmt.Sprintf("u%d@example.com", i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("EnsureAccount %d: %v", i, err)
		}
	}
	if got := p.fetches(); got != 1 {
		t.Fatalf("token fetched %d times for concurrent first calls, want 1", got)
	}
	p.mu.Lock()
	scope := p.scopes[0]
	p.mu.Unlock()
	if scope != "scim:write groups" {
		t.Errorf("scope = %q, want %q", scope, "scim:write groups")
	}
	clk.Add(85 * time.Second) // 35 s of the 120 left: still used
	if err := conn.Grant(testCtx(t), refs[0], "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if got := p.fetches(); got != 1 {
		t.Fatalf("token fetched %d times before expiry, want 1", got)
	}
	clk.Add(10 * time.Second) // 25 s left: inside the 30 s margin
	if err := conn.Grant(testCtx(t), refs[1], "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if got := p.fetches(); got != 2 {
		t.Fatalf("token fetched %d times after nearing expiry, want 2", got)
	}
}

func TestOAuth2RefetchOnceOn401(t *testing.T) {
	t.Parallel()
	t.Run("RevokedTokenReplaced", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		s.createGroup("Engineering")
		p := newIDP(t, s)
		conn := open(t, p.config())
		ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		p.revoke(p.issuedToken(0)) // the target forgets the token before it expires
		if err := conn.Grant(testCtx(t), ref, "group:Engineering"); err != nil {
			t.Fatalf("Grant after the token was revoked: %v, want success with a new token", err)
		}
		if got := p.fetches(); got != 2 {
			t.Errorf("token fetched %d times, want 2", got)
		}
		if st, _ := s.inspect(t, ref); len(st.Entitlements) != 1 {
			t.Errorf("entitlements = %q, want group:Engineering", st.Entitlements)
		}
	})
	t.Run("TargetRefusesEveryToken", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		p := newIDP(t, s)
		p.register = false
		conn := open(t, p.config())
		_, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
		wantClass(t, err, connectors.Permanent, 0)
		if got := p.fetches(); got != 2 {
			t.Errorf("token fetched %d times, want exactly 2 (one refetch, no loop)", got)
		}
		if got := len(s.requests()); got != 2 {
			t.Errorf("target saw %d requests, want 2: %q", got, s.requests())
		}
	})
	t.Run("StaticTokenNotRetried", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		cfg := s.config()
		cfg.Token = "not-the-right-token"
		_, err := open(t, cfg).EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
		wantClass(t, err, connectors.Permanent, 0)
		if got := len(s.requests()); got != 1 {
			t.Errorf("target saw %d requests, want 1", got)
		}
	})
}

func TestOAuth2TokenEndpointFailures(t *testing.T) {
	t.Parallel()
	reply := func(status int, header http.Header, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	cases := []struct {
		name  string
		fault func(http.ResponseWriter, *http.Request)
		// clientSecret, when set, replaces the right one.
		clientSecret Secret
		class        connectors.Class
		retryAfter   time.Duration
	}{
		{name: "ServerError", fault: reply(500, nil, "oops"), class: connectors.Retryable},
		{name: "Throttled", fault: reply(429, http.Header{"Retry-After": {"9"}}, ""), class: connectors.Retryable, retryAfter: 9 * time.Second},
		{name: "Unavailable", fault: reply(503, http.Header{"Retry-After": {"4"}}, ""), class: connectors.Retryable, retryAfter: 4 * time.Second},
		{name: "WrongSecret", clientSecret: "wrong-" + testClientSecret, class: connectors.Permanent},
		{name: "InvalidScope", fault: reply(400, nil, `{"error":"invalid_scope"}`), class: connectors.Permanent},
		{name: "NotJSON", fault: reply(200, nil, "<html>login</html>"), class: connectors.Permanent},
		{name: "NoAccessToken", fault: reply(200, nil, `{"token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "NotBearer", fault: reply(200, nil, `{"access_token":"x","token_type":"mac"}`), class: connectors.Permanent},
		{name: "BadExpiry", fault: reply(200, nil, `{"access_token":"x","expires_in":"soon"}`), class: connectors.Permanent},
		{name: "NaNExpiry", fault: reply(200, nil, `{"access_token":"x","expires_in":"NaN"}`), class: connectors.Permanent},
		{name: "AccessTokenWithSpace", fault: reply(200, nil, `{"access_token":"a b","token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "AccessTokenWithComma", fault: reply(200, nil, `{"access_token":"a,b","token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "AccessTokenWithQuote", fault: reply(200, nil, `{"access_token":"a\"b","token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "AccessTokenPaddingInside", fault: reply(200, nil, `{"access_token":"a=b","token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "AccessTokenWithNewline", fault: reply(200, nil, `{"access_token":"a\r\nX-Evil: 1","token_type":"Bearer"}`), class: connectors.Permanent},
		{name: "ConnectionDropped", fault: func(w http.ResponseWriter, r *http.Request) { drop(w, r) }, class: connectors.Retryable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			p := newIDP(t, s)
			if tc.fault != nil {
				// Enough for the transport's own retry of a dropped
				// connection.
				p.faults = append(p.faults, tc.fault, tc.fault, tc.fault)
			}
			cfg := p.config()
			if tc.clientSecret != "" {
				cfg.OAuth2.ClientSecret = tc.clientSecret
			}
			_, err := open(t, cfg).EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			wantClass(t, err, tc.class, tc.retryAfter)
			for _, shown := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(shown, string(cfg.OAuth2.ClientSecret)) || strings.Contains(shown, url.QueryEscape(string(cfg.OAuth2.ClientSecret))) {
					t.Fatalf("error shows the client secret: %s", shown)
				}
			}
			if !strings.Contains(err.Error(), "oauth2 token") {
				t.Errorf("error %q does not say the token fetch failed", err)
			}
			if got := s.requests(); len(got) != 0 {
				t.Errorf("target saw %q without a token", got)
			}
		})
	}
}

// The token response is decoded as RFC 6749 section 5.1 and the
// variants seen in the wild.
func TestExpiresIn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw  string
		want time.Duration
		ok   bool
	}{
		{"", defaultTokenLife, true},
		{"null", defaultTokenLife, true},
		{"3600", time.Hour, true},
		{`"3600"`, time.Hour, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-1", 0, false},
		{`"soon"`, 0, false},
		{"true", 0, false},
		// strconv.ParseFloat accepts these; time.Duration of NaN is
		// undefined.
		{`"NaN"`, 0, false},
		{`"nan"`, 0, false},
		{`"Inf"`, 0, false},
		{`"+Infinity"`, 0, false},
		{`"-Inf"`, 0, false},
		{`"0x10"`, 0, false},
		{`"1_000"`, 0, false},
		{"1e400", 0, false},
		{`""`, 0, false},
		{`" 60"`, 0, false},
	}
	for _, tc := range cases {
		got, err := expiresIn(json.RawMessage(tc.raw))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("expiresIn(%s) = %v, %v; want %v, ok %v", tc.raw, got, err, tc.want, tc.ok)
		}
	}
}
