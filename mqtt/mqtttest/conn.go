package mqtttest

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// Pipe returns the two ends of an in-memory, synchronous, full-duplex
// connection (net.Pipe): a write blocks until the other end reads.
func Pipe() (client, server net.Conn) { return net.Pipe() }

// TCPPipe returns the two ends of a loopback TCP connection, buffered by
// the kernel like a real link. Both are closed when the test ends.
func TCPPipe(t testing.TB) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatalf("mqtttest: %v", r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// Timeout bounds every Conn read and write.
const Timeout = 10 * time.Second

// Conn is a packet-level MQTT connection for scripting exchanges in
// tests: each call fails the test on error. Not safe for concurrent use.
type Conn struct {
	C       net.Conn
	Version packet.Version
	MaxSize int // maximum packet size accepted by Recv; 0: none

	t testing.TB
	r *bufio.Reader
	w []byte
}

// NewConn wraps c for protocol level v.
func NewConn(t testing.TB, c net.Conn, v packet.Version) *Conn {
	return &Conn{C: c, Version: v, t: t, r: bufio.NewReader(c)}
}

// Dial connects to addr over TCP, without sending anything; the
// connection is closed when the test ends.
func Dial(t testing.TB, addr string, v packet.Version) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("mqtttest: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return NewConn(t, c, v)
}

// Send encodes and writes p.
func (c *Conn) Send(p packet.Packet) {
	c.t.Helper()
	var err error
	c.w, err = packet.Append(c.w[:0], p, c.Version)
	if err != nil {
		c.t.Fatalf("mqtttest: encode %v: %v", p.Type(), err)
	}
	c.SendRaw(c.w)
}

// SendRaw writes raw bytes, e.g. a malformed packet.
func (c *Conn) SendRaw(b []byte) {
	c.t.Helper()
	c.C.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.C.Write(b); err != nil {
		c.t.Fatalf("mqtttest: write: %v", err)
	}
}

// Recv reads and decodes the next packet.
func (c *Conn) Recv() packet.Packet {
	c.t.Helper()
	p, err := c.TryRecv()
	if err != nil {
		c.t.Fatalf("mqtttest: read: %v", err)
	}
	return p
}

// TryRecv reads and decodes the next packet, returning the error (e.g.
// io.EOF when the peer closed the connection).
func (c *Conn) TryRecv() (packet.Packet, error) {
	c.C.SetReadDeadline(time.Now().Add(Timeout))
	return packet.Read(c.r, c.Version, c.MaxSize)
}

// Connect sends p (its Version set to the Conn's when zero) and returns
// the CONNACK, failing the test if the server answered anything else.
func (c *Conn) Connect(p *packet.Connect) *packet.Connack {
	c.t.Helper()
	if p.Version == 0 {
		p.Version = c.Version
	}
	c.Send(p)
	ack, ok := c.Recv().(*packet.Connack)
	if !ok {
		c.t.Fatalf("mqtttest: answer to CONNECT is not CONNACK")
	}
	return ack
}
