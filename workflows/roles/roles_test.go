package roles

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
)

func ts(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// alice is a typical engineer as UserFromSCIM would build her.
func alice() User {
	return User{
		UserName:       "alice@example.com",
		DisplayName:    "Alice Ng",
		Title:          "Senior Site Reliability Engineer",
		UserType:       "Employee",
		Active:         true,
		Emails:         []string{"alice@example.com", "alice.ng@corp.example"},
		Department:     "Engineering",
		Division:       "Platform",
		Organization:   "Example Corp",
		CostCenter:     "CC-4100",
		EmployeeNumber: "100231",
		Manager:        "mgr-42",
		Groups:         []string{"sre", "eng-all"},
		StartDate:      ts("2026-09-01T00:00:00Z"),
	}
}

// bob has every attribute absent.
func bob() User { return UserFromSCIM(map[string]any{}, nil) }

func role(name, when string) config.Role {
	return config.Role{Name: name, When: when, Grants: []config.Grant{{Connector: "c", Entitlement: name}}}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		roles []config.Role
		want  []string // one line per failing role: the start of its message
		index int      // of the first failing role
	}{
		{"undeclared variable", []config.Role{role("sre-admin", `usr.department == "x"`)}, []string{
			`role "sre-admin": when: ERROR: <input>:1:1: undeclared reference to 'usr'`,
		}, 0},
		{"undefined field", []config.Role{role("eng", `user.departmnet == "Engineering"`)}, []string{
			`role "eng": when: ERROR: <input>:1:5: undefined field 'departmnet'`,
		}, 0},
		{"SCIM name that is not a field", []config.Role{role("eng", `user.name.givenName == "A"`)}, []string{
			`role "eng": when: ERROR: <input>:1:5: undefined field 'name'`,
		}, 0},
		{"string result", []config.Role{role("r", `user.department`)}, []string{
			`role "r": when: must have type bool, got string`,
		}, 0},
		{"dyn result", []config.Role{role("r", `user.startDate`)}, []string{
			`role "r": when: must have type bool, got dyn`,
		}, 0},
		{"int result", []config.Role{role("r", `size(user.groups)`)}, []string{
			`role "r": when: must have type bool, got int`,
		}, 0},
		{"syntax error", []config.Role{role("r", `user.department == `)}, []string{
			`role "r": when: ERROR: <input>:1:20: Syntax error: mismatched input '<EOF>'`,
		}, 0},
		{"empty expression", []config.Role{role("r", ``)}, []string{
			`role "r": when: ERROR: <input>:1:0: Syntax error`,
		}, 0},
		{"type mismatch", []config.Role{role("r", `user.manager == 1`)}, []string{
			`role "r": when: ERROR: <input>:1:14: found no matching overload for '_==_' applied to '(string, int)'`,
		}, 0},
		{"unknown function", []config.Role{role("r", `user.title.startWith("S")`)}, []string{
			`role "r": when: ERROR: <input>:1:21: undeclared reference to 'startWith' (did you mean 'startsWith'?)`,
		}, 0},
		{"bad timestamp constant", []config.Role{role("r", `user.startDate != null && user.startDate < timestamp("2027-13-01")`)}, []string{
			`role "r": when: invalid RFC 3339 timestamp "2027-13-01"`,
		}, 0},
		{"bad regexp", []config.Role{role("r", `user.title.matches("(((")`)}, []string{
			`role "r": when: error parsing regexp: missing closing )`,
		}, 0},
		{"too long", []config.Role{role("r", strings.Repeat(`user.active || `, 300)+"true")}, []string{
			`role "r": when: ERROR: <input>:-1:0: expression code point size exceeds limit: size: 4504, limit 4096`,
		}, 0},
		{"too many nodes", []config.Role{role("r", `size([`+strings.Repeat("1,", 1200)+`1]) > 0`)}, []string{
			`role "r": when: ERROR: <input>:-1:0: expression node count exceeds limit`,
		}, 0},
		{"too deep", []config.Role{role("r", strings.Repeat("(", 60)+"true"+strings.Repeat(")", 60))}, []string{
			`role "r": when: ERROR: <input>:-1:0: expression recursion limit exceeded: 50`,
		}, 0},
		{"empty name", []config.Role{role("", `true`)}, []string{
			`role "": when: role has no name`,
		}, 0},
		{"duplicate name", []config.Role{role("a", `true`), role("b", "true"), role("a", `false`)}, []string{
			`role "a": when: duplicate role name (also roles[0])`,
		}, 2},
		{"several roles at once, in order", []config.Role{
			role("ok", `true`),
			role("sre-admin", `usr.x`),
			role("fine", `"sre" in user.groups`),
			role("eng", `user.departmnet == "x"`),
			role("str", `user.title`),
		}, []string{
			`role "sre-admin": when: ERROR: <input>:1:1: undeclared reference to 'usr'`,
			`role "eng": when: ERROR: <input>:1:5: undefined field 'departmnet'`,
			`role "str": when: must have type bool, got string`,
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Compile(tt.roles)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if s != nil {
				t.Error("Compile returned a Set along with an error")
			}
			var first *RoleError
			if !errors.As(err, &first) {
				t.Fatalf("error %v is not a *RoleError", err)
			}
			// Each failing role's message starts a line; CEL adds source
			// snippet lines (" | ...") after its own.
			var got []string
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(l, "role ") {
					got = append(got, l)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("error names %d roles, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("role error %d =\n  %s\nwant prefix\n  %s", i, got[i], tt.want[i])
				}
			}
			if first.Index != tt.index || first.Role != tt.roles[tt.index].Name {
				t.Errorf("first error is for role %q at %d, want %q at %d", first.Role, first.Index, tt.roles[tt.index].Name, tt.index)
			}
		})
	}
}

func TestCompileSuccess(t *testing.T) {
	t.Parallel()
	cfg := []config.Role{
		{Name: "eng", Description: "engineers", When: `user.department == "Engineering"`,
			Grants: []config.Grant{{Connector: "github", Entitlement: "org-member"}, {Connector: "slack", Entitlement: "#eng"}}},
		{Name: "sre-admin", When: `"sre" in user.groups`, Privileged: true, ApprovalsRequired: 2,
			Grants: []config.Grant{{Connector: "aws", Entitlement: "Admin"}}},
	}
	s, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Role{
		{Name: "eng", Description: "engineers", When: `user.department == "Engineering"`,
			Grants: []Grant{{Connector: "github", Entitlement: "org-member"}, {Connector: "slack", Entitlement: "#eng"}}},
		{Name: "sre-admin", When: `"sre" in user.groups`, Privileged: true, ApprovalsRequired: 2,
			Grants: []Grant{{Connector: "aws", Entitlement: "Admin"}}},
	}
	got := s.Roles()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Roles() =\n%+v\nwant\n%+v", got, want)
	}
	// Roles returns a copy, and the Set does not alias the config.
	got[0].Grants[0].Entitlement = "changed"
	got[1].Name = "changed"
	cfg[0].Grants[0].Entitlement = "changed too"
	if again := s.Roles(); !reflect.DeepEqual(again, want) {
		t.Errorf("Set changed through Roles() or the config: %+v", again)
	}
	ms, err := s.Evaluate(alice())
	if err != nil {
		t.Fatal(err)
	}
	ms[0].Grants[0].Entitlement = "changed"
	if again := s.Roles(); !reflect.DeepEqual(again, want) {
		t.Errorf("Set changed through a Match: %+v", again)
	}

	empty, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs := empty.Roles(); len(rs) != 0 || rs == nil {
		t.Errorf("Compile(nil).Roles() = %#v, want empty non-nil", rs)
	}
	if ms, err := empty.Evaluate(alice()); err != nil || ms == nil || len(ms) != 0 {
		t.Errorf("empty Set Evaluate = %#v, %v; want empty non-nil", ms, err)
	}
}

func TestExpressions(t *testing.T) {
	t.Parallel()
	noStart := alice()
	noStart.StartDate = nil
	late := alice()
	late.StartDate = ts("2027-03-01T09:00:00+01:00")
	other := alice()
	other.Emails = []string{"alice@gmail.test"}
	junior := alice()
	junior.Title = "Site Reliability Engineer"
	inactive := alice()
	inactive.Active = false
	tests := []struct {
		when string
		user User
		want bool
	}{
		// The examples of the design and the brief.
		{`user.department == "Engineering"`, alice(), true},
		{`user.department == "Engineering"`, bob(), false},
		{`"sre" in user.groups`, alice(), true},
		{`"sre" in user.groups`, bob(), false},
		{`user.active && user.title.startsWith("Senior")`, alice(), true},
		{`user.active && user.title.startsWith("Senior")`, junior, false},
		{`user.active && user.title.startsWith("Senior")`, inactive, false},
		{`user.emails.exists(e, e.endsWith("@example.com"))`, alice(), true},
		{`user.emails.exists(e, e.endsWith("@example.com"))`, other, false},
		{`user.emails.exists(e, e.endsWith("@example.com"))`, bob(), false},
		{`user.startDate != null && user.startDate < timestamp("2027-01-01T00:00:00Z")`, alice(), true},
		{`user.startDate != null && user.startDate < timestamp("2027-01-01T00:00:00Z")`, late, false},
		{`user.startDate != null && user.startDate < timestamp("2027-01-01T00:00:00Z")`, noStart, false},
		// Every field is reachable under its SCIM name.
		{`user.userName == "alice@example.com" && user.displayName == "Alice Ng" && user.userType == "Employee"`, alice(), true},
		{`user.division == "Platform" && user.organization == "Example Corp" && user.costCenter == "CC-4100"`, alice(), true},
		{`user.employeeNumber == "100231" && user.manager == "mgr-42"`, alice(), true},
		{`user.endDate == null && has(user.startDate) && !has(user.endDate)`, alice(), true},
		{`user.startDate.getFullYear() == 2026 && user.startDate.getMonth() == 8`, alice(), true},
		// Absent values are "", false, [] and null, never errors.
		{`user.department == "" && !user.active && user.groups == [] && size(user.emails) == 0 && user.startDate == null && user.endDate == null`, bob(), true},
		// Standard library and the strings and sets extensions.
		{`user.department.lowerAscii() == "engineering"`, alice(), true},
		{`sets.intersects(user.groups, ["sre", "dba"])`, alice(), true},
		{`sets.contains(user.groups, ["sre", "dba"])`, alice(), false},
		{`user.costCenter.matches("^CC-4[0-9]{3}$")`, alice(), true},
		{`user.department in ["Engineering", "Product"] || user.title.contains("Engineer")`, alice(), true},
		{`int(user.employeeNumber) > 100000`, alice(), true},
		// Short-circuit evaluation protects a null date either way round.
		{`user.startDate == null || user.startDate > timestamp("2030-01-01T00:00:00Z")`, noStart, true},
		{`user.startDate > timestamp("2020-01-01T00:00:00Z") || true`, noStart, true},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			t.Parallel()
			s, err := Compile([]config.Role{role("r", tt.when)})
			if err != nil {
				t.Fatal(err)
			}
			ms, err := s.Evaluate(tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ms) == 1; got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEvaluationErrors(t *testing.T) {
	t.Parallel()
	noStart := alice()
	noStart.StartDate = nil
	manyGroups := alice()
	for i := range 200 {
		manyGroups.Groups = append(manyGroups.Groups, fmt.Sprintf("group-%d", i))
	}
	letters := alice()
	letters.EmployeeNumber = "E-12"
	tests := []struct {
		name string
		when string
		user User
		want string
	}{
		{"null date compared", `user.startDate < timestamp("2027-01-01T00:00:00Z")`, noStart,
			`role "r": when: evaluation failed: no such overload`},
		{"missing map key", `{"Engineering": true}[user.department]`, bob(),
			`role "r": when: evaluation failed: no such key: `},
		{"index out of range", `user.emails[2] == "x"`, alice(),
			`role "r": when: evaluation failed: index out of bounds: 2`},
		{"failed conversion", `int(user.employeeNumber) > 5`, letters,
			`role "r": when: evaluation failed: type conversion error from 'string' to 'int'`},
		{"cost limit", `user.groups.exists(a, user.groups.exists(b, user.groups.exists(c, a + b + c == "x")))`, manyGroups,
			`role "r": when: evaluation failed: operation cancelled: actual cost limit exceeded`},
		{"dyn date used as a string", `user.startDate.startsWith("2026")`, alice(),
			`role "r": when: evaluation failed: no such overload`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Compile([]config.Role{role("always", "true"), role("r", tt.when)})
			if err != nil {
				t.Fatal(err)
			}
			ms, err := s.Evaluate(tt.user)
			if err == nil {
				t.Fatalf("Evaluate succeeded with %+v", ms)
			}
			if ms != nil {
				t.Errorf("Evaluate returned matches %+v along with an error", ms)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
			var re *RoleError
			if !errors.As(err, &re) || re.Role != "r" || re.Index != 1 {
				t.Errorf("error = %#v, want *RoleError for role r at index 1", err)
			}
		})
	}

	// Every failing role is reported, in order, and none counts as a match.
	s, err := Compile([]config.Role{
		role("a", `user.startDate < timestamp("2027-01-01T00:00:00Z")`),
		role("b", "true"),
		role("c", `user.endDate > timestamp("2027-01-01T00:00:00Z")`),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Evaluate(noStart)
	var names []string
	for _, l := range strings.Split(fmt.Sprint(err), "\n") {
		names = append(names, strings.SplitN(l, ":", 2)[0])
	}
	if want := []string{`role "a"`, `role "c"`}; !reflect.DeepEqual(names, want) {
		t.Errorf("failing roles = %q, want %q (error %v)", names, want, err)
	}
	// The same Set evaluates a user for whom the rules work.
	both := alice()
	both.EndDate = ts("2027-06-30T17:00:00Z")
	if ms, err := s.Evaluate(both); err != nil || len(ms) != 3 {
		t.Errorf("Evaluate(both dates) = %+v, %v; want a, b and c", ms, err)
	}
}

func TestEvaluateMatches(t *testing.T) {
	t.Parallel()
	s, err := Compile([]config.Role{
		{Name: "everyone", When: "user.active", Grants: []config.Grant{{Connector: "slack", Entitlement: "member"}}},
		{Name: "contractors", When: `user.userType == "Contractor"`, Grants: []config.Grant{{Connector: "slack", Entitlement: "guest"}}},
		{Name: "sre-admin", When: `"sre" in user.groups`, Privileged: true, ApprovalsRequired: 2,
			Grants: []config.Grant{{Connector: "aws", Entitlement: "Admin"}, {Connector: "slack", Entitlement: "member"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Evaluate(alice())
	if err != nil {
		t.Fatal(err)
	}
	want := []Match{
		{Role: "everyone", Grants: []Grant{{"slack", "member"}}},
		{Role: "sre-admin", Privileged: true, ApprovalsRequired: 2, Grants: []Grant{{"aws", "Admin"}, {"slack", "member"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate =\n%+v\nwant\n%+v", got, want)
	}
}

func TestEvaluateConcurrently(t *testing.T) {
	t.Parallel()
	s, err := Compile(benchRoles())
	if err != nil {
		t.Fatal(err)
	}
	users := []User{alice(), bob()}
	for i := range 6 {
		u := alice()
		u.Department = []string{"Engineering", "Sales", "Finance"}[i%3]
		u.Groups = append(u.Groups, fmt.Sprintf("team-%d", i))
		users = append(users, u)
	}
	want := make([][]Match, len(users))
	for i, u := range users {
		if want[i], err = s.Evaluate(u); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(users))
	for range 8 {
		wg.Go(func() {
			for i, u := range users {
				got, err := s.Evaluate(u)
				if err != nil || !reflect.DeepEqual(got, want[i]) {
					errs <- fmt.Errorf("user %d: got %+v, %v; want %+v", i, got, err, want[i])
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDesired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ms   []Match
		want []DesiredGrant
	}{
		{"no matches", nil, []DesiredGrant{}},
		{"one role, sorted by connector then entitlement", []Match{
			{Role: "eng", Grants: []Grant{{"slack", "#eng"}, {"github", "team-b"}, {"github", "team-a"}, {"aws", "ReadOnly"}}},
		}, []DesiredGrant{
			{Connector: "aws", Entitlement: "ReadOnly", Roles: []string{"eng"}},
			{Connector: "github", Entitlement: "team-a", Roles: []string{"eng"}},
			{Connector: "github", Entitlement: "team-b", Roles: []string{"eng"}},
			{Connector: "slack", Entitlement: "#eng", Roles: []string{"eng"}},
		}},
		{"union deduplicated, roles in match order", []Match{
			{Role: "everyone", Grants: []Grant{{"slack", "member"}, {"google", "workspace"}}},
			{Role: "eng", Grants: []Grant{{"slack", "member"}, {"github", "member"}}},
			{Role: "sre", Grants: []Grant{{"github", "member"}, {"slack", "member"}}},
		}, []DesiredGrant{
			{Connector: "github", Entitlement: "member", Roles: []string{"eng", "sre"}},
			{Connector: "google", Entitlement: "workspace", Roles: []string{"everyone"}},
			{Connector: "slack", Entitlement: "member", Roles: []string{"everyone", "eng", "sre"}},
		}},
		{"privileged if any granting role is", []Match{
			{Role: "eng", Grants: []Grant{{"aws", "ReadOnly"}, {"aws", "PowerUser"}}},
			{Role: "sre-admin", Privileged: true, ApprovalsRequired: 2, Grants: []Grant{{"aws", "PowerUser"}, {"aws", "Admin"}}},
			{Role: "oncall", Grants: []Grant{{"aws", "Admin"}}},
		}, []DesiredGrant{
			{Connector: "aws", Entitlement: "Admin", Roles: []string{"sre-admin", "oncall"}, Privileged: true},
			{Connector: "aws", Entitlement: "PowerUser", Roles: []string{"eng", "sre-admin"}, Privileged: true},
			{Connector: "aws", Entitlement: "ReadOnly", Roles: []string{"eng"}},
		}},
		{"byte order and case-sensitive entitlements", []Match{
			{Role: "r", Grants: []Grant{{"b", "x"}, {"B", "x"}, {"a", "Z"}, {"a", "z"}, {"a", "Z"}}},
		}, []DesiredGrant{
			{Connector: "B", Entitlement: "x", Roles: []string{"r"}},
			{Connector: "a", Entitlement: "Z", Roles: []string{"r"}},
			{Connector: "a", Entitlement: "z", Roles: []string{"r"}},
			{Connector: "b", Entitlement: "x", Roles: []string{"r"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Desired(tt.ms)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Desired =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
