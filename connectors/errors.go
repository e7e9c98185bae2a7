package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what the dispatcher should do about a failure.
type Class int

const (
	// Retryable failures are tried again with back-off (or after
	// RetryAfter when the target said when). Unclassified errors, network
	// errors and timeouts are retryable.
	Retryable Class = iota
	// Permanent failures will not succeed by trying again (a 400, a 403, a
	// configuration the target rejects): the job is dead-lettered at once
	// for a human to look at.
	Permanent
	// NotFound means the thing acted on does not exist. Revoke and
	// DisableAccount treat it as success; the dispatcher treats it from
	// Grant as a stale ref and ensures the account again.
	NotFound
	// Conflict means the target holds something in the way (a userName
	// taken by an account jmlgate cannot match). It is not retried
	// automatically.
	Conflict
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Error is a classified connector failure. Connectors return it (directly
// or wrapped); ClassOf finds it.
type Error struct {
	Class Class
	// RetryAfter is how long the target asked us to wait (429/503
	// Retry-After); zero means use back-off.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Class.String()
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of class c with a formatted message (%w wraps).
func Errorf(c Class, format string, args ...any) error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// RetryAfter returns a retryable *Error that asks for a wait of d.
func RetryAfter(d time.Duration, err error) error {
	return &Error{Class: Retryable, RetryAfter: d, Err: err}
}

// ClassOf returns the class of err and the wait the target asked for.
// Errors that are not (and do not wrap) an *Error are Retryable: a
// connector that forgets to classify costs retries, never a lost
// revocation. Context cancellation is Retryable too: the job was
// interrupted (shutdown), not refused.
func ClassOf(err error) (Class, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, e.RetryAfter
	}
	return Retryable, 0
}

// IsNotFound reports whether err is classified NotFound.
func IsNotFound(err error) bool {
	c, _ := ClassOf(err)
	return err != nil && c == NotFound
}

// maxBody bounds how much of an error response is kept in the message.
const maxBody = 512

// HTTPError classifies a non-2xx response of an HTTP target: 429 and 5xx
// are Retryable (honouring Retry-After, in seconds or as an HTTP date),
// 404 and 410 NotFound, 409 Conflict, other 4xx Permanent. It reads (at
// most 512 bytes of) the body into the message, so the caller still closes
// it. op names the request for the message, e.g. "POST /Users".
func HTTPError(op string, resp *http.Response, now time.Time) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	msg := strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
	err := fmt.Errorf("%s: HTTP %d", op, resp.StatusCode)
	if msg != "" {
		err = fmt.Errorf("%s: HTTP %d: %s", op, resp.StatusCode, msg)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests || s >= 500:
		return &Error{Class: Retryable, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), now), Err: err}
	case s == http.StatusNotFound || s == http.StatusGone:
		return &Error{Class: NotFound, Err: err}
	case s == http.StatusConflict:
		return &Error{Class: Conflict, Err: err}
	case s == http.StatusRequestTimeout:
		return &Error{Class: Retryable, Err: err}
	default:
		return &Error{Class: Permanent, Err: err}
	}
}

// maxRetryAfter caps what a target can ask for, so a bogus header cannot
// park a revocation for a day.
const maxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After value (RFC 9110 10.2.3: delay seconds
// or an HTTP date). Empty, unparsable or past values are 0; values are
// capped at one hour.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// Transport classifies an error from http.Client.Do: a cancelled or expired
// ctx is returned as is (the caller's decision, Retryable by ClassOf);
// everything else (refused, reset, timeout, TLS) is Retryable except
// certificate verification failures, which no retry fixes.
func Transport(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if isCertError(err) {
		return &Error{Class: Permanent, Err: fmt.Errorf("%s: %w", op, err)}
	}
	return &Error{Class: Retryable, Err: fmt.Errorf("%s: %w", op, err)}
}

// minSecret is the shortest secret Redact replaces: shorter strings would
// blank out ordinary words and prove nothing.
const minSecret = 4

// Redact returns msg with every occurrence of each secret (non-empty and at
// least 4 bytes long; shorter ones are ignored) replaced by "[redacted]".
// Occurrences that overlap or touch are replaced by one "[redacted]", and
// the replacement text is never searched again, so the result does not
// depend on the order of secrets. Connectors run every error message that
// may quote a target's answer through it, with each credential they hold:
// a target that echoes a token must not put it into a delivery's
// last_error, the audit record of a dead letter, or a log.
func Redact(msg string, secrets ...string) string {
	var hide []bool // hide[i]: byte i of msg belongs to a secret
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		for from := 0; ; {
			i := strings.Index(msg[from:], s)
			if i < 0 {
				break
			}
			if hide == nil {
				hide = make([]bool, len(msg))
			}
			for j := from + i; j < from+i+len(s); j++ {
				hide[j] = true
			}
			from += i + 1
		}
	}
	if hide == nil {
		return msg
	}
	var b strings.Builder
	b.Grow(len(msg))
	for i := 0; i < len(msg); i++ {
		if !hide[i] {
			b.WriteByte(msg[i])
			continue
		}
		b.WriteString(redacted)
		for i+1 < len(msg) && hide[i+1] {
			i++
		}
	}
	return b.String()
}

// RedactError returns err unchanged when its message holds none of the
// secrets, and otherwise a new *Error with the redacted message and the
// same Class and RetryAfter (see ClassOf). The original error is not kept
// in the chain (something walking it could print the secret); only
// context.Canceled and context.DeadlineExceeded are, so that errors.Is
// still finds them.
func RedactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := Redact(msg, secrets...)
	if red == msg {
		return err
	}
	class, after := ClassOf(err)
	re := &redactedError{msg: red}
	for _, sentinel := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			re.causes = append(re.causes, sentinel)
		}
	}
	return &Error{Class: class, RetryAfter: after, Err: re}
}

// redactedError is an error message with secrets taken out.
type redactedError struct {
	msg    string
	causes []error // context sentinels only
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.causes }
