package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// leftovers returns the names in dir other than keep.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
outer:
	for _, e := range ents {
		for _, k := range keep {
			if e.Name() == k {
				continue outer
			}
		}
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer than the first", ""} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatalf("WriteFile(%q) = %v", content, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("ReadFile = %q, %v, want %q", got, err, content)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, %v, want 0600", fi.Mode(), err)
		}
	}
	if l := leftovers(t, dir, "state.json"); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}

// TestWriteFileErrorLeavesNothing: a rename that fails (the target is a
// non-empty directory) returns the error, keeps the target and removes the
// temporary file.
func TestWriteFileErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile over a non-empty directory = nil, want an error")
	}
	if l := leftovers(t, dir, "busy"); len(l) != 0 {
		t.Errorf("temporary files left behind: %v", l)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("target changed: %v, %v", fi, err)
	}
}

func TestWriteFileNoDirectory(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile into a missing directory = nil, want an error")
	}
}

// TestWriteFileUniqueTemp: two writers of the same path at once never
// share a temporary file, so each rename installs one whole version.
func TestWriteFileUniqueTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for i := range a {
		a[i], b[i] = 'a', 'b'
	}
	done := make(chan error, 2)
	for range 10 {
		go func() { done <- WriteFile(path, a, 0o644) }()
		go func() { done <- WriteFile(path, b, 0o644) }()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		got, _ := os.ReadFile(path)
		if len(got) != len(a) || (got[0] != 'a' && got[0] != 'b') {
			t.Fatalf("file holds %d bytes starting %q", len(got), got[:1])
		}
		for _, c := range got {
			if c != got[0] {
				t.Fatal("file mixes two versions")
			}
		}
	}
	if l := leftovers(t, dir, "f"); len(l) != 0 {
		t.Errorf("files left behind: %v", l)
	}
}
