package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// A stored document (json.RawMessage) is digested without re-encoding when
// re-encoding would not change it, and the digest is the same either way.
func TestDigestRawMessage(t *testing.T) {
	t.Parallel()
	slow := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	for _, raw := range []string{
		`{"a":1,"b":[true,null,"x y"]}`,
		`{"a": 1}`,                   // white space: re-encoded
		`{"html":"<b>&</b>"}`,        // escaped by json.Marshal
		`{"s":"line\u2028sep"}`,      // U+2028 escaped
		"{\"s\":\"raw \u2028 sep\"}", // raw U+2028 in a string
		`{"q":"a \"quoted\" \\ str"}`,
		`"just a string"`,
	} {
		if got, want := Digest(json.RawMessage(raw)), slow(json.RawMessage(raw)); got != want {
			t.Errorf("Digest(%s) = %s, want %s", raw, got, want)
		}
	}
	if got, want := Digest(json.RawMessage(`{"a":1}`)), func() string { s := sha256.Sum256([]byte(`{"a":1}`)); return hex.EncodeToString(s[:]) }(); got != want {
		t.Errorf("compact document not hashed as stored: %s != %s", got, want)
	}
}
