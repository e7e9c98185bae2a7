package scim_test

import (
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"testing"
)

// patchUserBase is the user every PATCH case starts from.
func patchUserBase() map[string]any {
	return map[string]any{
		"displayName": "Pat Ch",
		"title":       "Engineer",
		"active":      true,
		"name":        map[string]any{"givenName": "Pat", "familyName": "Ch", "formatted": "Pat Ch"},
		"emails": []any{
			map[string]any{"value": "pat@work.example", "type": "work", "primary": true},
			map[string]any{"value": "pat@home.example", "type": "home"},
		},
		enterpriseURN: map[string]any{"department": "Eng", "manager": map[string]any{"value": "mgr-1"}},
	}
}

func emailByType(doc map[string]any, typ string) map[string]any {
	list, _ := doc["emails"].([]any)
	for _, e := range list {
		if m, _ := e.(map[string]any); m["type"] == typ {
			return m
		}
	}
	return nil
}

func TestServerPatchUser(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	env.createUser("patch.taken@example.com", nil)

	cases := []struct {
		name      string
		ops       []map[string]any
		body      any    // overrides ops when set
		ifMatch   string // If-Match header
		status    int
		scimType  string   // for errors
		fragments []string // for errors
		noop      bool     // success without a new version
		check     func(t *testing.T, doc map[string]any)
	}{
		{
			name: "add without path", status: 200,
			ops: []map[string]any{op("add", "", map[string]any{
				"nickName": "Patty",
				"emails":   []any{map[string]any{"value": "pat@other.example", "type": "other"}},
			})},
			check: func(t *testing.T, doc map[string]any) {
				if doc["nickName"] != "Patty" {
					t.Errorf("nickName = %v", doc["nickName"])
				}
				if list, _ := doc["emails"].([]any); len(list) != 3 || get(list, 2, "value") != "pat@other.example" {
					t.Errorf("emails = %v, want the new one appended", doc["emails"])
				}
			},
		},
		{
			name: "replace without path merges complex values", status: 200,
			ops: []map[string]any{op("replace", "", map[string]any{
				"displayName": "P. Ch",
				"name":        map[string]any{"givenName": "Patricia"},
			})},
			check: func(t *testing.T, doc map[string]any) {
				want := map[string]any{"givenName": "Patricia", "familyName": "Ch", "formatted": "Pat Ch"}
				if doc["displayName"] != "P. Ch" || !reflect.DeepEqual(doc["name"], want) {
					t.Errorf("displayName = %v, name = %v; want P. Ch and %v", doc["displayName"], doc["name"], want)
				}
			},
		},
		{
			name: "replace with path", status: 200,
			ops: []map[string]any{op("replace", "displayName", "Patricia Ch")},
			check: func(t *testing.T, doc map[string]any) {
				if doc["displayName"] != "Patricia Ch" {
					t.Errorf("displayName = %v", doc["displayName"])
				}
			},
		},
		{
			name: "add with path to a single-valued attribute replaces it", status: 200,
			ops: []map[string]any{op("add", "title", "Staff Engineer")},
			check: func(t *testing.T, doc map[string]any) {
				if doc["title"] != "Staff Engineer" {
					t.Errorf("title = %v", doc["title"])
				}
			},
		},
		{
			name: "remove with path", status: 200,
			ops: []map[string]any{op("remove", "title", nil)},
			check: func(t *testing.T, doc map[string]any) {
				if _, ok := doc["title"]; ok {
					t.Errorf("title = %v after remove", doc["title"])
				}
			},
		},
		{
			name: "remove a multi-valued attribute", status: 200,
			ops: []map[string]any{op("remove", "emails", nil)},
			check: func(t *testing.T, doc map[string]any) {
				if _, ok := doc["emails"]; ok {
					t.Errorf("emails = %v after remove", doc["emails"])
				}
			},
		},
		{
			name: "remove with a value filter", status: 200,
			ops: []map[string]any{op("remove", `emails[type eq "home"]`, nil)},
			check: func(t *testing.T, doc map[string]any) {
				want := []any{map[string]any{"value": "pat@work.example", "type": "work", "primary": true}}
				if !reflect.DeepEqual(doc["emails"], want) {
					t.Errorf("emails = %v, want %v", doc["emails"], want)
				}
			},
		},
		{
			name: "replace a sub-attribute selected by a value filter", status: 200,
			ops: []map[string]any{op("replace", `emails[type eq "work"].value`, "pat.new@work.example")},
			check: func(t *testing.T, doc map[string]any) {
				if w := emailByType(doc, "work"); w["value"] != "pat.new@work.example" || w["primary"] != true {
					t.Errorf("work email = %v", w)
				}
				if h := emailByType(doc, "home"); h["value"] != "pat@home.example" {
					t.Errorf("home email = %v, must be untouched", h)
				}
			},
		},
		{
			name: "value filter on a boolean with an Entra string literal", status: 200,
			ops: []map[string]any{op("replace", `emails[primary eq "True"].value`, "primary@work.example")},
			check: func(t *testing.T, doc map[string]any) {
				if w := emailByType(doc, "work"); w["value"] != "primary@work.example" {
					t.Errorf("work email = %v", w)
				}
			},
		},
		{
			name: "primary moves to the value that gains it", status: 200,
			ops: []map[string]any{op("replace", `emails[type eq "home"].primary`, true)},
			check: func(t *testing.T, doc map[string]any) {
				if emailByType(doc, "home")["primary"] != true || emailByType(doc, "work")["primary"] == true {
					t.Errorf("emails = %v, want only home primary (RFC 7643 §2.4)", doc["emails"])
				}
			},
		},
		{
			name: "partial complex replace with path", status: 200,
			ops: []map[string]any{op("replace", "name", map[string]any{"familyName": "Changed"})},
			check: func(t *testing.T, doc map[string]any) {
				want := map[string]any{"givenName": "Pat", "familyName": "Changed", "formatted": "Pat Ch"}
				if !reflect.DeepEqual(doc["name"], want) {
					t.Errorf("name = %v, want %v", doc["name"], want)
				}
			},
		},
		{
			name: "sub-attribute path", status: 200,
			ops: []map[string]any{op("replace", "name.givenName", "Patrick")},
			check: func(t *testing.T, doc map[string]any) {
				if get(doc, "name", "givenName") != "Patrick" || get(doc, "name", "familyName") != "Ch" {
					t.Errorf("name = %v", doc["name"])
				}
			},
		},
		{
			name: "Entra capitalised op and boolean string", status: 200,
			ops: []map[string]any{{"op": "Replace", "path": "active", "value": "False"}},
			check: func(t *testing.T, doc map[string]any) {
				if doc["active"] != false {
					t.Errorf("active = %#v, want JSON false", doc["active"])
				}
			},
		},
		{
			name: "Entra Add of a filtered sub-attribute creates the value", status: 200,
			ops: []map[string]any{{"op": "Add", "path": `emails[type eq "other"].value`, "value": "pat@other.example"}},
			check: func(t *testing.T, doc map[string]any) {
				if o := emailByType(doc, "other"); !reflect.DeepEqual(o, map[string]any{"type": "other", "value": "pat@other.example"}) {
					t.Errorf("other email = %v", o)
				}
			},
		},
		{
			name: "Entra pathless Replace with URN-qualified keys", status: 200,
			ops: []map[string]any{{"op": "Replace", "value": map[string]any{
				enterpriseURN + ":department": "Sales",
				"name.familyName":             "Entra",
				"active":                      "false",
			}}},
			check: func(t *testing.T, doc map[string]any) {
				if get(doc, enterpriseURN, "department") != "Sales" || get(doc, "name", "familyName") != "Entra" || doc["active"] != false {
					t.Errorf("doc = %v", doc)
				}
			},
		},
		{
			name: "extension attribute path", status: 200,
			ops: []map[string]any{op("replace", enterpriseURN+":department", "Support")},
			check: func(t *testing.T, doc map[string]any) {
				if get(doc, enterpriseURN, "department") != "Support" || get(doc, enterpriseURN, "manager", "value") != "mgr-1" {
					t.Errorf("enterprise = %v", doc[enterpriseURN])
				}
			},
		},
		{
			name: "Entra bare manager id", status: 200,
			ops: []map[string]any{{"op": "Add", "path": enterpriseURN + ":manager", "value": "mgr-2"}},
			check: func(t *testing.T, doc map[string]any) {
				if !reflect.DeepEqual(get(doc, enterpriseURN, "manager"), map[string]any{"value": "mgr-2"}) {
					t.Errorf("manager = %v", get(doc, enterpriseURN, "manager"))
				}
			},
		},
		{
			name: "adding a lifecycle attribute lists its schema", status: 200,
			ops: []map[string]any{op("add", lifecycleURN+":startDate", "2026-04-01T00:00:00Z")},
			check: func(t *testing.T, doc map[string]any) {
				if get(doc, lifecycleURN, "startDate") != "2026-04-01T00:00:00Z" {
					t.Errorf("lifecycle = %v", doc[lifecycleURN])
				}
				if !reflect.DeepEqual(doc["schemas"], []any{userURN, enterpriseURN, lifecycleURN}) {
					t.Errorf("schemas = %v", doc["schemas"])
				}
			},
		},
		{
			name: "removing the last extension attribute drops its schema", status: 200,
			ops: []map[string]any{op("remove", enterpriseURN, nil)},
			check: func(t *testing.T, doc map[string]any) {
				if doc[enterpriseURN] != nil || !reflect.DeepEqual(doc["schemas"], []any{userURN}) {
					t.Errorf("enterprise = %v, schemas = %v", doc[enterpriseURN], doc["schemas"])
				}
			},
		},
		{
			name: "several operations, one version", status: 200,
			ops: []map[string]any{op("replace", "displayName", "Two Ops"), op("remove", "title", nil)},
			check: func(t *testing.T, doc map[string]any) {
				if doc["displayName"] != "Two Ops" || doc["title"] != nil {
					t.Errorf("doc = %v", doc)
				}
			},
		},
		{
			name: "replace a filtered value with an object merges into it", status: 200,
			ops: []map[string]any{op("replace", `emails[type eq "work"]`, map[string]any{"display": "Work mail"})},
			check: func(t *testing.T, doc map[string]any) {
				want := map[string]any{"value": "pat@work.example", "type": "work", "primary": true, "display": "Work mail"}
				if w := emailByType(doc, "work"); !reflect.DeepEqual(w, want) {
					t.Errorf("work email = %v, want %v", w, want)
				}
			},
		},
		{name: "adding a value already present is a no-op", status: 200, noop: true,
			ops: []map[string]any{op("add", "emails", []any{map[string]any{"value": "pat@home.example", "type": "home"}})}},
		{name: "replace with an Entra boolean equal to the current value is a no-op", status: 200, noop: true,
			ops: []map[string]any{{"op": "Replace", "path": "active", "value": "True"}}},
		{name: "If-Match current", ifMatch: `W/"1"`, status: 200, ops: []map[string]any{op("replace", "title", "Lead")}},
		{name: "replace with the current value is a no-op", status: 200, noop: true, ops: []map[string]any{op("replace", "displayName", "Pat Ch")}},
		{name: "remove of an unassigned attribute is a no-op", status: 200, noop: true, ops: []map[string]any{op("remove", "nickName", nil)}},
		{name: "password change is accepted but not stored", status: 200, noop: true, ops: []map[string]any{op("replace", "password", "n3w-Secret!")}},
		{name: "readOnly keys without path are ignored", status: 200, noop: true, ops: []map[string]any{op("replace", "", map[string]any{"id": "x", "meta": map[string]any{}, "displayName": "Pat Ch"})}},

		// Errors: the resource must come out unchanged.
		{
			name: "atomic: a later invalid path undoes earlier operations", status: 400, scimType: "invalidPath", fragments: []string{"operation 2", "noSuchAttr"},
			ops: []map[string]any{op("replace", "displayName", "Changed"), op("replace", "noSuchAttr", "x")},
		},
		{
			name: "atomic: a later noTarget undoes earlier operations", status: 400, scimType: "noTarget", fragments: []string{"operation 2"},
			ops: []map[string]any{op("add", "title", "T2"), op("replace", `emails[type eq "fax"].value`, "x@fax.example")},
		},
		// The patch package makes this idempotent (Okta retries removals);
		// its package comment still says noTarget, see the report.
		{name: "remove with a filter matching nothing is a no-op", status: 200, noop: true, ops: []map[string]any{op("remove", `emails[type eq "fax"]`, nil)}},
		{name: "replace with a filter matching nothing", status: 400, scimType: "noTarget", ops: []map[string]any{op("replace", `emails[type eq "fax"].value`, "x@fax.example")}},
		{name: "remove without path", status: 400, scimType: "noTarget", ops: []map[string]any{op("remove", "", nil)}},
		{name: "malformed path", status: 400, scimType: "invalidPath", ops: []map[string]any{op("replace", `emails[type eq`, "x")}},
		{name: "unknown sub-attribute", status: 400, scimType: "invalidPath", fragments: []string{"shoeSize"}, ops: []map[string]any{op("replace", "name.shoeSize", "x")}},
		{name: "value filter on a single-valued attribute", status: 400, scimType: "invalidPath", ops: []map[string]any{op("replace", `title[value eq "x"]`, "y")}},
		{name: "unknown attribute in a value filter", status: 400, scimType: "invalidFilter", fragments: []string{"shoeSize"}, ops: []map[string]any{op("remove", `emails[shoeSize eq "x"]`, nil)}},
		{name: "readOnly path", status: 400, scimType: "mutability", fragments: []string{`"id"`}, ops: []map[string]any{op("replace", "id", "x")}},
		{name: "removing a required attribute", status: 400, scimType: "mutability", fragments: []string{"userName"}, ops: []map[string]any{op("remove", "userName", nil)}},
		{name: "wrong value type", status: 400, scimType: "invalidValue", fragments: []string{`"active"`}, ops: []map[string]any{op("replace", "active", "maybe")}},
		{name: "unknown op", status: 400, scimType: "invalidSyntax", fragments: []string{"merge"}, ops: []map[string]any{op("merge", "title", "x")}},
		{name: "value required", status: 400, scimType: "invalidValue", ops: []map[string]any{op("add", "title", nil)}},
		{name: "missing PatchOp schema", status: 400, scimType: "invalidSyntax", fragments: []string{patchURN},
			body: map[string]any{"Operations": []any{op("replace", "title", "x")}}},
		{name: "no operations", status: 400, scimType: "invalidSyntax", body: map[string]any{"schemas": []string{patchURN}, "Operations": []any{}}},
		{name: "malformed JSON", status: 400, scimType: "invalidSyntax", body: `{"schemas": [`},
		{name: "userName taken", status: 409, scimType: "uniqueness", ops: []map[string]any{op("replace", "userName", "Patch.Taken@example.com")}},
		{name: "If-Match stale", ifMatch: `W/"0"`, status: 412, scimType: "", ops: []map[string]any{op("replace", "title", "Lead")}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := env.createUser("patch"+strconv.Itoa(i)+"@example.com", patchUserBase())
			id := idOf(u)
			var body any = patchOps(tc.ops...)
			if tc.body != nil {
				body = tc.body
			}
			var hdr []string
			if tc.ifMatch != "" {
				hdr = []string{"If-Match", tc.ifMatch}
			}
			r := env.do(http.MethodPatch, "/Users/"+id, body, hdr...)
			after := env.do(http.MethodGet, "/Users/"+id, nil).want(t, http.StatusOK)
			if tc.status >= 400 {
				r.wantError(t, tc.status, tc.scimType, tc.fragments...)
				if !reflect.DeepEqual(after.Body, u) {
					t.Errorf("failed PATCH changed the resource:\nbefore %v\nafter  %s", u, after.Raw)
				}
				return
			}
			r.want(t, tc.status)
			if !reflect.DeepEqual(after.Body, r.Body) {
				t.Errorf("GET after PATCH differs from the PATCH response:\nGET   %s\nPATCH %s", after.Raw, r.Raw)
			}
			wantVersion := `W/"2"`
			if tc.noop {
				wantVersion = `W/"1"`
				if !reflect.DeepEqual(r.Body, u) {
					t.Errorf("no-op PATCH changed the resource:\nbefore %v\nafter  %s", u, r.Raw)
				}
			} else if metaOf(r.Body, "lastModified") <= metaOf(u, "lastModified") {
				t.Errorf("lastModified %q not after %q", metaOf(r.Body, "lastModified"), metaOf(u, "lastModified"))
			}
			if v := metaOf(r.Body, "version"); v != wantVersion || r.Header.Get("ETag") != wantVersion {
				t.Errorf("version = %q, ETag = %q, want %s", v, r.Header.Get("ETag"), wantVersion)
			}
			if r.Body["userName"] != "patch"+strconv.Itoa(i)+"@example.com" {
				t.Errorf("userName = %v", r.Body["userName"])
			}
			if tc.check != nil {
				tc.check(t, r.Body)
			}
		})
	}

	t.Run("missing resource", func(t *testing.T) {
		t.Parallel()
		env.do(http.MethodPatch, "/Users/nope", patchOps(op("replace", "title", "x"))).wantError(t, 404, "", "nope")
	})

	t.Run("attributes on the PATCH response", func(t *testing.T) {
		t.Parallel()
		u := env.createUser("patch.proj@example.com", patchUserBase())
		r := env.do(http.MethodPatch, "/Users/"+idOf(u)+"?attributes=title", patchOps(op("replace", "title", "CTO"))).want(t, 200)
		if got := keys(r.Body); !reflect.DeepEqual(got, []string{"id", "schemas", "title"}) {
			t.Errorf("keys = %v", got)
		}
	})
}

func TestServerPatchGroupMembers(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)

	memberIDs := func(t *testing.T, doc map[string]any) []string {
		t.Helper()
		var ids []string
		list, _ := doc["members"].([]any)
		for _, m := range list {
			ids = append(ids, get(m, "value").(string))
		}
		return ids
	}
	type setup struct {
		env       *srvEnv
		a, b, c   string // user ids; a and b start as members
		sub       string // a group id, not a member
		group     map[string]any
		groupID   string
		groupName string
	}
	// The users and the sub-group are shared; each case gets its own group.
	shared := setup{
		a:   idOf(env.createUser("gm-a@example.com", nil)),
		b:   idOf(env.createUser("gm-b@example.com", nil)),
		c:   idOf(env.createUser("gm-c@example.com", nil)),
		sub: idOf(env.createGroup("gm-sub")),
	}
	mk := func(t *testing.T, n int) *setup {
		s := shared
		s.env = env
		s.groupName = "gm" + strconv.Itoa(n)
		s.group = env.createGroup(s.groupName, s.a, s.b)
		s.groupID = idOf(s.group)
		return &s
	}
	sorted := func(ids ...string) []string {
		out := append([]string(nil), ids...)
		sort.Strings(out)
		return out
	}

	cases := []struct {
		name      string
		ops       func(s *setup) []map[string]any
		status    int
		scimType  string
		fragments func(s *setup) []string
		noop      bool
		want      func(s *setup) []string // member ids after
	}{
		{
			name: "add a member", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": s.c}})}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b, s.c) },
		},
		{
			name: "add a group as a member", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": s.sub, "type": "Group"}})}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b, s.sub) },
		},
		{
			name: "add members without path (Okta)", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{{"op": "add", "value": map[string]any{"members": []any{map[string]any{"value": s.c, "display": "C"}}}}}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b, s.c) },
		},
		{
			name: "adding an existing member is a no-op", status: 200, noop: true,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": s.a}})}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b) },
		},
		{
			name: "remove a member by value filter", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("remove", `members[value eq "`+s.a+`"]`, nil)}
			},
			want: func(s *setup) []string { return sorted(s.b) },
		},
		{
			name: "Entra Remove with a value array", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": s.b}}}}
			},
			want: func(s *setup) []string { return sorted(s.a) },
		},
		{
			name: "Entra Remove of a non-member is a no-op", status: 200, noop: true,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": s.c}}}}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b) },
		},
		{
			name: "remove all members", status: 200,
			ops:  func(s *setup) []map[string]any { return []map[string]any{op("remove", "members", nil)} },
			want: func(s *setup) []string { return nil },
		},
		{
			name: "replace members", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("replace", "members", []any{map[string]any{"value": s.c}})}
			},
			want: func(s *setup) []string { return sorted(s.c) },
		},
		{
			name: "Okta rename ignores the id in the value", status: 200,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("replace", "", map[string]any{"id": s.groupID, "displayName": s.groupName + "-renamed"})}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b) },
		},
		{
			name: "unknown member id", status: 400, scimType: "invalidValue",
			fragments: func(s *setup) []string { return []string{"00000000-0000-4000-8000-00000000dead"} },
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": "00000000-0000-4000-8000-00000000dead"}})}
			},
		},
		{
			name: "member type that is not the resource's", status: 400, scimType: "invalidValue",
			fragments: func(s *setup) []string { return []string{s.c} },
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": s.c, "type": "Group"}})}
			},
		},
		{
			name: "a group cannot contain itself", status: 400, scimType: "invalidValue",
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("add", "members", []any{map[string]any{"value": s.groupID}})}
			},
		},
		{
			name: "atomic: valid add then unknown member", status: 400, scimType: "invalidValue",
			ops: func(s *setup) []map[string]any {
				return []map[string]any{
					op("add", "members", []any{map[string]any{"value": s.c}}),
					op("add", "members", []any{map[string]any{"value": "nobody"}}),
				}
			},
		},
		{
			name: "remove by a filter matching no member is a no-op (Okta retries)", status: 200, noop: true,
			ops: func(s *setup) []map[string]any {
				return []map[string]any{op("remove", `members[value eq "`+s.c+`"]`, nil)}
			},
			want: func(s *setup) []string { return sorted(s.a, s.b) },
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mk(t, i)
			r := env.do(http.MethodPatch, "/Groups/"+s.groupID, patchOps(tc.ops(s)...))
			after := env.do(http.MethodGet, "/Groups/"+s.groupID, nil).want(t, 200)
			if tc.status >= 400 {
				var frags []string
				if tc.fragments != nil {
					frags = tc.fragments(s)
				}
				r.wantError(t, tc.status, tc.scimType, frags...)
				if !reflect.DeepEqual(after.Body, s.group) {
					t.Errorf("failed PATCH changed the group:\nbefore %v\nafter  %s", s.group, after.Raw)
				}
				return
			}
			r.want(t, tc.status)
			if !reflect.DeepEqual(after.Body, r.Body) {
				t.Errorf("GET after PATCH = %s\nPATCH response = %s", after.Raw, r.Raw)
			}
			got := memberIDs(t, r.Body)
			sort.Strings(got)
			if want := tc.want(s); !reflect.DeepEqual(got, want) {
				t.Errorf("members = %v, want %v", got, want)
			}
			wantVersion := `W/"2"`
			if tc.noop {
				wantVersion = `W/"1"`
			}
			if v := metaOf(r.Body, "version"); v != wantVersion {
				t.Errorf("version = %q, want %s", v, wantVersion)
			}
			// Membership is visible from the users' side too.
			for _, id := range []string{s.a, s.b, s.c} {
				u := env.do(http.MethodGet, "/Users/"+id, nil).want(t, 200)
				in := false
				for _, g := range asList(u.Body["groups"]) {
					if get(g, "value") == s.groupID {
						in = true
					}
				}
				if want := contains(got, id); in != want {
					t.Errorf("user %s lists the group: %v, want %v", id, in, want)
				}
			}
		})
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
