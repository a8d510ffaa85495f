//go:build !linux

package client

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available: a
// dead link is still found by the keepalive timeout.
func setUserTimeout(net.Conn, time.Duration) error { return nil }

func userTimeout(net.Conn) time.Duration { return 0 }
