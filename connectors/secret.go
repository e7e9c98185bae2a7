package connectors

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// Secret is a configuration value that must not leak (a token, a password,
// a DSN): fmt with every verb, slog, JSON, YAML and text marshalling all show
// "[redacted]" ("" when it is empty). string(s) is the value, for the one
// place that sends it.
type Secret string

const redacted = "[redacted]"

func (s Secret) show() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String returns "[redacted]".
func (s Secret) String() string { return s.show() }

// GoString returns "[redacted]" quoted, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.show()) }

// Format prints "[redacted]" whatever the verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprintf(f, "%q", s.show())
		return
	}
	fmt.Fprint(f, s.show())
}

// LogValue keeps the value out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.show()) }

// MarshalJSON writes "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.show()), nil }

// MarshalYAML writes "[redacted]".
func (s Secret) MarshalYAML() (any, error) { return s.show(), nil }

// MarshalText writes "[redacted]" (for encoders that prefer
// encoding.TextMarshaler).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.show()), nil }

// UnmarshalText keeps the value as written; it exists so that decoders that
// prefer TextUnmarshaler once MarshalText exists still read the secret.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}

// IsLoopback reports whether host is localhost or a loopback address: the
// only hosts a connector may reach over plain http (tests, sidecars).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
