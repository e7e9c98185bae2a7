package keyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// secret is file content that no error may quote.
const secret = "s3cr3t-key-material-0123456789"

// writeFile puts content at a new path in a fresh directory with mode.
func writeFile(t *testing.T, content string, mode fs.FileMode) string {
	t.Helper()
	return writeIn(t, t.TempDir(), content, mode)
}

// writeIn puts content at dir/keys.json with mode.
func writeIn(t *testing.T, dir, content string, mode fs.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Chmod: WriteFile's mode is filtered by the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertOnly fails unless dir holds exactly the names given: no temporary
// file is left behind.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret[:8]) {
		t.Errorf("error quotes file content: %q", err)
	}
}

func TestReadMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o200, true},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o644, false},
		{0o620, false},
		{0o602, false},
		{0o610, false},
		{0o601, false},
		{0o666, false},
		{0o777, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, secret, tt.mode)
			data, err := Read(path, 1<<10)
			if tt.ok {
				if err != nil || string(data) != secret {
					t.Fatalf("Read = %q, %v; want the content", data, err)
				}
				return
			}
			if !errors.Is(err, ErrInsecure) {
				t.Fatalf("Read of a %04o file = %q, %v; want ErrInsecure", tt.mode, data, err)
			}
			if data != nil {
				t.Errorf("Read returned content with its error: %q", data)
			}
			for _, want := range []string{path, fmt.Sprintf("%04o", tt.mode), "run chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			assertNoSecret(t, err)
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != tt.mode {
				t.Errorf("Read changed the mode: %v, %v", st.Mode(), err)
			}
		})
	}
}

func TestReadFileKinds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	insecure := writeFile(t, secret, 0o644)
	secure := writeFile(t, secret, 0o600)
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path string
		is         error // nil: the read succeeds
		msg        string
	}{
		{"directory", t.TempDir(), ErrInsecure, "is not a regular file"},
		{"missing", filepath.Join(dir, "nope"), fs.ErrNotExist, ""},
		{"missing directory", filepath.Join(dir, "nope", "keys.json"), fs.ErrNotExist, ""},
		// The checks apply to the file read, not to a link's own mode.
		{"link to a 0644 file", link("to-insecure", insecure), ErrInsecure, "has mode 0644"},
		{"link to a 0600 file", link("to-secure", secure), nil, ""},
		{"link to a directory", link("to-dir", t.TempDir()), ErrInsecure, "is not a regular file"},
		{"dangling link", link("dangling", filepath.Join(dir, "gone")), fs.ErrNotExist, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := Read(tt.path, 1<<10)
			if tt.is == nil {
				if err != nil || string(data) != secret {
					t.Fatalf("Read = %q, %v; want the content", data, err)
				}
				return
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("Read = %q, %v; want %v", data, err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s and say %q", err, tt.path, tt.msg)
			}
			assertNoSecret(t, err)
		})
	}
}

func TestReadSizeLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size, max int64
		ok        bool
	}{
		{0, 0, true},
		{1, 0, false},
		{99, 100, true},
		{100, 100, true},
		{101, 100, false},
		{1<<20 + 1, 1 << 20, false},
		{5 << 20, 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d", tt.size, tt.max), func(t *testing.T) {
			t.Parallel()
			content := strings.Repeat(secret, int(tt.size)/len(secret)+1)[:tt.size]
			path := writeFile(t, content, 0o600)
			data, err := Read(path, tt.max)
			if tt.ok {
				if err != nil || string(data) != content {
					t.Fatalf("Read = %d bytes, %v; want the %d bytes", len(data), err, tt.size)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read = %d bytes, %v; want ErrTooLarge only", len(data), err)
			}
			if want := fmt.Sprintf("%s is larger than %d bytes", path, tt.max); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			assertNoSecret(t, err)
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing *string // content already at path, if any
	}{
		{"new file", nil},
		{"file exists", new("old content")},
		{"empty file exists", new("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "keys.json")
			want := secret
			if tt.existing != nil {
				want = *tt.existing
				if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := Create(path, []byte(secret))
			if tt.existing == nil && err != nil {
				t.Fatalf("Create: %v", err)
			}
			if tt.existing != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Create over a file = %v, want fs.ErrExist", err)
			}
			got, err := Read(path, 1<<10)
			if err != nil || string(got) != want {
				t.Errorf("file holds %q, %v; want %q", got, err, want)
			}
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, %v; want 0600", st.Mode(), err)
			}
			assertOnly(t, dir, "keys.json")
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		err := Create(filepath.Join(dir, "nope", "keys.json"), []byte(secret))
		if err == nil || errors.Is(err, fs.ErrExist) {
			t.Fatalf("Create in a missing directory = %v, want an error other than fs.ErrExist", err)
		}
		assertOnly(t, dir)
	})
}

// TestCreateRace starts several creators at once: exactly one wins, the
// others get fs.ErrExist, and every reader afterwards sees the winner's
// whole content.
func TestCreateRace(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "keys.json")
			const n = 12
			errs := make([]error, n)
			reads := make([][]byte, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = Create(path, bytes.Repeat([]byte{byte('a' + i)}, 64<<10))
					reads[i], _ = Read(path, 1<<20)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("creators %d and %d both succeeded", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, fs.ErrExist):
					t.Errorf("creator %d: %v, want nil or fs.ErrExist", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no creator succeeded")
			}
			want := bytes.Repeat([]byte{byte('a' + winner)}, 64<<10)
			for i, got := range reads {
				if !bytes.Equal(got, want) {
					t.Errorf("creator %d read %d bytes starting %q, want the winner's %d bytes", i, len(got), got[:min(len(got), 8)], len(want))
				}
			}
			assertOnly(t, dir, "keys.json")
		})
	}
}

func TestReplace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing *string
		mode     fs.FileMode
	}{
		{"new file", nil, 0},
		{"over a file", new("old content"), 0o600},
		{"over a looser file", new("old content"), 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "keys.json")
			if tt.existing != nil {
				path = writeFile(t, *tt.existing, tt.mode)
				dir = filepath.Dir(path)
			}
			if err := Replace(path, []byte(secret)); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			// The result is the new content with mode 0600, whatever was there.
			if got, err := Read(path, 1<<10); err != nil || string(got) != secret {
				t.Errorf("file holds %q, %v; want %q", got, err, secret)
			}
			assertOnly(t, dir, "keys.json")
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := Replace(filepath.Join(dir, "nope", "keys.json"), []byte(secret)); err == nil {
			t.Fatal("Replace in a missing directory succeeded")
		}
		assertOnly(t, dir)
	})
	t.Run("path is a directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "keys.json")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := Replace(path, []byte(secret)); err == nil {
			t.Fatal("Replace over a directory succeeded")
		}
		if st, err := os.Stat(path); err != nil || !st.IsDir() {
			t.Errorf("Replace changed the directory: %v, %v", st, err)
		}
		assertOnly(t, dir, "keys.json")
	})
}

// TestReplaceAtomic has readers read the file while it is replaced, in
// turn, by two contents of different sizes: a reader must only ever see
// one of them whole, never a truncated or mixed file.
func TestReplaceAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	a := bytes.Repeat([]byte("a"), 256<<10)
	b := bytes.Repeat([]byte("b"), 192<<10)
	if err := Replace(path, a); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !done.Load() {
				got, err := Read(path, 1<<20)
				if err != nil {
					t.Errorf("Read during Replace: %v", err)
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					t.Errorf("reader saw %d bytes, not one of the two whole contents", len(got))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 60 {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := Replace(path, data); err != nil {
			t.Fatalf("Replace #%d: %v", i, err)
		}
	}
	done.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Error("no read overlapped the replacements")
	}
	assertOnly(t, dir, "keys.json")
}

// ring is the value type of the Load tests: lines of the file.
type ring []string

func decodeRing(data []byte) (ring, error) {
	if len(data) == 0 {
		return nil, errors.New("file is empty")
	}
	if !bytes.HasPrefix(data, []byte("ring\n")) {
		return nil, errors.New(`does not start with "ring"`)
	}
	return strings.Fields(string(data[5:])), nil
}

func encodeRing(r ring) []byte { return []byte("ring\n" + strings.Join(r, "\n")) }

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		want    ring
		is      []error
		msg     string
	}{
		{"valid", "ring\nk1 k2", 0o600, ring{"k1", "k2"}, nil, ""},
		{"empty", "", 0o600, nil, []error{ErrCorrupt}, ": file is empty"},
		{"undecodable", secret, 0o600, nil, []error{ErrCorrupt}, `: does not start with "ring"`},
		{"too large", "ring\n" + strings.Repeat("k ", 100), 0o600, nil, []error{ErrCorrupt, ErrTooLarge}, "is larger than 64 bytes"},
		{"insecure", "ring\nk1", 0o640, nil, []error{ErrInsecure}, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.content, tt.mode)
			got, err := Load(path, 64, decodeRing)
			if tt.is == nil {
				if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("Load = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			for _, is := range tt.is {
				if !errors.Is(err, is) {
					t.Errorf("Load = %q, %v; want %v", got, err, is)
				}
			}
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not name %s and say %q", err, path, tt.msg)
			}
			assertNoSecret(t, err)
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		if _, err := Load(filepath.Join(t.TempDir(), "keys.json"), 64, decodeRing); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing file = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	errFresh := errors.New("no entropy today")
	tests := []struct {
		name string
		// setup prepares dir and returns the path to load.
		setup     func(t *testing.T, dir string) string
		freshErr  error
		want      ring
		fresh     int // calls of fresh expected
		is        error
		msg       string
		unchanged bool // an existing file must be left as it was
	}{
		{name: "creates", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "keys.json") },
			want: ring{"fresh"}, fresh: 1},
		{name: "loads", setup: func(t *testing.T, dir string) string {
			return writeIn(t, dir, "ring\nold", 0o600)
		}, want: ring{"old"}, unchanged: true},
		{name: "loads 0400", setup: func(t *testing.T, dir string) string {
			return writeIn(t, dir, "ring\nold", 0o400)
		}, want: ring{"old"}, unchanged: true},
		{name: "corrupt is not replaced", setup: func(t *testing.T, dir string) string {
			return writeIn(t, dir, secret, 0o600)
		}, is: ErrCorrupt, msg: "does not start", unchanged: true},
		{name: "empty is not replaced", setup: func(t *testing.T, dir string) string {
			return writeIn(t, dir, "", 0o600)
		}, is: ErrCorrupt, msg: "file is empty", unchanged: true},
		{name: "insecure is not replaced", setup: func(t *testing.T, dir string) string {
			return writeIn(t, dir, "ring\nold", 0o644)
		}, is: ErrInsecure, msg: "chmod 600", unchanged: true},
		{name: "path is a directory", setup: func(t *testing.T, dir string) string { return dir },
			is: ErrInsecure, msg: "is not a regular file"},
		{name: "fresh fails", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "keys.json") },
			freshErr: errFresh, fresh: 1, is: errFresh, msg: errFresh.Error()},
		{name: "empty path", setup: func(t *testing.T, dir string) string { return "" },
			msg: "key file path is empty"},
		{name: "missing directory", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "keys.json") },
			msg: "does not exist"},
		{name: "parent is a file", setup: func(t *testing.T, dir string) string {
			return filepath.Join(writeIn(t, dir, "", 0o600), "keys.json")
		}, msg: "is not a directory"},
		// A dangling link reads as missing but blocks the create, just as
		// a file appearing and vanishing again would.
		{name: "dangling link", setup: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "keys.json")
			if err := os.Symlink(filepath.Join(dir, "gone"), path); err != nil {
				t.Fatal(err)
			}
			return path
		}, fresh: 3, msg: "keeps appearing and vanishing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)
			before, _ := os.ReadFile(path)
			calls := 0
			got, err := LoadOrCreate(path, 64, decodeRing, func() (ring, []byte, error) {
				calls++
				r := ring{"fresh"}
				return r, encodeRing(r), tt.freshErr
			})
			if calls != tt.fresh {
				t.Errorf("fresh called %d times, want %d", calls, tt.fresh)
			}
			if tt.msg == "" {
				if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("LoadOrCreate = %q, %v; want %q", got, err, tt.want)
				}
				// What is returned is what a later load finds.
				if again, err := Load(path, 64, decodeRing); err != nil || fmt.Sprint(again) != fmt.Sprint(tt.want) {
					t.Errorf("file loads as %q, %v; want %q", again, err, tt.want)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("LoadOrCreate = %q, %v; want an error saying %q", got, err, tt.msg)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v is not %v", err, tt.is)
				}
				if got != nil {
					t.Errorf("LoadOrCreate returned %q with its error", got)
				}
				assertNoSecret(t, err)
			}
			if tt.unchanged {
				if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
					t.Errorf("file changed from %q to %q", before, after)
				}
			}
			if tt.freshErr != nil {
				assertOnly(t, dir)
			}
		})
	}
}

// TestLoadOrCreateConcurrent has callers with different fresh values race
// to create the file: all must return the one value the file holds.
func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	const n = 12
	got := make([]ring, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = LoadOrCreate(path, 64, decodeRing, func() (ring, []byte, error) {
				r := ring{fmt.Sprintf("k%d", i)}
				return r, encodeRing(r), nil
			})
		})
	}
	close(start)
	wg.Wait()
	onDisk, err := Load(path, 64, decodeRing)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if fmt.Sprint(got[i]) != fmt.Sprint(onDisk) {
			t.Errorf("caller %d got %q, the file holds %q", i, got[i], onDisk)
		}
	}
	assertOnly(t, dir, "keys.json")
}
