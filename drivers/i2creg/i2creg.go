package i2creg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/poll"
)

// Kind is the driver kind this package registers.
const Kind = "i2c_register"

// ErrShort is returned by Decode for fewer bytes than the type's width.
var ErrShort = errors.New("i2creg: short register value")

// Opts are the options of kind "i2c_register".
type Opts struct {
	Addr   uint16  `toml:"addr"`
	Points []Point `toml:"points"`
}

// Point is one value read from the device, with its reporting rule.
type Point struct {
	Name     string   `toml:"name"`
	Register uint8    `toml:"register"`
	Type     string   `toml:"type"`
	Order    string   `toml:"order"`
	Length   int      `toml:"length"`
	Scale    *float64 `toml:"scale"`
	Offset   float64  `toml:"offset"`
	Unit     string   `toml:"unit"`
	poll.Rule
}

// widths are the byte widths of the supported types.
var widths = map[string]int{"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4}

// Width returns the width in bytes of p's type, 0 for an unknown type.
func (p Point) Width() int { return widths[p.Type] }

// length returns how many bytes to read for p.
func (p Point) length() int { return max(p.Length, p.Width()) }

func (p Point) scale() float64 {
	if p.Scale == nil {
		return 1
	}
	return *p.Scale
}

// Validate reports every problem of o with its key path.
func (o Opts) Validate() error {
	var errs []error
	if o.Addr < 0x08 || o.Addr > 0x77 {
		errs = append(errs, fmt.Errorf("addr: 0x%02x outside 0x08..0x77", o.Addr))
	}
	if len(o.Points) == 0 {
		errs = append(errs, errors.New("points: at least one point is needed"))
	}
	seen := make(map[string]int)
	for i, p := range o.Points {
		at := fmt.Sprintf("points[%d]", i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must be set", at))
		} else if j, dup := seen[p.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already used by points[%d]", at, p.Name, j))
		} else {
			seen[p.Name] = i
		}
		w := p.Width()
		if w == 0 {
			errs = append(errs, fmt.Errorf("%s.type: %q is not int8, uint8, int16, uint16, int32 or uint32", at, p.Type))
		}
		if p.Order != "" && p.Order != "big" && p.Order != "little" {
			errs = append(errs, fmt.Errorf("%s.order: %q is not big or little", at, p.Order))
		}
		if p.Length != 0 && (p.Length < w || p.Length > 32) {
			errs = append(errs, fmt.Errorf("%s.length: %d outside %d..32", at, p.Length, w))
		}
		if s := p.scale(); s == 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			errs = append(errs, fmt.Errorf("%s.scale: must not be 0", at))
		}
		if math.IsNaN(p.Offset) || math.IsInf(p.Offset, 0) {
			errs = append(errs, fmt.Errorf("%s.offset: must be finite", at))
		}
		if err := p.Rule.Validate(); err != nil {
			errs = append(errs, prefix(at+".", err))
		}
	}
	return errors.Join(errs...)
}

// prefix puts a key path in front of each of err's joined errors.
func prefix(path string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("%s%w", path, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s%w", path, err)
}

// Decode converts the bytes read for p to its value: raw × scale + offset.
// Bytes past the type's width are ignored.
func Decode(p Point, b []byte) (float64, error) {
	w := p.Width()
	if w == 0 {
		return 0, fmt.Errorf("i2creg: unknown type %q", p.Type)
	}
	if len(b) < w {
		return 0, fmt.Errorf("%w: %d bytes for %s", ErrShort, len(b), p.Type)
	}
	var order binary.ByteOrder = binary.BigEndian
	if p.Order == "little" {
		order = binary.LittleEndian
	}
	var raw float64
	switch p.Type {
	case "int8":
		raw = float64(int8(b[0]))
	case "uint8":
		raw = float64(b[0])
	case "int16":
		raw = float64(int16(order.Uint16(b)))
	case "uint16":
		raw = float64(order.Uint16(b))
	case "int32":
		raw = float64(int32(order.Uint32(b)))
	case "uint32":
		raw = float64(order.Uint32(b))
	}
	return raw*p.scale() + p.Offset, nil
}

// Dev is one register device. Safe for concurrent use.
type Dev struct {
	name   string
	addr   uint16
	points []Point
	conn   *i2c.Conn

	// mu serialises Reads and guards buf.
	mu  sync.Mutex
	buf [32]byte
}

var (
	_ drivers.Sensor   = (*Dev)(nil)
	_ poll.Ruler       = (*Dev)(nil)
	_ poll.PointReader = (*Dev)(nil)
)

// New returns the device name at o.Addr on b. It does no I/O.
func New(b *i2c.Bus, name string, o Opts) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("i2c_register %q: %w", name, err)
	}
	return &Dev{name: name, addr: o.Addr, points: o.Points, conn: b.For(name)}, nil
}

// Factory builds an "i2c_register" device; s.Bus must be a *i2c.Bus.
func Factory(s drivers.Spec) (drivers.Device, error) {
	b, ok := s.Bus.(*i2c.Bus)
	if !ok {
		return nil, fmt.Errorf("i2c_register %q: bus is %T, want an i2c bus", s.Name, s.Bus)
	}
	var o Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, fmt.Errorf("i2c_register %q: options: %w", s.Name, err)
	}
	return New(b, s.Name, o)
}

// Name implements drivers.Device.
func (d *Dev) Name() string { return d.name }

// Close implements drivers.Device; the device holds nothing.
func (d *Dev) Close() error { return nil }

// Rules implements poll.Ruler.
func (d *Dev) Rules() map[string]poll.Rule {
	rules := make(map[string]poll.Rule, len(d.points))
	for _, p := range d.points {
		rules[p.Name] = p.Rule
	}
	return rules
}

// Read implements drivers.Sensor: one transaction per point.
func (d *Dev) Read(ctx context.Context) ([]drivers.Reading, error) {
	return d.ReadPoints(ctx, nil)
}

// ReadPoints implements poll.PointReader: the named points only (all for
// nil), in configuration order.
func (d *Dev) ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]drivers.Reading, 0, len(d.points))
	for _, p := range d.points {
		if names != nil && !slices.Contains(names, p.Name) {
			continue
		}
		b := d.buf[:p.length()]
		if err := d.conn.TxContext(ctx, bus.Poll, d.addr, []byte{p.Register}, b); err != nil {
			return nil, fmt.Errorf("i2c_register %q: read %s at 0x%02x: %w", d.name, p.Name, p.Register, err)
		}
		v, err := Decode(p, b)
		if err != nil {
			return nil, fmt.Errorf("i2c_register %q: %s: %w", d.name, p.Name, err)
		}
		out = append(out, drivers.Reading{
			Device: d.name, Point: p.Name, Value: v, Unit: p.Unit,
			Time: time.Now().UTC(), Quality: drivers.Good,
		})
	}
	return out, nil
}
