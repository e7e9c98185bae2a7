package scim

// The test target: jmlgate's own SCIM service provider (package scim at
// the module root) on a real, migrated SQLite file, behind a middleware
// that checks the bearer token and injects faults.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	scimsrv "github.com/jmlgate/jmlgate/scim"
)

const testToken = "tok-5f1c0e7a-never-print-me"

// fault answers the first request it matches instead of the server.
type fault struct {
	match func(r *http.Request) bool // nil: any request
	// answer writes the response; returning false lets the server
	// answer after all.
	answer func(w http.ResponseWriter, r *http.Request) bool
}

// onMethod matches requests of one method.
func onMethod(m string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == m }
}

// saas is one SCIM service provider on its own SQLite file.
type saas struct {
	t   *testing.T
	srv http.Handler // the service provider, without faults or auth
	ts  *httptest.Server

	mu     sync.Mutex
	faults []fault        // consumed one per request, in order
	hang   chan struct{}  // non-nil: requests wait until it is closed
	tokens map[string]int // accepted bearer tokens → times used
	seen   []string       // "METHOD /path?query" of every request
}

func newSaaS(t *testing.T) *saas {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "saas.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	srv := scimsrv.NewServer(scimsrv.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	s := &saas{t: t, srv: withActor(srv), tokens: map[string]int{testToken: 0}}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.ts.Close)
	return s
}

// withActor is what jmlgate's HTTP layer does in front of the service
// provider: the authenticated caller goes into the context.
func withActor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := reqctx.WithRequestID(reqctx.WithActor(r.Context(), "token:connector-test"), "req-test")
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *saas) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.Method+" "+r.URL.RequestURI())
	hang := s.hang
	var f *fault
	for i := range s.faults {
		if s.faults[i].match == nil || s.faults[i].match(r) {
			f = &s.faults[i]
			s.faults = slices.Delete(slices.Clone(s.faults), i, i+1)
			break
		}
	}
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if f != nil && f.answer(w, r) {
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	_, good := s.tokens[tok]
	if ok && good {
		s.tokens[tok]++
	}
	s.mu.Unlock()
	if !ok || !good {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"bad token"}`, http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); r.ContentLength > 0 && ct != mediaType {
		http.Error(w, "connector sent Content-Type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	if a := r.Header.Get("Accept"); a != mediaType {
		http.Error(w, "connector sent Accept "+a, http.StatusNotAcceptable)
		return
	}
	s.srv.ServeHTTP(w, r)
}

// inject queues faults for the next requests.
func (s *saas) inject(fs ...fault) {
	s.mu.Lock()
	s.faults = append(s.faults, fs...)
	s.mu.Unlock()
}

// fail answers the next request with status and header.
func (s *saas) fail(status int, header http.Header) {
	s.inject(fault{answer: respond(status, header, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"injected"}`)})
}

// respond is a fault answer with a fixed response.
func respond(status int, header http.Header, body string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", mediaType)
		w.WriteHeader(status)
		io.WriteString(w, body)
		return true
	}
}

// drop hijacks the connection and closes it without a response.
func drop(w http.ResponseWriter, _ *http.Request) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
	return true
}

// clearFaults drops the faults not yet used.
func (s *saas) clearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// hold makes every request wait until release is called.
func (s *saas) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hang = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.hang = nil
			s.mu.Unlock()
			close(ch)
		})
	}
}

// requests returns the requests seen so far.
func (s *saas) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// direct sends a request straight to the service provider, without the
// connector, faults or auth. body is JSON-encoded unless nil.
func (s *saas) direct(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, scimsrv.Prefix+path, rd)
	req.Header.Set("Content-Type", mediaType)
	rec := httptest.NewRecorder()
	s.srv.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			s.t.Fatalf("%s %s: HTTP %d, body not JSON: %s", method, path, rec.Code, rec.Body)
		}
	}
	return rec.Code, out
}

// createGroup creates a group directly and returns its id.
func (s *saas) createGroup(name string) string {
	s.t.Helper()
	code, body := s.direct(http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{groupSchema}, "displayName": name,
	})
	if code != http.StatusCreated {
		s.t.Fatalf("create group %q: HTTP %d %v", name, code, body)
	}
	return body["id"].(string)
}

// createUser creates a user directly and returns its id.
func (s *saas) createUser(userName, externalID string, active bool) string {
	s.t.Helper()
	doc := map[string]any{"schemas": []string{userSchema}, "userName": userName, "active": active}
	if externalID != "" {
		doc["externalId"] = externalID
	}
	code, body := s.direct(http.MethodPost, "/Users", doc)
	if code != http.StatusCreated {
		s.t.Fatalf("create user %q: HTTP %d %v", userName, code, body)
	}
	return body["id"].(string)
}

// inspect reads a user and its groups straight from the service provider.
func (s *saas) inspect(t *testing.T, ref string) (connectors.AccountState, bool) {
	t.Helper()
	code, body := s.direct(http.MethodGet, "/Users/"+url.PathEscape(ref), nil)
	if code == http.StatusNotFound {
		return connectors.AccountState{}, false
	}
	if code != http.StatusOK {
		t.Fatalf("inspect %s: HTTP %d %v", ref, code, body)
	}
	st := connectors.AccountState{Ref: body["id"].(string)}
	st.UserName, _ = body["userName"].(string)
	st.IdentityID, _ = body["externalId"].(string)
	st.Enabled, _ = body["active"].(bool)
	groups, _ := body["groups"].([]any)
	for _, g := range groups {
		st.Entitlements = append(st.Entitlements, groupPrefix+g.(map[string]any)["display"].(string))
	}
	slices.Sort(st.Entitlements)
	return st, true
}

// groupMembers reads a group's member ids straight from the service
// provider; nil when the group does not exist.
func (s *saas) groupMembers(t *testing.T, id string) []string {
	t.Helper()
	code, body := s.direct(http.MethodGet, "/Groups/"+id, nil)
	if code == http.StatusNotFound {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("group %s: HTTP %d %v", id, code, body)
	}
	out := []string{}
	ms, _ := body["members"].([]any)
	for _, m := range ms {
		out = append(out, m.(map[string]any)["value"].(string))
	}
	slices.Sort(out)
	return out
}

// groupsNamed returns the ids of the groups called name.
func (s *saas) groupsNamed(t *testing.T, name string) []string {
	t.Helper()
	code, body := s.direct(http.MethodGet, "/Groups?filter="+url.QueryEscape(eqFilter("displayName", name)), nil)
	if code != http.StatusOK {
		t.Fatalf("list groups: HTTP %d %v", code, body)
	}
	var ids []string
	rs, _ := body["Resources"].([]any)
	for _, r := range rs {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	return ids
}

// testConfig is a valid configuration for s.
func (s *saas) config() *Config {
	c := NewConfig().(*Config)
	c.BaseURL = s.ts.URL + scimsrv.Prefix
	c.Token = testToken
	return c
}

// open opens the connector for c with a fixed clock.
func open(t *testing.T, c *Config) *Conn {
	t.Helper()
	conn, err := c.Open("test-scim", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return conn.(*Conn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testAccount(i int, userName string) connectors.Account {
	return connectors.Account{
		IdentityID:  "11111111-2222-4333-8444-" + strings.Repeat("0", 11) + string(rune('0'+i%10)),
		UserName:    userName,
		DisplayName: "Test " + userName,
		GivenName:   "Test",
		FamilyName:  userName,
		Email:       "person@example.com",
	}
}

// wantClass fails unless err is classified c with retry-after after.
func wantClass(t *testing.T, err error, c connectors.Class, after time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a %v error", c)
	}
	got, gotAfter := connectors.ClassOf(err)
	if got != c || gotAfter != after {
		t.Fatalf("class %v retry-after %v, want %v %v (err: %v)", got, gotAfter, c, after, err)
	}
}
