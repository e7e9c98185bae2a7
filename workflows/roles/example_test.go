package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/internal/config"
)

// TestConfigExampleRoles keeps the commented roles in config.example.yaml
// honest: uncommented, they load and compile, and match who they say.
func TestConfigExampleRoles(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\nroles: []\n")
	if !ok {
		t.Fatal(`config.example.yaml has no "roles: []" line`)
	}
	var b strings.Builder
	b.WriteString("roles:\n")
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		b.WriteString(strings.TrimPrefix(l, "#") + "\n")
	}
	c, err := config.Parse([]byte(b.String()), nil)
	if err != nil {
		t.Fatalf("uncommented example roles:\n%s\n%v", b.String(), err)
	}
	if len(c.Roles) != 3 || c.Roles[1].ApprovalsRequired != 2 {
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
		{"senior SRE", senior, []string{"engineering", "sre-admin"}},
		{"contractor", contractor, []string{"contractors-2026"}},
		{"nobody", bob(), nil},
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
