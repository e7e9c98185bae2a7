package filter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// Filter is a filter bound to a resource type (Compile) or to the elements
// of one complex attribute (CompileElement). It is immutable and safe for
// concurrent use.
type Filter struct {
	root node
	expr Expr
}

// String renders the filter it was compiled from in canonical syntax.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return render(f.expr)
}

// Match reports whether doc satisfies the filter. doc is a resource (for
// Compile) or one element of the complex attribute (for CompileElement),
// decoded by encoding/json with UseNumber and holding canonical attribute
// names; extension attributes sit under their URN key. Values of an
// unexpected type never match (and make "ne" true). A nil *Filter matches
// everything.
//
// Semantics (RFC 7644 section 3.4.2.2): strings compare case-insensitively
// unless the attribute is caseExact; dateTime values compare as instants;
// numbers numerically; a multi-valued attribute matches if any of its
// values does; "ne" also holds when the attribute is absent; "pr" requires
// a value that is not null, "", [] or {}; "eq null" holds when the
// attribute is not present and "ne null" when it is. Within a value filter
// all conditions hold for the same element.
func (f *Filter) Match(doc map[string]any) bool {
	if f == nil {
		return true
	}
	return f.root.match(doc)
}

// Compile binds e to rt. Every attribute must resolve through
// rt.ResolveParts (the core schema URN prefix may also qualify id,
// externalId and meta); attributes returned "never" (password) cannot be
// filtered on. Operators must suit the attribute type: gt/ge/lt/le are
// rejected on boolean, binary and complex attributes; co/sw/ew only apply to
// string, reference and binary; literals must fit the type (userName eq
// true is an error) and dateTime literals must parse as RFC 3339 / xsd
// dateTime. A comparison other than pr on a complex attribute without
// sub-attribute (emails co "@x") applies to its "value" sub-attribute.
//
// Every error is a *errors.ScimError with scimType invalidFilter, status
// 400 and a Detail naming the attribute and the problem.
func Compile(e Expr, rt *schema.ResourceType) (*Filter, error) {
	if rt == nil {
		return nil, invalid("no resource type to filter")
	}
	c := &compiler{rt: rt}
	n, err := c.compile(e, 0)
	if err != nil {
		return nil, err
	}
	return &Filter{root: n, expr: e}, nil
}

// CompileElement compiles a filter that is evaluated against ONE element of
// the complex (normally multi-valued) attribute attr, as in the inside of
// members[value eq "x"] or emails[type eq "work"]: attribute names in e are
// sub-attributes of attr and carry neither a URN nor a further
// sub-attribute. Type rules and errors are those of Compile.
func CompileElement(e Expr, rt *schema.ResourceType, attr schema.Path) (*Filter, error) {
	if rt == nil {
		return nil, invalid("no resource type to filter")
	}
	if attr.Attr == nil {
		return nil, invalid("no attribute for value filter")
	}
	if attr.Attr.Returned == "never" {
		return nil, invalid(fmt.Sprintf("attribute %q cannot be used in a filter", attr.String()))
	}
	if attr.Sub != nil || attr.Attr.Type != schema.TypeComplex {
		return nil, invalid(fmt.Sprintf("value filter on %q: attribute is not complex", attr.String()))
	}
	c := &compiler{rt: rt, elem: attr.Attr, elemName: attr.String()}
	n, err := c.compile(e, 0)
	if err != nil {
		return nil, err
	}
	return &Filter{root: n, expr: e}, nil
}

// CompileString parses s and compiles it for rt. Parse errors become a
// *errors.ScimError (invalidFilter, 400) whose Detail is the *ParseError
// text; compile errors are returned as from Compile.
func CompileString(s string, rt *schema.ResourceType) (*Filter, error) {
	e, err := Parse(s)
	if err != nil {
		return nil, invalid(err.Error())
	}
	return Compile(e, rt)
}

func invalid(detail string) *errors.ScimError {
	return &errors.ScimError{ScimType: errors.ScimTypeInvalidFilter, Detail: detail, Status: http.StatusBadRequest}
}

// maxCompileDepth bounds recursion over hand-built trees; Parse output is
// far shallower.
const maxCompileDepth = 10000

type compiler struct {
	rt       *schema.ResourceType
	elem     *schema.Attr // set for element filters
	elemName string
}

func (c *compiler) compile(e Expr, depth int) (node, error) {
	if depth > maxCompileDepth {
		return nil, invalid("filter nested too deeply")
	}
	depth++
	switch x := e.(type) {
	case And:
		return c.compileChain(x, depth)
	case Or:
		return c.compileChain(x, depth)
	case Not:
		n, err := c.compile(x.X, depth)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case Compare:
		return c.compare(x)
	case ValuePath:
		return c.valuePath(x, depth)
	case *And:
		if x != nil {
			return c.compile(*x, depth)
		}
	case *Or:
		if x != nil {
			return c.compile(*x, depth)
		}
	case *Not:
		if x != nil {
			return c.compile(*x, depth)
		}
	case *Compare:
		if x != nil {
			return c.compare(*x)
		}
	case *ValuePath:
		if x != nil {
			return c.valuePath(*x, depth)
		}
	case nil:
	default:
		return nil, invalid(fmt.Sprintf("unsupported filter node %T", e))
	}
	return nil, invalid("empty filter expression")
}

// compileChain flattens a left-deep chain of And (or Or) nodes into one
// n-ary node.
func (c *compiler) compileChain(e Expr, depth int) (node, error) {
	var operands []Expr
	var collect func(Expr)
	isAnd := prec(e) == precAnd
	collect = func(x Expr) {
		if isAnd {
			switch a := x.(type) {
			case And:
				collect(a.L)
				collect(a.R)
				return
			case *And:
				if a != nil {
					collect(a.L)
					collect(a.R)
					return
				}
			}
		} else {
			switch o := x.(type) {
			case Or:
				collect(o.L)
				collect(o.R)
				return
			case *Or:
				if o != nil {
					collect(o.L)
					collect(o.R)
					return
				}
			}
		}
		operands = append(operands, x)
	}
	collect(e)
	nodes := make([]node, len(operands))
	for i, x := range operands {
		n, err := c.compile(x, depth)
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	if isAnd {
		return andNode(nodes), nil
	}
	return orNode(nodes), nil
}

// resolved is where a compiled leaf finds its values.
type resolved struct {
	loc    loc
	target *schema.Attr // the attribute compared (sub-attribute if any)
	elem   string       // name of the complex attribute, for element filters
}

// name renders the canonical attribute name for messages; it is only
// built when an error needs it.
func (r resolved) name() string {
	if r.elem != "" {
		return r.elem + "." + r.loc.attr
	}
	s := r.loc.attr
	if r.loc.sub != "" {
		s += "." + r.loc.sub
	}
	if r.loc.ext != "" {
		s = r.loc.ext + ":" + s
	}
	return s
}

// resolve binds an attribute path as written.
func (c *compiler) resolve(ap AttrPath) (resolved, error) {
	if c.elem != nil {
		if ap.URN != "" || ap.Sub != "" {
			return resolved{}, invalid(fmt.Sprintf("in a value filter on %q, %q must name a sub-attribute of %q", c.elemName, ap.String(), c.elemName))
		}
		sub := c.elem.SubAttr(ap.Attr)
		name := c.elemName + "." + ap.Attr
		if sub == nil {
			return resolved{}, invalid(fmt.Sprintf("cannot filter on %q: unknown sub-attribute %q of %q", name, ap.Attr, c.elemName))
		}
		r := resolved{loc: loc{attr: sub.Name}, target: sub, elem: c.elemName}
		if sub.Returned == "never" {
			return resolved{}, invalid(fmt.Sprintf("attribute %q cannot be used in a filter", r.name()))
		}
		return r, nil
	}
	urn := ap.URN
	if urn != "" && strings.EqualFold(urn, c.rt.Core.ID) && c.rt.Common != nil && c.rt.Common.Attr(ap.Attr) != nil {
		urn = "" // urn:...:core:2.0:User:id names the common attribute id
	}
	p, err := c.rt.ResolveParts(urn, ap.Attr, ap.Sub)
	if err != nil {
		return resolved{}, invalid(fmt.Sprintf("cannot filter on %q: %v", ap.String(), err))
	}
	if p.Attr.Returned == "never" || (p.Sub != nil && p.Sub.Returned == "never") {
		return resolved{}, invalid(fmt.Sprintf("attribute %q cannot be used in a filter", p.String()))
	}
	r := resolved{loc: loc{ext: p.Extension, attr: p.Attr.Name}, target: p.Target()}
	if p.Sub != nil {
		r.loc.sub = p.Sub.Name
	}
	return r, nil
}

func (c *compiler) valuePath(vp ValuePath, depth int) (node, error) {
	if c.elem != nil {
		return nil, invalid(fmt.Sprintf("a value filter on %q cannot contain another value filter (%q)", c.elemName, vp.Path.String()))
	}
	r, err := c.resolve(vp.Path)
	if err != nil {
		return nil, err
	}
	if r.loc.sub != "" || r.target.Type != schema.TypeComplex {
		return nil, invalid(fmt.Sprintf("value filter on %q: attribute is not complex", r.name()))
	}
	ec := &compiler{rt: c.rt, elem: r.target, elemName: r.name()}
	inner, err := ec.compile(vp.Filter, depth)
	if err != nil {
		return nil, err
	}
	return &valuePathNode{loc: r.loc, inner: inner}, nil
}

func (c *compiler) compare(x Compare) (node, error) {
	r, err := c.resolve(x.Path)
	if err != nil {
		return nil, err
	}
	op, ok := lookupOp(string(x.Op))
	if !ok {
		return nil, invalid(fmt.Sprintf("unknown comparison operator %q", string(x.Op)))
	}
	if op == OpPr {
		return &presentNode{loc: r.loc}, nil
	}
	if x.Value == nil {
		switch op {
		case OpEq:
			return notNode{&presentNode{loc: r.loc}}, nil
		case OpNe:
			return &presentNode{loc: r.loc}, nil
		}
		return nil, invalid(fmt.Sprintf("operator %q cannot compare attribute %q with null", op, r.name()))
	}
	t := r.target
	if t.Type == schema.TypeComplex {
		if isOrdering(op) {
			return nil, invalid(fmt.Sprintf("operator %q is not supported on complex attribute %q; name a sub-attribute", op, r.name()))
		}
		v := t.SubAttr("value")
		if v == nil || r.loc.sub != "" {
			return nil, invalid(fmt.Sprintf("complex attribute %q has no \"value\" sub-attribute; name a sub-attribute to compare", r.name()))
		}
		r.loc.sub, r.target = v.Name, v
		t = v
	}
	n := &cmpNode{loc: r.loc, op: op}
	badLit := func(want string) error {
		return invalid(fmt.Sprintf("attribute %q is %s; cannot compare it with %s", r.name(), want, describeLiteral(x.Value)))
	}
	switch t.Type {
	case schema.TypeBoolean:
		if op != OpEq && op != OpNe {
			return nil, invalid(fmt.Sprintf("operator %q is not supported on boolean attribute %q", op, r.name()))
		}
		b, ok := x.Value.(bool)
		if !ok {
			return nil, badLit("boolean")
		}
		n.kind, n.b = kindBool, b
	case schema.TypeString, schema.TypeReference, schema.TypeBinary:
		if t.Type == schema.TypeBinary && isOrdering(op) {
			return nil, invalid(fmt.Sprintf("operator %q is not supported on binary attribute %q", op, r.name()))
		}
		s, ok := x.Value.(string)
		if !ok {
			return nil, badLit("a " + t.Type)
		}
		n.kind = kindString
		n.caseExact = t.CaseExact || t.Type == schema.TypeBinary
		if n.caseExact {
			n.str = s
		} else {
			n.str = strings.ToLower(s)
		}
		n.ascii = isASCII(n.str)
	case schema.TypeDateTime:
		if isSubstring(op) {
			return nil, invalid(fmt.Sprintf("operator %q is not supported on dateTime attribute %q", op, r.name()))
		}
		s, ok := x.Value.(string)
		if !ok {
			return nil, badLit("a dateTime")
		}
		ts, ok := parseDateTime(s)
		if !ok {
			return nil, invalid(fmt.Sprintf("invalid dateTime %s for attribute %q: want RFC 3339 such as \"2025-01-31T09:00:00Z\"", describeLiteral(s), r.name()))
		}
		n.kind, n.time = kindDateTime, ts
	case schema.TypeInteger, schema.TypeDecimal:
		if isSubstring(op) {
			return nil, invalid(fmt.Sprintf("operator %q is not supported on %s attribute %q", op, t.Type, r.name()))
		}
		num, ok := x.Value.(json.Number)
		if !ok {
			return nil, badLit("a number")
		}
		lit, ok := parseNumber(string(num))
		if !ok || (t.Type == schema.TypeInteger && !lit.isInt) {
			return nil, invalid(fmt.Sprintf("invalid %s %s for attribute %q", t.Type, describeLiteral(num), r.name()))
		}
		n.kind, n.num = kindNumber, lit
	default:
		return nil, invalid(fmt.Sprintf("attribute %q of type %q cannot be compared", r.name(), t.Type))
	}
	return n, nil
}

func isOrdering(op Op) bool { return op == OpGt || op == OpGe || op == OpLt || op == OpLe }

func isSubstring(op Op) bool { return op == OpCo || op == OpSw || op == OpEw }

func describeLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case string:
		var b strings.Builder
		writeQuoted(&b, shorten(v))
		return "string " + b.String()
	case json.Number:
		return "number " + shorten(string(v))
	}
	return fmt.Sprintf("a value of type %T", v)
}
