package resource_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

const (
	userURN = schema.UserURN
	entURN  = schema.EnterpriseURN
	lcURN   = schema.LifecycleURN
)

var reg = schema.New()

// decode parses JSON the way the server does (UseNumber).
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

// scimErr asserts err is a *ScimError with the given type and a detail
// containing want.
func scimErr(t *testing.T, err error, typ serr.ScimType, want string) {
	t.Helper()
	var se *serr.ScimError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want *ScimError", err, err)
	}
	if se.Status != 400 || se.ScimType != typ {
		t.Errorf("status/type = %d/%s, want 400/%s (detail %q)", se.Status, se.ScimType, typ, se.Detail)
	}
	if !strings.Contains(se.Detail, want) {
		t.Errorf("detail = %q, want it to contain %q", se.Detail, want)
	}
}

// entraCreate is a POST /Users body shaped like Microsoft Entra ID's
// (learn.microsoft.com "Tutorial: Develop a sample SCIM endpoint" request
// examples): booleans as strings in places, enterprise extension listed,
// readOnly meta sent by the client.
const entraCreate = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7b6cf5a2b6b4",
  "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
  "active": "True",
  "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
  "roles": [{"primary": "False", "value": "Reader", "type": "WindowsAzureActiveDirectoryRole"}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984",
    "department": "Tour Operations",
    "manager": "26118915-6090-4610-87e4-49d8ca9f808d"
  }
}`

// oktaCreate is a POST /Users body shaped like Okta's (developer.okta.com
// "SCIM 2.0 protocol reference"): no extension, password present.
const oktaCreate = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "test.user@okta.local",
  "name": {"givenName": "Test", "familyName": "User"},
  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
  "displayName": "Test User",
  "locale": "en-US",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "groups": [],
  "password": "1mz050nq",
  "active": true
}`

func TestNormalizeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rt   *schema.ResourceType
		in   string
		want string
	}{
		{
			name: "entra create: string booleans, bare manager, meta dropped",
			rt:   reg.User,
			in:   entraCreate,
			want: `{
  "schemas": [` + q(userURN) + `, ` + q(entURN) + `],
  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7b6cf5a2b6b4",
  "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
  "active": true,
  "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
  "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
  "roles": [{"primary": false, "value": "Reader", "type": "WindowsAzureActiveDirectoryRole"}],
  ` + q(entURN) + `: {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
}`,
		},
		{
			name: "okta create: empty groups dropped, password kept for the caller",
			rt:   reg.User,
			in:   oktaCreate,
			want: `{
  "schemas": [` + q(userURN) + `],
  "userName": "test.user@okta.local",
  "name": {"givenName": "Test", "familyName": "User"},
  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
  "displayName": "Test User",
  "locale": "en-US",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "password": "1mz050nq",
  "active": true
}`,
		},
		{
			name: "case-insensitive names become canonical; id, meta, groups dropped",
			rt:   reg.User,
			in: `{"SCHEMAS": ["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"], "USERNAME": "bjensen", "Name": {"GIVENNAME": "Barbara"},
			      "id": "client-chosen", "meta": {"created": "not even a date"}, "groups": [{"value": "g1"}]}`,
			want: `{"schemas": [` + q(userURN) + `], "userName": "bjensen", "name": {"givenName": "Barbara"}}`,
		},
		{
			name: "flat URN-qualified keys move under the extension, which is added to schemas",
			rt:   reg.User,
			in: `{"schemas": [` + q(userURN) + `], "userName": "u",
			      ` + q(entURN+":department") + `: "Sales",
			      ` + q(entURN+":manager.value") + `: "m1",
			      ` + q(lcURN+":startDate") + `: "2026-03-01T00:00:00Z",
			      ` + q(userURN+":title") + `: "Engineer"}`,
			want: `{"schemas": [` + q(userURN) + `, ` + q(entURN) + `, ` + q(lcURN) + `], "userName": "u", "title": "Engineer",
			        ` + q(entURN) + `: {"department": "Sales", "manager": {"value": "m1"}},
			        ` + q(lcURN) + `: {"startDate": "2026-03-01T00:00:00Z"}}`,
		},
		{
			name: "flat key merges with the nested extension object",
			rt:   reg.User,
			in: `{"schemas": [` + q(userURN) + `], "userName": "u",
			      ` + q(entURN) + `: {"costCenter": "4130"},
			      ` + q(entURN+":department") + `: "Sales"}`,
			want: `{"schemas": [` + q(userURN) + `, ` + q(entURN) + `], "userName": "u", ` + q(entURN) + `: {"costCenter": "4130", "department": "Sales"}}`,
		},
		{
			name: "listed but empty extension is left out of schemas",
			rt:   reg.User,
			in:   `{"schemas": [` + q(userURN) + `, ` + q(entURN) + `, ` + q(lcURN) + `], "userName": "u", ` + q(entURN) + `: {"department": null}, ` + q(lcURN) + `: {}}`,
			want: `{"schemas": [` + q(userURN) + `], "userName": "u"}`,
		},
		{
			name: "nulls, empty arrays, empty objects and empty elements are unassigned",
			rt:   reg.User,
			in: `{"schemas": [` + q(userURN) + `], "userName": "u", "title": null, "emails": [], "phoneNumbers": [null, {}, {"value": "+1 555", "type": null}],
			      "name": {"givenName": null}, "addresses": null}`,
			want: `{"schemas": [` + q(userURN) + `], "userName": "u", "phoneNumbers": [{"value": "+1 555"}]}`,
		},
		{
			name: "entra clears the manager with an empty string",
			rt:   reg.User,
			in:   `{"schemas": [` + q(userURN) + `], "userName": "u", ` + q(entURN) + `: {"manager": "", "department": "D"}}`,
			want: `{"schemas": [` + q(userURN) + `, ` + q(entURN) + `], "userName": "u", ` + q(entURN) + `: {"department": "D"}}`,
		},
		{
			name: "manager displayName is readOnly and dropped; empty value clears",
			rt:   reg.User,
			in:   `{"schemas": [` + q(userURN) + `], "userName": "u", ` + q(entURN) + `: {"manager": {"value": "", "displayName": "Boss"}}}`,
			want: `{"schemas": [` + q(userURN) + `], "userName": "u"}`,
		},
		{
			name: "dateTime forms: offset, fraction, no zone",
			rt:   reg.User,
			in:   `{"schemas": [` + q(userURN) + `], "userName": "u", ` + q(lcURN) + `: {"startDate": "2026-03-01T09:00:00.123+01:00", "endDate": "2026-12-31T17:00:00"}}`,
			want: `{"schemas": [` + q(userURN) + `, ` + q(lcURN) + `], "userName": "u", ` + q(lcURN) + `: {"startDate": "2026-03-01T09:00:00.123+01:00", "endDate": "2026-12-31T17:00:00"}}`,
		},
		{
			name: "binary x509 value",
			rt:   reg.User,
			in:   `{"schemas": [` + q(userURN) + `], "userName": "u", "x509Certificates": [{"value": "TUlJRERE"}]}`,
			want: `{"schemas": [` + q(userURN) + `], "userName": "u", "x509Certificates": [{"value": "TUlJRERE"}]}`,
		},
		{
			name: "entra group create lists a private schema and sends readOnly meta",
			rt:   reg.Group,
			in: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
			      "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName", "meta": {"resourceType": "Group"}}`,
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName"}`,
		},
		{
			name: "group with members; display is kept (immutable, not readOnly)",
			rt:   reg.Group,
			in: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales",
			      "members": [{"value": "u1", "display": "Ann", "type": "User"}, {"value": "u2", "$ref": "https://x/Users/u2"}]}`,
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales",
			        "members": [{"value": "u1", "display": "Ann", "type": "User"}, {"value": "u2", "$ref": "https://x/Users/u2"}]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := decode(t, tc.in)
			before := resource.Clone(in)
			got, err := resource.Normalize(tc.rt, in, resource.Create)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if g, w := canon(t, got), canon(t, decode(t, tc.want)); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if !reflect.DeepEqual(in, before) {
				t.Errorf("input was mutated:\n%s", canon(t, in))
			}
			// Normalizing a normalized document changes nothing, in
			// either mode.
			again, err := resource.Normalize(tc.rt, got, resource.Replace)
			if err != nil {
				t.Fatalf("second Normalize: %v", err)
			}
			if g, w := canon(t, again), canon(t, got); g != w {
				t.Errorf("not idempotent:\n%s\nvs\n%s", g, w)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	t.Parallel()
	u := func(rest string) string {
		return `{"schemas": [` + q(userURN) + `], "userName": "u"` + rest + `}`
	}
	tests := []struct {
		name string
		rt   *schema.ResourceType
		in   string
		typ  serr.ScimType
		want string
	}{
		{"schemas missing", reg.User, `{"userName": "u"}`, serr.ScimTypeInvalidSyntax, `attribute "schemas" is required`},
		{"schemas not an array", reg.User, `{"schemas": ` + q(userURN) + `, "userName": "u"}`, serr.ScimTypeInvalidSyntax, `expected an array of strings, got string`},
		{"schemas without core", reg.User, `{"schemas": [` + q(entURN) + `], "userName": "u"}`, serr.ScimTypeInvalidSyntax, `must list "` + userURN + `"`},
		{"group body sent to users", reg.User, `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"}`, serr.ScimTypeInvalidSyntax, `attribute "schemas" must list "` + userURN + `"`},
		{"attributes of an unlisted unknown schema", reg.User, u(`, "urn:example:custom:2.0:User": {"badge": "x"}`), serr.ScimTypeInvalidValue, `unknown attribute "urn:example:custom:2.0:User"`},
		{"schemas element not a string", reg.User, `{"schemas": [` + q(userURN) + `, 7], "userName": "u"}`, serr.ScimTypeInvalidSyntax, `attribute "schemas[1]": expected string, got number`},
		{"unknown attribute", reg.User, u(`, "fooBar": 1`), serr.ScimTypeInvalidValue, `unknown attribute "fooBar"`},
		{"dotted key in a body", reg.User, u(`, "name.givenName": "x"`), serr.ScimTypeInvalidValue, `unknown attribute "name.givenName"`},
		{"unknown sub-attribute", reg.User, u(`, "name": {"nickname": "x"}`), serr.ScimTypeInvalidValue, `unknown attribute "name.nickname"`},
		{"unknown extension attribute", reg.User, u(`, ` + q(entURN) + `: {"badge": "x"}`), serr.ScimTypeInvalidValue, `unknown attribute "` + entURN + `:badge"`},
		{"unknown flat URN attribute", reg.User, u(`, ` + q(entURN+":badge") + `: "x"`), serr.ScimTypeInvalidValue, `unknown attribute "` + entURN + `:badge"`},
		{"unknown schema URN key", reg.User, u(`, "urn:example:custom:2.0:User:x": "x"`), serr.ScimTypeInvalidValue, `unknown attribute "urn:example:custom:2.0:User:x"`},
		{"extension for the wrong resource type", reg.Group, `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g", ` + q(entURN) + `: {"department": "x"}}`, serr.ScimTypeInvalidValue, `unknown attribute "` + entURN + `"`},
		{"extension not an object", reg.User, u(`, ` + q(entURN) + `: "Sales"`), serr.ScimTypeInvalidValue, `attribute "` + entURN + `": expected complex (object), got string`},
		{"same attribute twice in two spellings", reg.User, u(`, "title": "a", "Title": "b"`), serr.ScimTypeInvalidValue, `attribute "title" given more than once`},
		{"flat and nested extension attribute", reg.User, u(`, ` + q(entURN) + `: {"department": "a"}, ` + q(entURN+":Department") + `: "b"`), serr.ScimTypeInvalidValue, `attribute "` + entURN + `:department" given more than once`},
		{"sub-attribute twice", reg.User, u(`, "name": {"givenName": "a", "GivenName": "b"}`), serr.ScimTypeInvalidValue, `attribute "name.givenName" given more than once`},
		{"boolean as number", reg.User, u(`, "active": 1`), serr.ScimTypeInvalidValue, `attribute "active": expected boolean, got number`},
		{"boolean as other string", reg.User, u(`, "active": "yes"`), serr.ScimTypeInvalidValue, `attribute "active": expected boolean, got string`},
		{"boolean as TRUE", reg.User, u(`, "active": "TRUE"`), serr.ScimTypeInvalidValue, `attribute "active": expected boolean, got string`},
		{"nested boolean names the element", reg.User, u(`, "emails": [{"value": "a@x"}, {"value": "b@x", "primary": "1"}]`), serr.ScimTypeInvalidValue, `attribute "emails[1].primary": expected boolean, got string`},
		{"string as number", reg.User, u(`, "title": 7`), serr.ScimTypeInvalidValue, `attribute "title": expected string, got number`},
		{"string as object", reg.User, u(`, "displayName": {"value": "x"}`), serr.ScimTypeInvalidValue, `attribute "displayName": expected string, got object`},
		{"multi-valued as single object", reg.User, u(`, "emails": {"value": "a@x"}`), serr.ScimTypeInvalidValue, `attribute "emails": expected an array, got object`},
		{"complex as string", reg.User, u(`, "name": "Barbara"`), serr.ScimTypeInvalidValue, `attribute "name": expected complex (object), got string`},
		{"element not an object", reg.User, u(`, "emails": ["a@x"]`), serr.ScimTypeInvalidValue, `attribute "emails[0]": expected complex (object), got string`},
		{"two primaries", reg.User, u(`, "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": "True"}]`), serr.ScimTypeInvalidValue, `attribute "emails": 2 values are marked "primary": true`},
		{"bad dateTime", reg.User, u(`, ` + q(lcURN) + `: {"startDate": "01/03/2026"}`), serr.ScimTypeInvalidValue, `attribute "` + lcURN + `:startDate": expected dateTime`},
		{"date without time", reg.User, u(`, ` + q(lcURN) + `: {"endDate": "2026-03-01"}`), serr.ScimTypeInvalidValue, `attribute "` + lcURN + `:endDate": expected dateTime`},
		{"dateTime as number", reg.User, u(`, ` + q(lcURN) + `: {"endDate": 20260301}`), serr.ScimTypeInvalidValue, `expected dateTime, got number`},
		{"bad base64", reg.User, u(`, "x509Certificates": [{"value": "not base64!"}]`), serr.ScimTypeInvalidValue, `attribute "x509Certificates[0].value": expected binary (base64)`},
		{"manager as number", reg.User, u(`, ` + q(entURN) + `: {"manager": 5}`), serr.ScimTypeInvalidValue, `attribute "` + entURN + `:manager": expected complex (object), got number`},
		{"userName missing", reg.User, `{"schemas": [` + q(userURN) + `], "name": {"givenName": "x"}}`, serr.ScimTypeInvalidValue, `attribute "userName" is required`},
		{"userName empty", reg.User, `{"schemas": [` + q(userURN) + `], "userName": ""}`, serr.ScimTypeInvalidValue, `attribute "userName" is required`},
		{"userName null", reg.User, `{"schemas": [` + q(userURN) + `], "userName": null}`, serr.ScimTypeInvalidValue, `attribute "userName" is required`},
		{"displayName missing for group", reg.Group, `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "members": [{"value": "u1"}]}`, serr.ScimTypeInvalidValue, `attribute "displayName" is required`},
		{"password as number does not echo it", reg.User, u(`, "password": 123456`), serr.ScimTypeInvalidValue, `attribute "password": expected string, got number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := decode(t, tc.in)
			before := resource.Clone(in)
			for _, mode := range []resource.Mode{resource.Create, resource.Replace} {
				got, err := resource.Normalize(tc.rt, in, mode)
				if got != nil {
					t.Errorf("%v: got a document with an error: %v", mode, got)
				}
				scimErr(t, err, tc.typ, tc.want)
				if err != nil && strings.Contains(err.Error(), "123456") {
					t.Errorf("error leaks the value: %v", err)
				}
			}
			if !reflect.DeepEqual(in, before) {
				t.Errorf("input was mutated")
			}
		})
	}
}

func TestNormalizeValueNumbers(t *testing.T) {
	t.Parallel()
	intAttr := &schema.Attr{Name: "n", Type: schema.TypeInteger}
	decAttr := &schema.Attr{Name: "d", Type: schema.TypeDecimal}
	tests := []struct {
		a       *schema.Attr
		in      any
		want    any
		wantErr string
	}{
		{intAttr, json.Number("42"), json.Number("42"), ""},
		{intAttr, json.Number("-7"), json.Number("-7"), ""},
		{intAttr, 42, json.Number("42"), ""},
		{intAttr, float64(3), json.Number("3"), ""},
		{intAttr, json.Number("4.5"), nil, `attribute "n": expected integer, got a number with a fraction`},
		{intAttr, json.Number("1e3"), nil, `expected integer`},
		{intAttr, json.Number("99999999999999999999"), nil, `out of range`},
		{intAttr, "42", nil, `attribute "n": expected integer, got string`},
		{decAttr, json.Number("4.5"), json.Number("4.5"), ""},
		{decAttr, json.Number("1e3"), json.Number("1e3"), ""},
		{decAttr, 2.25, json.Number("2.25"), ""},
		{decAttr, json.Number("1e999"), nil, `unrepresentable`},
		{decAttr, "4.5", nil, `attribute "d": expected decimal, got string`},
	}
	for _, tc := range tests {
		got, err := resource.NormalizeValue(tc.a, tc.in, tc.a.Name)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %v: err = %v, want %q", tc.a.Type, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %v: got %v, %v; want %v", tc.a.Type, tc.in, got, err, tc.want)
		}
	}
}

func TestClone(t *testing.T) {
	t.Parallel()
	in := decode(t, entraCreate)
	c := resource.Clone(in)
	if !reflect.DeepEqual(in, c) {
		t.Fatal("clone differs")
	}
	c["emails"].([]any)[0].(map[string]any)["value"] = "changed"
	c[entURN].(map[string]any)["department"] = "changed"
	c["name"].(map[string]any)["givenName"] = "changed"
	if in["emails"].([]any)[0].(map[string]any)["value"] == "changed" ||
		in[entURN].(map[string]any)["department"] == "changed" ||
		in["name"].(map[string]any)["givenName"] == "changed" {
		t.Error("clone shares storage with its input")
	}
	if resource.Clone(nil) != nil {
		t.Error("Clone(nil) != nil")
	}
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func BenchmarkNormalize(b *testing.B) {
	in := decode(b, entraCreate)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resource.Normalize(reg.User, in, resource.Create); err != nil {
			b.Fatal(err)
		}
	}
}
