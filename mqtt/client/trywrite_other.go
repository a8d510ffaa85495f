//go:build !unix

package client

import (
	"errors"
	"net"
	"syscall"
)

func rawSocket(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("client: no raw socket")
}
