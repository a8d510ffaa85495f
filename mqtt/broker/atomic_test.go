package broker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dirNames returns the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	for _, content := range []string{"first", "second, longer than the first", ""} {
		if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatalf("writeFileAtomic(%q) = %v", content, err)
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
	if got, want := dirNames(t, dir), []string{"passwd"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
}

// TestWriteFileAtomicErrorCleansUp: a rename that fails (the target is a
// non-empty directory) returns the error, leaves the target alone and
// removes the temporary file.
func TestWriteFileAtomicErrorCleansUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("x"), 0o600); err == nil {
		t.Fatal("writeFileAtomic over a non-empty directory = nil, want an error")
	}
	if got, want := dirNames(t, dir), []string{"busy"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v: temporary file left behind", got, want)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("target changed: %v, %v", fi, err)
	}
}

func TestWriteFileAtomicNoDirectory(t *testing.T) {
	if err := writeFileAtomic(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("writeFileAtomic into a missing directory = nil, want an error")
	}
}
