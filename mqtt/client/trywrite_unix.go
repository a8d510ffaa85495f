//go:build unix

package client

import (
	"errors"
	"net"
	"syscall"
)

// syscallConn returns the raw socket under nc, or nil where the connection
// is not a plain socket (TLS, pipes).
func syscallConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawSocket returns a tryWriter on the socket under nc, or nil where the
// connection is not a plain socket.
func rawSocket(nc net.Conn) *tryWriter {
	rc := syscallConn(nc)
	if rc == nil {
		return nil
	}
	return newTryWriter(rc)
}

// sockCall runs fn on a socket through op (RawConn.Read or Write, which
// wait for the socket while fn returns false); fn works on b and sets n
// and err. Both are bound once per connection, not per call.
type sockCall struct {
	op  func(fn func(fd uintptr) bool) error
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

func (s *sockCall) call(b []byte) (int, error) {
	s.b, s.n, s.err = b, 0, nil
	err := s.op(s.fn)
	if err == nil {
		err = s.err
	}
	n := s.n
	s.b = nil
	return n, err
}

// tryWriter writes what of a buffer a socket takes without blocking.
type tryWriter struct{ sockCall }

func newTryWriter(rc syscall.RawConn) *tryWriter {
	w := &tryWriter{}
	w.op, w.fn = rc.Write, w.write
	return w
}

func (w *tryWriter) write(fd uintptr) bool {
	for w.n < len(w.b) {
		m, err := rawWrite(int(fd), w.b[w.n:])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil:
			w.err = err
			return true
		}
		w.n += m
	}
	return true
}

// tryWrite writes what of b the socket takes without blocking.
func (w *tryWriter) tryWrite(b []byte) (int, error) { return w.call(b) }
