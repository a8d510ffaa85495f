package broker

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"golang.org/x/crypto/bcrypt"
)

// flakyListener fails its first fails Accepts with EMFILE, as a process out
// of file descriptors does, then hands out the connections sent on conns.
type flakyListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once

	mu    sync.Mutex
	fails int
	calls []time.Time
}

func newFlakyListener(fails int) *flakyListener {
	return &flakyListener{conns: make(chan net.Conn), closed: make(chan struct{}), fails: fails}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *flakyListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883} }

// dial connects a client through l.
func (l *flakyListener) dial(t *testing.T, v packet.Version) *tclient {
	a, b := net.Pipe()
	l.conns <- b
	t.Cleanup(func() { a.Close() })
	return &tclient{t: t, nc: a, r: bufio.NewReader(a), v: v}
}

func TestAcceptRetriesWithBackoff(t *testing.T) {
	// Row 4 of issue 13: out of file descriptors, the listener used to
	// stop for good. It must retry like net/http (5 ms doubling to 1 s),
	// report itself unhealthy meanwhile, and serve again once Accept
	// succeeds.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{})
		l := newFlakyListener(12)
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		synctest.Wait()
		if err := s.Health(); !errors.Is(err, syscall.EMFILE) {
			t.Errorf("Health() = %v while Accept fails, want EMFILE", err)
		}
		time.Sleep(10 * time.Second)
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v on EMFILE", err)
		default:
		}
		l.mu.Lock()
		calls := l.calls
		l.mu.Unlock()
		var gaps []time.Duration
		for i := 1; i < len(calls); i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if len(gaps) != len(want) {
			t.Fatalf("Accept gaps %v, want %v", gaps, want)
		}
		for i := range want {
			if gaps[i] != want[i] {
				t.Fatalf("Accept gaps %v, want %v", gaps, want)
			}
		}
		c := l.dial(t, packet.V311)
		if ack := c.connack(&packet.Connect{ClientID: "ops", CleanStart: true}); ack.Code != packet.Success {
			t.Fatalf("CONNACK %v after recovery", ack.Code)
		}
		if err := s.Health(); err != nil {
			t.Errorf("Health() = %v after recovery, want nil", err)
		}
		s.Shutdown(context.Background())
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v after Shutdown, want ErrServerClosed", err)
		}
		if err := s.Health(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Health() = %v after Shutdown, want ErrServerClosed", err)
		}
	})
}

func TestListenerStoppedIsUnhealthy(t *testing.T) {
	s := newServer(t, Options{})
	l := newFlakyListener(0)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	l.Close() // closed behind the server's back
	if err := <-served; err == nil || errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want the listener's error", err)
	}
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Health() = %v, want listener stopped", err)
	}
}

// loginFile writes a password file with ops:secret.
func loginFile(t *testing.T) string {
	t.Helper()
	defer func(c int) { hashCost = c }(hashCost)
	hashCost = bcrypt.MinCost
	pf := filepath.Join(t.TempDir(), "passwd")
	if err := AppendPasswordEntry(pf, "ops", "secret"); err != nil {
		t.Fatal(err)
	}
	return pf
}

// tcpClient dials addr.
func tcpClient(t *testing.T, addr string, v packet.Version) *tclient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tclient{t: t, nc: nc, r: bufio.NewReader(nc), v: v}
}

func TestSilentSocketsCannotLockOutOps(t *testing.T) {
	// Row 5 of issue 13: sockets that never send CONNECT counted against
	// max_connections, so a few hundred of them refused the operator.
	// They have their own small budget now, the oldest closed first.
	no := false
	s := newServer(t, Options{MaxConnections: 20, MaxPendingConnections: 8, PasswordFile: loginFile(t), AllowAnonymous: &no})
	addr := serveTCP(t, s)
	var silent []net.Conn
	t.Cleanup(func() {
		for _, c := range silent {
			c.Close()
		}
	})
	for range 100 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, nc)
	}
	// Once the server has seen them all, at most the budget is open.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().ConnectionsTotal+s.Stats().ConnectionsRefused < 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c := tcpClient(t, addr, packet.V311)
	ack := c.connack(&packet.Connect{ClientID: "ops", CleanStart: true, Username: "ops", Password: []byte("secret"), PasswordFlag: true, UsernameFlag: true})
	if ack.Code != packet.Success {
		t.Fatalf("ops CONNACK %v during a flood of silent sockets, want 0", ack.Code)
	}
	s.mu.Lock()
	pending := s.pending.l.Len()
	s.mu.Unlock()
	if pending > 8 {
		t.Errorf("%d connections pending, want at most 8", pending)
	}
	// The evicted sockets were closed by the server.
	closed := 0
	for _, nc := range silent {
		nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := nc.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed < 100-8 {
		t.Errorf("%d silent sockets closed, want at least %d", closed, 100-8)
	}
}

func TestConnectTimeout(t *testing.T) {
	// A socket that never sends CONNECT is closed after ConnectTimeout.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{ConnectTimeout: 3 * time.Second})
		c := pipe(t, s, packet.V311)
		start := time.Now()
		c.closed()
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("closed after %v, want 3s", got)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPendingEvictsSilentFirst(t *testing.T) {
	// A client whose CONNECT has begun to arrive is kept over sockets that
	// sent nothing, however many come after it.
	s := newServer(t, Options{MaxPendingConnections: 4})
	c := pipe(t, s, packet.V311)
	b, err := packet.Append(nil, &packet.Connect{ClientID: "ops", CleanStart: true, KeepAlive: 30}, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	c.raw(b[:3])
	waitHeard(t, s, 1) // the write returns before the server marks it
	for range 20 {
		pipe(t, s, packet.V311)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Stats().ConnectionsTotal < 21 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	c.raw(b[3:])
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.Code != packet.Success {
		t.Fatalf("got %+v, want CONNACK 0", ack)
	}
}

func TestMaxConnectionsPendingCannotPass(t *testing.T) {
	// Connections accepted while the limit was not reached, all pending at
	// once, are counted again as they log in: a client opening many
	// sockets before sending CONNECT on any gets no more than
	// MaxConnections in.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{MaxConnections: 2, MaxPendingConnections: 8})
		var cs []*tclient
		for range 5 {
			cs = append(cs, pipe(t, s, packet.V5))
		}
		synctest.Wait() // all five accepted, none logged in
		var ok, busy int
		for i, c := range cs {
			switch ack := c.connack(&packet.Connect{ClientID: "c" + strconv.Itoa(i), CleanStart: true}); ack.Code {
			case packet.Success:
				ok++
			case packet.ServerBusy:
				busy++
			default:
				t.Errorf("client %d: CONNACK %v, want 0 or server busy", i, ack.Code)
			}
		}
		if ok != 2 || busy != 3 {
			t.Errorf("%d connected, %d refused as busy; want 2 and 3", ok, busy)
		}
		if n := s.Stats().Clients; n != 2 {
			t.Errorf("Stats().Clients = %d, want 2", n)
		}
	})
}

func TestMaxConnectionsTakeOverWhilePending(t *testing.T) {
	// A connection accepted below the limit that takes over a session
	// once the limit is reached replaces a client: it gets in.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{MaxConnections: 2})
		connect(t, s, packet.V5, "a", false)
		again, other := pipe(t, s, packet.V5), pipe(t, s, packet.V5)
		synctest.Wait()
		if ack := other.connack(&packet.Connect{ClientID: "b", CleanStart: true}); ack.Code != packet.Success {
			t.Fatalf("b: CONNACK %v, want 0", ack.Code)
		}
		if ack := again.connack(&packet.Connect{ClientID: "a"}); ack.Code != packet.Success {
			t.Errorf("a again, at the limit: CONNACK %v, want 0", ack.Code)
		}
		if n := s.Stats().Clients; n != 2 {
			t.Errorf("Stats().Clients = %d, want 2", n)
		}
	})
}
