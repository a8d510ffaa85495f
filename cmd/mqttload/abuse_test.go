package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/mqtt/broker"
)

// TestAbuseTiny runs every attack of scripts/abuse.sh for a moment against
// an in-process broker: each reports its figures, and the real account
// still logs in during and after it.
func TestAbuseTiny(t *testing.T) {
	addr := startBroker(t, broker.Options{SysInterval: -1, MaxPendingConnections: 8})
	var out, errOut bytes.Buffer
	args := []string{"-addr", addr, "-pid", fmt.Sprint(os.Getpid()), "-d", "400ms", "-probe", "50ms",
		"-conns", "40", "-silent", "30", "-sessions", "4", "-msgs", "4", "-size", "1000",
		"-retained", "4", "-big", "10000", "-guessers", "2"}
	if code := run(append([]string{"abuse"}, args...), &out, &errOut); code != 0 {
		t.Fatalf("abuse = %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want one per attack:\n%s", len(lines), out.String())
	}
	for i, row := range []string{"4", "5", "6", "7", "10"} {
		if !strings.HasPrefix(lines[i], "abuse row="+row+" peak_rss_bytes=") || strings.Contains(lines[i], "peak_rss_bytes=0 ") ||
			!strings.Contains(lines[i], "after_ok=5/5") {
			t.Errorf("row %s: %s", row, lines[i])
		}
	}
}
