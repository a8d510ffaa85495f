package gpiosim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Opts configure the simulator kind "gpio_sim": a set of named pins. In the
// gateway configuration:
//
//	[[simulator]]
//	name = "gpio_demo"
//	kind = "gpio_sim"
//	[[simulator.options.pins]]
//	name = "GPIO17"          # a relay output: nothing to configure
//	[[simulator.options.pins]]
//	name = "GPIO27"          # the seat switch
//	drive = "low"            # "high", "low" or "" (floating: reads its pull)
//	toggle = "45s"           # optional: flip the driven level this often
//
// A bus of type "gpio" with device = "simulator:gpio_demo" then uses it.
type Opts struct {
	Pins []PinOpts `toml:"pins"`
}

// PinOpts configure one simulated pin.
type PinOpts struct {
	Name   string        `toml:"name"`
	Drive  string        `toml:"drive"`
	Toggle time.Duration `toml:"toggle"`
}

// Validate reports every problem of o with its key path.
func (o Opts) Validate() error {
	var errs []error
	seen := make(map[string]int)
	for i, p := range o.Pins {
		at := fmt.Sprintf("pins[%d]", i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must be set", at))
		} else if j, dup := seen[p.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already used by pins[%d]", at, p.Name, j))
		} else {
			seen[p.Name] = i
		}
		if p.Drive != "" && p.Drive != "high" && p.Drive != "low" {
			errs = append(errs, fmt.Errorf("%s.drive: %q is not high, low or empty", at, p.Drive))
		}
		if p.Toggle < 0 || (p.Toggle > 0 && p.Drive == "") {
			errs = append(errs, fmt.Errorf("%s.toggle: needs a positive period and drive set", at))
		}
	}
	return errors.Join(errs...)
}

// Sim is a running "gpio_sim" simulator.
type Sim struct {
	pins   map[string]*Pin
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start creates the pins and starts their toggling schedules, which run
// until ctx is done or Close is called.
func Start(ctx context.Context, o Opts) (*Sim, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("gpiosim: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sim{pins: make(map[string]*Pin), cancel: cancel}
	for i, po := range o.Pins {
		p := NewPin(po.Name, i)
		if po.Drive != "" {
			p.Drive(po.Drive == "high")
		}
		s.pins[po.Name] = p
		if po.Toggle > 0 {
			s.wg.Go(func() { toggle(ctx, p, po.Toggle) })
		}
	}
	return s, nil
}

func toggle(ctx context.Context, p *Pin, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.mu.Lock()
			l := !p.drive
			p.mu.Unlock()
			p.Drive(l)
		}
	}
}

// Pin returns the simulated pin name, or nil.
func (s *Sim) Pin(name string) *Pin { return s.pins[name] }

// Pins returns the pin provider (it satisfies drivers/gpio.Pins).
func (s *Sim) Pins() Pins { return Pins{s} }

// Close stops the toggling schedules.
func (s *Sim) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Pins is the simulator's pin provider.
type Pins struct{ s *Sim }

// Pin returns the pin name.
func (ps Pins) Pin(name string) (gpio.PinIO, error) {
	p := ps.s.pins[name]
	if p == nil {
		return nil, ErrNoPin
	}
	return p, nil
}
