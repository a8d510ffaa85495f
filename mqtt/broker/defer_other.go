//go:build !linux

package broker

import (
	"syscall"
	"time"
)

// deferAccept does nothing outside Linux: pending connections are bounded
// by MaxPendingConnections and ConnectTimeout alone.
func deferAccept(syscall.RawConn, time.Duration) error { return nil }
