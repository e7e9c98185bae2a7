package resource

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// Clone deep-copies a document: maps and slices are copied, scalars
// (strings, booleans, json.Number) are shared because they are immutable.
// A nil map clones to nil.
func Clone(doc map[string]any) map[string]any {
	if doc == nil {
		return nil
	}
	return CloneValue(doc).(map[string]any)
}

// CloneValue deep-copies one decoded JSON value.
func CloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = CloneValue(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = CloneValue(e)
		}
		return s
	case []map[string]any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = CloneValue(e)
		}
		return s
	case []string:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = e
		}
		return s
	}
	return v
}

// Project applies the "attributes" and "excludedAttributes" parameters
// (RFC 7644 sections 3.4.2.5 and 3.9) to a stored document for output and
// returns a new map; doc is not modified.
//
//   - Attributes whose "returned" is "never" (password) are always removed;
//     "request" ones appear only when named in attributes.
//   - "id" (returned "always", RFC 7643 section 3.1) and "schemas" (REQUIRED
//     in every representation, RFC 7643 section 3) are always kept. meta and
//     externalId are returned "default": attributes=userName leaves them out
//     and excludedAttributes=meta removes meta, as in RFC 7644 section 3.9's
//     example.
//   - With attributes, only the named attributes are returned. A
//     sub-attribute path ("name.givenName", "emails.value") keeps just those
//     sub-attributes (of every value, for a multi-valued attribute); a
//     URN-qualified path names an extension attribute; a bare extension URN
//     selects the whole extension and the bare core URN every core
//     attribute.
//   - excludedAttributes is then applied and cannot remove id or schemas.
//   - Names are case-insensitive. Names that do not resolve in rt are ignored,
//     as RFC 7644 gives no error for them and a client asking for an
//     attribute jmlgate does not have should simply not get it. A name that
//     is not syntactically an attribute path (RFC 7644 section 3.10:
//     ALPHA *(ALPHA / DIGIT / "-" / "_"), at most one ".sub", "$ref" as a
//     sub-attribute) is a 400 invalidValue error naming it.
//
// "schemas" in the result lists the core URN and the extensions that still
// have attributes after projection. Top-level keys doc holds that rt does not
// define are never returned.
func Project(rt *schema.ResourceType, doc map[string]any, attributes, excluded []string) (map[string]any, error) {
	incl, err := parseSelection(rt, attributes, "attributes")
	if err != nil {
		return nil, err
	}
	excl, err := parseSelection(rt, excluded, "excludedAttributes")
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	// The core schema and the common attributes share the top level.
	top := append(append([]*schema.Attr{}, rt.Common.Attrs...), rt.Core.Attrs...)
	project(top, "", doc, out, incl, excl)
	for _, ext := range rt.Extensions {
		src, ok := doc[ext.ID].(map[string]any)
		if !ok {
			continue
		}
		obj := map[string]any{}
		project(ext.Attrs, ext.ID, src, obj, incl, excl)
		if len(obj) > 0 {
			out[ext.ID] = obj
		}
	}
	schemas := []any{rt.Core.ID}
	for _, ext := range rt.Extensions {
		if _, ok := out[ext.ID]; ok {
			schemas = append(schemas, ext.ID)
		}
	}
	out["schemas"] = schemas
	return out, nil
}

// project copies the attrs of one schema (key ext, "" for the top level) from
// src into dst according to the selections.
func project(attrs []*schema.Attr, ext string, src, dst map[string]any, incl, excl *selection) {
	for _, a := range attrs {
		if a.Name == "schemas" || a.Returned == "never" {
			continue
		}
		v, ok := src[a.Name]
		if !ok || v == nil {
			continue
		}
		always := a.Returned == "always"
		subs, selected := incl.lookup(ext, a.Name)
		switch {
		case always:
			subs = nil
		case incl.active:
			if !selected {
				continue
			}
		default:
			if a.Returned == "request" {
				continue
			}
		}
		var drop map[string]bool
		if !always {
			xsubs, xsel := excl.lookup(ext, a.Name)
			if xsel && xsubs == nil {
				continue
			}
			drop = xsubs
		}
		if x := projectValue(a, v, subs, drop); x != nil {
			dst[a.Name] = x
		}
	}
}

// projectValue returns a copy of v keeping the sub-attributes in keep (all
// when keep is nil) minus those in drop and those never returned. Complex
// values left empty disappear.
func projectValue(a *schema.Attr, v any, keep, drop map[string]bool) any {
	if a.Type != schema.TypeComplex {
		return CloneValue(v)
	}
	one := func(e any) any {
		m, ok := e.(map[string]any)
		if !ok {
			return CloneValue(e)
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			sa := a.SubAttr(k)
			if sa == nil || sa.Returned == "never" {
				continue
			}
			always := sa.Returned == "always"
			if !always && keep != nil && !keep[sa.Name] {
				continue
			}
			if !always && keep == nil && sa.Returned == "request" {
				continue
			}
			if !always && drop[sa.Name] {
				continue
			}
			out[k] = CloneValue(x)
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	if !a.MultiValued {
		return one(v)
	}
	list, ok := v.([]any)
	if !ok {
		return CloneValue(v)
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		if x := one(e); x != nil {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// selection is a parsed attributes or excludedAttributes list: per schema key
// ("" for core and common, else the extension URN) and canonical attribute
// name, nil for the whole attribute or the set of sub-attribute names.
type selection struct {
	active bool
	attrs  map[string]map[string]map[string]bool
}

func (s *selection) lookup(ext, attr string) (subs map[string]bool, ok bool) {
	subs, ok = s.attrs[ext][attr]
	return subs, ok
}

func (s *selection) add(ext, attr, sub string) {
	m := s.attrs[ext]
	if m == nil {
		m = map[string]map[string]bool{}
		s.attrs[ext] = m
	}
	subs, seen := m[attr]
	switch {
	case sub == "":
		m[attr] = nil // the whole attribute wins over any sub-attribute
	case seen && subs == nil:
		// already whole
	default:
		if subs == nil {
			subs = map[string]bool{}
			m[attr] = subs
		}
		subs[sub] = true
	}
}

func parseSelection(rt *schema.ResourceType, names []string, param string) (*selection, error) {
	s := &selection{attrs: map[string]map[string]map[string]bool{}}
	for _, raw := range names {
		name := strings.TrimSpace(raw)
		if name == "" {
			continue
		}
		s.active = true
		if ext := rt.Extension(name); ext != nil {
			for _, a := range ext.Attrs {
				s.add(ext.ID, a.Name, "")
			}
			continue
		}
		if strings.EqualFold(name, rt.Core.ID) {
			for _, a := range rt.Core.Attrs {
				s.add("", a.Name, "")
			}
			continue
		}
		urn, attr, sub := schema.SplitURN(name)
		if !validAttrName(attr) || strings.Contains(sub, ".") || strings.HasSuffix(name, ".") || sub != "" && sub != "$ref" && !validAttrName(sub) ||
			urn != "" && len(urn) <= len("urn:") {
			return nil, invalidValue(fmt.Sprintf("%s: %q is not a valid attribute name", param, name))
		}
		p, err := rt.ResolveParts(urn, attr, sub)
		if err != nil {
			continue // unknown attributes are ignored, see Project
		}
		subName := ""
		if p.Sub != nil {
			subName = p.Sub.Name
		}
		s.add(p.Extension, p.Attr.Name, subName)
	}
	return s, nil
}

// validAttrName reports whether s is an RFC 7643 ATTRNAME.
func validAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '_'):
		default:
			return false
		}
	}
	return true
}

// Equal reports whether two canonical values of attribute a are equal:
// strings compare case-insensitively unless a (or the sub-attribute) is
// caseExact, complex values compare sub-attribute by sub-attribute, and
// multi-valued values compare element by element in order.
func Equal(a *schema.Attr, x, y any) bool {
	if a.MultiValued {
		xs, ok1 := x.([]any)
		ys, ok2 := y.([]any)
		if !ok1 || !ok2 {
			return equalScalar(a, x, y)
		}
		if len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if !EqualSingle(a, xs[i], ys[i]) {
				return false
			}
		}
		return true
	}
	return EqualSingle(a, x, y)
}

// EqualSingle is Equal for one value of a (one element when a is
// multi-valued).
func EqualSingle(a *schema.Attr, x, y any) bool {
	if a.Type != schema.TypeComplex {
		return equalScalar(a, x, y)
	}
	xm, ok1 := x.(map[string]any)
	ym, ok2 := y.(map[string]any)
	if !ok1 || !ok2 {
		return equalScalar(a, x, y)
	}
	if len(xm) != len(ym) {
		return false
	}
	for k, xv := range xm {
		yv, ok := ym[k]
		if !ok {
			return false
		}
		sa := a.SubAttr(k)
		if sa == nil {
			if !equalScalar(a, xv, yv) {
				return false
			}
			continue
		}
		if !Equal(sa, xv, yv) {
			return false
		}
	}
	return true
}

func equalScalar(a *schema.Attr, x, y any) bool {
	xs, ok1 := x.(string)
	ys, ok2 := y.(string)
	if ok1 && ok2 {
		if a.CaseExact {
			return xs == ys
		}
		return strings.EqualFold(xs, ys)
	}
	xn, ok1 := x.(json.Number)
	yn, ok2 := y.(json.Number)
	if ok1 && ok2 {
		return xn == yn
	}
	return jsonEqual(x, y)
}

// jsonEqual compares values of any other shape structurally.
func jsonEqual(x, y any) bool {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for k, e := range xv {
			f, ok := yv[k]
			if !ok || !jsonEqual(e, f) {
				return false
			}
		}
		return true
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return false
		}
		for i := range xv {
			if !jsonEqual(xv[i], yv[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(x, y)
}
