//go:build linux

package client

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// pause blocks the calling thread for d with nanosleep: a timer of the Go
// runtime waits in epoll with a resolution of one millisecond when nothing
// else runs, five times the pause wanted.
//
// With more than one P the sleep is a raw system call, which the
// scheduler does not see: the P stays with the reader for the pause. An
// announced system call wakes the runtime's monitor thread when the
// process was idle, and restarts its polling at 20 µs for the next
// millisecond, about 50 wake-ups of a thread that finds nothing to do,
// once per pause; on a VM each costs as much as forwarding a message.
// With one P the pause would stop every other goroutine, so it is
// announced there.
func pause(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	if runtime.GOMAXPROCS(0) > 1 {
		syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		return
	}
	syscall.Nanosleep(&ts, nil)
}
