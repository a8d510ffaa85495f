package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckWarnsInsecureConsole: the console off loopback without TLS is
// accepted only with insecure_remote, and -check says so.
func TestCheckWarnsInsecureConsole(t *testing.T) {
	tests := []struct {
		name, extra string
		code        int
		want        string
	}{
		{"loopback", `listen = "127.0.0.1:9883"`, 0, ""},
		{"remote", `listen = "0.0.0.0:9883"`, 1, "is not loopback: set tls_cert and tls_key, or insecure_remote = true"},
		{"remote insecure", "listen = \"0.0.0.0:9883\"\n[console]\ninsecure_remote = true", 0, "warning: console.insecure_remote: the console is served on 0.0.0.0:9883 without TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			body := "[gateway]\nid = \"car\"\n[health]\n" + tt.extra + "\n"
			if !strings.Contains(body, "[console]") {
				body += "[console]\n"
			}
			body += "enabled = true\n"
			os.WriteFile(path, []byte(body), 0o644)
			var out, errb bytes.Buffer
			if code := run([]string{"-config", path, "-check"}, nil, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, errb.String())
			}
			// Errors go to stderr, warnings to stdout.
			if got := errb.String() + out.String(); tt.want == "" && strings.Contains(got, "console.") || !strings.Contains(got, tt.want) {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
		})
	}
}
