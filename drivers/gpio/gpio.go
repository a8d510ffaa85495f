// Package gpio is the GPIO transport: a pin provider that device kinds
// (drivers/gpio/relay, drivers/gpio/input) take their pins from, by name.
//
// Open provides the host's pins through periph's host drivers (names as
// periph knows them: "GPIO17", a header position "P1_11", or a number
// "17"); New wraps any other provider, such as the simulator in
// drivers/gpio/gpiosim. GPIO lines are independent of each other, so unlike
// the serial, Modbus and I²C transports there is no transaction scheduler:
// each device owns its pins.
package gpio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	pgpio "periph.io/x/conn/v3/gpio"
)

// ErrNoPin is returned for a pin name the provider does not know.
var ErrNoPin = errors.New("gpio: no such pin")

// Pins provides GPIO pins by name. Implementations are safe for concurrent
// use. The caller of Pin configures the pin (In or Out) and owns it.
type Pins interface {
	Pin(name string) (pgpio.PinIO, error)
}

// Config configures a Bus.
type Config struct {
	// Name is the bus name from the configuration, for logs and errors.
	Name string
	// Log receives state changes; nil discards them.
	Log *slog.Logger
}

// Bus is a pin provider the daemon owns. It implements Pins.
type Bus struct {
	name string
	pins Pins
	log  *slog.Logger
}

var _ Pins = (*Bus)(nil)

// New wraps pins.
func New(pins Pins, c Config) *Bus {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{name: c.Name, pins: pins, log: log}
}

// Open provides the host's pins through periph's host drivers.
func Open(c Config) (*Bus, error) {
	h, err := openHost()
	if err != nil {
		return nil, fmt.Errorf("gpio: open host: %w", err)
	}
	return New(h, c), nil
}

// Pin returns the pin name.
func (b *Bus) Pin(name string) (pgpio.PinIO, error) {
	p, err := b.pins.Pin(strings.TrimSpace(name))
	if err != nil {
		return nil, fmt.Errorf("gpio %s: pin %q: %w", b.name, name, err)
	}
	return p, nil
}

// Run returns when ctx is done: pins need no owner goroutine, but the daemon
// runs every bus the same way.
func (b *Bus) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close releases nothing: each device leaves its own pins in their safe
// state when it is closed.
func (b *Bus) Close() error { return nil }

// String returns the bus name.
func (b *Bus) String() string { return "gpio:" + b.name }
