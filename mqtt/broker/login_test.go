package broker

import (
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestLoginBackoff (issue row 10): from the fifth failure on, attempts from
// the same source or for the same user wait, doubling up to a cap; the
// scores fade with time.
func TestLoginBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newLoginGuard(1)
	g.now = func() time.Time { return now }
	wantWait := func(source, user string, want time.Duration) {
		t.Helper()
		if d, _ := g.before(source, user); d != want {
			t.Errorf("before(%s, %s) after %v = %v, want %v", source, user, now.Format(time.TimeOnly), d, want)
		}
	}
	for range freeFailures - 1 {
		g.fail("10.0.0.9", "ops", "ops")
	}
	wantWait("10.0.0.9", "ops", 0)
	g.fail("10.0.0.9", "ops", "ops")
	wantWait("10.0.0.9", "ops", failBase)
	wantWait("10.0.0.9", "alice", failBase) // per source
	wantWait("10.0.0.7", "ops", failBase)   // per user
	wantWait("10.0.0.7", "alice", 0)
	g.fail("10.0.0.9", "ops", "ops")
	wantWait("10.0.0.9", "ops", 2*failBase)
	for range 20 {
		g.fail("10.0.0.9", "ops", "ops")
	}
	wantWait("10.0.0.9", "ops", failMaxWait)
	now = now.Add(4 * failHalfLife) // 26 failures → 1.6
	wantWait("10.0.0.9", "ops", 0)
	if _, hot := g.before("10.0.0.9", "ops"); !hot {
		t.Error("not hot four half-lives after 26 failures")
	}
	now = now.Add(4 * failHalfLife)
	if _, hot := g.before("10.0.0.9", "ops"); hot {
		t.Error("still hot ten half-lives after")
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
	defer func(c int) { hashCost = c }(hashCost)
	hashCost = bcrypt.MinCost
	pf := filepath.Join(t.TempDir(), "passwd")
	if err := AppendPasswordEntry(pf, "ops", "right"); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s := newServer(t, Options{PasswordFile: pf, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var verified atomic.Int32
	s.auth.verify = func(h string, p []byte) bool { verified.Add(1); return VerifyPassword(h, p) }
	var slept []time.Duration
	frozen := time.Now()
	s.auth.guard.now = func() time.Time { return frozen }
	s.auth.guard.sleep = func(d time.Duration) { slept = append(slept, d) }
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
	if len(slept) != 0 {
		t.Fatalf("waited %v before the fifth failure", slept)
	}
	if code := try("ops", "right"); code != packet.Success {
		t.Errorf("right password: CONNACK %v", code)
	}
	if len(slept) != 1 || slept[0] != failBase {
		t.Errorf("waits %v, want [%v]", slept, failBase)
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
