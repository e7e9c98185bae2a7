package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Section is a part of the configuration whose type is chosen by another
// key (a connector's `config:` by its `type:`). The file check records its
// keys' lines and that it is a mapping; DecodeSection checks and decodes it
// once the type is known, reporting problems the same way Load does.
type Section struct {
	raw map[string]any
}

// UnmarshalYAML keeps the section as a generic mapping.
func (s *Section) UnmarshalYAML(unmarshal func(any) error) error {
	return unmarshal(&s.raw)
}

// MarshalYAML writes the section back as it was read.
func (s Section) MarshalYAML() (any, error) { return s.raw, nil }

// IsZero reports whether the section was absent or empty.
func (s Section) IsZero() bool { return len(s.raw) == 0 }

// DecodeSection checks sec strictly against into's type (a pointer to a
// struct with yaml tags: unknown keys, wrong types and bad values are all
// reported, not only the first) and decodes it onto into, which keeps its
// defaults for absent keys. path is the section's key path in the file
// (e.g. "connectors[0].config"); problems carry full paths and the lines
// the file gave them. It returns nil or an *Error.
func (c *Config) DecodeSection(path string, sec Section, into any) error {
	if sec.IsZero() {
		return nil
	}
	data, err := yaml.Marshal(sec.raw)
	if err != nil {
		return &Error{File: c.file, Problems: []Problem{{Path: path, Line: c.Line(path), Message: err.Error()}}}
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil || len(file.Docs) == 0 || file.Docs[0].Body == nil {
		return &Error{File: c.file, Problems: []Problem{{Path: path, Line: c.Line(path), Message: "want a mapping"}}}
	}
	w := &walker{lines: map[string]int{}}
	w.walk(file.Docs[0].Body, reflect.TypeOf(into).Elem(), "")
	var problems []Problem
	for _, p := range w.problems {
		full := path
		if p.Path != "" {
			full = path + "." + p.Path
		}
		problems = append(problems, Problem{Path: full, Line: c.Line(full), Message: p.Message})
	}
	// The section was re-encoded with sorted keys: report in file order.
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
	if len(problems) == 0 {
		if err := yaml.Unmarshal(data, into); err != nil {
			msg := err.Error()
			var ye yaml.Error
			if errors.As(err, &ye) {
				msg = ye.GetMessage()
			}
			problems = append(problems, Problem{Path: path, Line: c.Line(path), Message: strings.TrimSpace(msg)})
		}
	}
	if len(problems) > 0 {
		return &Error{File: c.file, Problems: problems}
	}
	return nil
}

// NewSection returns a section holding m, as if read from a file (for
// configurations built in code).
func NewSection(m map[string]any) Section { return Section{raw: m} }
