package tpms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/edgegw/edgegw/drivers/serial"
)

// Driver kinds, as registered in cmd/edgegw.
const (
	KindRTL433 = "tpms_rtl433"
	KindModule = "tpms_module"
)

// MaxLine bounds an rtl_433 JSON line; longer lines are discarded.
const MaxLine = 2048

// timeSkew is how far rtl_433's own time stamp may lie from the gateway's
// clock to be used for a reading.
const timeSkew = 5 * time.Minute

// lineSource is what RTL433 reads: a *serial.LineReader.
type lineSource interface {
	ReadLine(ctx context.Context) ([]byte, error)
	TooLong() int64
}

// RTL433 is an rtl_433 receiver streaming JSON lines on a serial line.
type RTL433 struct {
	name  string
	lines lineSource
	t     *tracker
}

var (
	_ drivers.Streamer = (*RTL433)(nil)
	_ poll.Ruler       = (*RTL433)(nil)
)

// NewRTL433 returns the device name reading rtl_433 output from p. It does
// not own p. log, if not nil, should carry the device's name, as a
// drivers.Spec's Log does.
func NewRTL433(p *serial.Port, name string, o Opts, log *slog.Logger) (*RTL433, error) {
	if p == nil {
		return nil, fmt.Errorf("tpms %q: nil serial port", name)
	}
	return newRTL433(serial.NewLineReader(p, MaxLine), name, o, log)
}

func newRTL433(src lineSource, name string, o Opts, log *slog.Logger) (*RTL433, error) {
	if err := o.checkStreamed(); err != nil {
		return nil, fmt.Errorf("tpms %q: %w", name, err)
	}
	t, err := newTracker(name, o, log)
	if err != nil {
		return nil, fmt.Errorf("tpms %q: %w", name, err)
	}
	return &RTL433{name: name, lines: src, t: t}, nil
}

// Name returns the device name.
func (d *RTL433) Name() string { return d.name }

// Close releases nothing: the serial port belongs to the daemon.
func (d *RTL433) Close() error { return nil }

// Rules implements poll.Ruler: the rule of each wheel's point from
// Opts.Points. The daemon applies them to the streamed readings.
func (d *RTL433) Rules() map[string]poll.Rule { return d.t.rules() }

// Stats returns the receiver's counters.
func (d *RTL433) Stats() Stats {
	s := d.t.c.stats()
	s.TooLong = d.lines.TooLong()
	return s
}

// Stream reads lines until ctx is done (it then returns nil) or the line
// fails, emitting the readings of each accepted transmission and stale
// readings for wheels that fall silent. When the line goes down (the
// receiver unplugged) Stream returns an error wrapping serial.ErrOffline:
// the caller reports the device offline and calls Stream again with
// backoff, while the Port reopens the line; the wheels' state is kept
// across calls.
func (d *RTL433) Stream(ctx context.Context, emit func([]drivers.Reading)) error {
	for {
		line, err := d.lines.ReadLine(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil && line != nil:
			if rs := d.handle(now, line); len(rs) > 0 {
				emit(rs)
			}
		case err == nil, errors.Is(err, serial.ErrLineTooLong):
		default:
			return fmt.Errorf("tpms %q: %w", d.name, err)
		}
		if rs := d.t.sweep(now); len(rs) > 0 {
			emit(rs)
		}
	}
}

// handle decodes one line heard at now.
func (d *RTL433) handle(now time.Time, line []byte) []drivers.Reading {
	m, err := DecodeRTL433(line)
	switch {
	case errors.Is(err, ErrNotTPMS):
		d.t.c.notTPMS.Add(1)
		return nil
	case err != nil:
		d.t.c.malformed.Add(1)
		return nil
	}
	at := now
	if !m.Time.IsZero() && m.Time.Sub(now).Abs() <= timeSkew {
		at = m.Time
	}
	points, alarms := d.t.observe(at, m)
	return append(points, alarms...)
}

// exchanger is what Module polls through: a *serial.Port.
type exchanger interface {
	Exchange(ctx context.Context, device string, pri bus.Priority, req []byte, f serial.Frame) ([]byte, error)
}

// Module is a "$…#" receiver module polled over a serial line.
type Module struct {
	name string
	x    exchanger
	t    *tracker
}

var (
	_ drivers.Sensor = (*Module)(nil)
	_ poll.Ruler     = (*Module)(nil)
)

// NewModule returns the device name polling the receiver module on p. It
// does not own p; p's Run must be running for Read to make progress.
func NewModule(p *serial.Port, name string, o Opts, log *slog.Logger) (*Module, error) {
	if p == nil {
		return nil, fmt.Errorf("tpms %q: nil serial port", name)
	}
	return newModule(p, name, o, log)
}

func newModule(x exchanger, name string, o Opts, log *slog.Logger) (*Module, error) {
	t, err := newTracker(name, o, log)
	if err != nil {
		return nil, fmt.Errorf("tpms %q: %w", name, err)
	}
	return &Module{name: name, x: x, t: t}, nil
}

// Name returns the device name.
func (d *Module) Name() string { return d.name }

// Close releases nothing: the serial port belongs to the daemon.
func (d *Module) Close() error { return nil }

// Rules implements poll.Ruler: the rule of each wheel's point from
// Opts.Points.
func (d *Module) Rules() map[string]poll.Rule { return d.t.rules() }

// Stats returns the receiver's counters.
func (d *Module) Stats() Stats { return d.t.c.stats() }

// Read polls the module once and returns the current readings of every
// wheel, followed by the alarms raised or cleared by this poll.
func (d *Module) Read(ctx context.Context) ([]drivers.Reading, error) {
	frame, err := d.x.Exchange(ctx, d.name, bus.Poll, Request, serial.Frame{
		Start: '$', End: '#', Max: MaxFrame,
		Check: func(b []byte) error {
			err := CheckFrame(b)
			switch {
			case errors.Is(err, ErrChecksum):
				d.t.c.checksum.Add(1)
			case err != nil:
				d.t.c.malformed.Add(1)
			}
			return err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tpms %q: read: %w", d.name, err)
	}
	wheels, err := DecodeFrame(frame)
	if err != nil {
		if !errors.Is(err, ErrRejected) {
			d.t.c.malformed.Add(1)
		}
		return nil, fmt.Errorf("tpms %q: read: %w", d.name, err)
	}
	now := time.Now()
	var alarms []drivers.Reading
	for _, w := range wheels {
		if w.Status&NoSignal != 0 || w.Age == AgeNever {
			continue
		}
		m := Message{
			ID:           uint64(w.ID),
			PressureKPa:  w.KPa(),
			TemperatureC: float64(w.TemperatureC),
			HasTemp:      true,
			BatteryOK:    w.Status&LowBattery == 0,
			HasBattery:   true,
			Fault:        w.Status&SensorFault != 0,
		}
		_, a := d.t.observe(now.Add(-time.Duration(w.Age)*time.Second), m)
		alarms = append(alarms, a...)
	}
	return append(d.t.snapshot(now), alarms...), nil
}

// RTL433Factory builds a "tpms_rtl433" device; Spec.Bus must be a
// *serial.Port.
func RTL433Factory(s drivers.Spec) (drivers.Device, error) {
	p, o, err := decode(s)
	if err != nil {
		return nil, err
	}
	return NewRTL433(p, s.Name, o, s.Logger())
}

// ModuleFactory builds a "tpms_module" device; Spec.Bus must be a
// *serial.Port.
func ModuleFactory(s drivers.Spec) (drivers.Device, error) {
	p, o, err := decode(s)
	if err != nil {
		return nil, err
	}
	return NewModule(p, s.Name, o, s.Logger())
}

func decode(s drivers.Spec) (*serial.Port, Opts, error) {
	var o Opts
	p, ok := s.Bus.(*serial.Port)
	if !ok {
		return nil, o, fmt.Errorf("tpms %q: bus is %T, want a serial bus", s.Name, s.Bus)
	}
	if err := s.DecodeOptions(&o); err != nil {
		return nil, o, fmt.Errorf("tpms %q: options: %w", s.Name, err)
	}
	if err := o.Validate(); err != nil {
		return nil, o, fmt.Errorf("tpms %q: %w", s.Name, err)
	}
	return p, o, nil
}
