//go:build !linux

package client

import "net"

// Elsewhere the reader reads through the net.Conn.
type sockReader struct{}

func newSockReader(net.Conn) *sockReader { return nil }

func (*sockReader) read([]byte) (int, error) { return 0, errNoSyscallConn }

func (*sockReader) quiet() {}
