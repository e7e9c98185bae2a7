package patch_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/patch"
	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

var reg = schema.New()

const (
	ent = schema.EnterpriseURN
	lc  = schema.LifecycleURN
)

// userDoc is a stored User: core, enterprise and lifecycle attributes, as
// resource.Normalize produced them, plus the server's id and meta.
const userDoc = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "` + ent + `", "` + lc + `"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "meta": {"resourceType": "User", "created": "2026-01-05T10:00:00Z", "lastModified": "2026-01-05T10:00:00Z"},
  "externalId": "701984",
  "userName": "bjensen@example.com",
  "name": {"givenName": "Barbara", "familyName": "Jensen"},
  "displayName": "Babs Jensen",
  "title": "Tour Guide",
  "active": true,
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "` + ent + `": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915", "$ref": "https://gw/scim/v2/Users/26118915"}},
  "` + lc + `": {"startDate": "2026-01-05T00:00:00Z"}
}`

// groupDoc is a stored Group with members as the server hands them to
// Apply.
const groupDoc = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
  "displayName": "Tour Guides",
  "members": [{"value": "u1", "type": "User", "display": "Ann"}, {"value": "u2", "type": "User"}]
}`

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func ops(t testing.TB, s string) []patch.Operation {
	t.Helper()
	var o []patch.Operation
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		t.Fatalf("ops %s: %v", s, err)
	}
	return o
}

func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// edit returns the JSON of base after f changed it, so expectations state
// only what an operation changes.
func edit(t testing.TB, base string, f func(m map[string]any)) string {
	t.Helper()
	m := decode(t, base)
	f(m)
	return canon(t, m)
}

func obj(v any) map[string]any { return v.(map[string]any) }
func arr(v any) []any          { return v.([]any) }

type wantErr struct {
	typ    serr.ScimType
	detail string
}

type applyCase struct {
	name    string
	rt      *schema.ResourceType
	doc     string
	ops     string
	want    string // expected result; "" when an error is expected
	err     *wantErr
	changed bool
}

func runCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := decode(t, tc.doc)
			before := resource.Clone(doc)
			got, changed, err := patch.Apply(tc.rt, doc, ops(t, tc.ops))
			if !reflect.DeepEqual(doc, before) {
				t.Fatalf("input was modified:\n%s", canon(t, doc))
			}
			if tc.err != nil {
				if got != nil || changed {
					t.Errorf("error case returned a document (changed=%v)", changed)
				}
				var se *serr.ScimError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v (%T), want *ScimError %s", err, err, tc.err.typ)
				}
				if se.Status != 400 || se.ScimType != tc.err.typ || !strings.Contains(se.Detail, tc.err.detail) {
					t.Errorf("err = %d %s %q\nwant 400 %s containing %q", se.Status, se.ScimType, se.Detail, tc.err.typ, tc.err.detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if g, w := canon(t, got), canon(t, decode(t, tc.want)); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			// What PATCH produced must pass the same validation as PUT.
			if _, err := resource.Normalize(tc.rt, got, resource.Replace); err != nil {
				t.Errorf("Normalize(result): %v", err)
			}
		})
	}
}

func TestApplyUser(t *testing.T) {
	t.Parallel()
	u := func(f func(m map[string]any)) string { return edit(t, userDoc, f) }
	entOf := func(m map[string]any) map[string]any { return obj(m[ent]) }
	emails := func(m map[string]any) []any { return arr(m["emails"]) }
	cases := []applyCase{
		// Microsoft Entra ID, learn.microsoft.com "Update User [Multi-valued properties]".
		{name: "entra: replace filtered email value and name.familyName", ops: `[
			{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
			{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]`,
			want: u(func(m map[string]any) {
				obj(emails(m)[0])["value"] = "updatedEmail@microsoft.com"
				obj(m["name"])["familyName"] = "updatedFamilyName"
			}), changed: true},
		// "Update User [Single-valued properties]".
		{name: "entra: replace userName", ops: `[{"op": "Replace", "path": "userName", "value": "5b50642d@testuser.com"}]`,
			want: u(func(m map[string]any) { m["userName"] = "5b50642d@testuser.com" }), changed: true},
		// "Disable User".
		{name: "entra: disable user", ops: `[{"op": "Replace", "path": "active", "value": false}]`,
			want: u(func(m map[string]any) { m["active"] = false }), changed: true},
		{name: "entra: active as the string False", ops: `[{"op": "Replace", "path": "active", "value": "False"}]`,
			want: u(func(m map[string]any) { m["active"] = false }), changed: true},
		{name: "entra: core-URN-qualified path", ops: `[{"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:active", "value": "False"}]`,
			want: u(func(m map[string]any) { m["active"] = false }), changed: true},
		{name: "okta: deactivate without path", ops: `[{"op": "replace", "value": {"active": false}}]`,
			want: u(func(m map[string]any) { m["active"] = false }), changed: true},
		{name: "setting a value to what it is is no change", ops: `[{"op": "replace", "value": {"active": "True", "title": "Tour Guide"}}]`,
			want: userDoc, changed: false},
		{name: "no path: dotted, URN-qualified and bare-manager keys", ops: `[{"op": "Replace", "value": {
				"name.givenName": "Babs", "` + ent + `:department": "Sales", "` + ent + `:manager": "m2", "Title": "Lead"}}]`,
			want: u(func(m map[string]any) {
				obj(m["name"])["givenName"] = "Babs"
				m["title"] = "Lead"
				entOf(m)["department"] = "Sales"
				entOf(m)["manager"] = map[string]any{"value": "m2"}
			}), changed: true},
		{name: "no path: extension object merges into the extension", ops: `[{"op": "add", "value": {"` + ent + `": {"costCenter": "4130", "manager": {"displayName": "ignored, readOnly"}}}}]`,
			want: u(func(m map[string]any) { entOf(m)["costCenter"] = "4130" }), changed: true},
		{name: "no path: readOnly id and meta and schemas are ignored", ops: `[{"op": "replace", "value": {"id": "other", "meta": {"created": "x"}, "schemas": ["nonsense"], "nickName": "Babs"}}]`,
			want: u(func(m map[string]any) { m["nickName"] = "Babs" }), changed: true},
		{name: "entra: add manager as a bare id replaces the reference", ops: `[{"op": "Add", "path": "` + ent + `:manager", "value": "2819c223-7f76-453a-919d-413861904647"}]`,
			want: u(func(m map[string]any) {
				entOf(m)["manager"] = map[string]any{"value": "2819c223-7f76-453a-919d-413861904647"}
			}), changed: true},
		{name: "entra: replace manager with an object", ops: `[{"op": "replace", "path": "` + ent + `:manager", "value": {"value": "915f96af"}}]`,
			want: u(func(m map[string]any) { entOf(m)["manager"] = map[string]any{"value": "915f96af"} }), changed: true},
		{name: "entra: remove manager", ops: `[{"op": "Remove", "path": "` + ent + `:manager"}]`,
			want: u(func(m map[string]any) { delete(entOf(m), "manager") }), changed: true},
		{name: "entra: manager set to the empty string is removed", ops: `[{"op": "Replace", "path": "` + ent + `:manager", "value": ""}]`,
			want: u(func(m map[string]any) { delete(entOf(m), "manager") }), changed: true},
		{name: "remove manager.value drops the manager", ops: `[{"op": "remove", "path": "` + ent + `:manager.value"}]`,
			want: u(func(m map[string]any) { delete(entOf(m), "manager") }), changed: true},
		{name: "replace complex name merges sub-attributes", ops: `[{"op": "replace", "path": "name", "value": {"givenName": "Babs", "middleName": "J"}}]`,
			want: u(func(m map[string]any) {
				obj(m["name"])["givenName"] = "Babs"
				obj(m["name"])["middleName"] = "J"
			}), changed: true},
		{name: "null sub-attributes in a complex value unassign them", ops: `[{"op": "replace", "path": "name", "value": {"givenName": null, "formatted": "B. Jensen"}}]`,
			want: u(func(m map[string]any) {
				delete(obj(m["name"]), "givenName")
				obj(m["name"])["formatted"] = "B. Jensen"
			}), changed: true},
		{name: "null sub-attribute in a filtered merge unassigns it", ops: `[{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"primary": null, "display": "W"}}]`,
			want: u(func(m map[string]any) {
				delete(obj(emails(m)[0]), "primary")
				obj(emails(m)[0])["display"] = "W"
			}), changed: true},
		{name: "add sub-attribute to an absent complex attribute", ops: `[{"op": "add", "path": "name.honorificPrefix", "value": "Ms."}]`,
			want: u(func(m map[string]any) { obj(m["name"])["honorificPrefix"] = "Ms." }), changed: true},
		{name: "add email appends", ops: `[{"op": "add", "path": "emails", "value": [{"value": "b@x.org", "type": "other"}]}]`,
			want: u(func(m map[string]any) {
				m["emails"] = append(emails(m), map[string]any{"value": "b@x.org", "type": "other"})
			}), changed: true},
		{name: "add a single object to a multi-valued attribute", ops: `[{"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555 0100", "type": "work"}}]`,
			want: u(func(m map[string]any) {
				m["phoneNumbers"] = []any{map[string]any{"value": "+1 555 0100", "type": "work"}}
			}), changed: true},
		{name: "add an email that is already there is no change", ops: `[{"op": "add", "path": "emails", "value": [{"value": "BABS@jensen.org", "type": "home"}]}]`,
			want: userDoc, changed: false},
		{name: "add a primary email clears the old primary", ops: `[{"op": "add", "path": "emails", "value": [{"value": "new@x.org", "type": "work", "primary": "True"}]}]`,
			want: u(func(m map[string]any) {
				obj(emails(m)[0])["primary"] = false
				m["emails"] = append(emails(m), map[string]any{"value": "new@x.org", "type": "work", "primary": true})
			}), changed: true},
		{name: "setting primary through a filter clears the others", ops: `[{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]`,
			want: u(func(m map[string]any) {
				obj(emails(m)[0])["primary"] = false
				obj(emails(m)[1])["primary"] = true
			}), changed: true},
		{name: "replace multi-valued without filter replaces the array", ops: `[{"op": "replace", "path": "emails", "value": [{"value": "only@x.org", "primary": true}]}]`,
			want: u(func(m map[string]any) {
				m["emails"] = []any{map[string]any{"value": "only@x.org", "primary": true}}
			}), changed: true},
		{name: "replace filtered element with an object merges into it", ops: `[{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"display": "Work", "value": "w@x.org"}}]`,
			want: u(func(m map[string]any) {
				obj(emails(m)[0])["display"] = "Work"
				obj(emails(m)[0])["value"] = "w@x.org"
			}), changed: true},
		{name: "entra: add with a filter that matches nothing creates the value", ops: `[
			{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"},
			{"op": "Add", "path": "emails[type eq \"other\"].value", "value": "o@x.org"}]`,
			want: u(func(m map[string]any) {
				m["phoneNumbers"] = []any{map[string]any{"type": "mobile", "value": "+1 555 0199"}}
				m["emails"] = append(emails(m), map[string]any{"type": "other", "value": "o@x.org"})
			}), changed: true},
		{name: "entra validator: roles[primary eq \"True\"] creates a primary role", ops: `[
			{"op": "add", "path": "roles[primary eq \"True\"].display", "value": "Reader"},
			{"op": "add", "path": "roles[primary eq \"True\"].value", "value": "r1"},
			{"op": "add", "path": "addresses[type eq \"work\" and country eq \"NL\"].locality", "value": "Utrecht"}]`,
			want: u(func(m map[string]any) {
				m["roles"] = []any{map[string]any{"primary": true, "display": "Reader", "value": "r1"}}
				m["addresses"] = []any{map[string]any{"type": "work", "country": "NL", "locality": "Utrecht"}}
			}), changed: true},
		{name: "add with a filter that matches sets the sub-attribute", ops: `[{"op": "add", "path": "emails[type eq \"work\"].display", "value": "Office"}]`,
			want: u(func(m map[string]any) { obj(emails(m)[0])["display"] = "Office" }), changed: true},
		{name: "remove filtered element", ops: `[{"op": "remove", "path": "emails[type eq \"home\"]"}]`,
			want: u(func(m map[string]any) { m["emails"] = emails(m)[:1] }), changed: true},
		{name: "remove the last element unassigns the attribute", ops: `[{"op": "remove", "path": "emails[value pr]"}]`,
			want: u(func(m map[string]any) { delete(m, "emails") }), changed: true},
		{name: "remove sub-attribute of filtered elements", ops: `[{"op": "remove", "path": "emails[type eq \"work\"].primary"}]`,
			want: u(func(m map[string]any) { delete(obj(emails(m)[0]), "primary") }), changed: true},
		{name: "remove listed values", ops: `[{"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org"}, {"value": "absent@x.org"}]}]`,
			want: u(func(m map[string]any) { m["emails"] = emails(m)[:1] }), changed: true},
		{name: "remove an unassigned attribute is no change", ops: `[{"op": "remove", "path": "nickName"}, {"op": "remove", "path": "name.middleName"}]`,
			want: userDoc, changed: false},
		{name: "remove a whole extension", ops: `[{"op": "remove", "path": "` + lc + `"}]`,
			want: u(func(m map[string]any) { delete(m, lc) }), changed: true},
		{name: "remove the last extension attribute drops the extension", ops: `[{"op": "remove", "path": "` + lc + `:startDate"}]`,
			want: u(func(m map[string]any) { delete(m, lc) }), changed: true},
		{name: "leaver: set lifecycle endDate", ops: `[{"op": "add", "path": "` + lc + `:endDate", "value": "2026-06-30T17:00:00Z"}]`,
			want: u(func(m map[string]any) { obj(m[lc])["endDate"] = "2026-06-30T17:00:00Z" }), changed: true},
		{name: "replace with null unassigns", ops: `[{"op": "replace", "path": "title", "value": null}]`,
			want: u(func(m map[string]any) { delete(m, "title") }), changed: true},
		{name: "add then remove is no change", ops: `[{"op": "add", "path": "nickName", "value": "B"}, {"op": "remove", "path": "nickName"}]`,
			want: userDoc, changed: false},

		{name: "unknown op", ops: `[{"op": "move", "path": "title", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidSyntax, `operation 1 ("move" "title"): unknown op "move"`}},
		{name: "unknown op is named", ops: `[{"op": "add", "path": "title", "value": "x"}, {"op": "copy", "path": "title"}]`,
			err: &wantErr{serr.ScimTypeInvalidSyntax, `operation 2 ("copy" "title"): unknown op "copy"; want add, replace or remove`}},
		{name: "replace with a filter that matches nothing", ops: `[{"op": "replace", "path": "nickName", "value": "B"}, {"op": "replace", "path": "emails[type eq \"other\"].value", "value": "o@x"}]`,
			err: &wantErr{serr.ScimTypeNoTarget, `operation 2 (replace "emails[type eq \"other\"].value"): no value of "emails" matches the filter`}},
		{name: "add with a non-equality filter that matches nothing", ops: `[{"op": "add", "path": "emails[value co \"@nowhere\"].display", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeNoTarget, `operation 1 (add "emails[value co \"@nowhere\"].display"): no value of "emails" matches the filter, and the filter does not describe a value to create`}},
		{name: "remove with a filter that matches nothing is a no-op", ops: `[{"op": "remove", "path": "emails[type eq \"other\"]"}]`,
			want: u(func(map[string]any) {}), changed: false},
		{name: "remove without path", ops: `[{"op": "remove"}]`,
			err: &wantErr{serr.ScimTypeNoTarget, `operation 1 (remove without path): remove requires a path`}},
		{name: "remove required userName", ops: `[{"op": "remove", "path": "userName"}]`,
			err: &wantErr{serr.ScimTypeMutability, `operation 1 (remove "userName"): attribute "userName" is required and cannot be removed`}},
		{name: "replace userName with null", ops: `[{"op": "replace", "path": "userName", "value": null}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "userName" is required`}},
		{name: "replace id", ops: `[{"op": "replace", "path": "id", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeMutability, `operation 1 (replace "id"): attribute "id" is readOnly`}},
		{name: "add groups", ops: `[{"op": "add", "path": "groups", "value": [{"value": "g1"}]}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "groups" is readOnly`}},
		{name: "replace meta.lastModified", ops: `[{"op": "replace", "path": "meta.lastModified", "value": "2026-01-01T00:00:00Z"}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "meta.lastModified" is readOnly`}},
		{name: "replace manager.displayName", ops: `[{"op": "replace", "path": "` + ent + `:manager.displayName", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "` + ent + `:manager.displayName" is readOnly`}},
		{name: "replace schemas", ops: `[{"op": "add", "path": "schemas", "value": ["` + ent + `"]}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "schemas" is maintained by the server`}},
		{name: "malformed path", ops: `[{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `operation 1 (replace "emails[type eq \"work\""): invalid path at position`}},
		{name: "unknown attribute in path", ops: `[{"op": "replace", "path": "fooBar", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `operation 1 (replace "fooBar"): unknown attribute "fooBar"`}},
		{name: "unknown sub-attribute in path", ops: `[{"op": "replace", "path": "name.nick", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `unknown sub-attribute "nick" of "name"`}},
		{name: "unknown sub-attribute after filter", ops: `[{"op": "replace", "path": "emails[type eq \"work\"].nick", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `unknown sub-attribute "nick" of "emails"`}},
		{name: "unknown extension attribute", ops: `[{"op": "add", "path": "` + ent + `:badge", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `unknown attribute "badge" in schema ` + ent}},
		{name: "filter on a single-valued attribute", ops: `[{"op": "replace", "path": "name[givenName eq \"B\"].familyName", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `attribute "name" is not multi-valued and complex`}},
		{name: "sub-attribute of a multi-valued attribute without filter", ops: `[{"op": "replace", "path": "emails.value", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `attribute "emails" is multi-valued: select its values with a filter`}},
		{name: "filter on an unknown sub-attribute", ops: `[{"op": "remove", "path": "emails[kind eq \"work\"]"}]`,
			err: &wantErr{serr.ScimTypeInvalidFilter, `operation 1 (remove "emails[kind eq \"work\"]"): cannot filter on "emails.kind"`}},
		{name: "filter literal of the wrong type", ops: `[{"op": "remove", "path": "emails[primary eq \"maybe\"]"}]`,
			err: &wantErr{serr.ScimTypeInvalidFilter, `operation 1 (remove`}},
		{name: "wrong type for a string", ops: `[{"op": "replace", "path": "title", "value": 7}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (replace "title"): attribute "title": expected string, got number`}},
		{name: "wrong type for a boolean", ops: `[{"op": "replace", "value": {"active": "no"}}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (replace without path): attribute "active": expected boolean, got string`}},
		{name: "string where a complex value is expected", ops: `[{"op": "replace", "path": "name", "value": "Barbara"}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `attribute "name": expected complex (object), got string`}},
		{name: "string element for a complex multi-valued attribute", ops: `[{"op": "add", "path": "emails", "value": ["b@x.org"]}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `attribute "emails[0]": expected complex (object), got string`}},
		{name: "string for a filtered element", ops: `[{"op": "replace", "path": "emails[type eq \"work\"]", "value": "w@x.org"}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `expected complex (object), got string`}},
		{name: "bad dateTime", ops: `[{"op": "replace", "path": "` + lc + `:endDate", "value": "30/06/2026"}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `expected dateTime`}},
		{name: "no path with a non-object value", ops: `[{"op": "add", "value": ["x"]}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (add without path): without a path, value must be an object of attributes, got array`}},
		{name: "no path with one attribute in two spellings", ops: `[{"op": "add", "value": {"title": "a", "Title": "b"}}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (add without path): attribute "title" given more than once (as "Title" and "title")`}},
		{name: "no path with an unknown attribute", ops: `[{"op": "add", "value": {"fooBar": 1}}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (add without path): unknown attribute "fooBar"`}},
		{name: "add without value", ops: `[{"op": "add", "path": "title"}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `operation 1 (add "title"): value is required`}},
		{name: "two values made primary", ops: `[{"op": "replace", "path": "emails[value pr].primary", "value": true}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `the filter selects 2 values of "emails" and at most one may be primary`}},
		{name: "two primaries added at once", ops: `[{"op": "add", "path": "emails", "value": [{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}]`,
			err: &wantErr{serr.ScimTypeInvalidValue, `2 values are marked "primary": true`}},
	}
	for i := range cases {
		cases[i].rt, cases[i].doc = reg.User, userDoc
	}
	runCases(t, cases)
}

func TestApplyGroup(t *testing.T) {
	t.Parallel()
	g := func(f func(m map[string]any)) string { return edit(t, groupDoc, f) }
	members := func(m map[string]any) []any { return arr(m["members"]) }
	cases := []applyCase{
		// learn.microsoft.com "Update Group [Add Members]".
		{name: "entra: add member", ops: `[{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]`,
			want: g(func(m map[string]any) {
				m["members"] = append(members(m), map[string]any{"value": "f648f8d5ea4e4cd38e9c"})
			}), changed: true},
		{name: "entra: adding an existing member is no change", ops: `[{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}]}]`,
			want: groupDoc, changed: false},
		// "Update Group [Remove Members]".
		{name: "entra: remove members listed in value", ops: `[{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"value": "u2"}]}]`,
			want: g(func(m map[string]any) { delete(m, "members") }), changed: true},
		{name: "entra: removing an absent member is no change", ops: `[{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u9"}]}]`,
			want: groupDoc, changed: false},
		// "Update Group [Non-member attributes]".
		{name: "entra: replace displayName", ops: `[{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]`,
			want: g(func(m map[string]any) { m["displayName"] = "1879db59updatedDisplayName" }), changed: true},
		// Okta: group rename sends the id along; member removal uses a filter.
		{name: "okta: rename without path ignores the id", ops: `[{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}}]`,
			want: g(func(m map[string]any) { m["displayName"] = "Test SCIMv2" }), changed: true},
		{name: "okta: remove member by filter", ops: `[{"op": "remove", "path": "members[value eq \"u2\"]"}]`,
			want: g(func(m map[string]any) { m["members"] = members(m)[:1] }), changed: true},
		{name: "okta: add members", ops: `[{"op": "add", "path": "members", "value": [{"value": "u3", "display": "Cy"}, {"value": "u2", "display": "Bo"}]}]`,
			want: g(func(m map[string]any) {
				m["members"] = append(members(m), map[string]any{"value": "u3", "display": "Cy"})
			}), changed: true},
		{name: "add a single member object", ops: `[{"op": "add", "path": "members", "value": {"value": "u3"}}]`,
			want: g(func(m map[string]any) { m["members"] = append(members(m), map[string]any{"value": "u3"}) }), changed: true},
		{name: "replace all members", ops: `[{"op": "replace", "path": "members", "value": [{"value": "u3"}]}]`,
			want: g(func(m map[string]any) { m["members"] = []any{map[string]any{"value": "u3"}} }), changed: true},
		{name: "replace members with an empty array unassigns them", ops: `[{"op": "replace", "path": "members", "value": []}]`,
			want: g(func(m map[string]any) { delete(m, "members") }), changed: true},
		{name: "set an immutable member sub-attribute that has no value", ops: `[{"op": "add", "path": "members[value eq \"u2\"].display", "value": "Bo"}]`,
			want: g(func(m map[string]any) { obj(members(m)[1])["display"] = "Bo" }), changed: true},
		{name: "set an immutable sub-attribute to its own value", ops: `[{"op": "replace", "path": "members[value eq \"u1\"].display", "value": "Ann"}]`,
			want: groupDoc, changed: false},
		{name: "change an immutable member sub-attribute", ops: `[{"op": "replace", "path": "members[value eq \"u1\"].display", "value": "Anna"}]`,
			err: &wantErr{serr.ScimTypeMutability, `operation 1 (replace "members[value eq \"u1\"].display"): attribute "members.display" is immutable and already has a value`}},
		{name: "change an immutable member sub-attribute by merging", ops: `[{"op": "replace", "path": "members[value eq \"u1\"]", "value": {"value": "u7"}}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "members.value" is immutable`}},
		{name: "remove an immutable member sub-attribute", ops: `[{"op": "remove", "path": "members[value eq \"u1\"].display"}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "members.display" is immutable`}},
		{name: "okta: removing a member that is not there is a no-op (retries succeed)", ops: `[{"op": "remove", "path": "members[value eq \"nobody\"]"}]`,
			want: g(func(map[string]any) {}), changed: false},
		{name: "remove displayName", ops: `[{"op": "remove", "path": "displayName"}]`,
			err: &wantErr{serr.ScimTypeMutability, `attribute "displayName" is required`}},
		{name: "user extension on a group", ops: `[{"op": "add", "path": "` + ent + `:department", "value": "x"}]`,
			err: &wantErr{serr.ScimTypeInvalidPath, `unknown schema`}},
	}
	for i := range cases {
		cases[i].rt, cases[i].doc = reg.Group, groupDoc
	}
	runCases(t, cases)
}

// TestApplyEntraValidatorSequence replays the shape of the Microsoft SCIM
// validator's "PATCH Add Attributes Verbose" test against a user created
// with only a userName: every attribute arrives as its own add, multi-valued
// ones through filters that match nothing yet.
func TestApplyEntraValidatorSequence(t *testing.T) {
	t.Parallel()
	doc := decode(t, `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "eleanore@boyercorwin.biz"}`)
	got, changed, err := patch.Apply(reg.User, doc, ops(t, `[
		{"op": "add", "path": "active", "value": true},
		{"op": "add", "path": "displayName", "value": "RJEXKNFYZKXS"},
		{"op": "add", "path": "emails[type eq \"work\"].value", "value": "broderick_ohara@blick.name"},
		{"op": "add", "path": "emails[type eq \"work\"].primary", "value": true},
		{"op": "add", "path": "name.givenName", "value": "Terrence"},
		{"op": "add", "path": "name.familyName", "value": "Brandi"},
		{"op": "add", "path": "addresses[type eq \"work\"].postalCode", "value": "zl48 3xh"},
		{"op": "add", "path": "addresses[type eq \"work\"].primary", "value": "True"},
		{"op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "56-357-7743"},
		{"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "56-357-7744"},
		{"op": "add", "path": "roles[primary eq \"True\"].display", "value": "TQBJFQYVJCAG"},
		{"op": "add", "path": "roles[primary eq \"True\"].value", "value": "UOYTUVLKIPND"},
		{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "LXDAHKZRQYLX"},
		{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "GZFDHGRKQLCG"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("changed = false")
	}
	out, err := resource.Normalize(reg.User, got, resource.Replace)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	want := `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "` + ent + `"],
	  "userName": "eleanore@boyercorwin.biz", "active": true, "displayName": "RJEXKNFYZKXS",
	  "emails": [{"type": "work", "value": "broderick_ohara@blick.name", "primary": true}],
	  "name": {"givenName": "Terrence", "familyName": "Brandi"},
	  "addresses": [{"type": "work", "postalCode": "zl48 3xh", "primary": true}],
	  "phoneNumbers": [{"type": "work", "value": "56-357-7743"}, {"type": "mobile", "value": "56-357-7744"}],
	  "roles": [{"primary": true, "display": "TQBJFQYVJCAG", "value": "UOYTUVLKIPND"}],
	  "` + ent + `": {"employeeNumber": "LXDAHKZRQYLX", "manager": {"value": "GZFDHGRKQLCG"}}
	}`
	if g, w := canon(t, out), canon(t, decode(t, want)); g != w {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}

// TestApplyAtomic: when the third operation fails, nothing of the first two
// is visible and the input is deep-equal to what it was.
func TestApplyAtomic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rt  *schema.ResourceType
		doc string
		ops string
	}{
		{reg.User, userDoc, `[
			{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "changed@x.org"},
			{"op": "remove", "path": "` + ent + `:manager"},
			{"op": "replace", "path": "emails[type eq \"nope\"].value", "value": "x"}]`},
		{reg.User, userDoc, `[
			{"op": "add", "path": "emails", "value": [{"value": "p@x.org", "primary": true}]},
			{"op": "replace", "path": "name", "value": {"givenName": "X"}},
			{"op": "replace", "path": "id", "value": "x"}]`},
		{reg.Group, groupDoc, `[
			{"op": "Remove", "path": "members", "value": [{"value": "u1"}]},
			{"op": "Add", "path": "members", "value": [{"value": "u9"}]},
			{"op": "replace", "path": "members[value eq \"u1\"].value", "value": "u3"}]`},
	} {
		doc := decode(t, tc.doc)
		before := resource.Clone(doc)
		got, changed, err := patch.Apply(tc.rt, doc, ops(t, tc.ops))
		if err == nil || !strings.Contains(err.Error(), "operation 3 ") {
			t.Errorf("err = %v, want a failure of operation 3", err)
		}
		if got != nil || changed {
			t.Errorf("got %v, changed %v on error", got, changed)
		}
		if !reflect.DeepEqual(doc, before) {
			t.Errorf("input changed:\n%s", canon(t, doc))
		}
	}
}

// TestApplyResultIsIndependent: mutating the result never reaches the input.
func TestApplyResultIsIndependent(t *testing.T) {
	t.Parallel()
	doc := decode(t, userDoc)
	before := resource.Clone(doc)
	got, _, err := patch.Apply(reg.User, doc, ops(t, `[{"op": "replace", "path": "title", "value": "x"}]`))
	if err != nil {
		t.Fatal(err)
	}
	obj(arr(got["emails"])[0])["value"] = "mutated"
	obj(got["name"])["givenName"] = "mutated"
	obj(obj(got[ent])["manager"])["value"] = "mutated"
	if !reflect.DeepEqual(doc, before) {
		t.Error("result shares storage with the input")
	}
}

func TestApplyActiveStringThroughNormalize(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`[{"op": "Replace", "path": "active", "value": "False"}]`,
		`[{"op": "Replace", "value": {"active": "False"}}]`,
		`[{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:active", "value": "false"}]`,
	} {
		got, _, err := patch.Apply(reg.User, decode(t, userDoc), ops(t, body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		out, err := resource.Normalize(reg.User, got, resource.Replace)
		if err != nil {
			t.Fatalf("%s: Normalize: %v", body, err)
		}
		if out["active"] != false {
			t.Errorf("%s: active = %#v, want false", body, out["active"])
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		ops  int
		err  string
	}{
		{`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Add", "path": "members", "value": [{"value": "x"}]}]}`, 1, ""},
		// Microsoft Graph's SCIM API spells it "operations".
		{`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "operations": [{"op": "replace", "value": {"active": false}}, {"op": "remove", "path": "title"}]}`, 2, ""},
		{`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []}`, 0, `"Operations" must hold at least one operation`},
		{`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, 0, `"Operations" must hold at least one operation`},
		{`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "add"}]}`, 0, `"schemas" must list "urn:ietf:params:scim:api:messages:2.0:PatchOp"`},
		{`{"Operations": [{"op": "add"}]}`, 0, `"schemas" must list`},
		{`{"schemas": "urn:ietf:params:scim:api:messages:2.0:PatchOp"}`, 0, `PATCH body is not a PatchOp message`},
		{`[1]`, 0, `PATCH body is not a PatchOp message`},
	} {
		r, err := patch.Decode([]byte(tc.body))
		if tc.err != "" {
			var se *serr.ScimError
			if !errors.As(err, &se) || se.ScimType != serr.ScimTypeInvalidSyntax || se.Status != 400 || !strings.Contains(se.Detail, tc.err) {
				t.Errorf("%s: err = %v, want invalidSyntax %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if len(r.Operations) != tc.ops {
			t.Errorf("%s: %d operations, want %d", tc.body, len(r.Operations), tc.ops)
		}
	}
}

// entraReplace3 is a typical Entra update: three attributes in one PATCH.
const entraReplace3 = `[
	{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
	{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
	{"op": "Replace", "path": "active", "value": "False"}]`

func BenchmarkApply(b *testing.B) {
	doc := decode(b, userDoc)
	o := ops(b, entraReplace3)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := patch.Apply(reg.User, doc, o); err != nil {
			b.Fatal(err)
		}
	}
}
