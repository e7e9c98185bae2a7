package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jmlgate/jmlgate/internal/auth"
	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// failingTokens is a token store that cannot be reached.
type failingTokens struct{}

func (failingTokens) TokenByHash(context.Context, []byte) (*store.Token, error) {
	return nil, errors.New("database is locked")
}

type fixture struct {
	h      http.Handler
	scim   string // token with scope scim
	audit  string // token with scope audit only
	actors chan string
	reg    *prometheus.Registry
}

func newFixture(t *testing.T, ready error) *fixture {
	t.Helper()
	scimTok, scimHash, _ := auth.NewToken()
	auditTok, auditHash, _ := auth.NewToken()
	a, err := auth.New(config.Auth{Tokens: []config.StaticToken{
		{Name: "entra", SHA256: hex.EncodeToString(scimHash), Scopes: []string{"scim"}},
		{Name: "auditor", SHA256: hex.EncodeToString(auditHash), Scopes: []string{"audit"}},
	}}, failingTokens{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{scim: scimTok, audit: auditTok, actors: make(chan string, 10), reg: prometheus.NewRegistry()}
	f.h = New(Config{
		Auth: a,
		SCIM: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.actors <- reqctx.Actor(r.Context())
			w.WriteHeader(http.StatusNoContent)
		}),
		Ready:     func(context.Context) error { return ready },
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:  f.reg,
		BodyLimit: 100,
	})
	return f
}

func (f *fixture) do(method, path, token string, body string) (*http.Response, map[string]any) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Result(), m
}

func TestAuthAndScopes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	cases := []struct {
		name, token, header string
		status              int
		detail              string
	}{
		{"no header", "", "", 401, "missing Authorization"},
		{"basic scheme", "", "Basic dXNlcjpwYXNz", 401, "Bearer scheme"},
		{"token store unreachable: 500, not 401", "", "Bearer jmg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 500, "internal error"},
		{"wrong scope", f.audit, "", 403, "lacks the scim scope"},
		{"right scope", f.scim, "", 204, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/scim/v2/Users", nil)
			switch {
			case c.header != "":
				req.Header.Set("Authorization", c.header)
			case c.token != "":
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if c.status == 204 {
				if got := <-f.actors; got != "entra" {
					t.Fatalf("actor in context = %q", got)
				}
				return
			}
			var body map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			// SCIM routes answer in the SCIM error schema, without the credential.
			if body["status"] != strconv.Itoa(c.status) || !strings.Contains(body["detail"].(string), c.detail) {
				t.Fatalf("body %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "jmg_") || strings.Contains(rec.Body.String(), "locked") {
				t.Fatalf("error leaks the credential or the internal cause: %s", rec.Body)
			}
			if c.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestNonSCIMErrorsAreJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t, errors.New("no such table: resources"))
	resp, body := f.do("GET", "/readyz", "", "")
	if resp.StatusCode != 503 || body["error"] != "not_ready" || strings.Contains(body["message"].(string), "no such table") {
		t.Fatalf("readyz: %d %v", resp.StatusCode, body)
	}
	resp, body = f.do("GET", "/api/v1/nothing", "", "")
	if resp.StatusCode != 404 || body["error"] != "not_found" || body["message"] == "" {
		t.Fatalf("unknown route: %d %v", resp.StatusCode, body)
	}
	if resp, _ := f.do("GET", "/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" {
		t.Fatal("no X-Request-Id on responses")
	}
}

func TestDeclaredBodyOverLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp, body := f.do("POST", "/scim/v2/Users", f.scim, strings.Repeat("x", 101))
	if resp.StatusCode != 413 || body["status"] != "413" || !strings.Contains(body["detail"].(string), "limit of 100 bytes") {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
}

// Resource ids must never become metric labels.
func TestRouteLabels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, p := range []string{"/scim/v2/Users/1", "/scim/v2/Users/2", "/scim/v2/Groups/x", "/scim/v2/Users/.search", "/scim/v2/Schemas/urn:x", "/scim/v2/Users"} {
		f.do("GET", p, f.scim, "")
		<-f.actors
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "jmlgate_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"/scim/v2/Users/{id}": 2, "/scim/v2/Groups/{id}": 1, "/scim/v2/Users/.search": 1, "/scim/v2/Schemas/{id}": 1, "/scim/v2/Users": 1}
	if len(got) != len(want) {
		t.Fatalf("route labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("route labels %v, want %v", got, want)
		}
	}
}

func TestRequestIDFromUpstreamIsSanitised(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, c := range []struct {
		sent string
		kept bool
	}{
		{"abc-123_X.y:z", true},
		{strings.Repeat("a", 129), false},
		{"bad id\" with quotes", false},
		{"", false},
	} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		if c.sent != "" {
			req.Header.Set("X-Request-Id", c.sent)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if (got == c.sent) != c.kept || got == "" {
			t.Errorf("sent %q: response id %q (kept %v)", c.sent, got, c.kept)
		}
	}
}

func TestPublicMountTakesNoToken(t *testing.T) {
	t.Parallel()
	reached := 0
	h := New(Config{
		Auth:     mustAuth(t),
		SCIM:     http.NotFoundHandler(),
		Ready:    func(context.Context) error { return nil },
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Mounts: []Mount{
			{Prefix: "/api/v1/events", Public: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached++
				w.WriteHeader(http.StatusAccepted)
			})},
			{Prefix: "/api/v1/private", Scopes: []auth.Scope{auth.ScopeAdmin}, Handler: http.NotFoundHandler()},
		},
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/events", strings.NewReader("x")))
	if rec.Code != http.StatusAccepted || reached != 1 {
		t.Fatalf("public mount: %d, reached %d", rec.Code, reached)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/private", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("private mount without a token: %d", rec.Code)
	}
}

func mustAuth(t *testing.T) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(config.Auth{}, failingTokens{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
