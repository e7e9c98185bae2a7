package scim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// Faults the conformance suite does not inject: broken connections,
// truncated and oversized answers, a target slower than the configured
// timeout, Retry-After as an HTTP date, redirects.
func TestTransportFaults(t *testing.T) {
	t.Parallel()
	truncated := func(w http.ResponseWriter, _ *http.Request) bool {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: 4096\r\n\r\n{\"Resources\":[")
		buf.Flush()
		conn.Close()
		return true
	}
	huge := func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", mediaType)
		io.WriteString(w, `{"totalResults":1,"Resources":[{"id":"x","userName":"`)
		io.WriteString(w, strings.Repeat("a", maxResponse))
		io.WriteString(w, `"}]}`)
		return true
	}
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("redirect followed to %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(elsewhere.Close)

	cases := []struct {
		name string
		// call is the connector call under test, after the account was
		// ensured and granted group:Engineering once (so the group id is
		// cached and Grant is a single PATCH).
		call   func(ctx context.Context, c *Conn, ref string) error
		faults []fault
		class  connectors.Class
		// text must appear in the error.
		text string
	}{
		{
			name:   "PATCHConnectionDropped",
			call:   grantEng,
			faults: []fault{{answer: drop}},
			class:  connectors.Retryable, text: "PATCH /Groups/",
		},
		{
			// Go's transport retries an idempotent GET once on a fresh
			// connection; every attempt is dropped.
			name:   "GETConnectionDropped",
			call:   ensureAgain,
			faults: []fault{{answer: drop}, {answer: drop}, {answer: drop}},
			class:  connectors.Retryable, text: "GET /Users",
		},
		{
			name:   "TruncatedBody",
			call:   ensureAgain,
			faults: []fault{{answer: truncated}},
			class:  connectors.Retryable, text: "reading response",
		},
		{
			name:   "OversizedBody",
			call:   ensureAgain,
			faults: []fault{{answer: huge}},
			class:  connectors.Permanent, text: "larger than",
		},
		{
			name:   "NotJSON",
			call:   ensureAgain,
			faults: []fault{{answer: respond(200, nil, "<html>maintenance</html>")}},
			class:  connectors.Permanent, text: "not SCIM JSON",
		},
		{
			name:   "Redirect",
			call:   grantEng,
			faults: []fault{{answer: respond(http.StatusTemporaryRedirect, http.Header{"Location": {elsewhere.URL + "/Groups/x"}}, "")}},
			class:  connectors.Permanent, text: "HTTP 307",
		},
		{
			name:   "DisableServerError",
			call:   func(ctx context.Context, c *Conn, ref string) error { return c.DisableAccount(ctx, ref) },
			faults: []fault{{answer: respond(502, nil, "bad gateway")}},
			class:  connectors.Retryable, text: "HTTP 502",
		},
		{
			name:   "RevokeForbidden",
			call:   func(ctx context.Context, c *Conn, ref string) error { return c.Revoke(ctx, ref, "group:Engineering") },
			faults: []fault{{answer: respond(403, nil, `{"detail":"read-only token"}`)}},
			class:  connectors.Permanent, text: "read-only token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			s.createGroup("Engineering")
			conn := open(t, s.config())
			ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			if err := grantEng(testCtx(t), conn, ref); err != nil {
				t.Fatal(err)
			}
			s.inject(tc.faults...)
			err = tc.call(testCtx(t), conn, ref)
			wantClass(t, err, tc.class, 0)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err %v is a context error; the target failed, not the caller", err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("err %q shows the token", err)
			}
			// Nothing was half-applied and the target serves again.
			s.clearFaults()
			if err := tc.call(testCtx(t), conn, ref); err != nil {
				t.Errorf("same call after the fault: %v", err)
			}
		})
	}
}

func grantEng(ctx context.Context, c *Conn, ref string) error {
	return c.Grant(ctx, ref, "group:Engineering")
}

func ensureAgain(ctx context.Context, c *Conn, _ string) error {
	_, err := c.EnsureAccount(ctx, testAccount(1, "a@example.com"))
	return err
}

// The configured per-request timeout ends a request to a target that does
// not answer, even when the caller's context has no deadline.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	cfg := s.config()
	cfg.Timeout = Duration(150 * time.Millisecond)
	conn := open(t, cfg)
	release := s.hold()
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := conn.EnsureAccount(context.Background(), testAccount(1, "a@example.com"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("EnsureAccount against a hanging target = %v, want an error wrapping context.DeadlineExceeded", err)
		}
		wantClass(t, err, connectors.Retryable, 0)
	case <-time.After(15 * time.Second):
		t.Fatal("EnsureAccount ignored the configured timeout")
	}
}

// Retry-After is honoured in both RFC 9110 forms, on 429 and 503.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cases := []struct {
		name   string
		status int
		value  string
		want   time.Duration
	}{
		{"429Seconds", 429, "120", 2 * time.Minute},
		{"429HTTPDate", 429, clk.Now().Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"503HTTPDate", 503, clk.Now().Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{"429DateInPast", 429, clk.Now().Add(-time.Minute).Format(http.TimeFormat), 0},
		{"429Garbage", 429, "soon", 0},
		{"429CappedAtHour", 429, "86400", time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			s.createGroup("Engineering")
			conn := open(t, s.config())
			conn.now = clk.Now
			ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			s.fail(tc.status, http.Header{"Retry-After": {tc.value}})
			wantClass(t, conn.Grant(testCtx(t), ref, "group:Engineering"), connectors.Retryable, tc.want)
		})
	}
}
