package modbusdev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/modbus"
	"github.com/edgegw/edgegw/drivers/poll"
)

// Kind is the driver kind of the generic Modbus device.
const Kind = "modbus"

// Opts are a device's options ([device.options]).
type Opts struct {
	Slave   int    `toml:"slave"`   // slave id 1..247 (TCP: unit id, 1..255); required
	Profile string `toml:"profile"` // optional: xy_md02, relay8, seat_module
	// MaxGap is how many unmapped addresses a request may span to read
	// two points at once (default 8; 0 reads only adjacent points
	// together).
	MaxGap *int    `toml:"max_gap"`
	Points []Point `toml:"points"`
}

// Dev is a Modbus slave with a register map. It is safe for concurrent use.
type Dev struct {
	name   string
	bus    *modbus.Bus
	slave  byte
	points []*Point // sorted by table, address
	byName map[string]*Point
	maxGap int
	log    *slog.Logger

	// mu guards split.
	mu sync.Mutex
	// split holds the first point of blocks the slave refused to read
	// across a gap: their points are read one by one.
	split map[*Point]bool
}

var (
	_ drivers.Sensor      = (*Dev)(nil)
	_ drivers.StateReader = (*Dev)(nil)
	_ poll.Ruler          = (*Dev)(nil)
	_ poll.PointReader    = (*Dev)(nil)
)

// Factory builds a Dev from a Spec whose Bus is a *modbus.Bus.
func Factory(s drivers.Spec) (drivers.Device, error) {
	b, ok := s.Bus.(*modbus.Bus)
	if !ok {
		return nil, fmt.Errorf("modbusdev %q: bus is %T, want a Modbus bus", s.Name, s.Bus)
	}
	var o Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, fmt.Errorf("modbusdev %q: options: %w", s.Name, err)
	}
	d, err := New(b, s.Name, o)
	if err != nil {
		return nil, err
	}
	d.log = s.Logger()
	return d, nil
}

// New returns a device on b. It checks o and reports every problem with
// its key path.
func New(b *modbus.Bus, name string, o Opts) (*Dev, error) {
	if b == nil {
		return nil, fmt.Errorf("modbusdev %q: nil bus", name)
	}
	pts, err := o.points()
	if err != nil {
		return nil, fmt.Errorf("modbusdev %q: %w", name, err)
	}
	d := &Dev{
		name:   name,
		bus:    b,
		slave:  byte(o.Slave),
		points: pts,
		byName: make(map[string]*Point, len(pts)),
		maxGap: 8,
		log:    slog.New(slog.DiscardHandler),
		split:  make(map[*Point]bool),
	}
	if o.MaxGap != nil {
		d.maxGap = *o.MaxGap
	}
	for _, p := range pts {
		d.byName[p.Name] = p
	}
	b.Attach(name, d.slave)
	return d, nil
}

// points merges the profile and the own points, sets defaults and checks
// them all.
func (o *Opts) points() ([]*Point, error) {
	var errs []error
	if o.Slave < 1 || o.Slave > 255 {
		errs = append(errs, fmt.Errorf("slave: %d outside 1..247 (TCP unit id: 1..255)", o.Slave))
	}
	if o.MaxGap != nil && (*o.MaxGap < 0 || *o.MaxGap > 100) {
		errs = append(errs, fmt.Errorf("max_gap: %d outside 0..100", *o.MaxGap))
	}
	var pts []*Point
	idx := make(map[string]int)
	if o.Profile != "" {
		prof, ok := profiles[o.Profile]
		if !ok {
			errs = append(errs, fmt.Errorf("profile: %q unknown (known: %v)", o.Profile, Profiles()))
		}
		for _, p := range prof {
			p := p
			idx[p.Name] = len(pts)
			pts = append(pts, &p)
		}
	}
	seen := make(map[string]bool)
	for i := range o.Points {
		p := o.Points[i]
		p.setDefaults()
		if err := p.validate(); err != nil {
			errs = append(errs, prefix("points["+strconv.Itoa(i)+"]", err))
			continue
		}
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("points[%d].name: %q defined twice", i, p.Name))
			continue
		}
		seen[p.Name] = true
		if j, ok := idx[p.Name]; ok {
			pts[j] = &p // replaces the profile's point
			continue
		}
		idx[p.Name] = len(pts)
		pts = append(pts, &p)
	}
	if len(pts) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("points: none (set points or a profile)"))
	}
	for _, p := range pts {
		p.setDefaults()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(pts, func(i, j int) bool {
		if pts[i].Table != pts[j].Table {
			return pts[i].Table < pts[j].Table
		}
		return pts[i].Address < pts[j].Address
	})
	return pts, nil
}

// prefix puts key in front of each of err's joined errors.
func prefix(key string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, prefix(key, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s.%w", key, err)
}

// Name returns the device name.
func (d *Dev) Name() string { return d.name }

// Close does nothing: the bus belongs to its owner, and a generic device has
// no safe state of its own.
func (d *Dev) Close() error { return nil }

// Rules returns the points' poll rules.
func (d *Dev) Rules() map[string]poll.Rule {
	m := make(map[string]poll.Rule, len(d.points))
	for _, p := range d.points {
		m[p.Name] = p.Rule
	}
	return m
}

// Read reads every point.
func (d *Dev) Read(ctx context.Context) ([]drivers.Reading, error) {
	return d.read(ctx, d.points)
}

// ReadPoints reads the named points; unknown names are ignored.
func (d *Dev) ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error) {
	var pts []*Point
	for _, p := range d.points {
		if slices.Contains(names, p.Name) {
			pts = append(pts, p)
		}
	}
	return d.read(ctx, pts)
}

// block is one read request covering points of one table.
type block struct {
	table        string
	start, count int
	points       []*Point
}

// plan groups pts (sorted by table and address) into requests.
func (d *Dev) plan(pts []*Point) []block {
	d.mu.Lock()
	defer d.mu.Unlock()
	var bs []block
	for _, p := range pts {
		if n := len(bs); n > 0 {
			b := &bs[n-1]
			end := b.start + b.count
			limit := modbus.MaxReadRegisters
			if p.bitTable() {
				limit = modbus.MaxReadBits
			}
			newEnd := max(end, p.Address+p.regs())
			gapOK := p.Address <= end || (p.Address-end <= d.maxGap && !d.split[b.points[len(b.points)-1]] && !d.split[p])
			if b.table == p.Table && gapOK && newEnd-b.start <= limit {
				b.count = newEnd - b.start
				b.points = append(b.points, p)
				continue
			}
		}
		bs = append(bs, block{table: p.Table, start: p.Address, count: p.regs(), points: []*Point{p}})
	}
	return bs
}

func (d *Dev) read(ctx context.Context, pts []*Point) ([]drivers.Reading, error) {
	now := time.Now().UTC()
	var out []drivers.Reading
	for _, b := range d.plan(pts) {
		rs, err := d.readBlock(ctx, b, now)
		var ee *modbus.ExceptionError
		if errors.As(err, &ee) && ee.Code == modbus.IllegalDataAddress && len(b.points) > 1 && b.count > sumRegs(b.points) {
			// The slave refuses to read across the gap: from now on
			// these points are read one by one.
			d.mu.Lock()
			for _, p := range b.points {
				d.split[p] = true
			}
			d.mu.Unlock()
			d.log.Info("reading points one by one", "device", d.name, "table", b.table, "address", b.start)
			for _, p := range b.points {
				prs, err := d.readBlock(ctx, block{table: p.Table, start: p.Address, count: p.regs(), points: []*Point{p}}, now)
				if err != nil && !errors.As(err, &ee) {
					return nil, err
				}
				out = append(out, prs...)
			}
			continue
		}
		if err != nil && !errors.As(err, &ee) {
			return nil, fmt.Errorf("modbusdev %q: %w", d.name, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

func sumRegs(pts []*Point) int {
	n := 0
	for _, p := range pts {
		n += p.regs()
	}
	return n
}

// readBlock reads one block. On an exception reply, its points are
// returned with Quality comm_error along with the error.
func (d *Dev) readBlock(ctx context.Context, b block, now time.Time) ([]drivers.Reading, error) {
	var bits []bool
	var regs []uint16
	var err error
	start, count := uint16(b.start), uint16(b.count)
	switch b.table {
	case tableCoil:
		bits, err = d.bus.ReadCoils(ctx, d.slave, bus.Poll, start, count)
	case tableDiscrete:
		bits, err = d.bus.ReadDiscreteInputs(ctx, d.slave, bus.Poll, start, count)
	case tableInput:
		regs, err = d.bus.ReadInputRegisters(ctx, d.slave, bus.Poll, start, count)
	case tableHolding:
		regs, err = d.bus.ReadHoldingRegisters(ctx, d.slave, bus.Poll, start, count)
	}
	out := make([]drivers.Reading, 0, len(b.points))
	for _, p := range b.points {
		r := drivers.Reading{Device: d.name, Point: p.Name, Unit: p.Unit, Time: now, Quality: drivers.Good}
		if err != nil {
			r.Quality = drivers.CommError
			out = append(out, r)
			continue
		}
		off := p.Address - b.start
		if bits != nil {
			r.Value = bits[off]
		} else {
			raw := make([]byte, 2*p.regs())
			for i := range p.regs() {
				binary.BigEndian.PutUint16(raw[2*i:], regs[off+i])
			}
			v, derr := decodeRegs(p, raw)
			if derr != nil {
				r.Quality = drivers.CommError
			}
			if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				r.Quality = drivers.OutOfRange
			}
			r.Value = v
		}
		out = append(out, r)
	}
	return out, err
}

// Set writes a writable point: c.Command names it, c.Value is a bool or a
// number (a string for a string point). It reads the point back, once,
// when the point's Verify or c.Verify asks, and fails when the device
// reports another value.
func (d *Dev) Set(ctx context.Context, c drivers.Command) error {
	p, err := d.writable(c.Command)
	if err != nil {
		return err
	}
	if err := drivers.CheckDeadline(ctx); err != nil {
		return fmt.Errorf("modbusdev %q: %s: not applied: %w", d.name, c.Command, err)
	}
	if err := d.write(ctx, p, c.Value); err != nil {
		return fmt.Errorf("modbusdev %q: %s: %w", d.name, c.Command, err)
	}
	if !p.Verify && !c.Verify {
		return nil
	}
	got, err := d.readPoint(ctx, p, bus.Command)
	if err != nil {
		return fmt.Errorf("modbusdev %q: %s: verify: %w", d.name, c.Command, err)
	}
	if !same(p, c.Value, got) {
		return fmt.Errorf("modbusdev %q: %s: verify: wrote %v, read back %v", d.name, c.Command, c.Value, got)
	}
	return nil
}

// State reads the point that command writes.
func (d *Dev) State(ctx context.Context, command string) (any, error) {
	p, err := d.writable(command)
	if err != nil {
		return nil, err
	}
	v, err := d.readPoint(ctx, p, bus.Command)
	if err != nil {
		return nil, fmt.Errorf("modbusdev %q: %s: %w", d.name, command, err)
	}
	return v, nil
}

func (d *Dev) writable(name string) (*Point, error) {
	p, ok := d.byName[name]
	if !ok || !p.Writable {
		return nil, fmt.Errorf("modbusdev %q: no writable point %q", d.name, name)
	}
	return p, nil
}

func (d *Dev) readPoint(ctx context.Context, p *Point, pri bus.Priority) (any, error) {
	start, n := uint16(p.Address), uint16(p.regs())
	switch p.Table {
	case tableCoil:
		bits, err := d.bus.ReadCoils(ctx, d.slave, pri, start, 1)
		if err != nil {
			return nil, err
		}
		return bits[0], nil
	default:
		regs, err := d.bus.ReadHoldingRegisters(ctx, d.slave, pri, start, n)
		if err != nil {
			return nil, err
		}
		raw := make([]byte, 2*len(regs))
		for i, r := range regs {
			binary.BigEndian.PutUint16(raw[2*i:], r)
		}
		return decodeRegs(p, raw)
	}
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case float64:
		return x != 0, nil
	}
	return false, fmt.Errorf("value %v: want a bool or a number", v)
}

func (d *Dev) write(ctx context.Context, p *Point, v any) error {
	addr := uint16(p.Address)
	switch {
	case p.Table == tableCoil:
		on, err := asBool(v)
		if err != nil {
			return err
		}
		return d.bus.WriteSingleCoil(ctx, d.slave, bus.Command, addr, on)
	case p.Type == "bool":
		// One bit of a holding register: read, modify, write.
		on, err := asBool(v)
		if err != nil {
			return err
		}
		regs, err := d.bus.ReadHoldingRegisters(ctx, d.slave, bus.Command, addr, 1)
		if err != nil {
			return err
		}
		r := regs[0] &^ (1 << *p.Bit)
		if on {
			r |= 1 << *p.Bit
		}
		return d.bus.WriteSingleRegister(ctx, d.slave, bus.Command, addr, r)
	}
	raw, err := encodeRegs(p, v)
	if err != nil {
		return err
	}
	regs := make([]uint16, len(raw)/2)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	if len(regs) == 1 {
		return d.bus.WriteSingleRegister(ctx, d.slave, bus.Command, addr, regs[0])
	}
	return d.bus.WriteMultipleRegisters(ctx, d.slave, bus.Command, addr, regs)
}

// same reports whether the value read back matches the one written, to
// within half a scale step for numbers.
func same(p *Point, want, got any) bool {
	if p.Type == "bool" {
		w, err := asBool(want)
		g, ok := got.(bool)
		return err == nil && ok && w == g
	}
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(w-g) <= math.Abs(p.scale())/2+1e-9*math.Abs(w)
	case bool:
		g, ok := got.(float64)
		return ok && (g != 0) == w
	}
	return want == got
}
