package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Traffic is what a Client has counted on the wire since New, over all its
// connections.
//
// SocketOut and SocketIn are the bytes written to and read from the TCP
// socket: under TLS, the TLS records, handshakes included (the counting
// sits under the TLS layer, in the dialer). They do not include TCP/IP
// headers, which the kernel adds.
//
// Publish holds the bytes of the PUBLISH packets sent, whole (fixed
// header, topic or alias, properties, payload), by Message.Class; resends
// count again. PublishIn is the bytes of the PUBLISH packets received. All
// the rest of the socket's bytes, in each direction, is overhead: CONNECT,
// CONNACK, acknowledgements of both directions, PINGREQ/PINGRESP,
// SUBSCRIBE/SUBACK, DISCONNECT, and the TLS handshake and record framing.
type Traffic struct {
	SocketOut, SocketIn int64
	Publish             map[string]int64
	PublishIn           int64
}

// wire holds a Client's counters.
type wire struct {
	out, in, pubIn atomic.Int64

	// mu guards pub.
	mu  sync.Mutex
	pub map[string]int64
}

func (w *wire) publish(class string, n int) {
	w.mu.Lock()
	if w.pub == nil {
		w.pub = make(map[string]int64)
	}
	w.pub[class] += int64(n)
	w.mu.Unlock()
}

func (w *wire) traffic() Traffic {
	t := Traffic{SocketOut: w.out.Load(), SocketIn: w.in.Load(), PublishIn: w.pubIn.Load(),
		Publish: make(map[string]int64)}
	w.mu.Lock()
	for k, v := range w.pub {
		t.Publish[k] = v
	}
	w.mu.Unlock()
	return t
}

// Traffic returns the bytes counted on the wire so far. See Traffic.
func (c *Client) Traffic() Traffic { return c.wire.traffic() }

// countingDialer wraps dial so that every connection it makes counts its
// bytes into w and, on a TCP socket under Linux, gives up on data left
// unacknowledged for userTimeout (TCP_USER_TIMEOUT).
func countingDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), w *wire, userTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := setUserTimeout(nc, userTimeout); err != nil {
			nc.Close()
			return nil, fmt.Errorf("client: TCP_USER_TIMEOUT: %w", err)
		}
		return &countConn{Conn: nc, w: w}, nil
	}
}

// countConn counts what is read from and written to its Conn. It passes
// the socket through (syscall.Conn) for the reader's non-blocking writes,
// which count their bytes themselves (conn.flush).
type countConn struct {
	net.Conn
	w *wire
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.w.in.Add(int64(n))
	return n, err
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.w.out.Add(int64(n))
	return n, err
}

var errNoSyscallConn = errors.New("client: not a socket")

// SyscallConn implements syscall.Conn when the wrapped Conn does.
func (c *countConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSyscallConn
}
