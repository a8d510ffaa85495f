package bme280

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/poll"
	pi2c "periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// Kind is the driver kind this package registers.
const Kind = "bme280"

// Point names and units.
const (
	Temperature = "temperature" // °C
	Humidity    = "humidity"    // %RH
	Pressure    = "pressure"    // kPa
)

var units = map[string]string{Temperature: "°C", Humidity: "%RH", Pressure: "kPa"}

// Operating range of the chip, datasheet table 1. Values outside are
// physically implausible readings of a faulty or damaged sensor.
var valid = map[string][2]float64{
	Temperature: {-40, 85},
	Humidity:    {0, 100},
	Pressure:    {30, 110},
}

var (
	// ErrBusy is returned when the chip keeps reporting a conversion in
	// progress.
	ErrBusy = errors.New("bme280: chip stays busy")
	// ErrNoHumidity is returned when the humidity point is configured but
	// the chip at the address is a BMP280 or BMP180, which have no
	// humidity sensor.
	ErrNoHumidity = errors.New("bme280: chip has no humidity sensor")
)

// Opts are the options of kind "bme280".
type Opts struct {
	Addr         uint16  `toml:"addr"`
	Oversampling int     `toml:"oversampling"`
	Points       []Point `toml:"points"`
}

// Point selects one of the chip's values, with its reporting rule.
type Point struct {
	Name string `toml:"name"`
	poll.Rule
}

// defaults fills unset options.
func (o *Opts) defaults() {
	if o.Addr == 0 {
		o.Addr = 0x76
	}
	if o.Oversampling == 0 {
		o.Oversampling = 4
	}
	if len(o.Points) == 0 {
		o.Points = []Point{{Name: Temperature}, {Name: Humidity}, {Name: Pressure}}
	}
}

var oversampling = map[int]bmxx80.Oversampling{1: bmxx80.O1x, 2: bmxx80.O2x, 4: bmxx80.O4x, 8: bmxx80.O8x, 16: bmxx80.O16x}

// Validate reports every problem of o (after defaults) with its key path.
func (o Opts) Validate() error {
	var errs []error
	if o.Addr != 0x76 && o.Addr != 0x77 {
		errs = append(errs, fmt.Errorf("addr: 0x%02x is not 0x76 or 0x77", o.Addr))
	}
	if _, ok := oversampling[o.Oversampling]; !ok {
		errs = append(errs, fmt.Errorf("oversampling: %d is not 1, 2, 4, 8 or 16", o.Oversampling))
	}
	seen := make(map[string]bool)
	for i, p := range o.Points {
		switch {
		case units[p.Name] == "":
			errs = append(errs, fmt.Errorf("points[%d].name: %q is not temperature, humidity or pressure", i, p.Name))
		case seen[p.Name]:
			errs = append(errs, fmt.Errorf("points[%d].name: %q listed twice", i, p.Name))
		}
		seen[p.Name] = true
		if err := p.Rule.Validate(); err != nil {
			errs = append(errs, prefix(fmt.Sprintf("points[%d].", i), err))
		}
	}
	return errors.Join(errs...)
}

// prefix puts a key path in front of each of err's joined errors.
func prefix(path string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("%s%w", path, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s%w", path, err)
}

// Dev is one BME280. Safe for concurrent use.
type Dev struct {
	name   string
	addr   uint16
	opts   bmxx80.Opts
	points []Point
	conn   *limited

	// mu guards dev and serialises Reads.
	mu  sync.Mutex
	dev *bmxx80.Dev // nil until initialised, and again after a failure
}

var (
	_ drivers.Sensor = (*Dev)(nil)
	_ poll.Ruler     = (*Dev)(nil)
)

// New returns the device name at o.Addr on b. It does no I/O: the chip is
// initialised on the first Read, so a sensor missing at start-up does not
// stop the gateway.
func New(b *i2c.Bus, name string, o Opts) (*Dev, error) {
	o.defaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bme280 %q: %w", name, err)
	}
	os := oversampling[o.Oversampling]
	return &Dev{
		name:   name,
		addr:   o.Addr,
		opts:   bmxx80.Opts{Temperature: os, Pressure: os, Humidity: os},
		points: o.Points,
		conn:   &limited{Conn: b.For(name)},
	}, nil
}

// Factory builds a "bme280" device; s.Bus must be a *i2c.Bus.
func Factory(s drivers.Spec) (drivers.Device, error) {
	b, ok := s.Bus.(*i2c.Bus)
	if !ok {
		return nil, fmt.Errorf("bme280 %q: bus is %T, want an i2c bus", s.Name, s.Bus)
	}
	var o Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, fmt.Errorf("bme280 %q: options: %w", s.Name, err)
	}
	return New(b, s.Name, o)
}

// Rules implements poll.Ruler.
func (d *Dev) Rules() map[string]poll.Rule {
	rules := make(map[string]poll.Rule, len(d.points))
	for _, p := range d.points {
		rules[p.Name] = p.Rule
	}
	return rules
}

// Name implements drivers.Device.
func (d *Dev) Name() string { return d.name }

// Close implements drivers.Device. The chip is left in sleep mode after
// each forced measurement, so there is nothing to release.
func (d *Dev) Close() error { return nil }

// Read implements drivers.Sensor: one forced measurement.
func (d *Dev) Read(ctx context.Context) ([]drivers.Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.conn.bind(ctx)()
	if d.dev == nil {
		dev, err := bmxx80.NewI2C(d.conn, d.addr, &d.opts)
		if err != nil {
			return nil, d.fail("init", err)
		}
		if chip := dev.String(); !strings.HasPrefix(chip, "BME280") && d.humidity() {
			return nil, fmt.Errorf("bme280 %q: %s: %w", d.name, chip[:min(6, len(chip))], ErrNoHumidity)
		}
		d.dev = dev
	}
	var e physic.Env
	if err := d.dev.Sense(&e); err != nil {
		d.dev = nil // initialise again: the chip may have been power-cycled
		return nil, d.fail("read", err)
	}
	return readings(d.name, d.points, e, time.Now().UTC()), nil
}

func (d *Dev) humidity() bool {
	for _, p := range d.points {
		if p.Name == Humidity {
			return true
		}
	}
	return false
}

// fail wraps the original transaction error when periph flattened it.
func (d *Dev) fail(op string, err error) error {
	if txErr := d.conn.err(); txErr != nil {
		err = txErr
	}
	return fmt.Errorf("bme280 %q: %s: %w", d.name, op, err)
}

// readings converts a measurement to the selected points.
func readings(device string, points []Point, e physic.Env, t time.Time) []drivers.Reading {
	out := make([]drivers.Reading, 0, len(points))
	for _, p := range points {
		var v float64
		switch p.Name {
		case Temperature:
			v = round(e.Temperature.Celsius(), 100)
		case Humidity:
			v = round(float64(e.Humidity)/float64(physic.PercentRH), 100)
		case Pressure:
			v = round(float64(e.Pressure)/float64(physic.KiloPascal), 1000)
		default:
			continue
		}
		q := drivers.Good
		if r := valid[p.Name]; v < r[0] || v > r[1] || math.IsNaN(v) {
			q = drivers.OutOfRange
		}
		out = append(out, drivers.Reading{Device: device, Point: p.Name, Value: v, Unit: units[p.Name], Time: t, Quality: q})
	}
	return out
}

// round rounds v to 1/per, the chip's resolution, so that binary noise does
// not leak into published values.
func round(v, per float64) float64 { return math.Round(v*per) / per }

// maxTx bounds the transactions of one Read: bmxx80 polls the status
// register until the chip is idle, without a bound of its own.
const maxTx = 32

// limited is the device's view of the bus during one Read.
type limited struct {
	*i2c.Conn
	// mu guards n.
	mu sync.Mutex
	n  int
}

var _ pi2c.Bus = (*limited)(nil)

func (l *limited) bind(ctx context.Context) func() {
	l.mu.Lock()
	l.n = 0
	l.mu.Unlock()
	return l.Conn.Bind(ctx)
}

func (l *limited) Tx(addr uint16, w, r []byte) error {
	l.mu.Lock()
	l.n++
	n := l.n
	l.mu.Unlock()
	if n > maxTx {
		return ErrBusy
	}
	return l.Conn.Tx(addr, w, r)
}

// err returns the first error of the Read's transactions, unflattened.
func (l *limited) err() error {
	l.mu.Lock()
	n := l.n
	l.mu.Unlock()
	if n > maxTx {
		return ErrBusy
	}
	return l.Conn.Err()
}
