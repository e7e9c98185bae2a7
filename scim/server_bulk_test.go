package scim_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/scim"
)

func bulkReq(failOnErrors int, ops ...map[string]any) map[string]any {
	b := map[string]any{"schemas": []string{bulkReqURN}, "Operations": ops}
	if failOnErrors > 0 {
		b["failOnErrors"] = failOnErrors
	}
	return b
}

func bulkOp(method, path, bulkID string, data any) map[string]any {
	m := map[string]any{"method": method, "path": path}
	if bulkID != "" {
		m["bulkId"] = bulkID
	}
	if data != nil {
		m["data"] = data
	}
	return m
}

func userData(userName string) map[string]any {
	return map[string]any{"schemas": []string{userURN}, "userName": userName}
}

func groupData(name string, memberValues ...string) map[string]any {
	d := map[string]any{"schemas": []string{groupURN}, "displayName": name}
	if len(memberValues) > 0 {
		ms := []any{}
		for _, v := range memberValues {
			ms = append(ms, map[string]any{"value": v})
		}
		d["members"] = ms
	}
	return d
}

// bulkResults checks the BulkResponse envelope and returns its operations.
func bulkResults(t *testing.T, r *srvResp) []map[string]any {
	t.Helper()
	r.want(t, http.StatusOK)
	if !reflect.DeepEqual(r.Body["schemas"], []any{bulkRespURN}) {
		t.Errorf("schemas = %v", r.Body["schemas"])
	}
	var out []map[string]any
	for _, o := range asList(r.Body["Operations"]) {
		out = append(out, o.(map[string]any))
	}
	return out
}

// wantStatuses compares the "status" of each result, in order.
func wantStatuses(t *testing.T, res []map[string]any, want ...string) {
	t.Helper()
	var got []string
	for _, o := range res {
		s, ok := o["status"].(string)
		if !ok {
			t.Errorf("status %#v is not a string", o["status"])
		}
		got = append(got, s)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses = %v, want %v; results: %v", got, want, res)
	}
}

// wantOpError checks a failed operation's embedded SCIM error.
func wantOpError(t *testing.T, o map[string]any, status string, fragment string) {
	t.Helper()
	resp, _ := o["response"].(map[string]any)
	if resp == nil {
		t.Fatalf("failed operation without a response: %v", o)
	}
	if !reflect.DeepEqual(resp["schemas"], []any{errorURN}) || resp["status"] != status {
		t.Errorf("response = %v, want an Error with status %q", resp, status)
	}
	if d, _ := resp["detail"].(string); !strings.Contains(d, fragment) {
		t.Errorf("detail %q does not contain %q", d, fragment)
	}
}

func (e *srvEnv) countUsers(filter string) int {
	e.t.Helper()
	r := e.do(http.MethodGet, "/Users?count=0&filter="+filter, nil)
	var n int
	fmt.Sscan(fmt.Sprint(r.Body["totalResults"]), &n)
	return n
}

func (e *srvEnv) countGroups(filter string) int {
	e.t.Helper()
	r := e.do(http.MethodGet, "/Groups?count=0&filter="+filter, nil)
	var n int
	fmt.Sscan(fmt.Sprint(r.Body["totalResults"]), &n)
	return n
}

func TestServerBulk(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) { c.BulkMaxOperations = 5; c.BulkMaxPayload = 4096 })

	t.Run("POST with bulkId then PATCH by bulkId", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
			bulkOp("POST", "/Users", "u", userData("bulk.u@example.com")),
			bulkOp("POST", "/Groups", "g", groupData("bulk-g")),
			bulkOp("PATCH", "/Groups/bulkId:g", "", patchOps(op("add", "members", []any{map[string]any{"value": "bulkId:u"}}))),
		)))
		wantStatuses(t, res, "201", "201", "200")
		u := env.do(http.MethodGet, `/Users?filter=userName eq "bulk.u@example.com"`, nil)
		uid, _ := get(u.Body, "Resources", 0, "id").(string)
		g := env.do(http.MethodGet, `/Groups?filter=displayName eq "bulk-g"`, nil)
		gid, _ := get(g.Body, "Resources", 0, "id").(string)
		if uid == "" || gid == "" {
			t.Fatalf("created resources not found: %s %s", u.Raw, g.Raw)
		}
		for i, want := range []struct{ method, bulkID, loc, version string }{
			{"POST", "u", env.base + "/Users/" + uid, `W/"1"`},
			{"POST", "g", env.base + "/Groups/" + gid, `W/"1"`},
			{"PATCH", "", env.base + "/Groups/" + gid, `W/"2"`},
		} {
			o := res[i]
			if o["method"] != want.method || fmt.Sprint(o["location"]) != want.loc || o["version"] != want.version {
				t.Errorf("result %d = %v, want method %s location %s version %s", i, o, want.method, want.loc, want.version)
			}
			if b, _ := o["bulkId"].(string); b != want.bulkID {
				t.Errorf("result %d bulkId = %q, want %q", i, b, want.bulkID)
			}
		}
		members := get(g.Body, "Resources", 0, "members")
		if len(asList(members)) != 1 || get(members, 0, "value") != uid {
			t.Errorf("group members = %v, want [%s]", members, uid)
		}
	})

	t.Run("forward reference to a later POST", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
			bulkOp("POST", "/Groups", "fg", groupData("bulk-forward", "bulkId:fu")),
			bulkOp("POST", "/Users", "fu", userData("bulk.forward@example.com")),
		)))
		wantStatuses(t, res, "201", "201")
		if res[0]["bulkId"] != "fg" || res[1]["bulkId"] != "fu" {
			t.Errorf("results not in request order: %v", res)
		}
		g := env.do(http.MethodGet, `/Groups?filter=displayName eq "bulk-forward"`, nil)
		uloc := fmt.Sprint(res[1]["location"])
		if v := get(g.Body, "Resources", 0, "members", 0, "value"); v == nil || !strings.HasSuffix(uloc, "/"+v.(string)) {
			t.Errorf("group member %v is not the user at %s", v, uloc)
		}
	})

	t.Run("circular references are 409", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
			bulkOp("POST", "/Groups", "ca", groupData("bulk-circ-a", "bulkId:cb")),
			bulkOp("POST", "/Groups", "cb", groupData("bulk-circ-b", "bulkId:ca")),
			bulkOp("POST", "/Users", "cu", userData("bulk.circ@example.com")),
		)))
		wantStatuses(t, res, "409", "409", "201")
		wantOpError(t, res[0], "409", "circular")
		wantOpError(t, res[1], "409", "circular")
		if n := env.countGroups(`displayName sw "bulk-circ"`); n != 0 {
			t.Errorf("%d circular groups created", n)
		}
	})

	t.Run("reference to a failed or undeclared bulkId", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
			bulkOp("POST", "/Users", "bad", map[string]any{"schemas": []string{userURN}}),
			bulkOp("POST", "/Groups", "dep", groupData("bulk-dep", "bulkId:bad")),
			bulkOp("POST", "/Groups", "undecl", groupData("bulk-undecl", "bulkId:nowhere")),
		)))
		wantStatuses(t, res, "400", "409", "409")
		wantOpError(t, res[0], "400", "userName")
		wantOpError(t, res[1], "409", `"bad"`)
		wantOpError(t, res[2], "409", `"nowhere"`)
		if n := env.countGroups(`displayName sw "bulk-dep" or displayName sw "bulk-undecl"`); n != 0 {
			t.Errorf("%d dependent groups created", n)
		}
	})

	t.Run("failOnErrors=1 stops after the first error", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(1,
			bulkOp("POST", "/Users", "f1", userData("bulk.stop1@example.com")),
			bulkOp("POST", "/Users", "f2", map[string]any{"schemas": []string{userURN}, "userName": "bulk.stop2@example.com", "fooBar": true}),
			bulkOp("POST", "/Users", "f3", userData("bulk.stop3@example.com")),
		)))
		wantStatuses(t, res, "201", "400")
		wantOpError(t, res[1], "400", "fooBar")
		if n := env.countUsers(`userName sw "bulk.stop"`); n != 1 {
			t.Errorf("%d users created, want only bulk.stop1", n)
		}
	})

	t.Run("failOnErrors=2 runs until the second error", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(2,
			bulkOp("POST", "/Users", "s1", map[string]any{"schemas": []string{userURN}}),
			bulkOp("POST", "/Users", "s2", userData("bulk.two2@example.com")),
			bulkOp("DELETE", "/Users/nope", "", nil),
			bulkOp("POST", "/Users", "s4", userData("bulk.two4@example.com")),
		)))
		wantStatuses(t, res, "400", "201", "404")
		if n := env.countUsers(`userName sw "bulk.two"`); n != 1 {
			t.Errorf("%d users created, want only bulk.two2", n)
		}
	})

	t.Run("without failOnErrors every operation runs", func(t *testing.T) {
		t.Parallel()
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
			bulkOp("POST", "/Users", "n1", map[string]any{"schemas": []string{userURN}}),
			bulkOp("DELETE", "/Users/nope", "", nil),
			bulkOp("POST", "/Users", "n3", userData("bulk.n3@example.com")),
			bulkOp("GET", "/Users", "", nil),
			bulkOp("POST", "/Widgets", "n5", userData("bulk.n5@example.com")),
		)))
		wantStatuses(t, res, "400", "404", "201", "400", "400")
		wantOpError(t, res[4], "400", "/Widgets")
	})

	t.Run("version is honoured per operation", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("bulk.version@example.com", nil)
		id := idOf(u)
		env.do(http.MethodPatch, "/Users/"+id, patchOps(op("replace", "title", "v2"))).want(t, 200)
		put := bulkOp("PUT", "/Users/"+id, "", map[string]any{"schemas": []string{userURN}, "userName": "bulk.version@example.com", "title": "v3"})
		put["version"] = `W/"1"`
		patch := bulkOp("PATCH", "/Users/"+id, "", patchOps(op("replace", "title", "v3")))
		patch["version"] = `W/"2"`
		del := bulkOp("DELETE", "/Users/"+id, "", nil)
		del["version"] = `W/"2"`
		res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0, put, patch, del)))
		wantStatuses(t, res, "412", "200", "412")
		if res[1]["version"] != `W/"3"` {
			t.Errorf("PATCH result version = %v", res[1]["version"])
		}
		g := env.do(http.MethodGet, "/Users/"+id, nil).want(t, 200)
		if g.Body["title"] != "v3" || metaOf(g.Body, "version") != `W/"3"` {
			t.Errorf("after bulk: %s", g.Raw)
		}
		del["version"] = `W/"3"`
		res = bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0, del)))
		wantStatuses(t, res, "204")
		if res[0]["location"] != env.base+"/Users/"+id {
			t.Errorf("DELETE location = %v", res[0]["location"])
		}
		env.do(http.MethodGet, "/Users/"+id, nil).wantError(t, 404, "")
	})

	reqErrors := []struct {
		name      string
		body      any
		status    int
		scimType  string
		fragments []string
	}{
		{name: "more operations than maxOperations", status: 413, scimType: "", fragments: []string{"6", "5"},
			body: bulkReq(0,
				bulkOp("POST", "/Users", "m1", userData("bulk.m1@example.com")), bulkOp("POST", "/Users", "m2", userData("bulk.m2@example.com")),
				bulkOp("POST", "/Users", "m3", userData("bulk.m3@example.com")), bulkOp("POST", "/Users", "m4", userData("bulk.m4@example.com")),
				bulkOp("POST", "/Users", "m5", userData("bulk.m5@example.com")), bulkOp("POST", "/Users", "m6", userData("bulk.m6@example.com")))},
		{name: "payload over maxPayloadSize", status: 413, scimType: "", fragments: []string{"4096"},
			body: bulkReq(0, bulkOp("POST", "/Users", "p1", map[string]any{"schemas": []string{userURN}, "userName": "bulk.m1@example.com", "displayName": strings.Repeat("p", 5000)}))},
		{name: "duplicate bulkId", status: 400, scimType: "invalidValue", fragments: []string{`"d1"`},
			body: bulkReq(0, bulkOp("POST", "/Users", "d1", userData("bulk.m1@example.com")), bulkOp("POST", "/Users", "d1", userData("bulk.m2@example.com")))},
		{name: "POST without bulkId", status: 400, scimType: "invalidValue", fragments: []string{"bulkId"},
			body: bulkReq(0, bulkOp("POST", "/Users", "", userData("bulk.m1@example.com")))},
		{name: "missing schemas", status: 400, scimType: "invalidSyntax", fragments: []string{bulkReqURN},
			body: map[string]any{"Operations": []any{bulkOp("POST", "/Users", "x", userData("bulk.m1@example.com"))}}},
		{name: "no operations", status: 400, scimType: "invalidValue", body: bulkReq(0)},
		{name: "negative failOnErrors", status: 400, scimType: "invalidValue", body: map[string]any{"schemas": []string{bulkReqURN}, "failOnErrors": -1,
			"Operations": []any{bulkOp("POST", "/Users", "x", userData("bulk.m1@example.com"))}}},
		{name: "malformed JSON", status: 400, scimType: "invalidSyntax", body: `{"schemas": [`},
	}
	for _, tc := range reqErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env.do(http.MethodPost, "/Bulk", tc.body).wantError(t, tc.status, tc.scimType, tc.fragments...)
			if n := env.countUsers(`userName sw "bulk.m"`); n != 0 {
				t.Errorf("rejected bulk request created %d users", n)
			}
		})
	}
}
