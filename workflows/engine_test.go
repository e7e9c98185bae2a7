package workflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/internal/testhttp"
	"github.com/jmlgate/jmlgate/scim"
	"github.com/jmlgate/jmlgate/workflows"
	"github.com/jmlgate/jmlgate/workflows/roles"
)

const (
	userURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN = "urn:ietf:params:scim:schemas:core:2.0:Group"
	entURN   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	lifeURN  = "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"
	patchURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t      *testing.T
	st     store.Store
	engine *workflows.Engine
	clock  *clock
	ts     *httptest.Server
}

func newEnv(t *testing.T, rs []config.Role) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wf.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	set, err := roles.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	e := &workflows.Engine{Roles: set, Now: c.now}
	srv := scim.NewServer(scim.Config{Store: st, Now: c.now, Lifecycle: e})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r.WithContext(reqctx.WithActor(r.Context(), "workday")))
	}))
	t.Cleanup(ts.Close)
	return &env{t: t, st: st, engine: e, clock: c, ts: ts}
}

func (e *env) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.ts.URL+scim.Prefix+path, rd)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := testhttp.Client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (e *env) identity(id string) *store.Identity {
	e.t.Helper()
	var got *store.Identity
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		var err error
		got, err = tx.GetIdentity(context.Background(), id)
		return err
	})
	if err != nil {
		e.t.Fatalf("identity %s: %v", id, err)
	}
	return got
}

func (e *env) lifecycleActions(id string) []string {
	e.t.Helper()
	var out []string
	_ = e.st.View(context.Background(), func(tx store.ReadTx) error {
		recs, err := tx.AuditFor(context.Background(), store.TypeIdentity, id, 1, -1)
		for _, r := range recs {
			out = append(out, r.Action+" by "+r.Actor)
		}
		return err
	})
	return out
}

func desired(t *testing.T, id *store.Identity) []string {
	t.Helper()
	var ds []workflows.DesiredAccess
	if err := json.Unmarshal(id.Desired, &ds); err != nil {
		t.Fatalf("desired %s: %v", id.Desired, err)
	}
	var out []string
	for _, d := range ds {
		s := d.Connector + ":" + d.Entitlement
		if d.Privileged {
			s += "(privileged)"
		}
		out = append(out, s)
	}
	return out
}

var testRoles = []config.Role{
	{Name: "engineering", When: `user.department == "Engineering"`, Grants: []config.Grant{{Connector: "github", Entitlement: "team-eng"}}},
	{Name: "sre-admin", When: `"sre" in user.groups`, Privileged: true, ApprovalsRequired: 1,
		Grants: []config.Grant{{Connector: "aws", Entitlement: "admin"}}},
}

func user(name string, active any, ext map[string]any) map[string]any {
	u := map[string]any{"schemas": []string{userURN, entURN, lifeURN}, "userName": name, "active": active,
		entURN: map[string]any{"department": "Engineering"}}
	if ext != nil {
		u[lifeURN] = ext
	}
	return u
}

func patchActive(v any) map[string]any {
	return map[string]any{"schemas": []string{patchURN}, "Operations": []any{map[string]any{"op": "Replace", "path": "active", "value": v}}}
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJoinerMoverLeaverRehire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	st, body := e.do("POST", "/Users", user("ada@example.com", true, nil))
	if st != 201 {
		t.Fatalf("create: %d %v", st, body)
	}
	id := body["id"].(string)
	idn := e.identity(id)
	if idn.State != store.StateAwaitingMFA || !eq(desired(t, idn), []string{"github:team-eng"}) {
		t.Fatalf("joiner: %s %v", idn.State, desired(t, idn))
	}

	// Mover: joining the sre group adds a privileged grant; nothing is active.
	if st, b := e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": "sre",
		"members": []any{map[string]any{"value": id}}}); st != 201 {
		t.Fatalf("group: %d %v", st, b)
	}
	idn = e.identity(id)
	if idn.State != store.StateAwaitingMFA || !eq(desired(t, idn), []string{"aws:admin(privileged)", "github:team-eng"}) {
		t.Fatalf("mover: %s %v", idn.State, desired(t, idn))
	}

	// Leaver (Entra's string boolean): all desired access goes.
	if st, b := e.do("PATCH", "/Users/"+id, patchActive("False")); st != 200 {
		t.Fatalf("deactivate: %d %v", st, b)
	}
	idn = e.identity(id)
	if idn.State != store.StateTerminated || len(desired(t, idn)) != 0 || !idn.LeaverAt.Equal(e.clock.now()) {
		t.Fatalf("leaver: %+v", idn)
	}

	// Rehire: back to awaiting MFA, with a fresh enrollment required.
	e.clock.advance(time.Hour)
	if st, _ := e.do("PATCH", "/Users/"+id, patchActive(true)); st != 200 {
		t.Fatal("reactivate")
	}
	idn = e.identity(id)
	if idn.State != store.StateAwaitingMFA || idn.MFAMethod != "" || !idn.LeaverAt.IsZero() || len(desired(t, idn)) != 2 {
		t.Fatalf("rehire: %+v", idn)
	}

	// An unrelated attribute change writes no lifecycle record.
	if st, _ := e.do("PATCH", "/Users/"+id, map[string]any{"schemas": []string{patchURN},
		"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "Staff"}}}); st != 200 {
		t.Fatal("title")
	}
	// Delete keeps the identity, in state deleted.
	if st, _ := e.do("DELETE", "/Users/"+id, nil); st != 204 {
		t.Fatal("delete")
	}
	if idn = e.identity(id); idn.State != store.StateDeleted || idn.UserName != "ada@example.com" {
		t.Fatalf("delete: %+v", idn)
	}
	// With no connector holding anything, a leaver's revocation is
	// complete as of the request that made them one.
	want := []string{"lifecycle.joiner by workday", "lifecycle.mover by workday", "lifecycle.leaver by workday",
		"lifecycle.revoked by workday", "lifecycle.rehire by workday", "lifecycle.delete by workday", "lifecycle.revoked by workday"}
	if got := e.lifecycleActions(id); !eq(got, want) {
		t.Fatalf("lifecycle records %v, want %v", got, want)
	}
}

func TestDatesDriveTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	start := e.clock.now().Add(48 * time.Hour)
	end := start.Add(30 * 24 * time.Hour)
	_, body := e.do("POST", "/Users", user("grace@example.com", true, map[string]any{
		"startDate": start.Format(time.RFC3339), "endDate": end.Format(time.RFC3339)}))
	id := body["id"].(string)
	if idn := e.identity(id); idn.State != store.StatePreHire || !idn.NextCheck.Equal(start) {
		t.Fatalf("pre-hire: %+v", idn)
	}
	tick := func() int {
		t.Helper()
		n, err := e.engine.Tick(context.Background(), e.st)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := tick(); n != 0 {
		t.Fatalf("%d transitions before the start date", n)
	}
	// The gateway was "down" for three days: one tick catches up.
	e.clock.advance(72 * time.Hour)
	if n := tick(); n != 1 {
		t.Fatalf("catch-up tick: %d", n)
	}
	if idn := e.identity(id); idn.State != store.StateAwaitingMFA || !idn.NextCheck.Equal(end) {
		t.Fatalf("after start: %+v", idn)
	}
	e.clock.advance(40 * 24 * time.Hour)
	tick()
	if idn := e.identity(id); idn.State != store.StateTerminated || !idn.NextCheck.IsZero() {
		t.Fatalf("after end: %+v", idn)
	}
	if got := e.lifecycleActions(id); !eq(got, []string{"lifecycle.joiner by workday", "lifecycle.start by scheduler", "lifecycle.leaver by scheduler", "lifecycle.revoked by scheduler"}) {
		t.Fatalf("records %v", got)
	}
}

// A role that fails at evaluation must fail the SCIM write: guessing
// "no access" or "access" would both be wrong, and nothing may persist.
func TestRoleErrorFailsTheWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []config.Role{{Name: "broken", When: `user.groups[3] == "x"`,
		Grants: []config.Grant{{Connector: "github", Entitlement: "x"}}}})
	if st, _ := e.do("POST", "/Users", user("lin@example.com", true, nil)); st != 500 {
		t.Fatalf("create with a failing role: %d", st)
	}
	if st, body := e.do("GET", "/Users?count=0", nil); st != 200 || body["totalResults"] != float64(0) {
		t.Fatalf("user persisted: %v", body)
	}
}
