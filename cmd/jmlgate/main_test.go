package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/testhttp"
)

// gateway is a running App for one test.
type gateway struct {
	t      *testing.T
	app    *App
	base   string
	token  string // bootstrap admin token
	dbPath string
	cancel context.CancelFunc
	done   chan error
}

var tokenRE = regexp.MustCompile(`jmg_[A-Za-z0-9_-]{43}`)

// startGateway runs the real gateway on 127.0.0.1:0 with a temp database,
// exactly as `jmlgate serve` wires it.
func startGateway(t *testing.T, mutate func(*config.Config)) *gateway {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Store.Path = filepath.Join(t.TempDir(), "jmlgate.db")
	if mutate != nil {
		mutate(cfg)
	}
	var out bytes.Buffer
	logOut := io.Discard
	if os.Getenv("JMLGATE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	app := &App{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logOut, nil)), Out: &out}
	ctx, cancel := context.WithCancel(context.Background())
	if err := app.Open(ctx); err != nil {
		cancel()
		t.Fatalf("open: %v", err)
	}
	g := &gateway{t: t, app: app, base: "http://" + app.Addr(), dbPath: cfg.Store.Path, cancel: cancel, done: make(chan error, 1)}
	g.token = tokenRE.FindString(out.String())
	go func() { g.done <- app.Run(ctx) }()
	t.Cleanup(func() { g.stop() })
	return g
}

func (g *gateway) stop() {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	if err := <-g.done; err != nil {
		g.t.Errorf("run: %v", err)
	}
	if err := g.app.Close(); err != nil {
		g.t.Errorf("close: %v", err)
	}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (g *gateway) do(method, path, token string, body any, headers ...string) reply {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, g.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := testhttp.Client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// cli runs a jmlgate subcommand in-process and returns its stdout.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func newUser(name string) map[string]any {
	return map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"userName": name, "active": true, "externalId": "ext-" + name,
		"name":   map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
		"emails": []any{map[string]any{"value": name, "type": "work", "primary": true}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Engineering"},
		"password": "correct horse battery staple",
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	if g.token == "" {
		t.Fatal("no bootstrap token printed on first start")
	}

	if r := g.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := g.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.raw)
	}

	// Joiner.
	r := g.do("POST", "/scim/v2/Users", g.token, newUser("ada@example.com"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id, _ := r.body["id"].(string)
	if r.header.Get("Location") != g.base+"/scim/v2/Users/"+id || r.header.Get("ETag") != `W/"1"` {
		t.Fatalf("create headers: Location %q ETag %q", r.header.Get("Location"), r.header.Get("ETag"))
	}
	if _, leaked := r.body["password"]; leaked || strings.Contains(string(r.raw), "battery") {
		t.Fatalf("password returned: %s", r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Fatalf("content type %q", ct)
	}

	// Uniqueness is case-insensitive.
	if r := g.do("POST", "/scim/v2/Users", g.token, newUser("ADA@example.com")); r.status != 409 || r.body["scimType"] != "uniqueness" {
		t.Fatalf("duplicate: %d %s", r.status, r.raw)
	}

	// Lookup by userName.
	r = g.do("GET", `/scim/v2/Users?filter=userName%20eq%20%22ADA@EXAMPLE.COM%22`, g.token, nil)
	if r.status != 200 || r.body["totalResults"] != float64(1) {
		t.Fatalf("filter: %d %s", r.status, r.raw)
	}

	// Entra-style PATCH with string boolean; If-Match with a stale version fails.
	patch := map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "Replace", "path": "active", "value": "False"}},
	}
	if r := g.do("PATCH", "/scim/v2/Users/"+id, g.token, patch, "If-Match", `W/"7"`); r.status != 412 {
		t.Fatalf("stale If-Match: %d %s", r.status, r.raw)
	}
	r = g.do("PATCH", "/scim/v2/Users/"+id, g.token, patch, "If-Match", `W/"1"`)
	if r.status != 200 || r.body["active"] != false || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if r := g.do("GET", "/scim/v2/Users/"+id, g.token, nil, "If-None-Match", `W/"2"`); r.status != 304 {
		t.Fatalf("If-None-Match: %d", r.status)
	}

	// Bad input changes nothing.
	for _, bad := range []string{`{"schemas":`, `[]`, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":5}`} {
		if r := g.do("POST", "/scim/v2/Users", g.token, bad); r.status != 400 || r.body["detail"] == nil {
			t.Fatalf("bad body %q: %d %s", bad, r.status, r.raw)
		}
	}
	if r := g.do("GET", `/scim/v2/Users?filter=userName%20eq`, g.token, nil); r.status != 400 || r.body["scimType"] != "invalidFilter" {
		t.Fatalf("bad filter: %d %s", r.status, r.raw)
	}
	if r := g.do("GET", "/scim/v2/Users?count=0", g.token, nil); r.body["totalResults"] != float64(1) {
		t.Fatalf("after bad input: %s", r.raw)
	}

	// Leaver: DELETE, then 404 in the SCIM error schema.
	if r := g.do("DELETE", "/scim/v2/Users/"+id, g.token, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	r = g.do("GET", "/scim/v2/Users/"+id, g.token, nil)
	if r.status != 404 || r.body["status"] != "404" {
		t.Fatalf("get deleted: %d %s", r.status, r.raw)
	}

	// Metrics saw the traffic by route and status.
	r = g.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(r.raw), `jmlgate_http_requests_total{method="POST",route="/scim/v2/Users",status="201"} 1`) {
		t.Fatalf("metrics missing create counter:\n%s", grepLines(string(r.raw), "jmlgate_http_requests_total"))
	}

	// The audit chain recorded every write and verifies offline.
	g.stop()
	out, err := cli(t, "audit", "verify", "--db", g.dbPath)
	// token, config.roles (the rules it started with), create +
	// lifecycle.joiner, patch + lifecycle.leaver + lifecycle.revoked
	// (nothing to revoke anywhere), delete + lifecycle.delete
	if err != nil || !strings.Contains(out, "audit chain OK: 9 records") {
		t.Fatalf("audit verify: %v %s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestScopesAndTokens(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)

	out, err := cli(t, "token", "create", "--db", g.dbPath, "--name", "auditor", "--scopes", "audit")
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	auditTok := tokenRE.FindString(out)
	out, err = cli(t, "token", "create", "--db", g.dbPath, "--name", "workday", "--scopes", "scim", "--expires", "1h")
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	scimTok := tokenRE.FindString(out)

	cases := []struct {
		name, token string
		want        int
	}{
		{"no credential", "", 401},
		{"garbage", "jmg_nope", 401},
		{"wrong scope", auditTok, 403},
		{"scim scope", scimTok, 200},
		{"bootstrap admin", g.token, 200},
	}
	for _, c := range cases {
		r := g.do("GET", "/scim/v2/Users", c.token, nil)
		if r.status != c.want {
			t.Errorf("%s: got %d want %d: %s", c.name, r.status, c.want, r.raw)
		}
		if r.status >= 400 && (r.body["schemas"] == nil || strings.Contains(string(r.raw), "jmg_")) {
			t.Errorf("%s: error not SCIM-shaped or leaks the token: %s", c.name, r.raw)
		}
	}

	// Duplicate names are refused; listing never shows values or hashes.
	if _, err := cli(t, "token", "create", "--db", g.dbPath, "--name", "workday", "--scopes", "scim"); err == nil {
		t.Fatal("duplicate token name accepted")
	}
	out, _ = cli(t, "token", "list", "--db", g.dbPath)
	if !strings.Contains(out, "workday") || strings.Contains(out, scimTok) || tokenRE.MatchString(out) {
		t.Fatalf("token list: %s", out)
	}

	// Revocation takes effect (the auth cache TTL bounds the delay).
	if _, err := cli(t, "token", "revoke", "--db", g.dbPath, "--name", "workday"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := g.do("GET", "/scim/v2/Users", scimTok, nil)
		if r.status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still accepted: %d", r.status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Expiry flags are validated.
	if _, err := cli(t, "token", "create", "--db", g.dbPath, "--name", "x", "--scopes", "scim", "--expires", "-1h"); err == nil {
		t.Fatal("past expiry accepted")
	}
	if _, err := cli(t, "token", "create", "--db", g.dbPath, "--name", "x", "--scopes", "root"); err == nil {
		t.Fatal("unknown scope accepted")
	}
}

func TestBootstrapOnlyOnce(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	path := g.dbPath
	g.stop()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Store.Path = path
	var out bytes.Buffer
	logOut := io.Discard
	if os.Getenv("JMLGATE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	app := &App{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logOut, nil)), Out: &out}
	if err := app.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if tokenRE.MatchString(out.String()) {
		t.Fatal("a second start printed a new bootstrap token")
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *config.Config) {
		c.Server.BodyLimit = 2048
		c.Server.RateLimit = config.RateLimit{Enabled: true, RequestsPerSecond: 1, Burst: 3}
	})
	big := newUser("big@example.com")
	big["displayName"] = strings.Repeat("x", 4096)
	r := g.do("POST", "/scim/v2/Users", g.token, big)
	if r.status != 413 || r.body["status"] != "413" {
		t.Fatalf("oversized body: %d %s", r.status, r.raw)
	}
	var limited reply
	for i := 0; i < 10; i++ {
		if limited = g.do("GET", "/scim/v2/Users", g.token, nil); limited.status == 429 {
			break
		}
	}
	if limited.status != 429 || limited.header.Get("Retry-After") == "" || limited.body["status"] != "429" {
		t.Fatalf("rate limit: %d %v %s", limited.status, limited.header, limited.raw)
	}
}

// The example configuration loads, and every connector in it decodes and
// opens (opening does no I/O, so none needs to be reachable), with one of
// each type.
func TestConfigExampleLoads(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	cfg.Webhooks.KeyFile = filepath.Join(t.TempDir(), "webhook.jwks")
	keys, err := webhookKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := openTargets(cfg, keys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("config.example.yaml connectors: %v", err)
	}
	defer closeTargets(targets)
	types := map[string]bool{}
	for _, tg := range targets {
		types[tg.Type] = true
	}
	for _, typ := range typeNames() {
		if !types[typ] {
			t.Errorf("config.example.yaml has no %s connector", typ)
		}
	}
}

// Connector sections are checked as strictly as the rest of the file, and
// every problem of every connector is reported at once.
func TestConnectorConfigProblemsStopServe(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := writeFile(p, `store: {path: `+filepath.Join(t.TempDir(), "x.db")+`}
connectors:
  - name: app
    type: scim
    config: {base_url: "http://example.com/scim", tokn: x}
  - name: hook
    type: webhook
    config: {url: "https://h.example.com", timeout: 5}
  - name: crm
    type: salesforce
roles:
  - {name: r, when: "true", grants: [{connector: nowhere, entitlement: e}]}
`); err != nil {
		t.Fatal(err)
	}
	_, err := cli(t, "serve", "--config", p)
	if err == nil {
		t.Fatal("serve started with broken connectors")
	}
	for _, want := range []string{`connectors[2].type: unknown type "salesforce"`, `roles[0].grants[0].connector: no connector named "nowhere"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Fix the first round; the per-type sections are then checked together.
	if err := writeFile(p, `store: {path: `+filepath.Join(t.TempDir(), "x.db")+`}
connectors:
  - name: app
    type: scim
    config: {base_url: "http://example.com/scim", tokn: x}
  - name: hook
    type: webhook
    config: {url: "https://h.example.com", timeout: 5}
`); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, "serve", "--config", p)
	for _, want := range []string{"connectors[0].config.tokn: unknown key", "connectors[1].config.timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestUnknownConfigKeyStopsServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := writeFile(p, "server:\n  listne: 1\nstore:\n  pth: x\n"); err != nil {
		t.Fatal(err)
	}
	_, err := cli(t, "serve", "--config", p)
	if err == nil || !strings.Contains(err.Error(), "server.listne") || !strings.Contains(err.Error(), "store.pth") {
		t.Fatalf("want both unknown keys reported, got %v", err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

// Invariant 3: if the audit append fails, the SCIM write fails and leaves
// nothing behind. A trigger makes every audit insert fail, as a full disk
// or a broken audit table would.
func TestAuditFailureFailsTheWrite(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	db, err := sql.Open("sqlite", g.dbPath+"?_pragma=busy_timeout(10000)") // the gateway writes too (deliveries requeue at start)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	r := g.do("POST", "/scim/v2/Users", g.token, newUser("grace@example.com"))
	if r.status != 500 || r.body["status"] != "500" || strings.Contains(string(r.raw), "disk full") {
		t.Fatalf("create with audit down: %d %s", r.status, r.raw)
	}
	if _, err := db.Exec(`DROP TRIGGER audit_down`); err != nil {
		t.Fatal(err)
	}
	if r := g.do("GET", "/scim/v2/Users?count=0", g.token, nil); r.body["totalResults"] != float64(0) {
		t.Fatalf("user persisted without its audit record: %s", r.raw)
	}
	if r := g.do("POST", "/scim/v2/Users", g.token, newUser("grace@example.com")); r.status != 201 {
		t.Fatalf("create after audit recovered: %d %s", r.status, r.raw)
	}
}
