package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// msg is an application message inside the broker. It is immutable once
// routed and shared by every session it is delivered to.
type msg struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	// props holds the message's own properties: payload format, content
	// type, response topic, correlation data, user properties. Message
	// expiry is computed per send from expiry.
	props  packet.Properties
	expiry time.Time // zero: never
	// expiryIn is a will's message expiry, counted from its publication.
	expiryIn time.Duration
	origin   *session // publishing session, for No Local; nil in process
	// local is set for the gateway's own messages, published in
	// process: their retained topics count apart from the clients'.
	local bool
}

func fromMessage(m Message, now time.Time) *msg {
	x := &msg{topic: m.Topic, payload: m.Payload, qos: m.QoS, retain: m.Retain}
	x.props.PayloadFormat = m.PayloadFormat
	x.props.ContentType = m.ContentType
	x.props.ResponseTopic = m.ResponseTopic
	x.props.CorrelationData = m.CorrelationData
	x.props.User = m.User
	if m.Expiry > 0 {
		x.expiry = now.Add(m.Expiry)
	}
	return x
}

func (m *msg) message(qos byte, retain bool, now time.Time) Message {
	out := Message{
		Topic: m.topic, Payload: m.payload, QoS: qos, Retain: retain,
		ResponseTopic: m.props.ResponseTopic, CorrelationData: m.props.CorrelationData,
		ContentType: m.props.ContentType, PayloadFormat: m.props.PayloadFormat, User: m.props.User,
	}
	if !m.expiry.IsZero() {
		out.Expiry = max(m.expiry.Sub(now), time.Second)
	}
	return out
}

// expired reports whether m's message expiry has passed [MQTT-3.3.2-5].
func (m *msg) expired(now time.Time) bool {
	return !m.expiry.IsZero() && !now.Before(m.expiry)
}

// subOpts are the options of one subscription [MQTT-3.8.3.1].
type subOpts struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32 // 0: none
}

// delivery is one message on its way to one session: queued, or in
// flight under a packet identifier.
type delivery struct {
	m      *msg
	qos    byte // min(published, granted) [MQTT-3.8.4-8]
	retain bool
	subIDs []uint32
	rel    bool   // QoS 2: PUBREC received, PUBREL sent
	seq    uint64 // order of first transmission, for redelivery in order
	// key names the delivery in the journal; keys rise in the order of
	// queueing, which is also the order of first transmission.
	key uint64
	// journaled is set once the delivery has a record in the journal
	// (or one pending); until then its later changes need none.
	journaled bool
	// jepoch and jidx locate its pending recPush (store.update).
	jepoch uint32
	jidx   int32
	// size is what it counts against the byte budgets while queued or
	// in flight (hold, release).
	size int64
}

// session is the state of one client identifier [MQTT-4.1]. An in-process
// subscription is a session too (local set), so the subscription tree has
// one key type.
type session struct {
	s     *Server
	id    string
	local *localSub

	// mu guards everything below.
	// The maps are made on their first entry: an idle client with no
	// subscription and nothing in flight holds none.
	mu       sync.Mutex
	c        *conn // connected client, nil while offline
	subs     map[string]subOpts
	inflight map[uint16]*delivery
	queue    ring
	nextID   uint16
	seq      uint64
	rec      map[uint16]struct{} // incoming QoS 2 packet ids before PUBREL [MQTT-4.3.3]
	// resendQ holds, in order, in-flight packet ids to re-send after a
	// reconnect once the client's Receive Maximum allows [MQTT-3.3.4-9].
	resendQ   []uint16
	expiry    time.Duration // after disconnect; 0 ends with the connection
	expTimer  *time.Timer
	will      *msg // will waiting for its delay [MQTT-3.1.3-9]
	willTimer *time.Timer
	gone      bool
	// disconnectedAt is when the session went offline, for its expiry
	// after a restart.
	disconnectedAt time.Time
	// jid names the session in the journal; 0 while it is not there.
	jid  uint32
	jkey uint64 // the last delivery key
	// jinflight is set while an opInflight is pending for the session.
	jinflight bool
	// bytes are those of its queued and in-flight messages (hold).
	bytes int64
	// user owns the session: only a client logged in as user may take it
	// over or resume it (acl.go). ownerKnown is false for a session
	// restored from a journal written before sessions had owners.
	user       string
	ownerKnown bool
}

func newSession(s *Server, id string) *session {
	return &session{s: s, id: id}
}

// addSub records a subscription of the session; ss.mu is held.
func (ss *session) addSub(filter string, o subOpts) {
	if ss.subs == nil {
		ss.subs = make(map[string]subOpts)
	}
	ss.subs[filter] = o
}

// persistent reports whether the session outlives its connection and so
// belongs in the journal.
func (ss *session) persistent() bool { return ss.local == nil && ss.expiry > 0 }

// dirty journals a change of the session's own state (expiry,
// subscriptions, incoming QoS 2 identifiers, connection), its start or
// its end; ss.mu is held. The record is read from the session at the
// next sync, so many changes cost one record.
func (ss *session) dirty() {
	st := ss.s.store
	if st == nil || ss.local != nil {
		return
	}
	switch {
	case ss.persistent() && !ss.gone:
		full := ss.jid == 0
		if full {
			ss.jid = st.lastJID.Add(1)
		}
		st.add(jop{op: recSession, full: full, jid: ss.jid, ss: ss}, nil)
	case ss.jid != 0:
		st.add(jop{op: recEnd, jid: ss.jid}, nil)
		ss.jid = 0
	}
}

// journal records a change of delivery d (recPush with packet id pid, 0
// while queued; recSend, recRel, recDone) of a journaled session; ss.mu
// is held.
func (ss *session) journal(op byte, d *delivery, pid uint16) {
	if ss.jid == 0 || (op != recPush && !d.journaled) {
		return
	}
	st := ss.s.store
	o := jop{op: op, jid: ss.jid, key: d.key, pid: pid}
	if op == recPush {
		d.journaled = true
		o.m, o.qos, o.retain, o.subIDs = d.m, d.qos, d.retain, d.subIDs
		st.add(o, d)
		return
	}
	if (op == recSend || op == recDone) && st.update(op, d, pid) {
		return
	}
	st.add(o, nil)
}

// journalInflight notes that the session put a message in flight without
// a record: the next sync writes those still in flight then, so a
// message acknowledged within the interval costs no disk write; ss.mu is
// held.
func (ss *session) journalInflight() {
	if ss.jid == 0 || ss.jinflight {
		return
	}
	ss.jinflight = true
	ss.s.store.add(jop{op: opInflight, jid: ss.jid, ss: ss}, nil)
}

// ring is a FIFO of deliveries that grows as needed and never scans.
type ring struct {
	buf        []delivery
	head, size int
}

func (r *ring) len() int { return r.size }

func (r *ring) push(d delivery) {
	if r.size == len(r.buf) {
		n := max(8, 2*len(r.buf))
		nb := make([]delivery, n)
		for i := 0; i < r.size; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = d
	r.size++
}

func (r *ring) pop() delivery {
	d := r.buf[r.head]
	r.buf[r.head] = delivery{}
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	if r.size == 0 {
		r.head = 0
		if len(r.buf) > 64 {
			r.buf = nil // give back what a burst took
		}
	}
	return d
}

func (r *ring) each(fn func(d *delivery)) {
	for i := 0; i < r.size; i++ {
		fn(&r.buf[(r.head+i)%len(r.buf)])
	}
}

// deliver hands d to the session; ss.mu is held. Called for routed
// messages and retained messages alike.
func (ss *session) deliver(d delivery, t *templates, now time.Time) {
	if ss.local != nil {
		ss.local.push(d.m.message(d.qos, d.retain, now))
		return
	}
	if d.m.expired(now) {
		ss.s.dropped.Add(1)
		return
	}
	c := ss.c
	if d.qos == 0 {
		queue := ss.s.opts.QueueQoS0
		switch {
		case c != nil && !(queue && ss.queue.len() > 0):
			c.sendPublish(&d, 0, false, t, now)
			return
		case !queue:
			return // not kept for an offline session
		}
		// Queued: the client is away, or connected with QoS 0 messages
		// still queued from its absence, which this one must not
		// overtake.
	}
	direct := c != nil && ss.outstanding() < c.sendQuota && ss.queue.len() == 0 && len(ss.resendQ) == 0
	if !direct && ss.s.opts.MaxQueued > 0 && ss.queue.len() >= ss.s.opts.MaxQueued || !ss.hold(&d) {
		ss.s.dropped.Add(1)
		return
	}
	ss.jkey++
	d.key = ss.jkey
	if direct {
		if _, ok := ss.send(d, t, now); ok {
			ss.journalInflight()
		} else {
			ss.release(&d)
		}
		return
	}
	ss.journal(recPush, &d, 0)
	ss.queue.push(d)
}

// send puts d in flight under a new packet identifier and writes it to
// the connected client; ss.mu is held and ss.c is not nil. It reports
// the identifier and whether d is in flight.
func (ss *session) send(d delivery, t *templates, now time.Time) (uint16, bool) {
	id := ss.allocID()
	ss.seq++
	d.seq = ss.seq
	dp := &d
	if !ss.c.sendPublish(dp, id, false, t, now) {
		return 0, false
	}
	if ss.inflight == nil {
		ss.inflight = make(map[uint16]*delivery)
	}
	ss.inflight[id] = dp
	return id, true
}

// outstanding is the number of PUBLISH packets sent and not yet
// acknowledged: what the client's Receive Maximum bounds.
func (ss *session) outstanding() int { return len(ss.inflight) - len(ss.resendQ) }

// allocID returns a packet identifier not in flight [MQTT-2.2.1-3]. The
// in-flight window is far below 65,535, so the loop ends quickly.
func (ss *session) allocID() uint16 {
	for {
		ss.nextID++
		if ss.nextID == 0 {
			ss.nextID = 1
		}
		if _, used := ss.inflight[ss.nextID]; !used {
			return ss.nextID
		}
	}
}

// drain moves queued messages into flight while the client's receive
// maximum allows [MQTT-4.9.0-2]; ss.mu is held.
func (ss *session) drain(now time.Time) {
	c := ss.c
	for c != nil && len(ss.resendQ) > 0 && ss.outstanding() < c.sendQuota {
		id := ss.resendQ[0]
		ss.resendQ = ss.resendQ[1:]
		if d, ok := ss.inflight[id]; ok && !d.rel {
			if !c.sendPublish(d, id, true, nil, now) {
				delete(ss.inflight, id)
				ss.release(d)
				ss.journal(recDone, d, 0)
			}
		}
	}
	if len(ss.resendQ) == 0 {
		ss.resendQ = nil
	}
	for c != nil && ss.queue.len() > 0 && ss.outstanding() < c.sendQuota {
		d := ss.queue.pop()
		if d.m.expired(now) {
			ss.s.dropped.Add(1)
			ss.release(&d)
			ss.journal(recDone, &d, 0)
			continue
		}
		if d.qos == 0 {
			c.sendPublish(&d, 0, false, nil, now)
			ss.release(&d)
			ss.journal(recDone, &d, 0)
			continue
		}
		if id, ok := ss.send(d, nil, now); ok {
			ss.journal(recSend, &d, id)
		} else {
			ss.release(&d)
			ss.journal(recDone, &d, 0)
		}
	}
}

// resend retransmits every message in flight, in their original order,
// with DUP set, and PUBREL for those already received; ss.mu is held and
// ss.c was just attached [MQTT-4.4.0-1] [MQTT-4.6.0-1].
func (ss *session) resend(now time.Time) {
	if len(ss.inflight) == 0 {
		return
	}
	ids := make([]uint16, 0, len(ss.inflight))
	for id := range ss.inflight {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint16) int {
		return int(ss.inflight[a].seq - ss.inflight[b].seq)
	})
	ss.resendQ = nil
	sent := 0
	for _, id := range ids {
		if ss.inflight[id].rel {
			sent++ // awaiting PUBCOMP: counts toward the quota
		}
	}
	for _, id := range ids {
		d := ss.inflight[id]
		if d.rel {
			ss.c.sendAck(packet.TypePubrel, id, 0)
			continue
		}
		if sent >= ss.c.sendQuota {
			// Beyond the new connection's Receive Maximum: sent, with
			// its original identifier, as acknowledgements free slots.
			ss.resendQ = append(ss.resendQ, id)
			continue
		}
		if ss.c.sendPublish(d, id, true, nil, now) {
			sent++
		} else {
			delete(ss.inflight, id)
			ss.release(d)
			ss.journal(recDone, d, 0)
		}
	}
}

// ack ends the flow of packet id (PUBACK, PUBCOMP, or an error PUBREC) and
// sends queued messages into the freed slot.
func (ss *session) ack(id uint16, qos byte, now time.Time) {
	ss.mu.Lock()
	if d, ok := ss.inflight[id]; ok && d.qos == qos {
		delete(ss.inflight, id)
		if i := slices.Index(ss.resendQ, id); i >= 0 {
			// Acknowledged before its re-send (rare): keep the count.
			ss.resendQ = slices.Delete(ss.resendQ, i, i+1)
		}
		ss.release(d)
		ss.journal(recDone, d, 0)
		ss.drain(now)
	}
	ss.mu.Unlock()
}

// localSub delivers to an in-process subscriber on its own goroutine.
type localSub struct {
	s  *Server
	fn func(Message)
	ch chan Message
	// bytes are those of the messages in ch, at most localMaxBytes.
	bytes atomic.Int64
	// done is closed when the goroutine ends.
	done chan struct{}
	once sync.Once
	quit chan struct{}
}

var localID uint64

func newLocalSession(s *Server, fn func(Message)) *session {
	ls := &localSub{s: s, fn: fn, ch: make(chan Message, 1024), done: make(chan struct{}), quit: make(chan struct{})}
	ss := newSession(s, "")
	ss.local = ls
	go ls.run()
	return ss
}

func (l *localSub) run() {
	defer close(l.done)
	for {
		select {
		case m := <-l.ch:
			l.bytes.Add(-messageBytes(&m))
			l.fn(m)
		case <-l.quit:
			return
		}
	}
}

func (l *localSub) push(m Message) {
	n := messageBytes(&m)
	if l.bytes.Add(n) > localMaxBytes {
		l.bytes.Add(-n)
		l.s.dropped.Add(1)
		return
	}
	select {
	case l.ch <- m:
		l.s.msgsOut.Add(1)
	default:
		l.bytes.Add(-n)
		l.s.dropped.Add(1)
	}
}

func (l *localSub) close() {
	l.once.Do(func() { close(l.quit) })
	<-l.done
}

// matchBuf is a reusable match result for publish.
type matchBuf struct {
	subs   []topic.Sub[*session, subOpts]
	merged []target
	index  map[*session]int
}

// target is one session and the merged options of its matching
// subscriptions [MQTT-3.3.4-2] [MQTT-3.3.4-3].
type target struct {
	ss      *session
	qos     byte
	retain  bool // retain as published on any matching subscription
	subIDs  []uint32
	noLocal bool
}

// publish routes m to every matching subscription and stores it when it
// is retained. from is the publishing session (nil in process). It
// returns the number of sessions m went to.
func (s *Server) publish(m *msg, from *session) int {
	now := time.Now()
	if m.expiryIn > 0 {
		w := *m
		w.expiry, w.expiryIn = now.Add(m.expiryIn), 0
		m = &w
	}
	if m.retain {
		s.storeRetained(m)
	}
	mb, _ := s.matchPool.Get().(*matchBuf)
	if mb == nil {
		mb = &matchBuf{}
	}
	mb.subs = s.pickShared(s.subs.MatchAll(m.topic, mb.subs[:0]))
	mb.merged = mb.merged[:0]
	useIndex := len(mb.subs) > 16
	if useIndex {
		if mb.index == nil {
			mb.index = make(map[*session]int)
		}
		clear(mb.index)
	}
	for i := range mb.subs {
		sub := &mb.subs[i]
		o := sub.Value
		if o.NoLocal && sub.Key == from && from != nil {
			continue // [MQTT-3.8.3-3]
		}
		qos := min(m.qos, o.QoS)
		// Shared subscriptions are separate deliveries; overlapping
		// ordinary ones merge into one per session.
		j := -1
		if sub.Group == "" {
			if useIndex {
				if k, ok := mb.index[sub.Key]; ok {
					j = k
				}
			} else {
				for k := range mb.merged {
					if mb.merged[k].ss == sub.Key && !mb.merged[k].noLocal {
						j = k
						break
					}
				}
			}
		}
		if j < 0 {
			t := target{ss: sub.Key, qos: qos, retain: o.RetainAsPublished && m.retain, noLocal: sub.Group != ""}
			if o.SubID != 0 {
				t.subIDs = []uint32{o.SubID}
			}
			if useIndex && sub.Group == "" {
				mb.index[sub.Key] = len(mb.merged)
			}
			mb.merged = append(mb.merged, t)
			continue
		}
		t := &mb.merged[j]
		t.qos = max(t.qos, qos)
		t.retain = t.retain || (o.RetainAsPublished && m.retain)
		if o.SubID != 0 {
			t.subIDs = append(t.subIDs, o.SubID)
		}
	}
	var tm *templates
	if len(mb.merged) > 1 {
		tm = new(templates)
	}
	n := len(mb.merged)
	for i := range mb.merged {
		t := &mb.merged[i]
		ss := t.ss
		ss.mu.Lock()
		if !ss.gone {
			ss.deliver(delivery{m: m, qos: t.qos, retain: t.retain, subIDs: t.subIDs}, tm, now)
		}
		ss.mu.Unlock()
		t.ss, t.subIDs = nil, nil
	}
	clear(mb.subs)
	if cap(mb.subs) <= 1024 {
		s.matchPool.Put(mb)
	}
	return n
}

// pickShared keeps one member of each shared subscription in subs (as
// returned by MatchAll: members of a group consecutive), preferring, in
// round-robin order, a member whose client is connected, so that an
// offline persistent member does not hold messages others could take
// [MQTT-4.8.2]. Ordinary subscriptions are kept as they are.
func (s *Server) pickShared(subs []topic.Sub[*session, subOpts]) []topic.Sub[*session, subOpts] {
	out := subs[:0]
	for i := 0; i < len(subs); {
		sub := subs[i]
		if sub.Group == "" {
			out = append(out, sub)
			i++
			continue
		}
		j := i + 1
		for j < len(subs) && subs[j].Group == sub.Group && subs[j].Filter == sub.Filter {
			j++
		}
		n := j - i
		start := int(s.shareRR.Add(1) % uint32(n))
		pick := subs[i+start]
		for k := 0; k < n; k++ {
			cand := subs[i+(start+k)%n]
			ss := cand.Key
			ss.mu.Lock()
			online := ss.local != nil || ss.c != nil
			ss.mu.Unlock()
			if online {
				pick = cand
				break
			}
		}
		out = append(out, pick)
		i = j
	}
	clear(subs[len(out):])
	return out
}

// retainedSend is a retained message to send after a subscription.
type retainedSend struct {
	m      *msg
	o      subOpts
	subIDs []uint32
}

// retainedFor appends to dst the retained messages matching filter that a
// new subscription gets, as its retain handling asks [MQTT-3.3.1-9..11].
// Shared subscriptions get none [MQTT-4.8.2].
func (s *Server) retainedFor(dst []retainedSend, filter string, o subOpts, isNew bool) []retainedSend {
	group, f, err := topic.ParseShared(filter)
	if err != nil || group != "" {
		return dst
	}
	if o.RetainHandling == 2 || (o.RetainHandling == 1 && !isNew) {
		return dst
	}
	entries := s.retained.Match(f, nil)
	now := time.Now()
	var subIDs []uint32
	if o.SubID != 0 {
		subIDs = []uint32{o.SubID}
	}
	for _, e := range entries {
		m := e.Value
		if m.expired(now) {
			s.dropRetained(e.Name, m)
			continue
		}
		dst = append(dst, retainedSend{m: m, o: o, subIDs: subIDs})
	}
	return dst
}

// sendRetained sends the retained messages matching filter to ss after a
// subscription (see retainedFor); ss.mu is held.
func (s *Server) sendRetained(ss *session, filter string, o subOpts, isNew bool) {
	now := time.Now()
	for _, r := range s.retainedFor(nil, filter, o, isNew) {
		ss.deliverRetained(r, now)
	}
}

// deliverRetained hands ss a retained message after a subscription; ss.mu
// is held. It keeps the retain flag [MQTT-3.3.1-8] (3.1.1 [MQTT-3.3.1-8]).
func (ss *session) deliverRetained(r retainedSend, now time.Time) {
	ss.deliver(delivery{m: r.m, qos: min(r.m.qos, r.o.QoS), retain: true, subIDs: r.subIDs}, nil, now)
}

// removeSession unsubscribes ss and forgets it; s.mu is held.
func (s *Server) removeSessionLocked(ss *session) {
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	ss.mu.Lock()
	ss.gone = true
	ss.releaseAll()
	ss.dirty() // the end record
	for f := range ss.subs {
		s.subs.Unsubscribe(f, ss)
	}
	if ss.expTimer != nil {
		ss.expTimer.Stop()
	}
	will := ss.takeWill()
	ss.mu.Unlock()
	if will != nil {
		go s.publish(will, nil)
	}
}

// takeWill returns and clears a will waiting for its delay; ss.mu is held.
func (ss *session) takeWill() *msg {
	w := ss.will
	ss.will = nil
	if ss.willTimer != nil {
		ss.willTimer.Stop()
		ss.willTimer = nil
	}
	return w
}

// expire ends an offline session whose expiry interval has passed
// [MQTT-4.1.0-2]; the pending will is published with it [MQTT-3.1.3-9].
func (s *Server) expire(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.mu.Lock()
	live := ss.c != nil || ss.gone
	ss.mu.Unlock()
	if live {
		return
	}
	s.removeSessionLocked(ss)
}
