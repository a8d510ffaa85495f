package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// Byte budgets. Every count the broker bounds (messages queued, in flight,
// retained, sessions) has a bound in bytes beside it, so that large
// messages cannot multiply past the memory of a small machine (see the
// package documentation for the ceiling that follows from the defaults).

// msgOverhead is what the broker counts for a message beyond its topic,
// payload and properties: its struct and a delivery's.
const msgOverhead = 128

// msgBytes is what m counts against the byte budgets: its topic, payload
// and properties, and a fixed overhead.
func msgBytes(m *msg) int64 {
	p := &m.props
	return sizeOf(m.topic, m.payload, p.ContentType, p.ResponseTopic, p.CorrelationData, p.User)
}

// messageBytes is what m counts against an in-process subscriber's bytes:
// the same as msgBytes.
func messageBytes(m *Message) int64 {
	return sizeOf(m.Topic, m.Payload, m.ContentType, m.ResponseTopic, m.CorrelationData, m.User)
}

func sizeOf(topic string, payload []byte, contentType, responseTopic string, correlation []byte, user []packet.UserProperty) int64 {
	n := msgOverhead + len(topic) + len(payload) + len(contentType) + len(responseTopic) + len(correlation)
	for _, u := range user {
		n += len(u.Key) + len(u.Value)
	}
	return int64(n)
}

// hold counts d against the session's byte budget (queued and in flight,
// Options.MaxSessionBytes) and that of all sessions together
// (Options.MaxQueuedBytes), and reports false, counting nothing, when it
// does not fit; ss.mu is held. Concurrent sessions may overshoot the
// global budget by one message each.
func (ss *session) hold(d *delivery) bool {
	s := ss.s
	n := msgBytes(d.m)
	if max := s.opts.MaxSessionBytes; max > 0 && ss.bytes+n > max {
		return false
	}
	if max := s.opts.MaxQueuedBytes; max > 0 && s.queuedBytes.Load()+n > max {
		return false
	}
	ss.account(d, n)
	return true
}

// account counts d, of n bytes, without a check (restored state); ss.mu
// is held.
func (ss *session) account(d *delivery, n int64) {
	d.size = n
	ss.bytes += n
	ss.s.queuedBytes.Add(n)
}

// release gives back what d counted; ss.mu is held. A session that ended
// gave back everything at once (removeSessionLocked).
func (ss *session) release(d *delivery) {
	if d.size == 0 {
		return
	}
	if !ss.gone {
		ss.bytes -= d.size
		ss.s.queuedBytes.Add(-d.size)
	}
	d.size = 0
}

// releaseAll gives back everything the session holds; ss.mu is held.
func (ss *session) releaseAll() {
	ss.s.queuedBytes.Add(-ss.bytes)
	ss.bytes = 0
}

// retainedBudget counts the retained messages, the clients' apart from
// the gateway's own (published in process, the cloud's bridged ones
// included) and the broker's $SYS: each of the two has its own
// MaxRetained and MaxRetainedBytes, so that clients filling theirs never
// keep the gateway from publishing its own retained topics. $SYS is
// counted with the gateway's and never refused.
type retainedBudget struct {
	// mu serialises the changes of the retained store with their count.
	mu    sync.Mutex
	count [2]int   // by owner: client, local
	bytes [2]int64 // by owner
	// logged is set once a refusal of each reason was logged.
	logged [3]atomic.Bool
}

const (
	ownerClient = 0
	ownerLocal  = 1
)

// owner tells whose budget m counts against: the gateway's own messages
// (and the broker's $SYS) apart from the clients', whatever the topic.
func owner(m *msg) int {
	if m.local {
		return ownerLocal
	}
	return ownerClient
}

func (rb *retainedBudget) add(m *msg) {
	o := owner(m)
	rb.count[o]++
	rb.bytes[o] += msgBytes(m)
}

func (rb *retainedBudget) sub(m *msg) {
	o := owner(m)
	rb.count[o]--
	rb.bytes[o] -= msgBytes(m)
}

// Reasons a retained message is not stored.
const (
	refusedCount = iota
	refusedBytes
	refusedSize
)

// retainRefusal returns why m may not be stored (-1: it may), given the
// message old it replaces (nil: none); s.rbudget.mu is held.
func (s *Server) retainRefusal(m, old *msg) int {
	if m.local && sysTopic(m.topic) {
		return -1 // the broker's own statistics
	}
	rb := &s.rbudget
	o := owner(m)
	n := msgBytes(m)
	if max := s.opts.MaxRetainedMessageBytes; o == ownerClient && max > 0 && int64(len(m.topic)+len(m.payload)) > max {
		return refusedSize
	}
	count, bytes := rb.count[o], rb.bytes[o]
	if old != nil && owner(old) == o {
		count--
		bytes -= msgBytes(old)
	}
	if max := s.opts.MaxRetained; max > 0 && count >= max {
		return refusedCount
	}
	if max := s.opts.MaxRetainedBytes; max > 0 && bytes+n > max {
		return refusedBytes
	}
	return -1
}

var refusalKeys = [...]string{
	refusedCount: "max_retained",
	refusedBytes: "max_retained_bytes",
	refusedSize:  "max_retained_message_bytes",
}

// storeRetained sets, replaces or clears (empty payload) the retained
// message of m's topic [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7]. A
// client's message beyond its budgets is delivered but not stored; one
// that would replace a topic's message clears it instead, so that no
// stale value stays.
func (s *Server) storeRetained(m *msg) {
	rb := &s.rbudget
	rb.mu.Lock()
	old, had := s.retained.Get(m.topic)
	if !had {
		old = nil
	}
	refused := -1
	switch {
	case len(m.payload) == 0:
		if had {
			s.retained.Delete(m.topic)
			rb.sub(old)
		}
	default:
		if refused = s.retainRefusal(m, old); refused >= 0 {
			if had {
				s.retained.Delete(m.topic)
				rb.sub(old)
			}
			break
		}
		r := *m
		r.origin = nil
		s.retained.Set(m.topic, &r)
		if had {
			rb.sub(old)
		}
		rb.add(&r)
	}
	rb.mu.Unlock()
	if refused >= 0 {
		s.retainRefused.Add(1)
		if !rb.logged[refused].Swap(true) {
			s.log.Warn("retained message not stored: "+refusalKeys[refused]+" reached", "topic", m.topic)
		}
		if !had {
			return
		}
	}
	if s.store != nil && m.topic[0] != '$' {
		s.store.retainedChanged(m.topic)
	}
}

// dropRetained removes the retained message m of name (expired) unless it
// was replaced meanwhile.
func (s *Server) dropRetained(name string, m *msg) {
	rb := &s.rbudget
	rb.mu.Lock()
	if cur, ok := s.retained.Get(name); ok && cur == m {
		s.retained.Delete(name)
		rb.sub(m)
	}
	rb.mu.Unlock()
}

// loadRetained stores a restored retained message.
func (s *Server) loadRetained(name string, m *msg) {
	rb := &s.rbudget
	rb.mu.Lock()
	s.retained.Set(name, m)
	rb.add(m)
	rb.mu.Unlock()
}

// admitSessionLocked reports whether a new session with expiry may be
// made: Options.MaxSessions bounds the sessions that outlive their
// connection (connected or not). Beyond it a CONNECT asking for a new one
// is refused (Quota exceeded, 3.1.1: server unavailable); the sessions
// held keep their place, so that no client can push out another's
// session, and free theirs by expiring (MaxSessionExpiry). s.mu is held.
func (s *Server) admitSessionLocked(expiry time.Duration) bool {
	max := s.opts.MaxSessions
	if expiry == 0 || max <= 0 || len(s.sessions) < max {
		return true
	}
	n := 0
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.expiry > 0 && !ss.gone {
			n++
		}
		ss.mu.Unlock()
	}
	if n < max {
		return true
	}
	if s.sessRefused.Add(1) == 1 {
		s.log.Warn("session refused: max_sessions reached", "max", max)
	}
	return false
}

// sessionQuotaCode is the CONNACK of a session refused by MaxSessions.
const sessionQuotaCode = packet.QuotaExceeded

// localMaxBytes bounds the bytes of the messages waiting for one
// in-process subscriber, beside its 1024 messages.
const localMaxBytes = 4 << 20
