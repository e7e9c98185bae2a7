package filter

import (
	"strings"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// IndexTerm is an equality condition on an indexed attribute.
type IndexTerm struct {
	Attr  string // canonical: "id", "externalId", "userName" or "displayName"
	Value string // the literal as written
}

// IndexTerms returns the top-level AND-ed conjuncts of e of the form
// `<attr> eq "<string>"` whose attribute is id or externalId, or userName
// (User) / displayName (Group), written in any case, with or without the
// core schema URN prefix. Conjuncts under or, not or a value filter are
// never returned, so every returned term is necessary for a match.
//
// The caller narrows candidates with one term through a database index
// and then runs the compiled filter's Match on each candidate, which
// checks everything else. id and externalId are caseExact; userName and
// displayName are not, so an index lookup on those must ignore case (or
// over-select) for the result to stay correct.
func IndexTerms(e Expr, rt *schema.ResourceType) []IndexTerm {
	if rt == nil || rt.Core == nil {
		return nil
	}
	var terms []IndexTerm
	var walk func(Expr)
	walk = func(e Expr) {
		switch x := e.(type) {
		case And:
			walk(x.L)
			walk(x.R)
		case *And:
			if x != nil {
				walk(x.L)
				walk(x.R)
			}
		case Compare:
			if t, ok := indexTerm(x, rt); ok {
				terms = append(terms, t)
			}
		case *Compare:
			if x != nil {
				if t, ok := indexTerm(*x, rt); ok {
					terms = append(terms, t)
				}
			}
		}
	}
	walk(e)
	return terms
}

func indexTerm(c Compare, rt *schema.ResourceType) (IndexTerm, bool) {
	v, ok := c.Value.(string)
	if !ok || !strings.EqualFold(string(c.Op), string(OpEq)) || c.Path.Sub != "" {
		return IndexTerm{}, false
	}
	if c.Path.URN != "" && !strings.EqualFold(c.Path.URN, rt.Core.ID) {
		return IndexTerm{}, false
	}
	for _, name := range indexedAttrs(rt) {
		if strings.EqualFold(c.Path.Attr, name) {
			return IndexTerm{Attr: name, Value: v}, true
		}
	}
	return IndexTerm{}, false
}

func indexedAttrs(rt *schema.ResourceType) []string {
	switch rt.Core.ID {
	case schema.UserURN:
		return []string{"id", "externalId", "userName"}
	case schema.GroupURN:
		return []string{"id", "externalId", "displayName"}
	}
	return []string{"id", "externalId"}
}
