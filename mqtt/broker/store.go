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

// stateFile is the snapshot's name in StateDir.
const stateFile = "broker.state"

// stateMagic starts a snapshot; the version byte changes with the layout.
var stateMagic = []byte("EGWBRK\x00\x01")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// store writes snapshots of the persistent state. Layout: magic, gob
// encoding of snapshot, CRC-32C of both (big endian).
type store struct {
	dir   string
	log   *slog.Logger
	dirty atomic.Bool
	// mu serialises snapshots.
	mu sync.Mutex
}

func openStore(dir string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: state dir: %w", err)
	}
	return &store{dir: dir, log: log}, nil
}

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

func toSnap(m *msg) snapMsg {
	return snapMsg{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain,
		PayloadFormat: m.props.PayloadFormat, ContentType: m.props.ContentType,
		ResponseTopic: m.props.ResponseTopic, CorrelationData: m.props.CorrelationData,
		User: m.props.User, Expiry: m.expiry}
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

func toSnapDelivery(id uint16, d *delivery) snapDelivery {
	return snapDelivery{ID: id, Msg: toSnap(d.m), QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs, Rel: d.rel}
}

// snapshot writes the state if anything changed since the last one.
func (s *Server) snapshot() error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dirty.Store(false)
	snap := snapshot{Saved: time.Now()}
	for _, e := range s.retained.All(nil) {
		if e.Name[0] == '$' {
			continue // $SYS is rebuilt
		}
		snap.Retained = append(snap.Retained, toSnap(e.Value))
	}
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.persistent() && !ss.gone {
			snap.Sessions = append(snap.Sessions, ss.snap())
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	var buf bytes.Buffer
	buf.Write(stateMagic)
	if err := gob.NewEncoder(&buf).Encode(&snap); err != nil {
		st.dirty.Store(true)
		return fmt.Errorf("broker: encode state: %w", err)
	}
	buf.Write(binary.BigEndian.AppendUint32(nil, crc32.Checksum(buf.Bytes(), castagnoli)))
	if err := writeFileAtomic(filepath.Join(st.dir, stateFile), buf.Bytes(), 0o600); err != nil {
		st.dirty.Store(true)
		return err
	}
	return nil
}

// snap copies the session's state; ss.mu is held.
func (ss *session) snap() snapSession {
	out := snapSession{ID: ss.id, Expiry: ss.expiry}
	if ss.c == nil {
		out.DisconnectedAt = ss.disconnectedAt
		if out.DisconnectedAt.IsZero() {
			out.DisconnectedAt = time.Now()
		}
	}
	for f, o := range ss.subs {
		out.Subs = append(out.Subs, snapSub{f, o})
	}
	ids := make([]uint16, 0, len(ss.inflight))
	for id := range ss.inflight {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint16) int { return int(ss.inflight[a].seq - ss.inflight[b].seq) })
	for _, id := range ids {
		out.Inflight = append(out.Inflight, toSnapDelivery(id, ss.inflight[id]))
	}
	ss.queue.each(func(d *delivery) { out.Queue = append(out.Queue, toSnapDelivery(0, d)) })
	for id := range ss.rec {
		out.Rec = append(out.Rec, id)
	}
	return out
}

// syncLoop writes a snapshot at most every SyncInterval while the state
// changes.
func (s *Server) syncLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if s.store.dirty.Load() {
				if err := s.snapshot(); err != nil {
					s.log.Warn("state snapshot failed", "err", err)
				}
			}
		}
	}
}

var errBadState = errors.New("broker: damaged state file")

func readSnapshot(path string) (*snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
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

// restore loads the snapshot written by a previous run; a missing or
// damaged one is logged and the server starts empty.
func (s *Server) restore() {
	path := filepath.Join(s.store.dir, stateFile)
	snap, err := readSnapshot(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		s.log.Error("state not restored, starting empty", "path", path, "err", err)
		os.Rename(path, path+".bad")
		return
	}
	now := time.Now()
	for i := range snap.Retained {
		m := snap.Retained[i].msg()
		if !m.expired(now) {
			s.retained.Set(m.topic, m)
		}
	}
	for _, sn := range snap.Sessions {
		left := sn.Expiry
		if sn.Expiry < neverExpire {
			left -= now.Sub(sn.DisconnectedAt)
			if left <= 0 {
				continue
			}
		}
		ss := newSession(s, sn.ID)
		ss.expiry = sn.Expiry
		ss.disconnectedAt = sn.DisconnectedAt
		for _, sub := range sn.Subs {
			if _, err := s.subs.Subscribe(sub.Filter, ss, sub.Opts); err == nil {
				ss.addSub(sub.Filter, sub.Opts)
			}
		}
		for _, d := range sn.Inflight {
			if d.ID == 0 {
				continue
			}
			ss.seq++
			if ss.inflight == nil {
				ss.inflight = make(map[uint16]*delivery)
			}
			ss.inflight[d.ID] = &delivery{m: d.Msg.msg(), qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs, rel: d.Rel, seq: ss.seq}
			ss.nextID = d.ID
		}
		for _, d := range sn.Queue {
			ss.queue.push(delivery{m: d.Msg.msg(), qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs})
		}
		for _, id := range sn.Rec {
			if ss.rec == nil {
				ss.rec = make(map[uint16]struct{})
			}
			ss.rec[id] = struct{}{}
		}
		if sn.Expiry < neverExpire {
			ss.expTimer = time.AfterFunc(left, func() { s.expire(ss) })
		}
		s.sessions[sn.ID] = ss
	}
	s.log.Info("state restored", "retained", len(snap.Retained), "sessions", len(s.sessions))
}
