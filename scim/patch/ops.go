package patch

import (
	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// container returns the map that holds t's attribute: the document for core
// and common attributes, the extension object otherwise (created when
// create is set, nil when absent and not created).
func (a *applier) container(ext string, create bool) map[string]any {
	if ext == "" {
		return a.doc
	}
	m, ok := a.doc[ext].(map[string]any)
	if !ok {
		if !create {
			return nil
		}
		m = map[string]any{}
		a.doc[ext] = m
	}
	return m
}

// set applies add or replace (a.verb) of value to t.
func (a *applier) set(t target, value any) error {
	switch {
	case t.wholeExt != nil:
		return a.setExtension(t, value)
	case t.filter != nil:
		return a.setFiltered(t, value)
	case t.sub != nil:
		return a.setSub(t, value)
	case t.attr.MultiValued:
		return a.setMulti(t, value)
	}
	return a.setSingle(t, value)
}

// setExtension merges an object of extension attributes.
func (a *applier) setExtension(t target, value any) error {
	if value == nil {
		if a.verb == "replace" {
			delete(a.doc, t.ext)
		}
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return a.fail(serr.ScimTypeInvalidValue, "value for extension %q must be an object, got %s", t.ext, resource.JSONType(value))
	}
	for _, k := range sortedKeys(obj) {
		attr := t.wholeExt.Attr(k)
		if attr == nil {
			return a.fail(serr.ScimTypeInvalidValue, "unknown attribute %q", t.ext+":"+k)
		}
		if attr.ReadOnly() {
			continue
		}
		if err := a.set(target{ext: t.ext, attr: attr}, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// setSingle sets a single-valued attribute; a complex one is merged
// sub-attribute by sub-attribute (RFC 7644 section 3.5.2.3).
func (a *applier) setSingle(t target, value any) error {
	if t.attr.Type == schema.TypeComplex {
		if raw, ok := value.(map[string]any); ok {
			return a.setComplex(t, raw)
		}
	}
	v, err := resource.NormalizeSingle(t.attr, value, t.label())
	if err != nil {
		return a.wrap(err)
	}
	c := a.container(t.ext, v != nil)
	if v == nil {
		return a.unassign(t, c)
	}
	if t.attr.Type == schema.TypeComplex {
		// The Entra manager given as a bare id.
		return a.setComplex(t, v.(map[string]any))
	}
	if t.attr.Required && v == "" {
		return a.fail(serr.ScimTypeInvalidValue, "attribute %q is required and cannot be empty", t.label())
	}
	if err := a.checkImmutable(t.attr, t.label(), c[t.attr.Name], v); err != nil {
		return err
	}
	c[t.attr.Name] = v
	return nil
}

// setComplex merges the sub-attributes of raw into a single-valued complex
// attribute; a null sub-attribute unassigns it.
func (a *applier) setComplex(t target, raw map[string]any) error {
	c := a.container(t.ext, true)
	old, _ := c[t.attr.Name].(map[string]any)
	if isManager(t) {
		// A manager is a reference: a new id replaces the whole value, so
		// that the $ref of the previous manager does not survive.
		if nv, _ := raw["value"].(string); nv != "" {
			if ov, _ := valueOf(old); ov != nv {
				old = nil
			}
		}
	}
	m, err := a.merge(t.attr, t.label(), old, raw)
	if err != nil {
		return err
	}
	if isManager(t) {
		if v, _ := m["value"].(string); v == "" {
			delete(m, "value")
		}
		if m["value"] == nil && m["$ref"] == nil {
			m = nil
		}
	}
	if len(m) == 0 {
		delete(c, t.attr.Name)
		return nil
	}
	c[t.attr.Name] = m
	return nil
}

// merge returns a copy of old (which may be nil) with the sub-attributes of
// raw, a client object, written over it: values are canonicalised, null
// unassigns, readOnly sub-attributes are ignored, and immutable ones that
// have a value cannot change.
func (a *applier) merge(attr *schema.Attr, label string, old, raw map[string]any) (map[string]any, error) {
	// Validate the object as a whole first: unknown and duplicate
	// sub-attributes, types.
	if _, err := resource.NormalizeSingle(attr, raw, label); err != nil {
		return nil, a.wrap(err)
	}
	out := make(map[string]any, len(old)+len(raw))
	for k, v := range old {
		out[k] = v
	}
	for _, k := range sortedKeys(raw) {
		sa := attr.SubAttr(k)
		if sa == nil || sa.ReadOnly() {
			continue
		}
		v, err := resource.NormalizeValue(sa, raw[k], label+"."+sa.Name)
		if err != nil {
			return nil, a.wrap(err)
		}
		if err := a.checkImmutable(sa, label+"."+sa.Name, old[sa.Name], v); err != nil {
			return nil, err
		}
		if v == nil {
			delete(out, sa.Name)
		} else {
			out[sa.Name] = v
		}
	}
	return out, nil
}

// setSub sets a sub-attribute of a single-valued complex attribute
// ("name.givenName"); null unassigns it.
func (a *applier) setSub(t target, value any) error {
	v, err := resource.NormalizeValue(t.sub, value, t.label())
	if err != nil {
		return a.wrap(err)
	}
	c := a.container(t.ext, v != nil)
	if c == nil {
		return nil
	}
	m, _ := c[t.attr.Name].(map[string]any)
	if v == nil {
		if m == nil {
			return nil
		}
		if err := a.checkImmutable(t.sub, t.label(), m[t.sub.Name], nil); err != nil {
			return err
		}
		m = cloneMap(m)
		delete(m, t.sub.Name)
		if len(m) == 0 || isManager(t) && m["value"] == nil {
			delete(c, t.attr.Name)
		} else {
			c[t.attr.Name] = m
		}
		return nil
	}
	if m == nil {
		c[t.attr.Name] = map[string]any{t.sub.Name: v}
		return nil
	}
	if err := a.checkImmutable(t.sub, t.label(), m[t.sub.Name], v); err != nil {
		return err
	}
	m = cloneMap(m)
	m[t.sub.Name] = v
	c[t.attr.Name] = m
	return nil
}

// setMulti adds values to (add) or replaces (replace) a whole multi-valued
// attribute.
func (a *applier) setMulti(t target, value any) error {
	list, ok := value.([]any)
	if !ok && value != nil {
		list = []any{value} // a single value where an array is expected
	}
	v, err := resource.NormalizeValue(t.attr, list, t.label())
	if err != nil {
		return a.wrap(err)
	}
	c := a.container(t.ext, v != nil)
	if a.verb == "replace" {
		if v == nil {
			return a.unassign(t, c)
		}
		c[t.attr.Name] = v
		return nil
	}
	if v == nil {
		return nil
	}
	cur, _ := c[t.attr.Name].([]any)
	cur = append([]any(nil), cur...)
	var primary []int
	for _, e := range v.([]any) {
		if indexOf(t.attr, cur, e) >= 0 {
			continue
		}
		cur = append(cur, e)
		if resource.IsPrimary(e) {
			primary = append(primary, len(cur)-1)
		}
	}
	if err := a.settlePrimary(t, cur, primary); err != nil {
		return err
	}
	if len(cur) > 0 {
		c[t.attr.Name] = cur
	}
	return nil
}

// setFiltered applies add or replace to the values a filter selects: the
// sub-attribute after the filter, or the object value merged into each.
func (a *applier) setFiltered(t target, value any) error {
	var sub any
	var obj map[string]any // the client's object, merged by a.merge
	if t.sub != nil {
		v, err := resource.NormalizeValue(t.sub, value, t.label())
		if err != nil {
			return a.wrap(err)
		}
		sub = v
	} else {
		var ok bool
		if obj, ok = value.(map[string]any); !ok {
			return a.fail(serr.ScimTypeInvalidValue, "attribute %q: expected complex (object), got %s", t.label(), resource.JSONType(value))
		}
		if _, err := a.merge(t.attr, t.attr.Name, nil, obj); err != nil {
			return err
		}
	}
	c := a.container(t.ext, true)
	cur, _ := c[t.attr.Name].([]any)
	cur = append([]any(nil), cur...)
	var matched []int
	for i, e := range cur {
		if m, ok := e.(map[string]any); ok && t.filter.Match(m) {
			matched = append(matched, i)
		}
	}
	if len(matched) == 0 {
		if a.verb == "replace" {
			return a.fail(serr.ScimTypeNoTarget, "no value of %q matches the filter", t.attr.Name)
		}
		elem, ok := elementFrom(t.expr, t.attr)
		if !ok {
			return a.fail(serr.ScimTypeNoTarget, "no value of %q matches the filter, and the filter does not describe a value to create (only sub eq literal, joined by and, does)", t.attr.Name)
		}
		if t.sub != nil {
			if sub == nil {
				return nil
			}
			elem[t.sub.Name] = sub
		} else {
			m, err := a.merge(t.attr, t.attr.Name, nil, obj)
			if err != nil {
				return err
			}
			for k, v := range m {
				elem[k] = v
			}
		}
		v, err := resource.NormalizeSingle(t.attr, elem, t.attr.Name)
		if err != nil {
			return a.wrap(err)
		}
		if v == nil {
			return nil
		}
		cur = append(cur, v)
		matched = []int{len(cur) - 1}
	} else {
		for _, i := range matched {
			m := cur[i].(map[string]any)
			var err error
			switch {
			case t.sub != nil && sub == nil:
				if err = a.checkImmutable(t.sub, t.label(), m[t.sub.Name], nil); err == nil {
					m = cloneMap(m)
					delete(m, t.sub.Name)
				}
			case t.sub != nil:
				err = a.checkImmutable(t.sub, t.label(), m[t.sub.Name], sub)
				if err == nil {
					m = cloneMap(m)
					m[t.sub.Name] = sub
				}
			default:
				m, err = a.merge(t.attr, t.attr.Name, m, obj)
			}
			if err != nil {
				return err
			}
			cur[i] = m
		}
		cur = dropEmpty(cur)
	}
	var primary []int
	if t.sub == nil && isTrue(obj["primary"]) || t.sub != nil && t.sub.Name == "primary" && sub == true {
		primary = matched
	}
	if err := a.settlePrimary(t, cur, primary); err != nil {
		return err
	}
	if len(cur) == 0 {
		delete(c, t.attr.Name)
	} else {
		c[t.attr.Name] = cur
	}
	return nil
}

// remove applies a remove operation.
func (a *applier) remove(t target, value any, hasValue bool) error {
	if t.wholeExt != nil {
		delete(a.doc, t.ext)
		return nil
	}
	c := a.container(t.ext, false)
	switch {
	case t.filter != nil:
		return a.removeFiltered(t, c)
	case t.sub != nil:
		if c == nil {
			return nil
		}
		return a.setSub(t, nil)
	case t.attr.MultiValued && hasValue && value != nil:
		return a.removeValues(t, c, value)
	}
	return a.unassign(t, c)
}

// unassign removes a whole attribute, refusing required ones.
func (a *applier) unassign(t target, c map[string]any) error {
	if t.attr.Required {
		return a.fail(serr.ScimTypeMutability, "attribute %q is required and cannot be removed", t.label())
	}
	if c == nil {
		return nil
	}
	if old, ok := c[t.attr.Name]; ok {
		if err := a.checkImmutable(t.attr, t.label(), old, nil); err != nil {
			return err
		}
		delete(c, t.attr.Name)
	}
	return nil
}

// removeValues removes the listed values from a multi-valued attribute
// (Microsoft Entra ID's member removal). Values not present are ignored.
func (a *applier) removeValues(t target, c map[string]any, value any) error {
	list, ok := value.([]any)
	if !ok {
		list = []any{value}
	}
	v, err := resource.NormalizeValue(t.attr, list, t.label())
	if err != nil {
		return a.wrap(err)
	}
	if c == nil || v == nil {
		return nil
	}
	cur, _ := c[t.attr.Name].([]any)
	out := make([]any, 0, len(cur))
	for _, e := range cur {
		if indexOfRemoval(t.attr, v.([]any), e) < 0 {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		delete(c, t.attr.Name)
	} else if len(out) != len(cur) {
		c[t.attr.Name] = out
	}
	return nil
}

// removeFiltered removes the values a filter selects, or the sub-attribute
// after the filter from each of them.
func (a *applier) removeFiltered(t target, c map[string]any) error {
	var cur []any
	if c != nil {
		cur, _ = c[t.attr.Name].([]any)
	}
	out := make([]any, 0, len(cur))
	matched := 0
	for _, e := range cur {
		m, ok := e.(map[string]any)
		if !ok || !t.filter.Match(m) {
			out = append(out, e)
			continue
		}
		matched++
		if t.sub == nil {
			continue
		}
		if err := a.checkImmutable(t.sub, t.label(), m[t.sub.Name], nil); err != nil {
			return err
		}
		m = cloneMap(m)
		delete(m, t.sub.Name)
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	if matched == 0 {
		return nil // idempotent: see the package doc
	}
	if len(out) == 0 {
		delete(c, t.attr.Name)
	} else {
		c[t.attr.Name] = out
	}
	return nil
}

// checkImmutable refuses to change an immutable attribute that has a value
// (RFC 7643 section 2.2). Setting the same value again is allowed.
func (a *applier) checkImmutable(attr *schema.Attr, label string, old, upd any) error {
	if attr.Mutability != "immutable" || old == nil || resource.Equal(attr, old, upd) {
		return nil
	}
	return a.fail(serr.ScimTypeMutability, "attribute %q is immutable and already has a value", label)
}

// settlePrimary makes the values at chosen the only primary ones of cur
// (RFC 7643 section 2.4: at most one value may be primary, and PATCH
// setting one clears the others).
func (a *applier) settlePrimary(t target, cur []any, chosen []int) error {
	if len(chosen) == 0 {
		return nil
	}
	if len(chosen) > 1 {
		return a.fail(serr.ScimTypeInvalidValue, "the filter selects %d values of %q and at most one may be primary", len(chosen), t.attr.Name)
	}
	for i, e := range cur {
		if i == chosen[0] {
			continue
		}
		if m, ok := e.(map[string]any); ok && m["primary"] == true {
			m = cloneMap(m)
			m["primary"] = false
			cur[i] = m
		}
	}
	return nil
}

// indexOf finds e among cur: by "value" for attributes whose values are
// references identified by it (Group members), by equality otherwise.
func indexOf(attr *schema.Attr, cur []any, e any) int {
	for i, x := range cur {
		if sameValue(attr, x, e) {
			return i
		}
	}
	return -1
}

func sameValue(attr *schema.Attr, x, e any) bool {
	if byValue(attr) {
		xv, ok1 := valueOf(x)
		ev, ok2 := valueOf(e)
		if ok1 && ok2 {
			return xv == ev
		}
	}
	return resource.EqualSingle(attr, x, e)
}

// valueOf returns the "value" sub-attribute of a complex value as a string.
func valueOf(x any) (string, bool) {
	m, _ := x.(map[string]any)
	s, ok := m["value"].(string)
	return s, ok
}

// indexOfRemoval finds an element of list that designates e for removal:
// for Group members the same "value"; otherwise an element whose every
// sub-attribute equals e's.
func indexOfRemoval(attr *schema.Attr, list []any, e any) int {
	em, _ := e.(map[string]any)
	for i, x := range list {
		if byValue(attr) {
			xv, ok1 := valueOf(x)
			ev, ok2 := valueOf(e)
			if ok1 && ok2 {
				if xv == ev {
					return i
				}
				continue
			}
		}
		if xm, ok := x.(map[string]any); ok && em != nil {
			if subsetOf(attr, xm, em) {
				return i
			}
			continue
		}
		if resource.EqualSingle(attr, x, e) {
			return i
		}
	}
	return -1
}

// subsetOf reports whether every sub-attribute given in want has the same
// value in have.
func subsetOf(attr *schema.Attr, want, have map[string]any) bool {
	for k, v := range want {
		sa := attr.SubAttr(k)
		if sa == nil || !resource.Equal(sa, v, have[k]) {
			return false
		}
	}
	return true
}

// byValue reports whether values of attr are identified by their "value"
// sub-attribute alone: it is immutable, as for Group members.
func byValue(attr *schema.Attr) bool {
	v := attr.SubAttr("value")
	return attr.MultiValued && v != nil && v.Mutability == "immutable"
}

func isManager(t target) bool {
	return t.ext == schema.EnterpriseURN && t.attr.Name == "manager"
}

// isTrue reports whether a client value means boolean true (the spellings
// resource.NormalizeSingle accepts).
func isTrue(v any) bool {
	return v == true || v == "True" || v == "true"
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func dropEmpty(list []any) []any {
	out := list[:0]
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && len(m) == 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}
