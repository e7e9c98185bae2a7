package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxKeyFile bounds the key file; a ring of thousands of keys fits.
const maxKeyFile = 1 << 20

// keyFileEntry is one element of the key file's JSON array.
type keyFileEntry struct {
	KID     string `json:"kid"`
	Key     string `json:"key"`
	Created string `json:"created"`
}

// errExist reports that createKeyFile lost the race to another creator.
var errExist = errors.New("key file already exists")

// loadOrCreate reads the ring at path, or creates a one-key ring there when
// no file exists. If another process creates the file first, its ring is
// read instead.
func loadOrCreate(path string, now func() time.Time) ([]key, error) {
	if path == "" {
		return nil, errors.New("secrets: key file path is empty")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("secrets: key file directory %s does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("secrets: key file directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("secrets: key file directory %s is not a directory", dir)
	}
	// Only a file appearing and vanishing again between each read and
	// create could exhaust the attempts.
	for range 3 {
		keys, err := readKeyFile(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return keys, err
		}
		k, err := newKey(now(), nil)
		if err != nil {
			return nil, err
		}
		keys = []key{k}
		err = createKeyFile(path, encodeKeyFile(keys))
		if errors.Is(err, errExist) {
			continue // someone else created it: use theirs
		}
		if err != nil {
			return nil, fmt.Errorf("secrets: create key file: %w", err)
		}
		return keys, nil
	}
	return nil, fmt.Errorf("secrets: key file %s keeps appearing and vanishing", path)
}

// readKeyFile reads and checks the key file; a missing file comes back as an
// error matching fs.ErrNotExist. Permissions are checked on the open file,
// so the file checked is the file read.
func readKeyFile(path string) ([]key, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureKeyFile, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, which group or others may access; run chmod 600 %s",
			ErrInsecureKeyFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: read key file: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptKeyFile, path, maxKeyFile)
	}
	keys, err := decodeKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorruptKeyFile, path, err)
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

// newKey returns a fresh random key with a random id not used in ring.
func newKey(now time.Time, ring []key) (key, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return key{}, fmt.Errorf("secrets: generate key: %w", err)
	}
	for {
		var id [9]byte
		if _, err := rand.Read(id[:]); err != nil {
			return key{}, fmt.Errorf("secrets: generate key id: %w", err)
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

// writeTemp writes data to a new 0600 file next to path and syncs it,
// returning its name. The caller removes it.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// createKeyFile puts data at path only if nothing is there yet (errExist
// otherwise): the hard link of a complete temporary file is the atomic,
// exclusive step.
func createKeyFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errExist
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// replaceKeyFile atomically replaces the file at path with data.
func replaceKeyFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
