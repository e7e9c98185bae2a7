// Package keyfile keeps a small secret file, such as a key ring, on local
// disk: it refuses a file that group or others may access, bounds its size,
// creates it exclusively and atomically, and replaces it atomically.
//
// The file's format belongs to the caller: Read returns bytes, Load and
// LoadOrCreate hand them to a decode function. No error of this package
// quotes the file's content, so a caller whose decode errors quote none
// either may show them anywhere.
//
// Error messages carry no package prefix ("insecure key file: ...",
// "create key file: ..."): callers add their own.
package keyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Errors matched with errors.Is.
var (
	// ErrInsecure: the file is not a regular file, or group or others may
	// access it (it must be mode 0600 or stricter).
	ErrInsecure = errors.New("insecure key file")
	// ErrTooLarge: the file is larger than the caller's limit.
	ErrTooLarge = errors.New("key file too large")
	// ErrCorrupt: Load or LoadOrCreate found a file that decode refused, or
	// one larger than the limit (such an error matches ErrTooLarge too).
	ErrCorrupt = errors.New("corrupt key file")
)

// Read returns the content of the file at path, at most max bytes.
//
// A missing file comes back as an error matching fs.ErrNotExist. A file
// that is not a regular file, or that grants any permission to group or
// others, is refused with ErrInsecure, whose message names the path and
// mode and says to run chmod 600; one larger than max with ErrTooLarge.
// The checks are made on the open file, so the file checked is the file
// read. Read never changes the file.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecure, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, which group or others may access; run chmod 600 %s",
			ErrInsecure, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, max)
	}
	return data, nil
}

// Load reads the file at path as Read does and decodes it. A missing file
// comes back as an error matching fs.ErrNotExist, an insecure one as
// ErrInsecure. An error of decode, and a file larger than max, come back
// as ErrCorrupt naming the path; decode's messages must quote no byte of
// the file.
func Load[T any](path string, max int64, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := Read(path, max)
	if errors.Is(err, ErrTooLarge) {
		return zero, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return zero, err
	}
	v, err := decode(data)
	if err != nil {
		return zero, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return v, nil
}

// LoadOrCreate loads the file at path as Load does or, when no file exists
// there, calls fresh for a new value and its encoding and creates the file
// with that encoding as Create does. If another process creates the file
// first, its content is loaded instead and fresh's value dropped, so
// concurrent callers all end up with the value of the one file.
//
// The directory of path must exist. Errors: the path is empty or its
// directory is missing or not a directory; those of Load (ErrInsecure,
// ErrCorrupt; a corrupt or insecure file is never replaced); fresh's
// error, as is; the file keeps appearing and vanishing between the read
// and the create; I/O errors.
func LoadOrCreate[T any](path string, max int64, decode func([]byte) (T, error), fresh func() (T, []byte, error)) (T, error) {
	var zero T
	if path == "" {
		return zero, errors.New("key file path is empty")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return zero, fmt.Errorf("key file directory %s does not exist", dir)
	case err != nil:
		return zero, fmt.Errorf("key file directory: %w", err)
	case !st.IsDir():
		return zero, fmt.Errorf("key file directory %s is not a directory", dir)
	}
	// Only a file appearing and vanishing again between each read and
	// create could exhaust the attempts.
	for range 3 {
		v, err := Load(path, max, decode)
		if !errors.Is(err, fs.ErrNotExist) {
			return v, err
		}
		v, data, err := fresh()
		if err != nil {
			return zero, err
		}
		err = Create(path, data)
		if errors.Is(err, fs.ErrExist) {
			continue // someone else created it: use theirs
		}
		if err != nil {
			return zero, fmt.Errorf("create key file: %w", err)
		}
		return v, nil
	}
	return zero, fmt.Errorf("key file %s keeps appearing and vanishing", path)
}

// Create puts data at path, mode 0600, only if nothing is there yet;
// otherwise it returns an error matching fs.ErrExist and changes nothing.
// It is atomic and exclusive: data goes to a temporary file next to path,
// which is synced and then hard-linked to path (the one exclusive step),
// so a reader sees the whole file or none, and of several concurrent
// creators exactly one succeeds. The directory is synced before Create
// returns, and the temporary file is always removed.
func Create(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err // a *os.LinkError; matches fs.ErrExist when path exists
	}
	return syncDir(filepath.Dir(path))
}

// Replace puts data at path, mode 0600, whether or not a file is there. It
// is atomic: data goes to a temporary file next to path, which is synced
// and renamed over path, so a reader, or a crash, sees the old file or the
// new one, never a mix. The directory is synced before Replace returns; on
// error the temporary file is removed and path is unchanged.
func Replace(path string, data []byte) error {
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

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
