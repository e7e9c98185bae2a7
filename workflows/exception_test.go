package workflows_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/identityapi"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// exceptionsAPI serves /api/v1/exceptions for e as the given caller.
func (e *env) exceptionsAPI(caller string) func(method, path string, body any) (int, map[string]any) {
	h := (&identityapi.Exceptions{Store: e.st, Engine: e.engine, Max: 30 * 24 * time.Hour}).Handler()
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

func exceptionBody(id string, expires time.Time) map[string]any {
	return map[string]any{"identity": id, "type": "mfa_bypass", "justification": "lost phone, travelling",
		"compensating_controls": "VPN only, session 4h", "owner": "it-security", "expires_at": expires.Format(time.RFC3339)}
}

func TestExceptionOpensTheGateUntilItEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	api := e.exceptionsAPI("it-admin")
	_, body := e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": "eve@example.com", "active": true,
		"emails": []any{map[string]any{"value": "eve.w@example.com", "type": "work"}}})
	id := body["id"].(string)
	week := e.clock.now().Add(7 * 24 * time.Hour)

	// Separation of duties: the subject cannot grant her own exception,
	// by userName or by email; nothing is written.
	for _, self := range []string{"eve@example.com", "jwt:EVE.W@example.com"} {
		if st, b := e.exceptionsAPI(self)("POST", "/api/v1/exceptions", exceptionBody(id, week)); st != 403 {
			t.Fatalf("self-granted by %s: %d %v", self, st, b)
		}
	}
	// Every problem at once.
	st, b := api("POST", "/api/v1/exceptions", map[string]any{"identity": id, "type": "bypass", "expires_at": e.clock.now().Add(-time.Hour).Format(time.RFC3339)})
	msg, _ := b["message"].(string)
	if st != 400 || !strings.Contains(msg, "justification is required") || !strings.Contains(msg, `type must be "mfa_bypass"`) || !strings.Contains(msg, "in the future") {
		t.Fatalf("invalid exception: %d %v", st, b)
	}
	if st, b := api("POST", "/api/v1/exceptions", exceptionBody(id, e.clock.now().Add(31*24*time.Hour))); st != 400 || !strings.Contains(b["message"].(string), "mfa.exception_max") {
		t.Fatalf("expiry beyond the cap: %d %v", st, b)
	}
	if st, _ := api("POST", "/api/v1/exceptions", exceptionBody("nobody", week)); st != 404 {
		t.Fatalf("unknown identity: %d", st)
	}
	if st := e.identity(id).State; st != store.StateAwaitingMFA {
		t.Fatalf("refused exceptions changed the state to %s", st)
	}

	st, b = api("POST", "/api/v1/exceptions", exceptionBody(id, week))
	if st != 201 || b["state"] != "active" || b["created_by"] != "it-admin" {
		t.Fatalf("create: %d %v", st, b)
	}
	if idn := e.identity(id); idn.State != store.StateActive || !idn.NextCheck.Equal(week) {
		t.Fatalf("with a live exception: %+v", idn)
	}
	// Expiry, caught by the scheduler.
	e.clock.advance(8 * 24 * time.Hour)
	if _, err := e.engine.Tick(t.Context(), e.st); err != nil {
		t.Fatal(err)
	}
	if st := e.identity(id).State; st != store.StateAwaitingMFA {
		t.Fatalf("after expiry: %s", st)
	}
	if st, b := api("GET", "/api/v1/exceptions?identity="+id+"&state=expired", nil); st != 200 || len(b["exceptions"].([]any)) != 1 {
		t.Fatalf("expired list: %d %v", st, b)
	}

	// Ended early.
	_, b = api("POST", "/api/v1/exceptions", exceptionBody(id, e.clock.now().Add(24*time.Hour)))
	xid := b["id"].(string)
	if st := e.identity(id).State; st != store.StateActive {
		t.Fatalf("second exception: %s", st)
	}
	if st, b := api("DELETE", "/api/v1/exceptions/"+xid, nil); st != 200 || b["ended_by"] != "it-admin" {
		t.Fatalf("end: %d %v", st, b)
	}
	if st := e.identity(id).State; st != store.StateAwaitingMFA {
		t.Fatalf("after ending: %s", st)
	}
	if st, _ := api("DELETE", "/api/v1/exceptions/"+xid, nil); st != 409 {
		t.Fatalf("ending twice: %d", st)
	}

	// A leaver's live exceptions end with her.
	_, b = api("POST", "/api/v1/exceptions", exceptionBody(id, e.clock.now().Add(24*time.Hour)))
	e.do("PATCH", "/Users/"+id, patchActive(false))
	_, b = api("GET", "/api/v1/exceptions?identity="+id+"&state=active", nil)
	if n := len(b["exceptions"].([]any)); n != 0 || e.identity(id).State != store.StateTerminated {
		t.Fatalf("leaver kept %d live exceptions", n)
	}
	if st, b := api("POST", "/api/v1/exceptions", exceptionBody(id, e.clock.now().Add(time.Hour))); st != 409 {
		t.Fatalf("exception for a leaver: %d %v", st, b)
	}
	acts := strings.Join(e.lifecycleActions(id), ",")
	for _, want := range []string{"mfa.exception.create by it-admin", "lifecycle.activate by it-admin", "lifecycle.deactivate by scheduler",
		"mfa.exception.end by it-admin", "lifecycle.leaver by workday"} {
		if !strings.Contains(acts, want) {
			t.Fatalf("history lacks %q: %s", want, acts)
		}
	}
}
