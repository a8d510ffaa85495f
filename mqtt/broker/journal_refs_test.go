package broker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestJournalRefsReplay(t *testing.T) {
	// A stream in the reference layout rebuilds the sessions, each
	// delivery sharing the one message its recMsg defined.
	tab := journalRecords()
	byName := map[string][]byte{}
	for _, tc := range tab {
		byName[tc.name] = tc.rec
	}
	st := newRState()
	b := journalFileOf(1, byName["session full ref"], byName["msg"], byName["push ref"])
	good, ok, err := replayJournal(b, 1, st)
	if err != nil || !ok || good != len(b) {
		t.Fatalf("replayJournal = %d of %d, %v, %v", good, len(b), ok, err)
	}
	rs := st.sessions[3]
	if rs == nil || len(rs.msgs) != 3 {
		t.Fatalf("session = %+v, want 3 deliveries", rs)
	}
	if m := rs.msgs[7].d.m; m == nil || m.topic != "vehicles/v1/speed" || string(m.payload) != "42" {
		t.Errorf("pushed delivery's message %+v", m)
	}
	// A reference to a message never defined is a damaged record.
	st = newRState()
	st.sessions[3] = &rsession{jid: 3, id: "car", msgs: map[uint64]*rdelivery{}}
	body, _, _ := nextFrame(byName["ref to no message"])
	if err := st.apply(body); err == nil {
		t.Error("a reference to an unknown message was applied")
	}
}

func TestJournalWritesPayloadOnce(t *testing.T) {
	// Row 6 of issue 13: the journal wrote each payload once per session
	// (601 MB for 300 sessions × 100 × 10 kB). It is written once now, in
	// the journal and in the snapshot, and a restart shares it again.
	const sessions = 50
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{StateDir: dir, SyncInterval: 1 << 62}
	s := newServer(t, o)
	cps := offlineSessions(t, s, sessions, "big/#")
	if err := s.syncOnce(); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, journalFile)
	before := fileSize(t, jpath)
	payload := bytes.Repeat([]byte{'p'}, 10_000)
	pub := connect(t, s, packet.V5, "pub", true)
	pub.publish(&packet.Publish{Topic: "big/x", QoS: 1, PacketID: 1, Payload: payload})
	if err := s.syncOnce(); err != nil {
		t.Fatal(err)
	}
	if grew := fileSize(t, jpath) - before; grew > 2*len(payload) {
		t.Errorf("journal grew %d bytes for one %d-byte message queued for %d sessions, want < %d",
			grew, len(payload), sessions, 2*len(payload))
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, filepath.Join(dir, stateFile)); n > 2*len(payload)+sessions*200 {
		t.Errorf("snapshot %d bytes, want the payload once (< %d)", n, 2*len(payload)+sessions*200)
	}
	s = newServer(t, o)
	s.mu.Lock()
	var shared *msg
	for _, cp := range cps {
		ss := s.sessions[cp.ClientID]
		if ss == nil || ss.queue.len() != 1 {
			t.Fatalf("session %s not restored with its message", cp.ClientID)
		}
		m := ss.queue.buf[ss.queue.head].m
		if shared == nil {
			shared = m
		}
		if m != shared || !bytes.Equal(m.payload, payload) {
			t.Errorf("session %s: message not the one shared copy", cp.ClientID)
		}
	}
	s.mu.Unlock()
	c := pipe(t, s, packet.V5)
	c.connack(cps[0])
	if p := c.recvPub(); !bytes.Equal(p.Payload, payload) {
		t.Errorf("resumed session got %d bytes", len(p.Payload))
	}
}

func fileSize(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}
