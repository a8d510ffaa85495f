package broker

import (
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// templates caches the encoding of one publication per distinct set of
// bytes — protocol family (5.0 or not), QoS and retain flag — so that a
// message fanned out to many subscribers is encoded once and each copy only
// gets its packet identifier patched in. It lives for one publish call
// (message expiry is computed once per call).
type templates struct {
	b   [2][3][2][]byte
	off [2][3][2]int // offset of the packet identifier
}

// appendPublish appends d as a PUBLISH with packet identifier id to
// c.wbuf; c.wmu is held. It reports false when the packet exceeds the
// client's Maximum Packet Size: it is then discarded as if sent
// [MQTT-3.1.2-25].
func (c *conn) appendPublish(d *delivery, id uint16, dup bool, t *templates, now time.Time) bool {
	m := d.m
	v5 := c.v == packet.V5
	// A template is used when nothing connection-specific goes in the
	// packet: no subscription identifier, no topic alias.
	if t != nil && !dup && (!v5 || (len(d.subIDs) == 0 && c.aliasOutMax == 0)) {
		vi, ri := 0, 0
		if v5 {
			vi = 1
		}
		if d.retain {
			ri = 1
		}
		tb := t.b[vi][d.qos][ri]
		if tb == nil {
			p := c.publishPacket(d, 1, false, now, false)
			b, err := packet.Append(nil, &p, c.v)
			if err != nil {
				return false
			}
			tb = b
			t.b[vi][d.qos][ri] = b
			t.off[vi][d.qos][ri] = idOffset(b, len(m.topic))
		}
		if len(tb) > c.maxOut {
			return false
		}
		n := len(c.wbuf)
		c.wbuf = append(c.wbuf, tb...)
		if d.qos > 0 {
			o := n + t.off[vi][d.qos][ri]
			c.wbuf[o], c.wbuf[o+1] = byte(id>>8), byte(id)
		}
		return true
	}
	p := c.publishPacket(d, id, dup, now, true)
	n := len(c.wbuf)
	b, err := packet.Append(c.wbuf, &p, c.v)
	if err != nil {
		return false
	}
	if len(b)-n > c.maxOut {
		if p.Props.TopicAlias != 0 && p.Topic != "" {
			delete(c.aliasOut, p.Topic)
		}
		c.wbuf = b[:n]
		return false
	}
	c.wbuf = b
	return true
}

// idOffset returns where the packet identifier sits in an encoded PUBLISH:
// after the fixed header and the topic name [MQTT-3.3.2].
func idOffset(b []byte, topicLen int) int {
	i := 1
	for b[i]&0x80 != 0 {
		i++
	}
	return i + 1 + 2 + topicLen
}

// publishPacket builds the PUBLISH for d on this connection. alias lets
// it use (and assign) a topic alias toward a 5.0 client that accepts them;
// the session's lock is held.
func (c *conn) publishPacket(d *delivery, id uint16, dup bool, now time.Time, alias bool) packet.Publish {
	m := d.m
	p := packet.Publish{Topic: m.topic, Payload: m.payload, QoS: d.qos, Retain: d.retain, Dup: dup && d.qos > 0}
	if d.qos > 0 {
		p.PacketID = id
	}
	if c.v != packet.V5 {
		return p
	}
	// The message's own properties are forwarded unaltered
	// [MQTT-3.3.2-15..20]; expiry is what is left of it [MQTT-3.3.2-6].
	p.Props = m.props
	if !m.expiry.IsZero() {
		left := m.expiry.Sub(now)
		secs := uint32((left + time.Second - 1) / time.Second)
		p.Props.MessageExpiry = max(secs, 1)
		p.Props.HasMessageExpiry = true
	}
	p.Props.SubscriptionIDs = d.subIDs // [MQTT-3.3.4-3]
	if alias && c.aliasOutMax > 0 {
		if a, ok := c.aliasOut[m.topic]; ok {
			p.Topic = ""
			p.Props.TopicAlias = a
		} else if len(c.aliasOut) < c.aliasOutMax {
			if c.aliasOut == nil {
				c.aliasOut = make(map[string]uint16)
			}
			a := uint16(len(c.aliasOut) + 1) // [MQTT-3.3.2-9]: 1..client's maximum
			c.aliasOut[m.topic] = a
			p.Props.TopicAlias = a
		}
	}
	return p
}

// sendPublish queues d for writing; the session's lock is held. It
// reports whether the packet was queued: false when it was dropped (over
// the client's maximum packet size, or a QoS 0 message meeting a full write
// buffer).
func (c *conn) sendPublish(d *delivery, id uint16, dup bool, t *templates, now time.Time) bool {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		// Still in flight: the session resends it on reconnect.
		return d.qos > 0
	}
	if d.qos == 0 && len(c.wbuf) >= c.s.opts.MaxWriteBuffer {
		c.wmu.Unlock()
		c.s.dropped.Add(1)
		return false
	}
	ok := c.appendPublish(d, id, dup, t, now)
	if ok {
		c.kickLocked()
	}
	c.wmu.Unlock()
	if ok {
		c.s.msgsOut.Add(1)
	} else {
		c.s.dropped.Add(1)
	}
	return ok
}

// sendAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (c *conn) sendAck(t packet.Type, id uint16, code packet.ReasonCode) {
	var p packet.Packet
	var pr packet.Properties
	if code.IsError() && c.problem {
		pr.ReasonString = code.String() // [MQTT-3.4.2.2.2]
	}
	switch t {
	case packet.TypePuback:
		p = &packet.Puback{PacketID: id, Code: code, Props: pr}
	case packet.TypePubrec:
		p = &packet.Pubrec{PacketID: id, Code: code, Props: pr}
	case packet.TypePubrel:
		p = &packet.Pubrel{PacketID: id, Code: code}
	case packet.TypePubcomp:
		p = &packet.Pubcomp{PacketID: id, Code: code}
	}
	c.send(p)
}

// send queues p for writing. Packets other than PUBLISH are small and
// never dropped; one over the client's maximum packet size loses its
// reason string and user properties first [MQTT-3.1.2-25].
func (c *conn) send(p packet.Packet) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return
	}
	n := len(c.wbuf)
	b, err := packet.Append(c.wbuf, p, c.v)
	if err != nil {
		c.s.log.Debug("encode failed", "client", c.clientID, "err", err)
		return
	}
	if len(b)-n > c.maxOut {
		b = b[:n]
		stripProblemInfo(p)
		if b, err = packet.Append(b, p, c.v); err != nil || len(b)-n > c.maxOut {
			c.wbuf = b[:n]
			return
		}
	}
	c.wbuf = b
	if len(b) > 4*c.s.opts.MaxWriteBuffer {
		// A client that sends but never reads would grow its
		// acknowledgements without bound: it is cut off.
		c.s.log.Debug("write buffer overflow", "client", c.clientID)
		c.wdead = true
		c.closeLocked()
		return
	}
	c.kickLocked()
}

// stripProblemInfo removes the Reason String and User Properties of a
// server-sent acknowledgement, CONNACK, DISCONNECT or AUTH, which may be
// left out to respect the client's Maximum Packet Size [MQTT-3.1.2-25];
// a PUBLISH's properties are the application's and stay.
func stripProblemInfo(p packet.Packet) {
	pr := packet.PropertiesOf(p)
	if pr == nil || p.Type() == packet.TypePublish {
		return
	}
	pr.ReasonString = ""
	pr.User = nil
}

// kickLocked starts the writer when it is not running; c.wmu is held.
func (c *conn) kickLocked() {
	if !c.writing {
		c.writing = true
		go c.flush()
	}
}

// flush writes everything queued, in one Write per batch, and exits when
// the buffer is empty, giving its buffers back so that an idle connection
// holds none.
func (c *conn) flush() {
	for {
		c.wmu.Lock()
		if len(c.wbuf) == 0 || c.wdead {
			c.writing = false
			c.wbuf, c.spare = nil, nil
			closeNow, graceful := c.closeAfter || c.wdead, !c.wdead
			c.wmu.Unlock()
			if closeNow {
				c.closeConn(graceful) // close.go
			}
			return
		}
		b := c.wbuf
		c.wbuf = c.spare[:0]
		c.spare = nil
		c.wmu.Unlock()
		n, err := c.nc.Write(b)
		c.s.bytesOut.Add(int64(n))
		c.wmu.Lock()
		if cap(b) <= 64<<10 {
			c.spare = b[:0]
		}
		if err != nil {
			c.wdead = true
			c.wbuf = nil
		}
		c.wmu.Unlock()
	}
}
