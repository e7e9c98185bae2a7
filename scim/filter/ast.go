package filter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AttrPath is an attribute reference as written: optional schema URN
// prefix, attribute, optional sub-attribute. Names keep the spelling of the
// input; resolution against a schema is case-insensitive and happens in
// Compile.
type AttrPath struct{ URN, Attr, Sub string }

// String renders the path as it would be written in a filter:
// [URN ":"] Attr ["." Sub].
func (p AttrPath) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p AttrPath) write(b *strings.Builder) {
	if p.URN != "" {
		b.WriteString(p.URN)
		b.WriteByte(':')
	}
	b.WriteString(p.Attr)
	if p.Sub != "" {
		b.WriteByte('.')
		b.WriteString(p.Sub)
	}
}

// Op is a comparison operator in its lower-case canonical spelling.
type Op string

// Comparison operators of RFC 7644 section 3.4.2.2.
const (
	OpEq Op = "eq"
	OpNe Op = "ne"
	OpCo Op = "co"
	OpSw Op = "sw"
	OpEw Op = "ew"
	OpGt Op = "gt"
	OpGe Op = "ge"
	OpLt Op = "lt"
	OpLe Op = "le"
	OpPr Op = "pr"
)

// lookupOp returns the operator spelled word (case-insensitive).
func lookupOp(word string) (Op, bool) {
	if len(word) != 2 {
		return "", false
	}
	switch op := Op(strings.ToLower(word)); op {
	case OpEq, OpNe, OpCo, OpSw, OpEw, OpGt, OpGe, OpLt, OpLe, OpPr:
		return op, true
	}
	return "", false
}

// Expr is a parsed filter: one of And, Or, Not, Compare, ValuePath. Parse
// returns these as values, so trees compare with ==; Compile and String
// also accept pointers to them. String renders canonical filter syntax,
// which Parse reads back into an identical tree.
type Expr interface{ String() string }

// And is "L and R".
type And struct{ L, R Expr }

// Or is "L or R".
type Or struct{ L, R Expr }

// Not is "not (X)".
type Not struct{ X Expr }

// Compare is "Path Op Value". Value is a string, bool, nil (null) or
// json.Number; for Op "pr" it is nil.
type Compare struct {
	Path  AttrPath
	Op    Op
	Value any
}

// ValuePath is "Path[Filter]", e.g. emails[type eq "work" and value co "@x"]:
// Filter holds for one element of the multi-valued attribute Path, and its
// attribute names are sub-attributes of Path.
type ValuePath struct {
	Path   AttrPath
	Filter Expr
}

// Operator precedence for rendering; higher binds tighter.
const (
	precOr = iota + 1
	precAnd
	precAtom
)

func prec(e Expr) int {
	switch e.(type) {
	case *Or, Or:
		return precOr
	case *And, And:
		return precAnd
	}
	return precAtom
}

// writeOperand renders e, parenthesized when its precedence is below min.
func writeOperand(b *strings.Builder, e Expr, min int) {
	if prec(e) < min {
		b.WriteByte('(')
		writeExpr(b, e)
		b.WriteByte(')')
		return
	}
	writeExpr(b, e)
}

func writeExpr(b *strings.Builder, e Expr) {
	switch x := e.(type) {
	case *And:
		x.write(b)
	case And:
		x.write(b)
	case *Or:
		x.write(b)
	case Or:
		x.write(b)
	case *Not:
		x.write(b)
	case Not:
		x.write(b)
	case *Compare:
		x.write(b)
	case Compare:
		x.write(b)
	case *ValuePath:
		x.write(b)
	case ValuePath:
		x.write(b)
	case nil:
		b.WriteString("<nil>")
	default:
		b.WriteString(e.String())
	}
}

// Binary operators are left-associative, so a right operand of the same
// precedence is parenthesized to keep the tree shape on re-parse.

func (x And) write(b *strings.Builder) {
	writeOperand(b, x.L, precAnd)
	b.WriteString(" and ")
	writeOperand(b, x.R, precAnd+1)
}

func (x Or) write(b *strings.Builder) {
	writeOperand(b, x.L, precOr)
	b.WriteString(" or ")
	writeOperand(b, x.R, precOr+1)
}

func (x Not) write(b *strings.Builder) {
	b.WriteString("not (")
	writeExpr(b, x.X)
	b.WriteByte(')')
}

func (x Compare) write(b *strings.Builder) {
	x.Path.write(b)
	b.WriteByte(' ')
	b.WriteString(string(x.Op))
	if x.Op == OpPr {
		return
	}
	b.WriteByte(' ')
	writeLiteral(b, x.Value)
}

func (x ValuePath) write(b *strings.Builder) {
	x.Path.write(b)
	b.WriteByte('[')
	writeExpr(b, x.Filter)
	b.WriteByte(']')
}

func (x And) String() string       { return render(x) }
func (x Or) String() string        { return render(x) }
func (x Not) String() string       { return render(x) }
func (x Compare) String() string   { return render(x) }
func (x ValuePath) String() string { return render(x) }

func render(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

func writeLiteral(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeQuoted(b, v)
	case json.Number:
		b.WriteString(string(v))
	default:
		fmt.Fprintf(b, "%v", v)
	}
}

// writeQuoted writes s as a JSON string literal. Unlike encoding/json it
// leaves <, > and & alone, so filters stay readable.
func writeQuoted(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not reachable from Parse (it rejects invalid UTF-8);
			// render the replacement character for hand-built values.
			b.WriteString(`\ufffd`)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}
