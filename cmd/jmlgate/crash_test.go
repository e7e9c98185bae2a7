package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/identityapi"
	"github.com/jmlgate/jmlgate/internal/scimtarget"
)

// child is `jmlgate serve` running as a separate process (the test binary
// re-executed as the jmlgate binary; see TestMain), so it can be killed.
type child struct {
	cmd   *exec.Cmd
	base  string // http://addr
	token string // the bootstrap token, when this start printed one
	done  chan struct{}
	err   error // from Wait, once done is closed

	mu     sync.Mutex
	stderr bytes.Buffer
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	buf []byte
	fn  func(line []byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// startChild runs `jmlgate serve --config cfgPath` and waits until it
// listens (and, with wantToken, has printed the bootstrap token).
func startChild(t *testing.T, cfgPath string, wantToken bool) *child {
	t.Helper()
	c := &child{done: make(chan struct{})}
	addr, token := make(chan string, 1), make(chan string, 1)
	c.cmd = exec.Command(os.Args[0], "serve", "--config", cfgPath)
	c.cmd.Env = append(os.Environ(), "JMLGATE_TEST_AS_BINARY=1")
	c.cmd.Stdout = &lineWriter{fn: func(l []byte) {
		if tok := tokenRE.Find(l); tok != nil {
			select {
			case token <- string(tok):
			default:
			}
		}
	}}
	c.cmd.Stderr = &lineWriter{fn: func(l []byte) {
		var m struct{ Msg, Addr string }
		_ = json.Unmarshal(l, &m)
		if m.Msg != "request" { // access log lines are noise here
			c.mu.Lock()
			if c.stderr.Len() < 1<<20 {
				c.stderr.Write(l)
				c.stderr.WriteByte('\n')
			}
			c.mu.Unlock()
		}
		if m.Msg == "jmlgate listening" {
			select {
			case addr <- m.Addr:
			default:
			}
		}
	}}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("child stderr (tail):\n%s", c.tail(4000))
		}
	})
	deadline := time.After(60 * time.Second)
	for c.base == "" || (wantToken && c.token == "") {
		select {
		case a := <-addr:
			c.base = "http://" + a
		case tok := <-token:
			c.token = tok
		case <-c.done:
			t.Fatalf("jmlgate serve exited at start-up: %v\n%s", c.err, c.tail(4000))
		case <-deadline:
			t.Fatalf("jmlgate serve did not start\n%s", c.tail(4000))
		}
	}
	return c
}

func (c *child) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.stderr.Bytes()
	return string(b[max(0, len(b)-n):])
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("jmlgate serve after SIGTERM: %v\n%s", c.err, c.tail(4000))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("jmlgate serve still running 60s after SIGTERM")
	}
}

// killSwitch SIGKILLs a process from inside a target, right after the
// target applied the after-th disable and before it answers: the gateway
// is then certainly in the middle of a delivery.
type killSwitch struct {
	mu    sync.Mutex
	proc  *os.Process
	after int
	seen  int
	fired chan struct{}
}

func (k *killSwitch) arm(p *os.Process, after int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proc, k.after, k.seen, k.fired = p, after, 0, make(chan struct{})
}

func (k *killSwitch) op(o scimtarget.Op) {
	if o.Kind != scimtarget.OpDisable || !o.Applied() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc == nil {
		return
	}
	if k.seen++; k.seen == k.after {
		_ = k.proc.Kill()
		k.proc = nil
		close(k.fired)
	}
}

// crashConfig is the YAML of a gateway on dbPath with one scim connector
// per target (app-0, app-1, …) and a role granting everyone in Engineering
// group staff-app-<i> on each.
func crashConfig(dbPath string, targets []*scimtarget.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  listen: 127.0.0.1:0
  shutdown_timeout: 10s
  rate_limit:
    enabled: false
store:
  path: %q
log:
  level: info
delivery:
  poll: 20ms
  backoff_base: 20ms
  backoff_max: 500ms
roles:
  - name: staff
    when: user.department == "Engineering"
    grants:
`, dbPath)
	for i := range targets {
		fmt.Fprintf(&b, "      - {connector: app-%d, entitlement: \"group:staff-app-%d\"}\n", i, i)
	}
	b.WriteString("connectors:\n")
	for i, tg := range targets {
		fmt.Fprintf(&b, `  - name: app-%d
    type: scim
    concurrency: 4
    max_attempts: 50
    config:
      base_url: %q
      token: %q
      create_groups: true
`, i, tg.URL, targetToken)
	}
	return b.String()
}

// Invariant 2 across a crash: a leaver storm is under way, the gateway is
// SIGKILLed in the middle of a delivery, and after a restart on the same
// database every revocation still reaches every target, none is
// contradicted by a later grant or re-enable, the time-to-revoke of every
// leaver is recorded, and the audit chain verifies.
func TestCrashMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		n       = 200
		workers = 16
		killAt  = 3 * n / 4 // disables applied (of 3n) when the gateway dies
	)
	var ks killSwitch
	targets := make([]*scimtarget.Server, 3)
	for i := range targets {
		s, err := scimtarget.Start(ctx, t.TempDir(), scimtarget.Options{Token: targetToken, Latency: 2 * time.Millisecond, OnOp: ks.op, FastMembership: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		targets[i] = s
	}
	dir := t.TempDir()
	dbPath, cfgPath := filepath.Join(dir, "jmlgate.db"), filepath.Join(dir, "jmlgate.yaml")
	if err := writeFile(cfgPath, crashConfig(dbPath, targets)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	phase := func(s string) { t.Logf("%6.1fs %s", time.Since(t0).Seconds(), s) } // for slow machines
	gw := startChild(t, cfgPath, true)
	phase("started")
	api := newAPIClient(gw.base, gw.token)
	db := openDB(t, dbPath)

	// Joiners: all accounts and groups reach all targets.
	ids, err := createUsers(ctx, api, "crash", n, workers)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = userName("crash", i)
	}
	phase("created")
	if err := activate(ctx, api, ids, workers); err != nil {
		t.Fatal(err)
	}
	phase("activated")
	for i, tg := range targets {
		waitFor(t, 120*time.Second, fmt.Sprintf("joiners in app-%d", i), func() (bool, string) {
			return accountsAre(ctx, tg, names, true, []string{fmt.Sprintf("staff-app-%d", i)})
		})
	}
	waitFor(t, 60*time.Second, "the joiner deliveries to finish", func() (bool, string) {
		k, err := count(db, `SELECT count(*) FROM deliveries`)
		return err == nil && k == 0, fmt.Sprintf("%d left (%v)", k, err)
	})

	phase("joiners delivered")

	// Leaver storm, acknowledged in full while the targets hold every
	// request, so each revocation was committed before any was sent.
	for _, tg := range targets {
		tg.Pause()
	}
	ks.arm(gw.cmd.Process, killAt)
	if err := deactivate(ctx, api, ids, workers, nil); err != nil {
		for _, tg := range targets {
			tg.Resume()
		}
		t.Fatal(err)
	}
	for _, tg := range targets {
		tg.Resume()
	}
	phase("storm acked")
	select {
	case <-ks.fired:
	case <-time.After(120 * time.Second):
		t.Fatal("the leaver storm never reached the kill point")
	}
	select {
	case <-gw.done:
	case <-time.After(30 * time.Second):
		t.Fatal("child still running after SIGKILL")
	}
	if ws, ok := gw.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", gw.err)
	}
	// The crash left at least the delivery whose disable triggered it
	// marked running: the restart has to requeue it.
	running, err := count(db, `SELECT count(*) FROM deliveries WHERE state = 'running'`)
	if err != nil || running == 0 {
		t.Fatalf("running deliveries after the crash: %d (%v), want some", running, err)
	}
	pending, _ := count(db, `SELECT count(*) FROM deliveries WHERE state = 'pending'`)
	phase(fmt.Sprintf("crashed: %d deliveries running, %d pending, %d of %d leavers revoked in every target",
		running, pending, revokedEverywhere(targets, names), n))

	// Restart on the same database: everything is revoked.
	gw2 := startChild(t, cfgPath, false)
	api = newAPIClient(gw2.base, gw.token)
	for i, tg := range targets {
		if ok, detail := poll(120*time.Second, func() (bool, string) { return accountsAre(ctx, tg, names, false, nil) }); !ok {
			t.Errorf("app-%d: leavers not revoked: %s", i, detail)
		}
	}
	phase("revoked in the targets")
	// Whatever the outcome, no revocation was contradicted.
	for i, tg := range targets {
		if err := noContradiction(tg, ids); err != nil {
			t.Errorf("app-%d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, 60*time.Second, "every leaver's time-to-revoke", func() (bool, string) {
		k, err := count(db, `SELECT count(*) FROM identities WHERE state = 'terminated' AND revoked_at IS NOT NULL AND revoked_at >= leaver_at`)
		q, err2 := count(db, `SELECT count(*) FROM deliveries`)
		return err == nil && err2 == nil && k == n && q == 0, fmt.Sprintf("%d revoked, %d deliveries left (%v %v)", k, q, err, err2)
	})
	if k, err := count(db, `SELECT count(*) FROM audit WHERE action = 'lifecycle.revoked'`); err != nil || k != n {
		t.Errorf("lifecycle.revoked audit records: %d (%v), want %d", k, err, n)
	}
	checkRevokedInAPI(ctx, t, api, ids, len(targets))
	phase("recorded")

	gw2.stop(t)
	if out, err := cli(t, "audit", "verify", "--db", dbPath); err != nil || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: %v %s", err, out)
	}
}

// revokedEverywhere counts the identities whose account is disabled and
// out of every group in every target, from the targets' op history.
func revokedEverywhere(targets []*scimtarget.Server, names []string) int {
	done := map[string]int{} // target user id's userName -> targets done
	for _, tg := range targets {
		disabled, removed := map[string]bool{}, map[string]bool{}
		for _, o := range tg.Ops() {
			if !o.Applied() {
				continue
			}
			switch o.Kind {
			case scimtarget.OpDisable:
				disabled[o.User] = true
			case scimtarget.OpRemoveMember:
				removed[o.User] = true
			}
		}
		for _, n := range names {
			a, found, err := tg.Account(context.Background(), n)
			if err == nil && found && disabled[a.ID] && removed[a.ID] {
				done[n]++
			}
		}
	}
	k := 0
	for _, c := range done {
		if c == len(targets) {
			k++
		}
	}
	return k
}

// noContradiction checks target's history: once a user was disabled,
// removed from a group or deleted, nothing granted them access again, and
// every op is one the scim connector sends.
func noContradiction(target *scimtarget.Server, ids []string) error {
	firstRevoke := map[string]scimtarget.Op{}
	var errs []string
	for _, o := range target.Ops() {
		switch o.Kind {
		case scimtarget.OpDisable, scimtarget.OpRemoveMember, scimtarget.OpDelete:
			if _, seen := firstRevoke[o.User]; !seen {
				firstRevoke[o.User] = o
			}
		case scimtarget.OpCreate, scimtarget.OpEnable, scimtarget.OpAddMember:
			if r, seen := firstRevoke[o.User]; seen {
				errs = append(errs, fmt.Sprintf("%s of user %s (op %d) after %s (op %d)", o.Kind, o.User, o.Seq, r.Kind, r.Seq))
			}
		case scimtarget.OpCreateGroup:
		default:
			errs = append(errs, fmt.Sprintf("unexpected op %+v", o))
		}
	}
	if len(firstRevoke) < len(ids) {
		errs = append(errs, fmt.Sprintf("only %d of %d users were ever revoked", len(firstRevoke), len(ids)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d problems, first: %s", len(errs), strings.Join(errs[:min(len(errs), 5)], "; "))
	}
	return nil
}

// checkRevokedInAPI checks GET /api/v1/identities/{id} of each leaver:
// terminated, every account disabled with nothing granted, nothing
// outstanding, and its time-to-revoke.
func checkRevokedInAPI(ctx context.Context, t *testing.T, api *apiClient, ids []string, connectors int) {
	t.Helper()
	for _, id := range ids {
		raw, err := api.expect(ctx, 200, "GET", "/api/v1/identities/"+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		var d identityapi.Detail
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		ok := d.State == "terminated" && !d.LeaverAt.IsZero() && !d.RevokedAt.Before(d.LeaverAt) &&
			d.TimeToRevokeMS != nil && *d.TimeToRevokeMS == d.RevokedAt.Sub(d.LeaverAt).Milliseconds() &&
			len(d.Deliveries) == 0 && len(d.Actual) == connectors
		for _, a := range d.Actual {
			ok = ok && !a.Enabled && len(a.Entitlements) == 0
		}
		if !ok {
			t.Fatalf("leaver %s after the restart: %s", id, raw)
		}
	}
}
