package secrets

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// secretText is the plaintext used wherever a test checks that nothing
// leaks it.
const secretText = "JBSWY3DPEHPK3PXP-totp-seed"

// newVault opens a vault on a fresh key file.
func newVault(t *testing.T) (*Vault, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	v, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return v, path
}

// fileKeys returns the base64url keys of a key file, for leak checks.
func fileKeys(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []keyFileEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatalf("key file %s: %v", path, err)
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys
}

// assertNoLeak fails if s contains the test plaintext or any key of the
// key file, in base64url, standard base64 or hex.
func assertNoLeak(t *testing.T, what, s string, keys []string) {
	t.Helper()
	needles := []string{secretText, base64.RawURLEncoding.EncodeToString([]byte(secretText))}
	for _, k := range keys {
		raw, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, k, k[:12], base64.StdEncoding.EncodeToString(raw)[:12], fmt.Sprintf("%x", raw)[:12])
	}
	for _, n := range needles {
		if strings.Contains(s, n) {
			t.Errorf("%s leaks secret material %q: %s", what, n, s)
		}
	}
}

// header decodes the protected header of a compact JWE.
func header(t *testing.T, sealed string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(sealed, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// withHeader re-encodes the protected header of sealed after edit.
func withHeader(t *testing.T, sealed string, edit func(map[string]any)) string {
	t.Helper()
	h := header(t, sealed)
	edit(h)
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(sealed, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// flip flips the low bit of byte i of part p of sealed.
func flip(t *testing.T, sealed string, p, i int) string {
	t.Helper()
	parts := strings.Split(sealed, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[p])
	if err != nil {
		t.Fatal(err)
	}
	b[i] ^= 1
	parts[p] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// truncated re-encodes the first n bytes of the base64url part p.
func truncated(t *testing.T, p string, n int) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:n])
}

// nonCanonical returns another spelling of the base64url part p that a
// lenient decoder reads as the same bytes: nonzero unused trailing bits.
func nonCanonical(t *testing.T, p string) string {
	t.Helper()
	if len(p)%4 == 0 {
		t.Fatalf("part %q has no unused trailing bits", p)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, p[len(p)-1])
	q := p[:len(p)-1] + string(alphabet[last^1])
	a, errA := base64.RawURLEncoding.DecodeString(p)
	b, errB := base64.RawURLEncoding.DecodeString(q)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("%q and %q do not decode alike: %v, %v", p, q, errA, errB)
	}
	return q
}

func TestSealUnsealRoundTrip(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	keys := fileKeys(t, path)
	big := bytes.Repeat([]byte{0, 1, 0xff, 'x'}, 1024)
	tests := []struct {
		name      string
		plaintext []byte
		context   string
	}{
		{"empty", []byte{}, "totp:id-1"},
		{"totp seed", []byte(secretText), "totp:2b7e1516-28ae-d2a6"},
		{"binary", []byte{0, 0, 0xff, 0x80, 0}, "api:connector/okta"},
		{"4 KiB", big, "shared:42"},
		{"unicode context", []byte("s"), "totp:Zoë Łukasz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := v.Seal(tt.plaintext, tt.context)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			got, err := v.Unseal(sealed, tt.context)
			if err != nil {
				t.Fatalf("Unseal: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Unseal = %q, want %q", got, tt.plaintext)
			}
			h := header(t, sealed)
			want := map[string]any{"alg": "dir", "enc": "A256GCM", "kid": v.CurrentKeyID(), "ctx": tt.context}
			for k, w := range want {
				if h[k] != w {
					t.Errorf("header %q = %v, want %v", k, h[k], w)
				}
			}
			if len(h) != len(want) {
				t.Errorf("header = %v, want exactly the claims %v", h, want)
			}
			if p := strings.Split(sealed, "."); len(p) != 5 || p[1] != "" {
				t.Errorf("sealed = %q, want 5 parts with an empty encrypted key", sealed)
			}
			assertNoLeak(t, "sealed value", sealed, keys)
			again, err := v.Seal(tt.plaintext, tt.context)
			if err != nil {
				t.Fatal(err)
			}
			if again == sealed {
				t.Error("sealing the same value twice gave the same string: IV reused")
			}
		})
	}
}

func TestUnsealRejects(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	const ctx = "totp:alice"
	sealed, err := v.Seal([]byte(secretText), ctx)
	if err != nil {
		t.Fatal(err)
	}
	setHeader := func(k string, val any) func(map[string]any) {
		return func(h map[string]any) { h[k] = val }
	}
	delHeader := func(k string) func(map[string]any) {
		return func(h map[string]any) { delete(h, k) }
	}
	parts := strings.Split(sealed, ".")
	tests := []struct {
		name    string
		sealed  string
		context string
		want    error
		msg     string // substring of the error message
	}{
		{"wrong context", sealed, "totp:bob", ErrWrongContext, `sealed for context "totp:alice", opened for "totp:bob"`},
		{"context moved to another identity", withHeader(t, sealed, setHeader("ctx", "totp:bob")), "totp:bob", ErrTampered, "failed authentication"},
		{"unknown kid", withHeader(t, sealed, setHeader("kid", "k-nope")), ctx, ErrUnknownKey, `key id "k-nope" is not in key file`},
		{"extra header claim", withHeader(t, sealed, setHeader("x", 1)), ctx, ErrTampered, "failed authentication"},
		{"alg A256KW", withHeader(t, sealed, setHeader("alg", "A256KW")), ctx, ErrMalformed, "malformed"},
		{"enc A128GCM", withHeader(t, sealed, setHeader("enc", "A128GCM")), ctx, ErrMalformed, "malformed"},
		{"no kid", withHeader(t, sealed, delHeader("kid")), ctx, ErrMalformed, `no "kid" header`},
		{"no ctx", withHeader(t, sealed, delHeader("ctx")), ctx, ErrMalformed, `no string "ctx" header`},
		{"ctx not a string", withHeader(t, sealed, setHeader("ctx", 7)), ctx, ErrMalformed, `no string "ctx" header`},
		{"header byte flipped", flip(t, sealed, 0, 3), ctx, ErrMalformed, "malformed"},
		{"iv flipped", flip(t, sealed, 2, 0), ctx, ErrTampered, "failed authentication"},
		{"ciphertext flipped", flip(t, sealed, 3, 5), ctx, ErrTampered, "failed authentication"},
		{"tag flipped", flip(t, sealed, 4, 15), ctx, ErrTampered, "failed authentication"},
		{"tag truncated", strings.Join(append(parts[:4:4], truncated(t, parts[4], 8)), "."), ctx, ErrTampered, "failed authentication"},
		{"encrypted key added", strings.Join([]string{parts[0], "AAAA", parts[2], parts[3], parts[4]}, "."), ctx, ErrMalformed, "encrypted key part must be empty"},
		{"four parts", strings.Join(parts[:4], "."), ctx, ErrMalformed, "got 4"},
		{"six parts", sealed + ".x", ctx, ErrMalformed, "got 6"},
		{"empty", "", ctx, ErrMalformed, "got 1"},
		{"header not base64", "!!." + strings.Join(parts[1:], "."), ctx, ErrMalformed, "header part is not base64url"},
		{"tag padded", sealed + "==", ctx, ErrMalformed, "tag part is not base64url"},
		{"ciphertext non-canonical", strings.Join([]string{parts[0], "", parts[2], nonCanonical(t, parts[3]), parts[4]}, "."), ctx, ErrMalformed, "ciphertext part is not base64url"},
		{"JSON serialization", `{"protected":"` + parts[0] + `"}`, ctx, ErrMalformed, "got 1"},
	}
	keys := fileKeys(t, path)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Unseal(tt.sealed, tt.context)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unseal = %q, %v; want error %v", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Unseal returned %q with its error", got)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			assertNoLeak(t, "error", err.Error(), keys)
		})
	}
	// The original still opens: nothing above changed the vault.
	if got, err := v.Unseal(sealed, ctx); err != nil || string(got) != secretText {
		t.Errorf("Unseal(original) = %q, %v", got, err)
	}
}

func TestUnsealKeyOfAnotherFile(t *testing.T) {
	t.Parallel()
	a, aPath := newVault(t)
	sealed, err := a.Seal([]byte(secretText), "totp:alice")
	if err != nil {
		t.Fatal(err)
	}
	b, bPath := newVault(t)

	// Same kid, different key bytes: a key file swapped under the gateway.
	other := make([]byte, keySize)
	rand.Read(other)
	cPath := filepath.Join(t.TempDir(), "keys.json")
	ring := fmt.Sprintf(`[{"kid":%q,"key":%q,"created":"2026-01-02T03:04:05Z"}]`,
		a.CurrentKeyID(), base64.RawURLEncoding.EncodeToString(other))
	if err := os.WriteFile(cPath, []byte(ring), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(cPath)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		v    *Vault
		want error
	}{
		{"other key file", b, ErrUnknownKey},
		{"same kid, other key", c, ErrTampered},
	}
	keys := append(append(fileKeys(t, aPath), fileKeys(t, bPath)...), fileKeys(t, cPath)...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.v.Unseal(sealed, "totp:alice")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unseal = %q, %v; want %v", got, err, tt.want)
			}
			assertNoLeak(t, "error", err.Error(), keys)
		})
	}
}

func TestInvalidContext(t *testing.T) {
	t.Parallel()
	v, _ := newVault(t)
	sealed, err := v.Seal([]byte(secretText), "totp:x")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, context, msg string
	}{
		{"empty", "", "must not be empty"},
		{"invalid UTF-8", "totp:\xff", "not valid UTF-8"},
		{"too long", "totp:" + strings.Repeat("x", maxContext), "at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, err := v.Seal([]byte(secretText), tt.context); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Seal = %q, %v; want error containing %q", s, err, tt.msg)
			}
			if p, err := v.Unseal(sealed, tt.context); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Unseal = %q, %v; want error containing %q", p, err, tt.msg)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	oldKID := v.CurrentKeyID()
	oldSealed, err := v.Seal([]byte("old secret"), "totp:a")
	if err != nil {
		t.Fatal(err)
	}
	fp := v.Fingerprint([]byte(secretText))

	if err := v.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newKID := v.CurrentKeyID()
	if newKID == oldKID {
		t.Fatalf("CurrentKeyID after Rotate = %q, unchanged", newKID)
	}
	newSealed, err := v.Seal([]byte("new secret"), "totp:a")
	if err != nil {
		t.Fatal(err)
	}
	if kid := header(t, newSealed)["kid"]; kid != newKID {
		t.Errorf("kid of a value sealed after Rotate = %v, want %q", kid, newKID)
	}
	if got := v.Fingerprint([]byte(secretText)); got != fp {
		t.Errorf("Fingerprint changed across Rotate: %q, then %q", fp, got)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode after Rotate = %04o, want 0600", perm)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Rotate, want only the key file", len(entries))
	}

	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := reopened.CurrentKeyID(); got != newKID {
		t.Errorf("reopened CurrentKeyID = %q, want %q: the last entry is current", got, newKID)
	}
	if got := reopened.Fingerprint([]byte(secretText)); got != fp {
		t.Errorf("Fingerprint after Rotate and reopen = %q, want %q as before Rotate", got, fp)
	}
	if got := len(fileKeys(t, path)); got != 2 {
		t.Errorf("key file holds %d keys, want 2", got)
	}
	tests := []struct {
		name   string
		v      *Vault
		sealed string
		want   string
	}{
		{"old value, same vault", v, oldSealed, "old secret"},
		{"new value, same vault", v, newSealed, "new secret"},
		{"old value, reopened", reopened, oldSealed, "old secret"},
		{"new value, reopened", reopened, newSealed, "new secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.v.Unseal(tt.sealed, "totp:a")
			if err != nil || string(got) != tt.want {
				t.Errorf("Unseal = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRotateFailureChangesNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	v, err := Open(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	kid := v.CurrentKeyID()
	sealed, err := v.Seal([]byte(secretText), "totp:a")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // no temporary file can be made
		t.Fatal(err)
	}
	if err := v.Rotate(); err == nil {
		t.Fatal("Rotate with its directory gone succeeded")
	}
	if got := v.CurrentKeyID(); got != kid {
		t.Errorf("CurrentKeyID after a failed Rotate = %q, want %q", got, kid)
	}
	if got, err := v.Unseal(sealed, "totp:a"); err != nil || string(got) != secretText {
		t.Errorf("Unseal after a failed Rotate = %q, %v", got, err)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	same, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newVault(t)

	// The contract: HMAC-SHA256 keyed by HKDF-SHA256 of the oldest key.
	oldest, err := base64.RawURLEncoding.DecodeString(fileKeys(t, path)[0])
	if err != nil {
		t.Fatal(err)
	}
	fpKey, err := hkdf.Key(sha256.New, oldest, nil, "jmlgate/secrets fingerprint v1", 32)
	if err != nil {
		t.Fatal(err)
	}

	values := [][]byte{[]byte(secretText), {}, []byte("JBSWY3DPEHPK3PXQ"), bytes.Repeat([]byte{0}, 100)}
	seen := map[string][]byte{}
	for _, val := range values {
		fp := v.Fingerprint(val)
		m := hmac.New(sha256.New, fpKey)
		m.Write(val)
		if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:16]; fp != want {
			t.Errorf("Fingerprint(%q) = %q, want %q", val, fp, want)
		}
		if got := same.Fingerprint(val); got != fp {
			t.Errorf("Fingerprint(%q) differs across Open of the same file: %q, %q", val, fp, got)
		}
		if got := other.Fingerprint(val); got == fp {
			t.Errorf("Fingerprint(%q) = %q with another key file too", val, got)
		}
		unkeyed := sha256.Sum256(val)
		if fp == base64.RawURLEncoding.EncodeToString(unkeyed[:])[:16] {
			t.Errorf("Fingerprint(%q) is the unkeyed SHA-256", val)
		}
		if prev, dup := seen[fp]; dup {
			t.Errorf("Fingerprint(%q) = Fingerprint(%q) = %q", val, prev, fp)
		}
		seen[fp] = val
	}
}

func TestFormatHidesKeys(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	if err := v.Rotate(); err != nil {
		t.Fatal(err)
	}
	keys := fileKeys(t, path)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		s := fmt.Sprintf(verb, v)
		assertNoLeak(t, "fmt "+verb, s, keys)
		if !strings.Contains(s, v.CurrentKeyID()) {
			t.Errorf("fmt %s = %q, want the key ids", verb, s)
		}
	}
	if s := fmt.Sprint((*Vault)(nil)); s != "secrets.Vault(nil)" {
		t.Errorf("fmt of a nil Vault = %q", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	v, path := newVault(t)
	const workers, rounds, rotations = 4, 40, 3

	type sealedValue struct{ sealed, context, plaintext string }
	var (
		mu  sync.Mutex
		all []sealedValue
		wg  sync.WaitGroup
	)
	errs := make(chan error, workers*rounds+rotations)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				ctx := fmt.Sprintf("totp:w%d-r%d", w, r)
				pt := fmt.Sprintf("%s-%d-%d", secretText, w, r)
				s, err := v.Seal([]byte(pt), ctx)
				if err != nil {
					errs <- err
					return
				}
				got, err := v.Unseal(s, ctx)
				if err != nil || string(got) != pt {
					errs <- fmt.Errorf("Unseal(%s) = %q, %v", ctx, got, err)
					return
				}
				_ = v.Fingerprint([]byte(pt))
				mu.Lock()
				all = append(all, sealedValue{s, ctx, pt})
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range rotations {
			if err := v.Rotate(); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Every key used survived in the file: a fresh Open opens everything.
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(fileKeys(t, path)); got != rotations+1 {
		t.Errorf("key file holds %d keys, want %d", got, rotations+1)
	}
	for _, s := range all {
		if got, err := reopened.Unseal(s.sealed, s.context); err != nil || string(got) != s.plaintext {
			t.Errorf("reopened Unseal(%s) = %q, %v", s.context, got, err)
		}
	}
}
