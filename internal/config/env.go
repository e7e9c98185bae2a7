package config

import (
	"bytes"
	"fmt"
)

// expandEnv replaces ${VAR}, ${VAR:-default} and $$ in src (see Parse). It
// leaves full-line comments alone and reports every undefined or malformed
// reference with its line; those expand to "".
func expandEnv(src []byte, lookup func(string) (string, bool)) ([]byte, []Problem) {
	if !bytes.Contains(src, []byte("$")) {
		return src, nil
	}
	var (
		out      = make([]byte, 0, len(src))
		problems []Problem
	)
	for lineNo, rest := 1, src; len(rest) > 0; lineNo++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		nl := bytes.HasSuffix(line, []byte("\n"))
		if nl {
			line = line[:len(line)-1]
		}
		if trimmed := bytes.TrimLeft(line, " \t"); len(trimmed) > 0 && trimmed[0] == '#' {
			out = append(out, line...)
			if nl {
				out = append(out, '\n')
			}
			continue
		}
		for i := 0; i < len(line); i++ {
			ch := line[i]
			if ch != '$' || i+1 == len(line) {
				out = append(out, ch)
				continue
			}
			switch line[i+1] {
			case '$':
				out = append(out, '$')
				i++
			case '{':
				end := bytes.IndexByte(line[i+2:], '}')
				if end < 0 {
					problems = append(problems, Problem{Line: lineNo, Message: `unterminated "${": want ${VAR} or ${VAR:-default}, or $$ for a literal $`})
					i = len(line)
					continue
				}
				ref := string(line[i+2 : i+2+end])
				i += 2 + end
				name, def, hasDef := ref, "", false
				for j := 0; j+1 < len(ref); j++ {
					if ref[j] == ':' && ref[j+1] == '-' {
						name, def, hasDef = ref[:j], ref[j+2:], true
						break
					}
				}
				if !validVarName(name) {
					problems = append(problems, Problem{Line: lineNo, Message: fmt.Sprintf("invalid environment reference ${%s}: want ${VAR} or ${VAR:-default} with VAR made of letters, digits and _", ref)})
					continue
				}
				v, ok := lookup(name)
				switch {
				case hasDef && v == "":
					v = def
				case !ok:
					problems = append(problems, Problem{Line: lineNo, Message: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a fallback)", name, name)})
				}
				out = append(out, v...)
			default:
				out = append(out, ch)
			}
		}
		if nl {
			out = append(out, '\n')
		}
	}
	return out, problems
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
