package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/scimtarget"
)

const targetToken = "target-token-for-tests"

// startTarget runs a SaaS SCIM target for the test.
func startTarget(t *testing.T, latency time.Duration) *scimtarget.Server {
	t.Helper()
	s, err := scimtarget.Start(t.Context(), t.TempDir(), scimtarget.Options{Token: targetToken, Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// scimConnector is a scim connector section for target.
func scimConnector(name string, target *scimtarget.Server) config.Connector {
	return config.Connector{Name: name, Type: "scim", Concurrency: 4, MaxAttempts: 10, Drift: "report",
		Config: config.NewSection(map[string]any{"base_url": target.URL, "token": targetToken, "create_groups": true})}
}

// waitAccount waits until the target's account for userName is in the
// given state.
func waitAccount(t *testing.T, target *scimtarget.Server, userName string, active bool, groups []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, found, err := target.Account(t.Context(), userName)
		if err != nil {
			t.Fatal(err)
		}
		if found && a.Active == active && strings.Join(a.Groups, ",") == strings.Join(groups, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("target account %s = %+v (found %v), want active=%v groups=%v", userName, a, found, active, groups)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A joiner is computed access on creation, waits for MFA, and becomes
// active with a TOTP code, all through the public HTTP surface and scopes.
func TestLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	target := startTarget(t, 0)
	g := startGateway(t, func(c *config.Config) {
		c.Roles = []config.Role{{Name: "engineering", When: `user.department == "Engineering"`,
			Grants: []config.Grant{{Connector: "github", Entitlement: "group:team-eng"}}}}
		c.Connectors = []config.Connector{scimConnector("github", target)}
	})
	out, err := cli(t, "token", "create", "--db", g.dbPath, "--name", "workday", "--scopes", "scim")
	if err != nil {
		t.Fatal(err)
	}
	scimTok := tokenRE.FindString(out)

	r := g.do("POST", "/scim/v2/Users", scimTok, newUser("ada@example.com"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)

	// The HR token may not read identities or enrol MFA.
	if r := g.do("GET", "/api/v1/identities/"+id, scimTok, nil); r.status != 403 || r.body["error"] != "forbidden" {
		t.Fatalf("scim token reading identities: %d %s", r.status, r.raw)
	}
	if r := g.do("POST", "/api/v1/identities/"+id+"/mfa/totp", scimTok, nil); r.status != 403 {
		t.Fatalf("scim token enrolling: %d %s", r.status, r.raw)
	}

	r = g.do("GET", "/api/v1/identities/"+id, g.token, nil)
	if r.status != 200 || r.body["state"] != "awaiting_mfa" || !strings.Contains(string(r.raw), `"group:team-eng"`) {
		t.Fatalf("identity after joiner: %d %s", r.status, r.raw)
	}
	if r := g.do("POST", "/api/v1/roles/evaluate", g.token, newUser("x@example.com")); r.status != 200 || !strings.Contains(string(r.raw), `"engineering"`) {
		t.Fatalf("roles dry run: %d %s", r.status, r.raw)
	}

	r = g.do("POST", "/api/v1/identities/"+id+"/mfa/totp", g.token, nil)
	uri, _ := r.body["otpauth_uri"].(string)
	if r.status != 201 || !strings.HasPrefix(uri, "otpauth://totp/") {
		t.Fatalf("begin TOTP: %d %s", r.status, r.raw)
	}
	u, _ := url.Parse(uri)
	code, err := totp.GenerateCodeCustom(u.Query().Get("secret"), time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if r := g.do("POST", "/api/v1/identities/"+id+"/mfa/totp/verify", g.token, `{"code":"000000x"}`); r.status != 400 {
		t.Fatalf("malformed code: %d %s", r.status, r.raw)
	}
	// Invariant 1 end to end: nothing reached the target before MFA.
	if _, found, err := target.Account(t.Context(), "ada@example.com"); err != nil || found {
		t.Fatalf("target has an account before MFA: found=%v err=%v", found, err)
	}
	r = g.do("POST", "/api/v1/identities/"+id+"/mfa/totp/verify", g.token, `{"code":"`+code+`"}`)
	if r.status != 200 || r.body["state"] != "active" {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	// Now the account and its group fan out to the target.
	waitAccount(t, target, "ada@example.com", true, []string{"team-eng"})
	if r := g.do("POST", "/api/v1/identities/"+id+"/mfa/totp/verify", g.token, `{"code":"`+code+`"}`); r.status != 400 || r.body["error"] != "invalid_code" {
		t.Fatalf("replayed code: %d %s", r.status, r.raw)
	}

	// MFA exceptions need the approve scope.
	exc := `{"identity":"` + id + `","type":"mfa_bypass","justification":"j","compensating_controls":"c","owner":"o","expires_at":"` +
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	if r := g.do("POST", "/api/v1/exceptions", scimTok, exc); r.status != 403 {
		t.Fatalf("scim token granting an exception: %d %s", r.status, r.raw)
	}
	if r := g.do("POST", "/api/v1/exceptions", g.token, exc); r.status != 201 || r.body["state"] != "active" {
		t.Fatalf("exception: %d %s", r.status, r.raw)
	}
	if r := g.do("GET", "/api/v1/identities/"+id, g.token, nil); !strings.Contains(string(r.raw), `"mfa_bypass"`) {
		t.Fatalf("identity detail lacks its live exception: %s", r.raw)
	}

	r = g.do("GET", "/api/v1/identities/"+id+"/history", g.token, nil)
	for _, want := range []string{"scim.user.create", "lifecycle.joiner", "mfa.totp.begin", "mfa.totp.verify", "lifecycle.activate", "mfa.totp.reject"} {
		if !strings.Contains(string(r.raw), want) {
			t.Fatalf("history lacks %s: %s", want, r.raw)
		}
	}
	if strings.Contains(string(r.raw), u.Query().Get("secret")) {
		t.Fatal("history leaks the TOTP secret")
	}
}

// With an event issuer configured, /api/v1/events is served without a bearer
// token (the SET signature authenticates) and answers in RFC 8935's format.
func TestEventsEndpointIsPublicWhenConfigured(t *testing.T) {
	t.Parallel()
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, func(c *config.Config) {
		iss := config.DefaultEventIssuer()
		iss.Issuer, iss.Audience, iss.JWKSFile = "https://idp.example.com", "jmlgate", jwks
		c.MFA.EventIssuers = []config.EventIssuer{iss}
	})
	r := g.do("POST", "/api/v1/events", "", "not a SET")
	if r.status != 400 || r.body["err"] != "invalid_request" {
		t.Fatalf("events without a token: %d %s", r.status, r.raw)
	}
	plain := startGateway(t, nil)
	if r := plain.do("POST", "/api/v1/events", "", "x"); r.status != 404 {
		t.Fatalf("events without issuers configured: %d", r.status)
	}
}
