package broker

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Accept back-off, as net/http's Server.Serve: 5 ms doubling to 1 s.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
)

// listenerHealth is the state of the server's listeners that Health
// reports.
type listenerHealth struct {
	// mu guards failing and stopped.
	mu      sync.Mutex
	failing map[net.Listener]acceptFailure // Accept failing now
	stopped []error                        // listeners that stopped other than by Shutdown
}

type acceptFailure struct {
	since time.Time
	err   error
}

func (h *listenerHealth) fail(l net.Listener, err error, now time.Time) (first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.failing[l]; ok {
		return false
	}
	if h.failing == nil {
		h.failing = make(map[net.Listener]acceptFailure)
	}
	h.failing[l] = acceptFailure{since: now, err: err}
	return true
}

func (h *listenerHealth) recover(l net.Listener) {
	h.mu.Lock()
	delete(h.failing, l)
	h.mu.Unlock()
}

func (h *listenerHealth) stop(l net.Listener, err error) {
	h.mu.Lock()
	delete(h.failing, l)
	h.stopped = append(h.stopped, fmt.Errorf("broker: listener %s stopped: %w", l.Addr(), err))
	h.mu.Unlock()
}

// Health reports whether the server can take new clients: nil while every
// listener it serves accepts connections; an error naming each listener
// whose Accept has been failing since its last success (too many open
// files, no buffer space…: it retries with back-off meanwhile), or that
// stopped for another reason than Shutdown; ErrServerClosed after
// Shutdown. A supervisor puts it in its health check and its watchdog.
func (s *Server) Health() error {
	select {
	case <-s.done:
		return ErrServerClosed
	default:
	}
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := append([]error(nil), h.stopped...)
	for l, f := range h.failing {
		errs = append(errs, fmt.Errorf("broker: accept on %s failing since %s: %w",
			l.Addr(), f.since.UTC().Format(time.RFC3339), f.err))
	}
	return errors.Join(errs...)
}

// accept returns the next connection of l. A failing Accept (too many open
// files, connection aborted, no buffer space…) is retried with back-off
// and marked in Health until it succeeds again, so that exhausting a
// resource for a while never leaves the port closed for good. It returns
// an error only when l is closed, or the server shut down.
func (s *Server) accept(l net.Listener) (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err == nil {
			if delay > 0 {
				s.health.recover(l)
				s.log.Info("accepting again", "addr", l.Addr().String())
			}
			return nc, nil
		}
		select {
		case <-s.done:
			return nil, ErrServerClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		delay = min(max(2*delay, acceptDelayMin), acceptDelayMax)
		if s.health.fail(l, err, time.Now()) {
			s.log.Error("accept failing, retrying", "addr", l.Addr().String(), "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-s.done:
			t.Stop()
			return nil, ErrServerClosed
		case <-t.C:
		}
	}
}

// retryListener is a listener whose Accept retries as Server.accept does,
// for an http.Server (WebSocket), which gives up on errors it does not
// deem temporary.
type retryListener struct {
	net.Listener
	s *Server
}

func (l retryListener) Accept() (net.Conn, error) { return l.s.accept(l.Listener) }

// pendingConns are the connections that have not logged in yet: accepted,
// in their TLS handshake, sending CONNECT or being authenticated. They
// have a budget of their own (Options.MaxPendingConnections), apart from
// the clients' (MaxConnections), and Options.ConnectTimeout to log in.
// When the budget is full, the silent one (no byte of MQTT received yet)
// waiting longest is closed to admit the newcomer; when none is silent,
// the oldest of those whose CONNECT waits for a login turn (login.go:
// their source or user failed five times lately); else the oldest of all.
// Sockets that never send CONNECT cannot keep a real client out, however
// many there are and however fast they come, since a client's CONNECT
// follows its connection at once; and a guesser's attempts waiting for
// their turns, which have sent CONNECT and are not silent, go before a
// real client whose password is being checked.
type pendingConns struct {
	l list.List // of *conn, oldest first; guarded by Server.mu
}

// admitPendingLocked counts c as pending and, over the budget, returns the
// connection to close to make room; s.mu is held.
func (s *Server) admitPendingLocked(c *conn) (evict *conn) {
	if max := s.opts.MaxPendingConnections; max > 0 && s.pending.l.Len() >= max {
		e := s.pending.l.Front()
	pick:
		for _, first := range [...]func(*conn) bool{
			func(c *conn) bool { return !c.heard.Load() },
			func(c *conn) bool { return c.loginWait.Load() },
		} {
			for x := s.pending.l.Front(); x != nil; x = x.Next() {
				if first(x.Value.(*conn)) {
					e = x
					break pick
				}
			}
		}
		evict = e.Value.(*conn)
		s.pending.l.Remove(e)
		evict.pendElem = nil
	}
	c.pendElem = s.pending.l.PushBack(c)
	return evict
}

// loggedIn ends c's time as a pending connection, logged in or not.
func (s *Server) loggedIn(c *conn) {
	s.mu.Lock()
	if c.pendElem != nil {
		s.pending.l.Remove(c.pendElem)
		c.pendElem = nil
	}
	s.mu.Unlock()
}

// clientsLocked is the number of connections past CONNECT; s.mu is held.
func (s *Server) clientsLocked() int { return len(s.conns) - s.pending.l.Len() }

// listenTCP listens on addr with TCP_DEFER_ACCEPT where the system has it
// (see deferAccept).
func (s *Server) listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return deferAccept(c, s.opts.ConnectTimeout)
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
