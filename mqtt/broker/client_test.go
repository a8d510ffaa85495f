package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// tclient is a raw packet-level test client.
type tclient struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
	v  packet.Version
}

// newServer starts a server for a test; it is shut down at cleanup.
func newServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.SysInterval == 0 {
		o.SysInterval = -1
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// pipe connects a client to s over net.Pipe.
func pipe(t testing.TB, s *Server, v packet.Version) *tclient {
	t.Helper()
	a, b := net.Pipe()
	go s.ServeConn(b)
	t.Cleanup(func() { a.Close() })
	return &tclient{t: t, nc: a, r: bufio.NewReader(a), v: v}
}

func (c *tclient) send(p packet.Packet) {
	c.t.Helper()
	b, err := packet.Append(nil, p, c.v)
	if err != nil {
		c.t.Fatalf("Append(%T): %v", p, err)
	}
	c.raw(b)
}

func (c *tclient) raw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads the next packet, failing the test after 5 s.
func (c *tclient) recv() packet.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.Read(c.r, c.v, 0)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// recvPub reads the next packet and requires a PUBLISH.
func (c *tclient) recvPub() *packet.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("got %T %+v, want PUBLISH", p, p)
	}
	return pub
}

// closed reads until the server closes the connection and returns the
// packets received before (a 5.0 DISCONNECT, typically).
func (c *tclient) closed() []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		p, err := packet.Read(c.r, c.v, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open; got %v", got)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.ErrUnexpectedEOF) {
				c.t.Logf("read after close: %v", err)
			}
			return got
		}
		got = append(got, p)
	}
}

// quiet asserts no packet arrives within d.
func (c *tclient) quiet(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	p, err := packet.Read(c.r, c.v, 0)
	if err == nil {
		c.t.Fatalf("got %T %+v, want nothing", p, p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("read: %v, want a timeout", err)
	}
}

func (c *tclient) connack(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	c.send(cp)
	p := c.recv()
	ack, ok := p.(*packet.Connack)
	if !ok {
		c.t.Fatalf("got %T, want CONNACK", p)
	}
	return ack
}

// connect connects with a client id and clean start, requiring success.
func connect(t testing.TB, s *Server, v packet.Version, id string, clean bool) *tclient {
	t.Helper()
	c := pipe(t, s, v)
	ack := c.connack(&packet.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60})
	if ack.Code != packet.Success {
		t.Fatalf("CONNACK %v", ack.Code)
	}
	return c
}

func (c *tclient) subscribe(id uint16, subs ...packet.Subscription) *packet.Suback {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: id, Subscriptions: subs})
	p := c.recv()
	sa, ok := p.(*packet.Suback)
	if !ok {
		c.t.Fatalf("got %T, want SUBACK", p)
	}
	if sa.PacketID != id {
		c.t.Fatalf("SUBACK id %d, want %d", sa.PacketID, id)
	}
	return sa
}

func (c *tclient) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	c.closed()
}

// ping round-trips a PINGREQ: every packet sent before has been handled.
func (c *tclient) ping() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	if p := c.recv(); p.Type() != packet.TypePingresp {
		c.t.Fatalf("got %T, want PINGRESP", p)
	}
}

func sub(filter string, qos byte) packet.Subscription {
	return packet.Subscription{Filter: filter, QoS: qos}
}

// publish sends a PUBLISH and completes its flow from the sender's side.
func (c *tclient) publish(p *packet.Publish) packet.ReasonCode {
	c.t.Helper()
	c.send(p)
	switch p.QoS {
	case 1:
		a, ok := c.recv().(*packet.Puback)
		if !ok || a.PacketID != p.PacketID {
			c.t.Fatalf("want PUBACK %d, got %+v", p.PacketID, a)
		}
		return a.Code
	case 2:
		a, ok := c.recv().(*packet.Pubrec)
		if !ok || a.PacketID != p.PacketID {
			c.t.Fatalf("want PUBREC %d, got %+v", p.PacketID, a)
		}
		if a.Code.IsError() {
			return a.Code
		}
		c.send(&packet.Pubrel{PacketID: p.PacketID})
		b, ok := c.recv().(*packet.Pubcomp)
		if !ok || b.PacketID != p.PacketID {
			c.t.Fatalf("want PUBCOMP %d, got %+v", p.PacketID, b)
		}
		return a.Code
	}
	c.ping()
	return 0
}

// ack completes the receiver's side of an incoming PUBLISH.
func (c *tclient) ack(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		r, ok := c.recv().(*packet.Pubrel)
		if !ok || r.PacketID != p.PacketID {
			c.t.Fatalf("want PUBREL %d, got %+v", p.PacketID, r)
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}
