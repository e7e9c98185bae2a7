package deliveryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/internal/testhttp"
	"github.com/jmlgate/jmlgate/workflows"
)

// rotatorConn is a target with SessionRevoker and SecretRotator but no
// Lister: a Memory's core methods and session revocation. No test here
// rotates a secret, so RotateSecret refuses rather than pretend.
type rotatorConn struct {
	connectors.Connector
	m *connectortest.Memory
}

var (
	_ connectors.SessionRevoker = rotatorConn{}
	_ connectors.SecretRotator  = rotatorConn{}
)

func (c rotatorConn) RevokeSessions(ctx context.Context, ref string) error {
	return c.m.RevokeSessions(ctx, ref)
}

func (c rotatorConn) RotateSecret(context.Context, string, []byte) error {
	return connectors.Errorf(connectors.Permanent, "rotatorConn: RotateSecret is not implemented")
}

var apiNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type apiEnv struct {
	t                *testing.T
	st               store.Store
	d                *workflows.Dispatcher
	app, hook, vault *connectortest.Memory
	url              string
}

// newEnv opens a SQLite store and a dispatcher with connectors app (lister,
// session revoker; drift report), hook (plain) and vault (secret rotator,
// session revoker),
// and serves Handler and PlanHandler as the admin "token:admin".
func newEnv(t *testing.T) *apiEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, st: st, app: connectortest.NewMemory(), hook: connectortest.NewMemory(),
		vault: connectortest.NewMemory()}
	e.d = &workflows.Dispatcher{
		Store: st,
		Now:   func() time.Time { return apiNow },
		Targets: map[string]*workflows.Target{
			"app":   {Name: "app", Type: "scim", Conn: e.app, Drift: "report"},
			"hook":  {Name: "hook", Type: "webhook", Conn: e.hook.Bare()},
			"vault": {Name: "vault", Type: "postgres", Conn: rotatorConn{e.vault.Bare(), e.vault}},
		},
	}
	api, plan := Handler(e.d, st, nil), PlanHandler(e.d, st, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(reqctx.WithActor(r.Context(), "token:admin"))
		if strings.HasPrefix(r.URL.Path, "/api/v1/identities/") {
			plan.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// identity stores an active identity with access to connector:entitlement pairs.
func (e *apiEnv) identity(id string, grants ...string) {
	e.t.Helper()
	var ds []workflows.DesiredAccess
	for _, g := range grants {
		c, ent, _ := strings.Cut(g, ":")
		ds = append(ds, workflows.DesiredAccess{Connector: c, Entitlement: ent, Roles: []string{"r"}})
	}
	desired, _ := json.Marshal(ds)
	e.update(func(tx store.Tx) error {
		return tx.PutIdentity(context.Background(), &store.Identity{ID: id, UserName: id, State: store.StateActive,
			MFAMethod: "totp", MFAEnrolledAt: apiNow, Desired: desired, Version: 1, Created: apiNow, Updated: apiNow})
	})
}

func (e *apiEnv) update(fn func(store.Tx) error) {
	e.t.Helper()
	if err := e.st.Update(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *apiEnv) enqueue(id, connector string, at time.Time) int64 {
	e.t.Helper()
	var n int64
	e.update(func(tx store.Tx) error {
		var err error
		n, err = tx.EnqueueDelivery(context.Background(), id, connector, store.PriorityGrant, at)
		return err
	})
	return n
}

// dead enqueues a delivery and dead-letters it with lastError.
func (e *apiEnv) dead(id, connector, lastError string) int64 {
	e.t.Helper()
	n := e.enqueue(id, connector, apiNow)
	e.update(func(tx store.Tx) error {
		js, err := tx.ClaimDeliveries(context.Background(), connector, apiNow, 1)
		if err != nil {
			return err
		}
		if len(js) != 1 || js[0].ID != n {
			return fmt.Errorf("claimed %v, want delivery %d", js, n)
		}
		return tx.FailDelivery(context.Background(), n, apiNow, true, lastError, apiNow)
	})
	return n
}

func (e *apiEnv) auditActions(typ, id string) []string {
	e.t.Helper()
	var out []string
	if err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		recs, err := tx.AuditFor(context.Background(), typ, id, 1, -1)
		for _, r := range recs {
			out = append(out, r.Action+" by "+r.Actor)
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// do sends a request and decodes the JSON response into out (if non-nil).
func (e *apiEnv) do(method, path string, out any) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := testhttp.Client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if method != http.MethodHead && resp.Header.Get("Content-Type") != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, resp.Header.Get("Content-Type"))
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, body, err)
		}
	}
	return resp.StatusCode, resp.Header, body
}

type errBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// wantError checks an error response's status, code and message.
func (e *apiEnv) wantError(method, path string, status int, code, msg string) {
	e.t.Helper()
	got, _, body := e.do(method, path, nil)
	var eb errBody
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&eb); err != nil {
		e.t.Fatalf("%s %s: error body %s: %v", method, path, body, err)
	}
	if got != status || eb.Error != code || !strings.Contains(eb.Message, msg) {
		e.t.Errorf("%s %s = %d %+v, want %d %s containing %q", method, path, got, eb, status, code, msg)
	}
}

func TestRetryFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.identity("alice", "app:eng")
	e.app.FailOn("grant", connectors.Errorf(connectors.Permanent, "PATCH /Groups/eng: HTTP 403: forbidden"))
	id := e.enqueue("alice", "app", apiNow)
	if _, err := e.d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}

	var list DeliveryList
	if st, _, body := e.do("GET", "/api/v1/deliveries?state=dead", &list); st != 200 {
		t.Fatalf("list dead = %d %s", st, body)
	}
	if len(list.Deliveries) != 1 || list.NextAfter != 0 {
		t.Fatalf("dead letters = %+v", list)
	}
	dl := list.Deliveries[0]
	if dl.ID != id || dl.IdentityID != "alice" || dl.Connector != "app" || dl.State != "dead" || dl.Priority != "grant" ||
		dl.Attempts != 1 || !strings.Contains(dl.LastError, "HTTP 403") || !dl.Updated.Equal(apiNow) || !dl.Enqueued.Equal(apiNow) {
		t.Errorf("dead letter = %+v", dl)
	}
	var one Delivery
	if st, _, _ := e.do("GET", fmt.Sprintf("/api/v1/deliveries/%d", id), &one); st != 200 || one != dl {
		t.Errorf("GET one = %d %+v, want %+v", st, one, dl)
	}
	var conn Connector
	if e.do("GET", "/api/v1/connectors/app", &conn); conn.Queue.Dead != 1 || conn.Health.Status != "degraded" ||
		!strings.Contains(conn.Health.LastError, "HTTP 403") {
		t.Errorf("connector after a dead letter = %+v", conn)
	}

	var res RetryResult
	if st, _, body := e.do("POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", id), &res); st != 200 {
		t.Fatalf("retry = %d %s", st, body)
	}
	if res.Retried != id || res.Merged || res.Delivery.ID != id || res.Delivery.State != "pending" ||
		res.Delivery.Attempts != 0 || !res.Delivery.RunAt.Equal(apiNow) {
		t.Errorf("retry result = %+v", res)
	}
	if got := e.auditActions(store.TypeIdentity, "alice"); len(got) == 0 || got[len(got)-1] != "delivery.retry by token:admin" {
		t.Errorf("audit = %q", got)
	}

	// The target recovers; the retried delivery now lands.
	e.app.FailOn("grant", nil)
	if n, err := e.d.Drain(context.Background()); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if a, _ := e.app.Account("ref-alice"); !slices.Equal(a.Entitlements, []string{"eng"}) {
		t.Errorf("target entitlements = %q", a.Entitlements)
	}
	e.wantError("GET", fmt.Sprintf("/api/v1/deliveries/%d", id), 404, "not_found", fmt.Sprintf("no delivery %d", id))
	e.wantError("POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", id), 404, "not_found", fmt.Sprintf("no delivery %d", id))
	list = DeliveryList{}
	if _, _, body := e.do("GET", "/api/v1/deliveries?state=dead", &list); len(list.Deliveries) != 0 || !strings.Contains(string(body), `"deliveries":[]`) {
		t.Errorf("dead letters after success = %s", body)
	}
}

func TestRetryMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.identity("alice", "app:eng")
	dead := e.dead("alice", "app", "boom")
	pending := e.enqueue("alice", "app", apiNow.Add(time.Minute))
	var res RetryResult
	if st, _, body := e.do("POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", dead), &res); st != 200 {
		t.Fatalf("retry = %d %s", st, body)
	}
	if res.Retried != dead || !res.Merged || res.Delivery.ID != pending || res.Delivery.State != "pending" {
		t.Errorf("retry result = %+v, want merged into %d", res, pending)
	}
	var list DeliveryList
	e.do("GET", "/api/v1/deliveries?identity=alice", &list)
	if len(list.Deliveries) != 1 || list.Deliveries[0].ID != pending {
		t.Errorf("deliveries after merge = %+v", list.Deliveries)
	}
	if got := e.auditActions(store.TypeIdentity, "alice"); !slices.Equal(got, []string{"delivery.retry by token:admin"}) {
		t.Errorf("audit = %q", got)
	}
}

func TestRetryErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.identity("alice", "app:eng")
	pending := e.enqueue("alice", "app", apiNow)
	cases := []struct {
		method, path string
		status       int
		code, msg    string
	}{
		{"POST", "/api/v1/deliveries/abc/retry", 400, "invalid_request", `delivery id must be a positive integer, got "abc"`},
		{"POST", "/api/v1/deliveries/0/retry", 400, "invalid_request", `got "0"`},
		{"POST", "/api/v1/deliveries/99999999999999999999/retry", 400, "invalid_request", "positive integer"},
		{"POST", "/api/v1/deliveries/999/retry", 404, "not_found", "no delivery 999"},
		{"POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", pending), 404, "not_found",
			fmt.Sprintf("delivery %d is pending, not dead", pending)},
		{"GET", fmt.Sprintf("/api/v1/deliveries/%d/retry", pending), 405, "method_not_allowed", "use POST"},
		{"GET", "/api/v1/deliveries/-3", 400, "invalid_request", `got "-3"`},
		{"GET", "/api/v1/deliveries/999", 404, "not_found", "no delivery 999"},
	}
	for _, c := range cases {
		e.wantError(c.method, c.path, c.status, c.code, c.msg)
	}
	if got := e.auditActions(store.TypeIdentity, "alice"); len(got) != 0 {
		t.Errorf("failed retries audited: %q", got)
	}
	var one Delivery
	if e.do("GET", fmt.Sprintf("/api/v1/deliveries/%d", pending), &one); one.State != "pending" || one.Attempts != 0 {
		t.Errorf("pending delivery changed: %+v", one)
	}
}

func TestListDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, id := range []string{"i1", "i2", "i3", "i4"} {
		e.identity(id)
	}
	d1 := e.dead("i1", "app", "x")
	d2 := e.enqueue("i2", "app", apiNow)
	d3 := e.dead("i3", "hook", "y")
	d4 := e.enqueue("i4", "hook", apiNow)
	d5 := e.enqueue("i1", "hook", apiNow)
	cases := []struct {
		query string
		ids   []int64
		next  int64
	}{
		{"", []int64{d1, d2, d3, d4, d5}, 0},
		{"?state=dead", []int64{d1, d3}, 0},
		{"?state=pending&connector=hook", []int64{d4, d5}, 0},
		{"?identity=i1", []int64{d1, d5}, 0},
		{"?connector=app&state=running", nil, 0},
		{"?limit=2", []int64{d1, d2}, d2},
		{fmt.Sprintf("?limit=2&after=%d", d2), []int64{d3, d4}, d4},
		{fmt.Sprintf("?limit=2&after=%d", d4), []int64{d5}, 0},
		{fmt.Sprintf("?limit=1&after=%d", d4), []int64{d5}, 0},
		{"?connector=nope", nil, 0},
	}
	for _, c := range cases {
		var list DeliveryList
		st, _, body := e.do("GET", "/api/v1/deliveries"+c.query, &list)
		var ids []int64
		for _, d := range list.Deliveries {
			ids = append(ids, d.ID)
		}
		if st != 200 || !slices.Equal(ids, c.ids) || list.NextAfter != c.next {
			t.Errorf("%s = %d ids %v next %d, want %v next %d", c.query, st, ids, list.NextAfter, c.ids, c.next)
		}
		if c.next == 0 && strings.Contains(string(body), "next_after") {
			t.Errorf("%s: last page carries next_after: %s", c.query, body)
		}
	}
	var list DeliveryList
	e.do("GET", "/api/v1/deliveries?state=dead&connector=hook", &list)
	if len(list.Deliveries) != 1 || list.Deliveries[0].LastError != "y" || list.Deliveries[0].Attempts != 1 {
		t.Errorf("dead letter of hook = %+v", list.Deliveries)
	}
}

func TestListValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct{ query, msg string }{
		{"?state=failed", `unknown state "failed"; want dead, pending or running`},
		{"?after=abc", `after must be a delivery id (a non-negative integer), got "abc"`},
		{"?after=-1", `got "-1"`},
		{"?limit=0", `limit must be an integer from 1 to 1000, got "0"`},
		{"?limit=1001", `got "1001"`},
		{"?limit=ten", `got "ten"`},
		{"?status=dead", `unknown query parameter "status"`},
		{"?cursor=3", `unknown query parameter "cursor"`},
		{"?state=dead&state=pending", `query parameter "state" given more than once`},
	}
	for _, c := range cases {
		e.wantError("GET", "/api/v1/deliveries"+c.query, 400, "invalid_request", c.msg)
	}
	if st, _, _ := e.do("GET", "/api/v1/deliveries?limit=1000&after=0&state=&connector=&identity=", nil); st != 200 {
		t.Errorf("limit=1000 with empty filters = %d", st)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		method, path, allow string
	}{
		{"POST", "/api/v1/deliveries", "GET, HEAD"},
		{"DELETE", "/api/v1/deliveries/1", "GET, HEAD"},
		{"PUT", "/api/v1/connectors", "GET, HEAD"},
		{"POST", "/api/v1/connectors/app", "GET, HEAD"},
		{"GET", "/api/v1/connectors/app/reconcile", "POST"},
		{"POST", "/api/v1/identities/alice/plan", "GET, HEAD"},
	}
	for _, c := range cases {
		st, h, _ := e.do(c.method, c.path, nil)
		if st != 405 || h.Get("Allow") != c.allow {
			t.Errorf("%s %s = %d Allow %q, want 405 %q", c.method, c.path, st, h.Get("Allow"), c.allow)
		}
		e.wantError(c.method, c.path, 405, "method_not_allowed", "is not allowed here")
	}
	for _, p := range []string{"/api/v1/deliveries/1/cancel", "/api/v1/connectors/app/health", "/api/v1/other",
		"/api/v1/identities/alice/history", "/api/v1/identities/alice/plan/x"} {
		e.wantError("GET", p, 404, "not_found", "no such path")
	}
	if st, _, body := e.do("HEAD", "/api/v1/connectors", nil); st != 200 || len(body) != 0 {
		t.Errorf("HEAD = %d %q", st, body)
	}
}

func TestConnectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var list ConnectorList
	if st, _, body := e.do("GET", "/api/v1/connectors", &list); st != 200 {
		t.Fatalf("list = %d %s", st, body)
	}
	want := []Connector{
		{Name: "app", Type: "scim", Capabilities: []string{"session_revoker", "lister"}, Health: workflows.Health{Status: "unknown"}},
		{Name: "hook", Type: "webhook", Capabilities: []string{}, Health: workflows.Health{Status: "unknown"}},
		{Name: "vault", Type: "postgres", Capabilities: []string{"session_revoker", "secret_rotator"}, Health: workflows.Health{Status: "unknown"}},
	}
	if fmt.Sprint(list.Connectors) != fmt.Sprint(want) {
		t.Errorf("connectors = %+v\nwant %+v", list.Connectors, want)
	}
	_, _, body := e.do("GET", "/api/v1/connectors/hook", nil)
	if !strings.Contains(string(body), `"capabilities":[]`) || strings.Contains(string(body), "oldest_pending\"") {
		t.Errorf("hook = %s", body)
	}

	e.identity("alice", "app:eng")
	e.identity("bob", "app:eng")
	e.enqueue("alice", "app", apiNow.Add(-90*time.Second))
	e.enqueue("bob", "app", apiNow.Add(-30*time.Second))
	e.identity("carol")
	e.dead("carol", "hook", "z")
	var app Connector
	if st, _, body := e.do("GET", "/api/v1/connectors/app", &app); st != 200 {
		t.Fatalf("app = %d %s", st, body)
	}
	wantQ := Queue{Pending: 2, OldestPending: apiNow.Add(-90 * time.Second), OldestPendingAgeSeconds: 90}
	if app.Queue != wantQ {
		t.Errorf("app queue = %+v, want %+v", app.Queue, wantQ)
	}
	list = ConnectorList{}
	e.do("GET", "/api/v1/connectors", &list)
	if q := list.Connectors[1].Queue; q != (Queue{Dead: 1}) {
		t.Errorf("hook queue = %+v", q)
	}
	e.wantError("GET", "/api/v1/connectors/nope", 404, "not_found", `no connector "nope" is configured`)
}

func TestReconcileEndpoint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path string
		listErr    error
		status     int
		code, msg  string
	}{
		{"unknown", "/api/v1/connectors/nope/reconcile", nil, 404, "not_found", `no connector "nope"`},
		{"not a lister", "/api/v1/connectors/hook/reconcile", nil, 409, "conflict",
			`connector "hook" (type webhook) cannot list its accounts, so it cannot be reconciled`},
		{"target down", "/api/v1/connectors/app/reconcile", connectors.Errorf(connectors.Retryable, "GET /Users: HTTP 503: busy"),
			502, "connector_failed", `connector "app" failed (retryable): GET /Users: HTTP 503: busy`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.app.FailOn("list", c.listErr)
			e.wantError("POST", c.path, c.status, c.code, c.msg)
			if got := e.auditActions("Connector", "app"); len(got) != 0 {
				t.Errorf("audit after a failed reconcile: %q", got)
			}
		})
	}
	t.Run("report", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.identity("alice", "app:eng")
		e.app.Put(connectors.AccountState{Ref: "x1", UserName: "mallory", Enabled: true, Entitlements: []string{"admin"}})
		e.app.Put(connectors.AccountState{Ref: "a1", IdentityID: "alice", UserName: "alice", Enabled: true})
		var rep workflows.ReconcileReport
		if st, _, body := e.do("POST", "/api/v1/connectors/app/reconcile", &rep); st != 200 {
			t.Fatalf("reconcile = %d %s", st, body)
		}
		want := []workflows.Finding{
			{Kind: "missing_entitlement", Ref: "a1", UserName: "alice", IdentityID: "alice", Entitlement: "eng", Action: "enqueued"},
			{Kind: "unmanaged_account", Ref: "x1", UserName: "mallory", Action: "reported"},
			{Kind: "unmanaged_entitlement", Ref: "x1", UserName: "mallory", Entitlement: "admin", Action: "reported"},
		}
		if rep.Connector != "app" || rep.Accounts != 2 || !slices.Equal(rep.Findings, want) {
			t.Errorf("report = %+v", rep)
		}
		if got := e.auditActions("Connector", "app"); !slices.Equal(got,
			[]string{"drift.unmanaged_account by token:admin", "drift.unmanaged_entitlement by token:admin"}) {
			t.Errorf("audit = %q", got)
		}
		var list DeliveryList
		if e.do("GET", "/api/v1/deliveries?identity=alice&state=pending", &list); len(list.Deliveries) != 1 {
			t.Errorf("repair delivery = %+v", list.Deliveries)
		}
	})
}

func TestPlanHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.identity("alice", "app:eng", "app:wiki", "hook:ticket")
	var p Plan
	if st, _, body := e.do("GET", "/api/v1/identities/alice/plan", &p); st != 200 {
		t.Fatalf("plan = %d %s", st, body)
	}
	got, _ := json.Marshal(p)
	want := `{"identity":"alice","state":"active","connectors":[` +
		`{"connector":"app","want":["eng","wiki"],"have":[],"ops":[{"op":"ensure"},{"op":"grant","entitlement":"eng"},{"op":"grant","entitlement":"wiki"}]},` +
		`{"connector":"hook","want":["ticket"],"have":[],"ops":[{"op":"ensure"},{"op":"grant","entitlement":"ticket"}]},` +
		`{"connector":"vault","want":[],"have":[],"ops":[]}]}`
	if string(got) != want {
		t.Errorf("plan =\n%s\nwant\n%s", got, want)
	}
	if calls := e.app.Calls(); len(calls) != 0 || e.app.Lists() != 0 {
		t.Errorf("planning called the target: %q, %d listings", calls, e.app.Lists())
	}
	e.wantError("GET", "/api/v1/identities/nobody/plan", 404, "not_found", `no identity with id "nobody"`)
}

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, id := range []string{"i1", "i2", "i3", "i4", "i5"} {
		e.identity(id)
	}
	e.enqueue("i3", "app", apiNow.Add(-time.Hour))
	e.update(func(tx store.Tx) error {
		_, err := tx.ClaimDeliveries(context.Background(), "app", apiNow, 1) // i3 running
		return err
	})
	e.dead("i5", "app", "x")
	e.dead("i4", "gone", "connector removed from the configuration")
	e.enqueue("i1", "app", apiNow.Add(-60*time.Second))
	e.enqueue("i2", "app", apiNow.Add(-30*time.Second))

	c := NewQueueCollector(e.st, []string{"app", "hook"}).(*queueCollector)
	c.now = func() time.Time { return apiNow }
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := []string{
		`gauge jmlgate_delivery_oldest_pending_age_seconds{connector="app"} 60`,
		`gauge jmlgate_delivery_oldest_pending_age_seconds{connector="gone"} 0`,
		`gauge jmlgate_delivery_oldest_pending_age_seconds{connector="hook"} 0`,
		`gauge jmlgate_delivery_queue{connector="app",state="dead"} 1`,
		`gauge jmlgate_delivery_queue{connector="app",state="pending"} 2`,
		`gauge jmlgate_delivery_queue{connector="app",state="running"} 1`,
		`gauge jmlgate_delivery_queue{connector="gone",state="dead"} 1`,
		`gauge jmlgate_delivery_queue{connector="gone",state="pending"} 0`,
		`gauge jmlgate_delivery_queue{connector="gone",state="running"} 0`,
		`gauge jmlgate_delivery_queue{connector="hook",state="dead"} 0`,
		`gauge jmlgate_delivery_queue{connector="hook",state="pending"} 0`,
		`gauge jmlgate_delivery_queue{connector="hook",state="running"} 0`,
	}
	if got := gather(t, reg); !slices.Equal(got, want) {
		t.Errorf("metrics:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A store that cannot be read fails the scrape instead of showing zeros.
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err == nil {
		t.Error("Gather on a closed store succeeded")
	}
}

// gather scrapes reg (failing the test on a collection error) and renders
// every sample as "type name{labels} value", in the registry's order.
func gather(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			typ := strings.ToLower(mf.GetType().String())
			v := m.GetGauge().GetValue()
			out = append(out, fmt.Sprintf("%s %s{%s} %g", typ, mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	return out
}
