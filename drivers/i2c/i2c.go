// Package i2c is the I²C transport: it puts every transaction of one I²C bus
// through one drivers/bus.Scheduler, so that periph.io device drivers (which
// take a periph i2c.Bus) serialise with every other device on the bus and a
// device that stops answering is quarantined without stalling the others.
//
// The daemon owns the Bus: it opens it with Open (a real bus through periph's
// host drivers) or New (any periph i2c.Bus: a simulator, an i2ctest.Playback),
// runs it with Run and closes it with Close. Devices get a per-device view
// from For, never the Bus itself, and never close it.
package i2c

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers/bus"
	pi2c "periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// Config configures a Bus. Zero values take the defaults noted.
type Config struct {
	// Name is the bus to open: a number ("1"), a device path
	// ("/dev/i2c-1") or a periph name ("I2C1"). Empty means the host's
	// first bus. New uses it only for String.
	Name string
	// Timeout bounds one attempt (default 100ms). A transaction on a real
	// bus is one ioctl that the kernel's adapter timeout bounds; the
	// scheduler's timeout bounds the time spent queued behind it.
	Timeout time.Duration
	// Retries is the number of extra attempts after a failed transaction.
	Retries int
	// Gap is the idle time kept between two transactions (default 0).
	Gap time.Duration
	// OnChange, if set, is called when a device goes offline (quarantined)
	// or back online. It must not block. The bus logs nothing: whoever
	// supervises the devices logs their status.
	OnChange func(device string, online bool)
}

// Bus is an I²C bus whose transactions all go through one scheduler. It
// implements periph's i2c.Bus; transactions made through it directly are
// attributed to the device address ("0x76"), those made through For to the
// device name. Safe for concurrent use; Run must be running for transactions
// to make progress.
type Bus struct {
	name   string
	pb     pi2c.Bus
	closer io.Closer // set by Open: the bus handle it owns
	sched  *bus.Scheduler

	closeOnce sync.Once
}

var _ pi2c.Bus = (*Bus)(nil)

// New wraps pb, which stays owned by the caller: Close does not close it.
func New(pb pi2c.Bus, c Config) *Bus {
	name := c.Name
	if name == "" {
		name = pb.String()
	}
	if c.Timeout <= 0 {
		c.Timeout = 100 * time.Millisecond
	}
	return &Bus{
		name: name,
		pb:   pb,
		sched: bus.New(bus.Options{
			Gap:      c.Gap,
			Timeout:  c.Timeout,
			Retries:  c.Retries,
			OnChange: c.OnChange,
		}),
	}
}

// Open opens the host's I²C bus c.Name through periph's host drivers and
// wraps it. Close releases it.
func Open(c Config) (*Bus, error) {
	pb, err := openHost(c.Name)
	if err != nil {
		return nil, fmt.Errorf("i2c: open %q: %w", c.Name, err)
	}
	b := New(pb, c)
	b.closer = pb
	return b, nil
}

// Run serves the bus's transactions until ctx is done.
func (b *Bus) Run(ctx context.Context) error { return b.sched.Run(ctx) }

// Close releases the bus handle opened by Open. It does not stop Run (cancel
// its context for that).
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		if b.closer != nil {
			err = b.closer.Close()
		}
	})
	return err
}

// String implements periph's i2c.Bus.
func (b *Bus) String() string { return "i2c:" + b.name }

// Online reports whether device (a name given to For, or an address like
// "0x76") is not quarantined.
func (b *Bus) Online(device string) bool { return b.sched.Online(device) }

// Tx implements periph's i2c.Bus: a poll-priority transaction attributed to
// the device address.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	return b.TxContext(context.Background(), AddrName(addr), bus.Poll, addr, w, r)
}

// TxContext runs one transaction for device at addr with priority pri.
func (b *Bus) TxContext(ctx context.Context, device string, pri bus.Priority, addr uint16, w, r []byte) error {
	err := b.sched.Do(ctx, device, pri, func(context.Context) error {
		// The periph call takes no context: the kernel bounds it.
		return b.pb.Tx(addr, w, r)
	})
	if err != nil {
		return fmt.Errorf("i2c %s addr %s: %w", b.name, AddrName(addr), err)
	}
	return nil
}

// SetSpeed implements periph's i2c.Bus. It runs as a command so that it goes
// ahead of queued polls.
func (b *Bus) SetSpeed(f physic.Frequency) error {
	return b.sched.Do(context.Background(), "", bus.Command, func(context.Context) error {
		return b.pb.SetSpeed(f)
	})
}

// For returns the view of the bus for one named device: its transactions are
// attributed to device, so quarantine and OnChange follow the configured
// device and not an address another device might share on another bus.
func (b *Bus) For(device string) *Conn {
	return &Conn{b: b, device: device}
}

// AddrName formats an I²C address the way the bus names devices: "0x76".
func AddrName(addr uint16) string { return fmt.Sprintf("0x%02x", addr) }

// Conn is one device's view of a Bus. It implements periph's i2c.Bus, so a
// periph device driver can run on it unchanged. Its transactions use the
// context set by Bind (context.Background without one) and poll priority.
// Safe for concurrent use.
type Conn struct {
	b      *Bus
	device string

	// mu guards ctx and err.
	mu  sync.Mutex
	ctx context.Context
	err error
}

var _ pi2c.Bus = (*Conn)(nil)

// String implements periph's i2c.Bus.
func (c *Conn) String() string { return c.b.String() + "/" + c.device }

// Device returns the device name transactions are attributed to.
func (c *Conn) Device() string { return c.device }

// Bind makes ctx the context of the following transactions until the
// returned function is called, and clears the error Err reports. A device
// driver binds its Read's context around the periph calls it makes, which
// take no context themselves.
func (c *Conn) Bind(ctx context.Context) (unbind func()) {
	c.mu.Lock()
	c.ctx, c.err = ctx, nil
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.ctx = nil
		c.mu.Unlock()
	}
}

// Err returns the first transaction error since Bind. periph drivers flatten
// the errors they return (bmxx80 formats them with %v); Err keeps the
// original for errors.Is (bus.ErrQuarantined, bus.ErrClosed, a timeout).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Tx implements periph's i2c.Bus.
func (c *Conn) Tx(addr uint16, w, r []byte) error {
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	err := c.TxContext(ctx, bus.Poll, addr, w, r)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return err
}

// TxContext runs one transaction at addr with priority pri.
func (c *Conn) TxContext(ctx context.Context, pri bus.Priority, addr uint16, w, r []byte) error {
	return c.b.TxContext(ctx, c.device, pri, addr, w, r)
}

// SetSpeed implements periph's i2c.Bus.
func (c *Conn) SetSpeed(f physic.Frequency) error { return c.b.SetSpeed(f) }
