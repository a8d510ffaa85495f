//go:build linux

package tpms_test

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"testing"
)

var ptyRE = regexp.MustCompile(`PTY is (/dev/pts/\d+)`)

// socatPair starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and returns
// the two pty paths it announces on stderr. socat is stopped when the test
// ends.
func socatPair(t *testing.T, ctx context.Context, bin string) (a, b string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var paths []string
	sc := bufio.NewScanner(stderr)
	for len(paths) < 2 && sc.Scan() {
		if m := ptyRE.FindStringSubmatch(sc.Text()); m != nil {
			paths = append(paths, m[1])
		}
	}
	if len(paths) < 2 {
		t.Fatalf("socat announced %d ptys, want 2 (err %v)", len(paths), sc.Err())
	}
	go func() { // keep draining stderr so socat never blocks on it
		for sc.Scan() {
		}
	}()
	return paths[0], paths[1]
}
