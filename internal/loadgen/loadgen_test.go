package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret-token"

// newRef serves a fresh Reference over httptest.
func newRef(t *testing.T) (*httptest.Server, *Target) {
	t.Helper()
	ref, err := NewReference(filepath.Join(t.TempDir(), "ref.db"), testToken)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ref)
	t.Cleanup(func() {
		srv.Close()
		ref.Close()
	})
	tgt := NewTarget("ref", srv.URL, testToken, 4)
	t.Cleanup(tgt.Close)
	return srv, tgt
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	ten := hundred[:10]
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 99, 0},
		{"single p1", []time.Duration{7}, 1, 7},
		{"single p100", []time.Duration{7}, 100, 7},
		{"100 p50", hundred, 50, 50 * time.Millisecond},
		{"100 p95", hundred, 95, 95 * time.Millisecond},
		{"100 p99", hundred, 99, 99 * time.Millisecond},
		{"100 p99.5", hundred, 99.5, 100 * time.Millisecond},
		{"100 p100", hundred, 100, 100 * time.Millisecond},
		{"10 p50", ten, 50, 5 * time.Millisecond},
		{"10 p51", ten, 51, 6 * time.Millisecond},
		{"10 p95", ten, 95, 10 * time.Millisecond},
		{"10 p99", ten, 99, 10 * time.Millisecond},
		{"10 p0 clamps", ten, 0, 1 * time.Millisecond},
		{"10 p200 clamps", ten, 200, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestResultStats(t *testing.T) {
	t.Parallel()
	a := &Result{OK: 3, Elapsed: time.Second, Errors: map[string]int{"500": 1},
		Latencies: []time.Duration{1 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 7 * time.Millisecond}}
	b := &Result{OK: 1, Elapsed: time.Second, Errors: map[string]int{"500": 1, "transport": 2},
		Latencies: []time.Duration{2 * time.Millisecond, 4 * time.Millisecond, 6 * time.Millisecond, 8 * time.Millisecond}}
	a.merge(b)
	s := Summarize(a)
	if s.OK != 4 || s.Seconds != 2 || s.OpsPerSec != 2 {
		t.Errorf("OK/Seconds/OpsPerSec = %d/%v/%v, want 4/2/2", s.OK, s.Seconds, s.OpsPerSec)
	}
	if s.P50Ms != 4 || s.P99Ms != 8 || s.MaxMs != 8 {
		t.Errorf("p50/p99/max = %v/%v/%v ms, want 4/8/8", s.P50Ms, s.P99Ms, s.MaxMs)
	}
	if s.Errors["500"] != 2 || s.Errors["transport"] != 2 {
		t.Errorf("errors = %v", s.Errors)
	}
}

func TestParseScenarios(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []Scenario
		wantErr string
	}{
		{"lookup,page,create,patch", AllScenarios(), ""},
		{"create,patch,lookup,page", []Scenario{Create, Patch, Lookup, Page}, ""},
		{" lookup , page", []Scenario{Lookup, Page}, ""},
		{"create,delete", nil, `"delete" at position 1`},
		{"page,page", nil, `"page" repeated at position 1`},
		{"", nil, `"" at position 0`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScenarios(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestTotalResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want int
		ok   bool
	}{
		{`{"totalResults":1,"Resources":[]}`, 1, true},
		{`{"schemas":[], "totalResults" : 100000 ,"x":1}`, 100000, true},
		{"{\n  \"totalResults\":\n 0\n}", 0, true},
		{`{"Resources":[]}`, 0, false},
		{`{"totalResults":"1"}`, 0, false},
		{`{"totalResults"}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			got, ok := totalResults([]byte(tt.body))
			if got != tt.want || ok != tt.ok {
				t.Errorf("totalResults = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseProcStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		peak, rss int64
		wantErr   string
	}{
		{"both", "Name:\tjmlgate\nVmPeak:\t  999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n", 2048 << 10, 1024 << 10, ""},
		{"missing rss", "VmHWM:\t 1 kB\n", 0, 0, "no VmHWM/VmRSS"},
		{"bad unit", "VmHWM:\t 1 MB\nVmRSS:\t 1 kB\n", 0, 0, `VmHWM: unparsable value "1 MB"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peak, rss, err := parseProcStatus(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || peak != tt.peak || rss != tt.rss {
				t.Fatalf("got %d, %d, %v; want %d, %d", peak, rss, err, tt.peak, tt.rss)
			}
		})
	}
	t.Run("self", func(t *testing.T) {
		t.Parallel()
		peak, rss, err := ReadMemory(os.Getpid())
		if err != nil || peak <= 0 || rss <= 0 || rss > peak {
			t.Fatalf("ReadMemory(self) = %d, %d, %v", peak, rss, err)
		}
	})
}

func TestJudge(t *testing.T) {
	t.Parallel()
	res := func(ok int, p99 time.Duration, errs map[string]int) *Result {
		if errs == nil {
			errs = map[string]int{}
		}
		return &Result{OK: ok, Elapsed: time.Second, Errors: errs, Latencies: []time.Duration{p99}}
	}
	tests := []struct {
		name      string
		sc        Scenario
		ref, tgt  *Result
		wantRatio float64
		wantPass  bool
	}{
		{"create at 0.6", Create, res(1000, 0, nil), res(600, 0, nil), 0.6, true},
		{"create below", Create, res(1000, 0, nil), res(599, 0, nil), 0.599, false},
		{"patch target errors", Patch, res(100, 0, nil), res(100, 0, map[string]int{"500": 1}), 1, false},
		{"patch reference errors", Patch, res(100, 0, map[string]int{"transport": 1}), res(100, 0, nil), 1, false},
		{"lookup ok", Lookup, res(1000, time.Millisecond, nil), res(700, 19*time.Millisecond, nil), 0.7, true},
		{"lookup slow p99", Lookup, res(1000, time.Millisecond, nil), res(900, 20*time.Millisecond, nil), 0.9, false},
		{"page absolute", Page, res(5000, 0, nil), res(500, 0, nil), 0.1, true},
		{"page too slow", Page, res(600, 0, nil), res(499, 0, nil), 499.0 / 600, false},
		{"nothing succeeded", Page, res(0, 0, nil), res(0, 0, nil), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			row := judge(tt.sc, tt.ref, tt.tgt)
			if row.Pass != tt.wantPass || fmt.Sprintf("%.4f", row.Ratio) != fmt.Sprintf("%.4f", tt.wantRatio) {
				t.Errorf("pass %v ratio %v, want %v %v", row.Pass, row.Ratio, tt.wantPass, tt.wantRatio)
			}
		})
	}
}

// TestScenarios drives every scenario against a real Reference and checks
// the answers, that created and seeded users are found by lookup, and that
// patches land.
func TestScenarios(t *testing.T) {
	t.Parallel()
	_, tgt := newRef(t)
	ctx := context.Background()
	const seeded = 40
	if err := tgt.Seed(ctx, seeded, SeedOptions{Clients: 4}); err != nil {
		t.Fatal(err)
	}
	for _, sc := range AllScenarios() {
		res, err := tgt.Run(ctx, sc, RunOptions{Clients: 3, Ops: 30})
		if err != nil {
			t.Fatalf("%s: %v", sc, err)
		}
		if res.OK != 30 || len(res.Errors) != 0 || len(res.Latencies) != 30 {
			t.Fatalf("%s: ok %d errors %v latencies %d, want 30 clean", sc, res.OK, res.Errors, len(res.Latencies))
		}
	}
	created := tgt.Created()
	if len(created) != 30 {
		t.Fatalf("created %d users, want 30", len(created))
	}
	var buf bytes.Buffer
	get := func(id string) map[string]any {
		t.Helper()
		code, err := tgt.do(ctx, http.MethodGet, "/scim/v2/Users/"+id, nil, &buf)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", id, code, err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	patched := 0
	for _, id := range created {
		doc := get(id)
		name, _ := doc["userName"].(string)
		got, err := tgt.lookupID(ctx, strings.ToUpper(name), &buf)
		if err != nil || got != id {
			t.Errorf("lookup %q = %q, %v; want %q", name, got, err, id)
		}
		if dn, _ := doc["displayName"].(string); strings.HasPrefix(dn, "Patched ") {
			patched++
		}
	}
	if patched == 0 {
		t.Errorf("no created user shows a patched displayName")
	}
	for i := range seeded {
		got, err := tgt.lookupID(ctx, SeedUserName(i), &buf)
		if err != nil || got != tgt.seeded[i] {
			t.Errorf("lookup %s = %q, %v; want %q", SeedUserName(i), got, err, tgt.seeded[i])
		}
	}
	// Paging sees every user in creation order.
	code, err := tgt.do(ctx, http.MethodGet, "/scim/v2/Users?startIndex=41&count=100", nil, &buf)
	if err != nil || code != http.StatusOK {
		t.Fatalf("page: %d %v", code, err)
	}
	var page struct {
		TotalResults, ItemsPerPage int
		Resources                  []struct{ ID string }
	}
	if err := json.Unmarshal(buf.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if page.TotalResults != 70 || page.ItemsPerPage != 30 || len(page.Resources) != 30 {
		t.Fatalf("page at 41: total %d items %d resources %d, want 70 30 30", page.TotalResults, page.ItemsPerPage, len(page.Resources))
	}
	var ids []string
	for _, r := range page.Resources {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	slices.Sort(created)
	if !slices.Equal(ids, created) {
		t.Errorf("page at 41 holds %v, want the created users %v", ids, created)
	}
}

// TestSeedTwice: seeding a server that already has the users finds them.
func TestSeedTwice(t *testing.T) {
	t.Parallel()
	srv, first := newRef(t)
	ctx := context.Background()
	if err := first.Seed(ctx, 20, SeedOptions{Clients: 3}); err != nil {
		t.Fatal(err)
	}
	again := NewTarget("again", srv.URL, testToken, 2)
	defer again.Close()
	if err := again.Seed(ctx, 25, SeedOptions{Clients: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if first.seeded[i] != again.seeded[i] {
			t.Errorf("user %d: ids %q and %q", i, first.seeded[i], again.seeded[i])
		}
	}
}

// bulkOverReference adds a /scim/v2/Bulk endpoint in front of a Reference by
// replaying each operation as a POST /scim/v2/Users.
func bulkOverReference(ref http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/scim/v2/Bulk" {
			ref.ServeHTTP(w, r)
			return
		}
		var req struct {
			Operations []struct {
				BulkID string          `json:"bulkId"`
				Data   json.RawMessage `json:"data"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type opResp struct {
			BulkID   string `json:"bulkId"`
			Location string `json:"location,omitempty"`
			Status   any    `json:"status"`
		}
		var out struct{ Operations []opResp }
		for i, op := range req.Operations {
			sub := httptest.NewRequest(http.MethodPost, "/scim/v2/Users", bytes.NewReader(op.Data))
			sub.Header.Set("Authorization", r.Header.Get("Authorization"))
			rec := httptest.NewRecorder()
			ref.ServeHTTP(rec, sub)
			var status any = fmt.Sprint(rec.Code) // RFC 7644 form…
			if i%2 == 1 {
				status = rec.Code // …and the numeric form some servers send
			}
			resp := opResp{BulkID: op.BulkID, Status: status}
			if rec.Code == http.StatusCreated {
				id, _ := decodeID(rec.Body.Bytes())
				resp.Location = "http://example.test/scim/v2/Users/" + id
			}
			out.Operations = append(out.Operations, resp)
		}
		body, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, body)
	})
}

func TestSeedBulk(t *testing.T) {
	t.Parallel()
	ref, err := NewReference(filepath.Join(t.TempDir(), "ref.db"), testToken)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	srv := httptest.NewServer(bulkOverReference(ref))
	defer srv.Close()
	ctx := context.Background()
	pre := NewTarget("pre", srv.URL, testToken, 2)
	defer pre.Close()
	if err := pre.Seed(ctx, 5, SeedOptions{Clients: 2}); err != nil { // users 0..4 exist: 409s in bulk
		t.Fatal(err)
	}
	tgt := NewTarget("bulk", srv.URL, testToken, 2)
	defer tgt.Close()
	if err := tgt.Seed(ctx, 23, SeedOptions{Clients: 2, BulkSize: 7}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i := range 23 {
		got, err := tgt.lookupID(ctx, SeedUserName(i), &buf)
		if err != nil || got != tgt.seeded[i] {
			t.Errorf("user %d: seeded id %q, lookup %q %v", i, tgt.seeded[i], got, err)
		}
	}
}

// TestReferenceStatus checks the reference's answers to wrong requests.
func TestReferenceStatus(t *testing.T) {
	t.Parallel()
	srv, tgt := newRef(t)
	ctx := context.Background()
	if err := tgt.Seed(ctx, 1, SeedOptions{Clients: 1}); err != nil {
		t.Fatal(err)
	}
	id := tgt.seeded[0]
	user := func(name string) string {
		b, _ := json.Marshal(newUser(name, 1))
		return string(b)
	}
	patch := func(path string) string {
		return fmt.Sprintf(`{"schemas":[%q],"Operations":[{"op":"replace","path":%q,"value":"x"}]}`, schemaPatchOp, path)
	}
	tests := []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"no token", "", "GET", "/scim/v2/Users", "", 401},
		{"wrong token", "nope", "GET", "/scim/v2/Users", "", 401},
		{"create", testToken, "POST", "/scim/v2/Users", user("new@example.com"), 201},
		{"duplicate, other case", testToken, "POST", "/scim/v2/Users", user("USER0@example.com"), 409},
		{"no userName", testToken, "POST", "/scim/v2/Users", `{"active":true}`, 400},
		{"not an object", testToken, "POST", "/scim/v2/Users", `[1]`, 400},
		{"patch", testToken, "PATCH", "/scim/v2/Users/" + id, patch("displayName"), 200},
		{"patch missing", testToken, "PATCH", "/scim/v2/Users/nope", patch("displayName"), 404},
		{"patch nested path", testToken, "PATCH", "/scim/v2/Users/" + id, patch("name.givenName"), 400},
		{"get missing", testToken, "GET", "/scim/v2/Users/nope", "", 404},
		{"filter other attr", testToken, "GET", "/scim/v2/Users?filter=" + strings.ReplaceAll(`externalId eq "x"`, " ", "%20"), "", 400},
		{"filter miss", testToken, "GET", filterPath("nobody@example.com"), "", 200},
		{"bad count", testToken, "GET", "/scim/v2/Users?count=x", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			} else {
				body = strings.NewReader("")
			}
			req, _ := http.NewRequestWithContext(ctx, tt.method, srv.URL+tt.path, body)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != scimContentType {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// TestCompare runs the whole comparison with two references and a handful
// of requests, checking the report's shape (not its figures).
func TestCompare(t *testing.T) {
	t.Parallel()
	_, a := newRef(t)
	_, b := newRef(t)
	rep, err := Compare(context.Background(), a, b, CompareOptions{
		Users: 20, Run: RunOptions{Clients: 2, Ops: 10}, Rounds: 2, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 || len(rep.Seed) != 2 || rep.Memory == nil || rep.Memory.PeakBytes <= 0 {
		t.Fatalf("report: %d rows, %d seeds, memory %+v", len(rep.Rows), len(rep.Seed), rep.Memory)
	}
	for _, r := range rep.Rows {
		if r.Reference.OK != 20 || r.Target.OK != 20 || r.Ratio <= 0 || r.Criterion == "" || len(r.RoundRatios) != 2 {
			t.Errorf("%s: ok %d/%d ratio %v criterion %q round ratios %v", r.Scenario, r.Reference.OK, r.Target.OK, r.Ratio, r.Criterion, r.RoundRatios)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out, "jmlgate"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"create", "patch", "lookup", "page", "peak RSS", "overall:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
