//go:build unix && !linux

package client

import "syscall"

// rawWrite writes b to the non-blocking fd; raw on Linux only.
func rawWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
