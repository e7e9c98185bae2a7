package workflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/identityapi"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

var approvalRoles = []config.Role{
	{Name: "engineering", When: `user.department == "Engineering"`, Grants: []config.Grant{{Connector: "github", Entitlement: "team-eng"}}},
	{Name: "sre-admin", When: `"sre" in user.groups`, Privileged: true, ApprovalsRequired: 2,
		Grants: []config.Grant{{Connector: "aws", Entitlement: "admin"}}},
}

func (e *env) approvalsAPI(caller string) func(method, path string, body any) (int, map[string]any) {
	h := identityapi.ApprovalsHandler(e.st, e.engine, nil)
	return func(method, path string, body any) (int, map[string]any) {
		var b []byte
		if body != nil {
			b, _ = json.Marshal(body)
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(b))
		req = req.WithContext(reqctx.WithActor(req.Context(), caller))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
}

func (e *env) pending(id string) []map[string]any {
	e.t.Helper()
	_, b := e.approvalsAPI("it-auditor")("GET", "/api/v1/approvals?state=pending&identity="+id, nil)
	var out []map[string]any
	for _, a := range b["approvals"].([]any) {
		out = append(out, a.(map[string]any))
	}
	return out
}

func held(t *testing.T, idn *store.Identity) map[string]bool {
	t.Helper()
	var ds []struct {
		Connector, Entitlement string
		Held                   bool
	}
	if err := json.Unmarshal(idn.Desired, &ds); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range ds {
		out[d.Connector+":"+d.Entitlement] = d.Held
	}
	return out
}

func groupPatch(op, id string) map[string]any {
	v := any([]any{map[string]any{"value": id}})
	path := "members"
	if op == "remove" {
		path, v = `members[value eq "`+id+`"]`, nil
	}
	return map[string]any{"schemas": []string{patchURN}, "Operations": []any{map[string]any{"op": op, "path": path, "value": v}}}
}

func TestApprovalsForPrivilegedGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, approvalRoles)
	m := e.mfa()
	ctx := reqctx.WithActor(context.Background(), "helpdesk")
	_, body := e.do("POST", "/Users", map[string]any{"schemas": []string{userURN, entURN}, "userName": "gil@example.com", "active": true,
		entURN: map[string]any{"department": "Engineering"}})
	id := body["id"].(string)
	_, g := e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": "sre", "members": []any{map[string]any{"value": id}}})
	gid := g["id"].(string)

	// Awaiting MFA: the privileged grant is held and no request is open.
	if len(e.pending(id)) != 0 || !held(t, e.identity(id))["aws:admin"] || held(t, e.identity(id))["github:team-eng"] {
		t.Fatalf("before activation: pending %v, held %v", e.pending(id), held(t, e.identity(id)))
	}
	uri, _ := m.BeginTOTP(ctx, id)
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); err != nil {
		t.Fatal(err)
	}
	p := e.pending(id)
	if len(p) != 1 || p[0]["role"] != "sre-admin" || p[0]["approvals_required"] != float64(2) {
		t.Fatalf("on activation: %v", p)
	}
	aid := p[0]["id"].(string)

	alice, bob := e.approvalsAPI("alice"), e.approvalsAPI("bob")
	if st, _ := e.approvalsAPI("gil@example.com")("POST", "/api/v1/approvals/"+aid+"/approve", nil); st != 403 {
		t.Fatalf("self-approval: %d", st)
	}
	if st, b := alice("POST", "/api/v1/approvals/"+aid+"/approve", nil); st != 200 || b["state"] != "pending" {
		t.Fatalf("first approval: %d %v", st, b)
	}
	if st, _ := alice("POST", "/api/v1/approvals/"+aid+"/approve", nil); st != 409 {
		t.Fatalf("same approver twice: %d", st)
	}
	if !held(t, e.identity(id))["aws:admin"] {
		t.Fatal("one of two approvals released the grant")
	}
	if st, b := bob("POST", "/api/v1/approvals/"+aid+"/approve", nil); st != 200 || b["state"] != "approved" {
		t.Fatalf("second approval: %d %v", st, b)
	}
	if held(t, e.identity(id))["aws:admin"] {
		t.Fatal("approved grant still held")
	}
	if st, _ := bob("POST", "/api/v1/approvals/"+aid+"/reject", map[string]any{"reason": "late"}); st != 409 {
		t.Fatalf("deciding a closed approval: %d", st)
	}

	// Mover: leaving sre cancels the approval; rejoining asks again.
	e.do("PATCH", "/Groups/"+gid, groupPatch("remove", id))
	_, a := alice("GET", "/api/v1/approvals/"+aid, nil)
	if a["state"] != "cancelled" || strings.Contains(string(e.identity(id).Desired), "aws") {
		t.Fatalf("after leaving the role: %v, desired %s", a["state"], e.identity(id).Desired)
	}
	e.do("PATCH", "/Groups/"+gid, groupPatch("add", id))
	p = e.pending(id)
	if len(p) != 1 || p[0]["id"] == aid || !held(t, e.identity(id))["aws:admin"] {
		t.Fatalf("rejoining: %v", p)
	}
	second := p[0]["id"].(string)

	// A rejection needs a reason and stands while the role applies.
	if st, _ := alice("POST", "/api/v1/approvals/"+second+"/reject", nil); st != 400 {
		t.Fatalf("reject without reason: %d", st)
	}
	if st, _ := alice("POST", "/api/v1/approvals/"+second+"/reject", map[string]any{"reason": "no on-call duty"}); st != 200 {
		t.Fatalf("reject: %d", st)
	}
	e.do("PATCH", "/Users/"+id, map[string]any{"schemas": []string{patchURN}, "Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "SRE"}}})
	if len(e.pending(id)) != 0 || !held(t, e.identity(id))["aws:admin"] {
		t.Fatalf("a rejection was re-requested: %v", e.pending(id))
	}
	// Leave and rejoin: a new episode asks again; it expires unanswered.
	e.do("PATCH", "/Groups/"+gid, groupPatch("remove", id))
	e.do("PATCH", "/Groups/"+gid, groupPatch("add", id))
	p = e.pending(id)
	if len(p) != 1 {
		t.Fatalf("new episode: %v", p)
	}
	third := p[0]["id"].(string)
	e.clock.advance(8 * 24 * time.Hour)
	if _, err := e.engine.Tick(context.Background(), e.st); err != nil {
		t.Fatal(err)
	}
	if _, a := alice("GET", "/api/v1/approvals/"+third, nil); a["state"] != "expired" {
		t.Fatalf("after its expiry: %v", a["state"])
	}
	if st, _ := bob("POST", "/api/v1/approvals/"+third+"/approve", nil); st != 409 {
		t.Fatalf("approving an expired request: %d", st)
	}

	// A leaver's pending requests are cancelled.
	e.do("PATCH", "/Groups/"+gid, groupPatch("remove", id))
	e.do("PATCH", "/Groups/"+gid, groupPatch("add", id))
	fourth := e.pending(id)[0]["id"].(string)
	e.do("PATCH", "/Users/"+id, patchActive(false))
	if _, a := alice("GET", "/api/v1/approvals/"+fourth, nil); a["state"] != "cancelled" {
		t.Fatalf("leaver's request: %v", a["state"])
	}
}
