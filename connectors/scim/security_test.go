package scim

// What a wrong URL, a target that ignores filters, a target echoing
// credentials and a target returning odd ids must not get away with.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	scimsrv "github.com/jmlgate/jmlgate/scim"
)

// onList matches a GET of the collection (/Users or /Groups) carrying a
// filter: a lookup.
func onList(collection string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, collection) && r.URL.Query().Has("filter")
	}
}

// onPatch matches a PATCH below the collection.
func onPatch(collection string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, collection+"/")
	}
}

const (
	htmlNotFound = "<html><body><h1>404 Not Found</h1>nginx</body></html>"
	scimNotFound = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"not found"}`
)

// respondAs is respond with another Content-Type.
func respondAs(status int, contentType, body string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
		return true
	}
}

// A 404 means "missing" only when a request on one resource gets a SCIM
// error back; anything else says the URL is wrong, and must not let a
// disable or revoke count as done.
func TestNotFoundMeansMissingOnlyFromSCIMResource(t *testing.T) {
	t.Parallel()
	disable := func(ctx context.Context, c *Conn, ref string) error { return c.DisableAccount(ctx, ref) }
	revoke := func(ctx context.Context, c *Conn, ref string) error { return c.Revoke(ctx, ref, "group:Engineering") }
	ensure := func(ctx context.Context, c *Conn, _ string) error {
		_, err := c.EnsureAccount(ctx, testAccount(2, "b@example.com"))
		return err
	}
	cases := []struct {
		name   string
		faults []fault
		// base, when set, replaces the path below the server of base_url.
		base string
		call func(ctx context.Context, c *Conn, ref string) error
		// ok: the call succeeds; otherwise it fails with class.
		ok    bool
		class connectors.Class
		// enabled is whether the account must still be enabled after a
		// Disable case.
		enabled bool
	}{
		{
			name:   "DisableHTMLNotFound",
			faults: []fault{{match: onPatch("/Users"), answer: respondAs(404, "text/html", htmlNotFound)}},
			call:   disable, class: connectors.Permanent, enabled: true,
		},
		{
			name:   "DisableGoneWithoutSCIMBody",
			faults: []fault{{match: onPatch("/Users"), answer: respondAs(410, "text/plain", "gone")}},
			call:   disable, class: connectors.Permanent, enabled: true,
		},
		{
			name:   "DisableJSONNotFoundThatIsNotSCIM",
			faults: []fault{{match: onPatch("/Users"), answer: respond(404, nil, `{"message":"no route"}`)}},
			call:   disable, class: connectors.Permanent, enabled: true,
		},
		{
			// jmlgate's own service provider answers a SCIM 404 for any
			// path below its prefix: a wrong version in base_url looks
			// like a missing user until /Users itself is asked.
			name: "DisableWrongBasePathWithSCIMNotFound",
			base: scimsrv.Prefix + "/v1",
			call: disable, class: connectors.Permanent, enabled: true,
		},
		{
			name: "DisableWrongBasePathPlainNotFound",
			base: "/api/v2",
			call: disable, class: connectors.Permanent, enabled: true,
		},
		{
			name:   "DisableSCIMNotFoundIsMissing",
			faults: []fault{{match: onPatch("/Users"), answer: respond(404, nil, scimNotFound)}},
			call:   disable, ok: true, enabled: true,
		},
		{
			name:   "DisableNumericStatusIsMissing",
			faults: []fault{{match: onPatch("/Users"), answer: respond(404, nil, `{"status":404,"detail":"no such user"}`)}},
			call:   disable, ok: true, enabled: true,
		},
		{
			name:   "RevokeListNotFound",
			faults: []fault{{match: onList("/Groups"), answer: respond(404, nil, scimNotFound)}},
			call:   revoke, class: connectors.Permanent,
		},
		{
			name:   "RevokeListNotSCIM",
			faults: []fault{{match: onList("/Groups"), answer: respond(200, nil, `{}`)}},
			call:   revoke, class: connectors.Permanent,
		},
		{
			// Before: NotFound, the group looked up again, and the
			// second PATCH answered by the real target.
			name:   "RevokeHTMLNotFoundOnGroup",
			faults: []fault{{match: onPatch("/Groups"), answer: respondAs(404, "text/html", htmlNotFound)}},
			call:   revoke, class: connectors.Permanent,
		},
		{
			name:   "EnsureLookupNotFound",
			faults: []fault{{match: onList("/Users"), answer: respond(404, nil, scimNotFound)}},
			call:   ensure, class: connectors.Permanent,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			s.createGroup("Engineering")
			setup := open(t, s.config())
			ref, err := setup.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			if err := setup.Grant(testCtx(t), ref, "group:Engineering"); err != nil {
				t.Fatal(err)
			}
			cfg := s.config()
			if tc.base != "" {
				cfg.BaseURL = s.ts.URL + tc.base
			}
			conn := open(t, cfg)
			s.inject(tc.faults...)
			err = tc.call(testCtx(t), conn, ref)
			if tc.ok {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
			} else {
				wantClass(t, err, tc.class, 0)
				if !strings.Contains(err.Error(), "endpoint looks wrong") {
					t.Errorf("error %q does not say the endpoint looks wrong", err)
				}
			}
			st, found := s.inspect(t, ref)
			if !found {
				t.Fatalf("account %s is gone", ref)
			}
			if strings.HasPrefix(tc.name, "Disable") && st.Enabled != tc.enabled {
				t.Errorf("account enabled = %v after the call, want %v", st.Enabled, tc.enabled)
			}
			if strings.HasPrefix(tc.name, "Revoke") && len(st.Entitlements) != 1 {
				t.Errorf("entitlements after a failed revoke: %q, want the grant kept", st.Entitlements)
			}
		})
	}
}

// A filtered lookup whose answer does not fit the filter proves nothing
// about absence: EnsureAccount must not create (or adopt) on it, Revoke
// must not report the group gone.
func TestTargetIgnoresFilter(t *testing.T) {
	t.Parallel()
	otherUser := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"Resources":[{"id":"u-9","userName":"someone.else@example.com","externalId":"x"}]}`
	truncated := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":3,"Resources":[]}`
	otherGroup := `{"totalResults":1,"Resources":[{"id":"g-9","displayName":"Sales"}]}`
	cases := []struct {
		name   string
		faults []fault
		call   func(ctx context.Context, c *Conn) error
		class  connectors.Class
		text   string
	}{
		{
			name:   "EnsureUserNameLookupAnswersAnotherUser",
			faults: []fault{{match: onList("/Users"), answer: respond(200, nil, otherUser)}},
			call:   ensureB, class: connectors.Permanent, text: "target ignores filter",
		},
		{
			name:   "EnsureExternalIDLookupAnswersAnotherUser",
			faults: []fault{{match: onList("/Users"), answer: respond(200, nil, `{"totalResults":0,"Resources":[]}`)}, {match: onList("/Users"), answer: respond(200, nil, otherUser)}},
			call:   ensureB, class: connectors.Permanent, text: "target ignores filter",
		},
		{
			name:   "EnsureMoreResultsThanReturned",
			faults: []fault{{match: onList("/Users"), answer: respond(200, nil, truncated)}},
			call:   ensureB, class: connectors.Permanent, text: "target ignores filter",
		},
		{
			name: "EnsureTwoAccountsForOneIdentity",
			faults: []fault{{match: onList("/Users"), answer: respond(200, nil, `{"totalResults":0,"Resources":[]}`)}, {match: onList("/Users"), answer: respond(200, nil,
				`{"totalResults":2,"Resources":[{"id":"u-1","userName":"x1","externalId":"`+testAccount(2, "").IdentityID+`"},{"id":"u-2","userName":"x2","externalId":"`+testAccount(2, "").IdentityID+`"}]}`)}},
			call: ensureB, class: connectors.Conflict, text: "2 accounts match",
		},
		{
			name:   "RevokeGroupLookupAnswersAnotherGroup",
			faults: []fault{{match: onList("/Groups"), answer: respond(200, nil, otherGroup)}},
			call:   revokeEng, class: connectors.Permanent, text: "target ignores filter",
		},
		{
			name:   "RevokeMoreResultsThanReturned",
			faults: []fault{{match: onList("/Groups"), answer: respond(200, nil, `{"totalResults":2,"Resources":[]}`)}},
			call:   revokeEng, class: connectors.Permanent, text: "target ignores filter",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			s.createGroup("Engineering")
			conn := open(t, s.config())
			ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			// The cached group id would spare Revoke its lookup.
			if err := open(t, s.config()).Grant(testCtx(t), ref, "group:Engineering"); err != nil {
				t.Fatal(err)
			}
			s.inject(tc.faults...)
			err = tc.call(testCtx(t), conn)
			wantClass(t, err, tc.class, 0)
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
			if n := countRequests(s, "POST /scim/v2/Users"); n != 1 {
				t.Errorf("%d POST /Users, want only the setup's", n)
			}
			if st, _ := s.inspect(t, ref); len(st.Entitlements) != 1 {
				t.Errorf("entitlements %q, want the grant kept", st.Entitlements)
			}
		})
	}
}

func ensureB(ctx context.Context, c *Conn) error {
	_, err := c.EnsureAccount(ctx, testAccount(2, "b@example.com"))
	return err
}

func revokeEng(ctx context.Context, c *Conn) error {
	ref, err := c.EnsureAccount(ctx, testAccount(1, "a@example.com"))
	if err != nil {
		return err
	}
	return c.Revoke(ctx, ref, "group:Engineering")
}

// echoAuth answers status with a body quoting the request's credentials,
// as some targets do in their error detail; at > 0 places the token at
// that byte of the body (across the 512 bytes an error keeps).
func echoAuth(status int, at int, header http.Header) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", mediaType)
		w.WriteHeader(status)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		prefix := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"%d","detail":"token `, status)
		if pad := at - len(prefix); pad > 0 {
			prefix += strings.Repeat("x", pad)
		}
		fmt.Fprintf(w, `%s%s refused (escaped: %s)"}`, prefix, tok, strings.ReplaceAll(tok, "/", `\/`))
		return true
	}
}

// Credentials a target echoes never reach an error: not the static
// token, not an access token, not the client secret in any form.
func TestErrorsNeverQuoteCredentials(t *testing.T) {
	t.Parallel()
	// A token with "/" so its JSON-escaped form differs.
	const slashToken = "tok/5f1c0e7a/never/print"
	cases := []struct {
		name   string
		token  string
		faults []fault
		call   func(ctx context.Context, c *Conn, ref string) error
		class  connectors.Class
		after  time.Duration
	}{
		{name: "Ensure401", faults: []fault{{match: onList("/Users"), answer: echoAuth(401, 0, nil)}}, call: ensureAgain, class: connectors.Permanent},
		{name: "Grant403", faults: []fault{{match: onPatch("/Groups"), answer: echoAuth(403, 0, nil)}}, call: grantEng, class: connectors.Permanent},
		{name: "Disable429", faults: []fault{{match: onPatch("/Users"), answer: echoAuth(429, 0, http.Header{"Retry-After": {"30"}})}}, call: disableRef, class: connectors.Retryable, after: 30 * time.Second},
		{name: "Revoke500", faults: []fault{{match: onPatch("/Groups"), answer: echoAuth(500, 0, nil)}}, call: revokeRef, class: connectors.Retryable},
		{name: "Disable404NotSCIMPath", faults: []fault{{match: onPatch("/Users"), answer: respondAs(404, "text/plain", "no route; you sent "+testToken)}}, call: disableRef, class: connectors.Permanent},
		// The token straddles the 512 bytes HTTPError keeps.
		{name: "StraddlesCut", faults: []fault{{match: onPatch("/Groups"), answer: echoAuth(400, 500, nil)}}, call: grantEng, class: connectors.Permanent},
		{name: "SlashToken", token: slashToken, faults: []fault{{match: onPatch("/Groups"), answer: echoAuth(400, 0, nil)}}, call: grantEng, class: connectors.Permanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			tok := testToken
			if tc.token != "" {
				tok = tc.token
				s.tokens[tok] = 0
			}
			s.createGroup("Engineering")
			cfg := s.config()
			cfg.Token = Secret(tok)
			conn := open(t, cfg)
			ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			if err := grantEng(testCtx(t), conn, ref); err != nil {
				t.Fatal(err)
			}
			s.inject(tc.faults...)
			err = tc.call(testCtx(t), conn, ref)
			wantClass(t, err, tc.class, tc.after)
			wantNoSecret(t, err, tok, strings.ReplaceAll(tok, "/", `\/`))
			if !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("error %q has no [redacted] marker where the token was", err)
			}
		})
	}
}

func disableRef(ctx context.Context, c *Conn, ref string) error { return c.DisableAccount(ctx, ref) }
func revokeRef(ctx context.Context, c *Conn, ref string) error {
	return c.Revoke(ctx, ref, "group:Engineering")
}

// wantNoSecret fails if err, printed any way, shows a secret or 8 bytes
// of one.
func wantNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, shown := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, secret := range secrets {
			for i := 0; i+8 <= len(secret); i++ {
				if strings.Contains(shown, secret[i:i+8]) {
					t.Fatalf("error shows (part of) a secret %q: %s", secret[i:i+8], shown)
				}
			}
		}
	}
}

// The OAuth 2.0 flavour: access tokens echoed by the target, a token
// endpoint answering 201, and one echoing the client's Basic credentials.
func TestOAuth2ErrorsNeverQuoteCredentials(t *testing.T) {
	t.Parallel()
	t.Run("TargetEchoesAccessToken", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		p := newIDP(t, s)
		conn := open(t, p.config())
		// Both attempts (the first token, then the refetched one) are
		// refused with the token quoted.
		s.inject(fault{answer: echoAuth(401, 0, nil)}, fault{answer: echoAuth(401, 0, nil)})
		_, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
		wantClass(t, err, connectors.Permanent, 0)
		if p.fetches() != 2 {
			t.Fatalf("%d token fetches, want 2", p.fetches())
		}
		wantNoSecret(t, err, p.issuedToken(0), p.issuedToken(1))
	})
	t.Run("TokenEndpointAnswers201", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		p := newIDP(t, s)
		const tok = "at-created-9b1d2c3e4f5a"
		s.tokens[tok] = 0
		p.faults = append(p.faults, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
		})
		if _, err := open(t, p.config()).EnsureAccount(testCtx(t), testAccount(1, "a@example.com")); err != nil {
			wantNoSecret(t, err, tok)
			t.Fatalf("EnsureAccount with a token answered 201: %v", err)
		}
	})
	t.Run("TokenEndpoint2xxBodyNeverQuoted", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{
			`{"access_token":"at-bad token-9b1d2c3e","token_type":"Bearer"}`,        // not a b64token
			`{"access_token":"at-9b1d2c3e4f5a","token_type":"mac at-9b1d2c3e4f5a"}`, // wrong type quoting it
			`{"access_token":"at-9b1d2c3e4f5a","expires_in":"NaN"}`,
			`{"access_token":"at-9b1d2c3e4f5a", oops}`,
		} {
			s := newSaaS(t)
			p := newIDP(t, s)
			p.faults = append(p.faults, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, body)
			})
			_, err := open(t, p.config()).EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			wantClass(t, err, connectors.Permanent, 0)
			wantNoSecret(t, err, "at-bad token-9b1d2c3e", "at-9b1d2c3e4f5a")
		}
	})
	t.Run("TokenEndpointEchoesClientCredentials", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		p := newIDP(t, s)
		p.faults = append(p.faults, func(w http.ResponseWriter, r *http.Request) {
			user, pass, _ := r.BasicAuth()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"got %s / %s / %s"}`, r.Header.Get("Authorization"), pass, user)
		})
		_, err := open(t, p.config()).EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
		wantClass(t, err, connectors.Permanent, 0)
		cfg := p.config()
		_, basic, _ := strings.Cut(basicHeader(cfg.OAuth2), " ")
		wantNoSecret(t, err, testClientSecret, url.QueryEscape(testClientSecret), basic)
	})
}

func basicHeader(o *OAuth2) string {
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
	r.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(string(o.ClientSecret)))
	return r.Header.Get("Authorization")
}

// Printing the connector, any way, shows no credential; nor does
// printing what holds them.
func TestConnNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	p := newIDP(t, s)
	static := open(t, s.config())
	oauth := open(t, p.config())
	// Fetch a token, so the OAuth 2.0 connector holds one.
	if _, err := oauth.EnsureAccount(testCtx(t), testAccount(1, "a@example.com")); err != nil {
		t.Fatal(err)
	}
	secrets := []string{testToken, testClientSecret, url.QueryEscape(testClientSecret), p.issuedToken(0)}
	for name, conn := range map[string]*Conn{"static": static, "oauth2": oauth} {
		var js, txt bytes.Buffer
		slog.New(slog.NewJSONHandler(&js, nil)).Info("conn", "conn", conn, "auth", conn.auth)
		slog.New(slog.NewTextHandler(&txt, nil)).Info("conn", "conn", conn, "auth", conn.auth)
		shown := map[string]string{
			"%v":        fmt.Sprintf("%v", conn),
			"%+v":       fmt.Sprintf("%+v", conn),
			"%#v":       fmt.Sprintf("%#v", conn),
			"%s":        fmt.Sprintf("%s", conn),
			"%q":        fmt.Sprintf("%q", conn),
			"auth %+v":  fmt.Sprintf("%+v", conn.auth),
			"auth %#v":  fmt.Sprintf("%#v", conn.auth),
			"slog json": js.String(),
			"slog text": txt.String(),
		}
		for how, out := range shown {
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Errorf("%s: %s shows %q: %s", name, how, secret, out)
				}
			}
		}
		if want := "scim test-scim " + conn.base; shown["%+v"] != want {
			t.Errorf("%s: %%+v = %q, want %q", name, shown["%+v"], want)
		}
		if !strings.Contains(js.String(), `"base_url":"`+conn.base+`"`) {
			t.Errorf("%s: slog does not name the base_url: %s", name, js.String())
		}
	}
}

// Ids that cannot name one resource in a path are refused, whether a
// target returns them or a caller passes one as a ref.
func TestDotIDsRefused(t *testing.T) {
	t.Parallel()
	created := func(id string) func(http.ResponseWriter, *http.Request) bool {
		return respond(http.StatusCreated, nil, `{"id":"`+id+`","userName":"b@example.com"}`)
	}
	cases := []struct {
		name   string
		faults []fault
		call   func(ctx context.Context, c *Conn) error
	}{
		{"CreatedDotDot", []fault{{match: onMethod(http.MethodPost), answer: created("..")}}, ensureB},
		{"CreatedDot", []fault{{match: onMethod(http.MethodPost), answer: created(".")}}, ensureB},
		{"LookedUpDotDot", []fault{{match: onList("/Users"), answer: respond(200, nil,
			`{"totalResults":1,"Resources":[{"id":"..","userName":"b@example.com"}]}`)}}, ensureB},
		{"GroupDotDot", []fault{{match: onList("/Groups"), answer: respond(200, nil,
			`{"totalResults":1,"Resources":[{"id":"..","displayName":"Engineering"}]}`)}},
			func(ctx context.Context, c *Conn) error { return c.Grant(ctx, "u-1", "group:Engineering") }},
		{"DisableRefDotDot", nil, func(ctx context.Context, c *Conn) error { return c.DisableAccount(ctx, "..") }},
		{"GrantRefDot", nil, func(ctx context.Context, c *Conn) error { return c.Grant(ctx, ".", "group:Engineering") }},
		{"RevokeRefDotDot", nil, func(ctx context.Context, c *Conn) error { return c.Revoke(ctx, "..", "group:Engineering") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			s.createGroup("Engineering")
			conn := open(t, s.config())
			s.inject(tc.faults...)
			err := tc.call(testCtx(t), conn)
			wantClass(t, err, connectors.Permanent, 0)
			for _, r := range s.requests() {
				if strings.HasSuffix(strings.SplitN(r, "?", 2)[0], "/.") || strings.Contains(r, "/..") {
					t.Errorf("request sent with a dot id: %s", r)
				}
			}
		})
	}
}

// A group renamed on the target, with another taking its old name, is
// seen once the cached id is older than groupTTL.
func TestGroupCacheExpires(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	old := s.createGroup("Engineering")
	conn := open(t, s.config())
	clk := newClock()
	conn.now = clk.Now
	a, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := conn.EnsureAccount(testCtx(t), testAccount(2, "b@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Grant(testCtx(t), a, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if code, body := s.direct(http.MethodPatch, "/Groups/"+old,
		patch(patchOperation{Op: "replace", Path: "displayName", Value: "Engineering (archived)"})); code != http.StatusOK {
		t.Fatalf("rename: %d %v", code, body)
	}
	renamed := s.createGroup("Engineering")
	clk.Add(groupTTL)
	if err := conn.Grant(testCtx(t), b, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if got := s.groupMembers(t, renamed); len(got) != 1 || got[0] != b {
		t.Errorf("members of the new Engineering = %q, want [%s]", got, b)
	}
	if got := s.groupMembers(t, old); len(got) != 1 || got[0] != a {
		t.Errorf("members of the renamed group = %q, want only [%s]", got, a)
	}
}

// A target that drops the externalId on creation is reported: its
// accounts cannot be recognised as jmlgate's afterwards.
func TestWarnsWhenTargetDropsExternalID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		warn       bool
	}{
		{"Dropped", `{"id":"u-1","userName":"b@example.com"}`, true},
		{"Kept", `{"id":"u-1","userName":"b@example.com","externalId":"` + testAccount(2, "").IdentityID + `"}`, false},
		{"MinimalAnswer", `{"id":"u-1"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			var logged bytes.Buffer
			conn, err := s.config().Open("test-scim", slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			s.inject(fault{match: onMethod(http.MethodPost), answer: respond(http.StatusCreated, nil, tc.body)})
			if _, err := conn.EnsureAccount(testCtx(t), testAccount(2, "b@example.com")); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "did not store the externalId")
			if warned != tc.warn {
				t.Errorf("warning = %v, want %v: %s", warned, tc.warn, logged.String())
			}
		})
	}
}
