//go:build linux

package client

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// The reader's reads and writes of a plain socket are raw system calls:
// the socket is non-blocking, so they never block, and the runtime need
// not see them. An announced call (syscall.Read, syscall.Write) wakes the
// runtime's monitor thread when the process was idle and restarts its
// polling at 20 µs for the next millisecond: about 50 wake-ups, each on a
// VM as dear as forwarding a message, after every time the reader waited
// for the socket.

// rawRead reads into b from the non-blocking fd.
func rawRead(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b) }

// rawWrite writes b to the non-blocking fd.
func rawWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

// rawIO is read or write (trap) of b on fd, unannounced.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sockReader reads the socket under a connection for its reader, with
// rawRead, waiting in the runtime's network poller when there is nothing
// to read.
//
// While the reader pauses (coalesce), the socket's low-water mark
// (SO_RCVLOWAT) is raised above what a window of acknowledgements comes to,
// so that the kernel does not report them as readable: otherwise each one
// that arrives wakes the runtime's network poller, on another thread, to
// find nobody waiting for the socket, and the server's thread that sent it
// pays for the wake-up too. A non-blocking read still returns whatever is
// there. The mark drops back to one byte before the reader waits for the
// socket, so that a wait never stalls on a few bytes.
type sockReader struct {
	rc   syscall.RawConn
	high bool // the mark is raised
	sockCall
}

// quietLowat is the low-water mark during the reader's pauses: above a
// window of acknowledgements (4 bytes each).
const quietLowat = 4096

// quiet raises the low-water mark before a pause. A failure leaves the
// mark as it was: the pause is then only noisier.
func (r *sockReader) quiet() {
	if r == nil || r.high {
		return
	}
	r.rc.Control(func(fd uintptr) {
		r.high = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, quietLowat) == nil
	})
}

// newSockReader returns a sockReader on the socket under nc, or nil where
// the connection is not a plain socket (TLS, pipes).
func newSockReader(nc net.Conn) *sockReader {
	rc := syscallConn(nc)
	if rc == nil {
		return nil
	}
	r := &sockReader{rc: rc}
	r.op, r.fn = rc.Read, r.readFD
	return r
}

func (r *sockReader) readFD(fd uintptr) bool {
	for {
		n, err := rawRead(int(fd), r.b)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			if !r.high {
				return false // wait until readable
			}
			// Drop the mark before waiting, and look again: bytes
			// may have come in before it dropped.
			r.high = false
			if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, 1); err != nil {
				r.err = os.NewSyscallError("setsockopt", err)
				return true
			}
			continue
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0 && len(r.b) > 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}

// read reads into b what the socket has, waiting for at least a byte.
func (r *sockReader) read(b []byte) (int, error) { return r.call(b) }
