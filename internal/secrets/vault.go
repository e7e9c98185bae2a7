// Package secrets keeps secret values encrypted outside the process (DESIGN
// invariant 4): a Vault seals small secrets such as TOTP seeds into JWE
// compact serializations before they reach the store, opens them again for
// the code that needs them, and gives logs, audit records, metrics and API
// listings a keyed fingerprint instead of the value.
//
// Keys live in one key file, a JSON array of
//
//	{"kid": "...", "key": "<32 bytes, base64url>", "created": "<RFC 3339>"}
//
// objects, oldest first; the last entry is the current key. New values are
// sealed with the current key, values sealed with any key in the file still
// open, so Rotate never strands a stored value. There is no built-in or
// default key: a missing key file is created with a fresh random key, and a
// key file that group or others may access is refused.
//
// A sealed value is a JWE with alg "dir", enc "A256GCM", the key id in "kid"
// and the caller's context (for example "totp:<identity id>") in the
// protected header claim "ctx". The protected header is the AES-GCM
// additional authenticated data, so a value cannot be moved to another
// context, re-labelled with another key id, or altered without Unseal
// failing. Contexts are therefore stored in clear: they must name what the
// secret belongs to, never contain a secret.
package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/keyfile"
)

// Errors returned by Open and Unseal, matched with errors.Is. Their messages
// name the key file, entry, key id or context concerned and never include a
// plaintext or key material.
var (
	// ErrInsecureKeyFile: the key file grants some permission to group or
	// others (it must be mode 0600 or stricter), or is not a regular file.
	// It is keyfile.ErrInsecure.
	ErrInsecureKeyFile = keyfile.ErrInsecure
	// ErrCorruptKeyFile: the key file is not a valid, non-empty key ring,
	// or is larger than 1 MiB. It is keyfile.ErrCorrupt.
	ErrCorruptKeyFile = keyfile.ErrCorrupt
	// ErrMalformed: the sealed value is not a JWE compact serialization made
	// by a Vault (wrong shape, algorithm, missing kid or ctx header).
	ErrMalformed = errors.New("secrets: malformed sealed value")
	// ErrUnknownKey: the sealed value names a key id the key ring does not
	// hold, e.g. it was sealed with another key file.
	ErrUnknownKey = errors.New("secrets: unknown key")
	// ErrWrongContext: the sealed value was sealed for another context.
	ErrWrongContext = errors.New("secrets: wrong context")
	// ErrTampered: authenticated decryption failed: the header, IV,
	// ciphertext or tag was altered, or the key behind the key id changed.
	ErrTampered = errors.New("secrets: sealed value failed authentication")
)

const (
	// keySize is the size of every vault key: AES-256.
	keySize = 32
	// headerContext is the protected header claim holding the context.
	headerContext jose.HeaderKey = "ctx"
	// maxContext bounds a context, which travels in every sealed header.
	maxContext = 1024
	// fingerprintInfo labels the HKDF derivation of the fingerprint key so
	// it is independent of the encryption use of the same key.
	fingerprintInfo = "jmlgate/secrets fingerprint v1"
	// fingerprintLen is the length of a fingerprint in base64url characters
	// (96 bits).
	fingerprintLen = 16
)

// partNames names the five parts of a JWE compact serialization.
var partNames = [5]string{"header", "encrypted key", "IV", "ciphertext", "tag"}

// key is one entry of the key ring. Its fields never change once built, so
// a key may be used after the ring lock is released.
type key struct {
	id      string
	secret  []byte
	created time.Time
}

// Vault seals and opens small secrets with the keys of one key file. Safe
// for concurrent use; Seal, Unseal and Fingerprint never block on Rotate's
// file I/O.
type Vault struct {
	path string
	now  func() time.Time

	rotateMu sync.Mutex // serialises Rotate

	mu   sync.RWMutex // guards keys and byID
	keys []key        // oldest first; the last is current
	byID map[string]key

	fpKey []byte // fingerprint key, derived from keys[0]; immutable
}

// Open loads the key ring from the key file at path, creating the file on
// first use with one fresh random 256-bit key (mode 0600). The parent
// directory must exist. Creation is atomic and exclusive: the ring is
// written to a temporary file, synced, then linked into place only if no
// file exists there yet, so two processes starting together end up with the
// same key and a crash never leaves a partial key file.
//
// Errors: the directory is missing; ErrInsecureKeyFile when the file is not
// a regular file or grants any permission to group or others (fix with
// chmod 600); ErrCorruptKeyFile when it is not a JSON array of entries with
// a unique non-empty "kid", a base64url 32-byte "key" and an RFC 3339
// "created", naming the entry at fault; I/O errors.
func Open(path string) (*Vault, error) {
	return open(path, time.Now)
}

func open(path string, now func() time.Time) (*Vault, error) {
	keys, err := loadOrCreate(path, now)
	if err != nil {
		return nil, err
	}
	fpKey, err := hkdf.Key(sha256.New, keys[0].secret, nil, fingerprintInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("secrets: derive fingerprint key: %w", err)
	}
	v := &Vault{path: path, now: now, keys: keys, byID: make(map[string]key, len(keys)), fpKey: fpKey}
	for _, k := range keys {
		v.byID[k.id] = k
	}
	return v, nil
}

// current returns the key new values are sealed with.
func (v *Vault) current() key {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.keys[len(v.keys)-1]
}

// CurrentKeyID returns the id of the key Seal uses now, the "kid" of every
// value sealed until the next Rotate.
func (v *Vault) CurrentKeyID() string {
	return v.current().id
}

// Rotate appends a fresh random key to the ring and makes it current. The
// key file is replaced atomically (temporary file 0600, sync, rename, sync
// of the directory); the in-memory ring changes only once the new file is in
// place, so on error both are unchanged. Values sealed before still open.
// Fingerprints do not change: they derive from the oldest key.
//
// Rotate writes the ring this Vault holds; it assumes one process owns the
// key file. Other processes sharing the file see the new key after they
// Open it again.
func (v *Vault) Rotate() error {
	v.rotateMu.Lock()
	defer v.rotateMu.Unlock()

	v.mu.RLock()
	keys := make([]key, len(v.keys), len(v.keys)+1)
	copy(keys, v.keys)
	v.mu.RUnlock()

	nk, err := newKey(v.now(), keys)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	keys = append(keys, nk)
	if err := keyfile.Replace(v.path, encodeKeyFile(keys)); err != nil {
		return fmt.Errorf("secrets: rotate: %w", err)
	}

	v.mu.Lock()
	v.keys = keys
	v.byID[nk.id] = nk
	v.mu.Unlock()
	return nil
}

// checkContext rejects contexts that cannot bind a value: empty, over 1024
// bytes, or not valid UTF-8 (JSON would silently replace the bad bytes).
func checkContext(context string) error {
	switch {
	case context == "":
		return errors.New("secrets: context must not be empty")
	case len(context) > maxContext:
		return fmt.Errorf("secrets: context is %d bytes, at most %d allowed", len(context), maxContext)
	case !utf8.ValidString(context):
		return errors.New("secrets: context is not valid UTF-8")
	}
	return nil
}

// Seal encrypts plaintext with the current key into a JWE compact
// serialization whose protected header holds alg "dir", enc "A256GCM", the
// key id ("kid") and context ("ctx"). Each call uses a fresh random IV, so
// sealing the same value twice gives different strings. context must be
// non-empty UTF-8 of at most 1024 bytes and is stored in clear.
func (v *Vault) Seal(plaintext []byte, context string) (string, error) {
	if err := checkContext(context); err != nil {
		return "", err
	}
	k := v.current()
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.DIRECT, Key: k.secret, KeyID: k.id},
		(&jose.EncrypterOptions{}).WithHeader(headerContext, context))
	if err != nil {
		return "", fmt.Errorf("secrets: seal with key %q: %w", k.id, err)
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", fmt.Errorf("secrets: seal with key %q: %w", k.id, err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("secrets: seal with key %q: %w", k.id, err)
	}
	return out, nil
}

// Unseal decrypts a value sealed by Seal with any key of the ring, for the
// same context. Errors: ErrMalformed (not five base64url parts, a
// non-empty encrypted key part, another alg or enc, no kid or ctx header),
// ErrWrongContext (the header names another context), ErrUnknownKey (the
// kid is not in the ring), ErrTampered (authentication failed). Messages name the kid and contexts,
// which are not secret, and never the plaintext or a key.
func (v *Vault) Unseal(sealed string, context string) ([]byte, error) {
	if err := checkContext(context); err != nil {
		return nil, err
	}
	// The encrypted key part is not authenticated; with alg "dir" it must be
	// empty, and anything there means the value was altered.
	parts := strings.Split(sealed, ".")
	if len(parts) != 5 {
		return nil, fmt.Errorf("%w: want 5 dot-separated parts, got %d", ErrMalformed, len(parts))
	}
	if parts[1] != "" {
		return nil, fmt.Errorf("%w: encrypted key part must be empty with alg \"dir\"", ErrMalformed)
	}
	// Strict decoding also refuses non-canonical encodings, so one sealed
	// value has exactly one spelling.
	for i, name := range partNames {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(parts[i]); err != nil {
			return nil, fmt.Errorf("%w: %s part is not base64url: %v", ErrMalformed, name, err)
		}
	}
	obj, err := jose.ParseEncryptedCompact(sealed, []jose.KeyAlgorithm{jose.DIRECT}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	kid := obj.Header.KeyID
	if kid == "" {
		return nil, fmt.Errorf("%w: no \"kid\" header", ErrMalformed)
	}
	got, ok := obj.Header.ExtraHeaders[headerContext].(string)
	if !ok {
		return nil, fmt.Errorf("%w: no string %q header", ErrMalformed, headerContext)
	}
	if got != context {
		return nil, fmt.Errorf("%w: value sealed for context %q, opened for %q", ErrWrongContext, got, context)
	}
	v.mu.RLock()
	k, ok := v.byID[kid]
	v.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: key id %q is not in key file %s", ErrUnknownKey, kid, v.path)
	}
	// go-jose's Decrypt errors carry no key or plaintext, but they add
	// nothing a caller can act on either: report the key id only.
	plaintext, err := obj.Decrypt(k.secret)
	if err != nil {
		return nil, fmt.Errorf("%w under key %q: altered, or the key file changed", ErrTampered, kid)
	}
	return plaintext, nil
}

// Fingerprint returns a keyed, non-reversible identifier of value for logs,
// audit records, metrics and API listings: the first 16 characters (96
// bits) of base64url(HMAC-SHA256(k, value)), where k is derived by HKDF-SHA256
// from the oldest key of the ring. Equal values give equal fingerprints for
// every Vault opened on the same key file, before and after Rotate; without
// the key file a fingerprint cannot be computed or tested against guesses.
func (v *Vault) Fingerprint(value []byte) string {
	m := hmac.New(sha256.New, v.fpKey)
	m.Write(value)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:fingerprintLen]
}

// Format prints a Vault as its key file and key ids, so that logging a
// Vault with any verb never prints key material.
func (v *Vault) Format(f fmt.State, _ rune) {
	if v == nil {
		fmt.Fprint(f, "secrets.Vault(nil)")
		return
	}
	v.mu.RLock()
	ids := make([]string, len(v.keys))
	for i, k := range v.keys {
		ids[i] = k.id
	}
	v.mu.RUnlock()
	fmt.Fprintf(f, "secrets.Vault{path: %q, kids: %q}", v.path, ids)
}
