package filter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Input bounds. They keep parsing, compiling and matching linear and the
// recursion shallow whatever a client sends.
const (
	// MaxLength is the longest filter or path Parse and ParsePath accept,
	// in bytes.
	MaxLength = 4096
	// MaxDepth is the deepest nesting of "(", "not (" and "[" accepted.
	MaxDepth = 32
)

// ParseError reports malformed filter or PATCH path syntax. Pos is the
// 0-based byte offset in the input where the problem was found.
type ParseError struct {
	Pos int
	Msg string

	path bool // from ParsePath: the message says "path", not "filter"
}

// Error reads like `invalid filter at position 12: expected comparison
// operator, found "foo"`.
func (e *ParseError) Error() string {
	what := "filter"
	if e.path {
		what = "path"
	}
	return "invalid " + what + " at position " + strconv.Itoa(e.Pos) + ": " + e.Msg
}

// Parse parses an RFC 7644 section 3.4.2.2 filter.
//
// Keywords, operators and true/false/null are case-insensitive; attribute
// names are kept as written. Precedence is not > and > or; and/or associate
// to the left. Accepted beyond the RFC grammar:
//
//   - whitespace is any run of spaces, tabs, CR or LF; it may be omitted
//     next to parentheses, brackets and string literals;
//   - "$ref" and other names starting with "$" as attribute names;
//   - `attr[filter].sub op value` (rejected by elimity-com/scim#150) is
//     read as `attr[filter and sub op value]`: both conditions must hold for
//     the same element, so `emails[type eq "work"].value eq "x"` parses to
//     ValuePath{emails, And{type eq "work", value eq "x"}}, and String
//     renders it in that bracketed form.
//
// URN-prefixed paths are split at the last colon, so URNs may contain dots
// ("...:enterprise:2.0:User:manager.value" is URN ".../2.0:User", attribute
// "manager", sub-attribute "value").
//
// A value filter cannot contain another value filter. Input longer than
// MaxLength bytes, nested deeper than MaxDepth, or not valid UTF-8 is
// rejected. Every error is a *ParseError.
func Parse(s string) (e Expr, err error) {
	p, err := newParser(s, false)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	e = p.parseOr()
	if t := p.peek(); t.kind != tEOF {
		p.fail(t.pos, `expected "and", "or" or end of filter, found %s`, p.describe(t))
	}
	return e, nil
}

// PatchPath is a PATCH operation "path" (RFC 7644 section 3.5.2): an
// attribute path, or a value path with an optional ".subAttr" after the
// filter, e.g. `emails[type eq "work"].value`.
type PatchPath struct {
	Path    AttrPath
	Filter  Expr   // nil if the path has no [filter]
	SubAttr string // the name after "].", "" if none
}

// String renders the path in canonical syntax.
func (pp PatchPath) String() string {
	var b strings.Builder
	pp.Path.write(&b)
	if pp.Filter != nil {
		b.WriteByte('[')
		writeExpr(&b, pp.Filter)
		b.WriteByte(']')
		if pp.SubAttr != "" {
			b.WriteByte('.')
			b.WriteString(pp.SubAttr)
		}
	}
	return b.String()
}

// ParsePath parses a PATCH path: attrPath, or attrPath "[" valFilter "]"
// optionally followed by "." and a sub-attribute name. The value filter uses
// the Parse grammar without nested value filters. An attribute with a
// sub-attribute cannot carry a filter ("name.givenName[...]" is an error).
//
// A path naming a whole extension, such as
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", splits at
// the last colon like any other URN-prefixed path (URN "...:2.0", Attr
// "User"); callers that support such paths should compare the full input
// with their extension URNs first.
//
// Errors are *ParseError whose message says "invalid path".
func ParsePath(s string) (pp PatchPath, err error) {
	p, err := newParser(s, true)
	if err != nil {
		return pp, err
	}
	defer p.recover(&err)
	t := p.next()
	if t.kind != tWord {
		p.fail(t.pos, "expected attribute path, found %s", p.describe(t))
	}
	pp.Path = p.attrPath(t)
	if t := p.peek(); t.kind == tLBrack {
		if pp.Path.Sub != "" {
			p.fail(t.pos, "a value filter cannot follow sub-attribute %q", pp.Path.Sub)
		}
		p.next()
		pp.Filter = p.valueFilter(t.pos)
		if sub, ok := p.subAfterBracket(); ok {
			pp.SubAttr = sub
		}
	}
	if t := p.peek(); t.kind != tEOF {
		p.fail(t.pos, "expected end of path, found %s", p.describe(t))
	}
	return pp, nil
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tLParen
	tRParen
	tLBrack
	tRBrack
)

type token struct {
	kind tokKind
	pos  int
	raw  string // the token as written
	str  string // decoded value of a tString
}

type parser struct {
	s      string
	pos    int // lexer offset: end of the last token lexed
	tok    token
	have   bool // tok holds a peeked token
	depth  int
	inElem bool // inside [...]
	path   bool // parsing a PATCH path
}

func newParser(s string, path bool) (*parser, error) {
	if len(s) > MaxLength {
		return nil, &ParseError{Pos: MaxLength, Msg: fmt.Sprintf("longer than %d bytes", MaxLength), path: path}
	}
	if !utf8.ValidString(s) {
		for i, r := range s {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
					return nil, &ParseError{Pos: i, Msg: "invalid UTF-8", path: path}
				}
			}
		}
	}
	return &parser{s: s, path: path}, nil
}

func (p *parser) fail(pos int, format string, args ...any) {
	panic(&ParseError{Pos: pos, Msg: fmt.Sprintf(format, args...), path: p.path})
}

func (p *parser) recover(err *error) {
	if r := recover(); r != nil {
		pe, ok := r.(*ParseError)
		if !ok {
			panic(r)
		}
		*err = pe
	}
}

func (p *parser) enter(pos int) {
	p.depth++
	if p.depth > MaxDepth {
		p.fail(pos, "nested deeper than %d levels", MaxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		if p.path {
			return "end of path"
		}
		return "end of filter"
	case tString:
		return "string " + shorten(t.raw)
	}
	return strconv.Quote(shorten(t.raw))
}

func shorten(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

func (p *parser) peek() token {
	if !p.have {
		p.tok = p.lex()
		p.have = true
	}
	return p.tok
}

func (p *parser) next() token {
	t := p.peek()
	p.have = false
	return t
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isWordByte reports whether c may appear in an attribute path token.
func isWordByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '$'
}

func (p *parser) lex() token {
	s := p.s
	for p.pos < len(s) && isSpace(s[p.pos]) {
		p.pos++
	}
	start := p.pos
	if start == len(s) {
		return token{kind: tEOF, pos: start}
	}
	c := s[start]
	switch {
	case c == '(' || c == ')' || c == '[' || c == ']':
		p.pos++
		k := tLParen
		switch c {
		case ')':
			k = tRParen
		case '[':
			k = tLBrack
		case ']':
			k = tRBrack
		}
		return token{kind: k, pos: start, raw: s[start:p.pos]}
	case c == '"':
		str := p.lexString()
		return token{kind: tString, pos: start, raw: s[start:p.pos], str: str}
	case c == '-' || isDigit(c):
		p.lexNumber()
		return token{kind: tNumber, pos: start, raw: s[start:p.pos]}
	case isLetter(c) || c == '$' || c == '_':
		for p.pos < len(s) && isWordByte(s[p.pos]) {
			p.pos++
		}
		return token{kind: tWord, pos: start, raw: s[start:p.pos]}
	}
	r, _ := utf8.DecodeRuneInString(s[start:])
	p.fail(start, "unexpected character %q", r)
	panic("unreachable")
}

// lexNumber consumes a JSON number.
func (p *parser) lexNumber() {
	s, start := p.s, p.pos
	digits := func() bool {
		i := p.pos
		for p.pos < len(s) && isDigit(s[p.pos]) {
			p.pos++
		}
		return p.pos > i
	}
	bad := func() {
		end := p.pos
		for end < len(s) && (isWordByte(s[end]) || s[end] == '+') {
			end++
		}
		p.fail(start, "invalid number %q", shorten(s[start:end]))
	}
	if s[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(s) && s[p.pos] == '0' {
		p.pos++
	} else if !digits() {
		bad()
	}
	if p.pos < len(s) && s[p.pos] == '.' {
		p.pos++
		if !digits() {
			bad()
		}
	}
	if p.pos < len(s) && s[p.pos]|0x20 == 'e' {
		p.pos++
		if p.pos < len(s) && (s[p.pos] == '+' || s[p.pos] == '-') {
			p.pos++
		}
		if !digits() {
			bad()
		}
	}
	if p.pos < len(s) && isWordByte(s[p.pos]) {
		bad()
	}
}

// lexString consumes a JSON string literal and returns its value.
func (p *parser) lexString() string {
	s, start := p.s, p.pos
	p.pos++ // opening quote
	var b []byte
	plain := p.pos
	for {
		if p.pos >= len(s) {
			p.fail(start, "unterminated string")
		}
		c := s[p.pos]
		switch {
		case c == '"':
			p.pos++
			if b == nil {
				return s[plain : p.pos-1]
			}
			return string(append(b, s[plain:p.pos-1]...))
		case c < 0x20:
			p.fail(p.pos, "control character %q in string", rune(c))
		case c == '\\':
			if b == nil {
				b = make([]byte, 0, len(s)-start)
			}
			b = append(b, s[plain:p.pos]...)
			b = p.lexEscape(b)
			plain = p.pos
		default:
			p.pos++
		}
	}
}

// lexEscape decodes the escape sequence at p.pos onto b.
func (p *parser) lexEscape(b []byte) []byte {
	s, at := p.s, p.pos
	if at+1 >= len(s) {
		p.fail(at, "unterminated string")
	}
	p.pos += 2
	switch c := s[at+1]; c {
	case '"', '\\', '/':
		return append(b, c)
	case 'b':
		return append(b, '\b')
	case 'f':
		return append(b, '\f')
	case 'n':
		return append(b, '\n')
	case 'r':
		return append(b, '\r')
	case 't':
		return append(b, '\t')
	case 'u':
		r := p.hex4(at)
		if utf16.IsSurrogate(r) {
			r2 := rune(-1)
			if p.pos+1 < len(s) && s[p.pos] == '\\' && s[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				r2 = p.hex4(save)
			}
			d := utf16.DecodeRune(r, r2)
			if d == utf8.RuneError {
				p.fail(at, "invalid surrogate pair in \\u escape")
			}
			r = d
		}
		return utf8.AppendRune(b, r)
	}
	r, _ := utf8.DecodeRuneInString(s[at+1:])
	p.fail(at, "invalid escape \\%c in string", r)
	panic("unreachable")
}

// hex4 reads the four hex digits of a \u escape that starts at at.
func (p *parser) hex4(at int) rune {
	s := p.s
	if p.pos+4 > len(s) {
		p.fail(at, "invalid \\u escape: want four hex digits")
	}
	var r rune
	for _, c := range []byte(s[p.pos : p.pos+4]) {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			d = c | 0x20 - 'a' + 10
		default:
			p.fail(at, "invalid \\u escape: want four hex digits")
		}
		r = r<<4 | rune(d)
	}
	p.pos += 4
	return r
}

// parseOr parses: and-expr *("or" and-expr).
func (p *parser) parseOr() Expr {
	l := p.parseAnd()
	for p.keyword("or") {
		l = Or{L: l, R: p.parseAnd()}
	}
	return l
}

// parseAnd parses: atom *("and" atom).
func (p *parser) parseAnd() Expr {
	l := p.parseAtom()
	for p.keyword("and") {
		l = And{L: l, R: p.parseAtom()}
	}
	return l
}

// keyword consumes the next token if it is the word kw (case-insensitive).
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == tWord && strings.EqualFold(t.raw, kw) {
		p.next()
		return true
	}
	return false
}

// parseAtom parses "(" filter ")", "not" "(" filter ")", a value path or an
// attribute expression.
func (p *parser) parseAtom() Expr {
	t := p.next()
	switch t.kind {
	case tLParen:
		p.enter(t.pos)
		e := p.parseOr()
		p.expect(tRParen, `")"`)
		p.leave()
		return e
	case tWord:
		if strings.EqualFold(t.raw, "not") {
			switch n := p.peek(); {
			case n.kind == tLParen:
				p.next()
				p.enter(t.pos)
				e := p.parseOr()
				p.expect(tRParen, `")"`)
				p.leave()
				return Not{X: e}
			case n.kind == tLBrack:
				// "not[...]": a value filter on an attribute called "not".
			case n.kind == tWord:
				// "not eq ...": an attribute called "not".
				if _, ok := lookupOp(n.raw); !ok {
					p.fail(n.pos, `expected "(" after "not", found %s`, p.describe(n))
				}
			default:
				p.fail(n.pos, `expected "(" after "not", found %s`, p.describe(n))
			}
		}
		path := p.attrPath(t)
		if b := p.peek(); b.kind == tLBrack {
			if p.inElem {
				p.fail(b.pos, "a value filter cannot contain another value filter")
			}
			if path.Sub != "" {
				p.fail(b.pos, "a value filter cannot follow sub-attribute %q", path.Sub)
			}
			p.next()
			f := p.valueFilter(b.pos)
			if sub, ok := p.subAfterBracket(); ok {
				if prec(f) == precOr {
					// String renders And{Or, ...} as "(...) and ...": make
					// sure that extra level still fits.
					p.enter(b.pos)
					p.enter(b.pos)
					p.leave()
					p.leave()
				}
				f = And{L: f, R: p.comparison(AttrPath{Attr: sub})}
			}
			return ValuePath{Path: path, Filter: f}
		}
		return p.comparison(path)
	}
	p.fail(t.pos, `expected attribute path, "(" or "not", found %s`, p.describe(t))
	panic("unreachable")
}

// valueFilter parses the inside of [...] after the "[" at pos, and the "]".
func (p *parser) valueFilter(pos int) Expr {
	p.enter(pos)
	p.inElem = true
	f := p.parseOr()
	p.expect(tRBrack, `"]"`)
	p.inElem = false
	p.leave()
	return f
}

// subAfterBracket reads a ".name" directly after "]".
func (p *parser) subAfterBracket() (string, bool) {
	if p.have || p.pos >= len(p.s) || p.s[p.pos] != '.' {
		return "", false
	}
	start := p.pos + 1
	end := start
	for end < len(p.s) && isWordByte(p.s[end]) {
		end++
	}
	name := p.s[start:end]
	if name == "" {
		p.fail(start, `expected sub-attribute name after "]."`)
	}
	if !isAttrName(name) {
		p.fail(start, "invalid sub-attribute name %q", shorten(name))
	}
	p.pos = end
	return name, true
}

// comparison parses the operator and value after path.
func (p *parser) comparison(path AttrPath) Compare {
	t := p.next()
	op, ok := Op(""), false
	if t.kind == tWord {
		op, ok = lookupOp(t.raw)
	}
	if !ok {
		p.fail(t.pos, "expected comparison operator, found %s", p.describe(t))
	}
	if op == OpPr {
		return Compare{Path: path, Op: op}
	}
	return Compare{Path: path, Op: op, Value: p.value()}
}

func (p *parser) value() any {
	t := p.next()
	switch t.kind {
	case tString:
		return t.str
	case tNumber:
		return json.Number(t.raw)
	case tWord:
		switch strings.ToLower(t.raw) {
		case "true":
			return true
		case "false":
			return false
		case "null":
			return nil
		}
	}
	p.fail(t.pos, "expected value (string, number, true, false or null), found %s", p.describe(t))
	panic("unreachable")
}

func (p *parser) expect(k tokKind, what string) {
	if t := p.next(); t.kind != k {
		p.fail(t.pos, "expected %s, found %s", what, p.describe(t))
	}
}

// attrPath validates a word token as [URN ":"] ATTRNAME ["." ATTRNAME].
func (p *parser) attrPath(t token) AttrPath {
	w := t.raw
	var path AttrPath
	rest, restPos := w, t.pos
	if len(w) >= 4 && strings.EqualFold(w[:4], "urn:") {
		i := strings.LastIndexByte(w, ':')
		path.URN, rest, restPos = w[:i], w[i+1:], t.pos+i+1
		if strings.Count(path.URN, ":") < 2 || strings.Contains(path.URN, "::") {
			p.fail(t.pos, "invalid schema URN %q", shorten(path.URN))
		}
		if rest == "" {
			p.fail(restPos, "expected attribute name after schema URN")
		}
	} else if i := strings.IndexByte(w, ':'); i >= 0 {
		p.fail(t.pos+i, `invalid attribute path %q: ":" is only allowed after a "urn:" schema prefix`, shorten(w))
	}
	attr, sub, hasSub := strings.Cut(rest, ".")
	if !isAttrName(attr) {
		p.fail(restPos, "invalid attribute name %q", shorten(attr))
	}
	path.Attr = attr
	if hasSub {
		subPos := restPos + len(attr) + 1
		if i := strings.IndexByte(sub, '.'); i >= 0 {
			p.fail(subPos+i, "attribute path %q has more than one sub-attribute level", shorten(w))
		}
		if !isAttrName(sub) {
			p.fail(subPos, "invalid sub-attribute name %q", shorten(sub))
		}
		path.Sub = sub
	}
	return path
}

// isAttrName reports whether s is an RFC 7644 ATTRNAME (ALPHA *(ALPHA /
// DIGIT / "-" / "_")), also allowing a leading "$" as in "$ref".
func isAttrName(s string) bool {
	if s == "" || !(isLetter(s[0]) || (s[0] == '$' && len(s) > 1 && isLetter(s[1]))) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(isLetter(c) || isDigit(c) || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
