package patch

import (
	"strings"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/filter"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// target is a resolved PATCH path.
type target struct {
	wholeExt *schema.Schema // the path is a bare extension URN
	ext      string         // extension URN key, "" for core and common attributes
	attr     *schema.Attr
	sub      *schema.Attr // dotted sub-attribute, or the one after "]."
	filter   *filter.Filter
	expr     filter.Expr // the (boolean-coerced) value filter, for element creation
	skip     bool        // a readOnly attribute named in a value without path
}

// label names the target for value errors ("emails.value",
// "urn:...:User:manager").
func (t target) label() string {
	if t.wholeExt != nil {
		return t.wholeExt.ID
	}
	s := t.attr.Name
	if t.sub != nil {
		s += "." + t.sub.Name
	}
	if t.ext != "" {
		s = t.ext + ":" + s
	}
	return s
}

// resolve parses and resolves path. inValue is true for the keys of a value
// without path: there unknown attributes are invalidValue (they are part of
// the value) and readOnly ones are skipped; for a real path they are
// invalidPath and mutability.
func (a *applier) resolve(path string, inValue bool) (target, error) {
	unknown := serr.ScimTypeInvalidPath
	if inValue {
		unknown = serr.ScimTypeInvalidValue
	}
	if ext := a.rt.Extension(path); ext != nil {
		return target{wholeExt: ext, ext: ext.ID}, nil
	}
	pp, err := filter.ParsePath(path)
	if err != nil {
		if inValue {
			return target{}, a.fail(unknown, "attribute name %q: %v", path, err)
		}
		return target{}, a.fail(unknown, "%v", err)
	}
	urn := pp.Path.URN
	if urn != "" && strings.EqualFold(urn, a.rt.Core.ID) && a.rt.Common.Attr(pp.Path.Attr) != nil {
		urn = "" // "urn:...:core:2.0:User:externalId" names the common attribute
	}
	p, err := a.rt.ResolveParts(urn, pp.Path.Attr, pp.Path.Sub)
	if err != nil {
		return target{}, a.fail(unknown, "%v", err)
	}
	t := target{ext: p.Extension, attr: p.Attr, sub: p.Sub}
	if pp.Filter != nil {
		if !p.Attr.MultiValued || p.Attr.Type != schema.TypeComplex {
			return target{}, a.fail(serr.ScimTypeInvalidPath, "attribute %q is not multi-valued and complex, so it takes no value filter", p.String())
		}
		t.expr = coerceBooleans(pp.Filter, p.Attr)
		f, err := filter.CompileElement(t.expr, a.rt, schema.Path{Extension: p.Extension, Attr: p.Attr})
		if err != nil {
			return target{}, a.wrap(err)
		}
		t.filter = f
		if pp.SubAttr != "" {
			t.sub = p.Attr.SubAttr(pp.SubAttr)
			if t.sub == nil {
				return target{}, a.fail(unknown, "unknown sub-attribute %q of %q", pp.SubAttr, p.String())
			}
		}
	}
	if t.sub != nil && t.attr.MultiValued && t.filter == nil {
		return target{}, a.fail(serr.ScimTypeInvalidPath,
			"attribute %q is multi-valued: select its values with a filter, e.g. %s[type eq \"work\"].%s", t.attr.Name, t.attr.Name, t.sub.Name)
	}
	if t.ext == "" && t.attr.Name == "schemas" {
		if inValue {
			t.skip = true
			return t, nil
		}
		return target{}, a.fail(serr.ScimTypeMutability, `attribute "schemas" is maintained by the server from the extensions present`)
	}
	if t.attr.ReadOnly() || t.sub != nil && t.sub.ReadOnly() {
		if inValue {
			t.skip = true
			return t, nil
		}
		return target{}, a.fail(serr.ScimTypeMutability, "attribute %q is readOnly", t.label())
	}
	return t, nil
}

// coerceBooleans returns e with string literals "True"/"False"/"true"/
// "false" compared against boolean sub-attributes of attr turned into
// booleans, as Microsoft Entra ID writes roles[primary eq "True"]. e is not
// modified.
func coerceBooleans(e filter.Expr, attr *schema.Attr) filter.Expr {
	switch x := e.(type) {
	case filter.And:
		return filter.And{L: coerceBooleans(x.L, attr), R: coerceBooleans(x.R, attr)}
	case *filter.And:
		return filter.And{L: coerceBooleans(x.L, attr), R: coerceBooleans(x.R, attr)}
	case filter.Or:
		return filter.Or{L: coerceBooleans(x.L, attr), R: coerceBooleans(x.R, attr)}
	case *filter.Or:
		return filter.Or{L: coerceBooleans(x.L, attr), R: coerceBooleans(x.R, attr)}
	case filter.Not:
		return filter.Not{X: coerceBooleans(x.X, attr)}
	case *filter.Not:
		return filter.Not{X: coerceBooleans(x.X, attr)}
	case filter.Compare:
		return coerceCompare(x, attr)
	case *filter.Compare:
		return coerceCompare(*x, attr)
	}
	return e
}

func coerceCompare(c filter.Compare, attr *schema.Attr) filter.Compare {
	s, ok := c.Value.(string)
	if !ok || c.Path.URN != "" || c.Path.Sub != "" {
		return c
	}
	sub := attr.SubAttr(c.Path.Attr)
	if sub == nil || sub.Type != schema.TypeBoolean {
		return c
	}
	switch s {
	case "True", "true":
		c.Value = true
	case "False", "false":
		c.Value = false
	}
	return c
}

// elementFrom builds the element a value filter describes when it is a
// conjunction of "sub eq literal" comparisons on sub-attributes of attr;
// ok is false for any other filter (or contradictory equalities).
func elementFrom(e filter.Expr, attr *schema.Attr) (elem map[string]any, ok bool) {
	elem = map[string]any{}
	var walk func(filter.Expr) bool
	walk = func(e filter.Expr) bool {
		switch x := e.(type) {
		case filter.And:
			return walk(x.L) && walk(x.R)
		case *filter.And:
			return walk(x.L) && walk(x.R)
		case filter.Compare:
			return addEq(elem, x, attr)
		case *filter.Compare:
			return addEq(elem, *x, attr)
		}
		return false
	}
	if !walk(e) {
		return nil, false
	}
	return elem, true
}

func addEq(elem map[string]any, c filter.Compare, attr *schema.Attr) bool {
	if c.Op != filter.OpEq || c.Value == nil || c.Path.URN != "" || c.Path.Sub != "" {
		return false
	}
	sub := attr.SubAttr(c.Path.Attr)
	if sub == nil || sub.ReadOnly() {
		return false
	}
	if prev, dup := elem[sub.Name]; dup && prev != c.Value {
		return false
	}
	elem[sub.Name] = c.Value
	return true
}
