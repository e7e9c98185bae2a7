package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Criterion is the pass condition of one scenario. Zero fields do not apply.
type Criterion struct {
	MinRatio     float64       // target ops/s ÷ reference ops/s
	MinOpsPerSec float64       // target ops/s, absolute
	MaxP99       time.Duration // target p99, strictly below
}

func (c Criterion) String() string {
	var parts []string
	if c.MinRatio > 0 {
		parts = append(parts, fmt.Sprintf(">=%.2fx", c.MinRatio))
	}
	if c.MinOpsPerSec > 0 {
		parts = append(parts, fmt.Sprintf(">=%.0f/s", c.MinOpsPerSec))
	}
	if c.MaxP99 > 0 {
		parts = append(parts, "p99<"+c.MaxP99.String())
	}
	return strings.Join(parts, " ")
}

// Criteria returns the targets of the performance issue for sc.
func Criteria(sc Scenario) Criterion {
	switch sc {
	case Create, Patch:
		return Criterion{MinRatio: 0.6}
	case Lookup:
		return Criterion{MinRatio: 0.7, MaxP99: 20 * time.Millisecond}
	case Page:
		return Criterion{MinOpsPerSec: 500}
	}
	return Criterion{}
}

// MaxPeakRSS is the limit on the target server's VmHWM with 100,000 users.
const MaxPeakRSS = 150 << 20

// CompareOptions configures Compare.
type CompareOptions struct {
	Users     int        // seeded into both servers before any scenario
	SeedBulk  int        // > 0: seed the target through /Bulk in batches of this size
	Scenarios []Scenario // in order; default AllScenarios()
	Run       RunOptions // each measured run
	// Warmup is an unmeasured run before the first measured run of each
	// scenario on each server (later rounds find connections and caches warm).
	Warmup time.Duration
	// Rounds > 1 repeats every scenario, alternating which server goes first,
	// and pools the measurements. Default 1 (reference first).
	Rounds int
	PID    int // the target server's process id, for VmHWM; 0 skips it
	// ReferencePID, if > 0, is the reference server's process id; its VmHWM
	// is reported for context, not judged.
	ReferencePID int
	Log          io.Writer // progress lines; nil discards them
}

// Stats summarises one server's measurements of one scenario.
type Stats struct {
	OK        int            `json:"ok"`
	Errors    map[string]int `json:"errors,omitempty"`
	Seconds   float64        `json:"seconds"`
	OpsPerSec float64        `json:"opsPerSec"`
	P50Ms     float64        `json:"p50Ms"`
	P95Ms     float64        `json:"p95Ms"`
	P99Ms     float64        `json:"p99Ms"`
	MaxMs     float64        `json:"maxMs"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Summarize turns a Result into Stats.
func Summarize(r *Result) Stats {
	s := Stats{OK: r.OK, Seconds: r.Elapsed.Seconds(), OpsPerSec: r.OpsPerSec(),
		P50Ms: ms(r.Percentile(50)), P95Ms: ms(r.Percentile(95)), P99Ms: ms(r.Percentile(99)),
		MaxMs: ms(r.Percentile(100))}
	if len(r.Errors) > 0 {
		s.Errors = maps.Clone(r.Errors)
	}
	return s
}

// Row is one scenario's comparison.
type Row struct {
	Scenario  Scenario `json:"scenario"`
	Reference Stats    `json:"reference"`
	Target    Stats    `json:"target"`
	Ratio     float64  `json:"ratio"`
	Criterion string   `json:"criterion"`
	// RoundRatios is the ratio of each round alone; their spread shows how
	// much the machine's noise moved the pooled Ratio.
	RoundRatios []float64 `json:"roundRatios"`
	// Pass: the criterion holds and neither server answered any request
	// unexpectedly.
	Pass bool `json:"pass"`
}

// ProcessMemory is a server process's memory at the end of the run.
type ProcessMemory struct {
	PID       int   `json:"pid"`
	PeakBytes int64 `json:"peakBytes"` // VmHWM
	RSSBytes  int64 `json:"rssBytes"`  // VmRSS
}

// Memory is the target's ProcessMemory judged against its limit.
type Memory struct {
	ProcessMemory
	LimitBytes int64 `json:"limitBytes"`
	Pass       bool  `json:"pass"` // PeakBytes < LimitBytes
}

// SeedStat is how long seeding one server took.
type SeedStat struct {
	Target  string  `json:"target"`
	Users   int     `json:"users"`
	Bulk    int     `json:"bulk,omitempty"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
}

// Report is the outcome of Compare.
type Report struct {
	Reference string     `json:"reference"`
	Target    string     `json:"target"`
	Clients   int        `json:"clients"`
	Duration  string     `json:"duration,omitempty"`
	Ops       int        `json:"ops,omitempty"`
	Rounds    int        `json:"rounds"`
	Seed      []SeedStat `json:"seed"`
	Rows      []Row      `json:"rows"`
	Memory    *Memory    `json:"memory,omitempty"`
	// ReferenceMemory is the reference's, when it runs in its own process.
	ReferenceMemory *ProcessMemory `json:"referenceMemory,omitempty"`
	Pass            bool           `json:"pass"`
}

// Compare seeds ref and target with opt.Users users each, then measures every
// scenario on both in alternation and judges the target against Criteria and
// MaxPeakRSS. It returns an error (and no report) when seeding fails, a
// scenario cannot start, ctx ends, or the target's /proc status cannot be
// read; unexpected answers are counted in the report and fail its row.
func Compare(ctx context.Context, ref, target *Target, opt CompareOptions) (*Report, error) {
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	scenarios := opt.Scenarios
	if len(scenarios) == 0 {
		scenarios = AllScenarios()
	}
	rounds := max(opt.Rounds, 1)
	rep := &Report{Reference: ref.BaseURL, Target: target.BaseURL, Clients: opt.Run.Clients, Rounds: rounds, Pass: true}
	if rep.Clients <= 0 {
		rep.Clients = 16
	}
	if opt.Run.Ops > 0 {
		rep.Ops = opt.Run.Ops
	} else {
		rep.Duration = opt.Run.Duration.String()
	}

	for _, s := range []struct {
		t    *Target
		bulk int
	}{{ref, 0}, {target, opt.SeedBulk}} {
		if opt.Users <= 0 {
			break
		}
		fmt.Fprintf(logw, "seeding %s with %d users…\n", s.t.Name, opt.Users)
		t0 := time.Now()
		err := s.t.Seed(ctx, opt.Users, SeedOptions{Clients: rep.Clients, BulkSize: s.bulk,
			Progress: func(done int) { fmt.Fprintf(logw, "  %s: %d users, %.0fs\n", s.t.Name, done, time.Since(t0).Seconds()) }})
		if err != nil {
			return nil, err
		}
		el := time.Since(t0)
		rep.Seed = append(rep.Seed, SeedStat{Target: s.t.Name, Users: opt.Users, Bulk: s.bulk,
			Seconds: el.Seconds(), PerSec: float64(opt.Users) / el.Seconds()})
		fmt.Fprintf(logw, "seeded %s: %d users in %.1fs (%.0f/s)\n", s.t.Name, opt.Users, el.Seconds(), float64(opt.Users)/el.Seconds())
	}

	for _, sc := range scenarios {
		pooled := map[*Target]*Result{}
		var roundRatios []float64
		for r := range rounds {
			perRound := map[*Target]float64{}
			order := []*Target{ref, target}
			if r%2 == 1 {
				order = []*Target{target, ref}
			}
			for _, t := range order {
				if opt.Warmup > 0 && r == 0 {
					if _, err := t.Run(ctx, sc, RunOptions{Clients: opt.Run.Clients, Duration: opt.Warmup}); err != nil {
						return nil, err
					}
				}
				res, err := t.Run(ctx, sc, opt.Run)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(logw, "%-6s %-9s %8.0f ops/s  p99 %6.2fms  errors %v\n", sc, t.Name, res.OpsPerSec(), ms(res.Percentile(99)), res.Errors)
				perRound[t] = res.OpsPerSec()
				if p := pooled[t]; p != nil {
					p.merge(res)
				} else {
					pooled[t] = res
				}
			}
			if perRound[ref] > 0 {
				roundRatios = append(roundRatios, perRound[target]/perRound[ref])
			}
		}
		row := judge(sc, pooled[ref], pooled[target])
		row.RoundRatios = roundRatios
		rep.Pass = rep.Pass && row.Pass
		rep.Rows = append(rep.Rows, row)
	}

	if opt.PID > 0 {
		peak, rss, err := ReadMemory(opt.PID)
		if err != nil {
			return nil, err
		}
		rep.Memory = &Memory{ProcessMemory: ProcessMemory{PID: opt.PID, PeakBytes: peak, RSSBytes: rss},
			LimitBytes: MaxPeakRSS, Pass: peak < MaxPeakRSS}
		rep.Pass = rep.Pass && rep.Memory.Pass
	}
	if opt.ReferencePID > 0 {
		peak, rss, err := ReadMemory(opt.ReferencePID)
		if err != nil {
			return nil, err
		}
		rep.ReferenceMemory = &ProcessMemory{PID: opt.ReferencePID, PeakBytes: peak, RSSBytes: rss}
	}
	return rep, nil
}

// judge compares one scenario's pooled results.
func judge(sc Scenario, ref, target *Result) Row {
	c := Criteria(sc)
	row := Row{Scenario: sc, Reference: Summarize(ref), Target: Summarize(target), Criterion: c.String()}
	if row.Reference.OpsPerSec > 0 {
		row.Ratio = row.Target.OpsPerSec / row.Reference.OpsPerSec
	}
	row.Pass = len(ref.Errors) == 0 && len(target.Errors) == 0 && target.OK > 0 &&
		(c.MinRatio == 0 || row.Ratio >= c.MinRatio) &&
		(c.MinOpsPerSec == 0 || row.Target.OpsPerSec >= c.MinOpsPerSec) &&
		(c.MaxP99 == 0 || target.Percentile(99) < c.MaxP99)
	return row
}

// WriteTable prints the report as an aligned table.
func (rep *Report) WriteTable(w io.Writer, targetName string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\treference ops/s\t%s ops/s\tratio\tper round\treference p99\t%s p99\ttarget\tresult\t\n", targetName, targetName)
	for _, r := range rep.Rows {
		spread := "-"
		if len(r.RoundRatios) > 1 {
			spread = fmt.Sprintf("%.2f-%.2f", slices.Min(r.RoundRatios), slices.Max(r.RoundRatios))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2fx\t%s\t%.2fms\t%.2fms\t%s\t%s\t\n", r.Scenario,
			r.Reference.OpsPerSec, r.Target.OpsPerSec, r.Ratio, spread, r.Reference.P99Ms, r.Target.P99Ms, r.Criterion, passFail(r.Pass))
	}
	if m := rep.Memory; m != nil {
		refPeak := ""
		if rm := rep.ReferenceMemory; rm != nil {
			refPeak = fmt.Sprintf("%.1f MiB", float64(rm.PeakBytes)/(1<<20))
		}
		fmt.Fprintf(tw, "peak RSS\t%s\t%.1f MiB\t\t\t\t\t<%d MiB\t%s\t\n", refPeak, float64(m.PeakBytes)/(1<<20), m.LimitBytes>>20, passFail(m.Pass))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		for _, s := range []struct {
			name string
			st   Stats
		}{{"reference", r.Reference}, {targetName, r.Target}} {
			if len(s.st.Errors) > 0 {
				keys := slices.Sorted(maps.Keys(s.st.Errors))
				var parts []string
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("%s×%d", k, s.st.Errors[k]))
				}
				fmt.Fprintf(w, "%s %s: unexpected answers: %s\n", r.Scenario, s.name, strings.Join(parts, ", "))
			}
		}
	}
	_, err := fmt.Fprintf(w, "overall: %s\n", passFail(rep.Pass))
	return err
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// ReadMemory returns the peak (VmHWM) and current (VmRSS) resident set size
// of process pid, in bytes, from /proc/<pid>/status. It fails if the file
// cannot be read or lacks either line.
func ReadMemory(pid int) (peak, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	peak, rss, err = parseProcStatus(f)
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: memory of pid %d: %w", pid, err)
	}
	return peak, rss, nil
}

// parseProcStatus reads VmHWM and VmRSS ("VmHWM:	  123456 kB") in bytes.
func parseProcStatus(r io.Reader) (peak, rss int64, err error) {
	var havePeak, haveRSS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, 0, fmt.Errorf("%s: unparsable value %q", key, strings.TrimSpace(val))
		}
		if key == "VmHWM" {
			peak, havePeak = n<<10, true
		} else {
			rss, haveRSS = n<<10, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !havePeak || !haveRSS {
		return 0, 0, errors.New("no VmHWM/VmRSS line")
	}
	return peak, rss, nil
}
