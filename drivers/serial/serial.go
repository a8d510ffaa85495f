package serial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bugst "go.bug.st/serial"

	"github.com/edgegw/edgegw/drivers/backoff"
	"github.com/edgegw/edgegw/drivers/bus"
)

var (
	// ErrOffline is returned while the line is down: the device node is
	// missing or failed and the Port is waiting to reopen it.
	ErrOffline = errors.New("serial: port offline")
	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("serial: port closed")
)

// Defaults applied by Open to zero Config fields.
const (
	DefaultBaud        = 9600
	DefaultDataBits    = 8
	DefaultReadTimeout = 100 * time.Millisecond
	DefaultReopenMin   = 500 * time.Millisecond
	DefaultReopenMax   = 30 * time.Second
)

// Config describes a serial line. Zero values take the defaults noted.
type Config struct {
	// Name names the bus in logs.
	Name string
	// Device is the path of the device node, usually a stable link such
	// as /dev/serial/by-id/usb-FTDI_...; links are resolved on every open.
	Device string
	// Baud is the line speed (default 9600).
	Baud int
	// DataBits is 5, 6, 7 or 8 (default 8).
	DataBits int
	// Parity is "N" (default), "E", "O", "M" (mark) or "S" (space).
	Parity string
	// StopBits is 1 (default) or 2.
	StopBits int
	// ReadTimeout bounds one Read (default 100ms). A Read that times out
	// returns 0 bytes and no error.
	ReadTimeout time.Duration
	// ReopenMin and ReopenMax bound the wait before reopening a lost
	// line; the wait doubles after each failed attempt and is jittered by
	// ±20 % (defaults 500ms and 30s).
	ReopenMin, ReopenMax time.Duration

	// Timeout, Gap and Retries configure the Port's bus.Scheduler: the
	// time allowed for one Exchange attempt (default 1s), the idle time
	// between two transactions and the extra attempts after a failure.
	Timeout time.Duration
	Gap     time.Duration
	Retries int
	// OnChange, if set, is told when a device on the line goes offline
	// (quarantined by the scheduler) or back online. It must not block.
	OnChange func(device string, online bool)

	Log *slog.Logger

	// open replaces the device opener in tests.
	open opener
}

// conn is an open line; go.bug.st/serial's Port satisfies it.
type conn interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetReadTimeout(t time.Duration) error
	ResetInputBuffer() error
	Close() error
}

type opener func(path string, c *Config) (conn, error)

// Validate reports every problem of c, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.Device == "" {
		errs = append(errs, errors.New("device: must be set"))
	}
	if c.Baud < 0 {
		errs = append(errs, fmt.Errorf("baud: %d must be positive", c.Baud))
	}
	if c.DataBits != 0 && (c.DataBits < 5 || c.DataBits > 8) {
		errs = append(errs, fmt.Errorf("data_bits: %d outside 5..8", c.DataBits))
	}
	if _, err := parity(c.Parity); err != nil {
		errs = append(errs, err)
	}
	if c.StopBits != 0 && c.StopBits != 1 && c.StopBits != 2 {
		errs = append(errs, fmt.Errorf("stop_bits: %d must be 1 or 2", c.StopBits))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_timeout", c.ReadTimeout}, {"reopen_min", c.ReopenMin}, {"reopen_max", c.ReopenMax}, {"timeout", c.Timeout}, {"gap", c.Gap}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v must not be negative", d.key, d.v))
		}
	}
	if c.ReopenMin > 0 && c.ReopenMax > 0 && c.ReopenMax < c.ReopenMin {
		errs = append(errs, fmt.Errorf("reopen_max: %v below reopen_min %v", c.ReopenMax, c.ReopenMin))
	}
	if c.Retries < 0 {
		errs = append(errs, fmt.Errorf("retries: %d must not be negative", c.Retries))
	}
	return errors.Join(errs...)
}

func parity(s string) (bugst.Parity, error) {
	switch strings.ToUpper(s) {
	case "", "N":
		return bugst.NoParity, nil
	case "E":
		return bugst.EvenParity, nil
	case "O":
		return bugst.OddParity, nil
	case "M":
		return bugst.MarkParity, nil
	case "S":
		return bugst.SpaceParity, nil
	}
	return 0, fmt.Errorf("parity: %q must be N, E, O, M or S", s)
}

func (c *Config) setDefaults() {
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.DataBits == 0 {
		c.DataBits = DefaultDataBits
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.ReopenMin == 0 {
		c.ReopenMin = DefaultReopenMin
	}
	if c.ReopenMax == 0 {
		c.ReopenMax = max(DefaultReopenMax, c.ReopenMin)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Name == "" {
		c.Name = c.Device
	}
	if c.open == nil {
		c.open = openDevice
	}
}

// openDevice opens path with go.bug.st/serial.
func openDevice(path string, c *Config) (conn, error) {
	par, err := parity(c.Parity)
	if err != nil {
		return nil, err
	}
	stop := bugst.OneStopBit
	if c.StopBits == 2 {
		stop = bugst.TwoStopBits
	}
	return bugst.Open(path, &bugst.Mode{BaudRate: c.Baud, DataBits: c.DataBits, Parity: par, StopBits: stop})
}

// Port is one serial line with its scheduler. Read, Write, Exchange and
// LineReaders may be used from several goroutines: reads (including the
// read half of an Exchange) are serialised. Close may be called at any time.
type Port struct {
	c     Config
	log   *slog.Logger
	sched *bus.Scheduler

	// readMu serialises readers, so one reader at a time owns the read
	// timeout of the open line.
	readMu sync.Mutex

	// mu guards the fields below.
	mu       sync.Mutex
	conn     conn
	path     string // resolved path of conn
	closed   bool   // Close was called
	backoff  time.Duration
	next     time.Time // earliest next open attempt
	failures int       // failed opens since the line was last up
	lastErr  error     // why the line is down

	opens, losses atomic.Int64
}

// Open validates c and returns the Port for it. It tries to open the device
// at once; a device that is missing is not an error (it is reported offline
// and retried), an invalid configuration is.
func Open(c Config) (*Port, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("serial %q: %w", c.Device, err)
	}
	c.setDefaults()
	p := &Port{c: c, log: c.Log}
	p.sched = bus.New(bus.Options{
		Gap:      c.Gap,
		Timeout:  c.Timeout,
		Retries:  c.Retries,
		OnChange: c.OnChange,
	})
	p.mu.Lock()
	_, err := p.reopenLocked()
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("serial port unavailable", "bus", c.Name, "device", c.Device, "backoff", p.c.ReopenMin, "err", err)
	}
	return p, nil
}

// Run runs the Port's scheduler until ctx is done. Exchange needs it.
func (p *Port) Run(ctx context.Context) error { return p.sched.Run(ctx) }

// Scheduler returns the Port's scheduler, for devices with transactions of
// their own shape.
func (p *Port) Scheduler() *bus.Scheduler { return p.sched }

// String returns the configured device path.
func (p *Port) String() string { return p.c.Device }

// Online reports whether the line is open.
func (p *Port) Online() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil
}

// Stats counts successful opens and lost lines since Open.
type Stats struct {
	Opens, Losses int64
}

// Stats returns the Port's counters.
func (p *Port) Stats() Stats { return Stats{Opens: p.opens.Load(), Losses: p.losses.Load()} }

// Close closes the line. Pending and later calls return ErrClosed. It does
// not stop Run; cancel Run's context for that.
func (p *Port) Close() error {
	p.mu.Lock()
	c := p.conn
	p.conn, p.closed = nil, true
	p.mu.Unlock()
	if c != nil {
		return c.Close()
	}
	return nil
}

// Read reads into b what arrives within the read timeout (or until ctx's
// deadline, if sooner). A timeout returns 0 and a nil error. While the line
// is down, Read waits for the next reopen attempt, but never longer than
// the read timeout, and returns an error wrapping ErrOffline if the line is
// still down; callers may simply call it again.
func (p *Port) Read(ctx context.Context, b []byte) (int, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	return p.read(ctx, b, true)
}

// read is Read with readMu held. With wait false it does not wait for a
// reopen attempt that is not due yet.
func (p *Port) read(ctx context.Context, b []byte, wait bool) (int, error) {
	c, err := p.ready(ctx, wait)
	if err != nil {
		return 0, err
	}
	timeout := p.c.ReadTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, nil
		}
		timeout = min(timeout, left)
	}
	if err := c.SetReadTimeout(timeout); err != nil {
		return 0, p.lost(c, err)
	}
	n, err := c.Read(b)
	if err != nil {
		return 0, p.lost(c, err)
	}
	return n, nil
}

// Write writes b to the line. It fails with ErrOffline while the line is
// down, without waiting.
func (p *Port) Write(b []byte) (int, error) {
	c, err := p.ready(context.Background(), false)
	if err != nil {
		return 0, err
	}
	n, err := c.Write(b)
	if err != nil {
		return n, p.lost(c, err)
	}
	return n, nil
}

// ready returns the open line, reopening it if a reopen is due. With wait,
// it first waits for the due time, at most one read timeout.
func (p *Port) ready(ctx context.Context, wait bool) (conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if p.conn != nil {
		c := p.conn
		p.mu.Unlock()
		return c, nil
	}
	left := time.Until(p.next)
	p.mu.Unlock()
	if left > 0 {
		if !wait {
			return nil, p.offlineErr()
		}
		t := time.NewTimer(min(left, p.c.ReadTimeout))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if left > p.c.ReadTimeout {
			return nil, p.offlineErr()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.conn != nil { // another caller reopened it meanwhile
		return p.conn, nil
	}
	if time.Now().Before(p.next) {
		return nil, p.offlineErrLocked()
	}
	return p.reopenLocked()
}

func (p *Port) offlineErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offlineErrLocked()
}

func (p *Port) offlineErrLocked() error {
	if p.closed {
		return ErrClosed
	}
	if p.lastErr == nil {
		return fmt.Errorf("%w: %s", ErrOffline, p.c.Device)
	}
	return fmt.Errorf("%w: %s: %w", ErrOffline, p.c.Device, p.lastErr)
}

// reopenLocked resolves the device path and opens it, arming the next
// attempt with backoff on failure. p.mu must be held.
func (p *Port) reopenLocked() (conn, error) {
	path, err := filepath.EvalSymlinks(p.c.Device)
	var c conn
	if err == nil {
		c, err = p.c.open(path, &p.c)
	}
	if err == nil {
		// Bytes queued before this open belong to no one still waiting.
		if err = c.ResetInputBuffer(); err != nil {
			c.Close()
		}
	}
	if err != nil {
		p.failures++
		p.lastErr = err
		p.armLocked()
		p.log.Debug("serial port open failed", "bus", p.c.Name, "device", p.c.Device, "path", path, "attempt", p.failures, "backoff", p.backoff, "err", err)
		return nil, p.offlineErrLocked()
	}
	p.opens.Add(1)
	if p.opens.Load() > 1 || p.failures > 0 {
		p.log.Info("serial port open", "bus", p.c.Name, "device", p.c.Device, "path", path, "attempt", p.failures+1)
	}
	p.conn, p.path = c, path
	p.failures, p.backoff, p.lastErr = 0, 0, nil
	return c, nil
}

// armLocked sets the time of the next open attempt: the backoff doubles
// from ReopenMin up to ReopenMax, with ±20 % jitter, never above ReopenMax.
func (p *Port) armLocked() {
	w := backoff.Policy{Min: p.c.ReopenMin, Max: p.c.ReopenMax}
	p.backoff = w.Next(p.backoff)
	p.next = time.Now().Add(w.Spread(p.backoff))
}

// lost closes c after an I/O error and arms a reopen. Any error from a
// blocking read or write of a serial line means the line is unusable: on
// Linux an unplugged adapter gives EIO or ENXIO, a read of zero bytes
// (reported by go.bug.st/serial as PortClosed), or a missing node.
func (p *Port) lost(c conn, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.conn == c {
		c.Close()
		p.conn = nil
		p.losses.Add(1)
		p.lastErr = err
		p.failures, p.backoff = 0, 0
		p.armLocked()
		p.log.Warn("serial port lost", "bus", p.c.Name, "device", p.c.Device, "path", p.path, "backoff", time.Until(p.next).Round(time.Millisecond), "err", err)
	}
	return fmt.Errorf("%w: %s: %w", ErrOffline, p.c.Device, err)
}
