package daemon

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/google/go-cmp/cmp"
)

var updateWarn = flag.Bool("update", false, "rewrite the golden .warn files")

// TestGoldenWarnings: each configs/testdata/warn/*.toml is valid and gives
// the warnings in its .warn file.
func TestGoldenWarnings(t *testing.T) {
	files, _ := filepath.Glob("../../configs/testdata/warn/*.toml")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	t.Chdir("../..")
	for _, f := range files {
		name := "configs/testdata/warn/" + filepath.Base(f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := config.Load(name)
			if err == nil {
				err = Check(c, testRegistry())
			}
			if err != nil {
				t.Fatalf("%s is not valid: %v", name, err)
			}
			var b strings.Builder
			for _, w := range Warnings(c, testRegistry()) {
				b.WriteString(w.Error() + "\n")
			}
			golden := strings.TrimSuffix(name, ".toml") + ".warn"
			if *updateWarn {
				os.WriteFile(golden, []byte(b.String()), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		})
	}
}

// TestShippedConfigsWarnNothing: the shipped files pass -check without a
// warning.
func TestShippedConfigsWarnNothing(t *testing.T) {
	t.Setenv("VIN", "WVWZZZ1JZ3W386752")
	files, _ := filepath.Glob("../../configs/*.toml")
	if len(files) < 3 {
		t.Fatalf("configs: %v", files)
	}
	for _, f := range files {
		c, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range Warnings(c, testRegistry()) {
			t.Errorf("%s: %v", f, w)
		}
	}
}

func TestIntersects(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"v/+/cmd/+/+", "v/X/cmd/+/+", true},
		{"v/#", "v/X/cmd/+/+", true},
		{"#", "v/X/cmd/+/+", true},
		{"v/X/cmd", "v/X/cmd/+/+", false},
		{"v/X/cmd/#", "v/X/cmd/+/+", true},
		{"v/X/telemetry/#", "v/X/cmd/+/+", false},
		{"v/X/cmd/a/b/c", "v/X/cmd/+/+", false},
		{"v/+", "v/X/cmd/+/+", false},
		{"a/#", "a", true},
		{"a", "a/#", true},
		{"a/b", "a/+", true},
	} {
		if got := intersects(tt.a, tt.b); got != tt.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := intersects(tt.b, tt.a); got != tt.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
