package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// check parses data and walks it against Config's yaml tags, reporting every
// syntax error, unknown key, and value of the wrong type (not only the first,
// which is all the decoder's own strict mode reports). On success it returns
// the line of every key path; a nil map means an empty document.
func check(data []byte) (map[string]int, []Problem) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, []Problem{yamlProblem(err, "invalid YAML: ")}
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch len(docs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, []Problem{{Line: line(docs[1]), Message: fmt.Sprintf("%d YAML documents: want one", len(docs))}}
	}
	w := &walker{lines: map[string]int{}}
	w.walk(docs[0].Body, reflect.TypeFor[Config](), "")
	return w.lines, w.problems
}

type walker struct {
	lines    map[string]int
	problems []Problem
}

func (w *walker) add(path string, n ast.Node, format string, args ...any) {
	w.problems = append(w.problems, Problem{Path: path, Line: line(n), Message: fmt.Sprintf(format, args...)})
}

var (
	durationType    = reflect.TypeFor[Duration]()
	stdDurationType = reflect.TypeFor[time.Duration]()
	timeType        = reflect.TypeFor[time.Time]()
	sectionType     = reflect.TypeFor[Section]()
	anyMapType      = reflect.TypeFor[map[string]any]()
	unmarshalerType = reflect.TypeFor[yaml.InterfaceUnmarshaler]()
)

// walkAny records the line of every key under n (a value of no fixed type).
func (w *walker) walkAny(n ast.Node, path string) {
	n = unwrap(n)
	switch v := n.(type) {
	case ast.MapNode:
		for it := v.MapRange(); it.Next(); {
			p := join(path, keyName(it.Key()))
			w.lines[p] = line(it.Key())
			w.walkAny(it.Value(), p)
		}
	case *ast.SequenceNode:
		for i, e := range v.Values {
			p := path + "[" + strconv.Itoa(i) + "]"
			w.lines[p] = line(e)
			w.walkAny(e, p)
		}
	}
}

func (w *walker) walk(n ast.Node, t reflect.Type, path string) {
	n = unwrap(n)
	switch n.(type) {
	case nil, *ast.NullNode, *ast.AliasNode:
		// null keeps the default; aliases are resolved by the decoder.
		return
	}
	if path != "" {
		w.lines[path] = line(n)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType || t == timeType:
		w.leaf(n, t, path)
	case t == sectionType:
		// Checked later against its own type (DecodeSection); here only
		// its shape and the lines of its keys are recorded.
		if _, ok := n.(ast.MapNode); !ok {
			w.add(path, n, "want a mapping, got %s", describe(n))
			return
		}
		w.walk(n, anyMapType, path)
	case t.Kind() == reflect.Struct:
		m, ok := n.(ast.MapNode)
		if !ok {
			w.add(path, n, "want a mapping, got %s", describe(n))
			return
		}
		fields := fieldsOf(t)
		for it := m.MapRange(); it.Next(); {
			k := it.Key()
			if _, merge := k.(*ast.MergeKeyNode); merge {
				w.walk(it.Value(), t, path)
				continue
			}
			name := keyName(k)
			p := join(path, name)
			f, ok := fields[name]
			if !ok {
				msg := "unknown key"
				if s := suggest(name, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				w.add(p, k, "%s", msg)
				continue
			}
			w.walk(it.Value(), f.Type, p)
		}
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		m, ok := n.(ast.MapNode)
		if !ok {
			w.add(path, n, "want a mapping, got %s", describe(n))
			return
		}
		for it := m.MapRange(); it.Next(); {
			p := join(path, keyName(it.Key()))
			if t.Elem().Kind() == reflect.Interface {
				w.lines[p] = line(it.Key())
				w.walkAny(it.Value(), p)
				continue
			}
			w.walk(it.Value(), t.Elem(), p)
		}
	case t.Kind() == reflect.Slice:
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			w.add(path, n, "want a list, got %s", describe(n))
			return
		}
		for i, v := range s.Values {
			w.walk(v, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	default:
		w.leaf(n, t, path)
	}
}

// leaf checks that a scalar decodes into a value of type t.
func (w *walker) leaf(n ast.Node, t reflect.Type, path string) {
	want := wantOf(t)
	if _, ok := n.(ast.ScalarNode); !ok {
		w.add(path, n, "want %s, got %s", want, describe(n))
		return
	}
	if t == stdDurationType {
		// goccy decodes "10s" into a time.Duration, and would take a bare
		// number as nanoseconds: require the string.
		_, ok := n.(*ast.StringNode)
		if _, err := time.ParseDuration(n.GetToken().Value); !ok || err != nil {
			w.add(path, n, "want %s, got %s", wantOf(durationType), describe(n))
		}
		return
	}
	if t == timeType {
		s := n.GetToken().Value
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			w.add(path, n, "want %s, got %q", want, s)
		}
		return
	}
	err := yaml.NodeToValue(n, reflect.New(t).Interface())
	var oe *yaml.OverflowError
	switch {
	case err == nil:
	case errors.As(err, &oe):
		w.add(path, n, "%s is out of range for %s", n.GetToken().Value, want)
	case t == durationType || reflect.PointerTo(t).Implements(unmarshalerType):
		// The type's UnmarshalYAML message names what is wanted.
		var ye yaml.Error
		if errors.As(err, &ye) {
			w.add(path, n, "%s", ye.GetMessage())
		} else {
			w.add(path, n, "%s", err.Error())
		}
	default:
		w.add(path, n, "want %s, got %s", want, describe(n))
	}
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		default:
			return n
		}
	}
}

func keyName(k ast.MapKeyNode) string {
	switch v := unwrap(k).(type) {
	case *ast.StringNode:
		return v.Value
	case nil:
		return ""
	default:
		return v.GetToken().Value
	}
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case ast.MapNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	default:
		return n.GetToken().Value
	}
}

func wantOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration like "30s"`
	case t == timeType:
		return "an RFC 3339 timestamp like 2027-01-31T00:00:00Z"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// yamlProblem turns a goccy error into a Problem with its line and column.
func yamlProblem(err error, prefix string) Problem {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Problem{Message: prefix + ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line = tk.Position.Line
			p.Message += fmt.Sprintf(" (column %d)", tk.Position.Column)
		}
		return p
	}
	return Problem{Message: prefix + err.Error()}
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.StructField

// fieldsOf maps the yaml names of t's exported fields to the fields.
func fieldsOf(t reflect.Type) map[string]reflect.StructField {
	if v, ok := fieldCache.Load(t); ok {
		return v.(map[string]reflect.StructField)
	}
	m := map[string]reflect.StructField{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	fieldCache.Store(t, m)
	return m
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(key string, fields map[string]reflect.StructField) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3 // suggest only within an edit distance of 2
	for _, n := range names {
		if norm(n) == norm(key) {
			return n
		}
		if d := levenshtein(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
