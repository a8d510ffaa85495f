package i2csim_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// TestBME280Bmxx80 checks that periph's bmxx80 driver, an independent
// implementation of the datasheet, decodes the values the model targets.
func TestBME280Bmxx80(t *testing.T) {
	tests := []struct {
		name string
		env  i2csim.Env
	}{
		{"room", i2csim.Env{Temperature: 21.5, Humidity: 45, Pressure: 101.325}},
		{"cold high", i2csim.Env{Temperature: -20, Humidity: 80, Pressure: 70}},
		{"hot dry", i2csim.Env{Temperature: 60, Humidity: 5, Pressure: 95}},
		{"freezing", i2csim.Env{Temperature: 0, Humidity: 0, Pressure: 101}},
		{"saturated", i2csim.Env{Temperature: 30, Humidity: 100, Pressure: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := i2csim.NewBus("t")
			b.Attach(0x76, i2csim.NewBME280(tt.env))
			d, err := bmxx80.NewI2C(b, 0x76, &bmxx80.DefaultOpts)
			if err != nil {
				t.Fatalf("NewI2C: %v", err)
			}
			var e physic.Env
			if err := d.Sense(&e); err != nil {
				t.Fatalf("Sense: %v", err)
			}
			got := i2csim.Env{
				Temperature: e.Temperature.Celsius(),
				Humidity:    float64(e.Humidity) / float64(physic.PercentRH),
				Pressure:    float64(e.Pressure) / float64(physic.KiloPascal),
			}
			approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 0.02 })
			if diff := cmp.Diff(tt.env, got, approx); diff != "" {
				t.Errorf("Sense() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNACK(t *testing.T) {
	b := i2csim.NewBus("t")
	err := b.Tx(0x40, []byte{0}, make([]byte, 1))
	if !errors.Is(err, i2csim.ErrNACK) {
		t.Fatalf("Tx to empty address = %v, want ErrNACK", err)
	}
	b.Attach(0x40, &i2csim.Registers{})
	if err := b.Tx(0x40, []byte{0}, make([]byte, 1)); err != nil {
		t.Fatalf("Tx = %v", err)
	}
	b.FailNext(0x40, 1)
	if err := b.Tx(0x40, []byte{0}, nil); !errors.Is(err, i2csim.ErrInjected) {
		t.Fatalf("Tx after FailNext = %v, want ErrInjected", err)
	}
	b.Detach(0x40)
	if err := b.Tx(0x40, []byte{0}, nil); !errors.Is(err, i2csim.ErrNACK) {
		t.Fatalf("Tx after Detach = %v, want ErrNACK", err)
	}
}

func TestRegisters(t *testing.T) {
	var d i2csim.Registers
	d.Set(0xFE, 1, 2, 3) // wraps to 0x00
	r := make([]byte, 3)
	if err := d.Tx([]byte{0xFE}, r); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]byte{1, 2, 3}, r); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	if err := d.Tx([]byte{0x10, 0xAA, 0xBB}, nil); err != nil {
		t.Fatal(err)
	}
	if got := d.Get(0x10, 2); !cmp.Equal(got, []byte{0xAA, 0xBB}) {
		t.Errorf("Get(0x10, 2) = %x, want aabb", got)
	}
}

func TestStart(t *testing.T) {
	s, err := i2csim.Start(context.Background(), i2csim.Opts{Devices: []i2csim.DeviceOpts{
		{Model: "bme280", Addr: 0x77, Temperature: 10},
		{Model: "registers", Addr: 0x48, Registers: []i2csim.RegisterOpts{{Register: 0, Data: "0c80"}}},
	}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	r := make([]byte, 2)
	if err := s.Bus().Tx(0x48, []byte{0}, r); err != nil || !cmp.Equal(r, []byte{0x0c, 0x80}) {
		t.Errorf("register read = %x, %v; want 0c80", r, err)
	}
	d, err := bmxx80.NewI2C(s.Bus(), 0x77, &bmxx80.DefaultOpts)
	if err != nil {
		t.Fatalf("NewI2C: %v", err)
	}
	var e physic.Env
	if err := d.Sense(&e); err != nil {
		t.Fatalf("Sense: %v", err)
	}
	if c := e.Temperature.Celsius(); math.Abs(c-10) > 0.02 {
		t.Errorf("temperature = %v °C, want 10", c)
	}
	if p := float64(e.Pressure) / float64(physic.KiloPascal); math.Abs(p-101.325) > 0.02 {
		t.Errorf("pressure = %v kPa, want default 101.325", p)
	}
}

func TestValidate(t *testing.T) {
	o := i2csim.Opts{Devices: []i2csim.DeviceOpts{
		{Model: "bme280", Addr: 0x76},
		{Model: "bme280", Addr: 0x76},
		{Model: "sht4x", Addr: 0x03},
		{Model: "registers", Addr: 0x40, Registers: []i2csim.RegisterOpts{{Data: "zz"}}},
	}}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{
		"devices[1].addr: 0x76 already used by devices[0]",
		"devices[2].addr: 0x03 outside 0x08..0x77",
		`devices[2].model: "sht4x"`,
		"devices[3].registers[0].data",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
}
