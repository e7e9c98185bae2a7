package resource_test

import (
	"reflect"
	"testing"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// storedUser is a document as the store holds it: normalized, with the
// server's id and meta attached.
const storedUser = `{
  "schemas": [` + `"` + userURN + `", "` + entURN + `", "` + lcURN + `"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "bjensen",
  "meta": {"resourceType": "User", "created": "2026-01-05T10:00:00Z", "lastModified": "2026-02-01T10:00:00Z", "location": "https://gw/scim/v2/Users/2819c223-7f76-453a-919d-413861904646", "version": "W/\"3\""},
  "userName": "bjensen@example.com",
  "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
  "displayName": "Babs Jensen",
  "active": true,
  "password": "t1meMa$heen",
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "groups": [{"value": "e9e30dba", "display": "Tour Guides"}],
  "` + entURN + `": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915", "displayName": "John Smith"}},
  "` + lcURN + `": {"startDate": "2026-01-05T00:00:00Z"}
}`

func TestProject(t *testing.T) {
	t.Parallel()
	all := `"schemas": ["` + userURN + `", "` + entURN + `", "` + lcURN + `"]`
	tests := []struct {
		name     string
		attrs    []string
		excluded []string
		want     string
	}{
		{
			name: "default view drops returned:never password only",
			want: `{` + all + `, "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "bjensen",
			  "meta": {"resourceType": "User", "created": "2026-01-05T10:00:00Z", "lastModified": "2026-02-01T10:00:00Z", "location": "https://gw/scim/v2/Users/2819c223-7f76-453a-919d-413861904646", "version": "W/\"3\""},
			  "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
			  "displayName": "Babs Jensen", "active": true,
			  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
			  "groups": [{"value": "e9e30dba", "display": "Tour Guides"}],
			  "` + entURN + `": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915", "displayName": "John Smith"}},
			  "` + lcURN + `": {"startDate": "2026-01-05T00:00:00Z"}}`,
		},
		{
			name:  "attributes=userName keeps id and schemas only besides it (RFC 7644 3.9 example)",
			attrs: []string{"userName"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com"}`,
		},
		{
			name:  "names are case-insensitive and trimmed",
			attrs: []string{" USERNAME ", "DisplayName"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com", "displayName": "Babs Jensen"}`,
		},
		{
			name:  "sub-attribute paths",
			attrs: []string{"name.givenName", "emails.value", "emails.TYPE", "meta.created"},
			want: `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646",
			  "name": {"givenName": "Barbara"}, "meta": {"created": "2026-01-05T10:00:00Z"},
			  "emails": [{"value": "bjensen@example.com", "type": "work"}, {"value": "babs@jensen.org", "type": "home"}]}`,
		},
		{
			name:  "whole attribute wins over its sub-attribute",
			attrs: []string{"name.givenName", "name"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646", "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"}}`,
		},
		{
			name:  "URN-qualified paths and a bare extension URN",
			attrs: []string{entURN + ":department", entURN + ":manager.value", lcURN},
			want: `{` + all + `, "id": "2819c223-7f76-453a-919d-413861904646",
			  "` + entURN + `": {"department": "Tour Operations", "manager": {"value": "26118915"}},
			  "` + lcURN + `": {"startDate": "2026-01-05T00:00:00Z"}}`,
		},
		{
			name:  "core URN-qualified path",
			attrs: []string{userURN + ":userName"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com"}`,
		},
		{
			name:  "bare core URN selects every core attribute, not common or extension ones",
			attrs: []string{userURN},
			want: `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646",
			  "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
			  "displayName": "Babs Jensen", "active": true,
			  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
			  "groups": [{"value": "e9e30dba", "display": "Tour Guides"}]}`,
		},
		{
			name:  "password is never returned even when asked for; id cannot be dropped",
			attrs: []string{"password", "id"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646"}`,
		},
		{
			name:  "unknown names are ignored",
			attrs: []string{"userName", "nosuch", "name.nosuch", "urn:example:x:2.0:User:y"},
			want:  `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com"}`,
		},
		{
			name:     "excludedAttributes removes default ones, never id or schemas",
			excluded: []string{"meta", "id", "schemas", "emails", "groups", "name.formatted", entURN, lcURN + ":startDate", "externalId"},
			want: `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646",
			  "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen"},
			  "displayName": "Babs Jensen", "active": true}`,
		},
		{
			name:     "excluding a sub-attribute of a multi-valued attribute",
			attrs:    []string{"emails"},
			excluded: []string{"emails.primary", "emails.type"},
			want: `{"schemas": ["` + userURN + `"], "id": "2819c223-7f76-453a-919d-413861904646",
			  "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]}`,
		},
		{
			name:     "empty names are no selection",
			attrs:    []string{"", " "},
			excluded: []string{""},
			want: `{` + all + `, "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "bjensen",
			  "meta": {"resourceType": "User", "created": "2026-01-05T10:00:00Z", "lastModified": "2026-02-01T10:00:00Z", "location": "https://gw/scim/v2/Users/2819c223-7f76-453a-919d-413861904646", "version": "W/\"3\""},
			  "userName": "bjensen@example.com", "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
			  "displayName": "Babs Jensen", "active": true,
			  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
			  "groups": [{"value": "e9e30dba", "display": "Tour Guides"}],
			  "` + entURN + `": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915", "displayName": "John Smith"}},
			  "` + lcURN + `": {"startDate": "2026-01-05T00:00:00Z"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := decode(t, storedUser)
			before := resource.Clone(doc)
			got, err := resource.Project(reg.User, doc, tc.attrs, tc.excluded)
			if err != nil {
				t.Fatalf("Project: %v", err)
			}
			if g, w := canon(t, got), canon(t, decode(t, tc.want)); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			if !reflect.DeepEqual(doc, before) {
				t.Error("input was mutated")
			}
			// The result must not share storage with the input.
			if e, ok := got["emails"].([]any); ok {
				e[0].(map[string]any)["value"] = "x"
				if reflect.DeepEqual(doc, before) == false {
					t.Error("result shares storage with the input")
				}
			}
		})
	}
}

func TestProjectRejectsMalformedNames(t *testing.T) {
	t.Parallel()
	doc := decode(t, storedUser)
	for _, tc := range []struct {
		attrs, excluded []string
		want            string
	}{
		{[]string{"name..givenName"}, nil, `attributes: "name..givenName" is not a valid attribute name`},
		{[]string{"name.givenName.x"}, nil, `is not a valid attribute name`},
		{[]string{"1userName"}, nil, `is not a valid attribute name`},
		{[]string{"user name"}, nil, `is not a valid attribute name`},
		{[]string{"emails[type eq \"work\"]"}, nil, `is not a valid attribute name`},
		{nil, []string{"name."}, `excludedAttributes: "name." is not a valid attribute name`},
		{nil, []string{"urn:"}, `is not a valid attribute name`},
	} {
		_, err := resource.Project(reg.User, doc, tc.attrs, tc.excluded)
		scimErr(t, err, serr.ScimTypeInvalidValue, tc.want)
	}
}

func TestProjectGroup(t *testing.T) {
	t.Parallel()
	doc := decode(t, `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "Sales",
	  "members": [{"value": "u1", "display": "Ann"}, {"value": "u2"}], "meta": {"resourceType": "Group"}}`)
	got, err := resource.Project(reg.Group, doc, nil, []string{"members"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "Sales", "meta": {"resourceType": "Group"}}`
	if g, w := canon(t, got), canon(t, decode(t, want)); g != w {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
	got, err = resource.Project(reg.Group, doc, []string{"members.value"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "members": [{"value": "u1"}, {"value": "u2"}]}`
	if g, w := canon(t, got), canon(t, decode(t, want)); g != w {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	emails := reg.User.Core.Attr("emails")
	ext := reg.User.Common.Attr("externalId")
	for _, tc := range []struct {
		a    *schema.Attr
		x, y any
		want bool
	}{
		{ext, "ABC", "abc", false}, // caseExact
		{reg.User.Core.Attr("userName"), "ABC", "abc", true},
		{emails, map[string]any{"value": "A@x", "type": "work"}, map[string]any{"value": "a@x", "type": "Work"}, false}, // not arrays
		{emails, []any{map[string]any{"value": "A@x", "type": "work"}}, []any{map[string]any{"value": "a@x", "type": "work"}}, true},
		{emails, []any{map[string]any{"value": "a@x"}}, []any{map[string]any{"value": "a@x", "primary": false}}, false},
		{reg.User.Core.Attr("active"), true, true, true},
		{reg.User.Core.Attr("active"), true, "true", false},
	} {
		if got := resource.Equal(tc.a, tc.x, tc.y); got != tc.want {
			t.Errorf("Equal(%s, %v, %v) = %v, want %v", tc.a.Name, tc.x, tc.y, got, tc.want)
		}
	}
	if !resource.EqualSingle(emails, map[string]any{"value": "A@x", "type": "work"}, map[string]any{"value": "a@x", "type": "Work"}) {
		t.Error("EqualSingle: emails elements differing only in case should be equal")
	}
	if resource.EqualSingle(reg.User.Core.Attr("photos"), map[string]any{"value": "https://x/A"}, map[string]any{"value": "https://x/a"}) {
		t.Error("EqualSingle: photos.value is caseExact")
	}
}
