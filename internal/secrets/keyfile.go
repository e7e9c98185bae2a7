package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/keyfile"
)

// maxKeyFile bounds the key file; a ring of thousands of keys fits.
const maxKeyFile = 1 << 20

// keyFileEntry is one element of the key file's JSON array.
type keyFileEntry struct {
	KID     string `json:"kid"`
	Key     string `json:"key"`
	Created string `json:"created"`
}

// loadOrCreate reads the ring at path, or creates a one-key ring there when
// no file exists. If another process creates the file first, its ring is
// read instead.
func loadOrCreate(path string, now func() time.Time) ([]key, error) {
	keys, err := keyfile.LoadOrCreate(path, maxKeyFile, decodeKeyFile, func() ([]key, []byte, error) {
		k, err := newKey(now(), nil)
		if err != nil {
			return nil, nil, err
		}
		keys := []key{k}
		return keys, encodeKeyFile(keys), nil
	})
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return keys, nil
}

// decodeKeyFile parses and checks a key ring. Its error messages quote no
// byte of a key: JSON errors are reduced to their offset and field.
func decodeKeyFile(data []byte) ([]key, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var entries []keyFileEntry
	if err := dec.Decode(&entries); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the key array at byte offset %d", dec.InputOffset())
	}
	if len(entries) == 0 {
		return nil, errors.New("holds no keys")
	}
	keys := make([]key, len(entries))
	seen := make(map[string]int, len(entries))
	for i, e := range entries {
		if e.KID == "" {
			return nil, fmt.Errorf("entry [%d]: \"kid\" is missing or empty", i)
		}
		if j, dup := seen[e.KID]; dup {
			return nil, fmt.Errorf("entry [%d]: kid %q repeats entry [%d]", i, e.KID, j)
		}
		seen[e.KID] = i
		if e.Key == "" {
			return nil, fmt.Errorf("entry [%d] (kid %q): \"key\" is missing or empty", i, e.KID)
		}
		secret, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(e.Key, "="))
		if err != nil {
			// A CorruptInputError holds only an offset.
			return nil, fmt.Errorf("entry [%d] (kid %q): \"key\" is not base64url: %v", i, e.KID, err)
		}
		if len(secret) != keySize {
			return nil, fmt.Errorf("entry [%d] (kid %q): \"key\" is %d bytes, want %d", i, e.KID, len(secret), keySize)
		}
		if e.Created == "" {
			return nil, fmt.Errorf("entry [%d] (kid %q): \"created\" is missing or empty", i, e.KID)
		}
		created, err := time.Parse(time.RFC3339, e.Created)
		if err != nil {
			return nil, fmt.Errorf("entry [%d] (kid %q): \"created\" %q is not an RFC 3339 time", i, e.KID, e.Created)
		}
		keys[i] = key{id: e.KID, secret: secret, created: created}
	}
	return keys, nil
}

// describeJSONError turns a decoding error into a message with a position
// and no file content.
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte offset %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return errors.New("want a JSON array of {\"kid\", \"key\", \"created\"} objects")
	case errors.As(err, &typ):
		return fmt.Errorf("%q at byte offset %d must be a JSON string", typ.Field, typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("JSON is truncated")
	case strings.Contains(err.Error(), "unknown field"):
		return errors.New("an entry has a field other than \"kid\", \"key\" and \"created\"")
	default:
		return errors.New("want a JSON array of {\"kid\", \"key\", \"created\"} objects")
	}
}

// encodeKeyFile renders the ring, oldest key first.
func encodeKeyFile(keys []key) []byte {
	entries := make([]keyFileEntry, len(keys))
	for i, k := range keys {
		entries[i] = keyFileEntry{
			KID:     k.id,
			Key:     base64.RawURLEncoding.EncodeToString(k.secret),
			Created: k.created.UTC().Format(time.RFC3339),
		}
	}
	data, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		panic("secrets: encode key file: " + err.Error()) // strings only: cannot fail
	}
	return append(data, '\n')
}

// newKey returns a fresh random key with a random id not used in ring. Its
// errors carry no "secrets:" prefix: the caller adds it.
func newKey(now time.Time, ring []key) (key, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return key{}, fmt.Errorf("generate key: %w", err)
	}
	for {
		var id [9]byte
		if _, err := rand.Read(id[:]); err != nil {
			return key{}, fmt.Errorf("generate key id: %w", err)
		}
		kid := "k" + base64.RawURLEncoding.EncodeToString(id[:])
		used := false
		for _, k := range ring {
			used = used || k.id == kid
		}
		if !used {
			return key{id: kid, secret: secret, created: now.UTC().Truncate(time.Second)}, nil
		}
	}
}
