//go:build linux

package serialtest

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

func TestPTYRoundTrip(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := os.OpenFile(p.SlavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Bytes a terminal would mangle in cooked mode: CR, NUL, ^C, 0xff.
	msg := []byte("$W0#\r\n\x00\x03\xff")
	if _, err := p.Master.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Errorf("slave read %q, want %q", got, msg)
	}
	if _, err := s.Write([]byte("ok\n")); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 3)
	if _, err := io.ReadFull(p.Master, back); err != nil {
		t.Fatal(err)
	}
	if string(back) != "ok\n" {
		t.Errorf("master read %q, want %q", back, "ok\n")
	}
}

// TestMasterDeadline: with nobody reading the slave side, a write on
// Master stops at its deadline instead of blocking for ever.
func TestMasterDeadline(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Master.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("SetWriteDeadline = %v; Master must stay pollable", err)
	}
	buf := make([]byte, 64<<10)
	for range 100 {
		if _, err := p.Master.Write(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write = %v, want a deadline error", err)
			}
			return
		}
	}
	t.Fatal("6 MB written to a pty nobody reads")
}

// TestLinkTakeover: closing a PTY leaves a link that a newer PTY took over.
func TestLinkTakeover(t *testing.T) {
	link := t.TempDir() + "/ttyUSB"
	a, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Link(link); err != nil {
		t.Fatal(err)
	}
	if err := b.Link(link); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if got, err := os.Readlink(link); err != nil || got != b.SlavePath {
		t.Fatalf("after closing the old PTY the link is %q, %v; want %s", got, err, b.SlavePath)
	}
	b.Close()
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link left after closing its PTY: %v", err)
	}
}
