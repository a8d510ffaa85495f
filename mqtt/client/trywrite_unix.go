//go:build unix

package client

import (
	"errors"
	"net"
	"syscall"
)

// rawSocket returns a tryWriter on the socket under nc, or nil where the
// connection is not a plain socket (TLS, pipes).
func rawSocket(nc net.Conn) *tryWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return newTryWriter(rc)
}

// tryWriter writes what of a buffer a socket takes without blocking; its
// one closure is made once per connection, not per write.
type tryWriter struct {
	rc  syscall.RawConn
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newTryWriter(rc syscall.RawConn) *tryWriter {
	w := &tryWriter{rc: rc}
	w.fn = w.write
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
func (w *tryWriter) tryWrite(b []byte) (int, error) {
	w.b, w.n, w.err = b, 0, nil
	err := w.rc.Write(w.fn)
	if err == nil {
		err = w.err
	}
	n := w.n
	w.b = nil
	return n, err
}
