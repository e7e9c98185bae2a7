package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/scim"
)

// The fixture format is documented in testdata/README.md.

// idpFixtureDirs are the identity providers whose golden scenarios
// TestIdPFixtures replays.
var idpFixtureDirs = []string{"entra", "okta"}

type fixture struct {
	Description string        `json:"description"`
	Sources     []string      `json:"sources"`
	KnownBug    string        `json:"knownBug,omitempty"`
	Steps       []fixtureStep `json:"steps"`
}

type fixtureStep struct {
	Name     string            `json:"name"`
	Request  fixtureRequest    `json:"request"`
	Response fixtureResponse   `json:"response"`
	Capture  map[string]string `json:"capture,omitempty"`
}

type fixtureRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type fixtureResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// Matchers usable in expected header values and bodies.
const (
	matchAny       = "<any>"
	matchAbsent    = "<absent>"
	matchDateTime  = "<datetime>"
	matchEmpty     = "<empty>"     // the whole body: no body at all
	matchUnordered = "<unordered>" // first element of an expected array
)

// TestIdPFixtures replays every scenario under testdata/entra and
// testdata/okta against a real Server on a fresh SQLite database. A
// scenario stops at its first failing step, because later steps depend on
// the state and the values it captures.
func TestIdPFixtures(t *testing.T) {
	t.Parallel()
	var files []string
	for _, dir := range idpFixtureDirs {
		m, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Fatalf("no fixtures in testdata/%s", dir)
		}
		files = append(files, m...)
	}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file)) + "/" + strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := loadFixture(t, file)
			base := newFixtureServer(t)
			failure := runFixture(t, base, fx)
			switch {
			case failure != "" && fx.KnownBug != "":
				t.Skipf("known bug: %s\nfirst failure:\n%s", fx.KnownBug, failure)
			case failure != "":
				t.Fatal(failure)
			case fx.KnownBug != "":
				t.Fatalf("fixture is marked knownBug (%q) but passes: remove the knownBug field", fx.KnownBug)
			}
		})
	}
}

// loadFixture decodes and sanity-checks one fixture file. Unknown fields
// are errors so that a misspelt key cannot switch an assertion off.
func loadFixture(t *testing.T, file string) *fixture {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fx); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if fx.Description == "" || len(fx.Sources) == 0 || len(fx.Steps) == 0 {
		t.Fatalf("%s: description, sources and steps are required", file)
	}
	for i, s := range fx.Steps {
		switch {
		case s.Name == "":
			t.Fatalf("%s: step %d has no name", file, i+1)
		case !strings.HasPrefix(s.Request.Path, scim.Prefix+"/"):
			t.Fatalf("%s: step %d (%s): path %q does not start with %s/", file, i+1, s.Name, s.Request.Path, scim.Prefix)
		case s.Response.Status < 100 || s.Response.Status > 599:
			t.Fatalf("%s: step %d (%s): response.status %d is not an HTTP status", file, i+1, s.Name, s.Response.Status)
		}
		switch s.Request.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			t.Fatalf("%s: step %d (%s): unsupported method %q", file, i+1, s.Name, s.Request.Method)
		}
	}
	return &fx
}

// newFixtureServer starts a Server on a new SQLite file and returns its
// origin. Server errors are logged to the test log.
func newFixtureServer(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jmlgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := httptest.NewServer(scim.NewServer(scim.Config{Store: st, Logger: logger}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runFixture runs the steps in order and returns a description of the first
// failing step, or "" when every step passed. Fixture mistakes (unknown
// variables, malformed expectations) are fatal.
func runFixture(t *testing.T, base string, fx *fixture) string {
	t.Helper()
	vars := map[string]string{"baseURL": base}
	trace := os.Getenv("JMLGATE_FIXTURE_TRACE") != ""
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i, s := range fx.Steps {
		where := fmt.Sprintf("step %d %q: %s %s", i+1, s.Name, s.Request.Method, s.Request.Path)
		status, header, body, err := doStep(client, base, s.Request, vars)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if p, err := substitute(s.Request.Path, vars); err == nil {
			where = fmt.Sprintf("step %d %q: %s %s", i+1, s.Name, s.Request.Method, p)
		}
		if trace {
			t.Logf("%s\n  -> %d %s", where, status, truncate(body, 2000))
		}
		var problems []string
		actual, jsonErr := decodeJSON(body)
		for name, from := range s.Capture {
			v, err := capture(from, header, actual, jsonErr)
			if err != nil {
				problems = append(problems, fmt.Sprintf("capture %s from %q: %v", name, from, err))
				continue
			}
			vars[name] = v
		}
		if status != s.Response.Status {
			problems = append(problems, fmt.Sprintf("status: want %d, got %d", s.Response.Status, status))
		}
		names := make([]string, 0, len(s.Response.Headers))
		for k := range s.Response.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if p := matchHeader(k, s.Response.Headers[k], header, vars); p != "" {
				problems = append(problems, p)
			}
		}
		if len(s.Response.Body) > 0 {
			want, err := decodeJSON(s.Response.Body)
			if err != nil {
				t.Fatalf("%s: response.body: %v", where, err)
			}
			switch {
			case want == matchEmpty:
				if len(body) != 0 {
					problems = append(problems, "body: want no body, got one")
				}
			case jsonErr != nil:
				problems = append(problems, fmt.Sprintf("body: not JSON: %v", jsonErr))
			default:
				problems = append(problems, matchJSON(want, actual, "body", vars)...)
			}
		}
		if len(problems) > 0 {
			return fmt.Sprintf("%s\n  %s\n  response %d %s\n  %s", where, strings.Join(problems, "\n  "),
				status, header.Get("Content-Type"), truncate(body, 4000))
		}
	}
	return ""
}

// doStep sends one request with variables substituted.
func doStep(client *http.Client, base string, r fixtureRequest, vars map[string]string) (int, http.Header, []byte, error) {
	path, err := substitute(r.Path, vars)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("request.path: %w", err)
	}
	var body io.Reader
	if len(r.Body) > 0 {
		v, err := decodeJSON(r.Body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("request.body: %w", err)
		}
		if v, err = substituteJSON(v, vars); err != nil {
			return 0, nil, nil, fmt.Errorf("request.body: %w", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return 0, nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(r.Method, base+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range r.Headers {
		if v, err = substitute(v, vars); err != nil {
			return 0, nil, nil, fmt.Errorf("request.headers[%s]: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func decodeJSON(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("empty")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// substitute replaces ${name} references; an unknown name is an error.
func substitute(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("variable %s used before it was captured", strings.Join(missing, ", "))
	}
	return out, nil
}

func substituteJSON(v any, vars map[string]string) (any, error) {
	switch v := v.(type) {
	case string:
		return substitute(v, vars)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := substituteJSON(e, vars)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := substituteJSON(e, vars)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	return v, nil
}

// capture reads "header:Name" or a dotted JSON path ("Resources.0.id").
func capture(from string, header http.Header, body any, bodyErr error) (string, error) {
	if name, ok := strings.CutPrefix(from, "header:"); ok {
		v := header.Get(name)
		if v == "" {
			return "", fmt.Errorf("header %s not sent", name)
		}
		return v, nil
	}
	if bodyErr != nil {
		return "", fmt.Errorf("body is not JSON: %v", bodyErr)
	}
	cur := body
	for _, seg := range strings.Split(from, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return "", fmt.Errorf("no key %q", seg)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return "", fmt.Errorf("no element %q in an array of %d", seg, len(c))
			}
			cur = c[i]
		default:
			return "", fmt.Errorf("cannot descend into %s at %q", jsonKind(cur), seg)
		}
	}
	switch c := cur.(type) {
	case string:
		return c, nil
	case json.Number:
		return c.String(), nil
	case bool:
		return strconv.FormatBool(c), nil
	}
	return "", fmt.Errorf("value is %s, not a string, number or boolean", jsonKind(cur))
}

func matchHeader(name, want string, got http.Header, vars map[string]string) string {
	values := got.Values(name)
	switch want {
	case matchAbsent:
		if len(values) > 0 {
			return fmt.Sprintf("header %s: want none, got %q", name, values)
		}
		return ""
	case matchAny:
		if len(values) == 0 || values[0] == "" {
			return fmt.Sprintf("header %s: want one, got none", name)
		}
		return ""
	}
	w, err := substitute(want, vars)
	if err != nil {
		return fmt.Sprintf("header %s: %v", name, err)
	}
	if len(values) != 1 || values[0] != w {
		return fmt.Sprintf("header %s: want %q, got %q", name, w, values)
	}
	return ""
}

// matchJSON compares an expected JSON value (with matchers and variables)
// against an actual one and lists every difference by its path.
func matchJSON(want, got any, path string, vars map[string]string) []string {
	if s, ok := want.(string); ok {
		switch s {
		case matchAny:
			if got == nil {
				return []string{path + ": want a value, got none"}
			}
			return nil
		case matchAbsent:
			if got != nil {
				return []string{fmt.Sprintf("%s: want no value, got %s", path, brief(got))}
			}
			return nil
		case matchDateTime:
			g, ok := got.(string)
			if !ok {
				return []string{fmt.Sprintf("%s: want an RFC 3339 date-time, got %s", path, brief(got))}
			}
			if _, err := time.Parse(time.RFC3339Nano, g); err != nil {
				return []string{fmt.Sprintf("%s: want an RFC 3339 date-time, got %q", path, g)}
			}
			return nil
		}
		w, err := substitute(s, vars)
		if err != nil {
			return []string{path + ": " + err.Error()}
		}
		if g, ok := got.(string); !ok || g != w {
			return []string{fmt.Sprintf("%s: want %q, got %s", path, w, brief(got))}
		}
		return nil
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return []string{fmt.Sprintf("%s: want null, got %s", path, brief(got))}
		}
	case bool:
		if g, ok := got.(bool); !ok || g != w {
			return []string{fmt.Sprintf("%s: want %t, got %s", path, w, brief(got))}
		}
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return []string{fmt.Sprintf("%s: want number %s, got %s", path, w, brief(got))}
		}
		wr, ok1 := new(big.Rat).SetString(w.String())
		gr, ok2 := new(big.Rat).SetString(g.String())
		if !ok1 || !ok2 || wr.Cmp(gr) != 0 {
			return []string{fmt.Sprintf("%s: want %s, got %s", path, w, g)}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, brief(got))}
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			gv, present := g[k]
			if !present && w[k] != matchAbsent {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, matchJSON(w[k], gv, path+"."+k, vars)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %s", path, brief(got))}
		}
		if len(w) > 0 && w[0] == matchUnordered {
			return matchUnorderedArray(w[1:], g, path, vars)
		}
		if len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %d: %s", path, len(w), len(g), brief(got))}
		}
		var out []string
		for i := range w {
			out = append(out, matchJSON(w[i], g[i], fmt.Sprintf("%s[%d]", path, i), vars)...)
		}
		return out
	default:
		return []string{fmt.Sprintf("%s: unsupported expectation %T", path, want)}
	}
	return nil
}

// matchUnorderedArray pairs expected with actual elements one-to-one in any
// order, backtracking so that a loose pattern cannot steal the element a
// stricter one needs.
func matchUnorderedArray(want, got []any, path string, vars map[string]string) []string {
	if len(got) != len(want) {
		return []string{fmt.Sprintf("%s: want %d elements in any order, got %d: %s", path, len(want), len(got), brief(got))}
	}
	used := make([]bool, len(got))
	var assign func(i int) bool
	assign = func(i int) bool {
		if i == len(want) {
			return true
		}
		for j := range got {
			if used[j] || len(matchJSON(want[i], got[j], path, vars)) > 0 {
				continue
			}
			used[j] = true
			if assign(i + 1) {
				return true
			}
			used[j] = false
		}
		return false
	}
	if !assign(0) {
		return []string{fmt.Sprintf("%s: elements do not match %s in any order: %s", path, brief(want), brief(got))}
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func brief(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return truncate(b, 300)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// TestFixtureMatcher pins the matcher semantics TestIdPFixtures relies on:
// each case must report a difference, or must not, exactly as stated, so a
// regression in the matcher cannot make the golden fixtures vacuous.
func TestFixtureMatcher(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"id": "u1", "baseURL": "http://h"}
	tests := []struct {
		name  string
		want  string
		got   string
		match bool
	}{
		{"subset object", `{"a": 1}`, `{"a": 1, "b": 2}`, true},
		{"missing key", `{"a": 1, "c": 3}`, `{"a": 1}`, false},
		{"number compared numerically", `{"n": 1}`, `{"n": 1.0}`, true},
		{"number is not a numeric string", `{"n": 3}`, `{"n": "3"}`, false},
		{"different number", `{"n": 1}`, `{"n": 2}`, false},
		{"boolean is not a string boolean", `{"active": false}`, `{"active": "False"}`, false},
		{"null expected", `{"a": null}`, `{"a": 1}`, false},
		{"string equal after substitution", `{"loc": "${baseURL}/Users/${id}"}`, `{"loc": "http://h/Users/u1"}`, true},
		{"string differs", `{"s": "${id}"}`, `{"s": "u2"}`, false},
		{"unknown variable", `{"s": "${nope}"}`, `{"s": ""}`, false},
		{"any present", `{"id": "<any>"}`, `{"id": "x"}`, true},
		{"any missing", `{"id": "<any>"}`, `{}`, false},
		{"any null", `{"id": "<any>"}`, `{"id": null}`, false},
		{"absent missing", `{"password": "<absent>"}`, `{}`, true},
		{"absent null", `{"password": "<absent>"}`, `{"password": null}`, true},
		{"absent present", `{"password": "<absent>"}`, `{"password": "x"}`, false},
		{"datetime ok", `{"t": "<datetime>"}`, `{"t": "2026-01-02T03:04:05.123Z"}`, true},
		{"datetime bad", `{"t": "<datetime>"}`, `{"t": "yesterday"}`, false},
		{"array same order", `[{"v": 1}, {"v": 2}]`, `[{"v": 1, "x": 0}, {"v": 2}]`, true},
		{"array other order", `[{"v": 1}, {"v": 2}]`, `[{"v": 2}, {"v": 1}]`, false},
		{"array extra element", `[{"v": 1}]`, `[{"v": 1}, {"v": 2}]`, false},
		{"empty array", `{"Resources": []}`, `{"Resources": [{}]}`, false},
		{"unordered", `["<unordered>", {"v": 1}, {"v": 2}]`, `[{"v": 2}, {"v": 1}]`, true},
		{"unordered needs backtracking", `["<unordered>", {}, {"v": 1}]`, `[{"v": 1}, {"v": 2}]`, true},
		{"unordered duplicate", `["<unordered>", {"v": 1}, {"v": 1}]`, `[{"v": 1}, {"v": 2}]`, false},
		{"unordered length", `["<unordered>", {"v": 1}]`, `[{"v": 1}, {"v": 2}]`, false},
		{"object is not array", `{"members": []}`, `{"members": {}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, err := decodeJSON([]byte(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeJSON([]byte(tc.got))
			if err != nil {
				t.Fatal(err)
			}
			problems := matchJSON(want, got, "body", vars)
			if tc.match && len(problems) > 0 {
				t.Errorf("want a match, got %q", problems)
			}
			if !tc.match && len(problems) == 0 {
				t.Errorf("want a mismatch, got a match")
			}
		})
	}
}

// TestFixtureCapture pins capture paths and header captures.
func TestFixtureCapture(t *testing.T) {
	t.Parallel()
	body, err := decodeJSON([]byte(`{"id": "u1", "meta": {"version": "W/\"3\""}, "Resources": [{"id": "r1"}], "n": 7, "o": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Etag": {`W/"3"`}}
	tests := []struct {
		from, want string
		ok         bool
	}{
		{"id", "u1", true},
		{"meta.version", `W/"3"`, true},
		{"Resources.0.id", "r1", true},
		{"n", "7", true},
		{"header:ETag", `W/"3"`, true},
		{"Resources.1.id", "", false},
		{"missing", "", false},
		{"o", "", false},
		{"header:Location", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.from, func(t *testing.T) {
			t.Parallel()
			got, err := capture(tc.from, header, body, nil)
			if tc.ok && (err != nil || got != tc.want) {
				t.Errorf("capture(%q) = %q, %v; want %q", tc.from, got, err, tc.want)
			}
			if !tc.ok && err == nil {
				t.Errorf("capture(%q) = %q; want an error", tc.from, got)
			}
		})
	}
}
