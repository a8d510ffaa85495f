package daemon

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// healthLimits bound what a client of the health endpoint can hold: idle
// keep-alives are closed, slow requests and readers time out, and at most
// maxConns connections are open at once (more wait in the kernel's
// backlog), so that a flood on the health port can neither exhaust the
// process's file descriptors nor keep /healthz from answering for long.
type healthLimits struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
}

var defaultHealthLimits = healthLimits{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      10 * time.Second,
	idle:       30 * time.Second,
	maxConns:   32,
}

// newHealthServer returns the health endpoint's server with lim's
// timeouts; serve it on limitListener(ln, lim.maxConns).
func newHealthServer(h http.Handler, lim healthLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    8 << 10,
	}
}

// limitListener returns a listener that has at most n of its connections
// open at once: Accept waits for one to close (golang.org/x/net/netutil's
// LimitListener, which is not worth a dependency for these lines).
func limitListener(l net.Listener, n int) net.Listener {
	return &limitedListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	sem  chan struct{}
	once sync.Once
	done chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitedListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

// limitedConn gives its slot back once, at its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
