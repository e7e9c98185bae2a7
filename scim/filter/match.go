package filter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// node is a compiled filter; m is a resource document or one element of a
// complex attribute.
type node interface {
	match(m map[string]any) bool
}

type andNode []node

func (n andNode) match(m map[string]any) bool {
	for _, x := range n {
		if !x.match(m) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) match(m map[string]any) bool {
	for _, x := range n {
		if x.match(m) {
			return true
		}
	}
	return false
}

type notNode struct{ x node }

func (n notNode) match(m map[string]any) bool { return !n.x.match(m) }

// loc locates an attribute in a document by canonical names.
type loc struct {
	ext  string // extension URN key, "" for top level
	attr string
	sub  string // "" when the whole attribute is meant
}

// get returns the attribute's value (not yet descended into sub).
func (l *loc) get(m map[string]any) any {
	if l.ext != "" {
		em, _ := m[l.ext].(map[string]any)
		return em[l.attr]
	}
	return m[l.attr]
}

type valuePathNode struct {
	loc   loc
	inner node
}

func (n *valuePathNode) match(m map[string]any) bool {
	switch v := n.loc.get(m).(type) {
	case map[string]any:
		return n.inner.match(v)
	case []any:
		for _, e := range v {
			if em, ok := e.(map[string]any); ok && n.inner.match(em) {
				return true
			}
		}
	}
	return false
}

type presentNode struct{ loc loc }

func (n *presentNode) match(m map[string]any) bool {
	v := n.loc.get(m)
	if n.loc.sub == "" {
		return present(v)
	}
	switch v := v.(type) {
	case map[string]any:
		return present(v[n.loc.sub])
	case []any:
		for _, e := range v {
			if em, ok := e.(map[string]any); ok && present(em[n.loc.sub]) {
				return true
			}
		}
	}
	return false
}

// present reports whether v is a value: not null, "", [] or {} (and, for
// an array, with at least one present element).
func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case map[string]any:
		return len(v) > 0
	case []any:
		for _, e := range v {
			if present(e) {
				return true
			}
		}
		return false
	}
	return true
}

type valueKind uint8

const (
	kindString valueKind = iota + 1
	kindBool
	kindNumber
	kindDateTime
)

// cmpNode compares an attribute with a literal prepared at compile time.
type cmpNode struct {
	loc       loc
	op        Op
	kind      valueKind
	caseExact bool
	ascii     bool   // str is ASCII
	str       string // lower-cased unless caseExact
	b         bool
	num       number
	time      instant
}

func (n *cmpNode) match(m map[string]any) bool {
	v := n.loc.get(m)
	seen := false
	if n.loc.sub == "" {
		switch v := v.(type) {
		case nil:
		case []any:
			for _, e := range v {
				if e != nil {
					seen = true
					if n.test(e) {
						return true
					}
				}
			}
		default:
			seen = true
			if n.test(v) {
				return true
			}
		}
	} else {
		switch v := v.(type) {
		case map[string]any:
			if e := v[n.loc.sub]; e != nil {
				seen = true
				if n.test(e) {
					return true
				}
			}
		case []any:
			for _, el := range v {
				em, ok := el.(map[string]any)
				if !ok {
					continue
				}
				if e := em[n.loc.sub]; e != nil {
					seen = true
					if n.test(e) {
						return true
					}
				}
			}
		}
	}
	return !seen && n.op == OpNe
}

// test compares one non-nil value. A value of the wrong type is unequal
// to the literal and unordered with it.
func (n *cmpNode) test(v any) bool {
	switch n.kind {
	case kindString:
		s, ok := v.(string)
		if !ok {
			return n.op == OpNe
		}
		return n.testString(s)
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			return n.op == OpNe
		}
		return (b == n.b) == (n.op == OpEq)
	case kindNumber:
		x, ok := toNumber(v)
		if !ok {
			return n.op == OpNe
		}
		return n.ordered(x.cmp(n.num))
	case kindDateTime:
		s, ok := v.(string)
		if !ok {
			return n.op == OpNe
		}
		t, ok := parseDateTime(s)
		if !ok {
			return n.op == OpNe
		}
		return n.ordered(t.cmp(n.time))
	}
	return false
}

// ordered applies an eq/ne/gt/ge/lt/le to the result of a three-way
// comparison.
func (n *cmpNode) ordered(c int) bool {
	switch n.op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	}
	return false
}

func (n *cmpNode) testString(s string) bool {
	lit := n.str
	if n.caseExact {
		switch n.op {
		case OpEq:
			return s == lit
		case OpNe:
			return s != lit
		case OpCo:
			return strings.Contains(s, lit)
		case OpSw:
			return strings.HasPrefix(s, lit)
		case OpEw:
			return strings.HasSuffix(s, lit)
		}
		return n.ordered(strings.Compare(s, lit))
	}
	switch n.op {
	case OpEq:
		return strings.EqualFold(s, lit)
	case OpNe:
		return !strings.EqualFold(s, lit)
	}
	if n.ascii && isASCII(s) {
		// Allocation-free: both sides are ASCII, so byte offsets line up.
		switch n.op {
		case OpCo:
			return asciiContainsFold(s, lit)
		case OpSw:
			return len(s) >= len(lit) && strings.EqualFold(s[:len(lit)], lit)
		case OpEw:
			return len(s) >= len(lit) && strings.EqualFold(s[len(s)-len(lit):], lit)
		}
		return n.ordered(asciiCompareFold(s, lit))
	}
	ls := strings.ToLower(s)
	switch n.op {
	case OpCo:
		return strings.Contains(ls, lit)
	case OpSw:
		return strings.HasPrefix(ls, lit)
	case OpEw:
		return strings.HasSuffix(ls, lit)
	}
	return n.ordered(strings.Compare(ls, lit))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiContainsFold reports whether s contains lower (already lower-case)
// ignoring ASCII case.
func asciiContainsFold(s, lower string) bool {
	if lower == "" {
		return true
	}
	first := lower[0]
	for i := 0; i+len(lower) <= len(s); i++ {
		if lowerASCII(s[i]) == first && strings.EqualFold(s[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
}

// asciiCompareFold compares s with lower (already lower-case) ignoring
// ASCII case.
func asciiCompareFold(s, lower string) int {
	for i := 0; i < len(s) && i < len(lower); i++ {
		a, b := lowerASCII(s[i]), lower[i]
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(s) < len(lower):
		return -1
	case len(s) > len(lower):
		return 1
	}
	return 0
}

// number is a numeric value, kept exact when it is an integer that fits
// int64.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func parseNumber(s string) (number, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{isInt: true, i: i, f: float64(i)}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return number{}, false
	}
	return number{f: f}, true
}

func toNumber(v any) (number, bool) {
	switch v := v.(type) {
	case json.Number:
		return parseNumber(string(v))
	case float64:
		return number{f: v}, !math.IsNaN(v)
	case int:
		return number{isInt: true, i: int64(v), f: float64(v)}, true
	case int64:
		return number{isInt: true, i: v, f: float64(v)}, true
	}
	return number{}, false
}

func (a number) cmp(b number) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	return 0
}

// instant is a point in time: seconds since the Unix epoch and
// nanoseconds.
type instant struct {
	sec  int64
	nsec int32
}

func (a instant) cmp(b instant) int {
	switch {
	case a.sec < b.sec:
		return -1
	case a.sec > b.sec:
		return 1
	case a.nsec < b.nsec:
		return -1
	case a.nsec > b.nsec:
		return 1
	}
	return 0
}

// parseDateTime parses an xsd:dateTime as SCIM uses it (RFC 7643 section
// 2.3.5): YYYY-MM-DDThh:mm:ss[.fraction][Z|(+|-)hh:mm], which covers RFC
// 3339 date-times. Without a zone the time is taken as UTC. It does not
// allocate.
func parseDateTime(s string) (instant, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10]|0x20 != 't' || s[13] != ':' || s[16] != ':' {
		return instant{}, false
	}
	year, ok1 := digitsN(s[0:4])
	month, ok2 := digitsN(s[5:7])
	day, ok3 := digitsN(s[8:10])
	hour, ok4 := digitsN(s[11:13])
	minute, ok5 := digitsN(s[14:16])
	second, ok6 := digitsN(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || second > 59 {
		return instant{}, false
	}
	rest := s[19:]
	var nsec int32
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := int32(100000000)
		for i < len(rest) && isDigit(rest[i]) {
			nsec += int32(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return instant{}, false
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case rest == "" || rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digitsN(rest[1:3])
		om, ok2 := digitsN(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return instant{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return instant{}, false
	}
	days := daysFromCivil(year, month, day)
	sec := days*86400 + int64(hour*3600+minute*60+second) - int64(offset)
	return instant{sec: sec, nsec: nsec}, true
}

func digitsN(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= -1 here, and -1/400 == 0 is right for era 0 only
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
