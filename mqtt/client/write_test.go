package client

import (
	"bytes"
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
