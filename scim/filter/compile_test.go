package filter

import (
	"encoding/json"
	"testing"

	"github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// checkScimError asserts err is a *errors.ScimError for an invalid filter
// with the given Detail.
func checkScimError(t *testing.T, err error, detail string) {
	t.Helper()
	se, ok := err.(*errors.ScimError)
	if !ok {
		t.Fatalf("error = %T %v, want *errors.ScimError", err, err)
	}
	if se.ScimType != errors.ScimTypeInvalidFilter || se.Status != 400 {
		t.Fatalf("error = %+v, want scimType invalidFilter, status 400", se)
	}
	if se.Detail != detail {
		t.Fatalf("Detail = %q\n          want %q", se.Detail, detail)
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	user, group := registry.User, registry.Group
	tests := []struct {
		rt     *schema.ResourceType
		filter string
		detail string
	}{
		{user, `foo eq "x"`, `cannot filter on "foo": unknown attribute "foo"`},
		{user, `name.foo eq "x"`, `cannot filter on "name.foo": unknown sub-attribute "foo" of "name"`},
		{user, `userName.x eq "x"`, `cannot filter on "userName.x": attribute "userName" has no sub-attribute "x"`},
		{user, `urn:example:params:scim:Other:attr pr`, `cannot filter on "urn:example:params:scim:Other:attr": unknown schema "urn:example:params:scim:Other"`},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x"`,
			`cannot filter on "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName": unknown attribute "userName" in schema urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`},
		{user, `employeeNumber eq "1"`, `cannot filter on "employeeNumber": unknown attribute "employeeNumber"`},
		{group, `userName eq "x"`, `cannot filter on "userName": unknown attribute "userName"`},
		{user, `password eq "hunter2"`, `attribute "password" cannot be used in a filter`},
		{user, `password pr`, `attribute "password" cannot be used in a filter`},
		{user, `active gt true`, `operator "gt" is not supported on boolean attribute "active"`},
		{user, `active co "t"`, `operator "co" is not supported on boolean attribute "active"`},
		{user, `emails.primary le false`, `operator "le" is not supported on boolean attribute "emails.primary"`},
		{user, `active eq "true"`, `attribute "active" is boolean; cannot compare it with string "true"`},
		{user, `active eq 1`, `attribute "active" is boolean; cannot compare it with number 1`},
		{user, `userName eq true`, `attribute "userName" is a string; cannot compare it with true`},
		{user, `userName eq 12`, `attribute "userName" is a string; cannot compare it with number 12`},
		{user, `userName gt null`, `operator "gt" cannot compare attribute "userName" with null`},
		{user, `userName co null`, `operator "co" cannot compare attribute "userName" with null`},
		{user, `profileUrl eq false`, `attribute "profileUrl" is a reference; cannot compare it with false`},
		{user, `meta.created co "2025"`, `operator "co" is not supported on dateTime attribute "meta.created"`},
		{user, `meta.created gt "yesterday"`, `invalid dateTime string "yesterday" for attribute "meta.created": want RFC 3339 such as "2025-01-31T09:00:00Z"`},
		{user, `meta.lastModified gt "2025-01-01"`, `invalid dateTime string "2025-01-01" for attribute "meta.lastModified": want RFC 3339 such as "2025-01-31T09:00:00Z"`},
		{user, `urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User:endDate lt 20260101`,
			`attribute "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User:endDate" is a dateTime; cannot compare it with number 20260101`},
		{user, `emails gt "x"`, `operator "gt" is not supported on complex attribute "emails"; name a sub-attribute`},
		{user, `name eq "Barbara"`, `complex attribute "name" has no "value" sub-attribute; name a sub-attribute to compare`},
		{user, `addresses co "Main St"`, `complex attribute "addresses" has no "value" sub-attribute; name a sub-attribute to compare`},
		{user, `emails eq true`, `attribute "emails.value" is a string; cannot compare it with true`},
		{user, `x509Certificates.value gt "MIIC"`, `operator "gt" is not supported on binary attribute "x509Certificates.value"`},
		{user, `emails[foo eq "x"]`, `cannot filter on "emails.foo": unknown sub-attribute "foo" of "emails"`},
		{user, `emails[type.x eq "x"]`, `in a value filter on "emails", "type.x" must name a sub-attribute of "emails"`},
		{user, `emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "x"]`,
			`in a value filter on "emails", "urn:ietf:params:scim:schemas:core:2.0:User:type" must name a sub-attribute of "emails"`},
		{user, `emails[primary eq "yes"]`, `attribute "emails.primary" is boolean; cannot compare it with string "yes"`},
		{user, `userName[value eq "x"]`, `value filter on "userName": attribute is not complex`},
		{user, `title pr and (active eq true or meta.created gt "soon")`,
			`invalid dateTime string "soon" for attribute "meta.created": want RFC 3339 such as "2025-01-31T09:00:00Z"`},
		{group, `members[value gt true]`, `attribute "members.value" is a string; cannot compare it with true`},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.filter)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.filter, err)
			}
			f, err := Compile(e, tt.rt)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want error", tt.filter, f)
			}
			checkScimError(t, err, tt.detail)
		})
	}
}

// TestCompileHandBuilt covers trees that Parse never produces.
func TestCompileHandBuilt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		e      Expr
		detail string
	}{
		{"nil", nil, "empty filter expression"},
		{"nil pointer", (*Compare)(nil), "empty filter expression"},
		{"nil operand", And{L: Compare{Path: AttrPath{Attr: "title"}, Op: OpPr}}, "empty filter expression"},
		{"unknown op", Compare{Path: AttrPath{Attr: "title"}, Op: "xx", Value: "a"}, `unknown comparison operator "xx"`},
		{"int literal", Compare{Path: AttrPath{Attr: "title"}, Op: OpEq, Value: 3}, `attribute "title" is a string; cannot compare it with a value of type int`},
		{"value path on sub-attribute", ValuePath{Path: AttrPath{Attr: "name", Sub: "givenName"}, Filter: Compare{Path: AttrPath{Attr: "x"}, Op: OpPr}},
			`value filter on "name.givenName": attribute is not complex`},
		{"nested value path", ValuePath{Path: AttrPath{Attr: "emails"}, Filter: ValuePath{Path: AttrPath{Attr: "type"}, Filter: Compare{Path: AttrPath{Attr: "x"}, Op: OpPr}}},
			`a value filter on "emails" cannot contain another value filter ("type")`},
		{"integer literal on decimal-free schema", Compare{Path: AttrPath{Attr: "userName"}, Op: OpEq, Value: json.Number("1")},
			`attribute "userName" is a string; cannot compare it with number 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(tt.e, registry.User)
			checkScimError(t, err, tt.detail)
		})
	}
	_, err := Compile(Compare{Path: AttrPath{Attr: "title"}, Op: OpPr}, nil)
	checkScimError(t, err, "no resource type to filter")
}

func TestCompileElementErrors(t *testing.T) {
	t.Parallel()
	userName, _ := registry.User.Resolve("userName")
	givenName, _ := registry.User.Resolve("name.givenName")
	members, _ := registry.Group.Resolve("members")
	password, _ := registry.User.Resolve("password")
	tests := []struct {
		name   string
		attr   schema.Path
		filter string
		detail string
	}{
		{"not complex", userName, `value eq "x"`, `value filter on "userName": attribute is not complex`},
		{"sub-attribute", givenName, `value eq "x"`, `value filter on "name.givenName": attribute is not complex`},
		{"never returned", password, `value eq "x"`, `attribute "password" cannot be used in a filter`},
		{"no attribute", schema.Path{}, `value eq "x"`, `no attribute for value filter`},
		{"unknown sub", members, `foo eq "x"`, `cannot filter on "members.foo": unknown sub-attribute "foo" of "members"`},
		{"nested", members, `value[type pr]`, `a value filter on "members" cannot contain another value filter ("value")`},
		{"ordering on complex value", members, `display co 1`, `attribute "members.display" is a string; cannot compare it with number 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var e Expr = ValuePath{Path: AttrPath{Attr: "value"}, Filter: Compare{Path: AttrPath{Attr: "type"}, Op: OpPr}}
			if tt.name != "nested" {
				var err error
				if e, err = Parse(tt.filter); err != nil {
					t.Fatal(err)
				}
			}
			_, err := CompileElement(e, registry.Group, tt.attr)
			checkScimError(t, err, tt.detail)
		})
	}
}

func TestCompileString(t *testing.T) {
	t.Parallel()
	_, err := CompileString(`userName eq`, registry.User)
	checkScimError(t, err, `invalid filter at position 11: expected value (string, number, true, false or null), found end of filter`)
	_, err = CompileString(`userName eq 1`, registry.User)
	checkScimError(t, err, `attribute "userName" is a string; cannot compare it with number 1`)
}
