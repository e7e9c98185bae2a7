package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []Role
	}{
		{"no roles section", "log: {level: info}\n", nil},
		{"empty list", "roles: []\n", []Role{}},
		{"full role and defaults", `roles:
  - name: engineering
    description: Every engineer
    when: user.department == "Engineering"
    grants:
      - {connector: github, entitlement: org-member}
      - {connector: slack, entitlement: "#eng"}
  - name: sre-admin
    when: >-
      "sre" in user.groups
      && user.active
    privileged: true
    grants: [{connector: aws, entitlement: AdministratorAccess}]
  - name: finance.approver_2
    when: "true"
    privileged: true
    approvals_required: 2
    grants: [{connector: netsuite, entitlement: approver}]
  - name: null-approvals
    when: "true"
    privileged: true
    approvals_required: null
    grants: [{connector: x, entitlement: y}]
  - name: "0-explicit-zero"
    when: "true"
    approvals_required: 0
    grants: [{connector: x, entitlement: y}]
`, []Role{
			{Name: "engineering", Description: "Every engineer", When: `user.department == "Engineering"`, Grants: []Grant{
				{Connector: "github", Entitlement: "org-member"}, {Connector: "slack", Entitlement: "#eng"},
			}},
			{Name: "sre-admin", When: `"sre" in user.groups && user.active`, Privileged: true, ApprovalsRequired: 1,
				Grants: []Grant{{Connector: "aws", Entitlement: "AdministratorAccess"}}},
			{Name: "finance.approver_2", When: "true", Privileged: true, ApprovalsRequired: 2,
				Grants: []Grant{{Connector: "netsuite", Entitlement: "approver"}}},
			{Name: "null-approvals", When: "true", Privileged: true, ApprovalsRequired: 1,
				Grants: []Grant{{Connector: "x", Entitlement: "y"}}},
			{Name: "0-explicit-zero", When: "true", Grants: []Grant{{Connector: "x", Entitlement: "y"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.src), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Roles, tt.want) {
				t.Errorf("roles =\n%+v\nwant\n%+v", c.Roles, tt.want)
			}
		})
	}
}

func TestValidateRoles(t *testing.T) {
	t.Parallel()
	// role builds a one-role document from the lines of its body.
	role := func(body ...string) string {
		return "roles:\n  - " + strings.Join(body, "\n    ") + "\n"
	}
	const grant = "grants: [{connector: c, entitlement: e}]"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"valid", role("name: a", "when: 'true'", grant), nil},
		{"name missing points at the role", role("when: 'true'", grant), []string{
			`roles[0].name: required (line 2)`,
		}},
		{"name pattern", `roles:
  - {name: Sre, when: 'true', ` + grant + `}
  - {name: -sre, when: 'true', ` + grant + `}
  - {name: "sre admin", when: 'true', ` + grant + `}
  - {name: ` + strings.Repeat("a", 64) + `, when: 'true', ` + grant + `}
  - {name: ` + strings.Repeat("a", 63) + `, when: 'true', ` + grant + `}
  - {name: 9.a_b-c, when: 'true', ` + grant + `}
`, []string{
			`roles[0].name: invalid name "Sre": want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit (line 2)`,
			`roles[1].name: invalid name "-sre": want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit (line 3)`,
			`roles[2].name: invalid name "sre admin": want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit (line 4)`,
			`roles[3].name: invalid name "` + strings.Repeat("a", 64) + `": want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit (line 5)`,
		}},
		{"duplicate names", `roles:
  - {name: a, when: 'true', ` + grant + `}
  - {name: b, when: 'true', ` + grant + `}
  - {name: a, when: 'true', ` + grant + `}
`, []string{`roles[2].name: duplicate role name "a" (also roles[0]) (line 4)`}},
		{"when missing", role("name: a", grant), []string{
			`roles[0].when: required: a CEL expression over user, such as user.department == "Engineering" (line 2)`,
		}},
		{"when blank", role("name: a", "when: '  '", grant), []string{
			`roles[0].when: required: a CEL expression over user, such as user.department == "Engineering" (line 3)`,
		}},
		{"grants missing", role("name: a", "when: 'true'"), []string{
			`roles[0].grants: at least one grant {connector, entitlement} is required (line 2)`,
		}},
		{"grants empty", role("name: a", "when: 'true'", "grants: []"), []string{
			`roles[0].grants: at least one grant {connector, entitlement} is required (line 4)`,
		}},
		{"grant fields", role("name: a", "when: 'true'", "grants:",
			"  - {connector: c}",
			"  - entitlement: e",
			"  - {connector: ' ', entitlement: ''}",
		), []string{
			`roles[0].grants[0].entitlement: required (line 5)`,
			`roles[0].grants[1].connector: required (line 6)`,
			`roles[0].grants[2].connector: required (line 7)`,
			`roles[0].grants[2].entitlement: required (line 7)`,
		}},
		{"duplicate grant", role("name: a", "when: 'true'", "grants:",
			"  - {connector: c, entitlement: e}",
			"  - {connector: c, entitlement: E}",
			"  - {connector: d, entitlement: e}",
			"  - {connector: c, entitlement: e}",
		), []string{
			`roles[0].grants[3]: duplicate grant of "e" in connector "c" (also roles[0].grants[0]) (line 8)`,
		}},
		{"same grant in two roles is fine", "roles:\n  - {name: a, when: 'true', " + grant + "}\n  - {name: b, when: 'true', " + grant + "}\n", nil},
		{"approvals on a non-privileged role", role("name: a", "when: 'true'", grant, "approvals_required: 2"), []string{
			`roles[0].approvals_required: must be 0 (or absent) when the role is not privileged, got 2 (line 5)`,
		}},
		{"privileged with zero approvals", role("name: a", "when: 'true'", grant, "privileged: true", "approvals_required: 0"), []string{
			`roles[0].approvals_required: must be from 1 to 5 for a privileged role, got 0 (line 6)`,
		}},
		{"privileged with too many approvals", role("name: a", "when: 'true'", grant, "privileged: true", "approvals_required: 6"), []string{
			`roles[0].approvals_required: must be from 1 to 5 for a privileged role, got 6 (line 6)`,
		}},
		{"privileged with negative approvals", role("name: a", "when: 'true'", grant, "privileged: true", "approvals_required: -1"), []string{
			`roles[0].approvals_required: must be from 1 to 5 for a privileged role, got -1 (line 6)`,
		}},
		{"privileged with five approvals", role("name: a", "when: 'true'", grant, "privileged: true", "approvals_required: 5"), nil},
		{"every problem of every role at once", `roles:
  - name: A
    grants:
      - {connector: c}
  - name: b
    when: x
    approvals_required: 1
  - {name: b, when: y, grants: [{connector: c, entitlement: e}, {connector: c, entitlement: e}]}
`, []string{
			`roles[0].name: invalid name "A": want 1 to 63 characters of a-z, 0-9, "_", ".", "-", starting with a letter or digit (line 2)`,
			`roles[0].when: required: a CEL expression over user, such as user.department == "Engineering" (line 2)`,
			`roles[0].grants[0].entitlement: required (line 4)`,
			`roles[1].grants: at least one grant {connector, entitlement} is required (line 5)`,
			`roles[1].approvals_required: must be 0 (or absent) when the role is not privileged, got 1 (line 7)`,
			`roles[2].name: duplicate role name "b" (also roles[1]) (line 8)`,
			`roles[2].grants[1]: duplicate grant of "e" in connector "c" (also roles[2].grants[0]) (line 8)`,
		}},
		{"unknown keys and wrong types", `roles:
  - name: a
    when: 'true'
    grant: [{connector: c, entitlement: e}]
    privileged: maybe
    approvals_required: two
    grants:
      - {connector: c, entitlment: e}
      - just-a-string
  - not-a-mapping
`, []string{
			`roles[0].grant: unknown key (did you mean "grants"?) (line 4)`,
			`roles[0].privileged: want true or false, got "maybe" (line 5)`,
			`roles[0].approvals_required: want an integer, got "two" (line 6)`,
			`roles[0].grants[0].entitlment: unknown key (did you mean "entitlement"?) (line 8)`,
			`roles[0].grants[1]: want a mapping, got "just-a-string" (line 9)`,
			`roles[1]: want a mapping, got "not-a-mapping" (line 10)`,
		}},
		{"roles not a list", "roles: {name: a}\n", []string{`roles: want a list, got a mapping (line 1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.src), nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if c != nil {
				t.Error("Parse returned a Config along with problems")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestValidateRolesOnStructs(t *testing.T) {
	t.Parallel()
	// A Role built in code gets no approvals default.
	c := Default()
	c.Roles = []Role{
		{Name: "a", When: "true", Privileged: true, Grants: []Grant{{Connector: "c", Entitlement: "e"}}},
		{Name: "b", When: "true", Privileged: true, ApprovalsRequired: 3, Grants: []Grant{{Connector: "c", Entitlement: "e"}}},
	}
	got := problems(t, c.Validate())
	want := []string{`roles[0].approvals_required: must be from 1 to 5 for a privileged role, got 0`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("log: {level: info}\nroles:\n  - name: a\n    when: 'true'\n    grants: [{connector: c, entitlement: e}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"roles[0].when":                  4,
		"roles[0].grants[0].entitlement": 5,
		"log.level":                      1,
		"roles[0].privileged":            0, // not in the file
		"roles[1]":                       0,
	} {
		if got := c.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	if got := Default().Line("roles[0].when"); got != 0 {
		t.Errorf("Default().Line = %d, want 0", got)
	}
}
