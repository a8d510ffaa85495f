//go:build !unix

package client

import (
	"errors"
	"net"
)

type tryWriter struct{}

func rawSocket(net.Conn) *tryWriter { return nil }

func (*tryWriter) tryWrite([]byte) (int, error) {
	return 0, errors.New("client: no raw socket")
}
