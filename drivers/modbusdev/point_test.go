package modbusdev

import (
	"bytes"
	"math"
	"testing"

	"github.com/edgegw/edgegw/drivers/poll"
)

func bit(i int) *int { return &i }

// decodeTests is the byte-level table of register decoding: the bytes as
// they come off the wire (registers in address order, each big-endian),
// the point, and the value. It seeds FuzzDecode.
var decodeTests = []struct {
	name string
	p    Point
	raw  []byte
	want any
}{
	{"int16 negative ×0.1", Point{Type: "int16", Scale: f(0.1)}, []byte{0xFF, 0x38}, -20.0},
	{"uint16", Point{Type: "uint16"}, []byte{0xFF, 0x38}, 65336.0},
	{"uint16 BADC", Point{Type: "uint16", Order: "BADC"}, []byte{0x38, 0xFF}, 65336.0},
	{"int32 ABCD", Point{Type: "int32"}, []byte{0xFF, 0xFF, 0xFF, 0xFE}, -2.0},
	{"uint32 ABCD", Point{Type: "uint32"}, []byte{0x12, 0x34, 0x56, 0x78}, 305419896.0},
	{"uint32 DCBA", Point{Type: "uint32", Order: "DCBA"}, []byte{0x78, 0x56, 0x34, 0x12}, 305419896.0},
	{"uint32 BADC", Point{Type: "uint32", Order: "BADC"}, []byte{0x34, 0x12, 0x78, 0x56}, 305419896.0},
	{"uint32 CDAB", Point{Type: "uint32", Order: "CDAB"}, []byte{0x56, 0x78, 0x12, 0x34}, 305419896.0},
	{"float32 ABCD", Point{Type: "float32"}, []byte{0x41, 0xBC, 0x00, 0x00}, 23.5},
	{"float32 CDAB", Point{Type: "float32", Order: "CDAB"}, []byte{0x00, 0x00, 0x41, 0xBC}, 23.5},
	{"int64 ABCD", Point{Type: "int64"}, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x9C}, -100.0},
	{"uint64 CDAB", Point{Type: "uint64", Order: "CDAB"}, []byte{0x00, 0x07, 0x00, 0x06, 0x00, 0x05, 0x00, 0x04}, float64(0x0004000500060007)},
	{"uint64 DCBA", Point{Type: "uint64", Order: "DCBA"}, []byte{8, 7, 6, 5, 4, 3, 2, 0}, float64(0x0002030405060708)},
	{"float64", Point{Type: "float64"}, []byte{0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}, math.Pi},
	{"float64 BADC", Point{Type: "float64", Order: "BADC"}, []byte{0x09, 0x40, 0xFB, 0x21, 0x44, 0x54, 0x18, 0x2D}, math.Pi},
	{"scale and offset", Point{Type: "uint16", Scale: f(0.5), Offset: -40}, []byte{0x00, 0x64}, 10.0},
	{"bool bit 0", Point{Type: "bool", Bit: bit(0)}, []byte{0x00, 0x01}, true},
	{"bool bit 15", Point{Type: "bool", Bit: bit(15)}, []byte{0x80, 0x00}, true},
	{"bool bit 3 clear", Point{Type: "bool", Bit: bit(3)}, []byte{0xFF, 0xF7}, false},
	{"string", Point{Type: "string", Length: 3}, []byte("XY-MD\x00"), "XY-MD"},
	{"string BADC", Point{Type: "string", Length: 2, Order: "BADC"}, []byte("YXDM"), "XYMD"},
	{"string invalid UTF-8", Point{Type: "string", Length: 1}, []byte{0xFF, 0x41}, "\uFFFDA"},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			p.Name, p.Table = "x", tableHolding
			p.setDefaults()
			if err := p.validate(); err != nil {
				t.Fatalf("point invalid: %v", err)
			}
			got, err := decodeRegs(&p, tt.raw)
			if err != nil || got != tt.want {
				t.Fatalf("decode(%x) = %v, %v, want %v", tt.raw, got, err, tt.want)
			}
			if p.Type == "bool" || tt.name == "string invalid UTF-8" {
				return
			}
			// encode(decode(x)) == x, except strings padded differently.
			enc, err := encodeRegs(&p, got)
			if err != nil {
				t.Fatalf("encode(%v) = %v", got, err)
			}
			if p.Type != "string" && !bytes.Equal(enc, tt.raw) {
				t.Errorf("encode(%v) = %x, want %x", got, enc, tt.raw)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	types := []string{"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"}
	for _, tt := range decodeTests {
		ti := 0
		for i, ty := range types {
			if ty == tt.p.Type {
				ti = i
			}
		}
		oi := 0
		for i, o := range orders {
			if o == tt.p.Order {
				oi = i
			}
		}
		f.Add(tt.raw, uint8(ti), uint8(oi), uint8(len(tt.raw)/2))
	}
	f.Fuzz(func(t *testing.T, raw []byte, ti, oi, length uint8) {
		p := Point{Name: "x", Table: tableHolding, Type: types[int(ti)%len(types)], Order: orders[int(oi)%len(orders)]}
		if p.Type == "string" {
			p.Length = int(length%125) + 1
		}
		if p.Type == "bool" {
			p.Bit = bit(int(length % 16))
		}
		p.setDefaults()
		if err := p.validate(); err != nil {
			t.Fatalf("point %+v invalid: %v", p, err)
		}
		v, err := decodeRegs(&p, raw)
		if len(raw) != 2*p.regs() {
			if err == nil {
				t.Fatalf("decode of %d bytes for %d registers: no error", len(raw), p.regs())
			}
			return
		}
		if err != nil {
			t.Fatalf("decode(%x) = %v", raw, err)
		}
		switch p.Type {
		case "bool", "string", "float32", "float64", "int64", "uint64":
			return // no exact float64 round trip (NaN payloads, >2^53)
		}
		enc, err := encodeRegs(&p, v)
		if err != nil || !bytes.Equal(enc, raw) {
			t.Fatalf("encode(decode(%x) = %v) = %x, %v", raw, v, enc, err)
		}
	})
}

func TestPointValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Point
		want string // substring of the error, "" for none
	}{
		{"ok", Point{Name: "t", Table: tableInput, Address: 1, Type: "int16"}, ""},
		{"bad table", Point{Name: "t", Table: "register"}, "table:"},
		{"bad type", Point{Name: "t", Table: tableInput, Type: "int8"}, "type:"},
		{"bool in register without bit", Point{Name: "t", Table: tableHolding, Type: "bool"}, "bit:"},
		{"zero scale", Point{Name: "t", Table: tableInput, Scale: f(0)}, "scale: must not be 0"},
		{"writable input", Point{Name: "t", Table: tableInput, Writable: true}, "writable:"},
		{"bad order", Point{Name: "t", Table: tableInput, Type: "int32", Order: "ACBD"}, "order:"},
		{"address overflow", Point{Name: "t", Table: tableInput, Address: 65535, Type: "int32"}, "address:"},
		{"string without length", Point{Name: "t", Table: tableInput, Type: "string"}, "length:"},
		{"bad rule", Point{Name: "t", Table: tableInput, Rule: ruleMinMax(3, 1)}, "min:"},
	}
	for _, tt := range tests {
		p := tt.p
		p.setDefaults()
		err := p.validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: validate() = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want))):
			t.Errorf("%s: validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func ruleMinMax(lo, hi float64) (r poll.Rule) {
	r.Min, r.Max = &lo, &hi
	return r
}
