// Package patch implements SCIM PATCH (RFC 7644 section 3.5.2) over the
// documents package resource produces: map[string]any with canonical
// attribute names, core attributes at the top level and extension
// attributes under their URN key.
//
// Apply is pure and atomic: it works on a deep copy, returns a new document
// only when every operation succeeded, and never modifies its input. It
// handles paths, filters and structure; the caller re-validates the result
// with resource.Normalize(rt, result, resource.Replace), which is where
// type rules that span the whole document (required attributes, at most one
// primary value) are finally enforced. Values Apply stores are already
// canonicalised by resource.NormalizeValue, so the Entra spellings ("True",
// a bare manager id) come out typed.
//
// Behaviour chosen where RFC 7644 is silent or where identity providers
// deviate from it (each is tested):
//
//   - op is case-insensitive ("Add", "Replace", "Remove" from Microsoft
//     Entra ID).
//   - Without a path, value is an object whose keys may be attribute names,
//     dotted sub-attribute paths ("name.givenName"), URN-qualified paths
//     ("urn:...:enterprise:2.0:User:department") or an extension URN whose
//     object value merges into the extension. readOnly attributes among
//     them (Okta sends {"id": ..., "displayName": ...} to rename a group)
//     and "schemas" are ignored, as in a POST or PUT body. An explicit path
//     naming a readOnly attribute is a 400 mutability error.
//   - add to a multi-valued attribute appends; a value equal to one already
//     present is not added again. Group members are identified by "value"
//     alone, so re-adding a member is a no-op. A single object is accepted
//     where an array is expected.
//   - add or replace on a complex single-valued attribute merges
//     sub-attributes (RFC 7644 section 3.5.2.3); replace with a value filter
//     and an object value merges into each matching element too.
//   - add with a value filter that matches nothing creates the element when
//     the filter is a conjunction of "sub eq literal" comparisons:
//     add emails[type eq "work"].value creates {"type": "work", "value": ...}.
//     Microsoft Entra ID sends exactly this when a user gains a work e-mail
//     address, and its SCIM validator does the same with
//     roles[primary eq "True"].display. Any other filter that matches
//     nothing is 400 noTarget, as is replace with a filter that matches
//     nothing (RFC 7644 section 3.5.2.3).
//   - remove with a value filter that matches nothing is a no-op, as is
//     remove of an attribute that has no value. RFC 7644 section 3.12
//     (Table 9) lists noTarget for "a filter that yields no match", but a
//     removal's end state is reached when the value is already absent, and
//     Entra ID and Okta retry removals after timeouts (Okta removes members
//     with members[value eq "id"]): a 400 there would fail a request whose
//     first attempt committed. replace with a filter that matches nothing
//     stays noTarget, because its end state cannot be reached.
//   - remove with a value on a multi-valued path (Entra's
//     {"op": "Remove", "path": "members", "value": [{"value": "id"}]})
//     removes just the listed values, matched by "value" when given; listed
//     values that are not present are ignored, so Entra's retries succeed.
//   - Setting "primary": true on a value sets it to false on the others of
//     the same attribute (RFC 7643 section 2.4).
//   - Boolean literals in value filters may be the strings "True"/"False"
//     (Entra); they are read as booleans for boolean sub-attributes.
//
// Errors are *errors.ScimError with status 400 and a Detail naming the
// operation (1-based, in request order) and its path, e.g.
// `operation 2 (replace "emails[type eq \"work\"].value"): no value matches
// the filter`. scimType is invalidSyntax for a malformed request or unknown
// op, invalidPath for a malformed path or an unknown attribute in it,
// invalidFilter for a value filter that does not fit the attribute,
// noTarget as above, mutability for readOnly, immutable and required
// attributes, and invalidValue for values of the wrong shape or type.
package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// Operation is one element of a PatchOp request's "Operations".
type Operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Request is a PATCH body (RFC 7644 section 3.5.2).
type Request struct {
	Schemas    []string    `json:"schemas"`
	Operations []Operation `json:"Operations"`
}

// Decode parses and validates a PATCH body. encoding/json matches field
// names case-insensitively, so "operations" (Microsoft Graph's SCIM API
// spelling) is accepted too. Errors are *errors.ScimError, 400
// invalidSyntax.
func Decode(body []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &serr.ScimError{ScimType: serr.ScimTypeInvalidSyntax, Status: http.StatusBadRequest,
			Detail: "PATCH body is not a PatchOp message: " + err.Error()}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks that schemas lists the PatchOp URN and that there is at
// least one operation. Errors are *errors.ScimError, 400 invalidSyntax.
// Operations themselves are checked by Apply.
func (r *Request) Validate() error {
	found := false
	for _, s := range r.Schemas {
		if strings.EqualFold(s, schema.PatchOpURN) {
			found = true
			break
		}
	}
	if !found {
		return &serr.ScimError{ScimType: serr.ScimTypeInvalidSyntax, Status: http.StatusBadRequest,
			Detail: fmt.Sprintf(`"schemas" must list %q`, schema.PatchOpURN)}
	}
	if len(r.Operations) == 0 {
		return &serr.ScimError{ScimType: serr.ScimTypeInvalidSyntax, Status: http.StatusBadRequest,
			Detail: `"Operations" must hold at least one operation`}
	}
	return nil
}

// Apply applies ops in order to a copy of doc and returns the new document.
//
// It is atomic: on any error it returns a nil document and doc is
// untouched; on success doc is untouched too and the result shares no maps
// or slices with it. changed reports whether the result differs from doc,
// so that a PATCH that only re-adds existing members or sets values to what
// they already are can skip the write (RFC 7644 section 3.5.2.1: such a
// request "SHALL NOT change the modify timestamp").
//
// See the package documentation for the semantics and the errors.
func Apply(rt *schema.ResourceType, doc map[string]any, ops []Operation) (result map[string]any, changed bool, err error) {
	work := resource.Clone(doc)
	if work == nil {
		work = map[string]any{}
	}
	for i, op := range ops {
		a := &applier{rt: rt, doc: work, n: i + 1, op: op}
		if err := a.run(); err != nil {
			return nil, false, err
		}
	}
	return work, !reflect.DeepEqual(doc, work) && !(len(doc) == 0 && len(work) == 0), nil
}

// applier applies one operation to doc in place (doc is Apply's copy).
type applier struct {
	rt   *schema.ResourceType
	doc  map[string]any
	n    int // 1-based operation number
	op   Operation
	verb string
}

func (a *applier) desc() string {
	verb := a.verb
	if verb == "" {
		verb = fmt.Sprintf("%q", a.op.Op)
	}
	if a.op.Path == "" {
		return fmt.Sprintf("operation %d (%s without path)", a.n, verb)
	}
	return fmt.Sprintf("operation %d (%s %q)", a.n, verb, a.op.Path)
}

func (a *applier) fail(t serr.ScimType, format string, args ...any) error {
	return &serr.ScimError{ScimType: t, Status: http.StatusBadRequest, Detail: a.desc() + ": " + fmt.Sprintf(format, args...)}
}

// wrap prefixes a SCIM error from another package with the operation.
func (a *applier) wrap(err error) error {
	var se *serr.ScimError
	if e, ok := err.(*serr.ScimError); ok {
		se = e
	} else {
		return a.fail(serr.ScimTypeInvalidValue, "%v", err)
	}
	return &serr.ScimError{ScimType: se.ScimType, Status: se.Status, Detail: a.desc() + ": " + se.Detail}
}

func (a *applier) run() error {
	a.verb = strings.ToLower(a.op.Op)
	switch a.verb {
	case "add", "replace", "remove":
	default:
		a.verb = ""
		return a.fail(serr.ScimTypeInvalidSyntax, "unknown op %q; want add, replace or remove", a.op.Op)
	}
	value, hasValue, err := a.value()
	if err != nil {
		return err
	}
	path := strings.TrimSpace(a.op.Path)
	if path == "" {
		if a.verb == "remove" {
			return a.fail(serr.ScimTypeNoTarget, "remove requires a path")
		}
		if !hasValue {
			return a.fail(serr.ScimTypeInvalidValue, "value is required")
		}
		err = a.noPath(value)
	} else {
		var t target
		t, err = a.resolve(path, false)
		if err != nil {
			return err
		}
		if a.verb != "remove" && !hasValue {
			return a.fail(serr.ScimTypeInvalidValue, "value is required")
		}
		switch a.verb {
		case "add", "replace":
			err = a.set(t, value)
		case "remove":
			err = a.remove(t, value, hasValue)
		}
	}
	if err != nil {
		return err
	}
	a.tidy()
	return nil
}

// value decodes the operation's value; hasValue is false when it is absent.
func (a *applier) value() (v any, hasValue bool, err error) {
	raw := bytes.TrimSpace(a.op.Value)
	if len(raw) == 0 {
		return nil, false, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, false, a.fail(serr.ScimTypeInvalidSyntax, "value is not JSON: %v", err)
	}
	if d.More() {
		return nil, false, a.fail(serr.ScimTypeInvalidSyntax, "value is not a single JSON value")
	}
	return v, true, nil
}

// noPath applies add or replace without a path: every key of the object
// value is a target of its own.
func (a *applier) noPath(value any) error {
	obj, ok := value.(map[string]any)
	if !ok {
		return a.fail(serr.ScimTypeInvalidValue, "without a path, value must be an object of attributes, got %s", resource.JSONType(value))
	}
	seen := map[string]string{}
	for _, k := range sortedKeys(obj) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		t, err := a.resolve(k, true)
		if err != nil {
			return err
		}
		if t.skip {
			continue
		}
		if t.filter == nil {
			if prev, dup := seen[t.label()]; dup {
				return a.fail(serr.ScimTypeInvalidValue, "attribute %q given more than once (as %q and %q)", t.label(), prev, k)
			}
			seen[t.label()] = k
		}
		if err := a.set(t, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// tidy drops extension objects and complex values an operation emptied, so
// that the result is canonical and "changed" is exact.
func (a *applier) tidy() {
	for _, ext := range a.rt.Extensions {
		if m, ok := a.doc[ext.ID].(map[string]any); ok && len(m) == 0 {
			delete(a.doc, ext.ID)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// A fixed order keeps error messages and results reproducible.
	sort.Strings(keys)
	return keys
}
