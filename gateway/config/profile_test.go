package config

import (
	"os"
	"strings"
	"testing"
)

// TestGoldenProfile checks the warnings of configs/testdata/profile/*.toml
// against their .warn files (go test -update rewrites them). Each file is
// a valid configuration: only the profile's warnings are expected.
func TestGoldenProfile(t *testing.T) {
	testGolden(t, "profile", ".warn", func(t *testing.T, name string, data []byte) string {
		if err := check(name, data); err != nil {
			t.Fatalf("%s: not a valid configuration: %v", name, err)
		}
		c, _ := Parse(name, data, testEnv)
		var b strings.Builder
		for _, w := range c.ProfileWarnings() {
			b.WriteString(w.Error() + "\n")
		}
		return b.String()
	})
}

// TestProfileExamples checks that the shipped examples for each cloud
// draw no warning: they are what an operator copies.
func TestProfileExamples(t *testing.T) {
	env := func(name string) (string, bool) {
		if name == "VIN" {
			return "WVWZZZ1JZ3W386752", true
		}
		return "", false
	}
	for _, f := range []string{"aws-iot.toml", "azure-iot-hub.toml", "self-hosted.toml"} {
		data, err := os.ReadFile("../../configs/" + f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(f, data, env)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		for _, w := range c.ProfileWarnings() {
			t.Errorf("%s: warning: %v", f, w)
		}
	}
}

func TestShortestRemote(t *testing.T) {
	tests := []struct {
		name           string
		filter, prefix string
		want           string
	}{
		{"hash", "local/#", "remote", "remote"},
		{"plus", "local/+/data/#", "a/b", "a/b/+/data"},
		{"exact", "local/x", "r/", "r"},
		{"all", "#", "r", "r"},
	}
	for _, tt := range tests {
		if got := shortestRemote(BridgeRule{Filter: tt.filter, Prefix: tt.prefix}); got != tt.want {
			t.Errorf("%s: shortestRemote(%q, %q) = %q, want %q", tt.name, tt.filter, tt.prefix, got, tt.want)
		}
	}
}

func TestSlashes(t *testing.T) {
	tests := []struct {
		topic string
		want  int
	}{
		{"a", 0},
		{"a/b/c", 2},
		{"$aws/rules/ingest/a/b", 1},
		{"$aws/things/t/shadow/update", 4},
	}
	for _, tt := range tests {
		if got := slashes(tt.topic); got != tt.want {
			t.Errorf("slashes(%q) = %d, want %d", tt.topic, got, tt.want)
		}
	}
}
