package filter

import (
	"encoding/json"
	"testing"

	"github.com/jmlgate/jmlgate/scim/schema"
)

func TestMatchUser(t *testing.T) {
	t.Parallel()
	docs := []map[string]any{decode(t, bjensenJSON), decode(t, leaverJSON), decode(t, oddJSON)}
	const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
	const life = "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User:"
	tests := []struct {
		filter string
		want   [3]bool // bjensen, leaver, odd
	}{
		// Strings: case-insensitive unless caseExact.
		{`userName eq "bjensen@example.com"`, [3]bool{true, false, false}},
		{`userName eq "BJENSEN@EXAMPLE.COM"`, [3]bool{true, false, false}},
		{`USERNAME Eq "bjensen@example.com"`, [3]bool{true, false, false}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com"`, [3]bool{true, false, false}},
		{`userName ne "bjensen@example.com"`, [3]bool{false, true, true}},
		{`userName co "@EXAMPLE"`, [3]bool{true, true, false}},
		{`userName sw "bjen"`, [3]bool{true, false, false}},
		{`userName ew ".COM"`, [3]bool{true, true, false}},
		{`userName gt "BJ"`, [3]bool{true, true, false}},
		{`userName lt "bjensen@example.com"`, [3]bool{false, false, false}},
		{`userName le "bjensen@example.com"`, [3]bool{true, false, false}},
		{`userName ge "zoe"`, [3]bool{false, true, false}},
		{`id eq "2819c223-7f76-453a-919d-413861904646"`, [3]bool{true, false, false}},
		{`id eq "2819C223-7F76-453A-919D-413861904646"`, [3]bool{false, false, false}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:id eq "odd"`, [3]bool{false, false, true}},
		{`externalId eq "EMP-0042"`, [3]bool{true, false, false}},
		{`externalId eq "emp-0042"`, [3]bool{false, false, false}},
		{`externalId sw "emp"`, [3]bool{false, false, false}},
		{`externalId sw "EMP"`, [3]bool{true, false, false}},
		{`name.familyName co "ENS"`, [3]bool{true, false, false}},
		{`name.givenName eq "barbara"`, [3]bool{true, false, false}},
		{`displayName co "ÆRØ"`, [3]bool{false, true, false}},
		{`displayName sw "zoë"`, [3]bool{false, true, false}},
		{`displayName ew "KØBING"`, [3]bool{false, true, false}},
		{`displayName gt "Zoe"`, [3]bool{false, true, false}},
		{`meta.version eq "W/\"3\""`, [3]bool{true, false, false}},
		{`meta.resourceType eq "user"`, [3]bool{false, false, false}},
		{`meta.resourceType eq "User"`, [3]bool{true, true, false}},
		{`meta.location sw "https://jmlgate.example.com/"`, [3]bool{true, false, false}},
		{`schemas eq "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"`, [3]bool{true, false, false}},

		// Presence, absence, null.
		{`title pr`, [3]bool{true, false, false}},
		{`title ne "Tour Guide"`, [3]bool{false, true, true}},
		{`title eq null`, [3]bool{false, true, true}},
		{`title ne null`, [3]bool{true, false, false}},
		{`name pr`, [3]bool{true, false, false}},
		{`name.givenName pr`, [3]bool{true, false, false}},
		{`emails pr`, [3]bool{true, false, true}},
		{`emails.value pr`, [3]bool{true, false, true}},
		{`emails.display pr`, [3]bool{false, false, false}},
		{`meta.lastModified pr`, [3]bool{true, true, false}},
		{`externalId pr`, [3]bool{true, false, false}},

		// Booleans.
		{`active eq true`, [3]bool{true, false, false}},
		{`active eq false`, [3]bool{false, true, false}},
		{`active ne true`, [3]bool{false, true, true}},
		{`not (active eq true)`, [3]bool{false, true, true}},

		// Multi-valued: any value; complex without sub-attribute means "value".
		{`emails co "@jensen"`, [3]bool{true, false, false}},
		{`emails eq "BJENSEN@example.com"`, [3]bool{true, false, false}},
		{`emails.value ew ".org"`, [3]bool{true, false, false}},
		{`emails.value co "example"`, [3]bool{true, false, true}},
		{`emails.type eq "work"`, [3]bool{true, false, true}},
		{`emails.type ne "work"`, [3]bool{true, true, false}},
		{`emails.primary eq true`, [3]bool{true, false, false}},
		{`phoneNumbers.value sw "555"`, [3]bool{true, false, false}},
		{`groups.display eq "tour guides"`, [3]bool{true, false, false}},

		// Value filters: all conditions hold for the same element.
		{`emails[type eq "work" and value co "@jensen.org"]`, [3]bool{false, false, false}},
		{`emails.type eq "work" and emails.value co "@jensen.org"`, [3]bool{true, false, false}},
		{`emails[type eq "home" and value co "@jensen.org"]`, [3]bool{true, false, false}},
		{`emails[type eq "home"].value eq "babs@jensen.org"`, [3]bool{true, false, false}},
		{`emails[type eq "work"].value eq "babs@jensen.org"`, [3]bool{false, false, false}},
		{`emails[type eq "work"].value ew "example.com"`, [3]bool{true, false, true}},
		{`emails[primary eq true]`, [3]bool{true, false, false}},
		{`emails[not (primary pr)]`, [3]bool{true, false, true}},
		{`emails[type eq "work" or type eq "home"].value pr`, [3]bool{true, false, true}},
		{`name[givenName sw "b"]`, [3]bool{true, false, false}},

		// dateTime: instants, whatever the zone.
		{`meta.lastModified gt "2025-01-01T00:00:00Z"`, [3]bool{true, false, false}},
		{`meta.lastModified eq "2025-06-15T10:30:00.500Z"`, [3]bool{true, false, false}},
		{`meta.lastModified eq "2025-06-15T10:30:00.5"`, [3]bool{true, false, false}},
		{`meta.lastModified lt "2025-06-15T10:30:00.5Z"`, [3]bool{false, true, false}},
		{`meta.lastModified le "2025-06-15T06:30:00.5-04:00"`, [3]bool{true, true, false}},
		{`meta.lastModified ne "2025-06-15T10:30:00.5Z"`, [3]bool{false, true, true}},
		{`meta.created ge "2024-03-01T09:00:00Z"`, [3]bool{true, false, false}},
		{`meta.created gt "2024-03-01T09:00:00Z"`, [3]bool{false, false, false}},
		{`meta.created eq "2024-03-01T10:00:00+01:00"`, [3]bool{true, false, false}},
		{`meta.created lt "2024-01-01T00:00:00Z"`, [3]bool{false, true, false}},
		{life + `endDate lt "2026-01-01T00:00:00Z"`, [3]bool{true, false, false}},
		{life + `endDate gt "2025-12-31T21:59:59Z"`, [3]bool{true, false, false}},
		{life + `endDate gt "2025-12-31T22:00:00Z"`, [3]bool{false, false, false}},
		{life + `startDate le "2025-01-01T00:00:00Z" and ` + life + `endDate pr`, [3]bool{true, false, false}},
		{`not (` + life + `endDate pr)`, [3]bool{false, true, true}},

		// Extensions live under their URN key.
		{ent + `department eq "tour operations"`, [3]bool{true, false, false}},
		{`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "Tour Operations"`, [3]bool{true, false, false}},
		{ent + `manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, [3]bool{true, false, false}},
		{ent + `manager eq "26118915-6090-4610-87e4-49d8ca9f808d"`, [3]bool{true, false, false}},
		{ent + `manager pr`, [3]bool{true, false, false}},
		{ent + `manager.displayName sw "john"`, [3]bool{true, false, false}},
		{ent + `employeeNumber ne "701984"`, [3]bool{false, true, true}},

		// Logic and precedence.
		{`userName eq "nobody" and title pr or active eq true`, [3]bool{true, false, false}},
		{`userName eq "nobody" and (title pr or active eq true)`, [3]bool{false, false, false}},
		{`active eq false or emails[type eq "work"] and title pr`, [3]bool{true, true, false}},
		{`not (active eq false or title pr)`, [3]bool{false, false, true}},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, [3]bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			f, err := CompileString(tt.filter, registry.User)
			if err != nil {
				t.Fatalf("CompileString(%q): %v", tt.filter, err)
			}
			for i, doc := range docs {
				if got := f.Match(doc); got != tt.want[i] {
					t.Errorf("%q on %s = %v, want %v", tt.filter, []string{"bjensen", "leaver", "odd"}[i], got, tt.want[i])
				}
			}
		})
	}
}

func TestMatchGroup(t *testing.T) {
	t.Parallel()
	doc := decode(t, groupJSON)
	tests := []struct {
		filter string
		want   bool
	}{
		{`displayName eq "tour guides"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Tour Guides"`, true},
		{`members[value eq "2819c223-7f76-453a-919d-413861904646"]`, true},
		{`members[value eq "2819c223-7f76-453a-919d-413861904646" and display eq "Mandy Pepperidge"]`, false},
		{`members.value eq "902c246b-6245-4190-8e05-00816be7344a"`, true},
		{`members eq "902c246b-6245-4190-8e05-00816be7344a"`, true},
		{`members[$ref pr]`, true},
		{`members[$ref pr and display eq "Mandy Pepperidge"]`, false},
		{`members.$ref sw "https://jmlgate.example.com/scim/v2/Users/"`, true},
		{`members.$ref sw "HTTPS://jmlgate.example.com/"`, false},
		{`meta.lastModified ge "2025-02-01T00:00:00Z"`, true},
		{`externalId eq "GRP-TOUR"`, false},
		{`not (members pr)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			f, err := CompileString(tt.filter, registry.Group)
			if err != nil {
				t.Fatalf("CompileString(%q): %v", tt.filter, err)
			}
			if got := f.Match(doc); got != tt.want {
				t.Fatalf("%q = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestCompileElement(t *testing.T) {
	t.Parallel()
	members, err := registry.Group.Resolve("members")
	if err != nil {
		t.Fatal(err)
	}
	emails, err := registry.User.Resolve("emails")
	if err != nil {
		t.Fatal(err)
	}
	group := decode(t, groupJSON)
	user := decode(t, bjensenJSON)
	tests := []struct {
		rt     *schema.ResourceType
		attr   schema.Path
		doc    map[string]any
		key    string
		filter string
		want   []bool // per element
	}{
		{registry.Group, members, group, "members", `value eq "2819c223-7f76-453a-919d-413861904646"`, []bool{true, false}},
		{registry.Group, members, group, "members", `VALUE eq "902C246B-6245-4190-8E05-00816BE7344A"`, []bool{false, true}},
		{registry.Group, members, group, "members", `type eq "user" and display sw "mandy"`, []bool{false, true}},
		{registry.Group, members, group, "members", `$ref pr`, []bool{true, false}},
		{registry.User, emails, user, "emails", `type eq "work"`, []bool{true, false}},
		{registry.User, emails, user, "emails", `primary eq true or value ew ".org"`, []bool{true, true}},
		{registry.User, emails, user, "emails", `not (primary eq true)`, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			f, err := CompileElement(e, tt.rt, tt.attr)
			if err != nil {
				t.Fatalf("CompileElement(%q): %v", tt.filter, err)
			}
			elems := tt.doc[tt.key].([]any)
			for i, el := range elems {
				if got := f.Match(el.(map[string]any)); got != tt.want[i] {
					t.Errorf("element %d: %q = %v, want %v", i, tt.filter, got, tt.want[i])
				}
			}
		})
	}
}

// TestMatchPointerNodes checks that hand-built trees of pointer nodes
// compile and evaluate like parsed value trees.
func TestMatchPointerNodes(t *testing.T) {
	t.Parallel()
	doc := decode(t, bjensenJSON)
	e := &And{
		L: &Compare{Path: AttrPath{Attr: "userName"}, Op: "EQ", Value: "bjensen@example.com"},
		R: &Not{X: &ValuePath{Path: AttrPath{Attr: "emails"}, Filter: &Or{
			L: &Compare{Path: AttrPath{Attr: "type"}, Op: OpEq, Value: "other"},
			R: &Compare{Path: AttrPath{Attr: "value"}, Op: OpEq, Value: "nobody@example.com"},
		}}},
	}
	f, err := Compile(e, registry.User)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(doc) {
		t.Fatalf("%s did not match", e)
	}
	if got, want := f.String(), `userName EQ "bjensen@example.com" and not (emails[type eq "other" or value eq "nobody@example.com"])`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestMatchNil(t *testing.T) {
	t.Parallel()
	var f *Filter
	if !f.Match(nil) {
		t.Fatal("nil filter must match everything")
	}
	g, err := CompileString(`title ne "x" and not (title pr)`, registry.User)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Match(nil) {
		t.Fatal("nil document: absent attributes must satisfy ne and not pr")
	}
}

// TestCompareNumbers covers numeric comparison, which the served schemas
// do not use yet (no integer or decimal attributes).
func TestCompareNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lit  string
		op   Op
		doc  any
		want bool
	}{
		{"10", OpEq, json.Number("10"), true},
		{"10", OpEq, json.Number("10.0"), true},
		{"10", OpEq, json.Number("1e1"), true},
		{"10", OpNe, json.Number("11"), true},
		{"10", OpGt, json.Number("9"), false},
		{"10", OpLt, json.Number("9"), true},
		{"10", OpGe, float64(10), true},
		{"10", OpLe, 11, false},
		{"9007199254740992", OpGt, json.Number("9007199254740993"), true}, // beyond float64 precision
		{"-1.5", OpLt, json.Number("-1"), false},
		{"-1.5", OpGt, json.Number("-1"), true},
		{"-1.5", OpGt, json.Number("-2"), false},
		{"2.5e-3", OpEq, json.Number("0.0025"), true},
		{"1", OpEq, "1", false},
		{"1", OpNe, "1", true},
		{"1", OpEq, json.Number("junk"), false},
	}
	for _, tt := range tests {
		lit, ok := parseNumber(tt.lit)
		if !ok {
			t.Fatalf("parseNumber(%q) failed", tt.lit)
		}
		n := &cmpNode{op: tt.op, kind: kindNumber, num: lit}
		if got := n.test(tt.doc); got != tt.want {
			t.Errorf("%v %s %s = %v, want %v", tt.doc, tt.op, tt.lit, got, tt.want)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		ok   bool
		unix int64
		nsec int32
	}{
		{"1970-01-01T00:00:00Z", true, 0, 0},
		{"2025-01-01T00:00:00Z", true, 1735689600, 0},
		{"2025-01-01T00:00:00", true, 1735689600, 0},
		{"2025-01-01t00:00:00z", true, 1735689600, 0},
		{"2025-01-01T01:30:00+01:30", true, 1735689600, 0},
		{"2024-12-31T19:00:00-05:00", true, 1735689600, 0},
		{"2025-01-01T00:00:00.123456789Z", true, 1735689600, 123456789},
		{"2025-01-01T00:00:00.05Z", true, 1735689600, 50000000},
		{"2025-01-01T00:00:00.1234567891234Z", true, 1735689600, 123456789},
		{"2024-02-29T00:00:00Z", true, 1709164800, 0},
		{"1969-12-31T23:59:59Z", true, -1, 0},
		{"0001-01-01T00:00:00Z", true, -62135596800, 0},
		{"2023-02-29T00:00:00Z", false, 0, 0},
		{"2025-13-01T00:00:00Z", false, 0, 0},
		{"2025-04-31T00:00:00Z", false, 0, 0},
		{"2025-01-01T24:00:00Z", false, 0, 0},
		{"2025-01-01T00:60:00Z", false, 0, 0},
		{"2025-01-01T00:00:60Z", false, 0, 0},
		{"2025-01-01", false, 0, 0},
		{"2025-01-01 00:00:00Z", false, 0, 0},
		{"2025-01-01T00:00:00.Z", false, 0, 0},
		{"2025-01-01T00:00:00+0100", false, 0, 0},
		{"2025-01-01T00:00:00+24:00", false, 0, 0},
		{"2025-01-01T00:00:00ZZ", false, 0, 0},
		{"+025-01-01T00:00:00Z", false, 0, 0},
		{"yesterday", false, 0, 0},
	}
	for _, tt := range tests {
		got, ok := parseDateTime(tt.in)
		if ok != tt.ok || (ok && (got.sec != tt.unix || got.nsec != tt.nsec)) {
			t.Errorf("parseDateTime(%q) = %+v, %v; want {%d %d}, %v", tt.in, got, ok, tt.unix, tt.nsec, tt.ok)
		}
	}
}
