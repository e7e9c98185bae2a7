package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// TestStatusHandling covers what the conformance suite does not: how each
// method reads the statuses that mean "not there" or "not here".
func TestStatusHandling(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	var redirected atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
	}))
	t.Cleanup(elsewhere.Close)

	type call func(c *Conn, ref string) error
	grant := func(c *Conn, ref string) error { return c.Grant(context.Background(), ref, "role:viewer") }
	revoke := func(c *Conn, ref string) error { return c.Revoke(context.Background(), ref, "role:viewer") }
	disable := func(c *Conn, ref string) error { return c.DisableAccount(context.Background(), ref) }
	ensure := func(c *Conn, _ string) error {
		_, err := c.EnsureAccount(context.Background(), testAccount(1))
		return err
	}
	tests := []struct {
		name   string
		status int
		header http.Header
		call   call
		ok     bool
		class  connectors.Class
	}{
		// A receiver acknowledges "already gone" with 2xx; a bare 404 or
		// 410 says the URL is wrong, and must not count a revocation as
		// done.
		{"revoke 404 is a wrong URL", 404, nil, revoke, false, connectors.Permanent},
		{"revoke 410 is a wrong URL", 410, nil, revoke, false, connectors.Permanent},
		{"disable 404 is a wrong URL", 404, nil, disable, false, connectors.Permanent},
		{"disable 410 is a wrong URL", 410, nil, disable, false, connectors.Permanent},
		{"grant 404 is a stale ref", 404, nil, grant, false, connectors.NotFound},
		{"ensure 404 is a wrong URL", 404, nil, ensure, false, connectors.Permanent},
		{"ensure 410 is a wrong URL", 410, nil, ensure, false, connectors.Permanent},
		{"grant 409", 409, nil, grant, false, connectors.Conflict},
		{"revoke 500 retried", 500, nil, revoke, false, connectors.Retryable},
		{"disable 403 permanent", 403, nil, disable, false, connectors.Permanent},
		{"redirect not followed", 307, http.Header{"Location": {elsewhere.URL}}, grant, false, connectors.Permanent},
		{"202 acknowledges", 202, nil, grant, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, jwks.URL, "app", "", false)
			conn := openConn(t, ks, rc, "app", nil)
			ref, err := conn.EnsureAccount(context.Background(), testAccount(0))
			if err != nil {
				t.Fatal(err)
			}
			if tc.status >= 300 {
				rc.Fail(tc.status, tc.header)
			} else {
				rc.LoseAck(tc.status)
			}
			err = tc.call(conn, ref)
			if tc.ok {
				if err != nil {
					t.Fatalf("err %v, want nil", err)
				}
				return
			}
			if cl, _ := connectors.ClassOf(err); err == nil || cl != tc.class {
				t.Fatalf("err %v (class %v), want class %v", err, cl, tc.class)
			}
			if strings.Contains(err.Error(), "q-secret-in-query") {
				t.Errorf("error quotes the URL query: %v", err)
			}
			if tc.class == connectors.Permanent && (tc.status == 404 || tc.status == 410) && !strings.Contains(err.Error(), "url looks wrong") {
				t.Errorf("error %q does not say the url looks wrong", err)
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	ks, _ := newTestKeySet(t)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String() + "/events?token=q-secret-in-query"
	l.Close()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(untrusted.Close)

	tests := []struct {
		name  string
		url   string
		class connectors.Class
	}{
		{"connection refused", closedURL, connectors.Retryable},
		{"certificate not trusted", untrusted.URL + "/events?token=q-secret-in-query", connectors.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Factory(ks)().(*Config)
			cfg.URL = tc.url
			cfg.Headers = map[string]Secret{"Authorization": "Bearer h-secret-header"}
			c, err := cfg.Open("app", nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Grant(context.Background(), "ref", "role:viewer")
			if cl, _ := connectors.ClassOf(err); err == nil || cl != tc.class {
				t.Fatalf("err %v (class %v), want %v", err, cl, tc.class)
			}
			for _, secret := range []string{"q-secret-in-query", "h-secret-header"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

// TestTimeoutPerAttempt: the configured timeout bounds an attempt even when
// the caller's ctx has no deadline, and it reads as a deadline.
func TestTimeoutPerAttempt(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	rc := newReceiver(t, jwks.URL, "app", "", false)
	cfg := Factory(ks)().(*Config)
	cfg.URL = rc.srv.URL
	cfg.Timeout = 100 * time.Millisecond
	c, err := cfg.Open("app", nil)
	if err != nil {
		t.Fatal(err)
	}
	release := rc.Hang()
	defer release()
	err = c.DisableAccount(context.Background(), "ref")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want one wrapping context.DeadlineExceeded", err)
	}
	if cl, _ := connectors.ClassOf(err); cl != connectors.Retryable {
		t.Errorf("timeout classed %v, want retryable", cl)
	}
}

// TestLogsHoldNoSecrets runs deliveries and a TLS warning at debug level
// and looks for the API key and the URL's query in the output.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := newReceiver(t, jwks.URL, "app", testAPIKey, true)
	cfg := Factory(ks)().(*Config)
	cfg.URL = rc.srv.URL + "/events?token=q-secret-in-query"
	cfg.Headers = map[string]Secret{"X-Api-Key": testAPIKey}
	cfg.TLS.InsecureSkipVerify = true
	c, err := cfg.Open("app", log)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.EnsureAccount(context.Background(), testAccount(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Grant(context.Background(), ref, "role:viewer"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "does not verify") || !strings.Contains(out, TypeGrant) {
		t.Fatalf("expected the TLS warning and delivery records, got %s", out)
	}
	for _, secret := range []string{testAPIKey, "q-secret-in-query"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q: %s", secret, out)
		}
	}
}

// TestEventsExpire: an event signed long ago (a captured one replayed, here
// a connector with a stale clock) is refused by a receiver that checks exp.
func TestEventsExpire(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	rc := newReceiver(t, jwks.URL, "app", "", false)
	conn := openConn(t, ks, rc, "app", nil)
	conn.now = func() time.Time { return time.Now().Add(-Lifetime - 2*time.Minute) }
	_, err := conn.EnsureAccount(context.Background(), testAccount(0))
	if cl, _ := connectors.ClassOf(err); err == nil || cl != connectors.Permanent {
		t.Fatalf("stale event: err %v (class %v), want a permanent refusal", err, cl)
	}
	if rej := rc.Rejected(); len(rej) != 1 || !errors.Is(rej[0], errExpired) {
		t.Fatalf("receiver rejections %v, want one for expiry", rej)
	}
}
