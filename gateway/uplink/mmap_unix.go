//go:build unix

package uplink

import (
	"os"
	"syscall"
)

func mapFile(f *os.File, n int) ([]byte, func([]byte) error, error) {
	mem, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return mem, syscall.Munmap, nil
}
