package config

import (
	"strings"
	"testing"
)

func TestMFAExceptionMax(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml, problem string
	}{
		{"mfa:\n  exception_max: 168h\n", ""},
		{"mfa:\n  exception_max: 0s\n", "mfa.exception_max: must be between"},
		{"mfa:\n  exception_max: 9000h\n", "mfa.exception_max: must be between"},
		{"mfa:\n  exception_max: 30\n", "mfa.exception_max"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml), func(string) (string, bool) { return "", false })
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("%q: %v", c.yaml, err)
		case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
			t.Errorf("%q: got %v, want a problem with %q", c.yaml, err, c.problem)
		}
	}
}
