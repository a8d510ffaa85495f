//go:build linux

package serialtest

import (
	"io"
	"os"
	"testing"
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
