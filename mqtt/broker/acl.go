package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// ErrNotAuthorized is returned by PublishAs when the ACL denies the
// publisher the topic, or the topic is the broker's own $SYS tree.
var ErrNotAuthorized = errors.New("broker: not authorized")

// UplinkUser is the user name under which the gateway's uplink publishes
// the messages it receives from the cloud (PublishAs): the ACL judges them
// like any client's. User names beginning with '$' are reserved for such
// in-process publishers: no client may log in with one.
const UplinkUser = "$uplink"

// sysTopic reports whether name is in the broker's own $SYS tree, which no
// client, will or in-process publisher other than the broker may publish
// to.
func sysTopic(name string) bool {
	return name == "$SYS" || strings.HasPrefix(name, "$SYS/")
}

// mayPublish is the one decision every message entering the broker from a
// publisher meets — a client's PUBLISH, a will (at CONNECT), a retained
// message, an in-process PublishAs — when it is accepted: $SYS is the
// broker's own, the rest is the ACL's. $-topics other than $SYS (AWS IoT's
// $aws/things/…) are allowed where the ACL allows them; note that a rule
// "#" or "+/…" does not cover them [MQTT-4.7.2-1], a rule must name them.
func (s *Server) mayPublish(user, clientID, name string) bool {
	if sysTopic(name) {
		return false
	}
	return s.auth.allowed(user, clientID, name, actPublish)
}

// MayPublish reports whether user may publish on name: the decision
// every message entering the broker meets (mayPublish), for a door that
// is not the broker's, such as the gateway's web console, whose users are
// the broker's accounts.
func (s *Server) MayPublish(user, name string) bool {
	return validTopicName(name) == nil && s.mayPublish(user, "", name)
}

// PublishAs publishes m into the broker for an in-process publisher acting
// for user (UplinkUser for the uplink's messages from the cloud), after the
// same ACL decision a client logged in as user would meet; a denied
// message returns ErrNotAuthorized and is dropped. Otherwise it is Publish:
// its retained messages count against the gateway's own retained budget,
// not the clients'.
func (s *Server) PublishAs(ctx context.Context, user string, m Message) error {
	if err := validTopicName(m.Topic); err != nil { // control characters too, as from a client
		return fmt.Errorf("broker: publish %q: %w", m.Topic, err)
	}
	if !s.mayPublish(user, "", m.Topic) {
		s.denied.Add(1)
		return fmt.Errorf("broker: publish %q as %q: %w", m.Topic, user, ErrNotAuthorized)
	}
	return s.Publish(ctx, m)
}

// recheckSubs drops the subscriptions of a resumed session that the ACL no
// longer allows its user [issue: sessions belong to a user]; ss.mu is held.
// It returns the number dropped.
func (s *Server) recheckSubs(ss *session, user, clientID string) int {
	n := 0
	for f := range ss.subs {
		if s.auth.allowed(user, clientID, f, actSubscribe) {
			continue
		}
		s.subs.Unsubscribe(f, ss)
		delete(ss.subs, f)
		n++
	}
	if n > 0 {
		s.dropUnsubscribed(ss)
		ss.dirty()
	}
	return n
}

// dropUnsubscribed drops the queued messages of ss that none of its
// subscriptions matches any more, after recheckSubs dropped some: what was
// queued while the session was away under a subscription the ACL no
// longer allows is not delivered either. Their bytes are given back.
// Messages already in flight are resent as the protocol requires: the
// client had them once. ss.mu is held.
func (s *Server) dropUnsubscribed(ss *session) {
	filters := make([]string, 0, len(ss.subs))
	for f := range ss.subs {
		if _, filter, err := topic.ParseShared(f); err == nil {
			filters = append(filters, filter)
		}
	}
	var keep ring
	for ss.queue.len() > 0 {
		d := ss.queue.pop()
		if slices.ContainsFunc(filters, func(f string) bool { return topic.Match(f, d.m.topic) }) {
			keep.push(d)
			continue
		}
		s.dropped.Add(1)
		ss.release(&d)
		ss.journal(recDone, &d, 0)
	}
	ss.queue = keep
}

// sessionOwned reports whether ss, found under a CONNECT's client id, may
// be taken by user: a session belongs to the user who started it. A
// session restored from a journal written before sessions had owners is
// claimed by the first user who resumes it. ss.mu is held.
func sessionOwned(ss *session, user string) bool {
	if !ss.ownerKnown {
		return true
	}
	return ss.user == user
}

// claim makes user the owner of ss; ss.mu is held.
func (ss *session) claim(user string) {
	if ss.ownerKnown && ss.user == user {
		return
	}
	ss.user, ss.ownerKnown = user, true
	ss.dirty()
}

// validIdentity checks a CONNECT's client id and user name for the control
// characters U+0001..U+001F and U+007F..U+009F, which Mosquitto refuses
// too (U+0000 and bad UTF-8 are refused by the codec), and reserved user
// names ('$'…).
func validIdentity(clientID, user string) (idOK, userOK bool) {
	return topic.NoControl(clientID) == nil, topic.NoControl(user) == nil && !strings.HasPrefix(user, "$")
}

// validTopicName is topic.ValidName without control characters (see
// validIdentity).
func validTopicName(name string) error {
	if err := topic.ValidName(name); err != nil {
		return err
	}
	return topic.NoControl(name)
}

// admit runs the checks of a CONNECT that need its user, once
// authenticated: the user name (a client certificate's or an enhanced
// authentication's too) is not reserved, and the will may be published by
// that user — checked now, when the will is accepted, as Mosquitto does:
// a will the ACL denies refuses the CONNECT with 0x87 (3.1.1: 5, not
// authorized) instead of being dropped in silence when it fires. False
// means the connection was refused.
func (c *conn) admit() bool {
	s := c.s
	if _, ok := validIdentity("", c.username); !ok {
		s.logFirst(&s.reservedRefused, "connection refused: reserved user name", "client", c.clientID, "user", c.username)
		c.refuse(packet.NotAuthorized)
		return false
	}
	if w := c.will; w != nil && !s.mayPublish(c.username, c.clientID, w.topic) {
		s.denied.Add(1)
		s.logFirst(&s.willRefused, "connection refused: will topic not allowed", "client", c.clientID, "user", c.username, "topic", w.topic)
		c.will = nil
		c.refuse(packet.NotAuthorized)
		return false
	}
	return true
}

// refuseOwner refuses a CONNECT whose client id names a session of
// another user, live or persisted: 0x85 (3.1.1: 2, identifier rejected).
// The session is left alone: neither taken over nor discarded by a clean
// start.
func (c *conn) refuseOwner() {
	c.s.logFirst(&c.s.ownerRefused, "connection refused: client id belongs to another user", "client", c.clientID, "user", c.username)
	c.refuse(packet.ClientIDNotValid)
}

// logFirst logs msg at Warn the first time n counts one, at Debug after:
// a client repeating a refused CONNECT cannot fill the journal.
func (s *Server) logFirst(n *atomic.Int64, msg string, args ...any) {
	if n.Add(1) == 1 {
		s.log.Warn(msg+" (logged once; later ones at debug level)", args...)
		return
	}
	s.log.Debug(msg, args...)
}

// CheckPassword checks user's password against the password file, for
// another door to the same accounts (the gateway's web console). The
// attempt from source (an IP address, or host:port) meets the same login
// guard as a CONNECT: the backoff the source's and the user's failures
// call for, the bounded concurrent checks, and an unknown user costing
// one verification like a known one. Without a password file no password
// is right.
func (s *Server) CheckPassword(source, user string, password []byte) bool {
	if !s.auth.hasFile {
		return false
	}
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host
	}
	return s.auth.checkGuarded(source, user, password, nil) == packet.Success
}
