// Package input is the driver kind "gpio_input": a debounced digital input
// on a GPIO pin, such as a seat occupancy switch.
//
// Options, under [device.options] of a device with kind = "gpio_input" on a
// bus of type "gpio":
//
//	pin = "GPIO27"       # pin name as the bus knows it
//	pull = "up"          # "up", "down", "none", or "" to keep the pin's default
//	debounce = "50ms"    # the level must hold this long to count (default 20ms)
//	invert = true        # report true when the pin is low (a switch to ground)
//	point = "occupied"   # reading name (default "state")
//	max_silence = "5m"   # and the other drivers/poll.Rule keys for the point
//
// The device is both a Sensor (Read returns the debounced level, waiting up
// to the debounce time for it to settle) and a Streamer (Stream watches the
// pin's edges and emits each debounced change at once); a gateway uses one
// or the other.
package input

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/drivers/poll"
	pgpio "periph.io/x/conn/v3/gpio"
)

// Kind is the driver kind this package registers.
const Kind = "gpio_input"

// ErrBouncing is returned by Read when the input does not settle within ten
// debounce periods and no earlier level is known.
var ErrBouncing = errors.New("input: level does not settle")

// Opts are the options of kind "gpio_input".
type Opts struct {
	Pin      string        `toml:"pin"`
	Pull     string        `toml:"pull"`
	Debounce time.Duration `toml:"debounce"`
	Invert   bool          `toml:"invert"`
	Point    string        `toml:"point"`
	poll.Rule
}

var pulls = map[string]pgpio.Pull{"": pgpio.PullNoChange, "up": pgpio.PullUp, "down": pgpio.PullDown, "none": pgpio.Float}

// Validate reports every problem of o with its key path.
func (o Opts) Validate() error {
	var errs []error
	if o.Pin == "" {
		errs = append(errs, errors.New("pin: must be set"))
	}
	if _, ok := pulls[o.Pull]; !ok {
		errs = append(errs, fmt.Errorf("pull: %q is not up, down, none or empty", o.Pull))
	}
	if o.Debounce < 0 || o.Debounce > 10*time.Second {
		errs = append(errs, fmt.Errorf("debounce: %v outside 0..10s", o.Debounce))
	}
	if err := o.Rule.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Dev is one input. Safe for concurrent use.
type Dev struct {
	name     string
	point    string
	pin      pgpio.PinIO
	pull     pgpio.Pull
	debounce time.Duration
	invert   bool
	rule     poll.Rule

	// mu guards stable and known.
	mu     sync.Mutex
	stable bool // last settled level, inverted as configured
	known  bool
}

var (
	_ drivers.Sensor   = (*Dev)(nil)
	_ drivers.Streamer = (*Dev)(nil)
	_ poll.Ruler       = (*Dev)(nil)
)

// New takes o.Pin from pins and makes it an input.
func New(pins gpio.Pins, name string, o Opts) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("gpio_input %q: %w", name, err)
	}
	if o.Debounce == 0 {
		o.Debounce = 20 * time.Millisecond
	}
	if o.Point == "" {
		o.Point = "state"
	}
	p, err := pins.Pin(o.Pin)
	if err != nil {
		return nil, fmt.Errorf("gpio_input %q: %w", name, err)
	}
	d := &Dev{name: name, point: o.Point, pin: p, pull: pulls[o.Pull], debounce: o.Debounce, invert: o.Invert, rule: o.Rule}
	if err := p.In(d.pull, pgpio.NoEdge); err != nil {
		return nil, fmt.Errorf("gpio_input %q: pin %s: %w", name, p, err)
	}
	return d, nil
}

// Factory builds a "gpio_input" device; s.Bus must provide pins.
func Factory(s drivers.Spec) (drivers.Device, error) {
	pins, ok := s.Bus.(gpio.Pins)
	if !ok {
		return nil, fmt.Errorf("gpio_input %q: bus is %T, want a gpio bus", s.Name, s.Bus)
	}
	var o Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, fmt.Errorf("gpio_input %q: options: %w", s.Name, err)
	}
	return New(pins, s.Name, o)
}

// Rules implements poll.Ruler.
func (d *Dev) Rules() map[string]poll.Rule { return map[string]poll.Rule{d.point: d.rule} }

// Name implements drivers.Device.
func (d *Dev) Name() string { return d.name }

// Close implements drivers.Device; an input holds nothing.
func (d *Dev) Close() error { return nil }

func (d *Dev) sample() bool { return bool(d.pin.Read()) != d.invert }

func (d *Dev) reading(v bool) []drivers.Reading {
	return []drivers.Reading{{Device: d.name, Point: d.point, Value: v, Time: time.Now().UTC(), Quality: drivers.Good}}
}

// Read implements drivers.Sensor: the level once it has held for the
// debounce time. A line that keeps bouncing for ten debounce periods
// reports the last settled level.
func (d *Dev) Read(ctx context.Context) ([]drivers.Reading, error) {
	v, err := d.settle(ctx)
	if err != nil {
		return nil, fmt.Errorf("gpio_input %q: %w", d.name, err)
	}
	return d.reading(v), nil
}

// settle samples the pin until its level has held for the debounce time.
func (d *Dev) settle(ctx context.Context) (bool, error) {
	step := max(d.debounce/8, time.Millisecond)
	start := time.Now()
	last, since := d.sample(), start
	t := time.NewTimer(step)
	defer t.Stop()
	for time.Since(since) < d.debounce {
		if time.Since(start) > 10*d.debounce {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.known {
				return d.stable, nil
			}
			return false, ErrBouncing
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
			t.Reset(step)
		}
		if v := d.sample(); v != last {
			last, since = v, time.Now()
		}
	}
	d.mu.Lock()
	d.stable, d.known = last, true
	d.mu.Unlock()
	return last, nil
}

// watchTick bounds how long Stream waits for an edge before it looks at
// ctx again: periph's WaitForEdge takes a timeout, not a context.
const watchTick = 250 * time.Millisecond

// Stream implements drivers.Streamer: it emits the settled level at once,
// then each debounced change. Pins without edge detection are sampled every
// debounce period instead.
func (d *Dev) Stream(ctx context.Context, emit func([]drivers.Reading)) error {
	edges := d.pin.In(d.pull, pgpio.BothEdges) == nil
	defer func() { _ = d.pin.In(d.pull, pgpio.NoEdge) }() // best effort: back to plain input
	last, err := d.settle(ctx)
	if err != nil {
		return fmt.Errorf("gpio_input %q: %w", d.name, err)
	}
	emit(d.reading(last))
	for ctx.Err() == nil {
		var v bool
		if edges {
			if !d.pin.WaitForEdge(watchTick) {
				continue
			}
			// The level counts once a debounce period passed without
			// an edge.
			for ctx.Err() == nil && d.pin.WaitForEdge(d.debounce) {
			}
			v = d.sample()
			d.mu.Lock()
			d.stable, d.known = v, true
			d.mu.Unlock()
		} else {
			t := time.NewTimer(d.debounce)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			if v, err = d.settle(ctx); err != nil {
				break // ctx done
			}
		}
		if ctx.Err() == nil && v != last {
			last = v
			emit(d.reading(v))
		}
	}
	return nil
}
