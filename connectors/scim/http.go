package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jmlgate/jmlgate/connectors"
)

const (
	mediaType = "application/scim+json"
	// maxResponse bounds a 2xx body read (a page of count users with
	// their groups fits comfortably).
	maxResponse = 4 << 20
	// maxErrorBody is how much of an error body is kept (the same bound
	// connectors.HTTPError applies).
	maxErrorBody = 512
	// maxDrain is how much of an unread body is discarded so that the
	// connection can be reused; anything longer closes the connection.
	maxDrain = 64 << 10
)

// request is one SCIM call.
type request struct {
	method string
	path   string     // below base_url, e.g. "/Users/abc"
	query  url.Values // nil: none
	body   any        // nil: none; otherwise encoded as JSON
}

func (r request) op() string { return r.method + " " + r.path }

// statusError is a non-2xx answer, already classified (connectors.HTTPError)
// in err, with the status and scimType kept for callers that treat some
// answers as success.
type statusError struct {
	status   int
	scimType string
	err      error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// statusOf returns the HTTP status of a non-2xx answer, 0 for other errors.
func statusOf(err error) (status int, scimType string) {
	var se *statusError
	if errors.As(err, &se) {
		return se.status, se.scimType
	}
	return 0, ""
}

// do sends r and decodes a 2xx JSON answer into out (when out is not nil).
// Every error is classified: transport failures by connectors.Transport
// (context errors wrapped as they are), non-2xx answers by
// connectors.HTTPError inside a *statusError. A 401 under OAuth 2.0 makes
// the token source fetch a new token and the request is sent once more.
func (c *Conn) do(ctx context.Context, r request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return connectors.Errorf(connectors.Permanent, "%s: encoding request: %w", r.op(), err)
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.auth.token(ctx)
		if err != nil {
			return err
		}
		err = c.send(ctx, r, body, tok, out)
		if status, _ := statusOf(err); status == http.StatusUnauthorized && attempt == 0 && c.auth.invalidate(ctx, tok) {
			c.log.InfoContext(ctx, "scim connector: target answered 401, fetching a new OAuth 2.0 token",
				"connector", c.name, "op", r.op())
			continue
		}
		return err
	}
}

func (c *Conn) send(ctx context.Context, r request, body []byte, token string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return connectors.Errorf(connectors.Permanent, "%s: %w", r.op(), err)
	}
	req.Header.Set("Accept", mediaType)
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "jmlgate-scim-connector")
	resp, err := c.client.Do(req)
	if err != nil {
		return connectors.Transport(r.op(), err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(r.op(), resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return connectors.Transport(r.op()+": reading response", err)
	}
	if len(raw) > maxResponse {
		return connectors.Errorf(connectors.Permanent, "%s: response larger than %d bytes", r.op(), maxResponse)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return connectors.Errorf(connectors.Permanent, "%s: HTTP %d: response is not SCIM JSON: %v", r.op(), resp.StatusCode, err)
	}
	return nil
}

// statusError classifies a non-2xx answer and reads its SCIM scimType.
func (c *Conn) statusError(op string, resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e struct {
		ScimType string `json:"scimType"`
	}
	_ = json.Unmarshal(raw, &e) // best effort: a truncated or non-JSON body has none
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return &statusError{status: resp.StatusCode, scimType: e.ScimType, err: connectors.HTTPError(op, resp, c.now())}
}

// quote writes s as a SCIM filter string literal (RFC 7644 section 3.4.2.2:
// JSON string syntax): backslash and double quote are escaped, as are
// control characters; everything else is sent as is.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// eqFilter returns `attr eq "value"`.
func eqFilter(attr, value string) string { return attr + " eq " + quote(value) }

// pathEscape escapes a ref or group id for use as one path segment.
func pathEscape(id string) string { return url.PathEscape(id) }

// listResponse is a SCIM ListResponse of T.
type listResponse[T any] struct {
	TotalResults int `json:"totalResults"`
	StartIndex   int `json:"startIndex"`
	ItemsPerPage int `json:"itemsPerPage"`
	Resources    []T `json:"Resources"`
}

// flexBool reads a boolean some targets send as a string ("True").
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = flexBool(x)
	case string:
		p, err := strconv.ParseBool(strings.ToLower(x))
		if err != nil {
			return fmt.Errorf("not a boolean: %q", x)
		}
		*b = flexBool(p)
	case nil:
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}
