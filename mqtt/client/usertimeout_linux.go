//go:build linux

package client

import (
	"net"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h; the syscall package
// does not define it.
const tcpUserTimeout = 0x12

// setUserTimeout sets TCP_USER_TIMEOUT on the socket under nc: the kernel
// fails the connection when data it sent stays unacknowledged for d, where
// by default it retransmits for about 15 minutes (tcp_retries2). It does
// nothing for a connection that is not a TCP socket (a pipe, a proxy in
// tests).
func setUserTimeout(nc net.Conn, d time.Duration) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok || d <= 0 {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	ms := int(min(d.Milliseconds(), 1<<31-1))
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, ms)
	}); err != nil {
		return err
	}
	return serr
}

// userTimeout reads TCP_USER_TIMEOUT back, for tests; 0 where unset or not
// a TCP socket.
func userTimeout(nc net.Conn) time.Duration {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var ms int
	rc.Control(func(fd uintptr) {
		ms, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
	})
	return time.Duration(ms) * time.Millisecond
}
