package broker

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	gocmp "github.com/google/go-cmp/cmp"
)

// offlineCar leaves an offline persistent session "car" subscribed to
// q/# at QoS 1 in s.
func offlineCar(t testing.TB, s *Server) {
	t.Helper()
	c := pipe(t, s, packet.V5)
	c.connack(&packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600}})
	c.subscribe(1, sub("q/#", 1))
	c.nc.Close()
	waitOffline(t, s, "car")
}

// queued returns the payloads queued for session id.
func queued(s *Server, id string) []string {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := []string{}
	ss.queue.each(func(d *delivery) { out = append(out, string(d.m.payload)) })
	return out
}

func mustSync(t testing.TB, s *Server) {
	t.Helper()
	if err := s.syncOnce(); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// copyState copies the state files of dir into a new directory, as a
// kill -9 leaves them.
func copyState(t testing.TB, dir string, journal []byte) string {
	t.Helper()
	out := t.TempDir()
	snap, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, stateFile), snap, 0o600)
	if journal == nil {
		journal, _ = os.ReadFile(filepath.Join(dir, journalFile))
	}
	os.WriteFile(filepath.Join(out, journalFile), journal, 0o600)
	return out
}

// TestJournalTornTail cuts the journal at every byte offset of its last
// records (a power loss mid-write) and flips a byte in each: the server
// starts with every record before the damage and none after.
func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, SyncInterval: time.Hour})
	offlineCar(t, s)
	mustSync(t, s)
	jpath := filepath.Join(dir, journalFile)
	var ends []int // journal length after each message
	fi, _ := os.Stat(jpath)
	ends = append(ends, int(fi.Size()))
	const n = 3
	for i := range n {
		s.Publish(context.Background(), Message{Topic: "q/x", Payload: []byte(strconv.Itoa(i)), QoS: 1})
		mustSync(t, s)
		fi, _ := os.Stat(jpath)
		ends = append(ends, int(fi.Size()))
	}
	journal, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	want := func(complete int) []string {
		out := []string{}
		for i := range complete {
			out = append(out, strconv.Itoa(i))
		}
		return out
	}
	check := func(name string, j []byte, complete int) {
		t.Helper()
		d := copyState(t, dir, j)
		s2, err := New(Options{StateDir: d, SysInterval: -1, SyncInterval: time.Hour})
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		defer s2.Shutdown(context.Background())
		if got := queued(s2, "car"); !slices.Equal(got, want(complete)) {
			t.Errorf("%s: queued %q, want %q", name, got, want(complete))
		}
	}
	for cut := ends[0]; cut <= len(journal); cut++ {
		complete := 0
		for complete < n && ends[complete+1] <= cut {
			complete++
		}
		check("cut at "+strconv.Itoa(cut), journal[:cut], complete)
	}
	for i := range n {
		for _, off := range []int{ends[i], ends[i] + 5, (ends[i] + ends[i+1]) / 2, ends[i+1] - 1} {
			j := bytes.Clone(journal)
			j[off] ^= 0x40
			check("flip at "+strconv.Itoa(off), j, i)
		}
	}
}

// TestJournalAppendAfterTornTail checks that records written after a
// recovery from a torn tail are read on the next start.
func TestJournalAppendAfterTornTail(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, SyncInterval: time.Hour})
	offlineCar(t, s)
	mustSync(t, s)
	s.Publish(context.Background(), Message{Topic: "q/x", Payload: []byte("a"), QoS: 1})
	s.Publish(context.Background(), Message{Topic: "q/x", Payload: []byte("b"), QoS: 1})
	mustSync(t, s)
	j, _ := os.ReadFile(filepath.Join(dir, journalFile))
	d := copyState(t, dir, j[:len(j)-3])
	s2, err := New(Options{StateDir: d, SysInterval: -1, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s2.Publish(context.Background(), Message{Topic: "q/x", Payload: []byte("c"), QoS: 1})
	mustSync(t, s2)
	s3 := newServer(t, Options{StateDir: copyState(t, d, nil)}) // s2 killed
	if got, want := queued(s3, "car"), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("queued %q, want %q", got, want)
	}
	s2.Shutdown(context.Background())
}

// sessState is what a restart must keep of a session.
type sessState struct {
	Expiry   time.Duration
	Subs     map[string]subOpts
	Inflight []string // packet id, rel, payload, in order
	Queue    []string
	Rec      []uint16
}

func stateOf(s *Server, id string) *sessState {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := &sessState{Expiry: ss.expiry, Subs: maps.Clone(ss.subs)}
	ids := slices.Collect(maps.Keys(ss.inflight))
	slices.SortFunc(ids, func(a, b uint16) int { return cmp.Compare(ss.inflight[a].seq, ss.inflight[b].seq) })
	for _, id := range ids {
		d := ss.inflight[id]
		out.Inflight = append(out.Inflight, fmt.Sprintf("%d %v q%d %s", id, d.rel, d.qos, d.m.payload))
	}
	ss.queue.each(func(d *delivery) { out.Queue = append(out.Queue, fmt.Sprintf("q%d %s", d.qos, d.m.payload)) })
	out.Rec = slices.Sorted(maps.Keys(ss.rec))
	return out
}

// TestJournalMatchesLive drives a persistent session through queueing,
// delivery, acknowledgements, QoS 2 flows, reconnects and subscription
// changes, and after each step restarts a copy of the state directory
// (as a kill -9 leaves it): the restored session equals the live one.
func TestJournalMatchesLive(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, SyncInterval: time.Hour})
	ctx := context.Background()
	pub := func(qos byte, payloads ...string) func() {
		return func() {
			for _, p := range payloads {
				s.Publish(ctx, Message{Topic: "q/x", Payload: []byte(p), QoS: qos})
			}
		}
	}
	var c *tclient
	var pending []*packet.Publish
	// collect round-trips a PINGREQ, keeping the PUBLISH packets
	// received before the PINGRESP.
	collect := func() {
		t.Helper()
		c.send(&packet.Pingreq{})
		for range 100 {
			switch p := c.recv().(type) {
			case *packet.Pingresp:
				return
			case *packet.Publish:
				pending = append(pending, p)
			}
		}
		t.Fatal("no PINGRESP")
	}
	connect := func(rm uint16) func() {
		return func() {
			c = pipe(t, s, packet.V5)
			c.connack(&packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600, ReceiveMaximum: rm}})
			collect()
		}
	}
	ackFirst := func() {
		p := pending[0]
		pending = pending[1:]
		if p.QoS == 2 {
			c.send(&packet.Pubrec{PacketID: p.PacketID}) // PUBREL comes back; no PUBCOMP yet
		} else {
			c.send(&packet.Puback{PacketID: p.PacketID})
		}
		collect()
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"connect", connect(2)},
		{"subscribe", func() { c.subscribe(1, sub("q/#", 2), sub("r/#", 1)); collect() }},
		{"publish", pub(1, "a", "b", "c")},
		{"publish qos 2", pub(2, "d", "e")},
		{"receive", collect},
		{"ack", ackFirst},
		{"ack more", ackFirst},
		{"incoming qos 2", func() {
			c.send(&packet.Publish{Topic: "z", QoS: 2, PacketID: 7, Payload: []byte("in")})
			collect()
		}},
		{"offline", func() { c.nc.Close(); waitOffline(t, s, "car"); pending = nil }},
		{"publish offline", pub(1, "f", "g")},
		{"reconnect", connect(10)},
		{"pubrec", func() {
			for pending[0].QoS != 2 {
				ackFirst()
			}
			ackFirst()
		}},
		{"ack all", func() {
			for len(pending) > 0 {
				ackFirst()
			}
		}},
		{"pubcomp", func() {
			c.send(&packet.Pubcomp{PacketID: 4})
			collect()
		}},
		{"unsubscribe", func() {
			c.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"r/#"}})
			collect()
		}},
		{"pubrel", func() {
			c.send(&packet.Pubrel{PacketID: 7})
			collect()
		}},
		{"disconnect", func() { c.disconnect(); waitOffline(t, s, "car") }},
		{"publish at the end", pub(2, "h")},
	}
	for _, st := range steps {
		st.do()
		if testing.Verbose() {
			t.Logf("%s: %+v", st.name, stateOf(s, "car"))
		}
		mustSync(t, s)
		s2 := newServer(t, Options{StateDir: copyState(t, dir, nil), SyncInterval: time.Hour})
		if diff := gocmp.Diff(stateOf(s, "car"), stateOf(s2, "car")); diff != "" {
			t.Fatalf("after %s: restored session differs (-live +restored):\n%s", st.name, diff)
		}
		s2.Shutdown(ctx)
	}
}

// TestJournalCompaction republishes retained messages until the journal
// passes its bound: it is folded into a fresh snapshot, stays within
// twice the live state,
// and a restart (after Shutdown or as a kill -9 leaves it) finds the
// latest state. A journal left by a compaction that did not finish is
// ignored.
func TestJournalCompaction(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, SyncInterval: time.Hour})
	s.store.floor = 4 << 10
	offlineCar(t, s)
	ctx := context.Background()
	payload := bytes.Repeat([]byte("p"), 500)
	var stale []byte
	gen0 := s.store.gen
	for i := range 100 {
		s.Publish(ctx, Message{Topic: "r/status", Payload: append(payload, strconv.Itoa(i)...), Retain: true})
		s.Publish(ctx, Message{Topic: "q/x", Payload: []byte(strconv.Itoa(i)), QoS: 1})
		if i == 10 {
			stale, _ = os.ReadFile(filepath.Join(dir, journalFile))
		}
		mustSync(t, s)
		if fi, _ := os.Stat(filepath.Join(dir, journalFile)); fi.Size() > 2*max(s.store.floor, s.store.live()) {
			t.Fatalf("journal %d bytes after message %d, live state about %d", fi.Size(), i, s.store.live())
		}
	}
	if s.store.gen < gen0+3 {
		t.Errorf("generation %d after 100 republications, want compactions (started at %d)", s.store.gen, gen0)
	}
	wantQ := []string{}
	for i := range 100 {
		wantQ = append(wantQ, strconv.Itoa(i))
	}
	check := func(name string, s2 *Server) {
		t.Helper()
		if m, ok := s2.retained.Get("r/status"); !ok || string(m.payload) != string(payload)+"99" {
			t.Errorf("%s: retained message lost or stale", name)
		}
		if got := queued(s2, "car"); !slices.Equal(got, wantQ) {
			t.Errorf("%s: queued %q, want %q", name, got, wantQ)
		}
	}
	s2 := newServer(t, Options{StateDir: copyState(t, dir, nil)})
	check("kill -9", s2)
	// A stale journal (of the previous generation) is not replayed onto
	// the snapshot: the state is the snapshot's alone.
	cur, _ := os.ReadFile(filepath.Join(dir, journalFile))
	s3 := newServer(t, Options{StateDir: copyState(t, dir, stale)})
	s4 := newServer(t, Options{StateDir: copyState(t, dir, cur[:journalHeader])})
	if diff := gocmp.Diff(stateOf(s4, "car"), stateOf(s3, "car")); diff != "" {
		t.Errorf("stale journal replayed (-snapshot +got):\n%s", diff)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, journalFile)); fi.Size() != journalHeader {
		t.Errorf("journal %d bytes after Shutdown, want %d", fi.Size(), journalHeader)
	}
	check("restart", newServer(t, Options{StateDir: dir}))
}

// TestStateV1 reads a snapshot written by earlier versions.
func TestStateV1(t *testing.T) {
	dir := t.TempDir()
	snap := snapshot{
		Retained: []snapMsg{{Topic: "r", Payload: []byte("kept"), Retain: true}},
		Sessions: []snapSession{{ID: "car", Expiry: time.Hour, DisconnectedAt: time.Now(),
			Subs:     []snapSub{{"q/#", subOpts{QoS: 1}}},
			Inflight: []snapDelivery{{ID: 3, Msg: snapMsg{Topic: "q/a", Payload: []byte("1"), QoS: 1}, QoS: 1}},
			Queue:    []snapDelivery{{Msg: snapMsg{Topic: "q/a", Payload: []byte("2"), QoS: 1}, QoS: 1}},
			Rec:      []uint16{9}}},
	}
	var buf bytes.Buffer
	buf.Write(stateMagic)
	if err := gob.NewEncoder(&buf).Encode(&snap); err != nil {
		t.Fatal(err)
	}
	buf.Write(binary.BigEndian.AppendUint32(nil, crc32.Checksum(buf.Bytes(), castagnoli)))
	os.WriteFile(filepath.Join(dir, stateFile), buf.Bytes(), 0o600)
	s := newServer(t, Options{StateDir: dir})
	want := &sessState{Expiry: time.Hour, Subs: map[string]subOpts{"q/#": {QoS: 1}},
		Inflight: []string{"3 false q1 1"}, Queue: []string{"q1 2"}, Rec: []uint16{9}}
	if diff := gocmp.Diff(want, stateOf(s, "car")); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if s.Stats().Retained != 1 {
		t.Errorf("retained %d, want 1", s.Stats().Retained)
	}
	// Rewritten in the current layout.
	if b, _ := os.ReadFile(filepath.Join(dir, stateFile)); !bytes.HasPrefix(b, snapMagic) {
		t.Errorf("snapshot starts %q, want %q", b[:8], snapMagic)
	}
}

// TestJournalOverflow checks that changes beyond the pending bound are
// not lost: the next sync writes a snapshot instead.
func TestJournalOverflow(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, SyncInterval: time.Hour})
	offlineCar(t, s)
	mustSync(t, s)
	for range maxPending {
		s.store.add(jop{op: recDone, jid: 99, key: 1}, nil)
	}
	s.Publish(context.Background(), Message{Topic: "q/x", Payload: []byte("a"), QoS: 1})
	if !s.store.overflow {
		t.Fatal("no overflow")
	}
	gen := s.store.gen
	mustSync(t, s)
	if s.store.gen != gen+1 {
		t.Errorf("generation %d after an overflow, want %d", s.store.gen, gen+1)
	}
	s2 := newServer(t, Options{StateDir: copyState(t, dir, nil)})
	if got := queued(s2, "car"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("queued %q, want [a]", got)
	}
}
