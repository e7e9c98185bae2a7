package scim_test

// Behaviour tests of the SCIM service provider against RFC 7643 / RFC 7644,
// over HTTP, on a real migrated SQLite store. This file holds the harness
// and the single-resource endpoints (POST, GET, PUT, DELETE) plus routing;
// PATCH, list, Bulk, discovery and audit live in server_*_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/scim"
)

const (
	userURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	lifecycleURN  = "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"
	errorURN      = "urn:ietf:params:scim:api:messages:2.0:Error"
	listURN       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	patchURN      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	searchURN     = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	bulkReqURN    = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	bulkRespURN   = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

	// srvActor is the actor every harness request runs as unless the
	// X-Test-Actor header names another.
	srvActor = "token:hr-sync"
)

// srvEpoch is the first instant the harness clock returns.
var srvEpoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// srvClock is an injected clock that advances one second per reading, so
// every write gets a distinct, predictable timestamp.
type srvClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *srvClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// srvEnv is one server on its own migrated SQLite file.
type srvEnv struct {
	t    *testing.T
	st   *sqlite.Store
	ts   *httptest.Server
	base string // ts.URL + scim.Prefix
	cfg  scim.Config
	// actor, when set, is sent as X-Test-Actor on every request. Only
	// tests whose subtests run in sequence may set it.
	actor string
}

// newSrvEnv starts a server; tweak may change the Config before NewServer.
func newSrvEnv(t *testing.T, tweak func(*scim.Config)) *srvEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "scim.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	clock := &srvClock{t: srvEpoch}
	cfg := scim.Config{Store: st, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)}
	if tweak != nil {
		tweak(&cfg)
	}
	srv := scim.NewServer(cfg)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor := srvActor
		if a := r.Header.Get("X-Test-Actor"); a != "" {
			actor = a
		}
		ctx := reqctx.WithRequestID(reqctx.WithActor(r.Context(), actor), "req-test")
		srv.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(ts.Close)
	return &srvEnv{t: t, st: st, ts: ts, base: ts.URL + scim.Prefix, cfg: cfg}
}

// srvResp is a response with its body decoded (numbers as json.Number).
type srvResp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // nil when the body is not a JSON object
}

// do sends a request. body is sent as is when it is a string or []byte and
// JSON-encoded otherwise (nil: no body). hdr holds header name/value pairs;
// Content-Type defaults to application/scim+json when there is a body.
func (e *srvEnv) do(method, path string, body any, hdr ...string) *srvResp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode request: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	// Query strings are written unencoded in tests (spaces, quotes, '+');
	// encode them here. '&' cannot appear inside a parameter value.
	if p, q, ok := strings.Cut(path, "?"); ok {
		var enc []string
		for _, kv := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(kv, "=")
			enc = append(enc, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
		path = p + "?" + strings.Join(enc, "&")
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if e.actor != "" {
		req.Header.Set("X-Test-Actor", e.actor)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	out := &srvResp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var m map[string]any
		if d.Decode(&m) == nil {
			out.Body = m
		}
	}
	return out
}

// want fails the test unless the response has the given status.
func (r *srvResp) want(t *testing.T, status int) *srvResp {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Raw)
	}
	return r
}

// wantError checks an RFC 7644 §3.12 error response: status, the Error
// schema, "status" as a JSON string, the scimType (when scimType != "-")
// and that detail contains every fragment.
func (r *srvResp) wantError(t *testing.T, status int, scimType string, fragments ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("Content-Type = %q, want application/scim+json", ct)
	}
	if r.Body == nil {
		t.Fatalf("error body is not a JSON object: %s", r.Raw)
	}
	if !reflect.DeepEqual(r.Body["schemas"], []any{errorURN}) {
		t.Errorf("schemas = %v, want [%s]", r.Body["schemas"], errorURN)
	}
	if got, want := r.Body["status"], fmt.Sprint(status); got != want {
		t.Errorf("status member = %#v, want the string %q", got, want)
	}
	if scimType != "-" {
		got, _ := r.Body["scimType"].(string)
		if got != scimType {
			t.Errorf("scimType = %q, want %q; body: %s", got, scimType, r.Raw)
		}
	}
	detail, _ := r.Body["detail"].(string)
	for _, f := range fragments {
		if !strings.Contains(detail, f) {
			t.Errorf("detail %q does not contain %q", detail, f)
		}
	}
}

// createUser POSTs a user and returns its document; extra attributes merge
// into the body.
func (e *srvEnv) createUser(userName string, extra map[string]any) map[string]any {
	e.t.Helper()
	body := map[string]any{"schemas": []string{userURN}, "userName": userName}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do(http.MethodPost, "/Users", body)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("create user %q: status %d: %s", userName, r.Status, r.Raw)
	}
	return r.Body
}

// createGroup POSTs a group with the given member ids.
func (e *srvEnv) createGroup(name string, memberIDs ...string) map[string]any {
	e.t.Helper()
	body := map[string]any{"schemas": []string{groupURN}, "displayName": name}
	if len(memberIDs) > 0 {
		ms := make([]any, len(memberIDs))
		for i, id := range memberIDs {
			ms[i] = map[string]any{"value": id}
		}
		body["members"] = ms
	}
	r := e.do(http.MethodPost, "/Groups", body)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("create group %q: status %d: %s", name, r.Status, r.Raw)
	}
	return r.Body
}

// patchOps builds a PatchOp body.
func patchOps(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{patchURN}, "Operations": ops}
}

func op(verb, path string, value any) map[string]any {
	m := map[string]any{"op": verb}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// audit returns every audit record in the store.
func (e *srvEnv) audit() []*store.AuditRecord {
	e.t.Helper()
	var recs []*store.AuditRecord
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		var err error
		recs, err = tx.AuditRange(context.Background(), 1, -1)
		return err
	})
	if err != nil {
		e.t.Fatalf("audit range: %v", err)
	}
	return recs
}

// get navigates a decoded document: keys for objects, ints for arrays.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func idOf(doc map[string]any) string { s, _ := doc["id"].(string); return s }

func metaOf(doc map[string]any, field string) string {
	s, _ := get(doc, "meta", field).(string)
	return s
}

func clockAt(n int) string {
	return srvEpoch.Add(time.Duration(n) * time.Second).Format(time.RFC3339Nano)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestServerCreateUser(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) { c.MaxBodyBytes = 2048 })

	t.Run("201 with Location, ETag and full meta", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Users", map[string]any{
			"schemas":  []string{userURN},
			"userName": "meta.check@example.com",
			"name":     map[string]any{"givenName": "Meta", "familyName": "Check"},
		}).want(t, http.StatusCreated)
		if ct := r.Header.Get("Content-Type"); ct != "application/scim+json" {
			t.Errorf("Content-Type = %q", ct)
		}
		id := idOf(r.Body)
		if !uuidRE.MatchString(id) {
			t.Errorf("id %q is not a v7 UUID", id)
		}
		loc := metaOf(r.Body, "location")
		if want := env.base + "/Users/" + id; loc != want {
			t.Errorf("meta.location = %q, want %q", loc, want)
		}
		if got := r.Header.Get("Location"); got != loc {
			t.Errorf("Location = %q, want meta.location %q", got, loc)
		}
		if v := metaOf(r.Body, "version"); v != `W/"1"` || r.Header.Get("ETag") != v {
			t.Errorf("meta.version = %q, ETag = %q; want both W/\"1\"", v, r.Header.Get("ETag"))
		}
		if rt := metaOf(r.Body, "resourceType"); rt != "User" {
			t.Errorf("meta.resourceType = %q", rt)
		}
		created, lastMod := metaOf(r.Body, "created"), metaOf(r.Body, "lastModified")
		ct, err := time.Parse(time.RFC3339Nano, created)
		if err != nil || ct.Before(srvEpoch) {
			t.Errorf("meta.created = %q is not a harness clock time (%v)", created, err)
		}
		if lastMod != created {
			t.Errorf("meta.lastModified = %q, want created %q on a new resource", lastMod, created)
		}
		if got := keys(get(r.Body, "meta").(map[string]any)); !reflect.DeepEqual(got, []string{"created", "lastModified", "location", "resourceType", "version"}) {
			t.Errorf("meta keys = %v", got)
		}
		// GET returns the same representation.
		g := env.do(http.MethodGet, "/Users/"+id, nil).want(t, http.StatusOK)
		if !reflect.DeepEqual(g.Body, r.Body) {
			t.Errorf("GET after POST differs:\n got %s\nwant %s", g.Raw, r.Raw)
		}
	})

	t.Run("schemas rebuilt from the extensions present", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Users", map[string]any{
			// Lists lifecycle (absent) and an unknown URN, omits enterprise
			// (present), as Okta and Entra do.
			"schemas":     []string{userURN, lifecycleURN, "urn:example:params:scim:schemas:Private"},
			"userName":    "schemas.check@example.com",
			enterpriseURN: map[string]any{"department": "Finance"},
		}).want(t, http.StatusCreated)
		if want := []any{userURN, enterpriseURN}; !reflect.DeepEqual(r.Body["schemas"], want) {
			t.Errorf("schemas = %v, want %v", r.Body["schemas"], want)
		}
		if got := get(r.Body, enterpriseURN, "department"); got != "Finance" {
			t.Errorf("department = %v", got)
		}
	})

	t.Run("password accepted and never returned", func(t *testing.T) {
		t.Parallel()
		const secret = "Sup3r-Secr3t-Passw0rd"
		r := env.do(http.MethodPost, "/Users", map[string]any{
			"schemas": []string{userURN}, "userName": "pw.check@example.com", "password": secret,
		}).want(t, http.StatusCreated)
		id := idOf(r.Body)
		for _, q := range []string{"", "?attributes=password", "?attributes=password,userName", "?excludedAttributes=userName"} {
			g := env.do(http.MethodGet, "/Users/"+id+q, nil).want(t, http.StatusOK)
			if bytes.Contains(g.Raw, []byte(secret)) || g.Body["password"] != nil {
				t.Errorf("GET%s returned the password: %s", q, g.Raw)
			}
		}
		if bytes.Contains(r.Raw, []byte(secret)) || r.Body["password"] != nil {
			t.Errorf("POST response returned the password: %s", r.Raw)
		}
		l := env.do(http.MethodGet, `/Users?filter=userName eq "pw.check@example.com"&attributes=password`, nil).want(t, http.StatusOK)
		if bytes.Contains(l.Raw, []byte(secret)) {
			t.Errorf("list returned the password: %s", l.Raw)
		}
	})

	t.Run("readOnly id, meta and groups in the body are ignored", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Users", map[string]any{
			"schemas":  []string{userURN},
			"id":       "client-chosen-id",
			"userName": "readonly.check@example.com",
			"meta":     map[string]any{"created": "2000-01-01T00:00:00Z", "version": `W/"99"`},
			"groups":   []any{map[string]any{"value": "nope"}},
		}).want(t, http.StatusCreated)
		if idOf(r.Body) == "client-chosen-id" || !uuidRE.MatchString(idOf(r.Body)) {
			t.Errorf("id = %q, want a server-assigned UUID", idOf(r.Body))
		}
		if c := metaOf(r.Body, "created"); strings.HasPrefix(c, "2000") {
			t.Errorf("meta.created = %q taken from the body", c)
		}
		if v := metaOf(r.Body, "version"); v != `W/"1"` {
			t.Errorf("meta.version = %q taken from the body", v)
		}
		if r.Body["groups"] != nil {
			t.Errorf("groups = %v taken from the body", r.Body["groups"])
		}
	})

	t.Run("uniqueness is case-insensitive", func(t *testing.T) {
		t.Parallel()
		env.createUser("Case.Variant@example.com", nil)
		r := env.do(http.MethodPost, "/Users", map[string]any{"schemas": []string{userURN}, "userName": "case.VARIANT@EXAMPLE.com"})
		r.wantError(t, http.StatusConflict, "uniqueness", "case.VARIANT@EXAMPLE.com")
	})

	errCases := []struct {
		name      string
		body      any
		hdr       []string
		status    int
		scimType  string
		fragments []string
	}{
		{name: "missing userName", body: map[string]any{"schemas": []string{userURN}, "displayName": "No Name"},
			status: 400, scimType: "invalidValue", fragments: []string{`"userName"`, "required"}},
		{name: "empty userName", body: map[string]any{"schemas": []string{userURN}, "userName": ""},
			status: 400, scimType: "invalidValue", fragments: []string{`"userName"`}},
		{name: "unknown attribute", body: map[string]any{"schemas": []string{userURN}, "userName": "x1@example.com", "fooBar": 1},
			status: 400, scimType: "invalidValue", fragments: []string{`"fooBar"`}},
		{name: "unknown enterprise attribute", body: map[string]any{"schemas": []string{userURN}, "userName": "x2@example.com", enterpriseURN: map[string]any{"shoeSize": 9}},
			status: 400, scimType: "invalidValue", fragments: []string{"shoeSize"}},
		{name: "wrong type", body: map[string]any{"schemas": []string{userURN}, "userName": "x3@example.com", "active": "maybe"},
			status: 400, scimType: "invalidValue", fragments: []string{`"active"`, "boolean"}},
		{name: "missing schemas", body: map[string]any{"userName": "x4@example.com"},
			status: 400, scimType: "invalidSyntax", fragments: []string{"schemas"}},
		{name: "group schema on Users", body: map[string]any{"schemas": []string{groupURN}, "userName": "x5@example.com"},
			status: 400, scimType: "invalidSyntax", fragments: []string{userURN}},
		// "byte 74" is the 1-based position of the offending 'o' of nope.
		{name: "malformed JSON names the byte offset", body: `{"schemas": ["` + userURN + `"], "userName": nope}`,
			status: 400, scimType: "invalidSyntax", fragments: []string{"malformed JSON at byte 74"}},
		{name: "truncated JSON", body: `{"schemas": [`, status: 400, scimType: "invalidSyntax", fragments: []string{"malformed JSON"}},
		{name: "trailing data", body: `{"schemas": ["` + userURN + `"], "userName": "x6@example.com"} {}`,
			status: 400, scimType: "invalidSyntax", fragments: []string{"after the top-level value"}},
		{name: "array body", body: `[]`, status: 400, scimType: "invalidSyntax"},
		{name: "empty body", body: ``, hdr: []string{"Content-Type", "application/scim+json"}, status: 400, scimType: "invalidSyntax", fragments: []string{"empty"}},
		{name: "wrong Content-Type", body: `{"schemas": ["` + userURN + `"], "userName": "x7@example.com"}`,
			hdr: []string{"Content-Type", "text/plain"}, status: 415, scimType: "-", fragments: []string{"text/plain"}},
		{name: "body over MaxBodyBytes", body: map[string]any{"schemas": []string{userURN}, "userName": "x8@example.com", "displayName": strings.Repeat("x", 4096)},
			status: 413, scimType: "-", fragments: []string{"2048"}},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env.do(http.MethodPost, "/Users", tc.body, tc.hdr...)
			r.wantError(t, tc.status, tc.scimType, tc.fragments...)
			body := tc.body
			if s, ok := body.(string); ok {
				var m map[string]any
				_ = json.Unmarshal([]byte(s), &m)
				body = m
			}
			if name, _ := get(body, "userName").(string); name != "" {
				l := env.do(http.MethodGet, `/Users?filter=userName eq "`+name+`"`, nil).want(t, http.StatusOK)
				if n := l.Body["totalResults"]; n != json.Number("0") {
					t.Errorf("failed create stored %s: %s", name, l.Raw)
				}
			}
		})
	}

	t.Run("plain application/json and charset accepted", func(t *testing.T) {
		t.Parallel()
		for i, ct := range []string{"application/json", "application/scim+json; charset=utf-8", "Application/SCIM+JSON"} {
			env.do(http.MethodPost, "/Users", map[string]any{"schemas": []string{userURN}, "userName": fmt.Sprintf("ct%d@example.com", i)},
				"Content-Type", ct).want(t, http.StatusCreated)
		}
	})
}

func TestServerGetUser(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	u := env.createUser("get.me@example.com", map[string]any{
		"displayName": "Get Me",
		"name":        map[string]any{"givenName": "Get", "familyName": "Me"},
		"emails": []any{
			map[string]any{"value": "get.me@example.com", "type": "work", "primary": true},
			map[string]any{"value": "gm@home.example", "type": "home"},
		},
		"externalId":  "HR-0001",
		enterpriseURN: map[string]any{"department": "Ops", "employeeNumber": "0001"},
	})
	id := idOf(u)

	t.Run("200 equals the create response", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/Users/"+id, nil).want(t, http.StatusOK)
		if !reflect.DeepEqual(r.Body, u) {
			t.Errorf("GET = %s\nwant %v", r.Raw, u)
		}
		if r.Header.Get("ETag") != `W/"1"` {
			t.Errorf("ETag = %q", r.Header.Get("ETag"))
		}
	})

	t.Run("404 is a SCIM error naming the id", func(t *testing.T) {
		t.Parallel()
		env.do(http.MethodGet, "/Users/00000000-0000-4000-8000-000000000000", nil).
			wantError(t, http.StatusNotFound, "", "00000000-0000-4000-8000-000000000000")
	})

	t.Run("a group id is not a user", func(t *testing.T) {
		t.Parallel()
		g := env.createGroup("not-a-user")
		env.do(http.MethodGet, "/Users/"+idOf(g), nil).wantError(t, http.StatusNotFound, "")
	})

	t.Run("If-None-Match", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			inm    string
			status int
		}{
			{`W/"1"`, http.StatusNotModified},
			{`"1"`, http.StatusNotModified},
			{`W/"7", W/"1"`, http.StatusNotModified},
			{`*`, http.StatusNotModified},
			{`W/"2"`, http.StatusOK},
		} {
			r := env.do(http.MethodGet, "/Users/"+id, nil, "If-None-Match", tc.inm)
			if r.Status != tc.status {
				t.Errorf("If-None-Match %s: status %d, want %d", tc.inm, r.Status, tc.status)
			}
			if r.Status == http.StatusNotModified && (len(r.Raw) != 0 || r.Header.Get("ETag") != `W/"1"`) {
				t.Errorf("304 has body %q / ETag %q", r.Raw, r.Header.Get("ETag"))
			}
		}
	})

	projCases := []struct {
		query    string
		wantKeys []string
		check    func(t *testing.T, doc map[string]any)
	}{
		{query: "attributes=userName", wantKeys: []string{"id", "schemas", "userName"}},
		{query: "attributes=USERNAME,displayName", wantKeys: []string{"displayName", "id", "schemas", "userName"}},
		{query: "attributes=name.givenName", wantKeys: []string{"id", "name", "schemas"}, check: func(t *testing.T, doc map[string]any) {
			if !reflect.DeepEqual(doc["name"], map[string]any{"givenName": "Get"}) {
				t.Errorf("name = %v, want only givenName", doc["name"])
			}
		}},
		{query: "attributes=emails.value", wantKeys: []string{"emails", "id", "schemas"}, check: func(t *testing.T, doc map[string]any) {
			want := []any{map[string]any{"value": "get.me@example.com"}, map[string]any{"value": "gm@home.example"}}
			if !reflect.DeepEqual(doc["emails"], want) {
				t.Errorf("emails = %v, want %v", doc["emails"], want)
			}
		}},
		{query: "attributes=" + enterpriseURN + ":department", wantKeys: []string{enterpriseURN, "id", "schemas"}, check: func(t *testing.T, doc map[string]any) {
			if !reflect.DeepEqual(doc[enterpriseURN], map[string]any{"department": "Ops"}) {
				t.Errorf("enterprise = %v", doc[enterpriseURN])
			}
			if !reflect.DeepEqual(doc["schemas"], []any{userURN, enterpriseURN}) {
				t.Errorf("schemas = %v", doc["schemas"])
			}
		}},
		{query: "excludedAttributes=emails,meta", wantKeys: []string{enterpriseURN, "displayName", "externalId", "id", "name", "schemas", "userName"}},
		{query: "excludedAttributes=" + enterpriseURN + ":department", wantKeys: []string{enterpriseURN, "displayName", "emails", "externalId", "id", "meta", "name", "schemas", "userName"},
			check: func(t *testing.T, doc map[string]any) {
				if !reflect.DeepEqual(doc[enterpriseURN], map[string]any{"employeeNumber": "0001"}) {
					t.Errorf("enterprise = %v", doc[enterpriseURN])
				}
			}},
		{query: "excludedAttributes=id,schemas", wantKeys: []string{enterpriseURN, "displayName", "emails", "externalId", "id", "meta", "name", "schemas", "userName"}},
	}
	for _, tc := range projCases {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := env.do(http.MethodGet, "/Users/"+id+"?"+tc.query, nil).want(t, http.StatusOK)
			sort.Strings(tc.wantKeys)
			if got := keys(r.Body); !reflect.DeepEqual(got, tc.wantKeys) {
				t.Errorf("keys = %v, want %v", got, tc.wantKeys)
			}
			if r.Body["id"] != id {
				t.Errorf("id = %v", r.Body["id"])
			}
			if tc.check != nil {
				tc.check(t, r.Body)
			}
		})
	}

	t.Run("invalid attribute name in attributes", func(t *testing.T) {
		t.Parallel()
		env.do(http.MethodGet, "/Users/"+id+"?attributes=user Name", nil).wantError(t, 400, "invalidValue", "attributes")
	})

	t.Run("groups lists direct groups", func(t *testing.T) {
		t.Parallel()
		m := env.createUser("member.of@example.com", nil)
		mid := idOf(m)
		if r := env.do(http.MethodGet, "/Users/"+mid, nil).want(t, 200); r.Body["groups"] != nil {
			t.Fatalf("groups before any group: %v", r.Body["groups"])
		}
		inner := env.createGroup("Inner", mid)
		outer := env.createGroup("Outer", idOf(inner))
		r := env.do(http.MethodGet, "/Users/"+mid, nil).want(t, 200)
		want := []any{map[string]any{
			"value": idOf(inner), "display": "Inner", "type": "direct", "$ref": env.base + "/Groups/" + idOf(inner),
		}}
		if !reflect.DeepEqual(r.Body["groups"], want) {
			t.Errorf("groups = %v, want %v (only the direct group)", r.Body["groups"], want)
		}
		if x := env.do(http.MethodGet, "/Users/"+mid+"?excludedAttributes=groups", nil).want(t, 200); x.Body["groups"] != nil {
			t.Errorf("excludedAttributes=groups still returns %v", x.Body["groups"])
		}
		// Every spelling that selects groups returns them.
		for _, q := range []string{"attributes=groups", "attributes=GROUPS.value", "attributes=" + userURN + ":groups", "attributes=" + userURN, "excludedAttributes=groups.display"} {
			x := env.do(http.MethodGet, "/Users/"+mid+"?"+q, nil).want(t, 200)
			if len(asList(x.Body["groups"])) != 1 {
				t.Errorf("%s: groups = %v, want the direct group", q, x.Body["groups"])
			}
			l := env.do(http.MethodGet, `/Users?filter=userName eq "member.of@example.com"&`+q, nil).want(t, 200)
			if len(asList(get(l.Body, "Resources", 0, "groups"))) != 1 {
				t.Errorf("list %s: groups = %v, want the direct group", q, get(l.Body, "Resources", 0, "groups"))
			}
		}
		// The inner group lists itself as a member of outer.
		gi := env.do(http.MethodGet, "/Groups/"+idOf(inner), nil).want(t, 200)
		if gi.Body["groups"] != nil {
			t.Errorf("a Group has no groups attribute, got %v", gi.Body["groups"])
		}
		go2 := env.do(http.MethodGet, "/Groups/"+idOf(outer), nil).want(t, 200)
		wantM := []any{map[string]any{"value": idOf(inner), "type": "Group", "display": "Inner", "$ref": env.base + "/Groups/" + idOf(inner)}}
		if !reflect.DeepEqual(go2.Body["members"], wantM) {
			t.Errorf("outer members = %v, want %v", go2.Body["members"], wantM)
		}
	})
}

func TestServerReplaceUser(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	full := func(userName string) map[string]any {
		return map[string]any{
			"schemas":     []string{userURN, enterpriseURN},
			"userName":    userName,
			"displayName": "Full User",
			"title":       "Engineer",
			"emails":      []any{map[string]any{"value": userName, "type": "work"}},
			enterpriseURN: map[string]any{"department": "R&D"},
		}
	}

	t.Run("full replace drops omitted attributes", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("put.full@example.com", full("put.full@example.com"))
		id := idOf(u)
		r := env.do(http.MethodPut, "/Users/"+id, map[string]any{
			"schemas": []string{userURN}, "userName": "put.full@example.com", "title": "Manager",
		}).want(t, http.StatusOK)
		for _, gone := range []string{"displayName", "emails", enterpriseURN} {
			if r.Body[gone] != nil {
				t.Errorf("%s = %v survived the PUT", gone, r.Body[gone])
			}
		}
		if r.Body["title"] != "Manager" {
			t.Errorf("title = %v", r.Body["title"])
		}
		if !reflect.DeepEqual(r.Body["schemas"], []any{userURN}) {
			t.Errorf("schemas = %v", r.Body["schemas"])
		}
		if v := metaOf(r.Body, "version"); v != `W/"2"` || r.Header.Get("ETag") != v {
			t.Errorf("version = %q, ETag = %q, want W/\"2\"", v, r.Header.Get("ETag"))
		}
		if metaOf(r.Body, "created") != metaOf(u, "created") {
			t.Errorf("created changed: %q -> %q", metaOf(u, "created"), metaOf(r.Body, "created"))
		}
		if metaOf(r.Body, "lastModified") <= metaOf(u, "lastModified") {
			t.Errorf("lastModified %q not after %q", metaOf(r.Body, "lastModified"), metaOf(u, "lastModified"))
		}
		g := env.do(http.MethodGet, "/Users/"+id, nil).want(t, 200)
		if !reflect.DeepEqual(g.Body, r.Body) {
			t.Errorf("GET after PUT = %s\nPUT response = %s", g.Raw, r.Raw)
		}
	})

	t.Run("readOnly attributes ignored and matching id accepted", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("put.ro@example.com", nil)
		id := idOf(u)
		body := full("put.ro@example.com")
		body["id"] = id
		body["meta"] = map[string]any{"created": "1999-01-01T00:00:00Z", "version": `W/"42"`}
		body["groups"] = []any{map[string]any{"value": "x"}}
		r := env.do(http.MethodPut, "/Users/"+id, body).want(t, http.StatusOK)
		if metaOf(r.Body, "created") != metaOf(u, "created") || metaOf(r.Body, "version") != `W/"2"` || r.Body["groups"] != nil {
			t.Errorf("readOnly attributes taken from the body: %s", r.Raw)
		}
	})

	t.Run("id mismatch", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("put.idmismatch@example.com", nil)
		body := full("put.idmismatch@example.com")
		body["id"] = "11111111-1111-4111-8111-111111111111"
		env.do(http.MethodPut, "/Users/"+idOf(u), body).wantError(t, 400, "mutability", "11111111-1111-4111-8111-111111111111", idOf(u))
		if g := env.do(http.MethodGet, "/Users/"+idOf(u), nil).want(t, 200); metaOf(g.Body, "version") != `W/"1"` {
			t.Errorf("rejected PUT changed the version to %s", metaOf(g.Body, "version"))
		}
	})

	t.Run("If-Match", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("put.ifmatch@example.com", nil)
		id := idOf(u)
		body := full("put.ifmatch@example.com")
		env.do(http.MethodPut, "/Users/"+id, body, "If-Match", `W/"5"`).wantError(t, http.StatusPreconditionFailed, "", `W/"1"`)
		if g := env.do(http.MethodGet, "/Users/"+id, nil).want(t, 200); g.Body["title"] != nil || metaOf(g.Body, "version") != `W/"1"` {
			t.Fatalf("412 PUT changed the resource: %s", g.Raw)
		}
		r := env.do(http.MethodPut, "/Users/"+id, body, "If-Match", `W/"1"`).want(t, http.StatusOK)
		if metaOf(r.Body, "version") != `W/"2"` || r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("version = %q ETag = %q, want W/\"2\"", metaOf(r.Body, "version"), r.Header.Get("ETag"))
		}
		body["title"] = "Director"
		env.do(http.MethodPut, "/Users/"+id, body, "If-Match", `*`).want(t, http.StatusOK)
		env.do(http.MethodPut, "/Users/"+id, body, "If-Match", `W/"2"`).wantError(t, http.StatusPreconditionFailed, "")
	})

	t.Run("unchanged PUT keeps version and lastModified", func(t *testing.T) {
		t.Parallel()
		body := full("put.same@example.com")
		u := env.createUser("put.same@example.com", body)
		// Same content, different spelling: attribute-name case, key
		// order, and readOnly meta that must be ignored.
		same := map[string]any{
			"schemas":     []string{userURN, enterpriseURN},
			"USERNAME":    "put.same@example.com",
			"displayname": "Full User",
			"title":       "Engineer",
			"emails":      []any{map[string]any{"type": "work", "value": "put.same@example.com"}},
			enterpriseURN: map[string]any{"department": "R&D"},
			"meta":        map[string]any{"version": `W/"1"`},
		}
		r := env.do(http.MethodPut, "/Users/"+idOf(u), same).want(t, http.StatusOK)
		if metaOf(r.Body, "version") != `W/"1"` || metaOf(r.Body, "lastModified") != metaOf(u, "lastModified") {
			t.Errorf("unchanged PUT bumped meta: version %q lastModified %q (was %q)", metaOf(r.Body, "version"), metaOf(r.Body, "lastModified"), metaOf(u, "lastModified"))
		}
	})

	t.Run("userName taken by another user", func(t *testing.T) {
		t.Parallel()
		env.createUser("put.taken@example.com", nil)
		u := env.createUser("put.taker@example.com", nil)
		env.do(http.MethodPut, "/Users/"+idOf(u), map[string]any{"schemas": []string{userURN}, "userName": "PUT.TAKEN@example.com"}).
			wantError(t, http.StatusConflict, "uniqueness", "PUT.TAKEN@example.com")
		// A case change of one's own userName is not a conflict.
		r := env.do(http.MethodPut, "/Users/"+idOf(u), map[string]any{"schemas": []string{userURN}, "userName": "PUT.TAKER@example.com"}).want(t, http.StatusOK)
		if r.Body["userName"] != "PUT.TAKER@example.com" {
			t.Errorf("userName = %v", r.Body["userName"])
		}
	})

	t.Run("missing resource", func(t *testing.T) {
		t.Parallel()
		env.do(http.MethodPut, "/Users/nope", full("put.nope@example.com")).wantError(t, http.StatusNotFound, "", "nope")
	})

	t.Run("invalid body", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("put.invalid@example.com", nil)
		env.do(http.MethodPut, "/Users/"+idOf(u), map[string]any{"schemas": []string{userURN}}).wantError(t, 400, "invalidValue", `"userName"`)
	})
}

func TestServerDeleteUser(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)

	t.Run("204 then 404", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("del.me@example.com", nil)
		r := env.do(http.MethodDelete, "/Users/"+idOf(u), nil).want(t, http.StatusNoContent)
		if len(r.Raw) != 0 {
			t.Errorf("204 with body %q", r.Raw)
		}
		env.do(http.MethodGet, "/Users/"+idOf(u), nil).wantError(t, 404, "")
		env.do(http.MethodDelete, "/Users/"+idOf(u), nil).wantError(t, 404, "")
		env.do(http.MethodPatch, "/Users/"+idOf(u), patchOps(op("replace", "title", "x"))).wantError(t, 404, "")
	})

	t.Run("removes the user from its groups", func(t *testing.T) {
		t.Parallel()
		a := env.createUser("del.member@example.com", nil)
		b := env.createUser("del.stays@example.com", nil)
		g := env.createGroup("del-group", idOf(a), idOf(b))
		env.do(http.MethodDelete, "/Users/"+idOf(a), nil).want(t, http.StatusNoContent)
		r := env.do(http.MethodGet, "/Groups/"+idOf(g), nil).want(t, 200)
		ms, _ := r.Body["members"].([]any)
		if len(ms) != 1 || get(ms, 0, "value") != idOf(b) {
			t.Errorf("members after delete = %v, want only %s", r.Body["members"], idOf(b))
		}
		f := env.do(http.MethodGet, `/Groups?filter=members.value eq "`+idOf(a)+`"`, nil).want(t, 200)
		if f.Body["totalResults"] != json.Number("0") {
			t.Errorf("a group still lists the deleted user: %s", f.Raw)
		}
	})

	t.Run("deleting a member makes a new group version", func(t *testing.T) {
		t.Parallel()
		a := env.createUser("del.versioned@example.com", nil)
		g := env.createGroup("del-group-3", idOf(a))
		env.do(http.MethodDelete, "/Users/"+idOf(a), nil).want(t, http.StatusNoContent)
		r := env.do(http.MethodGet, "/Groups/"+idOf(g), nil, "If-None-Match", metaOf(g, "version")).want(t, http.StatusOK)
		if metaOf(r.Body, "version") == metaOf(g, "version") || metaOf(r.Body, "lastModified") == metaOf(g, "lastModified") {
			t.Errorf("group meta unchanged after losing a member: %v", r.Body["meta"])
		}
	})

	t.Run("deleting a group leaves its members", func(t *testing.T) {
		t.Parallel()
		a := env.createUser("del.groupmember@example.com", nil)
		g := env.createGroup("del-group-2", idOf(a))
		env.do(http.MethodDelete, "/Groups/"+idOf(g), nil).want(t, http.StatusNoContent)
		r := env.do(http.MethodGet, "/Users/"+idOf(a), nil).want(t, 200)
		if r.Body["groups"] != nil {
			t.Errorf("groups = %v after the group was deleted", r.Body["groups"])
		}
	})

	t.Run("If-Match", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("del.ifmatch@example.com", nil)
		env.do(http.MethodDelete, "/Users/"+idOf(u), nil, "If-Match", `W/"2"`).wantError(t, http.StatusPreconditionFailed, "")
		env.do(http.MethodGet, "/Users/"+idOf(u), nil).want(t, http.StatusOK)
		env.do(http.MethodDelete, "/Users/"+idOf(u), nil, "If-Match", `W/"1"`).want(t, http.StatusNoContent)
	})

	t.Run("userName reusable after delete", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("del.reuse@example.com", nil)
		env.do(http.MethodDelete, "/Users/"+idOf(u), nil).want(t, http.StatusNoContent)
		again := env.createUser("DEL.reuse@example.com", nil)
		if idOf(again) == idOf(u) {
			t.Errorf("re-created user got the deleted id %s", idOf(u))
		}
	})
}

func TestServerRouting(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodDelete, "/Users", 405, "GET, POST"},
		{http.MethodPut, "/Groups", 405, "GET, POST"},
		{http.MethodPost, "/Users/some-id", 405, "GET, PUT, PATCH, DELETE"},
		{http.MethodGet, "/Users/.search", 405, "POST"},
		{http.MethodGet, "/Bulk", 405, "POST"},
		{http.MethodPost, "/ServiceProviderConfig", 405, "GET"},
		{http.MethodDelete, "/Schemas", 405, "GET"},
		{http.MethodGet, "/Widgets", 404, ""},
		{http.MethodGet, "/Users/a/b", 404, ""},
		{http.MethodGet, "/", 404, ""},
		{http.MethodPost, "/Me", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			var body any
			if tc.method == http.MethodPost || tc.method == http.MethodPut {
				body = map[string]any{}
			}
			r := env.do(tc.method, tc.path, body)
			r.wantError(t, tc.status, "")
			if got := r.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestServerGroups(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) { c.MaxBodyBytes = 1024 })
	u1 := env.createUser("grp.one@example.com", map[string]any{"displayName": "One"})
	u2 := env.createUser("grp.two@example.com", nil)

	t.Run("create with members", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Groups", map[string]any{
			"schemas":     []string{groupURN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
			"displayName": "grp-created",
			"externalId":  "G-1",
			"members":     []any{map[string]any{"value": idOf(u1), "type": "User"}, map[string]any{"value": idOf(u2)}, map[string]any{"value": idOf(u1)}},
		}).want(t, http.StatusCreated)
		if r.Header.Get("Location") != env.base+"/Groups/"+idOf(r.Body) || r.Header.Get("ETag") != `W/"1"` || metaOf(r.Body, "resourceType") != "Group" {
			t.Errorf("headers/meta: Location %q ETag %q meta %v", r.Header.Get("Location"), r.Header.Get("ETag"), r.Body["meta"])
		}
		if !reflect.DeepEqual(r.Body["schemas"], []any{groupURN}) {
			t.Errorf("schemas = %v", r.Body["schemas"])
		}
		want := map[string]map[string]any{
			idOf(u1): {"value": idOf(u1), "type": "User", "display": "One", "$ref": env.base + "/Users/" + idOf(u1)},
			idOf(u2): {"value": idOf(u2), "type": "User", "display": "grp.two@example.com", "$ref": env.base + "/Users/" + idOf(u2)},
		}
		ms := asList(r.Body["members"])
		if len(ms) != 2 {
			t.Fatalf("members = %v, want the two distinct users", ms)
		}
		for _, m := range ms {
			mm := m.(map[string]any)
			if !reflect.DeepEqual(mm, want[fmt.Sprint(mm["value"])]) {
				t.Errorf("member = %v, want %v", mm, want[fmt.Sprint(mm["value"])])
			}
		}
		g := env.do(http.MethodGet, "/Groups/"+idOf(r.Body), nil).want(t, 200)
		if !reflect.DeepEqual(g.Body, r.Body) {
			t.Errorf("GET = %s\nPOST = %s", g.Raw, r.Raw)
		}
		x := env.do(http.MethodGet, "/Groups/"+idOf(r.Body)+"?excludedAttributes=members", nil).want(t, 200)
		if x.Body["members"] != nil || x.Body["displayName"] != "grp-created" {
			t.Errorf("excludedAttributes=members: %s", x.Raw)
		}
		for _, q := range []string{"attributes=members", "attributes=members.value", "attributes=" + groupURN, "attributes=" + groupURN + ":members"} {
			x := env.do(http.MethodGet, "/Groups/"+idOf(r.Body)+"?"+q, nil).want(t, 200)
			if len(asList(x.Body["members"])) != 2 {
				t.Errorf("%s: members = %v", q, x.Body["members"])
			}
		}
		a := env.do(http.MethodGet, "/Users/"+idOf(u2)+"?attributes=groups", nil).want(t, 200)
		if got := keys(a.Body); !reflect.DeepEqual(got, []string{"groups", "id", "schemas"}) {
			t.Errorf("attributes=groups keys = %v", got)
		}
	})

	t.Run("displayName is not unique", func(t *testing.T) {
		t.Parallel()
		env.createGroup("grp-twin")
		env.createGroup("GRP-TWIN")
		if n := env.countGroups(`displayName eq "grp-twin"`); n != 2 {
			t.Errorf("%d twins, want 2", n)
		}
	})

	for _, tc := range []struct {
		name     string
		body     map[string]any
		scimType string
		fragment string
	}{
		{"missing displayName", map[string]any{"schemas": []string{groupURN}}, "invalidValue", "displayName"},
		{"unknown member", map[string]any{"schemas": []string{groupURN}, "displayName": "grp-bad-1", "members": []any{map[string]any{"value": "no-such-id"}}}, "invalidValue", "no-such-id"},
		{"member without value", map[string]any{"schemas": []string{groupURN}, "displayName": "grp-bad-2", "members": []any{map[string]any{"type": "User"}}}, "invalidValue", "members"},
		{"user schema on Groups", map[string]any{"schemas": []string{userURN}, "displayName": "grp-bad-3"}, "invalidSyntax", groupURN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env.do(http.MethodPost, "/Groups", tc.body).wantError(t, 400, tc.scimType, tc.fragment)
			if n := env.countGroups(`displayName sw "grp-bad"`); n != 0 {
				t.Errorf("rejected create stored %d groups", n)
			}
		})
	}

	t.Run("PUT replaces members", func(t *testing.T) {
		t.Parallel()
		g := env.createGroup("grp-put", idOf(u1))
		r := env.do(http.MethodPut, "/Groups/"+idOf(g), map[string]any{
			"schemas": []string{groupURN}, "displayName": "grp-put", "members": []any{map[string]any{"value": idOf(u2)}},
		}).want(t, 200)
		if ms := asList(r.Body["members"]); len(ms) != 1 || get(ms, 0, "value") != idOf(u2) || metaOf(r.Body, "version") != `W/"2"` {
			t.Errorf("after PUT: %s", r.Raw)
		}
		r = env.do(http.MethodPut, "/Groups/"+idOf(g), map[string]any{"schemas": []string{groupURN}, "displayName": "grp-put"}).want(t, 200)
		if r.Body["members"] != nil || metaOf(r.Body, "version") != `W/"3"` {
			t.Errorf("PUT without members: %s", r.Raw)
		}
	})

	t.Run("body limit applies to every body", func(t *testing.T) {
		t.Parallel()
		g := env.createGroup("grp-limit")
		big := strings.Repeat("z", 2000)
		env.do(http.MethodPatch, "/Groups/"+idOf(g), patchOps(op("replace", "displayName", big))).wantError(t, 413, "-", "1024")
		env.do(http.MethodPut, "/Groups/"+idOf(g), map[string]any{"schemas": []string{groupURN}, "displayName": big}).wantError(t, 413, "-", "1024")
		env.do(http.MethodPost, "/Groups/.search", map[string]any{"schemas": []string{searchURN}, "filter": `displayName eq "` + big + `"`}).wantError(t, 413, "-", "1024")
		if r := env.do(http.MethodGet, "/Groups/"+idOf(g), nil).want(t, 200); r.Body["displayName"] != "grp-limit" {
			t.Errorf("displayName = %v", r.Body["displayName"])
		}
	})
}

func TestServerBaseURL(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) { c.BaseURL = "https://jml.example.com/" })
	u := env.createUser("base.url@example.com", nil)
	g := env.createGroup("base-url", idOf(u))
	want := "https://jml.example.com/scim/v2/Users/" + idOf(u)
	if metaOf(u, "location") != want {
		t.Errorf("meta.location = %q, want %q", metaOf(u, "location"), want)
	}
	if ref := get(g, "members", 0, "$ref"); ref != want {
		t.Errorf("member $ref = %v, want %q", ref, want)
	}
	r := env.do(http.MethodGet, "/Users/"+idOf(u), nil).want(t, 200)
	if ref := get(r.Body, "groups", 0, "$ref"); ref != "https://jml.example.com/scim/v2/Groups/"+idOf(g) {
		t.Errorf("groups $ref = %v", ref)
	}
	for path, loc := range map[string]string{
		"/ServiceProviderConfig": "https://jml.example.com/scim/v2/ServiceProviderConfig",
		"/ResourceTypes/Group":   "https://jml.example.com/scim/v2/ResourceTypes/Group",
		"/Schemas/" + groupURN:   "https://jml.example.com/scim/v2/Schemas/" + groupURN,
	} {
		if got := metaOf(env.do(http.MethodGet, path, nil).want(t, 200).Body, "location"); got != loc {
			t.Errorf("%s meta.location = %q, want %q", path, got, loc)
		}
	}
}
