// Package loadgen measures a SCIM server end to end: a closed-loop load
// generator (fixed number of clients, each sending its next request when the
// previous answer is fully read), a seeder, and Reference, the minimal
// net/http + SQLite server whose throughput jmlgate's figures are ratios of.
//
// The figures only mean something as ratios taken in one run on one machine:
// Compare seeds both servers with the same users, then runs every scenario
// against both in alternation.
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario names one kind of request the load generator sends.
type Scenario string

// Scenarios.
const (
	// Create POSTs a new Entra-shaped user per request (expects 201).
	Create Scenario = "create"
	// Patch replaces displayName of a user created by this Target's Create
	// runs, or of a seeded user when none was created (expects 200).
	Patch Scenario = "patch"
	// Lookup filters on userName eq a random seeded user's name (expects 200
	// with totalResults 1).
	Lookup Scenario = "lookup"
	// Page lists startIndex=1&count=100 (expects 200).
	Page Scenario = "page"
)

// AllScenarios is the default order: reads first, so they run against
// exactly the seeded users (Create adds thousands per second), then creates,
// then patches of the users the create phase made.
func AllScenarios() []Scenario { return []Scenario{Lookup, Page, Create, Patch} }

// ParseScenarios parses a comma-separated list such as "create,lookup".
// It fails on an unknown or repeated name, naming it and its position.
func ParseScenarios(s string) ([]Scenario, error) {
	var out []Scenario
	for i, f := range strings.Split(s, ",") {
		sc := Scenario(strings.TrimSpace(f))
		if !slices.Contains(AllScenarios(), sc) {
			return nil, fmt.Errorf("loadgen: unknown scenario %q at position %d (want create, patch, lookup or page)", sc, i)
		}
		if slices.Contains(out, sc) {
			return nil, fmt.Errorf("loadgen: scenario %q repeated at position %d", sc, i)
		}
		out = append(out, sc)
	}
	return out, nil
}

// Target is one SCIM server under load, with what the load generator knows
// about its contents: the ids of the seeded users and of the users its Create
// runs made. A Target is safe for use by one Run or Seed at a time.
type Target struct {
	Name    string
	BaseURL string // e.g. http://127.0.0.1:8080, without /scim/v2
	token   string
	client  *http.Client

	prefix  string       // makes Create's userNames unique per Target and process
	counter atomic.Int64 // Create's next user number

	mu      sync.Mutex
	seeded  []string // seeded[i] is the id of user{i}@example.com
	created []string
}

// NewTarget returns a Target whose HTTP client keeps up to conns idle
// keep-alive connections, so that conns clients never reconnect.
func NewTarget(name, baseURL, token string, conns int) *Target {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var p [4]byte
	rand.Read(p[:])
	return &Target{
		Name:    name,
		BaseURL: strings.TrimRight(baseURL, "/"),
		token:   token,
		client:  &http.Client{Transport: tr, Timeout: 60 * time.Second},
		prefix:  hex.EncodeToString(p[:]),
	}
}

// Close releases idle connections.
func (t *Target) Close() { t.client.CloseIdleConnections() }

// Seeded returns how many users Seed loaded.
func (t *Target) Seeded() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seeded)
}

// Created returns the ids of the users Create runs made, oldest first.
func (t *Target) Created() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.created)
}

// SeedUserName is the userName of the i-th seeded user.
func SeedUserName(i int) string { return "user" + strconv.Itoa(i) + "@example.com" }

// userBody is a user as Microsoft Entra ID provisions it.
type userBody struct {
	Schemas           []string `json:"schemas"`
	ExternalID        string   `json:"externalId"`
	UserName          string   `json:"userName"`
	Active            bool     `json:"active"`
	DisplayName       string   `json:"displayName"`
	Title             string   `json:"title"`
	PreferredLanguage string   `json:"preferredLanguage"`
	Name              struct {
		Formatted  string `json:"formatted"`
		FamilyName string `json:"familyName"`
		GivenName  string `json:"givenName"`
	} `json:"name"`
	Emails []struct {
		Primary bool   `json:"primary"`
		Type    string `json:"type"`
		Value   string `json:"value"`
	} `json:"emails"`
	Enterprise struct {
		EmployeeNumber string `json:"employeeNumber"`
		Department     string `json:"department"`
	} `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`
}

var departments = [...]string{"Engineering", "Sales", "Finance", "People", "Legal", "Support", "Marketing", "Operations"}

// newUser returns the Entra-shaped user number n named userName.
func newUser(userName string, n int64) userBody {
	var u userBody
	u.Schemas = []string{schemaUser, schemaEnterprise}
	u.ExternalID = fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(n>>16), n)
	u.UserName = userName
	u.Active = true
	u.Name.GivenName = "User"
	u.Name.FamilyName = "Number" + strconv.FormatInt(n, 10)
	u.Name.Formatted = u.Name.GivenName + " " + u.Name.FamilyName
	u.DisplayName = u.Name.Formatted
	u.Title = "Engineer"
	u.PreferredLanguage = "en-US"
	u.Emails = append(u.Emails, struct {
		Primary bool   `json:"primary"`
		Type    string `json:"type"`
		Value   string `json:"value"`
	}{true, "work", userName})
	u.Enterprise.EmployeeNumber = strconv.FormatInt(n, 10)
	u.Enterprise.Department = departments[n%int64(len(departments))]
	return u
}

// do sends one request and reads the whole answer into buf.
func (t *Target) do(ctx context.Context, method, path string, body []byte, buf *bytes.Buffer) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.BaseURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Accept", scimContentType)
	if body != nil {
		req.Header.Set("Content-Type", scimContentType)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

// filterPath is the GET path of a userName eq filter, spaces as %20.
func filterPath(userName string) string {
	f := `userName eq "` + userName + `"`
	return "/scim/v2/Users?filter=" + strings.ReplaceAll(url.QueryEscape(f), "+", "%20")
}

// totalResults extracts a top-level "totalResults" number without decoding
// the whole ListResponse.
func totalResults(body []byte) (int, bool) {
	i := bytes.Index(body, []byte(`"totalResults"`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(`"totalResults"`):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return 0, false
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(string(rest[:end]))
	return n, err == nil
}

func decodeID(body []byte) (string, error) {
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", err
	}
	if v.ID == "" {
		return "", errors.New(`no "id" in response`)
	}
	return v.ID, nil
}

// lookupID returns the id of the user named userName.
func (t *Target) lookupID(ctx context.Context, userName string, buf *bytes.Buffer) (string, error) {
	code, err := t.do(ctx, http.MethodGet, filterPath(userName), nil, buf)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("lookup %s: status %d", userName, code)
	}
	var v struct {
		Resources []struct {
			ID string `json:"id"`
		} `json:"Resources"`
	}
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		return "", fmt.Errorf("lookup %s: %w", userName, err)
	}
	if len(v.Resources) != 1 || v.Resources[0].ID == "" {
		return "", fmt.Errorf("lookup %s: %d resources", userName, len(v.Resources))
	}
	return v.Resources[0].ID, nil
}

// SeedOptions tunes Seed.
type SeedOptions struct {
	Clients int // concurrent requests; default 16
	// BulkSize > 0 seeds through POST /scim/v2/Bulk, that many operations per
	// request; 0 uses one POST /scim/v2/Users per user.
	BulkSize int
	// Progress, if set, is called from time to time with the users done.
	Progress func(done int)
}

// Seed makes sure users user0@example.com … user{n-1}@example.com exist and
// records their ids for Lookup and Patch. A user that already exists (409) is
// looked up instead, so seeding a server seeded by an earlier run works. It
// stops at the first other failure and returns it, naming the user; users
// created before that stay created.
func (t *Target) Seed(ctx context.Context, n int, opt SeedOptions) error {
	clients := opt.Clients
	if clients <= 0 {
		clients = 16
	}
	batch := max(opt.BulkSize, 1)
	ids := make([]string, n)
	var next, done atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= n {
					return
				}
				hi := min(lo+batch, n)
				var err error
				if opt.BulkSize > 0 {
					err = t.seedBulk(ctx, lo, hi, ids, &buf)
				} else {
					err = t.seedOne(ctx, lo, ids, &buf)
				}
				if err != nil {
					cancel(err)
					return
				}
				d := done.Add(int64(hi - lo))
				if opt.Progress != nil && d/10000 != (d-int64(hi-lo))/10000 {
					opt.Progress(int(d))
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("loadgen: seed %s: %w", t.Name, err)
	}
	t.mu.Lock()
	t.seeded = ids
	t.mu.Unlock()
	return nil
}

func (t *Target) seedOne(ctx context.Context, i int, ids []string, buf *bytes.Buffer) error {
	name := SeedUserName(i)
	body, err := json.Marshal(newUser(name, int64(i)))
	if err != nil {
		return err
	}
	code, err := t.do(ctx, http.MethodPost, "/scim/v2/Users", body, buf)
	switch {
	case err != nil:
		return fmt.Errorf("create %s: %w", name, err)
	case code == http.StatusCreated:
		ids[i], err = decodeID(buf.Bytes())
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	case code == http.StatusConflict:
		if ids[i], err = t.lookupID(ctx, name, buf); err != nil {
			return err
		}
	default:
		return fmt.Errorf("create %s: status %d: %.200s", name, code, buf.String())
	}
	return nil
}

type bulkOp struct {
	Method string   `json:"method"`
	Path   string   `json:"path"`
	BulkID string   `json:"bulkId"`
	Data   userBody `json:"data"`
}

// seedBulk creates users lo..hi-1 in one Bulk request.
func (t *Target) seedBulk(ctx context.Context, lo, hi int, ids []string, buf *bytes.Buffer) error {
	req := struct {
		Schemas    []string `json:"schemas"`
		Operations []bulkOp `json:"Operations"`
	}{Schemas: []string{schemaBulkRequest}}
	for i := lo; i < hi; i++ {
		req.Operations = append(req.Operations, bulkOp{Method: "POST", Path: "/Users",
			BulkID: "u" + strconv.Itoa(i), Data: newUser(SeedUserName(i), int64(i))})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	code, err := t.do(ctx, http.MethodPost, "/scim/v2/Bulk", body, buf)
	if err != nil {
		return fmt.Errorf("bulk %s..%s: %w", SeedUserName(lo), SeedUserName(hi-1), err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("bulk %s..%s: status %d: %.200s", SeedUserName(lo), SeedUserName(hi-1), code, buf.String())
	}
	var resp struct {
		Operations []struct {
			BulkID   string          `json:"bulkId"`
			Location string          `json:"location"`
			Status   json.RawMessage `json:"status"` // "201" per RFC 7644; some servers send 201
		} `json:"Operations"`
	}
	if err := json.Unmarshal(buf.Bytes(), &resp); err != nil {
		return fmt.Errorf("bulk %s..%s: response: %w", SeedUserName(lo), SeedUserName(hi-1), err)
	}
	for j, op := range resp.Operations {
		i, err := strconv.Atoi(strings.TrimPrefix(op.BulkID, "u"))
		if err != nil || i < lo || i >= hi {
			return fmt.Errorf("bulk response operation %d: unexpected bulkId %q", j, op.BulkID)
		}
		switch strings.Trim(string(op.Status), `"`) {
		case "201":
			ids[i] = op.Location[strings.LastIndexByte(op.Location, '/')+1:]
		case "409":
			if ids[i], err = t.lookupID(ctx, SeedUserName(i), buf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("bulk create %s: status %s", SeedUserName(i), op.Status)
		}
	}
	for i := lo; i < hi; i++ {
		if ids[i] == "" {
			return fmt.Errorf("bulk create %s: no id in response", SeedUserName(i))
		}
	}
	return nil
}

// RunOptions bounds one Run.
type RunOptions struct {
	Clients  int           // concurrent closed-loop clients; default 16
	Duration time.Duration // stop starting requests after this long
	Ops      int           // or after this many requests, if > 0 (takes precedence)
}

// Result is what one Run measured.
type Result struct {
	Scenario Scenario
	Target   string
	OK       int            // requests answered as expected
	Errors   map[string]int // others, by HTTP status, "transport" or "body"
	Elapsed  time.Duration  // first request sent to last answer read
	// Latencies of all requests, sorted ascending.
	Latencies []time.Duration
}

// OpsPerSec is successful requests per second of Elapsed.
func (r *Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p <= 100) of r's latencies.
func (r *Result) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// Percentile returns the nearest-rank p-th percentile of sorted: the smallest
// value such that at least p percent of the values are <= it. It returns 0
// for an empty slice; p is clamped to (0, 100].
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(n)*p/100 - 1e-9)) // tolerant of float noise
	return sorted[min(max(rank, 1), n)-1]
}

// merge adds o's counts and latencies to r (same scenario and target).
func (r *Result) merge(o *Result) {
	r.OK += o.OK
	r.Elapsed += o.Elapsed
	for k, v := range o.Errors {
		r.Errors[k] += v
	}
	r.Latencies = append(r.Latencies, o.Latencies...)
	slices.Sort(r.Latencies)
}

// worker is one closed-loop client's state.
type worker struct {
	rng     *mrand.Rand
	buf     bytes.Buffer
	lat     []time.Duration
	ok      int
	errs    map[string]int
	created []string
}

// opFunc sends one request; it returns "" when the answer was as expected,
// else the error class.
type opFunc func(ctx context.Context, w *worker) string

// Run drives sc against t with opt.Clients closed-loop clients until
// opt.Duration has passed or opt.Ops requests were sent; requests in flight at
// the deadline complete and count. It fails before sending anything when sc
// needs seeded users and there are none; request failures are counted in
// Result.Errors, not returned.
func (t *Target) Run(ctx context.Context, sc Scenario, opt RunOptions) (*Result, error) {
	op, err := t.op(sc)
	if err != nil {
		return nil, err
	}
	clients := opt.Clients
	if clients <= 0 {
		clients = 16
	}
	if opt.Ops <= 0 && opt.Duration <= 0 {
		return nil, errors.New("loadgen: run needs a duration or an op count")
	}
	var stop atomic.Bool
	var sent atomic.Int64
	workers := make([]*worker, clients)
	seed := mrand.Uint64()
	start := time.Now()
	if opt.Ops <= 0 {
		tm := time.AfterFunc(opt.Duration, func() { stop.Store(true) })
		defer tm.Stop()
	}
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{rng: mrand.New(mrand.NewPCG(seed, uint64(i))), errs: map[string]int{}}
		workers[i] = w
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				if opt.Ops > 0 && sent.Add(1) > int64(opt.Ops) {
					return
				}
				t0 := time.Now()
				class := op(ctx, w)
				w.lat = append(w.lat, time.Since(t0))
				if class == "" {
					w.ok++
				} else {
					w.errs[class]++
				}
			}
		})
	}
	wg.Wait()
	res := &Result{Scenario: sc, Target: t.Name, Elapsed: time.Since(start), Errors: map[string]int{}}
	var created []string
	for _, w := range workers {
		res.OK += w.ok
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		res.Latencies = append(res.Latencies, w.lat...)
		created = append(created, w.created...)
	}
	slices.Sort(res.Latencies)
	if len(created) > 0 {
		t.mu.Lock()
		t.created = append(t.created, created...)
		t.mu.Unlock()
	}
	return res, ctx.Err()
}

// statusClass classifies a request outcome against the expected status.
func statusClass(code int, err error, want int) string {
	switch {
	case err != nil:
		return "transport"
	case code != want:
		return strconv.Itoa(code)
	default:
		return ""
	}
}

func (t *Target) op(sc Scenario) (opFunc, error) {
	t.mu.Lock()
	seeded := t.seeded
	ids := t.created
	if len(ids) == 0 {
		ids = seeded
	}
	t.mu.Unlock()
	switch sc {
	case Create:
		return func(ctx context.Context, w *worker) string {
			n := t.counter.Add(1)
			body, _ := json.Marshal(newUser(fmt.Sprintf("load-%s-%d@example.com", t.prefix, n), n))
			code, err := t.do(ctx, http.MethodPost, "/scim/v2/Users", body, &w.buf)
			if c := statusClass(code, err, http.StatusCreated); c != "" {
				return c
			}
			id, err := decodeID(w.buf.Bytes())
			if err != nil {
				return "body"
			}
			w.created = append(w.created, id)
			return ""
		}, nil
	case Patch:
		if len(ids) == 0 {
			return nil, fmt.Errorf("loadgen: %s on %s: no users to patch (seed or run create first)", sc, t.Name)
		}
		return func(ctx context.Context, w *worker) string {
			id := ids[w.rng.IntN(len(ids))]
			body := fmt.Appendf(nil, `{"schemas":[%q],"Operations":[{"op":"replace","path":"displayName","value":"Patched %d"}]}`,
				schemaPatchOp, w.rng.Uint32())
			code, err := t.do(ctx, http.MethodPatch, "/scim/v2/Users/"+id, body, &w.buf)
			return statusClass(code, err, http.StatusOK)
		}, nil
	case Lookup:
		if len(seeded) == 0 {
			return nil, fmt.Errorf("loadgen: %s on %s: no seeded users to look up", sc, t.Name)
		}
		return func(ctx context.Context, w *worker) string {
			code, err := t.do(ctx, http.MethodGet, filterPath(SeedUserName(w.rng.IntN(len(seeded)))), nil, &w.buf)
			if c := statusClass(code, err, http.StatusOK); c != "" {
				return c
			}
			if n, ok := totalResults(w.buf.Bytes()); !ok || n != 1 {
				return "body"
			}
			return ""
		}, nil
	case Page:
		return func(ctx context.Context, w *worker) string {
			code, err := t.do(ctx, http.MethodGet, "/scim/v2/Users?startIndex=1&count=100", nil, &w.buf)
			if c := statusClass(code, err, http.StatusOK); c != "" {
				return c
			}
			if _, ok := totalResults(w.buf.Bytes()); !ok {
				return "body"
			}
			return ""
		}, nil
	}
	return nil, fmt.Errorf("loadgen: unknown scenario %q", sc)
}
