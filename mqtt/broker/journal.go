package broker

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// The journal and the snapshot are sequences of records, each framed as
// length (uint32, big endian), CRC-32C of the body (uint32, big endian),
// body. The body's first byte is its op; integers are varints, strings and
// byte slices are length-prefixed.
const (
	recRetain      = 1 // msg: set or replace a retained message
	recRetainClear = 2 // topic
	recSession     = 3 // jid, id, meta; full: deliveries, replacing all; then owner (absent before owners: unknown)
	recEnd         = 4 // jid: the session ended
	recPush        = 5 // jid, key, packet id (0: queued), delivery
	recSend        = 6 // jid, key, packet id: queued message sent
	recRel         = 7 // jid, key: PUBREC received, PUBREL sent
	recDone        = 8 // jid, key: acknowledged, expired or dropped
	recTrailer     = 9 // record count: the snapshot is complete
	// A message held by many sessions is written once, as a recMsg, and
	// the deliveries that follow refer to it by its id: the journal
	// writes a payload once however many sessions hold it. recPush and
	// recSession, which carry their messages, are still read.
	recMsg        = 10 // message id, msg
	recPushRef    = 11 // as recPush, the message a reference
	recSessionRef = 12 // as recSession, the messages references

	// opInflight is no record: it asks the next sync to write the
	// messages a connected session put in flight and has not had
	// acknowledged by then.
	opInflight = 100
)

// frameHeader is the length and CRC before each record body.
const frameHeader = 8

// maxRecord bounds one record body: a message is at most the maximum
// packet size (256 MiB in MQTT), and a full session record holds its
// queue.
const maxRecord = 1 << 30

var errBadRecord = errors.New("broker: damaged state record")

// appendFrame appends a framed record whose body was appended to dst
// after start-frameHeader bytes were reserved.
func frameAt(dst []byte, start int) []byte {
	body := dst[start+frameHeader:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// nextFrame splits the first record off b. It returns errBadRecord for a
// torn or damaged record; rest is then meaningless.
func nextFrame(b []byte) (body, rest []byte, err error) {
	if len(b) < frameHeader {
		return nil, nil, errBadRecord
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > maxRecord || uint64(n) > uint64(len(b)-frameHeader) {
		return nil, nil, errBadRecord
	}
	body = b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, nil, errBadRecord
	}
	return body, b[frameHeader+int(n):], nil
}

// enc appends record fields.
type enc []byte

func (e enc) byte(b byte) enc      { return append(e, b) }
func (e enc) uvarint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) varint(v int64) enc   { return binary.AppendVarint(e, v) }
func (e enc) bytes(b []byte) enc   { return append(e.uvarint(uint64(len(b))), b...) }
func (e enc) str(s string) enc     { return append(e.uvarint(uint64(len(s))), s...) }
func (e enc) bool(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}
func (e enc) time(t time.Time) enc {
	if t.IsZero() {
		return e.varint(0)
	}
	return e.varint(t.UnixNano())
}

// Flags of an encoded message: which optional fields follow.
const (
	mfRetain = 1 << (2 + iota)
	mfPayloadFormat
	mfContentType
	mfResponseTopic
	mfCorrelation
	mfUser
	mfExpiry
	mfLocal // the gateway's own message (msg.local)
	mfAll   = 1<<(2+iota) - 1
)

// msg appends m: a flags varint (QoS in its low two bits), the topic,
// the payload and the fields the flags announce.
func (e enc) msg(m *msg) enc {
	p := &m.props
	f := uint64(m.qos & 3)
	set := func(b bool, bit uint64) {
		if b {
			f |= bit
		}
	}
	set(m.retain, mfRetain)
	set(p.PayloadFormat != 0, mfPayloadFormat)
	set(p.ContentType != "", mfContentType)
	set(p.ResponseTopic != "", mfResponseTopic)
	set(p.CorrelationData != nil, mfCorrelation)
	set(len(p.User) > 0, mfUser)
	set(!m.expiry.IsZero(), mfExpiry)
	set(m.local, mfLocal)
	e = e.uvarint(f).str(m.topic).bytes(m.payload)
	if f&mfPayloadFormat != 0 {
		e = e.byte(p.PayloadFormat)
	}
	if f&mfContentType != 0 {
		e = e.str(p.ContentType)
	}
	if f&mfResponseTopic != 0 {
		e = e.str(p.ResponseTopic)
	}
	if f&mfCorrelation != 0 {
		e = e.bytes(p.CorrelationData)
	}
	if f&mfUser != 0 {
		e = e.uvarint(uint64(len(p.User)))
		for _, u := range p.User {
			e = e.str(u.Key).str(u.Value)
		}
	}
	if f&mfExpiry != 0 {
		e = e.time(m.expiry)
	}
	return e
}

// delivery appends d: QoS, retain flag and the number of subscription
// identifiers in one varint, the identifiers, the message.
func (e enc) delivery(d *delivery) enc { return e.deliveryHead(d).msg(d.m) }

// deliveryRef appends d as delivery does, with the id of its message's
// recMsg instead of the message.
func (e enc) deliveryRef(d *delivery, mid uint64) enc { return e.deliveryHead(d).uvarint(mid) }

func (e enc) deliveryHead(d *delivery) enc {
	f := uint64(d.qos&3) | uint64(len(d.subIDs))<<3
	if d.retain {
		f |= 4
	}
	e = e.uvarint(f)
	for _, id := range d.subIDs {
		e = e.uvarint(uint64(id))
	}
	return e
}

// dec reads record fields; the first error sticks and every later read
// returns zero values, so a decoder checks err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err, d.b = errBadRecord, nil }

func (d *dec) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of elements, each at least min bytes long, so a
// damaged count cannot make the reader allocate beyond the record.
func (d *dec) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	copy(b, d.b)
	d.b = d.b[n:]
	return b
}

func (d *dec) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (d *dec) u16() uint16 {
	v := d.uvarint()
	if v > math.MaxUint16 {
		d.fail()
	}
	return uint16(v)
}

func (d *dec) u32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail()
	}
	return uint32(v)
}

func (d *dec) msg() *msg {
	f := d.uvarint()
	m := &msg{qos: byte(f & 3), retain: f&mfRetain != 0, local: f&mfLocal != 0, topic: d.str(), payload: d.bytes()}
	p := &m.props
	if f&mfPayloadFormat != 0 {
		p.PayloadFormat = d.byte()
	}
	if f&mfContentType != 0 {
		p.ContentType = d.str()
	}
	if f&mfResponseTopic != 0 {
		p.ResponseTopic = d.str()
	}
	if f&mfCorrelation != 0 {
		p.CorrelationData = d.bytes()
		if p.CorrelationData == nil {
			p.CorrelationData = []byte{}
		}
	}
	if f&mfUser != 0 {
		p.User = make([]packet.UserProperty, d.count(2))
		for i := range p.User {
			p.User[i] = packet.UserProperty{Key: d.str(), Value: d.str()}
		}
	}
	if f&mfExpiry != 0 {
		m.expiry = d.time()
	}
	if m.topic == "" || m.qos > 2 || f&^mfAll != 0 {
		d.fail()
	}
	return m
}

// delivery reads a delivery; with msgs, its message is a reference into
// msgs (deliveryRef), which must hold it.
func (d *dec) delivery(msgs map[uint64]*msg, refs bool) delivery {
	f := d.uvarint()
	x := delivery{qos: byte(f & 3), retain: f&4 != 0}
	if n := f >> 3; n > 0 {
		if n > uint64(len(d.b)) {
			d.fail()
			return x
		}
		x.subIDs = make([]uint32, n)
		for i := range x.subIDs {
			x.subIDs[i] = d.u32()
		}
	}
	if refs {
		x.m = msgs[d.uvarint()]
		if x.m == nil {
			d.fail()
			return x
		}
	} else {
		x.m = d.msg()
	}
	if x.qos > 2 {
		d.fail()
	}
	return x
}

// rstate is the persistent state rebuilt from a snapshot and a journal.
type rstate struct {
	retained map[string]*msg
	msgs     map[uint64]*msg      // by recMsg id
	sessions map[uint32]*rsession // by journal id
	maxJID   uint32
}

type rsession struct {
	jid            uint32
	id             string
	expiry         time.Duration
	disconnectedAt time.Time // zero: connected when written
	subs           []snapSub
	rec            []uint16
	msgs           map[uint64]*rdelivery // by key
	user           string                // owner
	ownerKnown     bool                  // false: written before sessions had owners
}

type rdelivery struct {
	pid uint16 // 0: queued
	rel bool
	d   delivery
}

func newRState() *rstate {
	return &rstate{retained: make(map[string]*msg), sessions: make(map[uint32]*rsession), msgs: make(map[uint64]*msg)}
}

// apply decodes one record body and applies it to st. Records for
// sessions st does not know are ignored: they follow a damaged snapshot.
func (st *rstate) apply(body []byte) error {
	d := &dec{b: body}
	op := d.byte()
	switch op {
	case recRetain:
		m := d.msg()
		if d.err == nil {
			st.retained[m.topic] = m
		}
	case recRetainClear:
		t := d.str()
		if d.err == nil {
			delete(st.retained, t)
		}
	case recMsg:
		mid, m := d.uvarint(), d.msg()
		if d.err == nil {
			st.msgs[mid] = m
		}
	case recSession, recSessionRef:
		st.applySession(d, op == recSessionRef)
	case recEnd:
		jid := d.u32()
		if d.err == nil {
			delete(st.sessions, jid)
			st.maxJID = max(st.maxJID, jid)
		}
	case recPush, recPushRef, recSend, recRel, recDone:
		st.applyDelivery(d, op)
	case recTrailer:
		d.uvarint()
	default:
		d.fail()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}

// applySession applies a recSession record (a recSessionRef one with
// refs: its messages refer to recMsg records) read from d.
func (st *rstate) applySession(d *dec, refs bool) {
	rs := &rsession{jid: d.u32(), id: d.str(), expiry: time.Duration(d.varint()), disconnectedAt: d.time()}
	if n := d.count(4); n > 0 {
		rs.subs = make([]snapSub, n)
		for i := range rs.subs {
			f := d.str()
			o := subOpts{QoS: d.byte()}
			fl := d.byte()
			o.NoLocal, o.RetainAsPublished = fl&1 != 0, fl&2 != 0
			o.RetainHandling = d.byte()
			o.SubID = d.u32()
			rs.subs[i] = snapSub{f, o}
		}
	}
	if n := d.count(1); n > 0 {
		rs.rec = make([]uint16, n)
		for i := range rs.rec {
			rs.rec[i] = d.u16()
		}
	}
	full := d.bool()
	if full {
		n := d.count(4)
		rs.msgs = make(map[uint64]*rdelivery, n)
		for range n {
			key := d.uvarint()
			rd := &rdelivery{pid: d.u16(), rel: d.bool()}
			rd.d = d.delivery(st.msgs, refs)
			rs.msgs[key] = rd
		}
	}
	if d.err == nil && len(d.b) > 0 {
		// The owner, added after the first layout: a record
		// without it loads with the owner unknown.
		rs.ownerKnown = d.bool()
		rs.user = d.str()
	}
	if d.err != nil || rs.jid == 0 || rs.id == "" {
		return
	}
	if old := st.sessions[rs.jid]; old != nil && !full {
		rs.msgs = old.msgs
	}
	if rs.msgs == nil {
		rs.msgs = make(map[uint64]*rdelivery)
	}
	// A client id has one session: a new journal id replaces an
	// older one left by a lost end record.
	for jid, o := range st.sessions {
		if o.id == rs.id && jid != rs.jid {
			delete(st.sessions, jid)
		}
	}
	st.sessions[rs.jid] = rs
	st.maxJID = max(st.maxJID, rs.jid)
}

// applyDelivery applies a record of one delivery of a session (op is
// recPush, recPushRef, recSend, recRel or recDone) read from d.
func (st *rstate) applyDelivery(d *dec, op byte) {
	jid, key := d.u32(), d.uvarint()
	var pid uint16
	var x delivery
	if op != recRel && op != recDone {
		pid = d.u16()
	}
	if op == recPush || op == recPushRef {
		x = d.delivery(st.msgs, op == recPushRef)
	}
	rs := st.sessions[jid]
	if d.err != nil || rs == nil {
		return
	}
	rd := rs.msgs[key]
	switch op {
	case recPush, recPushRef:
		if rd == nil {
			rs.msgs[key] = &rdelivery{pid: pid, d: x}
		}
	case recSend:
		if rd != nil {
			rd.pid = pid
		}
	case recRel:
		if rd != nil {
			rd.rel = true
			rd.d.m = &msg{topic: rd.d.m.topic}
		}
	case recDone:
		delete(rs.msgs, key)
	}
}

// msgRefs numbers the messages written as recMsg records in one batch or
// snapshot, so that each is written once.
type msgRefs struct {
	ids  map[*msg]uint64
	last *uint64 // the store's last message id
}

// ref returns the id of m, appending its recMsg record to dst first when
// it has none yet, and the number of records appended.
func (r *msgRefs) ref(dst []byte, m *msg) ([]byte, uint64, int) {
	if id, ok := r.ids[m]; ok {
		return dst, id, 0
	}
	if r.ids == nil {
		r.ids = make(map[*msg]uint64)
	}
	*r.last++
	id := *r.last
	r.ids[m] = id
	return appendRecord(dst, func(e enc) enc { return e.byte(recMsg).uvarint(id).msg(m) }), id, 1
}

// appendSessionRefs appends a session record for ss, full with its
// deliveries, whose messages refer to recMsg records appended before it
// when they have none yet in refs; ss.mu is held. It returns the number
// of records appended.
func appendSessionRefs(dst []byte, ss *session, full bool, refs *msgRefs) ([]byte, int) {
	if !full {
		return appendSession(dst, ss, false), 1
	}
	n := 1
	ids := make(map[*delivery]uint64, len(ss.inflight)+ss.queue.len())
	add := func(d *delivery) {
		var id uint64
		var k int
		dst, id, k = refs.ref(dst, d.m)
		ids[d], n = id, n+k
	}
	for _, d := range ss.inflight {
		add(d)
	}
	ss.queue.each(add)
	return appendSessionOp(dst, ss, true, ids), n
}

// appendSession appends a session record for ss, with its messages when
// full (the layout before recSessionRef); ss.mu is held.
func appendSession(dst []byte, ss *session, full bool) []byte {
	return appendSessionOp(dst, ss, full, nil)
}

// appendSessionOp appends a recSession record, or a recSessionRef one
// when ids gives the message ids of its deliveries; ss.mu is held.
func appendSessionOp(dst []byte, ss *session, full bool, ids map[*delivery]uint64) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	op := byte(recSession)
	if ids != nil {
		op = recSessionRef
	}
	e := enc(dst).byte(op).uvarint(uint64(ss.jid)).str(ss.id).varint(int64(ss.expiry))
	if ss.c == nil {
		e = e.time(ss.disconnectedAt)
	} else {
		e = e.time(time.Time{})
	}
	e = e.uvarint(uint64(len(ss.subs)))
	for f, o := range ss.subs {
		var fl byte
		if o.NoLocal {
			fl |= 1
		}
		if o.RetainAsPublished {
			fl |= 2
		}
		e = e.str(f).byte(o.QoS).byte(fl).byte(o.RetainHandling).uvarint(uint64(o.SubID))
	}
	e = e.uvarint(uint64(len(ss.rec)))
	for id := range ss.rec {
		e = e.uvarint(uint64(id))
	}
	e = e.bool(full)
	if full {
		// Every delivery is in the journal from here on.
		ss.jinflight = false
		e = e.uvarint(uint64(len(ss.inflight) + ss.queue.len()))
		put := func(d *delivery) enc {
			if ids != nil {
				return e.deliveryRef(d, ids[d])
			}
			return e.delivery(d)
		}
		for id, d := range ss.inflight {
			d.journaled = true
			e = e.uvarint(d.key).uvarint(uint64(id)).bool(d.rel)
			e = put(d)
		}
		ss.queue.each(func(d *delivery) {
			d.journaled = true
			e = e.uvarint(d.key).uvarint(0).bool(false)
			e = put(d)
		})
	}
	e = e.bool(ss.ownerKnown).str(ss.user)
	return frameAt(e, start)
}

// appendRecord appends a framed record built by fn.
func appendRecord(dst []byte, fn func(e enc) enc) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	return frameAt(fn(enc(dst)), start)
}
