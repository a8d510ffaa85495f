package broker

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestPendingEvictsLoginWaitFirst: with the pending budget full and no
// silent socket, a guesser's CONNECT waiting for its login turn is closed
// before a real client whose CONNECT is arriving, although the real
// client waits longer.
func TestPendingEvictsLoginWaitFirst(t *testing.T) {
	no := false
	s := newServer(t, Options{MaxPendingConnections: 2, PasswordFile: loginFile(t), AllowAnonymous: &no})
	g := s.auth.guard
	entered, release := make(chan struct{}), make(chan struct{})
	g.sleep = func(time.Duration) { close(entered); <-release }
	defer close(release)
	// Unknown user names failed lately: the next attempt waits its turn.
	now := time.Now()
	g.mu.Lock()
	g.users[unknownUser] = score{n: 10, at: now, next: now.Add(2 * time.Second)}
	g.mu.Unlock()

	ops := pipe(t, s, packet.V311)
	b, err := packet.Append(nil, &packet.Connect{ClientID: "ops", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "ops", PasswordFlag: true, Password: []byte("secret")}, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	ops.raw(b[:3])
	waitHeard(t, s, 1)
	guesser := pipe(t, s, packet.V311)
	guesser.send(&packet.Connect{ClientID: "g", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "mallory", PasswordFlag: true, Password: []byte("guess")})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the guesser did not wait for its turn")
	}
	// The budget is full and nothing is silent: a newcomer evicts the
	// guesser, not ops.
	pipe(t, s, packet.V311)
	guesser.closed()
	ops.raw(b[3:])
	if ack, ok := ops.recv().(*packet.Connack); !ok || ack.Code != packet.Success {
		t.Fatalf("ops got %+v, want CONNACK 0", ack)
	}
}

// waitHeard waits until n pending connections of s have sent a byte of
// MQTT: a write to a pipe returns before the server marks its connection.
func waitHeard(t *testing.T, s *Server, n int) {
	t.Helper()
	heard := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for x := s.pending.l.Front(); x != nil; x = x.Next() {
			if x.Value.(*conn).heard.Load() {
				k++
			}
		}
		return k
	}
	for deadline := time.Now().Add(5 * time.Second); heard() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d pending connections heard, want %d", heard(), n)
		}
	}
}
