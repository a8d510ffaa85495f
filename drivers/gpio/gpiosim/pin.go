// Package gpiosim provides simulated GPIO pins: inputs whose outside level a
// test (or a toggling schedule) drives, with pull resistors and edge
// detection, and outputs whose level can be read back. Pins implement
// periph's gpio.PinIO, so drivers/gpio devices run unchanged on them.
//
// The simulator kind "gpio_sim" is started by Start from Opts.
package gpiosim

import (
	"errors"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// ErrNoPin is returned for an unknown pin name.
var ErrNoPin = errors.New("gpiosim: no such pin")

// Pin is a simulated GPIO pin. Safe for concurrent use.
type Pin struct {
	name string
	num  int

	// edge receives a token when a detected edge occurs; buffered 1, so
	// edges accumulate into one, as periph allows.
	edge chan struct{}

	// mu guards the fields below.
	mu     sync.Mutex
	output bool       // configured as output
	out    gpio.Level // output level
	pull   gpio.Pull
	detect gpio.Edge
	driven bool       // something outside drives the line
	drive  gpio.Level // the outside level when driven
	level  gpio.Level // current level, for edge detection
	outs   int        // number of Out calls
}

var _ gpio.PinIO = (*Pin)(nil)

// NewPin returns a floating input pin with no pull, reading low.
func NewPin(name string, num int) *Pin {
	return &Pin{name: name, num: num, edge: make(chan struct{}, 1)}
}

// Drive makes something outside drive the line to l (a switch closing).
func (p *Pin) Drive(l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.driven, p.drive = true, l
	p.update()
}

// Release stops driving the line from outside: it floats to its pull.
func (p *Pin) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.driven = false
	p.update()
}

// Level returns the line's current level.
func (p *Pin) Level() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// IsOutput reports whether the pin is configured as an output.
func (p *Pin) IsOutput() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output
}

// Outs returns how many times Out was called.
func (p *Pin) Outs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outs
}

// update recomputes the level and signals a detected edge. p.mu held.
func (p *Pin) update() {
	var l gpio.Level
	switch {
	case p.output:
		l = p.out
	case p.driven:
		l = p.drive
	default:
		l = p.pull == gpio.PullUp
	}
	if l == p.level {
		return
	}
	p.level = l
	if p.output {
		return
	}
	if p.detect == gpio.BothEdges || (l && p.detect == gpio.RisingEdge) || (!l && p.detect == gpio.FallingEdge) {
		select {
		case p.edge <- struct{}{}:
		default:
		}
	}
}

// String implements conn.Resource.
func (p *Pin) String() string { return p.name }

// Halt implements conn.Resource.
func (p *Pin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *Pin) Number() int { return p.num }

// Function implements pin.Pin.
func (p *Pin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *Pin) Func() pin.Func {
	if p.IsOutput() {
		return gpio.OUT
	}
	return gpio.IN
}

// In implements gpio.PinIn.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output = false
	if pull != gpio.PullNoChange {
		p.pull = pull
	}
	p.detect = edge
	p.update()
	select { // forget edges from before
	case <-p.edge:
	default:
	}
	return nil
}

// Read implements gpio.PinIn.
func (p *Pin) Read() gpio.Level { return p.Level() }

// WaitForEdge implements gpio.PinIn.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	if timeout < 0 {
		<-p.edge
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.edge:
		return true
	case <-t.C:
		return false
	}
}

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *Pin) DefaultPull() gpio.Pull { return gpio.Float }

// Out implements gpio.PinOut.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output, p.out = true, l
	p.outs++
	p.update()
	return nil
}

// PWM implements gpio.PinOut; simulated pins have no PWM.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("gpiosim: PWM not supported")
}
