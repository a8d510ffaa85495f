package broker

import (
	"net"
	"sync"
	"testing"
	"time"
)

// deadlineConn records read deadlines; hook, when set, runs once inside
// the next SetReadDeadline before the deadline is recorded: another
// goroutine's call landing between the reader's check and its set.
type deadlineConn struct {
	net.Conn
	mu   sync.Mutex
	last time.Time
	hook func()
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	h := d.hook
	d.hook = nil
	d.mu.Unlock()
	if h != nil {
		h()
	}
	d.mu.Lock()
	d.last = t
	d.mu.Unlock()
	return nil
}

func (d *deadlineConn) SetWriteDeadline(time.Time) error { return nil }

// TestReadDeadlineRacingTakeOver checks that a read deadline set by the
// reader goroutine (keep alive, end of CONNECT) never replaces the short
// deadline of a take-over or close that lands between its check and its
// set: the taken-over connection would otherwise read on until its keep
// alive, and the new connection wait for it [MQTT-3.1.4-3].
func TestReadDeadlineRacingTakeOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(c *conn)
		other func(c *conn)
		limit time.Duration
	}{
		{"keep-alive/take-over", func(c *conn) { c.armKeepAlive(time.Now()) }, (*conn).takeOver, takeoverGrace},
		{"connected/take-over", func(c *conn) { c.setReadDeadline(time.Time{}) }, (*conn).takeOver, takeoverGrace},
		{"keep-alive/close", func(c *conn) { c.armKeepAlive(time.Now()) }, (*conn).close, closeGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, Options{})
			dc := &deadlineConn{}
			c := &conn{s: s, nc: dc, keepAlive: time.Hour, writing: true, done: make(chan struct{})}
			dc.hook = func() { tc.other(c) }
			start := time.Now()
			tc.set(c)
			dc.mu.Lock()
			last := dc.last
			dc.mu.Unlock()
			if last.IsZero() || last.After(start.Add(tc.limit+time.Minute/2)) {
				t.Errorf("read deadline %v after start, want at most %v", last.Sub(start), tc.limit)
			}
		})
	}
}
