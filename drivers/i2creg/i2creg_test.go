package i2creg_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/edgegw/edgegw/drivers/i2creg"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

func f(v float64) *float64 { return &v }

// decodeTests is shared by TestDecode and the FuzzDecode seeds.
var decodeTests = []struct {
	name    string
	p       i2creg.Point
	in      []byte
	want    float64
	wantErr error
}{
	{"int8 negative", i2creg.Point{Type: "int8"}, []byte{0xFE}, -2, nil},
	{"uint8", i2creg.Point{Type: "uint8"}, []byte{0xFE}, 254, nil},
	{"int16 big", i2creg.Point{Type: "int16"}, []byte{0xFF, 0x38}, -200, nil},
	{"int16 little", i2creg.Point{Type: "int16", Order: "little"}, []byte{0x38, 0xFF}, -200, nil},
	{"uint16 big", i2creg.Point{Type: "uint16", Order: "big"}, []byte{0xFF, 0x38}, 65336, nil},
	{"int32 big", i2creg.Point{Type: "int32"}, []byte{0xFF, 0xFF, 0xFF, 0xFE}, -2, nil},
	{"uint32 little", i2creg.Point{Type: "uint32", Order: "little"}, []byte{0x01, 0x02, 0x03, 0x04}, 0x04030201, nil},
	// TMP102: 12-bit temperature left-aligned in a big-endian int16, 0.0625 °C per LSB.
	{"tmp102 25C", i2creg.Point{Type: "int16", Scale: f(0.0625 / 16)}, []byte{0x19, 0x00}, 25, nil},
	{"tmp102 -25C", i2creg.Point{Type: "int16", Scale: f(0.0625 / 16)}, []byte{0xE7, 0x00}, -25, nil},
	{"scale and offset", i2creg.Point{Type: "uint16", Scale: f(0.1), Offset: -40}, []byte{0x01, 0xF4}, 10, nil},
	{"trailing status byte", i2creg.Point{Type: "uint16", Length: 3}, []byte{0x12, 0x34, 0xAA}, 0x1234, nil},
	{"short", i2creg.Point{Type: "uint32"}, []byte{1, 2, 3}, 0, i2creg.ErrShort},
	{"empty", i2creg.Point{Type: "int8"}, nil, 0, i2creg.ErrShort},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := i2creg.Decode(tt.p, tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode(%x) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Decode(%x) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

var types = []string{"int8", "uint8", "int16", "uint16", "int32", "uint32"}

// encode is the inverse of Decode with scale 1 and offset 0.
func encode(p i2creg.Point, v float64) []byte {
	var order binary.ByteOrder = binary.BigEndian
	if p.Order == "little" {
		order = binary.LittleEndian
	}
	b := make([]byte, p.Width())
	switch p.Width() {
	case 1:
		b[0] = byte(int64(v))
	case 2:
		order.PutUint16(b, uint16(int64(v)))
	case 4:
		order.PutUint32(b, uint32(int64(v)))
	}
	return b
}

// FuzzDecode: Decode never panics, fails only on short input, and with
// scale 1 it is a bijection on the type's width: encode(Decode(b)) == b.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeTests {
		for i, typ := range types {
			if typ == tt.p.Type {
				f.Add(uint8(i), tt.p.Order == "little", tt.in)
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, little bool, in []byte) {
		p := i2creg.Point{Type: types[int(typ)%len(types)]}
		if little {
			p.Order = "little"
		}
		v, err := i2creg.Decode(p, in)
		if len(in) < p.Width() {
			if !errors.Is(err, i2creg.ErrShort) {
				t.Fatalf("Decode(%s, %x) = %v, %v; want ErrShort", p.Type, in, v, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%s, %x) = %v", p.Type, in, err)
		}
		if got := encode(p, v); !cmp.Equal(got, in[:p.Width()]) {
			t.Fatalf("encode(Decode(%s, %x) = %v) = %x", p.Type, in, v, got)
		}
	})
}

var ignoreTime = cmpopts.IgnoreFields(drivers.Reading{}, "Time")

// tmp102 is a TMP102-like device at 0x48: temperature in register 0, config
// in register 1.
var tmp102 = i2creg.Opts{Addr: 0x48, Points: []i2creg.Point{
	{Name: "temperature", Register: 0x00, Type: "int16", Scale: f(0.0625 / 16), Unit: "°C"},
	{Name: "config", Register: 0x01, Type: "uint16"},
}}

func runBus(t *testing.T, b *i2c.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestReadPlayback(t *testing.T) {
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x19, 0x00}},
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x60, 0xA0}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0xE7, 0x00}},
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x60, 0xA0}},
	}, DontPanic: true}
	b := i2c.New(pb, i2c.Config{})
	runBus(t, b)
	d, err := i2creg.New(b, "cabin_temp", tmp102)
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float64{25, -25} {
		got, err := d.Read(context.Background())
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		want := []drivers.Reading{
			{Device: "cabin_temp", Point: "temperature", Value: temp, Unit: "°C", Quality: drivers.Good},
			{Device: "cabin_temp", Point: "config", Value: float64(0x60A0), Quality: drivers.Good},
		}
		if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
			t.Errorf("Read mismatch (-want +got):\n%s", diff)
		}
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
}

func TestReadSimulator(t *testing.T) {
	sim := i2csim.NewBus("t")
	regs := &i2csim.Registers{}
	// The simulated register file has 8-bit registers: a 16-bit value
	// takes two addresses.
	regs.Set(0x00, 0x0C, 0x80) // 12.5 °C
	regs.Set(0x02, 0x60, 0xA0)
	sim.Attach(0x48, regs)
	b := i2c.New(sim, i2c.Config{Retries: 1})
	runBus(t, b)
	o := tmp102
	o.Points = []i2creg.Point{tmp102.Points[0], tmp102.Points[1]}
	o.Points[1].Register = 0x02
	d, err := i2creg.New(b, "cabin_temp", o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rs, err := d.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := []any{rs[0].Value, rs[1].Value}; !cmp.Equal(got, []any{12.5, float64(0x60A0)}) {
		t.Errorf("values = %v, want [12.5 24736]", got)
	}

	sim.FailNext(0x48, 1)
	if _, err := d.Read(ctx); err != nil {
		t.Errorf("Read with one glitch and a retry: %v", err)
	}

	sim.Detach(0x48)
	_, err = d.Read(ctx)
	if !errors.Is(err, i2csim.ErrNACK) || !strings.Contains(err.Error(), `i2c_register "cabin_temp": read temperature`) {
		t.Errorf("Read of absent device = %v, want a NACK naming device and point", err)
	}
}

func TestFactory(t *testing.T) {
	b := i2c.New(i2csim.NewBus("t"), i2c.Config{})
	decode := func(o i2creg.Opts) func(any) error {
		return func(v any) error { *v.(*i2creg.Opts) = o; return nil }
	}
	tests := []struct {
		name    string
		spec    drivers.Spec
		wantErr string
	}{
		{"ok", drivers.Spec{Name: "t", Bus: b, Decode: decode(tmp102)}, ""},
		{"wrong bus", drivers.Spec{Name: "t", Bus: 42}, "bus is int"},
		{"no points", drivers.Spec{Name: "t", Bus: b, Decode: decode(i2creg.Opts{Addr: 0x48})}, "points: at least one point"},
		{"bad points", drivers.Spec{Name: "t", Bus: b, Decode: decode(i2creg.Opts{Addr: 0x80, Points: []i2creg.Point{
			{Name: "a", Type: "float32"},
			{Name: "a", Type: "int16", Order: "middle", Length: 1, Scale: f(0)},
			{Type: "uint8", Offset: math.Inf(1), Rule: poll.Rule{MaxSilence: -time.Second}},
		}})}, `addr: 0x80 outside 0x08..0x77
points[0].type: "float32" is not int8, uint8, int16, uint16, int32 or uint32
points[1].name: "a" already used by points[0]
points[1].order: "middle" is not big or little
points[1].length: 1 outside 2..32
points[1].scale: must not be 0
points[2].name: must be set
points[2].offset: must be finite
points[2].max_silence: -1s must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := i2creg.Factory(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Factory = %v", err)
				}
				if d.Name() != "t" || d.Close() != nil {
					t.Errorf("Name() = %q, Close() = %v", d.Name(), d.Close())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Factory = %v, want error containing\n%s", err, tt.wantErr)
			}
		})
	}
}

func TestReadPointsAndRules(t *testing.T) {
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x60, 0xA0}},
	}, DontPanic: true}
	b := i2c.New(pb, i2c.Config{})
	runBus(t, b)
	o := tmp102
	o.Points = []i2creg.Point{tmp102.Points[0], tmp102.Points[1]}
	o.Points[1].Rule = poll.Rule{Interval: time.Hour}
	d, err := i2creg.New(b, "cabin_temp", o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadPoints(context.Background(), []string{"config"})
	if err != nil {
		t.Fatal(err)
	}
	want := []drivers.Reading{{Device: "cabin_temp", Point: "config", Value: float64(0x60A0), Quality: drivers.Good}}
	if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
		t.Errorf("ReadPoints(config) (-want +got):\n%s", diff)
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
	wantRules := map[string]poll.Rule{"temperature": {}, "config": {Interval: time.Hour}}
	if diff := cmp.Diff(wantRules, d.Rules()); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
}
