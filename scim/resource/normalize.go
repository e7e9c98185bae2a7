// Package resource validates and canonicalises SCIM resource documents
// (RFC 7643) against jmlgate's schemas, deep-copies them, and projects them
// for output (RFC 7644 section 3.9).
//
// Documents follow the conventions of package schema: map[string]any as
// decoded by encoding/json with UseNumber, canonical attribute names, core
// and common attributes at the top level and extension attributes under
// their URN key. Every function here is pure: inputs are never mutated and
// results share no maps or slices with them.
//
// Errors are *errors.ScimError values (github.com/elimity-com/scim/errors)
// with status 400 and a Detail that names the offending attribute by its
// path, e.g. `attribute "emails[1].primary": expected boolean, got string`.
// Details never echo attribute values, so a misplaced secret (a password
// sent as a number, say) does not end up in logs or responses.
package resource

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// Mode says which mutability rules apply.
type Mode int

const (
	// Create is a POST body (RFC 7644 section 3.3).
	Create Mode = iota
	// Replace is a PUT body (RFC 7644 section 3.5.1), and the re-validation
	// of a document a PATCH produced.
	Replace
)

// String names the mode for messages.
func (m Mode) String() string {
	switch m {
	case Create:
		return "create"
	case Replace:
		return "replace"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Normalize validates a client-supplied resource body against rt and returns
// a new canonical document: canonical attribute names, extension attributes
// under their URN key, values coerced to their schema types, unassigned
// values (null, empty arrays, empty objects) dropped, and "schemas" rebuilt
// as the core URN followed by the URNs of the extensions actually present.
//
// Rules, in the order a client is likely to trip over them:
//   - "schemas" must be an array of strings that lists rt's core schema
//     (400 invalidSyntax). Other URNs in it are ignored: Microsoft Entra ID
//     lists a private "http://schemas.microsoft.com/.../ADSCIM/2.0/Group"
//     schema on every group it creates, with no attributes of it.
//   - Attribute names are case-insensitive. Unknown attributes are rejected
//     with 400 invalidValue naming them (`unknown attribute "fooBar"`);
//     RFC 7644 lets servers ignore them, jmlgate is strict so that a typo in
//     an HR mapping fails loudly instead of silently losing data. The same
//     attribute given twice (in two spellings, or both flat and nested) is
//     rejected too.
//   - A top-level key may be a URN-qualified attribute
//     ("urn:...:enterprise:2.0:User:department"); it is moved under its
//     extension (or to the top level for the core URN).
//   - An extension object present in the body but not listed in "schemas"
//     is accepted: Okta and Microsoft Entra ID send enterprise attributes
//     without listing the extension, and rejecting them would break
//     provisioning for no benefit. The rebuilt "schemas" lists it.
//   - readOnly attributes and sub-attributes (id, meta, groups,
//     manager.displayName) are silently dropped, as RFC 7643 section 7
//     requires, in both modes. The caller re-attaches the server's own id
//     and meta.
//   - Types follow RFC 7643 section 2.3. dateTime must be an xsd:dateTime
//     (RFC 3339, or without a zone offset); binary must be standard base64;
//     integer must be a JSON number without fraction or exponent. Booleans
//     also accept the strings "True", "False", "true" and "false", which
//     Microsoft Entra ID sends; no other coercion happens (a numeric string
//     is not an integer).
//   - A multi-valued attribute must be an array; at most one of its values
//     may be "primary": true.
//   - The enterprise "manager" may be a bare string id, as Entra sends it; it
//     becomes {"value": id}, and the empty string removes the manager.
//   - Required attributes (userName for User, displayName for Group) must be
//     present and non-empty.
//
// Create and Replace apply the same rules today: RFC 7644 section 3.5.1 asks
// a PUT to leave immutable values unchanged, and the only immutable
// attributes in jmlgate's schemas are Group member references, which are
// replaced as whole values. Mode is part of the signature so callers state
// their intent and so that rule can be added without an API change.
//
// Normalize does not mutate body. Every error is a *errors.ScimError with
// status 400.
func Normalize(rt *schema.ResourceType, body map[string]any, mode Mode) (map[string]any, error) {
	_ = mode
	n := normalizer{rt: rt}
	return n.document(body)
}

type normalizer struct {
	rt *schema.ResourceType
}

// staged collects raw values per schema (core = "") with canonical
// attribute names, so that flat URN keys and nested extension objects meet
// before any value is converted.
type staged struct {
	raw map[string]map[string]any // schema key ("" or extension URN) -> attr name -> raw value
}

func (n normalizer) document(body map[string]any) (map[string]any, error) {
	st := staged{raw: map[string]map[string]any{"": {}}}
	if err := n.schemas(body); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(body) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		if err := n.stageKey(&st, k, body[k]); err != nil {
			return nil, err
		}
	}

	out := map[string]any{}
	if err := n.attrs(st.raw[""], "", out); err != nil {
		return nil, err
	}
	schemas := []any{n.rt.Core.ID}
	for _, ext := range n.rt.Extensions {
		raw, ok := st.raw[ext.ID]
		if !ok {
			continue
		}
		obj := map[string]any{}
		if err := n.attrs(raw, ext.ID, obj); err != nil {
			return nil, err
		}
		if len(obj) > 0 {
			out[ext.ID] = obj
			schemas = append(schemas, ext.ID)
		}
	}
	out["schemas"] = schemas
	if err := requireAttrs(n.rt, out); err != nil {
		return nil, err
	}
	return out, nil
}

// schemas checks the "schemas" attribute. Which extensions it lists does not
// matter: the output's "schemas" is rebuilt from the extensions actually
// present.
func (n normalizer) schemas(body map[string]any) error {
	var raw any
	found := false
	for k, v := range body {
		if strings.EqualFold(k, "schemas") {
			if found {
				return invalidSyntax(`attribute "schemas" given more than once`)
			}
			raw, found = v, true
		}
	}
	if !found || raw == nil {
		return invalidSyntax(fmt.Sprintf(`attribute "schemas" is required and must list %q`, n.rt.Core.ID))
	}
	list, ok := raw.([]any)
	if !ok {
		return invalidSyntax(fmt.Sprintf(`attribute "schemas": expected an array of strings, got %s`, JSONType(raw)))
	}
	core := false
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			return invalidSyntax(fmt.Sprintf(`attribute "schemas[%d]": expected string, got %s`, i, JSONType(v)))
		}
		if strings.EqualFold(s, n.rt.Core.ID) {
			core = true
		}
		// Other URNs, known or not, are not checked: Microsoft Entra ID
		// lists "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
		// on every group it creates, without any attribute of that schema.
		// Attributes of an unknown schema are rejected where they appear.
	}
	if !core {
		return invalidSyntax(fmt.Sprintf(`attribute "schemas" must list %q`, n.rt.Core.ID))
	}
	return nil
}

// stageKey files one top-level key of the body under its schema.
func (n normalizer) stageKey(st *staged, key string, v any) error {
	if !strings.HasPrefix(strings.ToLower(key), "urn:") {
		if strings.Contains(key, ".") {
			return invalidValue(fmt.Sprintf("unknown attribute %q", key))
		}
		p, err := n.rt.ResolveParts("", key, "")
		if err != nil {
			return invalidValue(fmt.Sprintf("unknown attribute %q", key))
		}
		if strings.EqualFold(p.Attr.Name, "schemas") {
			return nil // handled by n.schemas
		}
		return stage(st.raw, "", p.Attr.Name, "", v)
	}
	if ext := n.rt.Extension(key); ext != nil {
		if v == nil {
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return invalidValue(fmt.Sprintf("attribute %q: expected complex (object), got %s", ext.ID, JSONType(v)))
		}
		for _, k := range sortedKeys(obj) {
			a := ext.Attr(k)
			if a == nil {
				return invalidValue(fmt.Sprintf("unknown attribute %q", ext.ID+":"+k))
			}
			if err := stage(st.raw, ext.ID, a.Name, "", obj[k]); err != nil {
				return err
			}
		}
		return nil
	}
	// A URN-qualified attribute: "urn:...:enterprise:2.0:User:department",
	// "urn:...:core:2.0:User:userName", optionally with ".sub".
	p, err := n.rt.Resolve(key)
	if err != nil {
		return invalidValue(fmt.Sprintf("unknown attribute %q", key))
	}
	sub := ""
	if p.Sub != nil {
		sub = p.Sub.Name
	}
	return stage(st.raw, p.Extension, p.Attr.Name, sub, v)
}

// stage records raw value v for attribute attr (and optionally one of its
// sub-attributes) of the schema keyed ext, refusing duplicates.
func stage(raw map[string]map[string]any, ext, attr, sub string, v any) error {
	m := raw[ext]
	if m == nil {
		m = map[string]any{}
		raw[ext] = m
	}
	name := attr
	if ext != "" {
		name = ext + ":" + attr
	}
	prev, exists := m[attr]
	if sub == "" {
		if exists {
			return invalidValue(fmt.Sprintf("attribute %q given more than once", name))
		}
		m[attr] = v
		return nil
	}
	if !exists || prev == nil {
		m[attr] = map[string]any{sub: v}
		return nil
	}
	obj, ok := prev.(map[string]any)
	if !ok {
		return invalidValue(fmt.Sprintf("attribute %q given more than once", name))
	}
	for k := range obj {
		if strings.EqualFold(k, sub) {
			return invalidValue(fmt.Sprintf("attribute %q given more than once", name+"."+sub))
		}
	}
	cp := make(map[string]any, len(obj)+1)
	for k, x := range obj {
		cp[k] = x
	}
	cp[sub] = v
	m[attr] = cp
	return nil
}

// attrs converts the staged raw values of one schema into out.
func (n normalizer) attrs(raw map[string]any, ext string, out map[string]any) error {
	for _, name := range sortedKeys(raw) {
		var a *schema.Attr
		if ext == "" {
			p, err := n.rt.ResolveParts("", name, "")
			if err != nil {
				return invalidValue(fmt.Sprintf("unknown attribute %q", name))
			}
			a = p.Attr
		} else {
			a = n.rt.Extension(ext).Attr(name)
		}
		if a.ReadOnly() {
			continue
		}
		label := a.Name
		if ext != "" {
			label = ext + ":" + a.Name
		}
		v, err := NormalizeValue(a, raw[name], label)
		if err != nil {
			return err
		}
		if v != nil {
			out[a.Name] = v
		}
	}
	return nil
}

// requireAttrs checks that every required, client-writable top-level
// attribute of rt's core schema and of the extensions present has a value.
func requireAttrs(rt *schema.ResourceType, doc map[string]any) error {
	check := func(a *schema.Attr, v any, label string) error {
		if !a.Required || a.ReadOnly() {
			return nil
		}
		if v == nil || v == "" {
			return invalidValue(fmt.Sprintf("attribute %q is required", label))
		}
		return nil
	}
	for _, a := range rt.Core.Attrs {
		if err := check(a, doc[a.Name], a.Name); err != nil {
			return err
		}
	}
	for _, ext := range rt.Extensions {
		obj, ok := doc[ext.ID].(map[string]any)
		if !ok {
			continue
		}
		for _, a := range ext.Attrs {
			if err := check(a, obj[a.Name], ext.ID+":"+a.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// NormalizeValue validates and canonicalises v as the whole value of
// attribute a: an array for a multi-valued attribute, a single value
// otherwise. label names the attribute in errors ("emails",
// "urn:...:User:manager"). It returns nil when the value is unassigned
// (null, an empty array, an object with no assigned sub-attribute, or the
// enterprise manager given as the empty string). readOnly sub-attributes are
// dropped. Errors are *errors.ScimError, status 400, scimType invalidValue.
//
// PATCH uses it so that values it stores go through exactly the coercions
// Normalize applies.
func NormalizeValue(a *schema.Attr, v any, label string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if !a.MultiValued {
		return NormalizeSingle(a, v, label)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, invalidValue(fmt.Sprintf("attribute %q: expected an array, got %s", label, JSONType(v)))
	}
	out := make([]any, 0, len(list))
	primaries := 0
	for i, e := range list {
		x, err := NormalizeSingle(a, e, fmt.Sprintf("%s[%d]", label, i))
		if err != nil {
			return nil, err
		}
		if x == nil {
			continue
		}
		if IsPrimary(x) {
			primaries++
		}
		out = append(out, x)
	}
	if primaries > 1 {
		return nil, invalidValue(fmt.Sprintf(`attribute %q: %d values are marked "primary": true, at most one may be`, label, primaries))
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// IsPrimary reports whether v is a complex value with "primary": true.
func IsPrimary(v any) bool {
	m, ok := v.(map[string]any)
	return ok && m["primary"] == true
}

// NormalizeSingle validates and canonicalises v as one value of attribute a
// (one element when a is multi-valued). It returns nil when the value is
// unassigned. Errors as for NormalizeValue.
func NormalizeSingle(a *schema.Attr, v any, label string) (any, error) {
	if v == nil {
		return nil, nil
	}
	mismatch := func(want string) error {
		return invalidValue(fmt.Sprintf("attribute %q: expected %s, got %s", label, want, JSONType(v)))
	}
	switch a.Type {
	case schema.TypeString, schema.TypeReference:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(a.Type)
		}
		return s, nil
	case schema.TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			// Microsoft Entra ID sends booleans as "True"/"False".
			switch x {
			case "True", "true":
				return true, nil
			case "False", "false":
				return false, nil
			}
		}
		return nil, mismatch("boolean")
	case schema.TypeInteger:
		n, ok := number(v)
		if !ok {
			return nil, mismatch("integer")
		}
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, invalidValue(fmt.Sprintf("attribute %q: expected integer, got a number with a fraction, an exponent or out of range", label))
		}
		return json.Number(strconv.FormatInt(i, 10)), nil
	case schema.TypeDecimal:
		n, ok := number(v)
		if !ok {
			return nil, mismatch("decimal")
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalidValue(fmt.Sprintf("attribute %q: expected decimal, got an unrepresentable number", label))
		}
		return json.Number(n), nil
	case schema.TypeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch("dateTime")
		}
		if !ValidDateTime(s) {
			return nil, invalidValue(fmt.Sprintf(`attribute %q: expected dateTime (xsd:dateTime such as "2008-01-23T04:56:22Z"), got a string that is not one`, label))
		}
		return s, nil
	case schema.TypeBinary:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch("binary")
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return nil, invalidValue(fmt.Sprintf("attribute %q: expected binary (base64), got a string that is not base64", label))
		}
		return s, nil
	case schema.TypeComplex:
		return complexValue(a, v, label)
	}
	return nil, invalidValue(fmt.Sprintf("attribute %q: unsupported type %q", label, a.Type))
}

func complexValue(a *schema.Attr, v any, label string) (any, error) {
	if s, ok := v.(string); ok && isManager(a) {
		// Microsoft Entra ID sends the manager as a bare id.
		if s == "" {
			return nil, nil
		}
		return map[string]any{"value": s}, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalidValue(fmt.Sprintf("attribute %q: expected complex (object), got %s", label, JSONType(v)))
	}
	out := make(map[string]any, len(obj))
	seen := make(map[string]string, len(obj))
	for _, k := range sortedKeys(obj) {
		sa := a.SubAttr(k)
		if sa == nil {
			return nil, invalidValue(fmt.Sprintf("unknown attribute %q", label+"."+k))
		}
		if prev, dup := seen[sa.Name]; dup {
			return nil, invalidValue(fmt.Sprintf("attribute %q given more than once (as %q and %q)", label+"."+sa.Name, prev, k))
		}
		seen[sa.Name] = k
		if sa.ReadOnly() {
			continue
		}
		x, err := NormalizeValue(sa, obj[k], label+"."+sa.Name)
		if err != nil {
			return nil, err
		}
		if x != nil {
			out[sa.Name] = x
		}
	}
	if isManager(a) {
		// A manager without a reference is no manager (Entra clears it by
		// sending {"value": ""}).
		if s, _ := out["value"].(string); s == "" && out["$ref"] == nil {
			return nil, nil
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func isManager(a *schema.Attr) bool {
	return a.SchemaID == schema.EnterpriseURN && a.Name == "manager"
}

// number returns the decimal text of a JSON number value.
func number(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return string(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	}
	return "", false
}

// dateTimeLayouts are the xsd:dateTime forms accepted: with a zone offset
// (RFC 3339) and without one. Fractional seconds are accepted by time.Parse
// after the seconds field even though the layouts do not spell them.
var dateTimeLayouts = []string{time.RFC3339, "2006-01-02T15:04:05"}

// ValidDateTime reports whether s is an xsd:dateTime as RFC 7643 section
// 2.3.5 requires.
func ValidDateTime(s string) bool {
	for _, l := range dateTimeLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}

// JSONType names the JSON type of a decoded value for error messages.
func JSONType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64, float32, int, int64, int32, uint64:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func invalidValue(detail string) error {
	return &serr.ScimError{ScimType: serr.ScimTypeInvalidValue, Detail: detail, Status: http.StatusBadRequest}
}

func invalidSyntax(detail string) error {
	return &serr.ScimError{ScimType: serr.ScimTypeInvalidSyntax, Detail: detail, Status: http.StatusBadRequest}
}
