//go:build !unix

package uplink

import (
	"io"
	"os"
)

// mapFile reads the file into memory and writes it back on unmap: the
// outbox then survives a clean shutdown, not a kill.
func mapFile(f *os.File, n int) ([]byte, func([]byte) error, error) {
	mem := make([]byte, n)
	if _, err := f.ReadAt(mem, 0); err != nil && err != io.EOF {
		return nil, nil, err
	}
	return mem, func(b []byte) error { _, err := f.WriteAt(b, 0); return err }, nil
}
