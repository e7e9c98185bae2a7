package webhook

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/keyfile"
)

// Errors of LoadOrCreateKeySet (and Rotate, which re-reads the file).
var (
	// ErrInsecureKeyFile: the key file is not a regular file, or group or
	// others may access it. It is keyfile.ErrInsecure.
	ErrInsecureKeyFile = keyfile.ErrInsecure
	// ErrCorruptKeyFile: the key file is not a JWK set of Ed25519 private
	// keys with distinct key ids, or is larger than 1 MiB. It is
	// keyfile.ErrCorrupt.
	ErrCorruptKeyFile = keyfile.ErrCorrupt
)

// maxKeyFile bounds the key file; thousands of keys fit.
const maxKeyFile = 1 << 20

// KeySet is the gateway-wide ring of Ed25519 keys that sign webhook events.
// Its last key is the current one: it signs every new event. Older keys stay
// published in PublicJWKS so that receivers can still verify events signed
// before a rotation (a job retried after Rotate is signed again with the new
// key, but one already in flight was not).
//
// The ring lives in a file holding a JSON JWK set of the private keys, mode
// 0600. In a deployment of several gateway replicas, every replica must load
// the same file (a shared secret mount): a receiver may fetch the JWKS from
// one replica and get events from another. A KeySet reads the file only in
// LoadOrCreateKeySet and Rotate; a rotation made by another process is
// published here after a restart (or this process's next Rotate).
//
// A KeySet is safe for concurrent use. Formatting it (fmt, slog) shows only
// key ids.
type KeySet struct {
	path string

	rotateMu sync.Mutex // serialises Rotate

	mu     sync.RWMutex // guards the fields below
	keys   []jose.JSONWebKey
	signer jose.Signer // signs with keys[len(keys)-1]
	jwks   []byte      // public JWK set of keys
}

// LoadOrCreateKeySet reads the key ring at path or, when no file exists
// there, creates a ring of one new key and writes it to path with mode 0600.
// The creation is atomic and exclusive: a complete file appears at path or
// none does, and if another process creates the file first, its ring is
// read instead. The directory must exist.
//
// An existing file must be a regular file that neither group nor others may
// access (0600 or 0400): anything looser is refused with ErrInsecureKeyFile,
// since whoever reads the file can sign events every receiver trusts. A file
// that is not a JWK set of Ed25519 private keys with distinct, non-empty key
// ids is refused with ErrCorruptKeyFile; no error quotes key material.
func LoadOrCreateKeySet(path string) (*KeySet, error) {
	keys, err := keyfile.LoadOrCreate(path, maxKeyFile, decodeKeyFile, func() ([]jose.JSONWebKey, []byte, error) {
		k, err := newKey(nil)
		if err != nil {
			return nil, nil, err
		}
		keys := []jose.JSONWebKey{k}
		data, err := encodeKeyFile(keys)
		return keys, data, err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return newKeySet(path, keys)
}

func newKeySet(path string, keys []jose.JSONWebKey) (*KeySet, error) {
	ks := &KeySet{path: path}
	if err := ks.install(keys); err != nil {
		return nil, err
	}
	return ks, nil
}

// install makes keys the ring: the last one signs.
func (ks *KeySet) install(keys []jose.JSONWebKey) error {
	cur := keys[len(keys)-1]
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: cur},
		(&jose.SignerOptions{}).WithType(TokenType),
	)
	if err != nil {
		return fmt.Errorf("webhook: signer for key %q: %w", cur.KeyID, err)
	}
	pub := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(keys))}
	for i, k := range keys {
		pub.Keys[i] = k.Public()
	}
	jwks, err := json.Marshal(pub)
	if err != nil {
		return fmt.Errorf("webhook: encode JWKS: %w", err)
	}
	ks.mu.Lock()
	ks.keys, ks.signer, ks.jwks = keys, signer, jwks
	ks.mu.Unlock()
	return nil
}

// PublicJWKS returns the public JWK set, {"keys": [...]}, of every key in
// the ring, oldest first, each with "kid", "use": "sig" and "alg": "EdDSA".
// It never holds private key material. The caller owns the returned slice.
func (ks *KeySet) PublicJWKS() []byte {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return bytes.Clone(ks.jwks)
}

// KeyIDs returns the key ids of the ring, oldest first; the last one is the
// current key.
func (ks *KeySet) KeyIDs() []string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	ids := make([]string, len(ks.keys))
	for i, k := range ks.keys {
		ids[i] = k.KeyID
	}
	return ids
}

// CurrentKeyID returns the id of the key that signs new events.
func (ks *KeySet) CurrentKeyID() string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[len(ks.keys)-1].KeyID
}

// Sign signs payload with the current key and returns the JWS compact
// serialization, whose protected header is {"alg": "EdDSA", "kid": <the
// current key id>, "typ": "jmlgate-event+jwt"}. Ed25519 is deterministic:
// the same payload signed by the same key gives the same JWS.
func (ks *KeySet) Sign(payload []byte) (string, error) {
	ks.mu.RLock()
	signer := ks.signer
	ks.mu.RUnlock()
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("webhook: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Rotate adds a new key to the ring and makes it current; the old keys stay
// published. It first re-reads the file, so keys another process added are
// kept, then replaces the file atomically (a temporary file renamed over
// it): a crash leaves the old ring or the new one, never a torn file. The
// in-memory ring changes only once the file is durable, so on error the
// KeySet is unchanged and keeps signing with the previous key.
//
// Receivers cache the JWKS (JWKSHandler allows five minutes): one that
// meets an unknown kid should fetch the JWKS again before rejecting.
func (ks *KeySet) Rotate() error {
	ks.rotateMu.Lock()
	defer ks.rotateMu.Unlock()
	ks.mu.RLock()
	keys := append([]jose.JSONWebKey(nil), ks.keys...)
	ks.mu.RUnlock()

	onDisk, err := keyfile.Load(ks.path, maxKeyFile, decodeKeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Removed behind our back: write what we have plus the new key.
	case err != nil:
		return fmt.Errorf("webhook: %w", err)
	default:
		keys = mergeKeys(onDisk, keys)
	}
	k, err := newKey(keys)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	keys = append(keys, k)
	data, err := encodeKeyFile(keys)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if err := keyfile.Replace(ks.path, data); err != nil {
		return fmt.Errorf("webhook: write signing key file: %w", err)
	}
	return ks.install(keys)
}

// mergeKeys returns disk followed by the keys of mem that disk lacks.
func mergeKeys(disk, mem []jose.JSONWebKey) []jose.JSONWebKey {
	out := append([]jose.JSONWebKey(nil), disk...)
	for _, m := range mem {
		found := false
		for _, d := range disk {
			found = found || d.KeyID == m.KeyID
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// String lists the key ids; it never shows key material.
func (ks *KeySet) String() string {
	return "webhook.KeySet{kids: [" + strings.Join(ks.KeyIDs(), " ") + "]}"
}

// Format makes every fmt verb, %#v included, print String.
func (ks *KeySet) Format(f fmt.State, _ rune) { io.WriteString(f, ks.String()) }

// LogValue shows only the key ids in logs.
func (ks *KeySet) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("kids", ks.KeyIDs()))
}

// JWKSHandler serves ks.PublicJWKS for GET (and HEAD) with Content-Type
// application/json and Cache-Control max-age=300; other methods get 405.
// jmlgate mounts it at GET /api/v1/webhooks/jwks.json, without auth: the
// keys are public.
func JWKSHandler(ks *KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := ks.PublicJWKS()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
}

// newKey returns a fresh Ed25519 key whose kid is its RFC 7638 thumbprint
// (SHA-256, base64url), distinct from every key of ring. Its errors carry
// no "webhook:" prefix: the caller adds it.
func newKey(ring []jose.JSONWebKey) (jose.JSONWebKey, error) {
	for {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("generate signing key: %w", err)
		}
		k := jose.JSONWebKey{Key: priv, Algorithm: string(jose.EdDSA), Use: "sig"}
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("signing key thumbprint: %w", err)
		}
		k.KeyID = base64.RawURLEncoding.EncodeToString(tp)
		used := false
		for _, o := range ring {
			used = used || o.KeyID == k.KeyID
		}
		if !used {
			return k, nil
		}
	}
}

// decodeKeyFile parses and checks a ring. Its messages quote no byte of the
// file: JSON errors are reduced to an offset, go-jose's to their kind.
func decodeKeyFile(data []byte) ([]jose.JSONWebKey, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&set); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("invalid JSON at byte offset %d", syn.Offset)
		}
		return nil, errors.New(`want a JWK set {"keys": [...]}`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JWK set at byte offset %d", dec.InputOffset())
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("holds no keys")
	}
	keys := make([]jose.JSONWebKey, len(set.Keys))
	seen := make(map[string]int, len(set.Keys))
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("keys[%d]: not a valid JWK", i)
		}
		priv, ok := k.Key.(ed25519.PrivateKey)
		if !ok || len(priv) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("keys[%d]: not an Ed25519 (OKP) private key", i)
		}
		if k.KeyID == "" {
			return nil, fmt.Errorf("keys[%d]: \"kid\" is missing or empty", i)
		}
		if j, dup := seen[k.KeyID]; dup {
			return nil, fmt.Errorf("keys[%d]: kid %q repeats keys[%d]", i, k.KeyID, j)
		}
		seen[k.KeyID] = i
		if k.Algorithm != "" && k.Algorithm != string(jose.EdDSA) {
			return nil, fmt.Errorf("keys[%d] (kid %q): \"alg\" is %q, want EdDSA", i, k.KeyID, k.Algorithm)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("keys[%d] (kid %q): \"use\" is %q, want sig", i, k.KeyID, k.Use)
		}
		k.Algorithm, k.Use = string(jose.EdDSA), "sig"
		keys[i] = k
	}
	return keys, nil
}

// encodeKeyFile renders the ring, oldest key first. Its error carries no
// "webhook:" prefix: the caller adds it.
func encodeKeyFile(keys []jose.JSONWebKey) ([]byte, error) {
	data, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: keys}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode signing key file: %w", err)
	}
	return append(data, '\n'), nil
}
