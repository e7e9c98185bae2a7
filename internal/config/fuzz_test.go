package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that any input yields either a Config that validates or
// an *Error, and never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"server:\n  listen: 127.0.0.1:0\n",
		"auth:\n  tokens:\n    - name: a\n      sha256: " + hashA + "\n      scopes: [scim]\n",
		"auth:\n  jwt:\n    issuer: i\n    audience: a\n    jwks_file: k\n",
		"a: &x {b: 1}\nserver: *x\n",
		"log: {<<: {level: debug}}\n",
		"? [a]\n: b\n",
		"!!map {server: !!str x}\n",
		"dsn: ${X:-y} $$ ${\n",
		"- [a, {b: c}]\n",
		"roles:\n  - {name: a, when: 'true', privileged: true, grants: [{connector: c, entitlement: e}]}\n  - {name: a, approvals_required: 9}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, env(map[string]string{"X": "1"}))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %v (%T) is not an *Error with problems", err, err)
			}
			if c != nil {
				t.Fatal("Config returned with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("returned Config does not validate: %v", err)
		}
	})
}
