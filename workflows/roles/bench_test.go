package roles

import (
	"fmt"
	"testing"

	"github.com/jmlgate/jmlgate/internal/config"
)

// benchRoles is a realistic rule set of 10 roles: birthright roles by
// department, group and email domain, and privileged ones by group and title.
func benchRoles() []config.Role {
	g := func(c, e string) []config.Grant { return []config.Grant{{Connector: c, Entitlement: e}} }
	return []config.Role{
		{Name: "everyone", When: `user.active`, Grants: g("slack", "member")},
		{Name: "engineering", When: `user.department == "Engineering"`, Grants: g("github", "org-member")},
		{Name: "sales", When: `user.department == "Sales" || user.division == "Revenue"`, Grants: g("salesforce", "user")},
		{Name: "finance", When: `user.department.lowerAscii() == "finance"`, Grants: g("netsuite", "user")},
		{Name: "sre", When: `"sre" in user.groups`, Grants: g("pagerduty", "responder")},
		{Name: "sre-admin", When: `"sre" in user.groups && user.title.startsWith("Senior")`, Privileged: true, ApprovalsRequired: 2, Grants: g("aws", "Admin")},
		{Name: "corp-mail", When: `user.emails.exists(e, e.endsWith("@example.com"))`, Grants: g("google", "workspace")},
		{Name: "starters-2026", When: `user.startDate != null && user.startDate < timestamp("2027-01-01T00:00:00Z")`, Grants: g("lms", "onboarding-2026")},
		{Name: "managers", When: `user.title.contains("Manager") || user.userType == "Manager"`, Grants: g("workday", "manager")},
		{Name: "contractors", When: `user.userType == "Contractor" && sets.intersects(user.groups, ["vendors", "contractors"])`, Grants: g("okta", "contractor")},
	}
}

// BenchmarkEvaluate evaluates 10 roles for a typical user (2 emails, a
// dozen groups, a start date) and computes the desired grants.
func BenchmarkEvaluate(b *testing.B) {
	s, err := Compile(benchRoles())
	if err != nil {
		b.Fatal(err)
	}
	u := alice()
	for i := range 10 {
		u.Groups = append(u.Groups, fmt.Sprintf("team-%d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		ms, err := s.Evaluate(u)
		if err != nil || len(ms) != 6 {
			b.Fatalf("Evaluate = %d matches, %v", len(ms), err)
		}
		_ = Desired(ms)
	}
}

// BenchmarkCostLimit measures how long the worst rule runs before the cost
// limit stops it: the bound on what one rule can cost per person.
func BenchmarkCostLimit(b *testing.B) {
	s, err := Compile([]config.Role{{Name: "r", When: `user.groups.exists(a, user.groups.exists(b, user.groups.exists(c, a + b + c == "x")))`,
		Grants: []config.Grant{{Connector: "c", Entitlement: "e"}}}})
	if err != nil {
		b.Fatal(err)
	}
	u := alice()
	for i := range 500 {
		u.Groups = append(u.Groups, fmt.Sprintf("group-%d", i))
	}
	for b.Loop() {
		if _, err := s.Evaluate(u); err == nil {
			b.Fatal("cost limit not reached")
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	rs := benchRoles()
	for b.Loop() {
		if _, err := Compile(rs); err != nil {
			b.Fatal(err)
		}
	}
}
