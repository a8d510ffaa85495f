//go:build !linux

package serialtest

import (
	"errors"
	"os"
)

// PTY is a pseudo-terminal pair; see the Linux implementation.
type PTY struct {
	Master    *os.File
	SlavePath string
}

// OpenPTY is only implemented on Linux.
func OpenPTY() (*PTY, error) { return nil, errors.New("serialtest: pty pairs need Linux") }

// Link is only implemented on Linux.
func (p *PTY) Link(path string) error { return errors.New("serialtest: pty pairs need Linux") }

// Close is only implemented on Linux.
func (p *PTY) Close() error { return nil }
