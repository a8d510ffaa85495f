package broker

import (
	"testing"
)

// TestJournalSessionOwner: a session record keeps its owner, and one in the
// layout written before sessions had owners still loads, owner unknown.
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
