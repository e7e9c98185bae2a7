package roles

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/internal/config"
)

// testServer serves Handler over a Set of three roles and returns it with
// the buffer its logger writes to.
func testServer(t *testing.T) (*httptest.Server, *syncBuffer) {
	t.Helper()
	s, err := Compile([]config.Role{
		{Name: "everyone", Description: "Birthright for all staff", When: `user.active && user.emails.exists(e, e.endsWith("@contoso.example"))`,
			Grants: []config.Grant{{Connector: "slack", Entitlement: "member"}}},
		{Name: "sre-admin", When: `"sre" in user.groups && user.title.startsWith("Senior")`, Privileged: true, ApprovalsRequired: 2,
			Grants: []config.Grant{{Connector: "aws", Entitlement: "Admin"}, {Connector: "slack", Entitlement: "member"}}},
		{Name: "starters", When: `user.startDate < timestamp("2027-01-01T00:00:00Z")`,
			Grants: []config.Grant{{Connector: "lms", Entitlement: "onboarding"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	srv := httptest.NewServer(Handler(s, slog.New(slog.NewJSONHandler(buf, nil))))
	t.Cleanup(srv.Close)
	return srv, buf
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) lock() {
	if b.mu == nil {
		b.mu = make(chan struct{}, 1)
	}
	b.mu <- struct{}{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.String()
}

func do(t *testing.T, srv *httptest.Server, method, path string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// compact re-encodes a JSON text so expected bodies can be written readably.
func compact(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("bad JSON in test: %v\n%s", err, s)
	}
	return buf.String()
}

func TestHandlerListRoles(t *testing.T) {
	t.Parallel()
	srv, _ := testServer(t)
	resp, body := do(t, srv, http.MethodGet, "/api/v1/roles", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := compact(t, `{"roles": [
	  {"name": "everyone", "description": "Birthright for all staff",
	   "when": "user.active && user.emails.exists(e, e.endsWith(\"@contoso.example\"))",
	   "grants": [{"connector": "slack", "entitlement": "member"}], "privileged": false, "approvals_required": 0},
	  {"name": "sre-admin", "description": "", "when": "\"sre\" in user.groups && user.title.startsWith(\"Senior\")",
	   "grants": [{"connector": "aws", "entitlement": "Admin"}, {"connector": "slack", "entitlement": "member"}],
	   "privileged": true, "approvals_required": 2},
	  {"name": "starters", "description": "", "when": "user.startDate < timestamp(\"2027-01-01T00:00:00Z\")",
	   "grants": [{"connector": "lms", "entitlement": "onboarding"}], "privileged": false, "approvals_required": 0}
	]}`)
	if strings.TrimSpace(body) != want {
		t.Errorf("body =\n%s\nwant\n%s", body, want)
	}

	resp, body = do(t, srv, http.MethodHead, "/api/v1/roles", nil)
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: status %d, body %q", resp.StatusCode, body)
	}

	empty, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	Handler(empty, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/roles", nil))
	if got := strings.TrimSpace(rec.Body.String()); got != `{"roles":[]}` {
		t.Errorf("no roles: body %s", got)
	}
}

func TestHandlerEvaluate(t *testing.T) {
	t.Parallel()
	srv, logs := testServer(t)
	withGroups := func(groups string) string {
		return strings.Replace(entraBody, `"userName"`, `"groups": `+groups+`, "userName"`, 1)
	}
	aliceUser := `{"userName": "Alice.Ng@Contoso.example", "displayName": "Alice Ng", "title": "Senior Site Reliability Engineer",
	  "userType": "Member", "active": true, "emails": ["alice.ng@contoso.example", "alice@personal.example"],
	  "department": "Platform", "division": "", "organization": "", "costCenter": "CC-4100", "employeeNumber": "100231",
	  "manager": "7d5c1f0e-2b7a-4a44-9f2e-1c4b8a6f9d10", "groups": %s,
	  "startDate": "2026-09-01T07:00:00Z", "endDate": "2027-08-31T18:00:00Z"}`
	tests := []struct {
		name string
		body string
		want string
	}{
		{"Entra user with groups as names", withGroups(`["sre", "Platform Team"]`), `{
		  "user": ` + strings.Replace(aliceUser, "%s", `["sre", "Platform Team"]`, 1) + `,
		  "matches": [
		    {"role": "everyone", "privileged": false, "approvals_required": 0, "grants": [{"connector": "slack", "entitlement": "member"}]},
		    {"role": "sre-admin", "privileged": true, "approvals_required": 2,
		     "grants": [{"connector": "aws", "entitlement": "Admin"}, {"connector": "slack", "entitlement": "member"}]},
		    {"role": "starters", "privileged": false, "approvals_required": 0, "grants": [{"connector": "lms", "entitlement": "onboarding"}]}
		  ],
		  "desired": [
		    {"connector": "aws", "entitlement": "Admin", "roles": ["sre-admin"], "privileged": true},
		    {"connector": "lms", "entitlement": "onboarding", "roles": ["starters"], "privileged": false},
		    {"connector": "slack", "entitlement": "member", "roles": ["everyone", "sre-admin"], "privileged": true}
		  ]}`},
		{"groups as SCIM references, key in any case", strings.Replace(entraBody, `"userName"`,
			`"Groups": [{"value": "g1", "display": "sre"}, {"value": "g2", "$ref": "x", "display": "ops"}], "userName"`, 1), `{
		  "user": ` + strings.Replace(aliceUser, "%s", `["sre", "ops"]`, 1) + `,
		  "matches": [
		    {"role": "everyone", "privileged": false, "approvals_required": 0, "grants": [{"connector": "slack", "entitlement": "member"}]},
		    {"role": "sre-admin", "privileged": true, "approvals_required": 2,
		     "grants": [{"connector": "aws", "entitlement": "Admin"}, {"connector": "slack", "entitlement": "member"}]},
		    {"role": "starters", "privileged": false, "approvals_required": 0, "grants": [{"connector": "lms", "entitlement": "onboarding"}]}
		  ],
		  "desired": [
		    {"connector": "aws", "entitlement": "Admin", "roles": ["sre-admin"], "privileged": true},
		    {"connector": "lms", "entitlement": "onboarding", "roles": ["starters"], "privileged": false},
		    {"connector": "slack", "entitlement": "member", "roles": ["everyone", "sre-admin"], "privileged": true}
		  ]}`},
		{"no match", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "active": false, "groups": null,
		  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {"startDate": "2030-01-01T00:00:00Z"}}`, `{
		  "user": {"userName": "x", "displayName": "", "title": "", "userType": "", "active": false, "emails": [],
		    "department": "", "division": "", "organization": "", "costCenter": "", "employeeNumber": "", "manager": "",
		    "groups": [], "startDate": "2030-01-01T00:00:00Z", "endDate": null},
		  "matches": [], "desired": []}`},
		{"a rule fails on this user", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob",
		  "active": true, "emails": [{"value": "bob@contoso.example"}]}`, `{
		  "user": {"userName": "bob", "displayName": "", "title": "", "userType": "", "active": true, "emails": ["bob@contoso.example"],
		    "department": "", "division": "", "organization": "", "costCenter": "", "employeeNumber": "", "manager": "",
		    "groups": [], "startDate": null, "endDate": null},
		  "matches": [
		    {"role": "everyone", "privileged": false, "approvals_required": 0, "grants": [{"connector": "slack", "entitlement": "member"}]}
		  ],
		  "desired": null,
		  "errors": [{"role": "starters", "message": "evaluation failed: no such overload: _<_"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, srv, http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(tt.body))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if want := compact(t, tt.want); strings.TrimSpace(body) != want {
				t.Errorf("body =\n%s\nwant\n%s", body, want)
			}
		})
	}
	t.Run("failing rule is logged", func(t *testing.T) {
		t.Parallel()
		do(t, srv, http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol"}`))
		if l := logs.String(); !strings.Contains(l, `"msg":"role expression failed in a dry run","role":"starters"`) {
			t.Errorf("log = %s", l)
		}
	})
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	srv, _ := testServer(t)
	const user = `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}`
	big := `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "displayName": "` + strings.Repeat("a", MaxEvaluateBody) + `"}`
	tests := []struct {
		name      string
		method    string
		path      string
		body      io.Reader
		status    int
		want      string // the whole error body
		wantAllow string
	}{
		{"POST roles", http.MethodPost, "/api/v1/roles", strings.NewReader(user), 405,
			`{"error":"method_not_allowed","message":"POST is not allowed on /api/v1/roles; use GET"}`, "GET, HEAD"},
		{"DELETE roles", http.MethodDelete, "/api/v1/roles", nil, 405,
			`{"error":"method_not_allowed","message":"DELETE is not allowed on /api/v1/roles; use GET"}`, "GET, HEAD"},
		{"GET evaluate", http.MethodGet, "/api/v1/roles/evaluate", nil, 405,
			`{"error":"method_not_allowed","message":"GET is not allowed on /api/v1/roles/evaluate; use POST"}`, "POST"},
		{"PUT evaluate", http.MethodPut, "/api/v1/roles/evaluate", strings.NewReader(user), 405,
			`{"error":"method_not_allowed","message":"PUT is not allowed on /api/v1/roles/evaluate; use POST"}`, "POST"},
		{"unknown path", http.MethodGet, "/api/v1/roles/sre-admin", nil, 404,
			`{"error":"not_found","message":"no such path \"/api/v1/roles/sre-admin\""}`, ""},
		{"trailing slash", http.MethodGet, "/api/v1/roles/", nil, 404,
			`{"error":"not_found","message":"no such path \"/api/v1/roles/\""}`, ""},
		{"empty body", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader("  \n"), 400,
			`{"error":"invalid_request","message":"request body is empty; send a SCIM User document"}`, ""},
		{"malformed JSON", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"userName": "x",, }`), 400,
			`{"error":"invalid_request","message":"malformed JSON at byte 18: invalid character ',' looking for beginning of object key string"}`, ""},
		{"truncated JSON", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"userName": "x"`), 400,
			`{"error":"invalid_request","message":"malformed JSON: unexpected end of input at byte 16"}`, ""},
		{"trailing data", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(user + ` {}`), 400,
			`{"error":"invalid_request","message":"malformed JSON: unexpected data after the top-level value at byte 77"}`, ""},
		{"array body", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`[` + user + `]`), 400,
			`{"error":"invalid_request","message":"request body must be a JSON object (a SCIM User document)"}`, ""},
		{"null body", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`null`), 400,
			`{"error":"invalid_request","message":"request body must be a JSON object (a SCIM User document)"}`, ""},
		{"missing userName", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "active": true}`), 400,
			`{"error":"invalid_request","message":"attribute \"userName\" is required"}`, ""},
		{"missing schemas", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"userName": "x"}`), 400,
			`{"error":"invalid_request","message":"attribute \"schemas\" is required and must list \"urn:ietf:params:scim:schemas:core:2.0:User\""}`, ""},
		{"unknown attribute", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "departmnet": "Eng"}`), 400,
			`{"error":"invalid_request","message":"unknown attribute \"departmnet\""}`, ""},
		{"wrong type", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "active": 1}`), 400,
			`{"error":"invalid_request","message":"attribute \"active\": expected boolean, got number"}`, ""},
		{"groups not an array", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "groups": "sre"}`), 400,
			`{"error":"invalid_request","message":"\"groups\" must be an array of group display names"}`, ""},
		{"group of the wrong type", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "groups": ["sre", 5]}`), 400,
			`{"error":"invalid_request","message":"\"groups[1]\" must be a group display name (a string) or an object with a \"display\" string"}`, ""},
		{"group reference without display", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "groups": [{"value": "g1"}]}`), 400,
			`{"error":"invalid_request","message":"\"groups[0]\" must be a group display name (a string) or an object with a \"display\" string"}`, ""},
		{"empty group name", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "groups": ["sre", " "]}`), 400,
			`{"error":"invalid_request","message":"\"groups[1]\" is an empty group name"}`, ""},
		{"groups twice", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "groups": [], "GROUPS": []}`), 400,
			`{"error":"invalid_request","message":"attribute \"groups\" given more than once (as \"GROUPS\" and \"groups\")"}`, ""},
		{"too large, declared", http.MethodPost, "/api/v1/roles/evaluate", strings.NewReader(big), 413,
			`{"error":"body_too_large","message":"request body of 1048671 bytes exceeds the limit of 1048576 bytes"}`, ""},
		{"too large, streamed", http.MethodPost, "/api/v1/roles/evaluate", io.MultiReader(strings.NewReader(big)), 413,
			`{"error":"body_too_large","message":"request body exceeds the limit of 1048576 bytes"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, srv, tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := strings.TrimSpace(body); got != tt.want {
				t.Errorf("body =\n%s\nwant\n%s", got, tt.want)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

// TestHandlerInternalError checks the one 500 path, which no request can
// reach today (Normalize only returns 400 errors): the client sees a
// generic message and the log has the cause.
func TestHandlerInternalError(t *testing.T) {
	t.Parallel()
	s, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := Handler(s, slog.New(slog.NewJSONHandler(&logs, nil))).(*handler)
	rec := httptest.NewRecorder()
	h.internal(rec, httptest.NewRequest(http.MethodPost, EvaluatePath, nil), "normalizing the user document", errors.New("disk on fire"))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d", rec.Code)
	}
	if got, want := strings.TrimSpace(rec.Body.String()), `{"error":"internal","message":"internal error; see the server log"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if !strings.Contains(logs.String(), `"msg":"roles API: normalizing the user document","error":"disk on fire"`) {
		t.Errorf("log = %s", logs.String())
	}
}
