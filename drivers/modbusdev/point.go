package modbusdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/edgegw/edgegw/drivers/poll"
)

// Point is one value in the device's register map.
type Point struct {
	Name    string `toml:"name"`
	Table   string `toml:"table"`   // coil, discrete_input, input_register, holding_register
	Address int    `toml:"address"` // protocol address, 0..65535
	// Type defaults to bool in bit tables and uint16 in register tables.
	Type   string `toml:"type"`
	Order  string `toml:"order"`  // ABCD (default), DCBA, BADC, CDAB
	Length int    `toml:"length"` // string: registers (two characters each)
	// Bit selects one bit (0 = least significant) of a register for a
	// bool point.
	Bit    *int     `toml:"bit"`
	Scale  *float64 `toml:"scale"`  // default 1; value = raw*scale + offset
	Offset float64  `toml:"offset"` //
	Unit   string   `toml:"unit"`
	// Writable makes the point a command of the same name (coils and
	// holding registers only).
	Writable bool `toml:"writable"`
	// Verify reads a written value back and fails the command if it
	// differs.
	Verify bool `toml:"verify"`
	poll.Rule
}

// Data tables.
const (
	tableCoil     = "coil"
	tableDiscrete = "discrete_input"
	tableInput    = "input_register"
	tableHolding  = "holding_register"
)

var typeRegs = map[string]int{
	"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
	"int64": 4, "uint64": 4, "float64": 4, "string": 0,
}

var orders = []string{"ABCD", "DCBA", "BADC", "CDAB"}

func (p *Point) bitTable() bool { return p.Table == tableCoil || p.Table == tableDiscrete }

// regs returns how many registers (or bits) the point spans.
func (p *Point) regs() int {
	if p.bitTable() {
		return 1
	}
	if p.Type == "string" {
		return p.Length
	}
	return typeRegs[p.Type]
}

func (p *Point) scale() float64 {
	if p.Scale == nil {
		return 1
	}
	return *p.Scale
}

// setDefaults fills Type and Order.
func (p *Point) setDefaults() {
	if p.Type == "" {
		if p.bitTable() || p.Bit != nil {
			p.Type = "bool"
		} else {
			p.Type = "uint16"
		}
	}
	if p.Order == "" {
		p.Order = "ABCD"
	}
	p.Order = strings.ToUpper(p.Order)
}

// validate reports every problem of p (after setDefaults) with its key.
func (p *Point) validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if p.Name == "" {
		add("name", "required")
	}
	switch p.Table {
	case tableCoil, tableDiscrete, tableInput, tableHolding:
	default:
		add("table", "%q must be coil, discrete_input, input_register or holding_register", p.Table)
	}
	if p.Address < 0 || p.Address > 0xFFFF {
		add("address", "%d outside 0..65535", p.Address)
	}
	_, ok := typeRegs[p.Type]
	switch {
	case !ok:
		add("type", "%q is not one of bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string", p.Type)
	case p.bitTable() && p.Type != "bool":
		add("type", "%q in a bit table; want bool", p.Type)
	case !p.bitTable() && p.Type == "bool" && p.Bit == nil:
		add("bit", "required for a bool in a register")
	case p.Type == "string" && (p.Length < 1 || p.Length > 125):
		add("length", "%d registers outside 1..125", p.Length)
	case p.Type != "string" && p.Length != 0:
		add("length", "only for strings")
	}
	if p.Bit != nil && (p.bitTable() || *p.Bit < 0 || *p.Bit > 15 || p.Type != "bool") {
		add("bit", "only for a bool in a register, 0..15")
	}
	if p.Address+p.regs() > 0x10000 {
		add("address", "%d + %d registers beyond 65535", p.Address, p.regs())
	}
	valid := false
	for _, o := range orders {
		valid = valid || p.Order == o
	}
	if !valid {
		add("order", "%q must be ABCD, DCBA, BADC or CDAB", p.Order)
	}
	if p.Scale != nil && (*p.Scale == 0 || math.IsNaN(*p.Scale) || math.IsInf(*p.Scale, 0)) {
		add("scale", "must not be 0")
	}
	if p.Writable && (p.Table == tableDiscrete || p.Table == tableInput) {
		add("writable", "%s is read-only", p.Table)
	}
	if p.Verify && !p.Writable {
		add("verify", "only for writable points")
	}
	if err := p.Rule.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// canonical returns raw (registers as sent, big-endian each) reordered so
// that its most significant byte comes first.
func canonical(raw []byte, order string) []byte {
	out := make([]byte, len(raw))
	copy(out, raw)
	switch order {
	case "DCBA":
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case "BADC":
		swapBytes(out)
	case "CDAB":
		for i, j := 0, len(out)-2; i < j; i, j = i+2, j-2 {
			out[i], out[i+1], out[j], out[j+1] = out[j], out[j+1], out[i], out[i+1]
		}
	}
	return out
}

func swapBytes(b []byte) {
	for i := 0; i+1 < len(b); i += 2 {
		b[i], b[i+1] = b[i+1], b[i]
	}
}

// wire is the inverse of canonical.
func wire(c []byte, order string) []byte {
	// Each reordering is its own inverse.
	return canonical(c, order)
}

// decodeRegs converts the point's registers (2*regs bytes, as on the wire)
// to its value: float64 (scaled), bool or string.
func decodeRegs(p *Point, raw []byte) (any, error) {
	if len(raw) != 2*p.regs() {
		return nil, fmt.Errorf("modbusdev: point %q: %d bytes, want %d", p.Name, len(raw), 2*p.regs())
	}
	switch p.Type {
	case "bool":
		v := binary.BigEndian.Uint16(raw)
		return v&(1<<*p.Bit) != 0, nil
	case "string":
		b := raw
		if p.Order == "BADC" || p.Order == "DCBA" {
			b = append([]byte(nil), raw...)
			swapBytes(b)
		}
		s := strings.TrimRight(string(b), "\x00 ")
		return strings.ToValidUTF8(s, "\uFFFD"), nil
	}
	c := raw
	if len(raw) == 2 {
		if p.Order == "BADC" || p.Order == "DCBA" {
			c = []byte{raw[1], raw[0]}
		}
	} else {
		c = canonical(raw, p.Order)
	}
	var f float64
	switch p.Type {
	case "int16":
		f = float64(int16(binary.BigEndian.Uint16(c)))
	case "uint16":
		f = float64(binary.BigEndian.Uint16(c))
	case "int32":
		f = float64(int32(binary.BigEndian.Uint32(c)))
	case "uint32":
		f = float64(binary.BigEndian.Uint32(c))
	case "float32":
		f = float64(math.Float32frombits(binary.BigEndian.Uint32(c)))
	case "int64":
		f = float64(int64(binary.BigEndian.Uint64(c)))
	case "uint64":
		f = float64(binary.BigEndian.Uint64(c))
	case "float64":
		f = math.Float64frombits(binary.BigEndian.Uint64(c))
	default:
		return nil, fmt.Errorf("modbusdev: point %q: unknown type %q", p.Name, p.Type)
	}
	return f*p.scale() + p.Offset, nil
}

// encodeRegs converts a value for the point (float64 or bool; string for a
// string point) to its registers' bytes as on the wire. A bool point in a
// register is not encoded here (it needs the register's other bits).
func encodeRegs(p *Point, v any) ([]byte, error) {
	if p.Type == "string" {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("value %v: want a string", v)
		}
		if len(s) > 2*p.Length {
			return nil, fmt.Errorf("value %q: longer than %d characters", s, 2*p.Length)
		}
		b := make([]byte, 2*p.Length)
		copy(b, s)
		if p.Order == "BADC" || p.Order == "DCBA" {
			swapBytes(b)
		}
		return b, nil
	}
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case bool:
		if x {
			f = 1
		}
	default:
		return nil, fmt.Errorf("value %v: want a number", v)
	}
	raw := (f - p.Offset) / p.scale()
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return nil, fmt.Errorf("value %v: not a finite number", v)
	}
	c := make([]byte, 2*p.regs())
	if p.Type != "float32" && p.Type != "float64" {
		raw = math.Round(raw)
		lo, hi := intRange(p.Type)
		if raw < lo || raw > hi {
			return nil, fmt.Errorf("value %v: raw %v outside %s range", v, raw, p.Type)
		}
	}
	switch p.Type {
	case "int16":
		binary.BigEndian.PutUint16(c, uint16(int16(raw)))
	case "uint16":
		binary.BigEndian.PutUint16(c, uint16(raw))
	case "int32":
		binary.BigEndian.PutUint32(c, uint32(int32(raw)))
	case "uint32":
		binary.BigEndian.PutUint32(c, uint32(raw))
	case "float32":
		if math.Abs(raw) > math.MaxFloat32 {
			return nil, fmt.Errorf("value %v: outside float32 range", v)
		}
		binary.BigEndian.PutUint32(c, math.Float32bits(float32(raw)))
	case "int64":
		binary.BigEndian.PutUint64(c, uint64(int64(raw)))
	case "uint64":
		binary.BigEndian.PutUint64(c, uint64(raw))
	case "float64":
		binary.BigEndian.PutUint64(c, math.Float64bits(raw))
	default:
		return nil, fmt.Errorf("type %s cannot be written as a number", p.Type)
	}
	if len(c) == 2 {
		if p.Order == "BADC" || p.Order == "DCBA" {
			c[0], c[1] = c[1], c[0]
		}
		return c, nil
	}
	return wire(c, p.Order), nil
}

// intRange returns the range of an integer type, as float64 values that
// convert back without overflow.
func intRange(t string) (lo, hi float64) {
	switch t {
	case "int16":
		return math.MinInt16, math.MaxInt16
	case "uint16":
		return 0, math.MaxUint16
	case "int32":
		return math.MinInt32, math.MaxInt32
	case "uint32":
		return 0, math.MaxUint32
	case "int64":
		return math.MinInt64, 9.223372036854775e18 // largest float64 below 2^63
	default: // uint64
		return 0, 1.8446744073709550e19 // largest float64 below 2^64
	}
}
