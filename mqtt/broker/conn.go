package broker

import (
	"bufio"
	"container/list"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// readBufferSize is the per-connection read buffer: enough for the
// typical packet of an in-vehicle client; larger bodies are read into
// their own allocation by packet.Read.
const readBufferSize = 1024

// connectTimeout is the default of Options.ConnectTimeout, which bounds
// the wait for CONNECT and the TLS handshake.
const connectTimeout = 5 * time.Second

// conn is one client network connection.
type conn struct {
	s  *Server
	nc net.Conn
	// r is the read buffer while packets arrive, nil while idle (see
	// waitFirst); reader goroutine only, like first and hasFirst.
	r        *bufio.Reader
	first    [1]byte
	hasFirst bool

	// Set by connect, then read-only.
	v         packet.Version
	clientID  string
	username  string
	certUser  string // CN of a verified client certificate
	keepAlive time.Duration
	armedAt   time.Time // when the keep alive read deadline was last set
	sess      *session
	detached  bool // detach ran; reader goroutine only
	sendQuota int  // client's receive maximum bounded by MaxInflight
	maxOut    int  // client's maximum packet size
	problem   bool
	will      *msg // guarded by sess.mu once connected
	willDelay time.Duration
	authMeth  string
	aliasIn   map[uint16]string // reader goroutine only

	// Guarded by sess.mu.
	aliasOut    map[string]uint16
	aliasOutMax int

	// wmu guards the outgoing side.
	wmu        sync.Mutex
	wbuf       []byte
	spare      []byte
	writing    bool // a flush goroutine runs
	wclosed    bool // no more packets accepted
	closeAfter bool // close nc once wbuf is written
	wdead      bool // a write failed
	// closing is wclosed for the reader, without the lock.
	closing   atomic.Bool
	takenOver atomic.Bool   // another connection takes the session
	pendElem  *list.Element // in Server.pending until logged in; guarded by Server.mu
	heard     atomic.Bool   // a byte of MQTT arrived
	// loginWait is set while its CONNECT waits for a login turn, given
	// only after five recent failures of its source or user (login.go).
	loginWait atomic.Bool
	done      chan struct{} // closed when serve has returned

	// established is set once CONNECT is accepted: only then does a
	// server close drain the input (close.go).
	established atomic.Bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, maxOut: packet.MaxRemaining + 5, done: make(chan struct{})}
	c.attachReader()
	return c
}

// readers holds the read buffers of connections between packets: an idle
// connection waits for its next byte without one.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

func (c *conn) attachReader() {
	c.r = readers.Get().(*bufio.Reader)
	c.r.Reset(countReader{c})
}

func (c *conn) releaseReader() {
	if c.r != nil {
		c.r.Reset(nil)
		readers.Put(c.r)
		c.r = nil
	}
}

// waitFirst blocks until the next packet's first byte arrives, holding no
// read buffer meanwhile, then attaches one.
func (c *conn) waitFirst() error {
	c.releaseReader()
	for {
		n, err := c.nc.Read(c.first[:])
		if n == 1 {
			c.s.bytesIn.Add(1)
			c.hasFirst = true
			c.attachReader()
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// countReader is the reader under c.r: it hands out the byte waitFirst
// read, then reads the connection, counting bytes.
type countReader struct{ c *conn }

func (r countReader) Read(b []byte) (int, error) {
	c := r.c
	if c.hasFirst && len(b) > 0 {
		c.hasFirst = false
		b[0] = c.first[0]
		return 1, nil
	}
	n, err := c.nc.Read(b)
	c.s.bytesIn.Add(int64(n))
	if n > 0 && !c.heard.Load() {
		c.heard.Store(true) // no longer a silent pending connection
	}
	return n, err
}

// disconnect sends a 5.0 client DISCONNECT with code (nothing at 3.1.1)
// and closes the connection once everything queued is written
// [MQTT-4.13.2-1].
func (c *conn) disconnect(code packet.ReasonCode, reason string) {
	c.wmu.Lock()
	if !c.wclosed && c.v == packet.V5 {
		d := &packet.Disconnect{Code: code}
		if c.problem && reason != "" {
			d.Props.ReasonString = reason
		}
		n := len(c.wbuf)
		if b, err := packet.Append(c.wbuf, d, c.v); err == nil {
			if len(b)-n > c.maxOut {
				// Not larger than the client's Maximum Packet Size:
				// the reason string goes first [MQTT-3.1.2-24]
				// [MQTT-3.14.2-3].
				d.Props.ReasonString = ""
				b, err = packet.Append(b[:n], d, c.v)
			}
			if err == nil && len(b)-n <= c.maxOut {
				c.wbuf = b
			}
		}
	}
	c.closeLocked()
	c.wmu.Unlock()
}

// closeLocked stops accepting packets and closes the connection once the
// writer has drained; c.wmu is held.
func (c *conn) closeLocked() {
	if c.wclosed {
		return
	}
	c.wclosed = true
	c.closing.Store(true)
	c.closeAfter = true
	c.nc.SetWriteDeadline(time.Now().Add(closeGrace))
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	c.kickLocked()
}

func (c *conn) close() {
	c.wmu.Lock()
	c.closeLocked()
	c.wmu.Unlock()
}

// takeoverGrace is how long a connection being taken over keeps reading
// what its client already sent.
const takeoverGrace = 50 * time.Millisecond

// takeOver makes the read loop end after the bytes already received;
// called from another connection's goroutine.
func (c *conn) takeOver() {
	c.takenOver.Store(true)
	c.nc.SetReadDeadline(time.Now().Add(takeoverGrace))
}

// start runs the TLS handshake and CONNECT; false means the connection
// is over (its end is left to finish).
func (c *conn) start() bool {
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(c.s.opts.ConnectTimeout))
		if err := tc.Handshake(); err != nil {
			c.s.log.Debug("tls handshake failed", "remote", c.nc.RemoteAddr(), "err", err)
			return false
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.certUser = certUser(&st)
	}
	if wc, ok := c.nc.(*wsConn); ok {
		c.certUser = wc.certUser
	}
	return c.connect()
}

// run is the read loop of a connected client, on its own goroutine, until
// the connection ends. Its frames on the idle path (waiting for the next
// packet's first byte) are kept small so that an idle connection's stack
// stays at the runtime's minimum, or shrinks back to it at a GC after a
// burst of packets grew it: the work on a packet happens in readPackets.
func (c *conn) run() {
	defer c.finish()
	for {
		if c.r.Buffered() == 0 {
			if c.keepAlive > 0 {
				c.armKeepAlive(time.Now())
			}
			if err := c.waitFirst(); err != nil {
				c.readFailed(err)
				return
			}
		}
		if !c.readPackets() {
			return
		}
	}
}

// readPackets reads and handles packets until the read buffer is empty;
// false ends the connection.
//
//go:noinline
func (c *conn) readPackets() bool {
	for {
		p, err := packet.Read(c.r, c.v, c.s.opts.MaxPacketSize)
		if err != nil {
			c.readFailed(err)
			return false
		}
		if c.closing.Load() {
			// Closed by the server (take-over, shutdown, error): nothing
			// more is acted upon [MQTT-4.13.2-1].
			return false
		}
		if !c.handle(p) {
			return false
		}
		if c.r.Buffered() == 0 {
			return true
		}
		// More bytes are buffered, perhaps only part of the next packet:
		// the next Read may block, so the packet just handled must count
		// for the keep alive [MQTT-3.1.2-22].
		if c.keepAlive > 0 {
			if now := time.Now(); now.Sub(c.armedAt) >= keepAliveSlack {
				c.armKeepAlive(now)
			}
		}
	}
}

// keepAliveSlack bounds how often a busy connection re-arms its read
// deadline; the deadline carries it, so a client always gets at least one
// and a half times its keep alive.
const keepAliveSlack = 10 * time.Millisecond

// armKeepAlive sets the read deadline to one and a half times the keep
// alive from now [MQTT-3.1.2-22], unless the connection is being taken over
// or closed: their own shorter deadlines stand.
func (c *conn) armKeepAlive(now time.Time) {
	c.armedAt = now
	c.setReadDeadline(now.Add(c.keepAlive*3/2 + keepAliveSlack))
}

// closeGrace is how long a connection being closed keeps reading and
// writing what is queued.
const closeGrace = 5 * time.Second

// setReadDeadline sets the read deadline of the reader goroutine unless
// the connection is being taken over or closed: their own shorter
// deadlines stand. takeOver and closeLocked run on other goroutines and
// may set theirs between the check and the set; the shorter deadline is
// then put back, so the read loop never waits past it.
func (c *conn) setReadDeadline(t time.Time) {
	if c.takenOver.Load() || c.closing.Load() {
		return
	}
	c.nc.SetReadDeadline(t)
	switch {
	case c.takenOver.Load():
		c.nc.SetReadDeadline(time.Now().Add(takeoverGrace))
	case c.closing.Load():
		c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	}
}

// finish ends the connection: the read loop has returned, or start failed.
func (c *conn) finish() {
	c.releaseReader()
	c.cleanup()
	close(c.done)
	s := c.s
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// readFailed ends the connection after a read error: the will is
// published (it is not a normal disconnect) [MQTT-3.1.2-8].
func (c *conn) readFailed(err error) {
	var re *packet.ReasonError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		c.s.log.Debug("bad packet", "client", c.clientID, "err", err)
		c.disconnect(re.Code, re.Detail) // [MQTT-4.13.1-1]
	case errors.As(err, &ne) && ne.Timeout() && c.takenOver.Load():
		c.disconnect(packet.SessionTakenOver, "session taken over")
	case errors.As(err, &ne) && ne.Timeout():
		c.disconnect(packet.KeepAliveTimeout, "keep alive timeout")
	default:
		c.close()
	}
}

// protocolError closes the connection for a packet the spec forbids here.
func (c *conn) protocolError(code packet.ReasonCode, reason string) bool {
	c.s.log.Debug("protocol error", "client", c.clientID, "code", code, "reason", reason)
	c.disconnect(code, reason)
	return false
}

// cleanup runs when the read loop ends: the connection is detached from
// its session, its will published or scheduled, and the session's expiry
// started [MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-4.1.0-2].
func (c *conn) cleanup() {
	c.close()
	c.detach()
}

// detach ends the connection's hold on its session, once: at the end of
// the read loop, or at once on DISCONNECT so that a CONNECT racing the
// close sees the session already ended or offline [MQTT-3.1.2-23].
func (c *conn) detach() {
	ss := c.sess
	if ss == nil || c.detached {
		return
	}
	c.detached = true
	c.s.nclients.Add(-1)
	s := c.s
	s.mu.Lock()
	ss.mu.Lock()
	if ss.c != c {
		// Taken over: the new connection dealt with our will.
		ss.mu.Unlock()
		s.mu.Unlock()
		return
	}
	ss.c = nil
	will := c.will
	c.will = nil
	now := time.Now()
	if ss.expiry == 0 {
		ss.mu.Unlock()
		s.removeSessionLocked(ss)
		s.mu.Unlock()
		if will != nil {
			s.publish(will, nil)
		}
		return
	}
	if will != nil {
		if delay := min(c.willDelay, ss.expiry); delay > 0 {
			ss.will = will
			ss.willTimer = time.AfterFunc(delay, func() {
				ss.mu.Lock()
				w := ss.takeWill()
				ss.mu.Unlock()
				if w != nil {
					s.publish(w, nil)
				}
			})
			will = nil
		}
	}
	if ss.expiry < neverExpire {
		ss.expTimer = time.AfterFunc(ss.expiry, func() { s.expire(ss) })
	}
	ss.disconnectedAt = now
	ss.dirty()
	ss.mu.Unlock()
	s.mu.Unlock()
	if will != nil {
		s.publish(will, nil)
	}
}

// neverExpire is the session expiry 0xFFFFFFFF seconds [MQTT-3.1.2-23].
const neverExpire = time.Duration(0xFFFFFFFF) * time.Second

func (c *conn) handle(p packet.Packet) bool {
	switch p := p.(type) {
	case *packet.Publish:
		return c.onPublish(p)
	case *packet.Puback:
		c.sess.ack(p.PacketID, 1, time.Now())
	case *packet.Pubrec:
		c.onPubrec(p)
	case *packet.Pubrel:
		c.onPubrel(p)
	case *packet.Pubcomp:
		c.sess.ack(p.PacketID, 2, time.Now())
	case *packet.Subscribe:
		return c.onSubscribe(p)
	case *packet.Unsubscribe:
		c.onUnsubscribe(p)
	case *packet.Pingreq:
		c.send(&packet.Pingresp{}) // [MQTT-3.12.4-1]
	case *packet.Disconnect:
		c.onDisconnect(p)
		return false
	case *packet.Connect:
		return c.protocolError(packet.ProtocolError, "second CONNECT [MQTT-3.1.0-2]")
	case *packet.Auth:
		return c.onReauth(p)
	default:
		return c.protocolError(packet.ProtocolError, "unexpected "+p.Type().String())
	}
	return true
}

func (c *conn) onDisconnect(p *packet.Disconnect) {
	ss := c.sess
	ss.mu.Lock()
	if c.v == packet.V5 && (p.Props.HasSessionExpiry || p.Props.SessionExpiry != 0) {
		if ss.expiry == 0 && p.Props.SessionExpiry != 0 {
			// [MQTT-3.14.2-2]
			ss.mu.Unlock()
			c.protocolError(packet.ProtocolError, "session expiry set on DISCONNECT after 0 on CONNECT [MQTT-3.14.2-2]")
			return
		}
		ss.expiry = c.s.capExpiry(p.Props.SessionExpiry) // 0 ends the session now
	}
	if p.Code == packet.NormalDisconnection {
		// Only a normal disconnection discards the will; 0x04 and the
		// error codes keep it [MQTT-3.1.2-10] [MQTT-3.14.4-3]. Under
		// ss.mu: a take-over reads it.
		c.will = nil
	}
	ss.mu.Unlock()
	c.close()
	c.detach()
}

func (s *Server) capExpiry(secs uint32) time.Duration {
	d := time.Duration(secs) * time.Second
	if secs == 0xFFFFFFFF {
		d = neverExpire
	}
	if s.opts.MaxSessionExpiry > 0 && d > s.opts.MaxSessionExpiry {
		d = s.opts.MaxSessionExpiry
	}
	return d
}

func (c *conn) onPublish(p *packet.Publish) bool {
	s := c.s
	s.msgsIn.Add(1)
	if c.v == packet.V5 {
		if len(p.Props.SubscriptionIDs) != 0 {
			return c.protocolError(packet.ProtocolError, "subscription identifier in PUBLISH [MQTT-3.3.4-6]")
		}
		if a := p.Props.TopicAlias; a != 0 {
			if int(a) > s.opts.TopicAliasMaximum {
				return c.protocolError(packet.TopicAliasInvalid, "topic alias out of range [MQTT-3.3.2-9]")
			}
			if p.Topic != "" {
				if c.aliasIn == nil {
					c.aliasIn = make(map[uint16]string)
				}
				c.aliasIn[a] = strings.Clone(p.Topic)
			} else if t, ok := c.aliasIn[a]; ok {
				p.Topic = t
			} else {
				return c.protocolError(packet.ProtocolError, "unknown topic alias [MQTT-3.3.4]")
			}
		}
		if p.QoS == 2 {
			if _, dup := c.sess.recHas(p.PacketID); !dup && c.sess.recLen() >= s.opts.ReceiveMaximum {
				return c.protocolError(packet.ReceiveMaximumExceeded, "receive maximum exceeded [MQTT-3.3.4-9]")
			}
		}
	}
	if err := validTopicName(p.Topic); err != nil {
		return c.protocolError(packet.TopicNameInvalid, err.Error())
	}
	code := packet.Success
	switch {
	case !s.mayPublish(c.username, c.clientID, p.Topic):
		// $SYS is the server's [MQTT-4.7.2]; the rest is the ACL's.
		s.denied.Add(1)
		code = packet.NotAuthorized
	case c.v == packet.V5 && p.Props.PayloadFormat == 1 && !packet.ValidUTF8(p.Payload):
		code = packet.PayloadFormatInvalid // [MQTT-3.3.2-4]
	}
	var m *msg
	if code == packet.Success {
		m = &msg{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain, origin: c.sess}
		if c.v == packet.V5 {
			pr := &p.Props
			m.props.PayloadFormat = pr.PayloadFormat
			m.props.ContentType = pr.ContentType
			m.props.ResponseTopic = pr.ResponseTopic
			m.props.CorrelationData = pr.CorrelationData
			m.props.User = pr.User
			if pr.HasMessageExpiry {
				m.expiry = time.Now().Add(time.Duration(pr.MessageExpiry) * time.Second)
			}
		}
	} else if c.v != packet.V5 {
		// 3.1.1 has no way to refuse: acknowledge and drop.
		s.dropped.Add(1)
		code = packet.Success
		m = nil
	}
	switch p.QoS {
	case 0:
		if m != nil {
			s.publish(m, c.sess)
		}
	case 1:
		if m != nil && s.publish(m, c.sess) == 0 && c.v == packet.V5 {
			code = packet.NoMatchingSubscribers
		}
		c.sendAck(packet.TypePuback, p.PacketID, code) // [MQTT-4.3.2-2]
	case 2:
		// Delivered on the first PUBLISH only: a resent PUBLISH with the
		// same identifier before PUBREL is acknowledged again and not
		// routed twice [MQTT-4.3.3-9].
		ss := c.sess
		ss.mu.Lock()
		_, dup := ss.rec[p.PacketID]
		if !dup && !code.IsError() {
			if ss.rec == nil {
				ss.rec = make(map[uint16]struct{})
			}
			ss.rec[p.PacketID] = struct{}{}
			ss.dirty()
		}
		ss.mu.Unlock()
		if !dup && m != nil && s.publish(m, c.sess) == 0 && c.v == packet.V5 {
			code = packet.NoMatchingSubscribers
		}
		c.sendAck(packet.TypePubrec, p.PacketID, code) // [MQTT-4.3.3-8]
	}
	return true
}

func (ss *session) recHas(id uint16) (struct{}, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v, ok := ss.rec[id]
	return v, ok
}

func (ss *session) recLen() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.rec)
}

func (c *conn) onPubrel(p *packet.Pubrel) {
	ss := c.sess
	ss.mu.Lock()
	_, ok := ss.rec[p.PacketID]
	delete(ss.rec, p.PacketID)
	if ok {
		ss.dirty()
	}
	ss.mu.Unlock()
	code := packet.Success
	if !ok && c.v == packet.V5 {
		code = packet.PacketIDNotFound
	}
	c.sendAck(packet.TypePubcomp, p.PacketID, code) // [MQTT-4.3.3-11]
}

func (c *conn) onPubrec(p *packet.Pubrec) {
	ss := c.sess
	now := time.Now()
	ss.mu.Lock()
	d, ok := ss.inflight[p.PacketID]
	if !ok || d.qos != 2 {
		ss.mu.Unlock()
		code := packet.Success
		if c.v == packet.V5 {
			code = packet.PacketIDNotFound
		}
		c.sendAck(packet.TypePubrel, p.PacketID, code)
		return
	}
	if p.Code.IsError() {
		// The flow ends here [MQTT-4.3.3-4 note]; the slot is free.
		delete(ss.inflight, p.PacketID)
		ss.release(d)
		ss.journal(recDone, d, 0)
		ss.drain(now)
		ss.mu.Unlock()
		return
	}
	if !d.rel {
		d.rel = true
		d.m = &msg{topic: d.m.topic} // the payload is no longer needed
		ss.release(d)
		ss.journal(recRel, d, 0)
	}
	ss.mu.Unlock()
	c.sendAck(packet.TypePubrel, p.PacketID, 0) // [MQTT-4.3.3-4]
}

func (c *conn) onSubscribe(p *packet.Subscribe) bool {
	s := c.s
	ss := c.sess
	var subID uint32
	if c.v == packet.V5 && len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
		if subID == 0 {
			return c.protocolError(packet.ProtocolError, "subscription identifier 0 [MQTT-3.8.2.1.2]")
		}
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	type granted struct {
		filter string
		o      subOpts
		isNew  bool
	}
	var retained []granted
	ss.mu.Lock()
	for i, sub := range p.Subscriptions {
		group, _, err := topic.ParseShared(sub.Filter)
		if err == nil {
			err = topic.NoControl(sub.Filter)
		}
		switch {
		case err != nil:
			codes[i] = packet.TopicFilterInvalid // 3.1.1: 0x80
			continue
		case group != "" && sub.NoLocal:
			ss.mu.Unlock()
			return c.protocolError(packet.ProtocolError, "no local on a shared subscription [MQTT-3.8.3-4]")
		case !s.auth.allowed(c.username, c.clientID, sub.Filter, actSubscribe):
			codes[i] = packet.ReasonCode(s.opts.DenySubscribeCode)
			continue
		}
		o := subOpts{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished,
			RetainHandling: sub.RetainHandling, SubID: subID}
		if _, have := ss.subs[sub.Filter]; !have && s.opts.MaxSubscriptions > 0 && len(ss.subs) >= s.opts.MaxSubscriptions {
			codes[i] = packet.QuotaExceeded // 3.1.1: 0x80
			if s.subRefused.Add(1) == 1 {
				s.log.Warn("subscription refused: max_subscriptions reached", "client", c.clientID, "filter", sub.Filter, "max", s.opts.MaxSubscriptions)
			}
			continue
		}
		f := strings.Clone(sub.Filter)
		replaced, err := s.subs.Subscribe(f, ss, o)
		if err != nil {
			codes[i] = packet.TopicFilterInvalid
			continue
		}
		ss.addSub(f, o)
		codes[i] = packet.ReasonCode(sub.QoS) // [MQTT-3.9.3-1]
		retained = append(retained, granted{f, o, !replaced})
	}
	ss.dirty()
	// The retained messages are looked up before the SUBACK goes out: a
	// message the client causes to be published once it has the SUBACK
	// (or any later one) is routed to the new subscription, and must not
	// also come as a retained message of the subscription, with RETAIN 1
	// [MQTT-3.3.1-12].
	var sends []retainedSend
	for _, g := range retained {
		sends = s.retainedFor(sends, g.filter, g.o, g.isNew)
	}
	// SUBACK goes first, then the retained messages [MQTT-3.8.4-4];
	// both under the session lock so no routed message overtakes.
	c.send(&packet.Suback{PacketID: p.PacketID, Codes: codes})
	now := time.Now()
	for _, r := range sends {
		ss.deliverRetained(r, now)
	}
	ss.mu.Unlock()
	return true
}

func (c *conn) onUnsubscribe(p *packet.Unsubscribe) {
	s := c.s
	ss := c.sess
	codes := make([]packet.ReasonCode, len(p.Filters))
	ss.mu.Lock()
	for i, f := range p.Filters {
		if s.subs.Unsubscribe(f, ss) {
			delete(ss.subs, f)
			codes[i] = packet.Success
		} else {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	ss.dirty()
	ss.mu.Unlock()
	c.send(&packet.Unsuback{PacketID: p.PacketID, Codes: codes}) // [MQTT-3.10.4-4]
}
