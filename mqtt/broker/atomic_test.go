package broker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name string
		// prepare makes dir what the write meets and returns the path to
		// write.
		prepare func(t *testing.T, dir string) string
		wantErr bool
		// want is what dir holds afterwards, sorted: no temporary file
		// is left behind, whether the write worked or not.
		want []string
	}{
		{
			name:    "new file",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "passwd") },
			want:    []string{"passwd"},
		},
		{
			name: "replaces a file",
			prepare: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "passwd")
				if err := os.WriteFile(p, []byte("a much longer old content"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			want: []string{"passwd"},
		},
		{
			// The rename fails: the target is a non-empty directory,
			// which is left as it was.
			name: "rename fails",
			prepare: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "busy")
				if err := os.MkdirAll(filepath.Join(p, "child"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: true,
			want:    []string{"busy"},
		},
		{
			name:    "no directory",
			prepare: func(t *testing.T, dir string) string { return filepath.Join(dir, "missing", "passwd") },
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.prepare(t, dir)
			err := writeFileAtomic(path, []byte("new"), 0o600)
			if (err != nil) != tt.wantErr {
				t.Fatalf("writeFileAtomic = %v, want error %v", err, tt.wantErr)
			}
			ents, rerr := os.ReadDir(dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("directory holds %v, want %v", got, tt.want)
			}
			if tt.wantErr {
				return
			}
			b, rerr := os.ReadFile(path)
			if rerr != nil || string(b) != "new" {
				t.Errorf("ReadFile = %q, %v, want %q", b, rerr, "new")
			}
			if fi, rerr := os.Stat(path); rerr != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode = %v, %v, want 0600", fi.Mode(), rerr)
			}
		})
	}
}
