package connectors_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		msg     string
		secrets []string
		want    string
	}{
		{"NoSecrets", "GET /Users: HTTP 401", nil, "GET /Users: HTTP 401"},
		{"Once", "HTTP 401: bad token tok-abcd", []string{"tok-abcd"}, "HTTP 401: bad token [redacted]"},
		{"Every", "tok-abcd, tok-abcd!", []string{"tok-abcd"}, "[redacted], [redacted]!"},
		{"Several", "a=sec1 b=tok-abcd", []string{"tok-abcd", "sec1"}, "a=[redacted] b=[redacted]"},
		{"EmptyAndShortIgnored", "abc x abc", []string{"", "x", "abc"}, "abc x abc"},
		{"ExactlyFour", "pin 1234", []string{"1234"}, "pin [redacted]"},
		// A secret inside another, and overlapping ones, leave no part
		// of either whatever the order.
		{"Nested", "k=abcdefgh", []string{"cdef", "abcdefgh"}, "k=[redacted]"},
		{"NestedOtherOrder", "k=abcdefgh", []string{"abcdefgh", "cdef"}, "k=[redacted]"},
		{"Overlapping", "k=abcdefgh.", []string{"abcdef", "defgh"}, "k=[redacted]."},
		{"SelfOverlap", "aaaaa", []string{"aaaa"}, "[redacted]"},
		// The replacement is not searched again.
		{"SecretInsideMarker", "x=dact", []string{"dact", "[redacted]"}, "x=[redacted]"},
		{"WholeMessage", "tok-abcd", []string{"tok-abcd"}, "[redacted]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := connectors.Redact(tc.msg, tc.secrets...); got != tc.want {
				t.Errorf("Redact(%q, %q) = %q, want %q", tc.msg, tc.secrets, got, tc.want)
			}
		})
	}
}

// RedactError keeps what the dispatcher acts on (class, Retry-After,
// context errors) and nothing of the original message.
func TestRedactError(t *testing.T) {
	t.Parallel()
	const secret = "tok-5f1c0e7a"
	cases := []struct {
		name  string
		err   error
		class connectors.Class
		after time.Duration
		is    error
	}{
		{"Retryable", connectors.RetryAfter(7*time.Second, errors.New("429: "+secret)), connectors.Retryable, 7 * time.Second, nil},
		{"Permanent", connectors.Errorf(connectors.Permanent, "401: %s", secret), connectors.Permanent, 0, nil},
		{"NotFound", fmt.Errorf("wrapped: %w", connectors.Errorf(connectors.NotFound, "404: %s", secret)), connectors.NotFound, 0, nil},
		{"Conflict", connectors.Errorf(connectors.Conflict, "409: %s", secret), connectors.Conflict, 0, nil},
		{"Unclassified", errors.New("boom " + secret), connectors.Retryable, 0, nil},
		{"Canceled", fmt.Errorf("op %s: %w", secret, context.Canceled), connectors.Retryable, 0, context.Canceled},
		{"Deadline", fmt.Errorf("op %s: %w", secret, context.DeadlineExceeded), connectors.Retryable, 0, context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := connectors.RedactError(tc.err, secret)
			for _, shown := range []string{got.Error(), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got)} {
				if strings.Contains(shown, secret) {
					t.Errorf("redacted error shows the secret: %s", shown)
				}
			}
			if !strings.Contains(got.Error(), "[redacted]") {
				t.Errorf("message %q has no [redacted] marker", got)
			}
			for e := errors.Unwrap(got); e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), secret) {
					t.Errorf("the chain still holds the secret: %v", e)
				}
			}
			class, after := connectors.ClassOf(got)
			if class != tc.class || after != tc.after {
				t.Errorf("class %v after %v, want %v %v", class, after, tc.class, tc.after)
			}
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", got, tc.is)
			}
			if tc.is == nil && (errors.Is(got, context.Canceled) || errors.Is(got, context.DeadlineExceeded)) {
				t.Errorf("%v became a context error", got)
			}
		})
	}
	plain := connectors.Errorf(connectors.Permanent, "nothing to hide")
	if got := connectors.RedactError(plain, secret); got != plain {
		t.Errorf("an error without secrets was replaced: %v", got)
	}
	if connectors.RedactError(nil, secret) != nil {
		t.Error("RedactError(nil) is not nil")
	}
}
