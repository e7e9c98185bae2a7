package filter

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// ap builds an AttrPath the way the parser splits one.
func ap(s string) AttrPath {
	urn, attr, sub := schema.SplitURN(s)
	return AttrPath{URN: urn, Attr: attr, Sub: sub}
}

func cmp(path string, op Op, v any) Compare { return Compare{Path: ap(path), Op: op, Value: v} }

func pr(path string) Compare { return Compare{Path: ap(path), Op: OpPr} }

const (
	entURN  = schema.EnterpriseURN
	lifeURN = schema.LifecycleURN
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Expr
		str  string // canonical rendering; "" means same as in
	}{
		// RFC 7644 section 3.4.2.2 examples.
		{in: `userName eq "bjensen"`, want: cmp("userName", OpEq, "bjensen")},
		{in: `name.familyName co "O'Malley"`, want: cmp("name.familyName", OpCo, "O'Malley")},
		{in: `userName sw "J"`, want: cmp("userName", OpSw, "J")},
		{in: `urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`,
			want: Compare{Path: AttrPath{URN: schema.UserURN, Attr: "userName"}, Op: OpSw, Value: "J"}},
		{in: `title pr`, want: pr("title")},
		{in: `meta.lastModified gt "2011-05-13T04:42:34Z"`, want: cmp("meta.lastModified", OpGt, "2011-05-13T04:42:34Z")},
		{in: `meta.lastModified ge "2011-05-13T04:42:34Z"`, want: cmp("meta.lastModified", OpGe, "2011-05-13T04:42:34Z")},
		{in: `meta.lastModified lt "2011-05-13T04:42:34Z"`, want: cmp("meta.lastModified", OpLt, "2011-05-13T04:42:34Z")},
		{in: `meta.lastModified le "2011-05-13T04:42:34Z"`, want: cmp("meta.lastModified", OpLe, "2011-05-13T04:42:34Z")},
		{in: `title pr and userType eq "Employee"`, want: And{pr("title"), cmp("userType", OpEq, "Employee")}},
		{in: `title pr or userType eq "Intern"`, want: Or{pr("title"), cmp("userType", OpEq, "Intern")}},
		{in: `schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, want: cmp("schemas", OpEq, entURN)},
		{in: `userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
			want: And{cmp("userType", OpEq, "Employee"), Or{cmp("emails", OpCo, "example.com"), cmp("emails.value", OpCo, "example.org")}}},
		{in: `userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
			want: And{cmp("userType", OpNe, "Employee"), Not{Or{cmp("emails", OpCo, "example.com"), cmp("emails.value", OpCo, "example.org")}}}},
		{in: `userType eq "Employee" and (emails.type eq "work")`,
			want: And{cmp("userType", OpEq, "Employee"), cmp("emails.type", OpEq, "work")},
			str:  `userType eq "Employee" and emails.type eq "work"`},
		{in: `userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`,
			want: And{cmp("userType", OpEq, "Employee"), ValuePath{ap("emails"), And{cmp("type", OpEq, "work"), cmp("value", OpCo, "@example.com")}}}},
		{in: `emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
			want: Or{
				ValuePath{ap("emails"), And{cmp("type", OpEq, "work"), cmp("value", OpCo, "@example.com")}},
				ValuePath{ap("ims"), And{cmp("type", OpEq, "xmpp"), cmp("value", OpCo, "@foo.com")}},
			}},

		// Keywords, operators and literals are case-insensitive; names are kept.
		{in: `UserName EQ "x" AND Title PR OR NOT(active Eq TRUE)`,
			want: Or{And{cmp("UserName", OpEq, "x"), pr("Title")}, Not{cmp("active", OpEq, true)}},
			str:  `UserName eq "x" and Title pr or not (active eq true)`},
		{in: `active eq False`, want: cmp("active", OpEq, false), str: `active eq false`},
		{in: `title eq null`, want: cmp("title", OpEq, nil)},
		{in: `title ne NULL`, want: cmp("title", OpNe, nil), str: `title ne null`},

		// Whitespace and tokens without separating spaces.
		{in: " \tuserName  eq\n\"x\"\r ", want: cmp("userName", OpEq, "x"), str: `userName eq "x"`},
		{in: `(title pr)and(userName eq"x")`, want: And{pr("title"), cmp("userName", OpEq, "x")}, str: `title pr and userName eq "x"`},
		{in: `not(title pr)`, want: Not{pr("title")}, str: `not (title pr)`},
		{in: `((((title pr))))`, want: pr("title"), str: `title pr`},
		{in: `emails [type eq "work"]`, want: ValuePath{ap("emails"), cmp("type", OpEq, "work")}, str: `emails[type eq "work"]`},

		// Precedence: not > and > or; left associativity.
		{in: `a pr or b pr and c pr`, want: Or{pr("a"), And{pr("b"), pr("c")}}},
		{in: `a pr and b pr or c pr`, want: Or{And{pr("a"), pr("b")}, pr("c")}},
		{in: `a pr and b pr and c pr`, want: And{And{pr("a"), pr("b")}, pr("c")}},
		{in: `a pr or (b pr or c pr)`, want: Or{pr("a"), Or{pr("b"), pr("c")}}},
		{in: `a pr and (b pr and c pr)`, want: And{pr("a"), And{pr("b"), pr("c")}}},
		{in: `(a pr or b pr) and c pr`, want: And{Or{pr("a"), pr("b")}, pr("c")}},
		{in: `not (a pr) and b pr`, want: And{Not{pr("a")}, pr("b")}},
		{in: `not (not (a pr))`, want: Not{Not{pr("a")}}},

		// Literals.
		{in: `x eq -1`, want: cmp("x", OpEq, json.Number("-1"))},
		{in: `x gt 0.5`, want: cmp("x", OpGt, json.Number("0.5"))},
		{in: `x lt 1E+10`, want: cmp("x", OpLt, json.Number("1E+10"))},
		{in: `x eq 0`, want: cmp("x", OpEq, json.Number("0"))},
		{in: `displayName eq "q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00"`,
			want: cmp("displayName", OpEq, "q\"b\\s/n\nt\tu\u00e9\U0001F600"),
			str:  `displayName eq "q\"b\\s/n\nt\tué😀"`},
		{in: `displayName eq "\u0001"`, want: cmp("displayName", OpEq, "\x01"), str: `displayName eq "\u0001"`},
		{in: `displayName eq ""`, want: cmp("displayName", OpEq, "")},

		// Paths.
		{in: `members[$ref eq "https://x/Users/1"]`, want: ValuePath{ap("members"), cmp("$ref", OpEq, "https://x/Users/1")}},
		{in: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`,
			want: Compare{Path: AttrPath{URN: entURN, Attr: "employeeNumber"}, Op: OpEq, Value: "701984"}},
		{in: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915"`,
			want: Compare{Path: AttrPath{URN: entURN, Attr: "manager", Sub: "value"}, Op: OpEq, Value: "26118915"}},
		{in: `urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User:endDate lt "2026-01-01T00:00:00Z"`,
			want: Compare{Path: AttrPath{URN: lifeURN, Attr: "endDate"}, Op: OpLt, Value: "2026-01-01T00:00:00Z"}},
		{in: `urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]`,
			want: ValuePath{AttrPath{URN: schema.UserURN, Attr: "emails"}, cmp("type", OpEq, "work")}},

		// attr[filter].sub op value is attr[filter and sub op value].
		{in: `emails[type eq "work"].value eq "x"`,
			want: ValuePath{ap("emails"), And{cmp("type", OpEq, "work"), cmp("value", OpEq, "x")}},
			str:  `emails[type eq "work" and value eq "x"]`},
		{in: `emails[type eq "work" or type eq "home"].value pr`,
			want: ValuePath{ap("emails"), And{Or{cmp("type", OpEq, "work"), cmp("type", OpEq, "home")}, pr("value")}},
			str:  `emails[(type eq "work" or type eq "home") and value pr]`},

		// Keywords used as attribute names where they cannot be keywords.
		{in: `not pr`, want: pr("not")},
		{in: `not eq "x"`, want: cmp("not", OpEq, "x")},
		{in: `and pr or or pr`, want: Or{pr("and"), pr("or")}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Fatalf("String() = %q, want %q", s, wantStr)
			}
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", got.String(), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("re-parse of %q changed the tree:\n got %#v\nwant %#v", got.String(), again, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{``, 0, `expected attribute path, "(" or "not", found end of filter`},
		{`   `, 3, `expected attribute path, "(" or "not", found end of filter`},
		{`userName`, 8, `expected comparison operator, found end of filter`},
		{`userName foo "x"`, 9, `expected comparison operator, found "foo"`},
		{`title.pr`, 8, `expected comparison operator, found end of filter`},
		{`userName eq`, 11, `expected value (string, number, true, false or null), found end of filter`},
		{`userName eq bob`, 12, `expected value (string, number, true, false or null), found "bob"`},
		{`userName eq (`, 12, `expected value (string, number, true, false or null), found "("`},
		{`userName eq "bob`, 12, `unterminated string`},
		{`userName eq "bob\`, 16, `unterminated string`},
		{`userName eq "a\qb"`, 14, `invalid escape \q in string`},
		{`userName eq "\u12"`, 13, `invalid \u escape: want four hex digits`},
		{`userName eq "\u12`, 13, `invalid \u escape: want four hex digits`},
		{`userName eq "\ud800"`, 13, `invalid surrogate pair in \u escape`},
		{`userName eq "\ud800\u0041"`, 13, `invalid surrogate pair in \u escape`},
		{"userName eq \"a\tb\"", 14, `control character '\t' in string`},
		{`userName eq "x" "y"`, 16, `expected "and", "or" or end of filter, found string "y"`},
		{`userName eq "x" & title pr`, 16, `unexpected character '&'`},
		{`userName eq 'x'`, 12, `unexpected character '\''`},
		{`userName eq "x" andtitle pr`, 16, `expected "and", "or" or end of filter, found "andtitle"`},
		{`(userName pr`, 12, `expected ")", found end of filter`},
		{`userName pr)`, 11, `expected "and", "or" or end of filter, found ")"`},
		{`userName pr and`, 15, `expected attribute path, "(" or "not", found end of filter`},
		{`userName pr or or`, 17, `expected comparison operator, found end of filter`},
		{`userName pr or )`, 15, `expected attribute path, "(" or "not", found ")"`},
		{`()`, 1, `expected attribute path, "(" or "not", found ")"`},
		{`emails[type eq "work"`, 21, `expected "]", found end of filter`},
		{`emails[type eq "work")`, 21, `expected "]", found ")"`},
		{`emails[type eq "work"]]`, 22, `expected "and", "or" or end of filter, found "]"`},
		{`emails[]`, 7, `expected attribute path, "(" or "not", found "]"`},
		{`emails[type[value pr]]`, 11, `a value filter cannot contain another value filter`},
		{`emails[type eq "w"].`, 20, `expected sub-attribute name after "]."`},
		{`emails[type eq "w"].value`, 25, `expected comparison operator, found end of filter`},
		{`emails[type eq "w"].1x eq "a"`, 20, `invalid sub-attribute name "1x"`},
		{`emails[type eq "w"].value.x eq "a"`, 20, `invalid sub-attribute name "value.x"`},
		{`name.givenName[type eq "x"]`, 14, `a value filter cannot follow sub-attribute "givenName"`},
		{`name.a.b pr`, 6, `attribute path "name.a.b" has more than one sub-attribute level`},
		{`name. pr`, 5, `invalid sub-attribute name ""`},
		{`name.-x pr`, 5, `invalid sub-attribute name "-x"`},
		{`$ pr`, 0, `invalid attribute name "$"`},
		{`_x pr`, 0, `invalid attribute name "_x"`},
		{`urn:foo pr`, 0, `invalid schema URN "urn"`},
		{`urn:a::b:c pr`, 0, `invalid schema URN "urn:a::b"`},
		{`urn:a:b: pr`, 8, `expected attribute name after schema URN`},
		{`urn:a:b:1x pr`, 8, `invalid attribute name "1x"`},
		{`foo:bar pr`, 3, `invalid attribute path "foo:bar": ":" is only allowed after a "urn:" schema prefix`},
		{`1abc pr`, 0, `invalid number "1abc"`},
		{`userName eq 1.`, 12, `invalid number "1."`},
		{`userName eq 01`, 12, `invalid number "01"`},
		{`userName eq -`, 12, `invalid number "-"`},
		{`userName eq 1e`, 12, `invalid number "1e"`},
		{`userName eq 1e+`, 12, `invalid number "1e+"`},
		{`userName eq 1x`, 12, `invalid number "1x"`},
		{`not userName pr`, 4, `expected "(" after "not", found "userName"`},
		{`not`, 3, `expected "(" after "not", found end of filter`},
		{`not "x"`, 4, `expected "(" after "not", found string "x"`},
		{`not (title pr`, 13, `expected ")", found end of filter`},
		{"userName eq \"\xff\"", 13, `invalid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, e)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T, want *ParseError", tt.in, err)
			}
			if pe.Pos != tt.pos || pe.Msg != tt.msg {
				t.Fatalf("Parse(%q) = pos %d %q, want pos %d %q", tt.in, pe.Pos, pe.Msg, tt.pos, tt.msg)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse(`userName foo "x"`)
	want := `invalid filter at position 9: expected comparison operator, found "foo"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	_, err = ParsePath(`emails[type eq "work"`)
	want = `invalid path at position 21: expected "]", found end of path`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	nest := func(open string, n int, inner, close string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
		pos  int
		msg  string
	}{
		{name: "max length", in: `userName eq "` + strings.Repeat("x", MaxLength-14) + `"`, ok: true},
		{name: "too long", in: `userName eq "` + strings.Repeat("x", MaxLength-13) + `"`, pos: MaxLength, msg: "longer than 4096 bytes"},
		{name: "max parens", in: nest("(", MaxDepth, "title pr", ")"), ok: true},
		{name: "too many parens", in: nest("(", MaxDepth+1, "title pr", ")"), pos: MaxDepth, msg: "nested deeper than 32 levels"},
		{name: "too many nots", in: nest("not (", MaxDepth+1, "title pr", ")"), pos: 5 * MaxDepth, msg: "nested deeper than 32 levels"},
		{name: "max with brackets", in: nest("(", MaxDepth-1, `emails[type pr]`, ")"), ok: true},
		{name: "bracket too deep", in: nest("(", MaxDepth, `emails[type pr]`, ")"), pos: MaxDepth + 6, msg: "nested deeper than 32 levels"},
		// The ].sub form renders with one more level of parentheses, so it
		// must leave room for it.
		{name: "sub form too deep", in: nest("(", MaxDepth-1, `emails[a pr or b pr].value pr`, ")"), pos: MaxDepth - 1 + 6, msg: "nested deeper than 32 levels"},
		{name: "sub form fits", in: nest("(", MaxDepth-2, `emails[a pr or b pr].value pr`, ")"), ok: true},
		{name: "long chain", in: strings.TrimSuffix(strings.Repeat("a pr and ", 400), " and "), ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := Parse(e.String()); err != nil {
					t.Fatalf("re-parse: %v", err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos != tt.pos || pe.Msg != tt.msg {
				t.Fatalf("Parse error = %v, want pos %d %q", err, tt.pos, tt.msg)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want PatchPath
		str  string
	}{
		{in: `userName`, want: PatchPath{Path: ap("userName")}},
		{in: `name.givenName`, want: PatchPath{Path: ap("name.givenName")}},
		{in: `members[value eq "2819c223-7f76-453a-919d-413861904646"]`,
			want: PatchPath{Path: ap("members"), Filter: cmp("value", OpEq, "2819c223-7f76-453a-919d-413861904646")}},
		{in: `members[value eq "a" or value eq "b"]`,
			want: PatchPath{Path: ap("members"), Filter: Or{cmp("value", OpEq, "a"), cmp("value", OpEq, "b")}}},
		{in: `emails[type eq "work"].value`, want: PatchPath{Path: ap("emails"), Filter: cmp("type", OpEq, "work"), SubAttr: "value"}},
		{in: `addresses[type eq "work" and primary eq true].streetAddress`,
			want: PatchPath{Path: ap("addresses"), Filter: And{cmp("type", OpEq, "work"), cmp("primary", OpEq, true)}, SubAttr: "streetAddress"}},
		{in: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`,
			want: PatchPath{Path: AttrPath{URN: entURN, Attr: "manager"}}},
		{in: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`,
			want: PatchPath{Path: AttrPath{URN: entURN, Attr: "manager", Sub: "value"}}},
		{in: `urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]`,
			want: PatchPath{Path: AttrPath{URN: schema.UserURN, Attr: "emails"}, Filter: cmp("type", OpEq, "work")}},
		{in: ` members[ value eq "x" ] `, want: PatchPath{Path: ap("members"), Filter: cmp("value", OpEq, "x")}, str: `members[value eq "x"]`},
		{in: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`,
			want: PatchPath{Path: AttrPath{URN: "urn:ietf:params:scim:schemas:extension:enterprise:2.0", Attr: "User"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePath(tt.in)
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePath(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if got.String() != wantStr {
				t.Fatalf("String() = %q, want %q", got.String(), wantStr)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{``, 0, `expected attribute path, found end of path`},
		{`(userName)`, 0, `expected attribute path, found "("`},
		{`"userName"`, 0, `expected attribute path, found string "userName"`},
		{`userName eq "x"`, 9, `expected end of path, found "eq"`},
		{`a.b.c`, 3, `attribute path "a.b.c" has more than one sub-attribute level`},
		{`emails[type eq "work"`, 21, `expected "]", found end of path`},
		{`emails[type eq "work"].`, 23, `expected sub-attribute name after "]."`},
		{`emails[type eq "work"]x`, 22, `expected end of path, found "x"`},
		{`emails[type eq "work"].value.display`, 23, `invalid sub-attribute name "value.display"`},
		{`emails[type eq "work"].value eq "x"`, 29, `expected end of path, found "eq"`},
		{`name.givenName[type eq "x"]`, 14, `a value filter cannot follow sub-attribute "givenName"`},
		{`emails[emails[type pr]]`, 13, `a value filter cannot contain another value filter`},
		{`emails[]`, 7, `expected attribute path, "(" or "not", found "]"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			pp, err := ParsePath(tt.in)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParsePath(%q) = %+v, %v; want *ParseError", tt.in, pp, err)
			}
			if pe.Pos != tt.pos || pe.Msg != tt.msg {
				t.Fatalf("ParsePath(%q) = pos %d %q, want pos %d %q", tt.in, pe.Pos, pe.Msg, tt.pos, tt.msg)
			}
		})
	}
}

// TestStringPointers checks that hand-built trees using pointer nodes
// render like value nodes.
func TestStringPointers(t *testing.T) {
	t.Parallel()
	c := &Compare{Path: ap("title"), Op: OpPr}
	e := &Or{L: &And{L: c, R: &Not{X: c}}, R: &ValuePath{Path: ap("emails"), Filter: &Or{L: c, R: c}}}
	want := `title pr and not (title pr) or emails[title pr or title pr]`
	if got := e.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	e2 := And{L: c, R: &Or{L: c, R: c}}
	if got, want := e2.String(), `title pr and (title pr or title pr)`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
