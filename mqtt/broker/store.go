package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

const (
	// stateFile is the snapshot's name in StateDir, journalFile the
	// journal of changes since.
	stateFile   = "broker.state"
	journalFile = "broker.journal"
	// compactFloor is the journal size below which it is never compacted;
	// above it, it is compacted once it is twice the last snapshot.
	compactFloor = 1 << 20
	// maxPending bounds the changes waiting for the next sync; beyond it
	// they are dropped and the next sync writes a snapshot instead.
	maxPending = 1 << 16
)

var (
	// snapMagic and journalMagic start the two files, followed by the
	// generation (uint64, big endian): a journal is replayed only onto
	// the snapshot of its generation.
	snapMagic    = []byte("EGWBRK\x00\x02")
	journalMagic = []byte("EGWJNL\x00\x01")
	// stateMagic started the snapshots of earlier versions, one gob
	// encoding of snapshot and a CRC-32C; restore still reads them.
	stateMagic = []byte("EGWBRK\x00\x01")
)

// journalHeader is the journal's magic, generation and CRC-32C of both.
const journalHeader = 8 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// jop is one change waiting for the next sync. Session records are read
// from the session when written, so only the latest is written; message
// records carry what they write.
type jop struct {
	op     byte // recSession, recEnd, recPush, recSend, recRel, recDone, opInflight
	qos    byte // recPush
	retain bool // recPush
	full   bool // recSession: with its messages (the first of a session)
	pid    uint16
	jid    uint32
	key    uint64
	ss     *session // recSession, opInflight
	m      *msg     // recPush
	subIDs []uint32 // recPush
}

// store keeps the persistent state in StateDir: a snapshot and a journal
// of the changes since, appended and fsynced once per SyncInterval.
type store struct {
	dir     string
	log     *slog.Logger
	written atomic.Int64 // bytes written to disk, for benchmarks
	lastJID atomic.Uint32

	// pmu guards the changes waiting for the next sync.
	pmu      sync.Mutex
	ops      []jop
	epoch    uint32              // counts the swaps of ops, for indexes into it
	retained map[string]struct{} // topics whose retained message changed
	overflow bool                // changes were dropped: compact

	// mu serialises syncs and guards below.
	mu       sync.Mutex
	j        *os.File // nil: the next sync compacts
	gen      uint64
	jsize    int64
	snapSize int64
	spare    []jop
	buf      []byte
	lastMID  uint64 // the last recMsg id written
	floor    int64  // compactFloor; tests lower it
	// The messages queued and done since the last snapshot, for an
	// estimate of the live state: a journal that only grows (a queue
	// filling) is not compacted, one of churn is.
	pushBytes, pushes, dones int64
}

// live estimates the bytes a snapshot would take now: the last one, plus
// the messages queued since, less those done since at their mean size.
func (st *store) live() int64 {
	n := st.snapSize + st.pushBytes
	if st.pushes > 0 {
		n -= st.dones * st.pushBytes / st.pushes
	}
	return max(n, 0)
}

func openStore(dir string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: state dir: %w", err)
	}
	return &store{dir: dir, log: log, floor: compactFloor}, nil
}

// add queues a change for the next sync; safe for concurrent use. For a
// recPush it stores in d where the change is, so that later changes of
// the same message within the interval update it in place (update).
func (st *store) add(o jop, d *delivery) {
	st.pmu.Lock()
	switch {
	case st.overflow:
	case len(st.ops) >= maxPending:
		clear(st.ops)
		st.ops, st.overflow = st.ops[:0], true
		st.epoch++
	default:
		if d != nil {
			d.jepoch, d.jidx = st.epoch, int32(len(st.ops))
		}
		st.ops = append(st.ops, o)
	}
	st.pmu.Unlock()
}

// update applies a recSend or recDone of d to its recPush when that is
// still pending, and reports whether it did: a message queued, sent and
// acknowledged within one interval costs no record.
func (st *store) update(op byte, d *delivery, pid uint16) bool {
	st.pmu.Lock()
	defer st.pmu.Unlock()
	if d.jepoch != st.epoch || int(d.jidx) >= len(st.ops) {
		return false
	}
	o := &st.ops[d.jidx]
	if o.op != recPush || o.key != d.key {
		return false
	}
	switch op {
	case recSend:
		o.pid = pid
	case recDone:
		*o = jop{} // skipped by the sync
	default:
		return false
	}
	return true
}

// retainedChanged notes that topic's retained message was set or cleared.
func (st *store) retainedChanged(topic string) {
	st.pmu.Lock()
	if st.retained == nil {
		st.retained = make(map[string]struct{})
	}
	st.retained[topic] = struct{}{}
	st.pmu.Unlock()
}

// syncLoop appends the changes to the journal every SyncInterval.
func (s *Server) syncLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if err := s.syncOnce(); err != nil {
				s.log.Warn("state sync failed", "err", err)
			}
		}
	}
}

// jkey names one message of one session in the journal.
type jkey struct {
	jid uint32
	key uint64
}

// syncOnce appends the changes since the last call to the journal and
// fsyncs it, or compacts when the journal has grown past its bound.
func (s *Server) syncOnce() error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pmu.Lock()
	ops, ret, over := st.ops, st.retained, st.overflow
	st.ops, st.retained, st.overflow = st.spare[:0], nil, false
	st.epoch++
	st.pmu.Unlock()
	defer func() { clear(ops); st.spare = ops[:0] }()
	if over || st.j == nil {
		return s.compactLocked()
	}
	if len(ops) == 0 && len(ret) == 0 {
		return nil
	}
	buf := s.appendBatch(st.buf[:0], ops, ret)
	if cap(buf) <= 1<<20 {
		st.buf = buf[:0]
	}
	if len(buf) == 0 {
		return nil
	}
	n, err := st.j.Write(buf)
	st.written.Add(int64(n))
	st.jsize += int64(n)
	if err == nil {
		err = st.j.Sync()
	}
	if err != nil {
		st.j.Close()
		st.j = nil
		return fmt.Errorf("broker: journal: %w", err)
	}
	if st.jsize > max(st.floor, 2*st.live()) {
		return s.compactLocked()
	}
	return nil
}

// appendBatch appends the journal records of ops and of the retained
// topics ret. A message queued and acknowledged within the batch is left
// out, and so is every session record but the first of each session.
func (s *Server) appendBatch(buf []byte, ops []jop, ret map[string]struct{}) []byte {
	st := s.store
	gone := pushedAndDone(ops)
	var written map[uint32]struct{}
	refs := msgRefs{last: &st.lastMID}
	now := time.Now()
	for i := range ops {
		o := &ops[i]
		switch o.op {
		case recSession:
			if _, ok := written[o.jid]; ok {
				continue
			}
			ss := o.ss
			ss.mu.Lock()
			if ss.jid == o.jid && !ss.gone {
				buf, _ = appendSessionRefs(buf, ss, o.full, &refs)
			}
			ss.mu.Unlock()
			if written == nil {
				written = make(map[uint32]struct{})
			}
			written[o.jid] = struct{}{}
		case opInflight:
			buf = appendInflight(buf, o, &refs)
		case recEnd:
			buf = appendRecord(buf, func(e enc) enc { return e.byte(recEnd).uvarint(uint64(o.jid)) })
		case 0: // cancelled
		default:
			if _, ok := gone[jkey{o.jid, o.key}]; ok {
				continue
			}
			n := len(buf)
			var mid uint64
			op := o.op
			if op == recPush {
				buf, mid, _ = refs.ref(buf, o.m)
				op = recPushRef
			}
			buf = appendRecord(buf, func(e enc) enc {
				e = e.byte(op).uvarint(uint64(o.jid)).uvarint(o.key)
				switch o.op {
				case recPush:
					d := delivery{m: o.m, qos: o.qos, retain: o.retain, subIDs: o.subIDs}
					e = e.uvarint(uint64(o.pid)).deliveryRef(&d, mid)
				case recSend:
					e = e.uvarint(uint64(o.pid))
				}
				return e
			})
			switch o.op {
			case recPush:
				st.pushBytes += int64(len(buf) - n)
				st.pushes++
			case recDone:
				st.dones++
			}
		}
	}
	for t := range ret {
		if m, ok := s.retained.Get(t); ok && !m.expired(now) {
			buf = appendRecord(buf, func(e enc) enc { return e.byte(recRetain).msg(m) })
		} else {
			buf = appendRecord(buf, func(e enc) enc { return e.byte(recRetainClear).str(t) })
		}
	}
	return buf
}

// pushedAndDone returns the deliveries of ops both queued and
// acknowledged within ops, which appendBatch leaves out.
func pushedAndDone(ops []jop) map[jkey]struct{} {
	var pushed, gone map[jkey]struct{}
	for i := range ops {
		o := &ops[i]
		switch o.op {
		case recPush:
			if pushed == nil {
				pushed = make(map[jkey]struct{})
			}
			pushed[jkey{o.jid, o.key}] = struct{}{}
		case recDone:
			k := jkey{o.jid, o.key}
			if _, ok := pushed[k]; ok {
				if gone == nil {
					gone = make(map[jkey]struct{})
				}
				gone[k] = struct{}{}
			}
		}
	}
	return gone
}

// appendInflight appends the records of the in-flight deliveries of o's
// session not journaled yet (an opInflight op).
func appendInflight(buf []byte, o *jop, refs *msgRefs) []byte {
	ss := o.ss
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.jid != o.jid || ss.gone {
		return buf
	}
	ss.jinflight = false
	for id, d := range ss.inflight {
		if d.journaled {
			continue
		}
		d.journaled = true
		var mid uint64
		buf, mid, _ = refs.ref(buf, d.m)
		buf = appendRecord(buf, func(e enc) enc {
			return e.byte(recPushRef).uvarint(uint64(o.jid)).uvarint(d.key).uvarint(uint64(id)).deliveryRef(d, mid)
		})
		if d.rel {
			buf = appendRecord(buf, func(e enc) enc { return e.byte(recRel).uvarint(uint64(o.jid)).uvarint(d.key) })
		}
	}
	return buf
}

// compactLocked writes a snapshot of the whole state under the next
// generation and starts an empty journal for it; st.mu is held. Changes
// made while it runs are in the snapshot or in the next sync, whose
// records are idempotent.
func (s *Server) compactLocked() error {
	st := s.store
	if st.j != nil {
		st.j.Close()
		st.j = nil
	}
	gen := st.gen + 1
	buf := binary.BigEndian.AppendUint64(slices.Clone(snapMagic), gen)
	n := 0
	now := time.Now()
	for _, e := range s.retained.All(nil) {
		if e.Name[0] == '$' || e.Value.expired(now) {
			continue // $SYS is rebuilt
		}
		buf = appendRecord(buf, func(x enc) enc { return x.byte(recRetain).msg(e.Value) })
		n++
	}
	// Only the list is taken under the server's lock: connects do not
	// wait for the encoding. A session made or ended after the list is
	// in the next sync's records, as one made or ended after the
	// encoding always was.
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	refs := msgRefs{last: &st.lastMID}
	for _, ss := range sessions {
		ss.mu.Lock()
		if ss.jid != 0 && !ss.gone {
			var k int
			buf, k = appendSessionRefs(buf, ss, true, &refs)
			n += k
		}
		ss.mu.Unlock()
	}
	buf = appendRecord(buf, func(x enc) enc { return x.byte(recTrailer).uvarint(uint64(n)) })
	if err := writeFileAtomic(filepath.Join(st.dir, stateFile), buf, 0o600); err != nil {
		return err
	}
	st.written.Add(int64(len(buf)))
	st.gen, st.snapSize = gen, int64(len(buf))
	st.pushBytes, st.pushes, st.dones = 0, 0, 0
	hdr := binary.BigEndian.AppendUint64(slices.Clone(journalMagic), gen)
	hdr = binary.BigEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))
	jpath := filepath.Join(st.dir, journalFile)
	if err := writeFileAtomic(jpath, hdr, 0o600); err != nil {
		return err
	}
	st.written.Add(int64(len(hdr)))
	f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("broker: journal: %w", err)
	}
	st.j, st.jsize = f, int64(len(hdr))
	return nil
}

// closeStore writes the final snapshot and closes the journal.
func (s *Server) closeStore() error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pmu.Lock()
	clear(st.ops)
	st.ops, st.retained, st.overflow = st.ops[:0], nil, false
	st.epoch++
	st.pmu.Unlock()
	err := s.compactLocked()
	if st.j != nil {
		st.j.Close()
		st.j = nil
	}
	return err
}

var errBadState = errors.New("broker: damaged state file")

// readSnapshot decodes a snapshot file of either version.
func readSnapshot(b []byte) (gen uint64, st *rstate, err error) {
	if bytes.HasPrefix(b, stateMagic) {
		snap, err := readSnapshotV1(b)
		if err != nil {
			return 0, nil, err
		}
		return 0, snap.rstate(), nil
	}
	if len(b) < len(snapMagic)+8 || !bytes.Equal(b[:len(snapMagic)], snapMagic) {
		return 0, nil, errBadState
	}
	gen = binary.BigEndian.Uint64(b[len(snapMagic):])
	st = newRState()
	rest := b[len(snapMagic)+8:]
	for n := uint64(0); ; n++ {
		body, r, err := nextFrame(rest)
		if err != nil {
			return 0, nil, errBadState
		}
		rest = r
		if body[0] == recTrailer {
			d := &dec{b: body[1:]}
			if d.uvarint() != n || d.err != nil || len(d.b) != 0 || len(rest) != 0 {
				return 0, nil, errBadState
			}
			return gen, st, nil
		}
		if err := st.apply(body); err != nil {
			return 0, nil, errBadState
		}
	}
}

// replayJournal applies the records of journal b to st when b belongs to
// generation gen. It returns the length of the intact prefix, and
// errBadRecord when a torn or damaged record ends it early.
func replayJournal(b []byte, gen uint64, st *rstate) (good int, ok bool, err error) {
	if len(b) < journalHeader || !bytes.Equal(b[:len(journalMagic)], journalMagic) ||
		crc32.Checksum(b[:journalHeader-4], castagnoli) != binary.BigEndian.Uint32(b[journalHeader-4:]) {
		return 0, false, errBadRecord
	}
	if binary.BigEndian.Uint64(b[len(journalMagic):]) != gen {
		return 0, false, nil // left by a compaction that did not finish
	}
	good = journalHeader
	for good < len(b) {
		body, _, err := nextFrame(b[good:])
		if err != nil {
			return good, true, err
		}
		if err := st.apply(body); err != nil {
			return good, true, err
		}
		good += frameHeader + len(body)
	}
	return good, true, nil
}

// restore loads the snapshot and replays the journal written by a
// previous run. A damaged snapshot is renamed .bad and the server starts
// empty; a damaged journal tail is logged and dropped. Either way the
// server starts.
func (s *Server) restore() {
	st := s.store
	path := filepath.Join(st.dir, stateFile)
	jpath := filepath.Join(st.dir, journalFile)
	rs := newRState()
	clean := true
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		clean = false
	case err == nil:
		var gen uint64
		gen, rs, err = readSnapshot(b)
		if err == nil {
			st.gen, st.snapSize = gen, int64(len(b))
			clean = gen != 0
			break
		}
		rs = newRState()
		fallthrough
	default:
		s.log.Error("state not restored, starting empty", "path", path, "err", err)
		os.Rename(path, path+".bad")
		os.Rename(jpath, jpath+".bad")
		clean = false
	}
	if clean {
		jb, err := os.ReadFile(jpath)
		good, ok, err2 := 0, false, err
		if err == nil {
			good, ok, err2 = replayJournal(jb, st.gen, rs)
		}
		switch {
		case err2 != nil && ok:
			s.log.Warn("state journal tail damaged, dropped", "path", jpath, "offset", good, "bytes", len(jb)-good)
			clean = false
		case err2 != nil:
			if !errors.Is(err2, os.ErrNotExist) {
				s.log.Warn("state journal unreadable", "path", jpath, "err", err2)
			}
			clean = false
		case !ok:
			clean = false
		case good > journalHeader:
			clean = false // fold it into a fresh snapshot
		}
	}
	s.load(rs)
	st.lastJID.Store(rs.maxJID)
	st.mu.Lock()
	defer st.mu.Unlock()
	if clean {
		f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			st.j, st.jsize = f, journalHeader
			return
		}
	}
	if err := s.compactLocked(); err != nil {
		s.log.Warn("state sync failed", "err", err)
	}
}

// load builds the server's retained messages and sessions from rs.
func (s *Server) load(rs *rstate) {
	now := time.Now()
	for t, m := range rs.retained {
		if !m.expired(now) {
			s.loadRetained(t, m)
		}
	}
	for _, sn := range rs.sessions {
		left := sn.expiry
		if sn.expiry < neverExpire && !sn.disconnectedAt.IsZero() {
			left -= now.Sub(sn.disconnectedAt)
			if left <= 0 {
				continue
			}
		}
		ss := newSession(s, sn.id)
		ss.jid = sn.jid
		ss.expiry = sn.expiry
		ss.disconnectedAt = sn.disconnectedAt
		ss.user, ss.ownerKnown = sn.user, sn.ownerKnown
		if ss.disconnectedAt.IsZero() {
			ss.disconnectedAt = now
		}
		for _, sub := range sn.subs {
			if _, err := s.subs.Subscribe(sub.Filter, ss, sub.Opts); err == nil {
				ss.addSub(sub.Filter, sub.Opts)
			}
		}
		keys := make([]uint64, 0, len(sn.msgs))
		for k := range sn.msgs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			rd := sn.msgs[k]
			d := rd.d
			d.key, d.journaled = k, true
			ss.jkey = k
			if rd.pid == 0 {
				ss.account(&d, msgBytes(d.m))
				ss.queue.push(d)
				continue
			}
			if _, dup := ss.inflight[rd.pid]; dup {
				continue
			}
			if !rd.rel {
				ss.account(&d, msgBytes(d.m))
			}
			ss.seq++
			d.seq, d.rel = ss.seq, rd.rel
			if ss.inflight == nil {
				ss.inflight = make(map[uint16]*delivery)
			}
			ss.inflight[rd.pid] = &d
			ss.nextID = rd.pid
		}
		for _, id := range sn.rec {
			if ss.rec == nil {
				ss.rec = make(map[uint16]struct{})
			}
			ss.rec[id] = struct{}{}
		}
		if sn.expiry < neverExpire {
			ss.expTimer = time.AfterFunc(left, func() { s.expire(ss) })
		}
		s.sessions[sn.id] = ss
	}
	s.log.Info("state restored", "retained", len(rs.retained), "sessions", len(s.sessions))
}

// The types below are the layout of version 1 snapshots.

type snapshot struct {
	Saved    time.Time
	Retained []snapMsg
	Sessions []snapSession
}

type snapMsg struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	PayloadFormat   byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	User            []packet.UserProperty
	Expiry          time.Time
}

type snapSub struct {
	Filter string
	Opts   subOpts
}

type snapDelivery struct {
	ID     uint16
	Msg    snapMsg
	QoS    byte
	Retain bool
	SubIDs []uint32
	Rel    bool
}

type snapSession struct {
	ID             string
	Expiry         time.Duration
	DisconnectedAt time.Time // zero: connected when saved
	Subs           []snapSub
	Inflight       []snapDelivery // in order of first transmission
	Queue          []snapDelivery
	Rec            []uint16
}

func (sm *snapMsg) msg() *msg {
	m := &msg{topic: sm.Topic, payload: sm.Payload, qos: sm.QoS, retain: sm.Retain, expiry: sm.Expiry}
	m.props.PayloadFormat = sm.PayloadFormat
	m.props.ContentType = sm.ContentType
	m.props.ResponseTopic = sm.ResponseTopic
	m.props.CorrelationData = sm.CorrelationData
	m.props.User = sm.User
	return m
}

// readSnapshotV1 reads a snapshot written by an earlier version.
func readSnapshotV1(b []byte) (*snapshot, error) {
	if len(b) < len(stateMagic)+4 || !bytes.Equal(b[:len(stateMagic)], stateMagic) {
		return nil, errBadState
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errBadState
	}
	var snap snapshot
	if err := gob.NewDecoder(bytes.NewReader(body[len(stateMagic):])).Decode(&snap); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadState, err)
	}
	return &snap, nil
}

// rstate converts a version 1 snapshot.
func (snap *snapshot) rstate() *rstate {
	st := newRState()
	for i := range snap.Retained {
		m := snap.Retained[i].msg()
		st.retained[m.topic] = m
	}
	for i, sn := range snap.Sessions {
		rs := &rsession{jid: uint32(i + 1), id: sn.ID, expiry: sn.Expiry, disconnectedAt: sn.DisconnectedAt,
			subs: sn.Subs, rec: sn.Rec, msgs: make(map[uint64]*rdelivery)}
		var key uint64
		for _, d := range sn.Inflight {
			key++
			rs.msgs[key] = &rdelivery{pid: d.ID, rel: d.Rel, d: delivery{m: d.Msg.msg(), qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs}}
		}
		for _, d := range sn.Queue {
			key++
			rs.msgs[key] = &rdelivery{d: delivery{m: d.Msg.msg(), qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs}}
		}
		st.sessions[rs.jid] = rs
		st.maxJID = rs.jid
	}
	return st
}
