package client

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestSlowLinkIsNoStall: a backlog that takes the link longer than a
// keepalive to carry, while the server reads and acknowledges at the
// link's pace, is written without the write deadline cutting the
// connection (before: "write: i/o timeout" after a keepalive, and every
// message in flight sent again after the reconnect).
func TestSlowLinkIsNoStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{KeepAlive: 10 * time.Second})
		sc, _ := d.accept(t, packet.V5, &packet.Connack{})
		synctest.Wait()
		const n = 16 // 16 × 64 KiB at 64 KiB per 2 s: 32 s of link
		payload := bytes.Repeat([]byte{'x'}, 64<<10)
		errs := make(chan error, n)
		for range n {
			go func() { errs <- c.Publish(t.Context(), Message{Topic: "a/b", Payload: payload, QoS: 1}) }()
		}
		for range n {
			p, ok := sc.Recv().(*packet.Publish)
			if !ok || p.Dup {
				t.Fatalf("got %+v, want a first PUBLISH", p)
			}
			sc.Send(&packet.Puback{PacketID: p.PacketID})
			time.Sleep(2 * time.Second)
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if st := c.Status(); !st.Connected || st.Sent != n || st.LastError != nil {
			t.Errorf("status %+v: want connected, %d sent once, no error", st, n)
		}
	})
}

// TestWindowLeavesRequestIDs: a server's Receive Maximum of 65,535 (or
// none, which means the same) does not give every packet identifier to
// publishes: SUBSCRIBE and UNSUBSCRIBE keep some.
func TestWindowLeavesRequestIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		d.accept(t, packet.V5, &packet.Connack{})
		synctest.Wait()
		c.mu.Lock()
		limit := c.limit
		c.mu.Unlock()
		if limit <= 0 || limit > 65535-requestIDs {
			t.Errorf("window %d, want at most %d", limit, 65535-requestIDs)
		}
	})
}

// TestReaderFedDrainKeepsDeadline: on a real socket, a drain that only the
// reader feeds (each PUBACK's Done publishes the next message, as the
// uplink's drain does) goes on past the write deadline the writer set
// when it last wrote. Before, the reader's non-blocking write met that
// deadline a keepalive later ("raw-write ... i/o timeout") and the
// connection was dropped on a link that moved. The deadline is shortened
// to 300 ms; the drain runs for 1.5 s of real time, as the kernel's clock
// is what judges a socket deadline.
func TestReaderFedDrainKeepsDeadline(t *testing.T) {
	defer func(d time.Duration) { minWriteDeadline = d }(minWriteDeadline)
	minWriteDeadline = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		for {
			p, err := packet.Read(r, packet.V5, 0)
			if err != nil {
				return
			}
			var reply packet.Packet
			switch p := p.(type) {
			case *packet.Connect:
				reply = &packet.Connack{}
			case *packet.Publish:
				reply = &packet.Puback{PacketID: p.PacketID}
			case *packet.Pingreq:
				reply = &packet.Pingresp{}
			default:
				continue
			}
			b, err := packet.Append(nil, reply, packet.V5)
			if err != nil {
				return
			}
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := New(Options{Addr: ln.Addr().String(), ClientID: "car", KeepAlive: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	var next func(error)
	msg := Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}
	next = func(err error) {
		if err == nil && time.Since(start) < 1500*time.Millisecond {
			var sent bool
			sent, err = c.TryPublishFlow(msg, Flow{Done: next})
			if err == nil && sent {
				return
			}
			if err == nil {
				err = errors.New("window full")
			}
		}
		done <- err
	}
	if sent, err := c.TryPublishFlow(msg, Flow{Done: next}); err != nil || !sent {
		t.Fatal(sent, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drain stopped: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("drain stalled; last error %v", c.Status().LastError)
	}
	if st := c.Status(); !st.Connected || st.LastError != nil || st.Acked < 10 {
		t.Errorf("status %+v: want one connection, no error, the drain acknowledged", st)
	}
}
