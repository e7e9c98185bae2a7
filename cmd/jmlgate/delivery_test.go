package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/deliveryapi"
	"github.com/jmlgate/jmlgate/internal/scimtarget"
	"github.com/jmlgate/jmlgate/internal/store"
)

// End-to-end tests of connector fan-out (DESIGN.md invariant 2): targets
// that go down, fail for good, and come back. The helpers below are shared
// with crash_test.go and delivery_bench_test.go.

// apiClient calls a gateway's HTTP API. It reports errors rather than
// failing a test, so worker goroutines and benchmarks can use it.
type apiClient struct {
	base, token string
	hc          *http.Client
}

func newAPIClient(base, token string) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &apiClient{base: base, token: token, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// do sends body (JSON-encoded unless a string) and returns the status and
// the raw answer.
func (c *apiClient) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// expect is do that wants one status.
func (c *apiClient) expect(ctx context.Context, want int, method, path string, body any) ([]byte, error) {
	status, raw, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: HTTP %d (want %d): %s", method, path, status, want, raw)
	}
	return raw, nil
}

// parallel runs fn(0) … fn(n-1) on workers goroutines and returns the
// first error (the others still run to the end).
func parallel(n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// userName is the SCIM userName of test person i.
func userName(prefix string, i int) string { return fmt.Sprintf("%s%05d@example.com", prefix, i) }

// createUsers creates userName(prefix, 0…n-1) (all in Engineering, active
// in HR, so awaiting MFA) and returns their ids in that order.
func createUsers(ctx context.Context, c *apiClient, prefix string, n, workers int) ([]string, error) {
	ids := make([]string, n)
	err := parallel(n, workers, func(i int) error {
		raw, err := c.expect(ctx, http.StatusCreated, "POST", "/scim/v2/Users", newUser(userName(prefix, i)))
		if err != nil {
			return err
		}
		var u struct{ ID string }
		if err := json.Unmarshal(raw, &u); err != nil || u.ID == "" {
			return fmt.Errorf("create %s: no id in %s", userName(prefix, i), raw)
		}
		ids[i] = u.ID
		return nil
	})
	return ids, err
}

// activate grants each identity an MFA exception, which makes it active:
// its accounts and grants fan out.
func activate(ctx context.Context, c *apiClient, ids []string, workers int) error {
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	return parallel(len(ids), workers, func(i int) error {
		body := map[string]any{"identity": ids[i], "type": "mfa_bypass", "justification": "load test",
			"compensating_controls": "none needed", "owner": "it", "expires_at": expires}
		raw, err := c.expect(ctx, http.StatusCreated, "POST", "/api/v1/exceptions", body)
		if err == nil && !strings.Contains(string(raw), `"active"`) {
			err = fmt.Errorf("exception for %s: %s", ids[i], raw)
		}
		return err
	})
}

// deactivatePatch makes a user a leaver, as HR does.
var deactivatePatch = map[string]any{
	"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
	"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": false}},
}

// deactivate PATCHes every user to active false; sent[i], when not nil,
// receives the time user i's request was sent.
func deactivate(ctx context.Context, c *apiClient, ids []string, workers int, sent []time.Time) error {
	return parallel(len(ids), workers, func(i int) error {
		if sent != nil {
			sent[i] = time.Now()
		}
		_, err := c.expect(ctx, http.StatusOK, "PATCH", "/scim/v2/Users/"+ids[i], deactivatePatch)
		return err
	})
}

// waitFor polls cond until it holds, failing tb with cond's last word
// after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	if ok, detail := poll(timeout, cond); !ok {
		tb.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
	}
}

// poll calls cond until it holds or timeout passes, and returns its last
// answer.
func poll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok || time.Now().After(deadline) {
			return ok, detail
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// accountsAre checks that every userName has an account in target that is
// active (or not) with exactly groups; it returns the first mismatch.
func accountsAre(ctx context.Context, target *scimtarget.Server, names []string, active bool, groups []string) (bool, string) {
	for _, n := range names {
		a, found, err := target.Account(ctx, n)
		if err != nil {
			return false, err.Error()
		}
		if !found || a.Active != active || !slices.Equal(a.Groups, groups) {
			return false, fmt.Sprintf("%s: %s = %+v (found %v), want active=%v groups=%v", target.URL, n, a, found, active, groups)
		}
	}
	return true, ""
}

// noAccounts checks that target has no account for any of names.
func noAccounts(ctx context.Context, target *scimtarget.Server, names []string) error {
	for _, n := range names {
		if a, found, err := target.Account(ctx, n); err != nil || found {
			return fmt.Errorf("account %s in %s: %+v (found %v, err %v)", n, target.URL, a, found, err)
		}
	}
	return nil
}

// grantAll is a role giving everyone in Engineering group "staff-<conn>" on
// each connector.
func grantAll(connectors ...string) config.Role {
	r := config.Role{Name: "staff", When: `user.department == "Engineering"`}
	for _, c := range connectors {
		r.Grants = append(r.Grants, config.Grant{Connector: c, Entitlement: "group:staff-" + c})
	}
	return r
}

// fastDelivery keeps retries quick: 20ms, doubling up to 200ms.
func fastDelivery(c *config.Config) {
	c.Delivery = config.Delivery{Poll: config.Duration(20 * time.Millisecond),
		BackoffBase: config.Duration(20 * time.Millisecond), BackoffMax: config.Duration(200 * time.Millisecond)}
	c.Server.RateLimit.Enabled = false
}

// openDB opens a gateway's SQLite file read-only, for what the API does
// not show; WAL lets it read while the gateway runs.
func openDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func count(db *sql.DB, query string, args ...any) (int, error) {
	var n int
	err := db.QueryRow(query, args...).Scan(&n)
	return n, err
}

// metric returns the value of the Prometheus series exactly named (name
// with labels in the exposition's order), 0 when absent.
func metric(ctx context.Context, c *apiClient, series string) (float64, error) {
	status, raw, err := c.do(ctx, "GET", "/metrics", nil)
	if err != nil || status != 200 {
		return 0, fmt.Errorf("metrics: %d %v", status, err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil
}

// connector returns connector name as GET /api/v1/connectors shows it.
func connector(ctx context.Context, api *apiClient, name string) (deliveryapi.Connector, error) {
	raw, err := api.expect(ctx, http.StatusOK, "GET", "/api/v1/connectors", nil)
	if err != nil {
		return deliveryapi.Connector{}, err
	}
	var l deliveryapi.ConnectorList
	if err := json.Unmarshal(raw, &l); err != nil {
		return deliveryapi.Connector{}, fmt.Errorf("connectors body: %v: %s", err, raw)
	}
	for _, c := range l.Connectors {
		if c.Name == name {
			return c, nil
		}
	}
	return deliveryapi.Connector{}, fmt.Errorf("no connector %q in %s", name, raw)
}

// queuesEmpty reports whether no connector has a delivery pending,
// running or dead, as GET /api/v1/connectors shows them.
func queuesEmpty(ctx context.Context, api *apiClient, names ...string) (bool, string) {
	for _, n := range names {
		c, err := connector(ctx, api, n)
		if err != nil {
			return false, err.Error()
		}
		if q := c.Queue; q.Pending+q.Running+q.Dead > 0 {
			return false, fmt.Sprintf("%s: %+v", n, q)
		}
	}
	return true, ""
}

// A target that is down for a while is retried (never dead-lettered within
// its attempts), does not hold up the other targets, shows as degraded
// meanwhile, and receives everything once it is back.
func TestDeliveryTargetOutageRecovers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	up, down := startTarget(t, 2*time.Millisecond), startTarget(t, 2*time.Millisecond)
	down.SetDown(true)
	g := startGateway(t, func(c *config.Config) {
		fastDelivery(c)
		c.Roles = []config.Role{grantAll("up", "down")}
		c.Connectors = []config.Connector{scimConnector("up", up), scimConnector("down", down)}
		c.Connectors[1].MaxAttempts = 1000
	})
	api := newAPIClient(g.base, g.token)
	const n = 10
	ids, err := createUsers(ctx, api, "outage", n, 4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range n {
		names = append(names, userName("outage", i))
	}
	if err := activate(ctx, api, ids, 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every account in the healthy target", func() (bool, string) {
		return accountsAre(ctx, up, names, true, []string{"staff-up"})
	})
	// Deliveries to the down target failed and were retried: twice as
	// many failed runs as deliveries.
	waitFor(t, 60*time.Second, "failed runs on the down target", func() (bool, string) {
		k, err := metric(ctx, api, `jmlgate_deliveries_total{connector="down",result="retry"}`)
		return err == nil && k >= 2*n, fmt.Sprintf("%v failed runs (%v)", k, err)
	})
	if ops := down.Ops(); len(ops) > 0 {
		t.Fatalf("the down target applied %v", ops)
	}
	if err := noAccounts(ctx, down, names); err != nil {
		t.Fatal(err)
	}
	c, err := connector(ctx, api, "down")
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Health.Status; (st != "degraded" && st != "failing") || c.Queue.Pending+c.Queue.Running != n || c.Queue.Dead != 0 {
		t.Fatalf("connector down while its target is down: %+v", c)
	}
	if c, err := connector(ctx, api, "up"); err != nil || c.Health.Status != "ok" {
		t.Fatalf("connector up: %+v (%v)", c, err)
	}

	down.SetDown(false)
	waitFor(t, 60*time.Second, "every account in the recovered target", func() (bool, string) {
		return accountsAre(ctx, down, names, true, []string{"staff-down"})
	})
	for _, o := range down.Ops() {
		if !o.Applied() || (o.Kind != scimtarget.OpCreate && o.Kind != scimtarget.OpAddMember && o.Kind != scimtarget.OpCreateGroup) {
			t.Errorf("recovered target: unexpected op %+v", o)
		}
	}
	waitFor(t, 30*time.Second, "empty queues", func() (bool, string) { return queuesEmpty(ctx, api, "up", "down") })
	if dead, err := metric(ctx, api, `jmlgate_deliveries_total{connector="down",result="dead"}`); err != nil || dead != 0 {
		t.Fatalf("dead deliveries to the down target: %v %v", dead, err)
	}
	if c, err := connector(ctx, api, "down"); err != nil || c.Health.Status != "ok" {
		t.Fatalf("connector down after recovery: %+v (%v)", c, err)
	}
}

// deadLetters lists connector's dead deliveries through GET
// /api/v1/deliveries?state=dead.
func deadLetters(ctx context.Context, api *apiClient, connector string) ([]deliveryapi.Delivery, error) {
	raw, err := api.expect(ctx, http.StatusOK, "GET", "/api/v1/deliveries?state=dead&connector="+connector, nil)
	if err != nil {
		return nil, err
	}
	var l deliveryapi.DeliveryList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("deliveries body: %v: %s", err, raw)
	}
	for _, d := range l.Deliveries {
		if d.State != store.DeliveryDead || d.Connector != connector {
			return nil, fmt.Errorf("listing dead deliveries of %s returned %+v", connector, d)
		}
	}
	return l.Deliveries, nil
}

// A target that keeps refusing dead-letters its deliveries (at once for a
// permanent failure, after MaxAttempts for a retryable one) without
// holding up the other targets; the dead letters are visible and counted,
// survive a restart, and retrying them once the cause is fixed delivers.
func TestDeliveryDeadLetterAndRetry(t *testing.T) {
	t.Parallel()
	const n = 5
	healthy := func(c *scimtarget.Server) config.Connector { return scimConnector("c", c) }
	cases := []struct {
		name string
		// broken makes target c fail and returns connector c for it;
		// fixed is connector c once the cause is repaired.
		broken, fixed func(c *scimtarget.Server) config.Connector
		wantError     *regexp.Regexp
	}{
		{"forbidden", func(c *scimtarget.Server) config.Connector {
			c.FailNext(slices.Repeat([]int{http.StatusForbidden}, n)...) // one per delivery: permanent
			return healthy(c)
		}, healthy, regexp.MustCompile(`HTTP 403`)},
		{"server errors", func(c *scimtarget.Server) config.Connector {
			c.FailNext(slices.Repeat([]int{http.StatusInternalServerError}, 3*n)...) // one per attempt
			return healthy(c)
		}, healthy, regexp.MustCompile(`HTTP 500`)},
		{"bad token", func(c *scimtarget.Server) config.Connector {
			conn := healthy(c)
			conn.Config = config.NewSection(map[string]any{"base_url": c.URL, "token": "not-" + targetToken, "create_groups": true})
			return conn
		}, healthy, regexp.MustCompile(`HTTP 401`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			a, b, c := startTarget(t, 2*time.Millisecond), startTarget(t, 2*time.Millisecond), startTarget(t, 2*time.Millisecond)
			connC := tc.broken(c)
			setup := func(cfg *config.Config) {
				fastDelivery(cfg)
				cfg.Roles = []config.Role{grantAll("a", "b", "c")}
				cfg.Connectors = []config.Connector{scimConnector("a", a), scimConnector("b", b), connC}
				for i := range cfg.Connectors {
					cfg.Connectors[i].MaxAttempts = 3
				}
			}
			g := startGateway(t, setup)
			api := newAPIClient(g.base, g.token)
			ids, err := createUsers(ctx, api, "dead", n, 4)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i := range n {
				names = append(names, userName("dead", i))
			}
			if err := activate(ctx, api, ids, 4); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "every delivery to c dead", func() (bool, string) {
				c, err := connector(ctx, api, "c")
				return err == nil && c.Queue.Dead == n && c.Queue.Pending+c.Queue.Running == 0, fmt.Sprintf("%+v (%v)", c.Queue, err)
			})
			// The healthy targets were not held up.
			for _, tg := range []struct {
				s    *scimtarget.Server
				name string
			}{{a, "a"}, {b, "b"}} {
				waitFor(t, 60*time.Second, "every account in "+tg.name, func() (bool, string) {
					return accountsAre(ctx, tg.s, names, true, []string{"staff-" + tg.name})
				})
			}
			waitFor(t, 30*time.Second, "empty queues for a and b", func() (bool, string) { return queuesEmpty(ctx, api, "a", "b") })
			if err := noAccounts(ctx, c, names); err != nil {
				t.Fatal(err)
			}
			// Visible, explained and counted.
			dead, err := deadLetters(ctx, api, "c")
			if err != nil {
				t.Fatal(err)
			}
			var deadIDs []string
			for _, d := range dead {
				deadIDs = append(deadIDs, d.IdentityID)
				if !tc.wantError.MatchString(d.LastError) || strings.Contains(d.LastError, targetToken) {
					t.Errorf("dead letter %d: last error %q, want it to match %v and hold no token", d.ID, d.LastError, tc.wantError)
				}
			}
			slices.Sort(deadIDs)
			if want := slices.Sorted(slices.Values(ids)); !slices.Equal(deadIDs, want) {
				t.Fatalf("dead letters of c for identities %v, want %v", deadIDs, want)
			}
			if k, err := metric(ctx, api, `jmlgate_deliveries_total{connector="c",result="dead"}`); err != nil || k != n {
				t.Fatalf("dead deliveries counted: %v %v, want %d", k, err, n)
			}

			// Fix the cause and restart: dead letters wait for a human,
			// even across a restart; a retry then delivers.
			g.stop()
			connC = tc.fixed(c)
			g2 := startGateway(t, func(cfg *config.Config) {
				setup(cfg)
				cfg.Store.Path = g.dbPath
			})
			api2 := newAPIClient(g2.base, g.token)
			if again, err := deadLetters(ctx, api2, "c"); err != nil || len(again) != n {
				t.Fatalf("dead letters after the restart: %d (%v), want %d", len(again), err, n)
			}
			for _, d := range dead {
				raw, err := api2.expect(ctx, http.StatusOK, "POST", fmt.Sprintf("/api/v1/deliveries/%d/retry", d.ID), nil)
				if err != nil {
					t.Fatal(err)
				}
				var res deliveryapi.RetryResult
				if err := json.Unmarshal(raw, &res); err != nil || res.Retried != d.ID || res.Delivery.IdentityID != d.IdentityID {
					t.Fatalf("retry %d: %s (%v)", d.ID, raw, err)
				}
			}
			waitFor(t, 60*time.Second, "every account in c after the retry", func() (bool, string) {
				return accountsAre(ctx, c, names, true, []string{"staff-c"})
			})
			waitFor(t, 30*time.Second, "empty queues", func() (bool, string) { return queuesEmpty(ctx, api2, "a", "b", "c") })
			g2.stop()
			if out, err := cli(t, "audit", "verify", "--db", g.dbPath); err != nil || !strings.Contains(out, "audit chain OK") {
				t.Fatalf("audit verify: %v %s", err, out)
			}
		})
	}
}
