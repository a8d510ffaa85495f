package broker

import (
	"syscall"
	"time"
)

// deferAccept sets TCP_DEFER_ACCEPT on a listening socket [tcp(7)]: the
// kernel hands a connection to Accept only once its first bytes (CONNECT,
// a TLS ClientHello, an HTTP request) arrived, so that sockets that never
// send anything cost no file descriptor and no pending slot; after about
// d without data the kernel gives them to Accept anyway, and
// ConnectTimeout ends them.
func deferAccept(c syscall.RawConn, d time.Duration) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, max(int(d/time.Second), 1))
	})
	if err != nil {
		return err
	}
	return serr
}
