package roles

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/internal/config"
)

// TestConfigExampleRoles keeps the roles in config.example.yaml honest: the
// file loads, they compile, and they match who they say.
func TestConfigExampleRoles(t *testing.T) {
	t.Parallel()
	c, err := config.Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Roles) != 4 || c.Roles[2].Name != "sre-admin" || c.Roles[2].ApprovalsRequired != 2 || !c.Roles[2].Privileged {
		t.Fatalf("example roles = %+v", c.Roles)
	}
	s, err := Compile(c.Roles)
	if err != nil {
		t.Fatal(err)
	}
	contractor := bob()
	contractor.UserType = "Contractor"
	contractor.Emails = []string{"pat@partner.example"}
	contractor.StartDate = ts("2026-05-01T00:00:00Z")
	senior := alice() // Senior SRE in Engineering
	for _, tt := range []struct {
		name string
		u    User
		want []string
	}{
		{"senior SRE", senior, []string{"employee", "engineering", "sre-admin"}},
		{"contractor", contractor, []string{"contractors-2026"}},
		{"inactive, no attributes", bob(), nil},
	} {
		ms, err := s.Evaluate(tt.u)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Role)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: roles %v, want %v", tt.name, got, tt.want)
		}
	}
}
