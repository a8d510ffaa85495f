package broker

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestLoginBackoff (issue row 10): from the fifth failure on, a source or
// a user admits one attempt per backoff (doubling up to a cap), whatever
// the number of connections; a turn beyond the cap is refused; loopback is
// no source key; the scores fade with time.
func TestLoginBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newLoginGuard(1)
	g.now = func() time.Time { return now }
	turn := func(source, user string, want time.Duration, wantOK bool) {
		t.Helper()
		if d, _, ok := g.before(source, user); d != want || ok != wantOK {
			t.Errorf("before(%s, %s) at +%v = %v, %v; want %v, %v", source, user, now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), d, ok, want, wantOK)
		}
	}
	for range freeFailures - 1 {
		g.fail("10.0.0.9", "ops", "ops")
	}
	turn("10.0.0.9", "ops", 0, true)
	turn("10.0.0.9", "ops", 0, true) // four failures: no turns yet
	g.fail("10.0.0.9", "ops", "ops")
	turn("10.0.0.9", "ops", failBase, true)     // 250 ms after the fifth failure
	turn("10.0.0.9", "alice", 2*failBase, true) // then one per 250 ms per source
	turn("10.0.0.7", "ops", 2*failBase, true)   // and per user
	turn("10.0.0.7", "alice", 0, true)          // neither
	now = now.Add(time.Second)                  // the turns taken
	turn("10.0.0.9", "ops", 0, true)
	g.fail("10.0.0.9", "ops", "ops")
	turn("10.0.0.9", "ops", 2*failBase, true) // six failures: 500 ms
	for range 20 {
		g.fail("10.0.0.9", "ops", "ops")
	}
	turn("10.0.0.9", "ops", failMaxWait, true) // the cap
	turn("10.0.0.9", "ops", 0, false)          // 10 s away: refused, not scheduled
	turn("10.0.0.7", "ops", 0, false)
	now = now.Add(10 * time.Second) // past the turns; the score decays little
	turn("10.0.0.9", "ops", 0, true)
	turn("10.0.0.9", "ops", failMaxWait, true)

	// Loopback addresses share one source: no source score.
	for i := range 3 * freeFailures {
		g.fail("127.0.0.1", fmt.Sprint("user", i), "x")
	}
	turn("127.0.0.1", "alice", 0, true)
	turn("127.0.0.1", "alice", 0, true)

	now = now.Add(10 * failHalfLife) // 26 failures → under one
	if d, hot, ok := g.before("10.0.0.9", "ops"); d != 0 || hot || !ok {
		t.Errorf("ten half-lives on: %v hot %v ok %v, want 0 false true", d, hot, ok)
	}
}

// TestLoginScoresBounded: a flood of sources does not grow the scores
// beyond maxScores.
func TestLoginScoresBounded(t *testing.T) {
	g := newLoginGuard(1)
	for i := range 3 * maxScores {
		g.fail(string(rune(i)), unknownUser, "x")
	}
	if n := len(g.sources); n > maxScores {
		t.Errorf("%d source scores, want at most %d", n, maxScores)
	}
}

// TestLoginSummaryBounded: the failure summary keeps at most
// maxSummaryKeys user names of at most maxSummaryName bytes each, however
// long the names guessed (up to 64 KiB each).
func TestLoginSummaryBounded(t *testing.T) {
	g := newLoginGuard(1)
	long := strings.Repeat("ü", 32<<10) // 64 KiB
	for i := range 2 * maxSummaryKeys {
		g.fail("10.0.0.9", unknownUser, fmt.Sprint(i, long))
	}
	if n := len(g.failUsers); n > maxSummaryKeys {
		t.Errorf("%d user names kept, want at most %d", n, maxSummaryKeys)
	}
	for name := range g.failUsers {
		if len(name) > maxSummaryName || !utf8.ValidString(name) {
			t.Fatalf("user name kept as %d bytes (valid UTF-8: %v), want at most %d", len(name), utf8.ValidString(name), maxSummaryName)
		}
	}
}

// TestLoginSlots (issue row 10): with every check slot taken, a waiting
// attempt without recent failures goes before guessers that queued
// earlier.
func TestLoginSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newSlots(1)
		if !q.acquire(true, time.Second) {
			t.Fatal("first acquire failed")
		}
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		start := func(name string, hot bool) {
			wg.Go(func() {
				if q.acquire(hot, time.Minute) {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
					q.release()
				}
			})
			synctest.Wait()
		}
		start("guesser 1", true)
		start("guesser 2", true)
		start("ops", false)
		q.release()
		wg.Wait()
		if got := strings.Join(order, ","); got != "ops,guesser 1,guesser 2" {
			t.Errorf("order %s, want ops first", got)
		}
		// A waiter that gets no slot within its limit gives up.
		q.acquire(false, time.Second)
		if q.acquire(false, time.Second) {
			t.Error("second acquire of one slot succeeded")
		}
		if n := q.waiting(); n != 0 {
			t.Errorf("%d waiting after the timeout, want 0", n)
		}
	})
}

// TestLoginOverTheWire (issue row 10): an unknown user costs one password
// verification like a known one (no enumeration by timing); after five
// failures the sixth attempt waits; failures are logged once, as counts.
func TestLoginOverTheWire(t *testing.T) {
	var logs logBuffer
	g := newGuarded(t, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	s, verified := g.s, &g.verified
	try := func(user, pass string) packet.ReasonCode {
		c := pipe(t, s, packet.V311)
		cp := &packet.Connect{ClientID: "c", CleanStart: true, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass)}
		ack := c.connack(cp)
		if ack.Code != packet.Success {
			c.closed()
		}
		return ack.Code
	}
	for _, user := range []string{"ops", "mallory"} {
		verified.Store(0)
		if code := try(user, "guess"); code != packet.BadUsernameOrPassword {
			t.Errorf("%s: CONNACK %v", user, code)
		}
		if n := verified.Load(); n != 1 {
			t.Errorf("%s: %d password verifications, want 1", user, n)
		}
	}
	for range freeFailures - 2 {
		if code := try("ops", "guess"); code != packet.BadUsernameOrPassword {
			t.Fatalf("CONNACK %v", code)
		}
	}
	if len(g.slept) != 0 {
		t.Fatalf("waited %v before the fifth failure", g.slept)
	}
	if code := try("ops", "right"); code != packet.Success {
		t.Errorf("right password: CONNACK %v", code)
	}
	if len(g.slept) != 1 || g.slept[0] != failBase {
		t.Errorf("waits %v, want [%v]", g.slept, failBase)
	}
	// Once logged in, the owner's password passes at once, whatever the
	// guessers' score.
	if code := try("ops", "right"); code != packet.Success || len(g.slept) != 1 {
		t.Errorf("right password again: CONNACK %v, waits %v, want no new wait", code, g.slept)
	}
	s.auth.guard.summary(s.log)
	out := logs.String()
	if n := strings.Count(out, "login failures"); n != 1 || !strings.Contains(out, "failures=5") || !strings.Contains(out, "top_user=ops") {
		t.Errorf("log, want one summary of 5 failures:\n%s", out)
	}
	if strings.Contains(out, "connection refused") {
		t.Errorf("a line per failure:\n%s", out)
	}
}

// TestCheckPassword: another door to the accounts (the web console) meets
// the same guard as a CONNECT: one verification for a known or unknown
// user, and failures there count for the user and the source on the wire
// too.
func TestCheckPassword(t *testing.T) {
	g := newGuarded(t, Options{})
	s, verified := g.s, &g.verified
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"ops", "right", true},
		{"ops", "guess", false},
		{"mallory", "right", false},
		{"", "right", false},
	}
	for _, tt := range tests {
		verified.Store(0)
		if got := s.CheckPassword("10.0.0.9:51000", tt.user, []byte(tt.pass)); got != tt.want {
			t.Errorf("CheckPassword(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
		}
		// The right password is remembered after its first check.
		if n := verified.Load(); n != 1 && !(tt.want && n == 0) {
			t.Errorf("CheckPassword(%q): %d verifications, want 1", tt.user, n)
		}
	}
	for range freeFailures {
		s.CheckPassword("10.0.0.9:51000", "ops", []byte("guess"))
	}
	if len(g.slept) == 0 {
		t.Fatal("no wait after repeated failures through CheckPassword")
	}
	// The source's failures count for a CONNECT from the same address.
	if d, _, _ := s.auth.guard.before("10.0.0.9", "alice"); d == 0 {
		t.Error("a CONNECT from the guessing source would not wait")
	}

	none := newServer(t, Options{})
	if none.CheckPassword("10.0.0.9", "ops", []byte("right")) {
		t.Error("no password file, yet a password was right")
	}
}

// guarded is a server with the password file ops:right (cheap hashes),
// its verifications counted, its login guard's clock frozen and its waits
// recorded instead of slept.
type guarded struct {
	s        *Server
	verified atomic.Int32
	slept    []time.Duration
}

func newGuarded(t *testing.T, o Options) *guarded {
	t.Helper()
	old := hashCost
	t.Cleanup(func() { hashCost = old })
	hashCost = bcrypt.MinCost
	o.PasswordFile = filepath.Join(t.TempDir(), "passwd")
	if err := AppendPasswordEntry(o.PasswordFile, "ops", "right"); err != nil {
		t.Fatal(err)
	}
	g := &guarded{s: newServer(t, o)}
	g.s.auth.verify = func(h string, p []byte) bool { g.verified.Add(1); return VerifyPassword(h, p) }
	frozen := time.Now()
	g.s.auth.guard.now = func() time.Time { return frozen }
	g.s.auth.guard.sleep = func(d time.Duration) { g.slept = append(g.slept, d) }
	return g
}
