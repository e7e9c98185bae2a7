package apijson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmlgate/jmlgate/internal/reqctx"
)

// logBuffer is a slog destination safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serve starts a real HTTP server for h; a middleware sets the request id
// the way internal/httpapi does.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(reqctx.WithRequestID(r.Context(), "req-42")))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type response struct {
	status                int
	contentType, cacheCtl string
	allow, body           string
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A transport of its own: httptest.Server.Close closes the idle
	// connections of http.DefaultTransport, which would break the
	// requests of parallel subtests sharing it.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		cacheCtl: resp.Header.Get("Cache-Control"), allow: resp.Header.Get("Allow"), body: string(b)}
}

func TestServe(t *testing.T) {
	t.Parallel()
	errDB := errors.New("db at 10.0.0.7 refused password hunter2")
	tests := []struct {
		name      string
		server    Server
		method    string // the method served
		okStatus  int
		fn        Func
		reqMethod string
		status    int
		allow     string
		body      string // without the trailing newline; "" for HEAD
		called    bool
		logs      []string // substrings of the log; nil: nothing logged
	}{
		{name: "GET ok", method: "GET", okStatus: 200, reqMethod: "GET", called: true,
			fn:     func(*http.Request) (any, error) { return map[string]any{"b": 2, "a": []string{}}, nil },
			status: 200, body: `{"a":[],"b":2}`},
		{name: "HEAD served as GET", method: "GET", okStatus: 200, reqMethod: "HEAD", called: true,
			fn:     func(*http.Request) (any, error) { return map[string]int{"a": 1}, nil },
			status: 200, body: ""},
		{name: "POST 201", method: "POST", okStatus: 201, reqMethod: "POST", called: true,
			fn:     func(*http.Request) (any, error) { return struct{ ID string }{"x"}, nil },
			status: 201, body: `{"ID":"x"}`},
		{name: "nil body", method: "DELETE", okStatus: 200, reqMethod: "DELETE", called: true,
			fn:     func(*http.Request) (any, error) { return nil, nil },
			status: 200, body: `null`},
		{name: "POST to a GET route", method: "GET", okStatus: 200, reqMethod: "POST",
			status: 405, allow: "GET, HEAD", body: `{"error":"method_not_allowed","message":"method POST is not allowed; use GET"}`},
		{name: "HEAD to a POST route", method: "POST", okStatus: 201, reqMethod: "HEAD",
			status: 405, allow: "POST", body: ""},
		{name: "GET to a DELETE route", method: "DELETE", okStatus: 200, reqMethod: "GET",
			status: 405, allow: "DELETE", body: `{"error":"method_not_allowed","message":"method GET is not allowed; use DELETE"}`},
		{name: "own 405 message", server: Server{MethodMessage: "method %s is not allowed here; use %s"},
			method: "POST", okStatus: 200, reqMethod: "PUT",
			status: 405, allow: "POST", body: `{"error":"method_not_allowed","message":"method PUT is not allowed here; use POST"}`},
		{name: "client error", method: "GET", okStatus: 200, reqMethod: "GET", called: true,
			fn: func(*http.Request) (any, error) {
				return map[string]int{"ignored": 1}, Errorf(409, CodeConflict, "approval %q is <closed> & done", "a1")
			},
			status: 409, body: `{"error":"conflict","message":"approval \"a1\" is \u003cclosed\u003e \u0026 done"}`},
		{name: "wrapped client error", method: "POST", okStatus: 201, reqMethod: "POST", called: true,
			fn: func(*http.Request) (any, error) {
				return nil, fmt.Errorf("in tx: %w", Errorf(404, CodeNotFound, "no identity %q", "u1"))
			},
			status: 404, body: `{"error":"not_found","message":"no identity \"u1\""}`},
		{name: "own code", method: "GET", okStatus: 200, reqMethod: "GET", called: true,
			fn:     func(*http.Request) (any, error) { return nil, Errorf(502, "connector_failed", "x") },
			status: 502, body: `{"error":"connector_failed","message":"x"}`},
		{name: "internal error is logged, not shown", server: Server{Name: "testapi"},
			method: "GET", okStatus: 200, reqMethod: "GET", called: true,
			fn:     func(*http.Request) (any, error) { return nil, fmt.Errorf("list: %w", errDB) },
			status: 500, body: `{"error":"internal","message":"internal error"}`,
			logs: []string{"level=ERROR", `msg="testapi: request failed"`, "method=GET", "path=/p", "request_id=req-42", "hunter2"}},
		{name: "unencodable body", server: Server{Name: "testapi"},
			method: "GET", okStatus: 201, reqMethod: "GET", called: true,
			fn:     func(*http.Request) (any, error) { return map[string]any{"c": make(chan int)}, nil },
			status: 500, body: `{"error":"internal","message":"internal error"}`,
			logs: []string{`msg="testapi: encoding the response failed"`, "path=/p", "request_id=req-42", "chan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			s := tt.server
			s.Log = slog.New(slog.NewTextHandler(&logs, nil))
			var called atomic.Bool
			fn := func(r *http.Request) (any, error) {
				called.Store(true)
				return tt.fn(r)
			}
			var h http.HandlerFunc
			if tt.okStatus == http.StatusOK {
				h = s.Serve(tt.method, fn)
			} else {
				h = s.ServeStatus(tt.method, tt.okStatus, fn)
			}
			got := do(t, tt.reqMethod, serve(t, h)+"/p")
			want := tt.body + "\n"
			if tt.reqMethod == http.MethodHead {
				want = ""
			}
			if got.status != tt.status || got.body != want || got.allow != tt.allow {
				t.Errorf("got %d Allow %q %q; want %d Allow %q %q", got.status, got.allow, got.body, tt.status, tt.allow, want)
			}
			if got.contentType != "application/json" || got.cacheCtl != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q; want application/json, no-store", got.contentType, got.cacheCtl)
			}
			if called.Load() != tt.called {
				t.Errorf("fn called: %v, want %v", called.Load(), tt.called)
			}
			if strings.Contains(got.body, "hunter2") {
				t.Errorf("response leaks the internal error: %q", got.body)
			}
			logged := logs.String()
			if tt.logs == nil && logged != "" {
				t.Errorf("logged %q, want nothing", logged)
			}
			for _, want := range tt.logs {
				if !strings.Contains(logged, want) {
					t.Errorf("log %q does not contain %q", logged, want)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	tests := []struct{ method, path, message string }{
		{"GET", "/nope", `no such path \"/nope\"`},
		{"POST", "/api/v1/x", `no such path \"/api/v1/x\"`},
		{"DELETE", "/a%22b", `no such path \"/a\\\"b\"`},
		{"GET", "/%3Cscript%3E", `no such path \"/\u003cscript\u003e\"`},
	}
	var s Server // the zero value serves
	url := serve(t, http.HandlerFunc(s.NotFound))
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			got := do(t, tt.method, url+tt.path)
			want := `{"error":"not_found","message":"` + tt.message + `"}` + "\n"
			if got.status != 404 || got.body != want || got.allow != "" {
				t.Errorf("got %d Allow %q %q; want 404 %q", got.status, got.allow, got.body, want)
			}
		})
	}
}

func TestErrorf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{Errorf(400, CodeInvalidRequest, "limit must be positive, got %q", "-1"), 400, "invalid_request", `limit must be positive, got "-1"`},
		{NoSuchPath(httptest.NewRequest("GET", "/x/y", nil)), 404, "not_found", `no such path "/x/y"`},
		{fmt.Errorf("ctx: %w", Errorf(403, CodeForbidden, "no")), 403, "forbidden", "no"},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			t.Parallel()
			e, ok := errors.AsType[*Error](tt.err)
			if !ok {
				t.Fatalf("%v is not an *Error", tt.err)
			}
			if e.Status != tt.status || e.Code != tt.code || e.Message != tt.msg || e.Error() != tt.msg {
				t.Errorf("got %+v (%q), want %d %s %q", e, e.Error(), tt.status, tt.code, tt.msg)
			}
		})
	}
}
