package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers/bus"
	grid "github.com/grid-x/modbus"
	"go.bug.st/serial"
)

// Bus types, as in the configuration's [[bus]] type.
const (
	RTU = "modbus_rtu"
	TCP = "modbus_tcp"
)

// Config describes one Modbus bus. Zero values take the defaults noted.
type Config struct {
	Name string // bus name, for logs
	Type string // RTU or TCP
	// Device is the serial port path for RTU (a /dev/serial/by-id/ path
	// survives a replug) and "host:port" for TCP.
	Device   string
	Baud     int    // RTU: default 9600
	Parity   string // RTU: "N", "E" or "O"; default "N" (8N1, like most modules)
	DataBits int    // RTU: default 8
	StopBits int    // RTU: 1 or 2; default 1
	// Timeout bounds each attempt of a request, hard (default 1s).
	Timeout time.Duration
	// Gap is the idle time between two requests (RTU default: 3.5
	// character times at Baud, at least 1.75 ms; TCP default 0).
	Gap     time.Duration
	Retries int // extra attempts after a failure (default 0)
	// QuarantineAfter, BackoffMin, BackoffMax and OnChange are passed to
	// the bus scheduler; see drivers/bus.Options.
	QuarantineAfter        int
	BackoffMin, BackoffMax time.Duration
	OnChange               func(device string, online bool)
	Log                    *slog.Logger
}

// Validate reports every problem of c, joined.
func (c *Config) Validate() error {
	var errs []error
	switch c.Type {
	case RTU:
		if c.Device == "" {
			errs = append(errs, errors.New("device: serial port path required"))
		}
		if c.Baud < 0 {
			errs = append(errs, fmt.Errorf("baud: %d must be positive", c.Baud))
		}
		switch c.Parity {
		case "", "N", "E", "O":
		default:
			errs = append(errs, fmt.Errorf("parity: %q must be N, E or O", c.Parity))
		}
		if c.DataBits != 0 && (c.DataBits < 5 || c.DataBits > 8) {
			errs = append(errs, fmt.Errorf("data_bits: %d outside 5..8", c.DataBits))
		}
		if c.StopBits != 0 && c.StopBits != 1 && c.StopBits != 2 {
			errs = append(errs, fmt.Errorf("stop_bits: %d must be 1 or 2", c.StopBits))
		}
	case TCP:
		if _, _, err := net.SplitHostPort(c.Device); err != nil {
			errs = append(errs, fmt.Errorf("device: %q is not host:port", c.Device))
		}
	default:
		errs = append(errs, fmt.Errorf("type: %q must be %s or %s", c.Type, RTU, TCP))
	}
	if c.Timeout < 0 || c.Gap < 0 || c.Retries < 0 {
		errs = append(errs, errors.New("timeout, gap and retries must not be negative"))
	}
	return errors.Join(errs...)
}

// Bus is one Modbus line or TCP server. Its request methods are safe for
// concurrent use by the devices on the bus; they make progress while Run
// runs. Devices get the *Bus, the daemon owns it (Run, Close).
type Bus struct {
	cfg   Config
	sched *bus.Scheduler
	log   *slog.Logger

	// The fields below are used only in the scheduler's owner goroutine
	// (inside the functions given to Do), except by Close under closeMu.
	client  grid.Client
	slave   func(id byte)
	setDead func(deadline time.Time) // arms the transport's hard deadline
	// closeMu guards closed and running.
	closeMu sync.Mutex
	closeFn func() error
	closed  bool
	running bool
	tcp     *grid.TCPClientHandler // nil for RTU

	// mu guards names.
	mu    sync.Mutex
	names map[byte]string
}

// Open builds a bus from c. It does not touch the line yet: the port is
// opened (or the server dialled) on the first request and again after a
// failure, so a missing adapter or server is a device fault at run time,
// not a start-up error.
func Open(c Config) (*Bus, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("modbus: bus %q: %w", c.Name, err)
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{cfg: c, log: log, names: make(map[byte]string)}
	switch c.Type {
	case RTU:
		if c.Baud == 0 {
			c.Baud = 9600
		}
		if c.DataBits == 0 {
			c.DataBits = 8
		}
		if c.Gap == 0 {
			c.Gap = max(time.Duration(3.5*11*float64(time.Second)/float64(c.Baud)), 1750*time.Microsecond)
		}
		mode := serial.Mode{BaudRate: c.Baud, DataBits: c.DataBits, StopBits: serial.OneStopBit}
		if c.StopBits == 2 {
			mode.StopBits = serial.TwoStopBits
		}
		switch c.Parity {
		case "E":
			mode.Parity = serial.EvenParity
		case "O":
			mode.Parity = serial.OddParity
		}
		t := &rtuTransport{path: c.Device, mode: mode, open: serial.Open, settle: c.Timeout / 2}
		h := grid.NewRTUClientHandler(c.Device) // encoder, verifier and decoder only
		b.client = grid.NewClient2(h, t)
		b.slave = h.SetSlave
		b.setDead = func(d time.Time) { t.deadline = d }
		b.closeFn = t.close
	case TCP:
		h := grid.NewTCPClientHandler(c.Device)
		// No idle close timer and no recovery loops inside Send: a call
		// is one dial (if needed) and one exchange, bounded by Timeout.
		h.IdleTimeout = 0
		h.LinkRecoveryTimeout = 0
		h.ProtocolRecoveryTimeout = 0
		b.client = grid.NewClient(h)
		b.slave = h.SetSlave
		b.setDead = func(d time.Time) {
			if h.Timeout = time.Until(d); h.Timeout <= 0 {
				h.Timeout = time.Nanosecond
			}
		}
		b.closeFn = h.Close
		b.tcp = h
	}
	b.cfg = c
	b.sched = bus.New(bus.Options{
		Gap:             c.Gap,
		Timeout:         c.Timeout,
		Retries:         c.Retries,
		QuarantineAfter: c.QuarantineAfter,
		BackoffMin:      c.BackoffMin,
		BackoffMax:      c.BackoffMax,
		OnChange:        c.OnChange,
	})
	return b, nil
}

// Run serves the bus's requests until ctx is done, then closes the line
// and returns nil. Run it once.
func (b *Bus) Run(ctx context.Context) error {
	b.closeMu.Lock()
	b.running = true
	b.closeMu.Unlock()
	err := b.sched.Run(ctx)
	b.closeMu.Lock()
	b.running = false
	b.closeFn()
	b.closeMu.Unlock()
	return err
}

// Close makes further requests fail with ErrClosed and releases the serial
// port or TCP connection: at once if Run is not running, else when Run
// returns (the line belongs to Run's goroutine meanwhile). It is safe to
// call more than once.
func (b *Bus) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.closed = true
	if b.running {
		return nil
	}
	return b.closeFn()
}

// String returns the bus name.
func (b *Bus) String() string { return b.cfg.Name }

// Attach names the device that answers at slave id, for the scheduler's
// quarantine and its online/offline reports. Unnamed slaves are
// reported as "slave N"; a second device at the same id takes the name.
func (b *Bus) Attach(device string, id byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.names[id] = device
}

func (b *Bus) deviceName(id byte) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := b.names[id]; ok {
		return n
	}
	return "slave " + strconv.Itoa(int(id))
}

// do runs one request for slave id through the scheduler.
func (b *Bus) do(ctx context.Context, id byte, pri bus.Priority, what string, fn func(grid.Client) ([]byte, error)) ([]byte, error) {
	var res []byte
	err := b.sched.Do(ctx, b.deviceName(id), pri, func(ctx context.Context) error {
		b.closeMu.Lock()
		closed := b.closed
		b.closeMu.Unlock()
		if closed {
			return ErrClosed
		}
		d, ok := ctx.Deadline()
		if !ok {
			d = time.Now().Add(b.cfg.Timeout)
		}
		b.setDead(d)
		if b.tcp != nil {
			// Dial first, so that dial and exchange share the deadline.
			if err := b.tcp.Connect(); err != nil {
				return b.mapErr(err)
			}
			b.setDead(d)
		}
		b.slave(id)
		r, err := fn(b.client)
		if err != nil {
			return b.mapErr(err)
		}
		res = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modbus %s slave %d: %s: %w", b.cfg.Name, id, what, err)
	}
	return res, nil
}

// mapErr turns grid-x's errors into this package's and drops a TCP
// connection that failed, so the next request dials afresh.
func (b *Bus) mapErr(err error) error {
	var ge *grid.Error
	if errors.As(err, &ge) {
		return &ExceptionError{Function: ge.FunctionCode &^ 0x80, Code: ge.ExceptionCode}
	}
	if b.tcp != nil {
		b.tcp.Close()
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrFrame):
		return err
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, ErrClosed):
		return err
	}
	var se *grid.DataSizeError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return err
}
