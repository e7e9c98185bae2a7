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
	"slices"
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
	// maxErrorRead is how much of an error body is read: enough to
	// parse a SCIM error and to find a secret that straddles the 512
	// bytes connectors.HTTPError keeps, so that it is redacted before it
	// is cut.
	maxErrorRead = 16 << 10
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

// onResource reports whether r addresses one resource (/Users/{id},
// /Groups/{id}), the only requests whose 404 can mean "no such resource".
// A list or search (/Users?filter=…) answers an empty ListResponse when
// nothing matches; a 404 from one means the endpoint is wrong.
func (r request) onResource() bool {
	for _, col := range []string{"/Users/", "/Groups/"} {
		if id, ok := strings.CutPrefix(r.path, col); ok {
			return id != "" && !strings.Contains(id, "/")
		}
	}
	return false
}

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
// connectors.HTTPError inside a *statusError, except that a 404 or 410 is
// NotFound only on a resource with a SCIM error body (see statusError).
// A 401 under OAuth 2.0 makes the token source fetch a new token and the
// request is sent once more. Error messages have every credential of the
// connector and the token sent redacted.
func (c *Conn) do(ctx context.Context, r request, out any) error {
	var sent []string
	err := c.doAuth(ctx, r, out, &sent)
	return c.redact(err, sent...)
}

func (c *Conn) doAuth(ctx context.Context, r request, out any, sent *[]string) error {
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
		*sent = append(*sent, tokenForms(tok)...)
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
		return c.statusError(r, resp, append(c.auth.secrets(), tokenForms(token)...))
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

// scimError is the part of a SCIM error response (RFC 7644 section 3.12)
// the connector reads.
type scimError struct {
	Schemas  []string        `json:"schemas"`
	Status   json.RawMessage `json:"status"` // "404" per the RFC; some send 404
	ScimType string          `json:"scimType"`
}

const errorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"

// is reports whether e is a SCIM error of the given HTTP status: it
// names the error schema, or at least carries that status.
func (e *scimError) is(status int) bool {
	if slices.Contains(e.Schemas, errorSchema) {
		return true
	}
	var s string
	if json.Unmarshal(e.Status, &s) == nil {
		return s == strconv.Itoa(status)
	}
	var n int
	return json.Unmarshal(e.Status, &n) == nil && n == status
}

// statusError classifies a non-2xx answer to r and reads its SCIM
// scimType. The body is redacted of secrets before connectors.HTTPError
// quotes (the start of) it. A 404 or 410 is NotFound only when r is on a
// resource and the body is a SCIM error; from a list endpoint, or with
// another body (an ingress's HTML page), it is Permanent: the URL is
// wrong, and taking it for "already gone" would let a revocation succeed
// without reaching the target.
func (c *Conn) statusError(r request, resp *http.Response, secrets []string) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
	var e scimError
	isJSON := json.Unmarshal(raw, &e) == nil // a truncated or non-JSON body has no scimType
	resp.Body = io.NopCloser(strings.NewReader(connectors.Redact(string(raw), secrets...)))
	err := connectors.HTTPError(r.op(), resp, c.now())
	if s := resp.StatusCode; s == http.StatusNotFound || s == http.StatusGone {
		switch {
		case !r.onResource():
			err = connectors.Errorf(connectors.Permanent,
				"%v; the endpoint looks wrong (check base_url): SCIM answers %d only to a request on one resource, never to a list, search or creation", err, s)
		case !isJSON || !e.is(s):
			err = connectors.Errorf(connectors.Permanent,
				"%v; the endpoint looks wrong (check base_url): the answer is not a SCIM error", err)
		}
	}
	return &statusError{status: resp.StatusCode, scimType: e.ScimType, err: err}
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
	Schemas      []string `json:"schemas"`
	TotalResults *int     `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []T      `json:"Resources"`
}

const listSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// list GETs path with query into page and checks that the answer is a
// ListResponse (it names the schema or has the REQUIRED totalResults):
// the connector concludes "absent" from an empty list, so a 200 from
// something else (a catch-all {}) must not pass for one.
func list[T any](ctx context.Context, c *Conn, path string, query url.Values, page *listResponse[T]) error {
	r := request{method: http.MethodGet, path: path, query: query}
	if err := c.do(ctx, r, page); err != nil {
		return err
	}
	if page.TotalResults == nil && !slices.Contains(page.Schemas, listSchema) {
		return connectors.Errorf(connectors.Permanent,
			"%s: the answer is not a SCIM ListResponse (no totalResults); the endpoint looks wrong (check base_url)", r.op())
	}
	return nil
}

// total is totalResults, or the number of resources when it is absent.
func (p *listResponse[T]) total() int {
	if p.TotalResults == nil {
		return len(p.Resources)
	}
	return *p.TotalResults
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
