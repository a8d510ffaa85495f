package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// connacks recycles CONNACKs, which are encoded at once: a burst of
// connections leaves no garbage of them behind.
var connacks = sync.Pool{New: func() any { return new(packet.Connack) }}

// connect reads and answers CONNECT; false ends the connection. It runs
// in phases, like mochi-mqtt's attachClient: read the packet, validate
// it, authenticate the client, take over its session, send CONNACK. A
// phase that refuses the client answers it and closes the connection
// itself, and returns false.
func (c *conn) connect() bool {
	cp := c.readConnect()
	if cp == nil {
		return false
	}
	c.setProtocol(cp)
	// The phases fill in ack's properties as they decide them; it is sent
	// only if all pass (a refusal sends a CONNACK of its own).
	ack := connacks.Get().(*packet.Connack)
	defer func() {
		*ack = packet.Connack{}
		connacks.Put(ack)
	}()
	if !c.validateConnect(cp, ack) || !c.authenticate(cp, ack) {
		return false
	}
	expiry := c.sessionExpiry(cp, ack)
	if !c.waitForPrevious() {
		return false
	}
	return c.attach(cp, ack, expiry)
}

// readConnect reads the first packet, which must be CONNECT
// [MQTT-3.1.0-1], within ConnectTimeout; nil means the connection is over.
func (c *conn) readConnect() *packet.Connect {
	s := c.s
	c.nc.SetReadDeadline(time.Now().Add(s.opts.ConnectTimeout))
	p, err := packet.Read(c.r, 0, s.opts.MaxPacketSize)
	if err != nil {
		var re *packet.ReasonError
		if errors.As(err, &re) && re.Code == packet.UnsupportedProtocolVersion {
			// [MQTT-3.1.2-2]: CONNACK 0x01 in the 3.1.1 layout.
			c.wmu.Lock()
			c.v = packet.V311
			c.wmu.Unlock()
			c.refuse(packet.UnsupportedProtocolVersion)
			return nil
		}
		if !errors.Is(err, io.EOF) {
			s.log.Debug("bad CONNECT", "remote", c.nc.RemoteAddr(), "err", err)
		}
		c.close() // [MQTT-3.1.4-1]
		return nil
	}
	cp := p.(*packet.Connect)
	c.nc.SetReadDeadline(time.Time{})
	return cp
}

// setProtocol takes the protocol version and the client's limits from cp.
func (c *conn) setProtocol(cp *packet.Connect) {
	s := c.s
	// Under c.wmu: Shutdown's disconnect may read them meanwhile.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.v = cp.Version
	if c.v == packet.V31 {
		c.v = packet.V311 // same layouts
	}
	c.sendQuota = 65535
	if c.v == packet.V5 {
		// [MQTT-3.1.2-28] [MQTT-3.1.2-29]
		c.problem = !cp.Props.HasRequestProblemInfo || cp.Props.RequestProblemInfo == 1
		if cp.Props.ReceiveMaximum != 0 {
			c.sendQuota = int(cp.Props.ReceiveMaximum) // 3.1.2.11.3
		}
		if cp.Props.MaximumPacketSize != 0 {
			c.maxOut = int(cp.Props.MaximumPacketSize) // [MQTT-3.1.2-24]
		}
		c.aliasOutMax = min(int(cp.Props.TopicAliasMaximum), s.opts.TopicAliasMaximum) // [MQTT-3.1.2-26]
	}
	c.sendQuota = min(c.sendQuota, s.opts.MaxInflight)
}

// validateConnect checks the will, the client identifier and the user
// name, and settles the keep alive; false: refused.
func (c *conn) validateConnect(cp *packet.Connect, ack *packet.Connack) bool {
	if w := cp.Will; w != nil {
		if err := validTopicName(w.Topic); err != nil {
			// [MQTT-3.1.3-11] [MQTT-3.3.2-2] (3.1.1: [MQTT-3.1.3-10])
			c.refuse(packet.TopicNameInvalid)
			return false
		}
		if c.v == packet.V5 && w.Props.PayloadFormat == 1 && !packet.ValidUTF8(w.Payload) {
			c.refuse(packet.PayloadFormatInvalid) // 3.1.3.2.3
			return false
		}
		c.setWill(w)
	}

	// Client identifier [MQTT-3.1.3-2..8].
	id := cp.ClientID
	if id == "" {
		if c.v != packet.V5 && !cp.CleanStart {
			c.refuse(packet.ClientIDNotValid) // 3.1.1 [MQTT-3.1.3-8]
			return false
		}
		id = assignID() // [MQTT-3.1.3-6]
		if c.v == packet.V5 {
			ack.Props.AssignedClientID = id // [MQTT-3.2.2-16]
		}
	}
	c.clientID = id
	if idOK, userOK := validIdentity(id, cp.Username); !idOK {
		c.refuse(packet.ClientIDNotValid) // [MQTT-3.1.3-5] (3.1.1: 2, identifier rejected)
		return false
	} else if !userOK {
		c.refuse(packet.BadUsernameOrPassword) // reserved user name (3.1.1: 4)
		return false
	}

	// Keep alive [MQTT-3.1.2-21..24].
	ka := time.Duration(cp.KeepAlive) * time.Second
	if max := c.s.opts.MaxKeepAlive; max > 0 && ka > max && c.v == packet.V5 {
		// 5.0 is told [MQTT-3.2.2-21]; 3.1.1 cannot be, and a valid
		// keep alive is not a reason to refuse it [MQTT-3.1.2-24], so
		// its own value stands.
		ka = max
		ack.Props.ServerKeepAlive, ack.Props.HasServerKeepAlive = uint16(ka/time.Second), true
	}
	c.keepAlive = ka
	return true
}

// setWill keeps the will of a CONNECT, validated, for publication when
// the connection ends other than by a normal DISCONNECT [MQTT-3.1.2-8].
func (c *conn) setWill(w *packet.Will) {
	m := &msg{topic: strings.Clone(w.Topic), payload: w.Payload, qos: w.QoS, retain: w.Retain}
	if c.v == packet.V5 {
		m.props.PayloadFormat = w.Props.PayloadFormat
		m.props.ContentType = w.Props.ContentType
		m.props.ResponseTopic = w.Props.ResponseTopic
		m.props.CorrelationData = w.Props.CorrelationData
		m.props.User = w.Props.User
		if w.Props.HasMessageExpiry {
			// Counted from the will's publication.
			m.expiryIn = time.Duration(w.Props.MessageExpiry) * time.Second
		}
		c.willDelay = time.Duration(w.Props.WillDelay) * time.Second
	}
	c.will = m
}

// assignID returns a fresh client identifier [MQTT-3.1.3-6].
func assignID() string {
	var b [12]byte
	rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}

// authenticate runs enhanced authentication [MQTT-4.12.0-1] or the login
// (user name and password or client certificate, behind the login guard
// of login.go), then checks the user may connect and publish its will
// [MQTT-3.1.4-2]; false: refused.
func (c *conn) authenticate(cp *packet.Connect, ack *packet.Connack) bool {
	s := c.s
	if c.v == packet.V5 && cp.Props.AuthMethod != "" {
		if !c.enhancedAuth(cp, ack) {
			return false
		}
	} else {
		user, code := s.auth.login(cp, c.certUser, s.anonymousFor(c), sourceOf(c.nc.RemoteAddr()), &c.loginWait)
		if code != packet.Success {
			// Failed passwords are summarised once a minute (login.go).
			s.log.Debug("connection refused", "client", c.clientID, "user", cp.Username, "code", code)
			c.refuse(code)
			return false
		}
		c.username = user
	}
	return c.admit()
}

// sessionExpiry returns the session expiry granted to cp: the client's,
// capped by MaxSessionExpiry and then told in ack (3.2.2.3.2); 3.1.1 has
// a persistent session or none.
func (c *conn) sessionExpiry(cp *packet.Connect, ack *packet.Connack) time.Duration {
	s := c.s
	if c.v != packet.V5 {
		if cp.CleanStart {
			return 0
		}
		return s.capExpiry(0xFFFFFFFF) // 3.1.1 persistent session
	}
	if cp.Props.SessionExpiry == 0 {
		return 0
	}
	expiry := s.capExpiry(cp.Props.SessionExpiry)
	if expiry != time.Duration(cp.Props.SessionExpiry)*time.Second && cp.Props.SessionExpiry != 0xFFFFFFFF ||
		cp.Props.SessionExpiry == 0xFFFFFFFF && expiry != neverExpire {
		ack.Props.SessionExpiry = uint32(expiry / time.Second)
	}
	return expiry
}

// waitForPrevious refuses c if its client identifier names a session of
// another user, and otherwise lets the connection that holds the session,
// if any, end first. Take-over [MQTT-3.1.4-3]: the old connection first
// acts on what it already received — a DISCONNECT racing this CONNECT
// ends its session as it should [MQTT-3.1.2-23] — then closes with 0x8E,
// its will handled as on any abnormal close. Bounded: a connection stuck
// in a handler is taken over by attach as it is.
func (c *conn) waitForPrevious() bool {
	s := c.s
	s.mu.Lock()
	var prev *conn
	if ss := s.sessions[c.clientID]; ss != nil {
		ss.mu.Lock()
		owned := sessionOwned(ss, c.username)
		prev = ss.c
		ss.mu.Unlock()
		if !owned {
			s.mu.Unlock()
			c.refuseOwner()
			return false
		}
	}
	s.mu.Unlock()
	if prev != nil {
		prev.takeOver()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-prev.done:
		case <-t.C:
		}
		t.Stop()
	}
	return true
}

// attach gives c its session, resumed or new, and sends ack; false:
// refused or closed. The session is claimed and the CONNACK sent under
// s.mu, so that a concurrent CONNECT with the same identifier sees this
// connection and takes it over, and under ss.mu, so that no routed
// message overtakes the CONNACK.
func (c *conn) attach(cp *packet.Connect, ack *packet.Connack, expiry time.Duration) bool {
	s := c.s
	now := time.Now()
	s.mu.Lock()
	ss, present, refuse := c.claimSessionLocked(cp, expiry)
	if refuse != nil {
		s.mu.Unlock()
		refuse()
		return false
	}
	c.sess = ss
	n := s.nclients.Add(1)
	for {
		m := s.maxCli.Load()
		if n <= m || s.maxCli.CompareAndSwap(m, n) {
			break
		}
	}
	ss.mu.Lock()
	ss.c = c
	ss.expiry = expiry
	ss.claim(c.username)
	dropped := 0
	if present {
		dropped = s.recheckSubs(ss, c.username, c.clientID)
	}
	ack.SessionPresent = present // [MQTT-3.2.2-2] [MQTT-3.2.2-3]
	if c.v == packet.V5 {
		pr := &ack.Props
		if s.opts.ReceiveMaximum < 65535 {
			pr.ReceiveMaximum = uint16(s.opts.ReceiveMaximum) // 3.2.2.3.3
		}
		pr.MaximumPacketSize = uint32(s.opts.MaxPacketSize)     // [MQTT-3.2.2-15]
		pr.TopicAliasMaximum = uint16(s.opts.TopicAliasMaximum) // 3.2.2.3.8
	}
	if !c.connackFits(ack) {
		// [MQTT-3.1.2-24]: closed at once, without the will (the
		// client never was connected).
		c.will = nil
		ss.mu.Unlock()
		s.mu.Unlock()
		s.log.Debug("connection closed: CONNACK larger than the client's maximum packet size", "client", c.clientID, "max", c.maxOut)
		c.close()
		return false
	}
	c.established.Store(true)
	c.send(ack) // [MQTT-3.1.4-5]
	ss.resend(now)
	ss.drain(now)
	ss.dirty()
	ss.mu.Unlock()
	s.mu.Unlock()
	c.setReadDeadline(time.Time{}) // the keep alive takes over
	if dropped > 0 {
		s.log.Info("resumed session: subscriptions the acl no longer allows dropped", "client", c.clientID, "user", c.username, "dropped", dropped)
	}
	s.log.Debug("client connected", "client", c.clientID, "version", c.v, "present", present)
	return true
}

// claimSessionLocked returns the session c resumes (present) or a new
// one, taking it over from the connection that still holds it; or, with
// refuse set, nothing, to be refused by refuse once s.mu is released.
// s.mu is held.
func (c *conn) claimSessionLocked(cp *packet.Connect, expiry time.Duration) (ss *session, present bool, refuse func()) {
	s := c.s
	if s.closed {
		return nil, false, func() { c.refuse(packet.ServerUnavailable) }
	}
	if c.overConnectionLimitLocked() {
		return nil, false, func() { c.refuse(packet.ServerBusy) } // 3.1.1: 3
	}
	ss = s.sessions[c.clientID]
	if ss != nil {
		ss.mu.Lock()
		if !sessionOwned(ss, c.username) {
			// Started by another user while this one waited.
			ss.mu.Unlock()
			return nil, false, c.refuseOwner
		}
		old := ss.c
		if old != nil {
			// Take-over [MQTT-3.1.4-3]: the old connection's will is
			// handled as on any abnormal close.
			ss.c = nil
			w := old.will
			old.will = nil
			ss.mu.Unlock()
			old.disconnect(packet.SessionTakenOver, "session taken over")
			if w != nil {
				if cp.CleanStart || old.willDelay == 0 {
					go s.publish(w, nil)
				}
			}
			ss.mu.Lock()
		}
		if cp.CleanStart || old != nil && ss.expiry == 0 {
			// A clean start discards the session; so does the end of
			// the taken-over connection when its session lasted only
			// as long as it [MQTT-3.1.2-4] [MQTT-3.1.2-23] (3.1.1:
			// [MQTT-3.1.2-6]).
			ss.mu.Unlock()
			s.removeSessionLocked(ss)
			ss = nil
		} else {
			present = true
			// Resumed before the will delay ended: no will
			// [MQTT-3.1.3-9]; the expiry timer stops.
			ss.takeWill()
			if ss.expTimer != nil {
				ss.expTimer.Stop()
				ss.expTimer = nil
			}
			ss.mu.Unlock()
		}
	}
	if ss == nil {
		if !s.admitSessionLocked(expiry) {
			return nil, false, func() { c.refuse(sessionQuotaCode) }
		}
		ss = newSession(s, c.clientID)
		s.sessions[c.clientID] = ss
	}
	return ss, present, nil
}

// overConnectionLimitLocked reports whether c, attached, would pass
// MaxConnections. startConn checks the limit as it accepts a connection,
// but every connection pending at the time passes that check; this one,
// made under s.mu as c attaches, lets no more than the limit in. A
// session c takes over from a connection that still holds it frees that
// connection's place. s.mu is held.
func (c *conn) overConnectionLimitLocked() bool {
	s := c.s
	max := s.opts.MaxConnections
	if max <= 0 {
		return false
	}
	n := s.nclients.Load()
	if ss := s.sessions[c.clientID]; ss != nil {
		ss.mu.Lock()
		if ss.c != nil {
			n--
		}
		ss.mu.Unlock()
	}
	return n >= int64(max)
}

// refuse answers CONNECT with code and closes the connection.
func (c *conn) refuse(code packet.ReasonCode) {
	c.s.connRefused.Add(1)
	c.send(&packet.Connack{Code: code})
	c.close()
}

// refuseBusy answers a connection over MaxConnections: it reads CONNECT
// for the protocol level and refuses with 0x89 (3.1.1: 3, unavailable).
// c counts as pending meanwhile.
func (s *Server) refuseBusy(c *conn) {
	c.nc.SetReadDeadline(time.Now().Add(s.opts.ConnectTimeout))
	p, err := packet.Read(c.r, 0, s.opts.MaxPacketSize)
	if cp, ok := p.(*packet.Connect); err == nil && ok {
		c.wmu.Lock()
		c.v = cp.Version
		c.wmu.Unlock()
		c.send(&packet.Connack{Code: packet.ServerBusy})
	}
	c.close()
}
