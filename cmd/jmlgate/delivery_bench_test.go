package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/scimtarget"
)

// Delivery benchmarks: end-to-end figures of connector fan-out, the real
// App (SQLite store, HTTP API, dispatcher) in process against three SaaS
// SCIM targets with 2 ms latency each. Run them one at a time:
//
//	go test -run '^$' -bench . -benchtime 1x ./cmd/jmlgate/
//
// Each iteration builds its own gateway and targets; the custom metrics are
// those of the last iteration.

const (
	benchTargets     = 3
	benchLatency     = 2 * time.Millisecond
	benchConcurrency = 16 // per connector
	benchClients     = 16 // concurrent HTTP clients of the gateway
)

// benchApp is a running App for a benchmark.
type benchApp struct {
	app    *App
	api    *apiClient
	dbPath string
	cancel context.CancelFunc
	done   chan error
}

// startBenchApp runs the gateway as `jmlgate serve` wires it, on port 0
// with a temporary SQLite file, three scim connectors (app-0…) on targets
// and a role granting everyone group staff-app-<i> on each.
func startBenchApp(b *testing.B, targets []*scimtarget.Server) *benchApp {
	b.Helper()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.RateLimit.Enabled = false
	cfg.Store.Path = filepath.Join(b.TempDir(), "jmlgate.db")
	var names []string
	for i, tg := range targets {
		name := fmt.Sprintf("app-%d", i)
		names = append(names, name)
		c := config.Connector{Name: name, Type: "scim", Concurrency: benchConcurrency, MaxAttempts: 10, Drift: "report",
			// A long timeout lets a benchmark hold requests at a
			// paused target while it queues work.
			Config: config.NewSection(map[string]any{"base_url": tg.URL, "token": targetToken, "create_groups": true, "timeout": "5m"})}
		cfg.Connectors = append(cfg.Connectors, c)
	}
	cfg.Roles = []config.Role{grantAll(names...)}
	var out bytes.Buffer
	app := &App{Config: cfg, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Out: &out}
	ctx, cancel := context.WithCancel(context.Background())
	if err := app.Open(ctx); err != nil {
		cancel()
		b.Fatalf("open: %v", err)
	}
	a := &benchApp{app: app, dbPath: cfg.Store.Path, cancel: cancel, done: make(chan error, 1)}
	a.api = newAPIClient("http://"+app.Addr(), tokenRE.FindString(out.String()))
	go func() { a.done <- app.Run(ctx) }()
	return a
}

func (a *benchApp) stop(b *testing.B) {
	a.cancel()
	if err := <-a.done; err != nil {
		b.Errorf("run: %v", err)
	}
	if err := a.app.Close(); err != nil {
		b.Errorf("close: %v", err)
	}
}

func startBenchTargets(b *testing.B) []*scimtarget.Server {
	b.Helper()
	targets := make([]*scimtarget.Server, benchTargets)
	for i := range targets {
		s, err := scimtarget.Start(context.Background(), b.TempDir(), scimtarget.Options{Token: targetToken, Latency: benchLatency, FastMembership: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		targets[i] = s
	}
	return targets
}

// waitCounts waits until every target applied at least want ops of each
// kind in kinds (counted since base, the targets' counts before).
func waitCounts(b *testing.B, timeout time.Duration, targets []*scimtarget.Server, base []map[string]int, want int, kinds ...string) {
	b.Helper()
	waitFor(b, timeout, fmt.Sprintf("%d %v per target", want, kinds), func() (bool, string) {
		for i, tg := range targets {
			c := tg.Counts()
			for _, k := range kinds {
				if got := c[k] - base[i][k]; got < want {
					return false, fmt.Sprintf("app-%d: %d %s", i, got, k)
				}
			}
		}
		return true, ""
	})
}

func countsOf(targets []*scimtarget.Server) []map[string]int {
	out := make([]map[string]int, len(targets))
	for i, tg := range targets {
		out[i] = tg.Counts()
	}
	return out
}

// waitQueueEmpty waits until the gateway has recorded every delivery.
func waitQueueEmpty(b *testing.B, a *benchApp, timeout time.Duration) {
	b.Helper()
	var names []string
	for i := range benchTargets {
		names = append(names, fmt.Sprintf("app-%d", i))
	}
	waitFor(b, timeout, "empty delivery queues", func() (bool, string) {
		return queuesEmpty(context.Background(), a.api, names...)
	})
}

// percentile is the p-th percentile (0 < p <= 1) of sorted ds, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkLeaverStorm: 1,000 active people, each with an account and one
// group in each of three targets, all become leavers at once (SCIM PATCH
// active false from 16 clients). Time-to-revoke of a leaver is from the
// moment its PATCH was sent to the moment the last of the three targets
// applied the last of its revocations (account disabled, group removed),
// read from the targets' own op history. gw-*-ttr-ms is the gateway's own
// record (revoked_at - leaver_at: SCIM commit to last acknowledgement);
// acked-s is how long the 1,000 PATCHes took to be acknowledged, total-s
// until the last revocation landed.
func BenchmarkLeaverStorm(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	const users = 1000
	var (
		ttr, gwTTR   []time.Duration
		total, acked time.Duration
	)
	for range b.N {
		b.StopTimer()
		ctx := context.Background()
		targets := startBenchTargets(b)
		a := startBenchApp(b, targets)
		ids, err := createUsers(ctx, a.api, "leaver", users, benchClients)
		if err != nil {
			b.Fatal(err)
		}
		if err := activate(ctx, a.api, ids, benchClients); err != nil {
			b.Fatal(err)
		}
		waitCounts(b, 5*time.Minute, targets, make([]map[string]int, len(targets)), users, scimtarget.OpCreate, scimtarget.OpAddMember)
		waitQueueEmpty(b, a, time.Minute)
		// Each target's user id -> index of the person.
		who := make([]map[string]int, len(targets))
		for t, tg := range targets {
			who[t] = map[string]int{}
			for i := range users {
				acct, found, err := tg.Account(ctx, userName("leaver", i))
				if err != nil || !found {
					b.Fatalf("app-%d: no account for %s (%v)", t, userName("leaver", i), err)
				}
				who[t][acct.ID] = i
			}
		}
		base := countsOf(targets)
		sent := make([]time.Time, users)

		b.StartTimer()
		start := time.Now()
		if err := deactivate(ctx, a.api, ids, benchClients, sent); err != nil {
			b.Fatal(err) // every PATCH must be acknowledged
		}
		acked = time.Since(start)
		waitCounts(b, 5*time.Minute, targets, base, users, scimtarget.OpDisable, scimtarget.OpRemoveMember)
		b.StopTimer()

		// Per leaver: the last revocation applied in any target.
		last := make([]time.Time, users)
		for t, tg := range targets {
			for _, o := range tg.Ops() {
				if !o.Applied() || (o.Kind != scimtarget.OpDisable && o.Kind != scimtarget.OpRemoveMember) {
					continue
				}
				i, ok := who[t][o.User]
				if !ok {
					b.Fatalf("app-%d: revocation of an unknown user: %+v", t, o)
				}
				if o.At.After(last[i]) {
					last[i] = o.At
				}
			}
		}
		ttr, total = ttr[:0], 0
		for i := range users {
			ttr = append(ttr, last[i].Sub(sent[i]))
			total = max(total, last[i].Sub(start))
		}
		slices.Sort(ttr)
		for t, tg := range targets {
			if ok, detail := accountsAre(ctx, tg, userNames("leaver", users), false, nil); !ok {
				b.Fatalf("app-%d after the storm: %s", t, detail)
			}
		}
		waitQueueEmpty(b, a, time.Minute)
		gwTTR = gatewayTTR(b, a.dbPath, users)
		a.stop(b)
	}
	b.ReportMetric(ms(percentile(ttr, 0.50)), "p50-ttr-ms")
	b.ReportMetric(ms(percentile(ttr, 0.99)), "p99-ttr-ms")
	b.ReportMetric(ms(ttr[len(ttr)-1]), "max-ttr-ms")
	b.ReportMetric(ms(percentile(gwTTR, 0.50)), "gw-p50-ttr-ms")
	b.ReportMetric(ms(percentile(gwTTR, 0.99)), "gw-p99-ttr-ms")
	b.ReportMetric(total.Seconds(), "total-s")
	b.ReportMetric(acked.Seconds(), "acked-s")
	b.ReportMetric(float64(users), "leavers")
	b.ReportMetric(benchConcurrency, "concurrency")
}

// gatewayTTR reads every leaver's recorded time-to-revoke, sorted.
func gatewayTTR(b *testing.B, dbPath string, want int) []time.Duration {
	b.Helper()
	db := openDB(b, dbPath)
	rows, err := db.Query(`SELECT revoked_at - leaver_at FROM identities WHERE state = 'terminated' AND revoked_at IS NOT NULL`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var ns int64
		if err := rows.Scan(&ns); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Duration(ns))
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if len(out) != want {
		b.Fatalf("%d leavers with a recorded time-to-revoke, want %d", len(out), want)
	}
	slices.Sort(out)
	return out
}

func userNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = userName(prefix, i)
	}
	return out
}

// BenchmarkJoinerFanout: 10,000 people with three grants each (group
// staff-app-<i> in each of three targets) become active; every one needs
// an account created and a group granted in each target: 60,000 connector
// operations (EnsureAccount and Grant; requests counts every HTTP request
// the targets received, lookups included).
//
//   - backlog: everything is activated while the targets hold requests,
//     then released: the dispatcher's sustained rate on a full queue.
//   - live: the clock starts at the first activation and runs while
//     activations (16 clients) and deliveries overlap, until the last
//     operation lands.
func BenchmarkJoinerFanout(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	const users = 10000
	for _, mode := range []string{"backlog", "live"} {
		b.Run(mode, func(b *testing.B) {
			var elapsed time.Duration
			var ops, reqs int
			for range b.N {
				b.StopTimer()
				ctx := context.Background()
				targets := startBenchTargets(b)
				a := startBenchApp(b, targets)
				ids, err := createUsers(ctx, a.api, "joiner", users, benchClients)
				if err != nil {
					b.Fatal(err)
				}
				var reqs0 int64
				if mode == "backlog" {
					for _, tg := range targets {
						tg.Pause()
					}
					if err := activate(ctx, a.api, ids, benchClients); err != nil {
						b.Fatal(err)
					}
				}
				for _, tg := range targets {
					reqs0 += tg.Requests()
				}
				b.StartTimer()
				start := time.Now()
				if mode == "backlog" {
					for _, tg := range targets {
						tg.Resume()
					}
				} else if err := activate(ctx, a.api, ids, benchClients); err != nil {
					b.Fatal(err)
				}
				waitCounts(b, 10*time.Minute, targets, make([]map[string]int, len(targets)), users, scimtarget.OpCreate, scimtarget.OpAddMember)
				b.StopTimer()
				var lastOp time.Time
				ops, reqs = 0, 0
				for _, tg := range targets {
					for _, o := range tg.Ops() {
						if o.Applied() && (o.Kind == scimtarget.OpCreate || o.Kind == scimtarget.OpAddMember) {
							ops++
							if o.At.After(lastOp) {
								lastOp = o.At
							}
						}
					}
					reqs += int(tg.Requests())
				}
				reqs -= int(reqs0)
				elapsed = lastOp.Sub(start)
				if want := 2 * users * len(targets); ops != want {
					b.Fatalf("%d account creations and grants applied, want exactly %d", ops, want)
				}
				waitQueueEmpty(b, a, time.Minute)
				a.stop(b)
			}
			b.ReportMetric(float64(ops)/elapsed.Seconds(), "ops/s")
			b.ReportMetric(float64(reqs)/elapsed.Seconds(), "requests/s")
			b.ReportMetric(elapsed.Seconds(), "total-s")
			b.ReportMetric(float64(ops), "ops")
			b.ReportMetric(benchConcurrency, "concurrency")
		})
	}
}
