package client

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestFlushFullSocket: the reader's flush never blocks; what a full socket
// does not take stays first in line for the writer, which is woken.
func TestFlushFullSocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	cn := &conn{nc: nc, raw: rawSocket(nc), now: time.Now, wsig: make(chan struct{}, 1), dead: make(chan struct{})}
	if cn.raw == nil {
		t.Fatal("no raw socket under a TCP connection")
	}
	// More than loopback's socket buffers hold while the peer reads
	// nothing.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	cn.wbuf = append([]byte(nil), want...)
	done := make(chan struct{})
	go func() {
		cn.flush()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("flush blocked on a full socket")
	}
	if cn.err() != nil {
		t.Fatal(cn.err())
	}
	rest := cn.wbuf
	if len(rest) == 0 || len(rest) == len(want) {
		t.Fatalf("%d of %d bytes left, want a part", len(rest), len(want))
	}
	select {
	case <-cn.wsig:
	default:
		t.Fatal("writer not woken for the rest")
	}
	// The wire has the head, wbuf the tail, in order.
	got := make([]byte, len(want)-len(rest))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), want) {
		t.Fatal("bytes out of order")
	}
}
