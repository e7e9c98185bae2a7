package filter

import (
	"errors"
	"reflect"
	"testing"

	scimerrors "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// FuzzParse checks that no input makes Parse, ParsePath, Compile,
// CompileElement or Match panic, that errors have the documented types and
// positions, and that String() of a parsed filter parses back to the same
// tree. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	docs := []map[string]any{decode(f, bjensenJSON), decode(f, leaverJSON), decode(f, oddJSON), decode(f, groupJSON), nil}
	rts := []*schema.ResourceType{registry.User, registry.Group}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T, want *ParseError", s, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("Parse(%q) error position %d outside input", s, pe.Pos)
			}
		} else {
			out := e.String()
			// Canonical form may be longer than the input (spaces added
			// around operators); beyond MaxLength it is rightly refused.
			if len(out) <= MaxLength {
				again, err := Parse(out)
				if err != nil {
					t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, out, err)
				}
				if again.String() != out || !reflect.DeepEqual(again, e) {
					t.Fatalf("round trip changed %q:\n first %#v\nsecond %#v", s, e, again)
				}
			}
			for _, rt := range rts {
				flt, err := Compile(e, rt)
				if err != nil {
					checkFuzzErr(t, err)
					continue
				}
				for _, d := range docs {
					flt.Match(d)
				}
				IndexTerms(e, rt)
			}
		}

		pp, err := ParsePath(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("ParsePath(%q) error %v", s, err)
			}
			return
		}
		if _, err := ParsePath(pp.String()); err != nil && len(pp.String()) <= MaxLength {
			t.Fatalf("ParsePath(%q).String() = %q, which does not parse: %v", s, pp.String(), err)
		}
		if pp.Filter == nil {
			return
		}
		for _, rt := range rts {
			p, err := rt.ResolveParts(pp.Path.URN, pp.Path.Attr, pp.Path.Sub)
			if err != nil {
				continue
			}
			flt, err := CompileElement(pp.Filter, rt, p)
			if err != nil {
				checkFuzzErr(t, err)
				continue
			}
			for _, d := range docs {
				if elems, ok := d[p.Attr.Name].([]any); ok {
					for _, el := range elems {
						if m, ok := el.(map[string]any); ok {
							flt.Match(m)
						}
					}
				}
			}
		}
	})
}

func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	se, ok := err.(*scimerrors.ScimError)
	if !ok || se.ScimType != scimerrors.ScimTypeInvalidFilter || se.Status != 400 || se.Detail == "" {
		t.Fatalf("compile error %T %v, want *errors.ScimError invalidFilter 400", err, err)
	}
}
