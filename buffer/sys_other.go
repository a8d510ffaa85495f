//go:build !linux

package buffer

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// freeSpace is unknown off Linux: the free-space floor is not enforced.
func freeSpace(dir string) (uint64, bool) { return 0, false }

// lockDir is a no-op off Linux.
func lockDir(dir string) (release func(), err error) { return func() {}, nil }
