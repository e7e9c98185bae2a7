package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEventIssuersParse(t *testing.T) {
	t.Parallel()
	src := `mfa:
  event_issuers:
    - issuer: https://idp.example.com
      audience: jmlgate
      jwks_url: https://idp.example.com/jwks.json
    - issuer: https://sts.example.net/tenant/
      audience: https://jml.example.com/api/v1/events
      jwks_file: /etc/jmlgate/okta-jwks.json
      algorithms: [PS256, ES384]
      max_age: 2m
      jwks_refresh: 1h
`
	c, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []EventIssuer{
		{
			Issuer: "https://idp.example.com", Audience: "jmlgate", JWKSURL: "https://idp.example.com/jwks.json",
			Algorithms: []string{"RS256", "ES256", "EdDSA"},
			MaxAge:     Duration(10 * time.Minute), JWKSRefresh: Duration(15 * time.Minute),
		},
		{
			Issuer: "https://sts.example.net/tenant/", Audience: "https://jml.example.com/api/v1/events",
			JWKSFile: "/etc/jmlgate/okta-jwks.json", Algorithms: []string{"PS256", "ES384"},
			MaxAge: Duration(2 * time.Minute), JWKSRefresh: Duration(time.Hour),
		},
	}
	if !reflect.DeepEqual(c.MFA.EventIssuers, want) {
		t.Errorf("event_issuers =\n%+v\nwant\n%+v", c.MFA.EventIssuers, want)
	}
	if c.MFA.ExceptionMax != Default().MFA.ExceptionMax {
		t.Errorf("exception_max = %s, want the default", c.MFA.ExceptionMax)
	}
	if got := c.Line("mfa.event_issuers[1].max_age"); got != 10 {
		t.Errorf("Line(max_age of the second issuer) = %d, want 10", got)
	}
}

func TestEventIssuersProblems(t *testing.T) {
	t.Parallel()
	issuers := func(body string) string { return "mfa:\n  event_issuers:\n" + body }
	const ok = "    - issuer: i\n      audience: a\n      jwks_file: k.json\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"valid", issuers(ok), nil},
		{"valid loopback http", issuers("    - {issuer: i, audience: a, jwks_url: 'http://[::1]:8443/k'}\n"), nil},
		{"empty list", issuers("    []\n"), nil},
		{"empty entry", issuers("    - {}\n"), []string{
			`mfa.event_issuers[0].issuer: required: the iss of the identity provider's SETs (line 3)`,
			`mfa.event_issuers[0].audience: required: the aud the identity provider addresses this receiver by (line 3)`,
			`mfa.event_issuers[0]: set one of jwks_file and jwks_url (line 3)`,
		}},
		{"every problem at once", issuers(ok + `    - issuer: i
      audience: ""
      jwks_file: k.json
      jwks_url: https://idp/k
      algorithms: [none, HS256, RS256, XS1]
      max_age: 0s
      jwks_refresh: -1m
    - issuer: j
      audience: a
      jwks_url: http://idp.example.com/k
      algorithms: []
      max_age: 25h
    - issuer: k
      audience: a
      jwks_url: /k
`), []string{
			`mfa.event_issuers[1].issuer: duplicate issuer "i" (also mfa.event_issuers[0]) (line 6)`,
			`mfa.event_issuers[1].audience: required: the aud the identity provider addresses this receiver by (line 7)`,
			`mfa.event_issuers[1]: set only one of jwks_file and jwks_url, not both (line 6)`,
			`mfa.event_issuers[1].algorithms[0]: "none" is not allowed: only asymmetric signatures are accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 10)`,
			`mfa.event_issuers[1].algorithms[1]: "HS256" is not allowed: only asymmetric signatures are accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 10)`,
			`mfa.event_issuers[1].algorithms[3]: unknown algorithm "XS1" (want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 10)`,
			`mfa.event_issuers[1].max_age: must be between 1ns and 24h0m0s, got 0s (line 11)`,
			`mfa.event_issuers[1].jwks_refresh: must be positive, got -1m0s (line 12)`,
			`mfa.event_issuers[2].jwks_url: want https (http only to a loopback host), got "http://idp.example.com/k" (line 15)`,
			`mfa.event_issuers[2].algorithms: at least one algorithm is required (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA) (line 16)`,
			`mfa.event_issuers[2].max_age: must be between 1ns and 24h0m0s, got 25h0m0s (line 17)`,
			`mfa.event_issuers[3].jwks_url: want an absolute https URL, got "/k" (line 20)`,
		}},
		// Key and type problems are all reported by the strict decoder.
		{"unknown key and wrong types", issuers(`    - issuer: i
      audience: [a]
      jwks_uri: https://idp/k
      max_age: 600
    - not a mapping
`), []string{
			`mfa.event_issuers[0].audience: want a string, got a list (line 4)`,
			`mfa.event_issuers[0].jwks_uri: unknown key (did you mean "jwks_url"?) (line 5)`,
			`mfa.event_issuers[0].max_age: want a duration like "30s", got "600" (line 6)`,
			`mfa.event_issuers[1]: want a mapping, got "not a mapping" (line 7)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src), nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if got := problems(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// A configuration built in code (no file, so no lines) is validated too.
func TestEventIssuersValidateInCode(t *testing.T) {
	t.Parallel()
	c := Default()
	c.MFA.EventIssuers = []EventIssuer{DefaultEventIssuer(), {Issuer: "i", Audience: "a", JWKSFile: "k"}}
	got := problems(t, c.Validate())
	want := []string{
		`mfa.event_issuers[0].issuer: required: the iss of the identity provider's SETs`,
		`mfa.event_issuers[0].audience: required: the aud the identity provider addresses this receiver by`,
		`mfa.event_issuers[0]: set one of jwks_file and jwks_url`,
		`mfa.event_issuers[1].algorithms: at least one algorithm is required (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
		`mfa.event_issuers[1].max_age: must be between 1ns and 24h0m0s, got 0s`,
		`mfa.event_issuers[1].jwks_refresh: must be positive, got 0s`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
