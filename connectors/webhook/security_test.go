package webhook

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// A receiver that quotes the request (headers, URL) in its error page must
// not put the API key or the URL's token into the error, whatever the
// status and however the key is sent.
func TestErrorsNeverQuoteCredentials(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	const bearer = "b-4c2e9d0f-bearer-never-logged"
	grant := func(c *Conn) error { return c.Grant(context.Background(), "ref-1", "role:viewer") }
	revoke := func(c *Conn) error { return c.Revoke(context.Background(), "ref-1", "role:viewer") }
	disable := func(c *Conn) error { return c.DisableAccount(context.Background(), "ref-1") }
	ensure := func(c *Conn) error { _, err := c.EnsureAccount(context.Background(), testAccount(0)); return err }
	tests := []struct {
		name    string
		headers map[string]Secret
		status  int
		call    func(c *Conn) error
		class   connectors.Class
	}{
		{"api key 401", map[string]Secret{"X-Api-Key": testAPIKey}, 401, grant, connectors.Permanent},
		{"api key 403 on revoke", map[string]Secret{"X-Api-Key": testAPIKey}, 403, revoke, connectors.Permanent},
		{"api key 404 on disable", map[string]Secret{"X-Api-Key": testAPIKey}, 404, disable, connectors.Permanent},
		{"api key 500", map[string]Secret{"X-Api-Key": testAPIKey}, 500, ensure, connectors.Retryable},
		{"bearer 401", map[string]Secret{"Authorization": "Bearer " + bearer}, 401, grant, connectors.Permanent},
		{"bearer 429", map[string]Secret{"Authorization": "Bearer " + bearer}, 429, revoke, connectors.Retryable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, jwks.URL, "app", "", false)
			cfg := Factory(ks)().(*Config)
			cfg.URL = rc.srv.URL + "/jmlgate/events?token=q-secret-in-query"
			cfg.Headers = tc.headers
			c, err := cfg.Open("app", nil)
			if err != nil {
				t.Fatal(err)
			}
			rc.FailEcho(tc.status)
			err = tc.call(c.(*Conn))
			if cl, _ := connectors.ClassOf(err); err == nil || cl != tc.class {
				t.Fatalf("err %v (class %v), want %v", err, cl, tc.class)
			}
			if !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("error %q has no [redacted] marker: did the receiver echo anything?", err)
			}
			for _, shown := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				for _, secret := range []string{testAPIKey, bearer, "q-secret-in-query"} {
					if strings.Contains(shown, secret) {
						t.Errorf("error shows %q: %s", secret, shown)
					}
				}
			}
		})
	}
}

// Redaction keeps the class and the Retry-After the receiver asked for.
func TestRedactedErrorKeepsRetryAfter(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	rc := newReceiver(t, jwks.URL, "app", testAPIKey, false)
	conn := openConn(t, ks, rc, "app", nil)
	rc.mu.Lock()
	rc.fail = append(rc.fail, failure{status: 503, header: http.Header{"Retry-After": {"12"}}, echo: true})
	rc.mu.Unlock()
	err := conn.Grant(context.Background(), "ref-1", "role:viewer")
	cl, after := connectors.ClassOf(err)
	if cl != connectors.Retryable || after != 12*time.Second {
		t.Fatalf("class %v after %v, want retryable 12s (err %v)", cl, after, err)
	}
	if strings.Contains(err.Error(), testAPIKey) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("error not redacted: %v", err)
	}
}

// Printing the connector, any way, shows neither a header value nor the
// URL's query.
func TestConnNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	rc := newReceiver(t, jwks.URL, "app", testAPIKey, false)
	conn := openConn(t, ks, rc, "app", nil)
	var js, txt bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("conn", "conn", conn)
	slog.New(slog.NewTextHandler(&txt, nil)).Info("conn", "conn", conn, "creds", conn.creds)
	shown := map[string]string{
		"%v":          fmt.Sprintf("%v", conn),
		"%+v":         fmt.Sprintf("%+v", conn),
		"%#v":         fmt.Sprintf("%#v", conn),
		"%s":          fmt.Sprint(conn),
		"value %+v":   fmt.Sprintf("%+v", *conn),
		"value %#v":   fmt.Sprintf("%#v", *conn),
		"in a struct": fmt.Sprintf("%+v", struct{ C *Conn }{conn}),
		"in a slice":  fmt.Sprintf("%#v", []*Conn{conn}),
		"creds %+v":   fmt.Sprintf("%+v", conn.creds),
		"creds %#v":   fmt.Sprintf("%#v", conn.creds),
		"slog json":   js.String(),
		"slog text":   txt.String(),
	}
	for how, out := range shown {
		for _, secret := range []string{testAPIKey, "q-secret-in-query"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q: %s", how, secret, out)
			}
		}
	}
	if want := "webhook app " + rc.srv.URL + "/jmlgate/events"; shown["%+v"] != want {
		t.Errorf("%%+v = %q, want %q", shown["%+v"], want)
	}
	if !strings.Contains(js.String(), `"url":"`+rc.srv.URL+`/jmlgate/events"`) {
		t.Errorf("slog does not name the url: %s", js.String())
	}
}
