//go:build linux

package client

import (
	"syscall"
	"time"
)

// pause blocks the calling thread for d with nanosleep: a timer of the Go
// runtime waits in epoll with a resolution of one millisecond when nothing
// else runs, five times the pause wanted.
func pause(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	syscall.Nanosleep(&ts, nil)
}
