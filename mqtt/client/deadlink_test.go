package client

import (
	"io"
	"net"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestDeadLinkWhileSending: the link stops carrying anything back without
// a reset while the client publishes, either with the peer still taking
// the bytes (they vanish beyond it) or taking nothing (the send buffer
// fills). The client gives the link up within KeepAlive + PingTimeout + 1 s
// of the last byte it received, and dials again after its backoff.
func TestDeadLinkWhileSending(t *testing.T) {
	for _, reads := range []bool{true, false} {
		name := "bytes vanish"
		if !reads {
			name = "nothing taken"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const ka, pt = 10 * time.Second, 5 * time.Second
				c, d := pipeClient(t, Options{KeepAlive: ka, PingTimeout: pt, ReconnectMin: time.Second, ReconnectMax: time.Second})
				sc, _ := d.accept(t, packet.V5, &packet.Connack{})
				// Acknowledge the first publishes, then fall silent.
				for i := range 3 {
					if err := c.PublishAsync(t.Context(), Message{Topic: "a/b", Payload: []byte{byte(i)}, QoS: 1}, nil); err != nil {
						t.Fatal(err)
					}
					p := sc.Recv().(*packet.Publish)
					sc.Send(&packet.Puback{PacketID: p.PacketID})
				}
				synctest.Wait()
				lastRecv := time.Now()
				if reads {
					go io.Copy(io.Discard, sc.C)
				}
				// Keep publishing, a message a second, so that the link is
				// never quiet and no PINGREQ is due.
				stop := make(chan struct{})
				go func() {
					tk := time.NewTicker(time.Second)
					defer tk.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tk.C:
							c.PublishAsync(t.Context(), Message{Topic: "a/b", Payload: []byte("x"), QoS: 0}, nil)
						}
					}
				}()
				defer close(stop)
				d.accept(t, packet.V5, &packet.Connack{})
				el := time.Since(lastRecv)
				// At most KeepAlive + PingTimeout + the keeper's tick, + the
				// backoff. A write blocked on a full pipe fails sooner, at its
				// deadline (KeepAlive, at least 10 s); bytes that vanish must
				// not be taken for a dead link before KeepAlive + PingTimeout.
				lo := ka + pt
				if !reads {
					lo = ka
				}
				if el < lo || el > ka+pt+2*time.Second {
					t.Errorf("dialled again %v after the last byte received, want %v..%v", el, lo, ka+pt+2*time.Second)
				}
			})
		})
	}
}

// TestUserTimeout: on Linux the socket gets TCP_USER_TIMEOUT of KeepAlive +
// PingTimeout, so that the kernel too stops retransmitting into a dead link.
func TestUserTimeout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		sc := mqtttest.NewConn(t, s, packet.V5)
		sc.Recv()
		sc.Send(&packet.Connack{})
		io.Copy(io.Discard, s)
	}()
	c, err := Dial(t.Context(), Options{Addr: l.Addr().String(), ClientID: "car", KeepAlive: 20 * time.Second, PingTimeout: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.mu.Lock()
	nc := c.cur.nc.(*countConn).Conn
	c.mu.Unlock()
	if got := userTimeout(nc); got != 27*time.Second {
		t.Errorf("TCP_USER_TIMEOUT %v, want 27s", got)
	}
}

// TestTraffic: the socket counts and the PUBLISH bytes by class.
func TestTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		sc, cp := d.accept(t, packet.V5, &packet.Connack{})
		m := Message{Topic: "a/b", Payload: []byte("hello"), QoS: 1, Class: "telemetry"}
		if err := c.PublishAsync(t.Context(), m, nil); err != nil {
			t.Fatal(err)
		}
		p := sc.Recv().(*packet.Publish)
		sc.Send(&packet.Puback{PacketID: p.PacketID})
		sc.Send(&packet.Publish{Topic: "cmd/x", Payload: []byte("on"), QoS: 0})
		synctest.Wait()
		size := func(p packet.Packet) int64 {
			n, err := packet.Size(p, packet.V5)
			if err != nil {
				t.Fatal(err)
			}
			return int64(n)
		}
		tr := c.Traffic()
		pub, in := size(p), size(&packet.Publish{Topic: "cmd/x", Payload: []byte("on")})
		if tr.Publish["telemetry"] != pub || tr.PublishIn != in {
			t.Errorf("publish %v in %d, want telemetry %d in %d", tr.Publish, tr.PublishIn, pub, in)
		}
		wantOut := size(cp) + pub
		wantIn := size(&packet.Connack{}) + size(&packet.Puback{PacketID: p.PacketID}) + in
		if tr.SocketOut != wantOut || tr.SocketIn != wantIn {
			t.Errorf("socket out %d in %d, want %d %d", tr.SocketOut, tr.SocketIn, wantOut, wantIn)
		}
	})
}
