package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// readBody reads a JSON request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, errorf(http.StatusUnsupportedMediaType, serr.ScimTypeInvalidSyntax,
			"Content-Type %q is not supported; send application/scim+json", r.Header.Get("Content-Type"))
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "", "request body exceeds the limit of %d bytes", limit)
		}
		return nil, badRequest(serr.ScimTypeInvalidSyntax, "reading request body: %v", err)
	}
	return b, nil
}

// decodeObject parses b as exactly one JSON object, keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := decodeStrict(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, badRequest(serr.ScimTypeInvalidSyntax, "request body must be a JSON object")
	}
	return m, nil
}

// decodeStrict decodes one JSON value into v and rejects trailing data, with
// an error that names the byte offset of the problem.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest(serr.ScimTypeInvalidSyntax, "request body is empty")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest(serr.ScimTypeInvalidSyntax, "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "body"
			}
			return badRequest(serr.ScimTypeInvalidSyntax, "%s: expected %s, got JSON %s", field, te.Type, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest(serr.ScimTypeInvalidSyntax, "malformed JSON: unexpected end of input")
		}
		return badRequest(serr.ScimTypeInvalidSyntax, "malformed JSON: %v", err)
	}
	if d.More() {
		return badRequest(serr.ScimTypeInvalidSyntax, "malformed JSON: unexpected data after the top-level value at byte %d", d.InputOffset())
	}
	return nil
}

// projection is a request's attributes / excludedAttributes.
type projection struct {
	attrs    []string
	excluded []string
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func projectionFrom(r *http.Request) projection {
	q := r.URL.Query()
	return projection{attrs: splitList(q.Get("attributes")), excluded: splitList(q.Get("excludedAttributes"))}
}

// includes reports whether the core attribute name would survive the
// projection, so renderers can skip fetching what will be dropped. It must
// agree with resource.Project, for which the bare core schema URN names
// every core attribute.
func (q projection) includes(rt *schema.ResourceType, name string) bool {
	match := func(list []string, sub bool) bool {
		for _, a := range list {
			a = strings.TrimSpace(a)
			if strings.EqualFold(a, rt.Core.ID) {
				return true
			}
			urn, attr, s := schema.SplitURN(a)
			if urn != "" && !strings.EqualFold(urn, rt.Core.ID) {
				continue
			}
			if strings.EqualFold(attr, name) && (sub || s == "") {
				return true
			}
		}
		return false
	}
	if len(q.attrs) > 0 {
		return match(q.attrs, true)
	}
	return !match(q.excluded, false)
}

func (q projection) empty() bool { return len(q.attrs) == 0 && len(q.excluded) == 0 }

func (q projection) apply(rt *schema.ResourceType, doc map[string]any) (map[string]any, error) {
	if len(q.attrs) == 0 && len(q.excluded) == 0 {
		// Fast path: only "returned: never" attributes to drop, and those are
		// never stored.
		return doc, nil
	}
	return resource.Project(rt, doc, q.attrs, q.excluded)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
