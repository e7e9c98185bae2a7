package secrets

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenCreatesKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	before := time.Now().UTC().Truncate(time.Second)
	v, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file not created: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("new key file mode = %04o, want 0600", perm)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file", len(entries))
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ring []keyFileEntry
	if err := json.Unmarshal(data, &ring); err != nil {
		t.Fatalf("key file is not a JSON array of entries: %v\n%s", err, data)
	}
	if len(ring) != 1 {
		t.Fatalf("new key file holds %d keys, want 1", len(ring))
	}
	if ring[0].KID != v.CurrentKeyID() {
		t.Errorf("kid in file = %q, CurrentKeyID = %q", ring[0].KID, v.CurrentKeyID())
	}
	if raw, err := base64.RawURLEncoding.DecodeString(ring[0].Key); err != nil || len(raw) != 32 {
		t.Errorf("key in file decodes to %d bytes, %v; want 32", len(raw), err)
	}
	if created, err := time.Parse(time.RFC3339, ring[0].Created); err != nil || created.Before(before) || created.After(time.Now()) {
		t.Errorf("created = %q, %v; want the time of Open", ring[0].Created, err)
	}

	sealed, err := v.Seal([]byte(secretText), "totp:a")
	if err != nil {
		t.Fatal(err)
	}
	again, err := Open(path)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if again.CurrentKeyID() != v.CurrentKeyID() {
		t.Errorf("second Open made a new key %q, want the file's %q", again.CurrentKeyID(), v.CurrentKeyID())
	}
	if got, err := again.Unseal(sealed, "totp:a"); err != nil || string(got) != secretText {
		t.Errorf("second Open cannot unseal: %q, %v", got, err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(data) {
		t.Error("second Open rewrote the key file")
	}
}

func TestOpenConcurrentCreateAgrees(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	const n = 8
	kids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := Open(path)
			if err == nil {
				kids[i] = v.CurrentKeyID()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		if kids[i] != kids[0] {
			t.Errorf("Open #%d uses key %q, Open #0 uses %q: concurrent creation must agree", i, kids[i], kids[0])
		}
	}
}

func TestOpenKeyFilePermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o660, false},
		{0o666, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			t.Parallel()
			v, path := newVault(t)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := Open(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got.CurrentKeyID() != v.CurrentKeyID() {
					t.Errorf("Open reused another key")
				}
				return
			}
			if !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("Open of a %04o key file = %v, want ErrInsecureKeyFile", tt.mode, err)
			}
			for _, want := range []string{path, fmt.Sprintf("%04o", tt.mode), "chmod 600"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tt.mode {
				t.Errorf("Open changed the mode to %04o", st.Mode().Perm())
			}
		})
	}
}

func TestOpenPathErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, msg string
		is              error
	}{
		{"empty path", "", "path is empty", nil},
		{"missing directory", filepath.Join(dir, "nope", "keys.json"), "directory " + filepath.Join(dir, "nope") + " does not exist", nil},
		{"parent is a file", filepath.Join(file, "keys.json"), "is not a directory", nil},
		{"key file is a directory", dir, "is not a regular file", ErrInsecureKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := Open(tt.path)
			if err == nil {
				t.Fatalf("Open(%q) = %v, want an error", tt.path, v)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the missing directory: %v", err)
	}
}

// Keys for hand-written key files.
var (
	keyA   = base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyB   = base64.RawURLEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	key16  = base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
	when   = "2026-03-01T10:00:00Z"
	entryA = fmt.Sprintf(`{"kid":"a","key":%q,"created":%q}`, keyA, when)
)

func TestOpenCorruptKeyFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, msg string
	}{
		{"empty", "", "file is empty"},
		{"whitespace", " \n\t", "file is empty"},
		{"not JSON", "kid=a key=" + keyA, "invalid JSON at byte offset"},
		{"object", entryA, "want a JSON array"},
		{"string", `"` + keyA + `"`, "want a JSON array"},
		{"no keys", "[]", "holds no keys"},
		{"null", "null", "holds no keys"},
		{"truncated", "[" + entryA[:30], "truncated"},
		{"trailing data", "[" + entryA + "] " + keyA, "data after the key array"},
		{"kid empty", fmt.Sprintf(`[{"kid":"","key":%q,"created":%q}]`, keyA, when), `entry [0]: "kid" is missing or empty`},
		{"kid missing", fmt.Sprintf(`[{"key":%q,"created":%q}]`, keyA, when), `entry [0]: "kid" is missing or empty`},
		{"kid a number", fmt.Sprintf(`[{"kid":7,"key":%q,"created":%q}]`, keyA, when), `"kid" at byte offset`},
		{"key a number", fmt.Sprintf(`[{"kid":"a","key":12345678,"created":%q}]`, when), `"key" at byte offset`},
		{"duplicate kid", fmt.Sprintf(`[%s,{"kid":"a","key":%q,"created":%q}]`, entryA, keyB, when), `entry [1]: kid "a" repeats entry [0]`},
		{"key missing", fmt.Sprintf(`[%s,{"kid":"b","created":%q}]`, entryA, when), `entry [1] (kid "b"): "key" is missing or empty`},
		{"key not base64url", fmt.Sprintf(`[{"kid":"a","key":%q,"created":%q}]`, "+/"+keyA[2:], when), `entry [0] (kid "a"): "key" is not base64url`},
		{"key 16 bytes", fmt.Sprintf(`[{"kid":"a","key":%q,"created":%q}]`, key16, when), `entry [0] (kid "a"): "key" is 16 bytes, want 32`},
		{"created missing", fmt.Sprintf(`[{"kid":"a","key":%q}]`, keyA), `entry [0] (kid "a"): "created" is missing or empty`},
		{"created not RFC 3339", fmt.Sprintf(`[{"kid":"a","key":%q,"created":"yesterday"}]`, keyA), `entry [0] (kid "a"): "created" "yesterday" is not an RFC 3339 time`},
		{"unknown field", fmt.Sprintf(`[{"kid":"a","key":%q,"created":%q,"alg":"A256GCM"}]`, keyA, when), "field other than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := Open(path)
			if !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("Open = %v, %v; want ErrCorruptKeyFile", v, err)
			}
			for _, want := range []string{path, tt.msg} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			assertNoLeak(t, "error", err.Error(), []string{keyA, keyB, key16})
			if after, _ := os.ReadFile(path); string(after) != tt.content {
				t.Errorf("Open changed a corrupt key file to %q", after)
			}
		})
	}
}

func TestOpenHandwrittenKeyFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, current string
	}{
		{"one key", "[" + entryA + "]", "a"},
		{"padded base64url", fmt.Sprintf(`[{"kid":"a","key":%q,"created":%q}]`, keyA+"=", when), "a"},
		{"last is current", fmt.Sprintf(`[%s, {"kid":"b","key":%q,"created":"2026-04-01T00:00:00+02:00"}]`+"\n", entryA, keyB), "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := v.CurrentKeyID(); got != tt.current {
				t.Errorf("CurrentKeyID = %q, want %q", got, tt.current)
			}
			sealed, err := v.Seal([]byte(secretText), "totp:a")
			if err != nil {
				t.Fatal(err)
			}
			if kid := header(t, sealed)["kid"]; kid != tt.current {
				t.Errorf("sealed with kid %v, want %q", kid, tt.current)
			}
			// Rotate keeps every entry, in order, and appends one.
			if err := v.Rotate(); err != nil {
				t.Fatal(err)
			}
			reopened, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := reopened.Unseal(sealed, "totp:a"); err != nil || string(got) != secretText {
				t.Errorf("Unseal after Rotate and reopen = %q, %v", got, err)
			}
		})
	}
}
