package webhook

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/testhttp"
)

// privateDs returns the base64url "d" values in the key file at path.
func privateDs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			D string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, k := range set.Keys {
		if k.D == "" {
			t.Fatal("key file entry without d")
		}
		ds = append(ds, k.D)
	}
	return ds
}

func mustSign(t *testing.T, ks *KeySet, ev Event) string {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := ks.Sign(payload)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return jws
}

// sampleEvent is valid for Lifetime from the start of the tests.
var sampleEvent = Event{
	JTI: "jti-1", Issuer: Issuer, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(Lifetime).Unix(),
	Type: TypeGrant, Connector: "app", Ref: "00000000-0000-4000-8000-000000000001", Entitlement: "role:viewer",
}

func TestSignatureVerification(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	// A stranger's key that claims the gateway's kid.
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA,
		Key: jose.JSONWebKey{Key: strangerKey, KeyID: ks.CurrentKeyID()}},
		(&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		t.Fatal(err)
	}
	good := mustSign(t, ks, sampleEvent)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name string
		jws  func() string
		ok   bool
	}{
		{"intact", func() string { return good }, true},
		{"payload changed", func() string {
			ev := sampleEvent
			ev.Entitlement = "role:admin"
			p, _ := json.Marshal(ev)
			return parts[0] + "." + b64(p) + "." + parts[2]
		}, false},
		{"payload of another event, same signature", func() string {
			other := sampleEvent
			other.Type = TypeRevoke
			return parts[0] + "." + strings.Split(mustSign(t, ks, other), ".")[1] + "." + parts[2]
		}, false},
		{"expired", func() string {
			ev := sampleEvent
			ev.IssuedAt -= 3600
			ev.ExpiresAt -= 3600
			return mustSign(t, ks, ev)
		}, false},
		{"signature byte flipped", func() string {
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[10] ^= 1
			return parts[0] + "." + parts[1] + "." + b64(sig)
		}, false},
		{"typ removed from header", func() string {
			h := fmt.Sprintf(`{"alg":"EdDSA","kid":%q}`, ks.CurrentKeyID())
			return b64([]byte(h)) + "." + parts[1] + "." + parts[2]
		}, false},
		{"alg none", func() string {
			h := fmt.Sprintf(`{"alg":"none","kid":%q,"typ":%q}`, ks.CurrentKeyID(), TokenType)
			return b64([]byte(h)) + "." + parts[1] + "."
		}, false},
		{"stranger's key with the gateway's kid", func() string {
			p, _ := json.Marshal(sampleEvent)
			s, err := stranger.Sign(p)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := s.CompactSerialize()
			return c
		}, false},
	}
	set, err := fetchJWKS(jwks.URL)
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, kid, err := verifyEvent(tc.jws(), set)
			if tc.ok != (err == nil) {
				t.Fatalf("verify: err %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if kid != ks.CurrentKeyID() {
				t.Errorf("kid %q, want the current key %q", kid, ks.CurrentKeyID())
			}
			if ev != sampleEvent {
				t.Errorf("claims %+v, want %+v", ev, sampleEvent)
			}
		})
	}
}

func TestKeyIDIsThumbprint(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	if err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	set, err := fetchJWKS(jwks.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	for _, k := range set.Keys {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(tp); k.KeyID != want {
			t.Errorf("kid %q, want RFC 7638 thumbprint %q", k.KeyID, want)
		}
		if _, ok := k.Key.(ed25519.PublicKey); !ok || !k.IsPublic() {
			t.Errorf("kid %s: key %T, want a public Ed25519 key", k.KeyID, k.Key)
		}
		if k.Use != "sig" || k.Algorithm != "EdDSA" {
			t.Errorf("kid %s: use %q alg %q, want sig EdDSA", k.KeyID, k.Use, k.Algorithm)
		}
	}
}

// TestRotate follows a rotation through the connector: events signed before
// still verify, events after carry the new kid, and the file keeps both.
func TestRotate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	ks, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(JWKSHandler(ks))
	t.Cleanup(jwks.Close)
	rc := newReceiver(t, jwks.URL, "app", "", false)
	conn := openConn(t, ks, rc, "app", nil)
	ctx := context.Background()

	oldKID := ks.CurrentKeyID()
	before := mustSign(t, ks, sampleEvent)
	ref, err := conn.EnsureAccount(ctx, testAccount(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newKID := ks.CurrentKeyID()
	if newKID == oldKID {
		t.Fatal("Rotate kept the current kid")
	}
	if got := ks.KeyIDs(); !slices.Equal(got, []string{oldKID, newKID}) {
		t.Fatalf("KeyIDs after Rotate = %q, want [old new] = %q", got, []string{oldKID, newKID})
	}
	if err := conn.Grant(ctx, ref, "role:viewer"); err != nil {
		t.Fatalf("Grant after Rotate: %v", err)
	}
	ds := rc.Deliveries()
	if len(ds) != 2 || ds[0].kid != oldKID || ds[1].kid != newKID {
		t.Fatalf("deliveries signed by %v, want ensure by %s and grant by %s", ds, oldKID, newKID)
	}
	if bad := rc.Rejected(); len(bad) != 0 {
		t.Fatalf("receiver rejected: %v", bad)
	}

	// An event signed before the rotation (in flight) still verifies.
	set, err := fetchJWKS(jwks.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, kid, err := verifyEvent(before, set); err != nil || kid != oldKID {
		t.Fatalf("pre-rotation event: kid %q err %v, want verified with %s", kid, err, oldKID)
	}

	// The file holds the ring: a reload signs with the new key.
	again, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.KeyIDs(); !slices.Equal(got, ks.KeyIDs()) {
		t.Errorf("reloaded KeyIDs %q, want %q", got, ks.KeyIDs())
	}
	if !bytes.Equal(again.PublicJWKS(), ks.PublicJWKS()) {
		t.Error("reloaded JWKS differs")
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file after Rotate: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
}

// TestRotateKeepsOtherProcessKeys: a rotation by another process sharing
// the file is not lost by ours.
func TestRotateKeepsOtherProcessKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	a, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	final, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{b.KeyIDs()[0], b.KeyIDs()[1], a.CurrentKeyID()}
	if got := final.KeyIDs(); !slices.Equal(got, want) {
		t.Errorf("file after two rotations = %q, want %q", got, want)
	}
	if !slices.Equal(a.KeyIDs(), want) {
		t.Errorf("rotating process publishes %q, want %q", a.KeyIDs(), want)
	}
}

func TestKeyFileCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	// Several processes starting at once end up with one ring.
	const n = 8
	sets := make([]*KeySet, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ks, err := LoadOrCreateKeySet(path)
			if err != nil {
				t.Errorf("LoadOrCreateKeySet: %v", err)
			}
			sets[i] = ks
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, ks := range sets {
		if got := ks.KeyIDs(); len(got) != 1 || !slices.Equal(got, sets[0].KeyIDs()) {
			t.Fatalf("concurrent creators got rings %q and %q, want one shared key", got, sets[0].KeyIDs())
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new key file mode %04o, want 0600", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %q", left)
	}

	if _, err := LoadOrCreateKeySet(filepath.Join(dir, "missing", "keys.json")); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("key file in a missing directory: %v, want a clear error", err)
	}
	if _, err := LoadOrCreateKeySet(""); err == nil {
		t.Error("empty path accepted")
	}
}

func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o700, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.json")
			first, err := LoadOrCreateKeySet(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			ks, err := LoadOrCreateKeySet(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", tc.mode, err)
				}
				if !slices.Equal(ks.KeyIDs(), first.KeyIDs()) {
					t.Errorf("reload gave kids %q, want %q", ks.KeyIDs(), first.KeyIDs())
				}
				return
			}
			if !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("mode %04o: err %v, want ErrInsecureKeyFile", tc.mode, err)
			}
			if !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), fmt.Sprintf("%04o", tc.mode)) {
				t.Errorf("message %q does not say the mode and the fix", err)
			}
			// Rotate re-reads the file and refuses it too, changing nothing.
			if err := first.Rotate(); !errors.Is(err, ErrInsecureKeyFile) {
				t.Errorf("Rotate over an insecure file: %v, want ErrInsecureKeyFile", err)
			}
			if len(first.KeyIDs()) != 1 {
				t.Errorf("failed Rotate changed the ring: %q", first.KeyIDs())
			}
		})
	}
}

func TestKeyFileCorrupt(t *testing.T) {
	t.Parallel()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(key any, kid, alg, use string) string {
		b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ed := jwk(edPriv, "a", "EdDSA", "sig")
	seed := base64.RawURLEncoding.EncodeToString(edPriv.Seed())
	tests := []struct {
		name, file, want string
	}{
		{"empty", "", "empty"},
		{"not JSON", "{\"keys\": [" + ed[:40], "JSON"},
		{"array", "[" + ed + "]", "JWK set"},
		{"no keys", `{"keys": []}`, "no keys"},
		{"public key only", `{"keys": [` + jwk(edPriv.Public(), "a", "EdDSA", "sig") + `]}`, "private key"},
		{"RSA key", `{"keys": [` + jwk(rsaKey, "a", "RS256", "sig") + `]}`, "Ed25519"},
		{"no kid", `{"keys": [` + jwk(edPriv, "", "EdDSA", "sig") + `]}`, "kid"},
		{"duplicate kid", `{"keys": [` + ed + `,` + ed + `]}`, "repeats"},
		{"alg", `{"keys": [` + jwk(edPriv, "a", "ES256", "sig") + `]}`, "alg"},
		{"use", `{"keys": [` + jwk(edPriv, "a", "EdDSA", "enc") + `]}`, "use"},
		{"x does not match d", `{"keys": [{"kty":"OKP","crv":"Ed25519","kid":"a","d":"` + seed + `","x":"` +
			base64.RawURLEncoding.EncodeToString(otherPub) + `"}]}`, "valid JWK"},
		{"trailing data", `{"keys": [` + ed + `]} {}`, "after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateKeySet(path)
			if !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("err %v, want ErrCorruptKeyFile", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), seed) || strings.Contains(err.Error(), seed[:12]) {
				t.Errorf("err quotes private key material: %q", err)
			}
			// A corrupt file is never replaced by a fresh ring.
			if data, _ := os.ReadFile(path); string(data) != tc.file {
				t.Error("corrupt key file was rewritten")
			}
		})
	}
}

// TestNoPrivateKeyMaterialLeaks checks every way a KeySet shows itself.
func TestNoPrivateKeyMaterialLeaks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	ks, err := LoadOrCreateKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	ds := privateDs(t, path)
	if len(ds) != 2 {
		t.Fatalf("key file holds %d private keys, want 2", len(ds))
	}
	var members []map[string]any
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(ks.PublicJWKS(), &set); err != nil {
		t.Fatalf("PublicJWKS is not JSON: %v", err)
	}
	members = set.Keys
	if len(members) != 2 {
		t.Fatalf("PublicJWKS has %d keys, want 2", len(members))
	}
	for _, m := range members {
		for name := range m {
			if !slices.Contains([]string{"kty", "crv", "x", "kid", "use", "alg"}, name) {
				t.Errorf("public JWK has member %q", name)
			}
		}
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("keys", "ks", ks)
	shown := map[string]string{
		"PublicJWKS": string(ks.PublicJWKS()),
		"%v":         fmt.Sprintf("%v", ks),
		"%+v":        fmt.Sprintf("%+v", ks),
		"%#v":        fmt.Sprintf("%#v", ks),
		"%s":         fmt.Sprintf("%s", ks),
		"slog":       logBuf.String(),
	}
	for how, s := range shown {
		for _, d := range ds {
			raw, _ := base64.RawURLEncoding.DecodeString(d)
			if strings.Contains(s, d) || strings.Contains(s, fmt.Sprint(raw)) || strings.Contains(s, fmt.Sprintf("%x", raw)) {
				t.Errorf("%s shows private key material: %s", how, s)
			}
		}
		if how != "PublicJWKS" && !strings.Contains(s, ks.CurrentKeyID()) {
			t.Errorf("%s = %q, want the key ids", how, s)
		}
	}
}

func TestJWKSHandler(t *testing.T) {
	t.Parallel()
	ks, srv := newTestKeySet(t)
	tests := []struct {
		method string
		status int
		body   bool
	}{
		{http.MethodGet, http.StatusOK, true},
		{http.MethodHead, http.StatusOK, false},
		{http.MethodPost, http.StatusMethodNotAllowed, false},
		{http.MethodDelete, http.StatusMethodNotAllowed, false},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, srv.URL, nil)
			resp, err := testhttp.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				if resp.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("Allow %q", resp.Header.Get("Allow"))
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
				t.Errorf("Cache-Control %q, want max-age=300", cc)
			}
			if tc.body && !bytes.Equal(body.Bytes(), ks.PublicJWKS()) {
				t.Errorf("body %s, want PublicJWKS %s", body.Bytes(), ks.PublicJWKS())
			}
			if !tc.body && body.Len() != 0 {
				t.Errorf("HEAD returned a body")
			}
		})
	}
}

// TestConcurrentSignAndRotate: signatures made while rotating all verify
// against the final key set (run with -race).
func TestConcurrentSignAndRotate(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	const signers, perSigner, rotations = 4, 25, 5
	out := make(chan string, signers*perSigner)
	var wg sync.WaitGroup
	for range signers {
		wg.Go(func() {
			payload, _ := json.Marshal(sampleEvent)
			for range perSigner {
				jws, err := ks.Sign(payload)
				if err != nil {
					t.Errorf("Sign: %v", err)
					return
				}
				out <- jws
				_ = ks.PublicJWKS()
			}
		})
	}
	wg.Go(func() {
		for range rotations {
			if err := ks.Rotate(); err != nil {
				t.Errorf("Rotate: %v", err)
			}
		}
	})
	wg.Wait()
	close(out)
	if n := len(ks.KeyIDs()); n != 1+rotations {
		t.Fatalf("%d keys after %d rotations, want %d", n, rotations, 1+rotations)
	}
	set, err := fetchJWKS(jwks.URL)
	if err != nil {
		t.Fatal(err)
	}
	for jws := range out {
		if _, _, err := verifyEvent(jws, set); err != nil {
			t.Fatalf("signature made during rotation does not verify: %v", err)
		}
	}
}
