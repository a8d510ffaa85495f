package client

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// Negotiation: what the client learns about the server, and from what.
//
// Protocol (Options.Version zero): 5.0 first. A refusal of 5.0 itself
// (CONNACK 0x84, or any CONNACK in 3.1.1's shape) is answered at once with
// a 3.1.1 CONNECT, and 3.1.1 is kept for reprobeAfter, then 5.0 is tried
// again at the next connect. A connection closed before CONNACK is not a
// refusal: a NAT or a load balancer does that too. 5.0 is tried again at
// the next attempt, and only a second close in a row, followed by a 3.1.1
// CONNACK in the same attempt, keeps 3.1.1 (RabbitMQ 3.10 closes a 5.0
// connection without a word). A reset is not counted: a TLS server that
// refuses the client's certificate resets.
//
// QoS: the highest QoS publishes go out with is lowered from 2 to 1, with
// one warning, when the server shows it cannot do QoS 2: Maximum QoS in
// CONNACK [MQTT-3.2.2-11], a SUBACK granting 1 to a QoS 2 subscription, a
// PUBACK to a QoS 2 PUBLISH (RabbitMQ), DISCONNECT 0x9B, or the connection
// closed within q2CloseWindow of a QoS 2 PUBLISH before any PUBREC, twice
// in a row with the same packet (NATS), from a server address that never
// answered a QoS 2 PUBLISH with PUBREC: a server that did can do QoS 2,
// and its closes are a flaky link's, which must not cost exactly-once for
// the rest of the process. A message asked at QoS 2 and
// delivered at QoS 1 counts in Status.Downgraded.
type negotiation struct {
	reason  string    // why version is 3.1.1; "" when negotiated normally
	probeAt time.Time // 3.1.1 was learned: try 5.0 again from then
	closes5 int       // attempts in a row whose 5.0 CONNECT was closed unanswered

	maxQoS    byte   // highest QoS publishes use: 2, or 1
	qosReason string // why maxQoS is below 2
	connCap   bool   // maxQoS comes from a CONNACK's Maximum QoS

	// A QoS 2 PUBLISH that a connection's close followed, unanswered.
	suspect  uint16
	suspects int
	// q2ok is the last server address that answered a QoS 2 PUBLISH with
	// PUBREC: its closes are never taken for a refusal of QoS 2.
	q2ok string

	willQoS    byte // the will's QoS and retain, lowered after a refusal
	willRetain bool
	noRetain   bool // Retain Available 0 was logged for the current connection

	addr     int    // index in addrs of the address to dial next
	lastAddr string // address of the current or last connection
	tried    int    // addresses that failed in a row since the last connection
}

// reprobeAfter is how long 3.1.1 is kept after the server refused 5.0
// before 5.0 is tried again: a server upgraded in place is found within
// the hour, at the cost of one extra handshake per hour of reconnects.
const reprobeAfter = time.Hour

// q2CloseWindow: a close this soon after an unanswered QoS 2 PUBLISH
// counts as the server's answer to it.
const q2CloseWindow = 2 * time.Second

// addrs returns Addr then Addrs.
func (c *Client) addrs() []string { return append([]string{c.o.Addr}, c.o.Addrs...) }

// dialAddr returns the address to dial: the one that last worked, or the
// next one after a failure. The host name is resolved again by the dialer
// at each attempt: a cloud endpoint's addresses change.
func (c *Client) dialAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	as := c.addrs()
	return as[c.neg.addr%len(as)]
}

// failedAddr moves on to the next address after a failed attempt. It
// reports whether an address of this round is still untried: it is then
// tried at once, without the backoff.
func (c *Client) failedAddr() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.o.Addrs) + 1
	if n == 1 {
		return false
	}
	c.neg.addr = (c.neg.addr + 1) % n
	c.neg.tried++
	if c.neg.tried >= n {
		c.neg.tried = 0
		return false
	}
	return true
}

// tryVersion returns the version the next automatic handshake starts
// with.
func (c *Client) tryVersion() packet.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == packet.V311 && c.o.now().Before(c.neg.probeAt) {
		return packet.V311
	}
	return packet.V5
}

// pinV311 keeps 3.1.1 for reprobeAfter.
func (c *Client) pinV311(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version = packet.V311
	c.neg.reason = reason
	c.neg.probeAt = c.o.now().Add(reprobeAfter)
}

// refusedConnect learns from a CONNACK refusal that concerns the will.
func (c *Client) refusedConnect(code packet.ReasonCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch code {
	case packet.RetainNotSupported:
		c.neg.willRetain = false
	case packet.QoSNotSupported:
		c.neg.willQoS = min(c.neg.willQoS, 1)
		c.lowerQoS(1, "server refused CONNECT: QoS not supported (0x9b)", false)
	}
}

// lowerQoS lowers the highest QoS publishes use to q, logging the change
// once. Called with c.mu held.
func (c *Client) lowerQoS(q byte, reason string, fromConnack bool) {
	// A server's Maximum QoS 0 leaves QoS 1: a client that cannot be
	// sure of delivery has nothing to forward.
	q = max(q, 1)
	if q >= c.neg.maxQoS {
		return
	}
	c.neg.maxQoS, c.neg.qosReason, c.neg.connCap = q, reason, fromConnack
	c.log.Warn("server cannot do QoS 2: QoS 2 messages are sent at QoS 1, at least once", "reason", reason)
}

// learnConnack learns from cn's CONNACK. Called with c.mu held.
func (c *Client) learnConnack(cn *conn) {
	c.neg.tried = 0
	c.neg.lastAddr = cn.addr
	c.neg.noRetain = false
	if cn.v == packet.V5 && c.o.Version == 0 {
		c.neg.reason, c.neg.probeAt = "", time.Time{}
	}
	switch {
	case cn.maxQoS < 2:
		c.lowerQoS(cn.maxQoS, fmt.Sprintf("server maximum_qos %d", cn.maxQoS), true)
	case c.neg.connCap:
		// The server announced a limit before and none now.
		c.neg.maxQoS, c.neg.qosReason, c.neg.connCap = 2, "", false
		c.log.Info("server allows QoS 2 again")
	}
}

// capPublish lowers p's QoS to what the server can do and clears its
// retain flag where the server has none, before p goes out on cn. Called
// with c.mu held.
func (c *Client) capPublish(cn *conn, p *pending) {
	pub := p.pub
	if pub.QoS > c.neg.maxQoS && !p.rel {
		pub.QoS = c.neg.maxQoS
		c.countDowngraded(p)
	}
	if pub.Retain && !cn.retain { // [MQTT-3.3.1-11]
		pub.Retain = false
		if !c.neg.noRetain {
			c.neg.noRetain = true
			c.log.Warn("server has no retained messages: retain flag cleared", "addr", cn.addr)
		}
	}
	if pub.QoS == 2 && cn.q2id == 0 {
		cn.q2id, cn.q2at = pub.PacketID, cn.now()
	}
}

// countDowngraded counts p, asked at QoS 2, in Status.Downgraded once,
// whether it went out at QoS 1 or was answered with PUBACK. Called with
// c.mu held.
func (c *Client) countDowngraded(p *pending) {
	if !p.downgraded {
		p.downgraded = true
		c.downgraded.Add(1)
	}
}

// lost learns from the end of cn with err. Called with c.mu held.
func (c *Client) lost(cn *conn, err error) {
	switch {
	case cn.q2id == 0:
		return
	case cn.q2acked:
		c.neg.suspect, c.neg.suspects = 0, 0
		return
	case c.neg.q2ok != "" && c.neg.q2ok == cn.addr:
		return
	case !closedByPeer(err) || cn.now().Sub(cn.q2at) > q2CloseWindow:
		return
	}
	if c.neg.suspect == cn.q2id {
		c.neg.suspects++
	} else {
		c.neg.suspect, c.neg.suspects = cn.q2id, 1
	}
	if c.neg.suspects >= 2 {
		c.lowerQoS(1, "server closed the connection after a QoS 2 PUBLISH, twice in a row", false)
	}
}

// closedByPeer reports an end of connection the server caused without a
// reason: a close or a reset.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
