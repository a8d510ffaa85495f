package broker

import (
	"io"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// After the server's last packet (a DISCONNECT, a refusing CONNACK) the
// connection of a connected client is not closed at once: unread input
// would make the kernel answer with a reset, and a client still sending
// may then never read the reason code. The writing side is shut down (the
// client reads the packet, then end of stream) and the input is read and
// discarded, at most drainBytes for at most drainTime, before closing. A
// connection refused at CONNECT has sent nothing more to read and is
// closed at once, so that a flood of refused connections holds no socket
// longer than before.
const (
	drainBytes = 64 << 10
	drainTime  = time.Second
)

// closeConn closes the network connection once everything queued is
// written; graceful when the last write succeeded.
func (c *conn) closeConn(graceful bool) {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !graceful || !c.established.Load() || !ok || cw.CloseWrite() != nil {
		c.nc.Close()
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(drainTime))
	io.CopyN(io.Discard, c.nc, drainBytes)
	c.nc.Close()
}

// connackFits reports whether ack fits the client's Maximum Packet Size.
// A CONNACK that does not cannot be sent [MQTT-3.1.2-24]; the connection
// is closed instead, as Mosquitto does.
func (c *conn) connackFits(ack *packet.Connack) bool {
	if c.maxOut >= 1024 {
		return true // a CONNACK beyond 1 KiB needs auth data that large
	}
	b, err := packet.Append(make([]byte, 0, 64), ack, c.v)
	return err == nil && len(b) <= c.maxOut
}
