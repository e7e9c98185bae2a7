package connectors_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

func TestHTTPError(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		body       string
		class      connectors.Class
		after      time.Duration
	}{
		{429, "7", "", connectors.Retryable, 7 * time.Second},
		{429, now.Add(90 * time.Second).Format(http.TimeFormat), "", connectors.Retryable, 90 * time.Second},
		{429, "", "", connectors.Retryable, 0},
		{500, "", "boom", connectors.Retryable, 0},
		{503, "120", "", connectors.Retryable, 2 * time.Minute},
		{503, "999999", "", connectors.Retryable, time.Hour}, // capped
		{408, "", "", connectors.Retryable, 0},
		{404, "", "", connectors.NotFound, 0},
		{410, "", "", connectors.NotFound, 0},
		{409, "", "", connectors.Conflict, 0},
		{400, "", `{"detail":"bad"}`, connectors.Permanent, 0},
		{401, "", "", connectors.Permanent, 0},
		{403, "", "", connectors.Permanent, 0},
		{422, "", "", connectors.Permanent, 0},
	}
	for _, c := range cases {
		resp := &http.Response{StatusCode: c.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(c.body))}
		if c.retryAfter != "" {
			resp.Header.Set("Retry-After", c.retryAfter)
		}
		err := connectors.HTTPError("PATCH /Users/1", resp, now)
		cl, after := connectors.ClassOf(err)
		if cl != c.class || after != c.after {
			t.Errorf("%d %q: class %v after %v, want %v %v", c.status, c.retryAfter, cl, after, c.class, c.after)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("PATCH /Users/1: HTTP %d", c.status)) || !strings.Contains(err.Error(), c.body) {
			t.Errorf("%d: message %q lacks the request, status or body", c.status, err)
		}
	}
	// Only 512 bytes of a body reach the message.
	resp := &http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 5000)))}
	if msg := connectors.HTTPError("GET /", resp, now).Error(); len(msg) > 600 {
		t.Errorf("message of %d bytes, want the body bounded", len(msg))
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-5": 0, "3": 3 * time.Second, " 3 ": 3 * time.Second, "soon": 0, "1.5": 0,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		now.Add(30 * time.Second).Format(http.TimeFormat): 30 * time.Second,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   time.Hour,
		"86400": time.Hour,
	} {
		if got := connectors.ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestClassOf(t *testing.T) {
	t.Parallel()
	perm := connectors.Errorf(connectors.Permanent, "bad %s", "request")
	cases := []struct {
		err   error
		class connectors.Class
	}{
		{errors.New("unclassified"), connectors.Retryable},
		{perm, connectors.Permanent},
		{fmt.Errorf("grant: %w", perm), connectors.Permanent},
		{connectors.RetryAfter(time.Second, errors.New("slow")), connectors.Retryable},
		{context.Canceled, connectors.Retryable},
		{connectors.Transport("GET /", context.DeadlineExceeded), connectors.Retryable},
		{connectors.Transport("GET /", errors.New("connection refused")), connectors.Retryable},
		{connectors.Transport("GET /", x509.UnknownAuthorityError{}), connectors.Permanent},
	}
	for _, c := range cases {
		if got, _ := connectors.ClassOf(c.err); got != c.class {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.class)
		}
	}
	if err := connectors.Transport("GET /", context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Transport lost context.Canceled: %v", err)
	}
	if !connectors.IsNotFound(connectors.Errorf(connectors.NotFound, "gone")) || connectors.IsNotFound(nil) || connectors.IsNotFound(perm) {
		t.Error("IsNotFound")
	}
}

func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	s := connectors.Secret("hunter2")
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %q %s %x", s, s, s, s, s, s),
		fmt.Sprintf("%+v", struct{ Token connectors.Secret }{s}),
	} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret shown: %s", out)
		}
	}
	if b, _ := s.MarshalJSON(); string(b) != `"[redacted]"` {
		t.Errorf("json %s", b)
	}
	if string(s) != "hunter2" {
		t.Error("the value itself is lost")
	}
}
