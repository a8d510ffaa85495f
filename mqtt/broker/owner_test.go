package broker

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestJournalSessionOwner: a session record keeps its owner, and one in the
// layouts written before sessions had owners (a copy of each message per
// session, or references to messages written once) still loads, owner
// unknown.
func TestJournalSessionOwner(t *testing.T) {
	recs := map[string][]byte{}
	for _, tc := range journalRecords() {
		recs[tc.name] = tc.rec
	}
	for _, tc := range []struct {
		name     string
		id, user string
		known    bool
		wantSubs int
		wantMsgs int
	}{
		{"session owned", "ops-console", "ops", true, 1, 0},
		{"session before owners", "car", "", false, 1, 2},
		// The layout writing a message once, with and without owners.
		{"session owned full ref", "ops-panel", "ops", true, 1, 1},
		{"session ref before owners", "car", "", false, 1, 2},
		{"session full ref", "car", "", false, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newRState()
			good, ok, err := replayJournal(journalFileOf(1, recs[tc.name]), 1, st)
			if err != nil || !ok || good != len(journalFileOf(1, recs[tc.name])) {
				t.Fatalf("replayJournal = %d, %v, %v", good, ok, err)
			}
			if len(st.sessions) != 1 {
				t.Fatalf("%d sessions, want 1", len(st.sessions))
			}
			for _, rs := range st.sessions {
				if rs.id != tc.id || rs.user != tc.user || rs.ownerKnown != tc.known || len(rs.subs) != tc.wantSubs || len(rs.msgs) != tc.wantMsgs {
					t.Errorf("session %q user %q known %v, %d subs, %d msgs; want %q %q %v %d %d",
						rs.id, rs.user, rs.ownerKnown, len(rs.subs), len(rs.msgs), tc.id, tc.user, tc.known, tc.wantSubs, tc.wantMsgs)
				}
			}
		})
	}
}

// TestOwnerWithSharedMessages: the sessions' owners survive a restart in
// the layout that writes a message once for all the sessions holding it,
// from the journal (kill -9) and from the snapshot (Shutdown compacts).
func TestOwnerWithSharedMessages(t *testing.T) {
	dir := t.TempDir()
	o := Options{StateDir: dir, SyncInterval: 1 << 62, AllowAnonymous: ptr(true)}
	s := newServer(t, o)
	ids := map[string]string{"ops-console": "ops", "tablet": "alice"}
	for id, user := range ids {
		cp := userConnect(user, id, false)
		c := pipe(t, s, packet.V311)
		if ack := c.connack(cp); ack.Code != packet.Success {
			t.Fatalf("%s: CONNACK %v", user, ack.Code)
		}
		c.subscribe(1, sub("big/#", 1))
		c.nc.Close()
		waitOffline(t, s, id)
	}
	payload := bytes.Repeat([]byte{'p'}, 10_000)
	s.Publish(context.Background(), Message{Topic: "big/x", Payload: payload, QoS: 1})
	mustSync(t, s)
	if n := fileSize(t, filepath.Join(dir, journalFile)); n > 2*len(payload) {
		t.Errorf("journal %d bytes, want the payload once (< %d)", n, 2*len(payload))
	}
	check := func(t *testing.T, s *Server) {
		t.Helper()
		s.mu.Lock()
		for id, user := range ids {
			ss := s.sessions[id]
			if ss == nil || ss.user != user || !ss.ownerKnown || ss.queue.len() != 1 {
				s.mu.Unlock()
				t.Fatalf("session %s restored as %+v, want %s's with its message", id, ss, user)
			}
		}
		s.mu.Unlock()
		c := pipe(t, s, packet.V311)
		if ack := c.connack(userConnect("alice", "ops-console", false)); ack.Code != packet.ClientIDNotValid {
			t.Fatalf("alice on ops's restored id: CONNACK %v, want 2", ack.Code)
		}
		c.closed()
		c = pipe(t, s, packet.V311)
		if ack := c.connack(userConnect("ops", "ops-console", false)); !ack.SessionPresent {
			t.Fatalf("ops resumes: CONNACK %+v", ack)
		}
		if p := c.recvPub(); !bytes.Equal(p.Payload, payload) {
			t.Errorf("ops got %d bytes, want the queued message", len(p.Payload))
		}
	}
	t.Run("journal", func(t *testing.T) {
		check(t, newServer(t, Options{StateDir: copyState(t, dir, nil), AllowAnonymous: ptr(true)}))
	})
	t.Run("snapshot", func(t *testing.T) {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := fileSize(t, filepath.Join(dir, stateFile)); n > 2*len(payload) {
			t.Errorf("snapshot %d bytes, want the payload once (< %d)", n, 2*len(payload))
		}
		check(t, newServer(t, Options{StateDir: dir, AllowAnonymous: ptr(true)}))
	})
}
