//go:build linux

package serialtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair. The simulator reads and writes Master; the
// driver under test opens SlavePath. The PTY keeps its own slave descriptor
// open, in raw mode, so the line does not hang up between two opens of the
// driver (an unplug is simulated by Close).
type PTY struct {
	Master    *os.File
	SlavePath string
	slave     *os.File
	link      string
}

// OpenPTY opens a new pseudo-terminal pair in raw mode.
func OpenPTY() (*PTY, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("serialtest: open /dev/ptmx: %w", err)
	}
	fail := func(what string, err error) (*PTY, error) {
		m.Close()
		return nil, fmt.Errorf("serialtest: %s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock pty", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail("pty number", err)
	}
	path := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	s, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open "+path, err)
	}
	p := &PTY{Master: m, SlavePath: path, slave: s}
	for _, f := range []*os.File{m, s} {
		if err := makeRaw(int(f.Fd())); err != nil {
			p.Close()
			return nil, fmt.Errorf("serialtest: raw mode: %w", err)
		}
	}
	return p, nil
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	// cfmakeraw(3)
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Link makes path a symbolic link to the slave side, replacing an older
// link, like udev's /dev/serial/by-id names. Close removes it.
func (p *PTY) Link(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("serialtest: link: %w", err)
	}
	if err := os.Symlink(p.SlavePath, path); err != nil {
		return fmt.Errorf("serialtest: link: %w", err)
	}
	p.link = path
	return nil
}

// Close closes both sides and removes the link, if any.
func (p *PTY) Close() error {
	if p.link != "" {
		os.Remove(p.link)
	}
	err := p.Master.Close()
	if p.slave != nil {
		p.slave.Close()
	}
	return err
}
