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
// driver under test opens SlavePath. Master is in non-blocking mode under
// the Go runtime's poller, so Close interrupts a pending Read or Write and
// SetReadDeadline/SetWriteDeadline work (do not call Master.Fd, which
// would switch it to blocking mode). The PTY keeps its own slave descriptor
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
	// Ioctls go through control, not Fd: Fd would switch the descriptor
	// to blocking mode, and the simulators rely on deadlines.
	if err := control(m, func(fd int) error { return unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0) }); err != nil {
		return fail("unlock pty", err)
	}
	var n uint32
	err = control(m, func(fd int) (err error) {
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	})
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
		if err := control(f, makeRaw); err != nil {
			p.Close()
			return nil, fmt.Errorf("serialtest: raw mode: %w", err)
		}
	}
	return p, nil
}

// control runs fn on f's descriptor without changing its blocking mode.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
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

// Close closes both sides and removes the link, if it still points here.
func (p *PTY) Close() error {
	// Remove the link only while it is still ours: a newer PTY may have
	// taken the path over (an adapter replugged under another name).
	if p.link != "" {
		if target, err := os.Readlink(p.link); err == nil && target == p.SlavePath {
			os.Remove(p.link)
		}
	}
	err := p.Master.Close()
	if p.slave != nil {
		p.slave.Close()
	}
	return err
}
