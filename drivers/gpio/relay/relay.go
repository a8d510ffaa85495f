// Package relay is the driver kind "gpio_relay": one relay (or any on/off
// load: a seat heater, a fan) driven by a GPIO output.
//
// Options, under [device.options] of a device with kind = "gpio_relay" on a
// bus of type "gpio":
//
//	pin = "GPIO17"        # pin name as the bus knows it
//	active_low = true     # the relay is on when the pin is low (most relay boards)
//	safe = false          # state applied at start and when the device is closed (default off)
//	command = "state"     # command name the device takes (default "state")
//
// Commands carry a bool (true = on). The device reads the state back from
// the pin (State), reports it as a reading named after the command (Read),
// and refuses a command past its deadline.
package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio"
	pgpio "periph.io/x/conn/v3/gpio"
)

// Kind is the driver kind this package registers.
const Kind = "gpio_relay"

var (
	// ErrExpired is returned by Set for a command past its context's
	// deadline.
	ErrExpired = errors.New("relay: command expired")
	// ErrCommand is returned by Set and State for an unknown command or a
	// value that is not a bool.
	ErrCommand = errors.New("relay: bad command")
)

// Opts are the options of kind "gpio_relay".
type Opts struct {
	Pin       string `toml:"pin"`
	ActiveLow bool   `toml:"active_low"`
	Safe      bool   `toml:"safe"`
	Command   string `toml:"command"`
}

// Validate reports every problem of o with its key path.
func (o Opts) Validate() error {
	if o.Pin == "" {
		return errors.New("pin: must be set")
	}
	return nil
}

// Dev is one relay. Safe for concurrent use.
type Dev struct {
	name      string
	command   string
	activeLow bool
	safe      bool

	// mu serialises pin changes.
	mu  sync.Mutex
	pin pgpio.PinIO
}

var (
	_ drivers.StateReader = (*Dev)(nil)
	_ drivers.Sensor      = (*Dev)(nil)
)

// New takes o.Pin from pins, makes it an output and applies the safe state.
func New(pins gpio.Pins, name string, o Opts) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("gpio_relay %q: %w", name, err)
	}
	if o.Command == "" {
		o.Command = "state"
	}
	p, err := pins.Pin(o.Pin)
	if err != nil {
		return nil, fmt.Errorf("gpio_relay %q: %w", name, err)
	}
	d := &Dev{name: name, command: o.Command, activeLow: o.ActiveLow, safe: o.Safe, pin: p}
	if err := d.apply(o.Safe); err != nil {
		return nil, err
	}
	return d, nil
}

// Factory builds a "gpio_relay" device; s.Bus must provide pins.
func Factory(s drivers.Spec) (drivers.Device, error) {
	pins, ok := s.Bus.(gpio.Pins)
	if !ok {
		return nil, fmt.Errorf("gpio_relay %q: bus is %T, want a gpio bus", s.Name, s.Bus)
	}
	var o Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, fmt.Errorf("gpio_relay %q: options: %w", s.Name, err)
	}
	return New(pins, s.Name, o)
}

// apply drives the relay on or off.
func (d *Dev) apply(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.pin.Out(pgpio.Level(on != d.activeLow)); err != nil {
		return fmt.Errorf("gpio_relay %q: pin %s: %w", d.name, d.pin, err)
	}
	return nil
}

// Name implements drivers.Device.
func (d *Dev) Name() string { return d.name }

// Close implements drivers.Device: the relay goes to its safe state.
func (d *Dev) Close() error { return d.apply(d.safe) }

// Set implements drivers.Actuator; with c.Verify it reads the pin back.
func (d *Dev) Set(ctx context.Context, c drivers.Command) error {
	if c.Command != d.command {
		return fmt.Errorf("%w: gpio_relay %q has no command %q", ErrCommand, d.name, c.Command)
	}
	on, ok := c.Value.(bool)
	if !ok {
		return fmt.Errorf("%w: gpio_relay %q: value %v (%T) is not a bool", ErrCommand, d.name, c.Value, c.Value)
	}
	if err := drivers.CheckDeadline(ctx); err != nil {
		if dl, ok := ctx.Deadline(); ok && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: gpio_relay %q at %s: %w", ErrExpired, d.name, dl.UTC().Format(time.RFC3339), err)
		}
		return err
	}
	if err := d.apply(on); err != nil {
		return err
	}
	if !c.Verify {
		return nil
	}
	if got := d.on(); got != on {
		return fmt.Errorf("gpio_relay %q: verify: pin %s reads %v, want %v", d.name, d.pin, got, on)
	}
	return nil
}

// State implements drivers.StateReader: whether the relay is on, read back
// from the pin.
func (d *Dev) State(_ context.Context, command string) (any, error) {
	if command != d.command {
		return nil, fmt.Errorf("%w: gpio_relay %q has no command %q", ErrCommand, d.name, command)
	}
	return d.on(), nil
}

func (d *Dev) on() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bool(d.pin.Read()) != d.activeLow
}

// Read implements drivers.Sensor: the relay state as a bool reading.
func (d *Dev) Read(context.Context) ([]drivers.Reading, error) {
	return []drivers.Reading{{
		Device: d.name, Point: d.command, Value: d.on(),
		Time: time.Now().UTC(), Quality: drivers.Good,
	}}, nil
}
