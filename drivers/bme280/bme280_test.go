package bme280_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

var ignoreTime = cmpopts.IgnoreFields(drivers.Reading{}, "Time")

func reading(point string, v float64, unit string, q drivers.Quality) drivers.Reading {
	return drivers.Reading{Device: "cabin", Point: point, Value: v, Unit: unit, Quality: q}
}

func concat(ios ...[]i2ctest.IO) []i2ctest.IO {
	var out []i2ctest.IO
	for _, io := range ios {
		out = append(out, io...)
	}
	return out
}

func TestReadPlayback(t *testing.T) {
	tests := []struct {
		name string
		opts bme280.Opts
		ops  []i2ctest.IO
		want [][]drivers.Reading // per Read
	}{
		{
			name: "two reads",
			ops:  concat(initIO, senseIO, senseIO),
			want: [][]drivers.Reading{
				{
					reading("temperature", 23.4, "°C", drivers.Good),
					reading("humidity", 51.2, "%RH", drivers.Good),
					reading("pressure", 99.87, "kPa", drivers.Good),
				},
				{
					reading("temperature", 23.4, "°C", drivers.Good),
					reading("humidity", 51.2, "%RH", drivers.Good),
					reading("pressure", 99.87, "kPa", drivers.Good),
				},
			},
		},
		{
			name: "out of range",
			opts: bme280.Opts{Points: []bme280.Point{{Name: "temperature"}}},
			ops:  concat(initIO, hotIO),
			want: [][]drivers.Reading{{reading("temperature", 100, "°C", drivers.OutOfRange)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := &i2ctest.Playback{Ops: tt.ops, DontPanic: true}
			b := i2c.New(pb, i2c.Config{})
			runBus(t, b)
			d, err := bme280.New(b, "cabin", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				got, err := d.Read(context.Background())
				if err != nil {
					t.Fatalf("Read #%d: %v", i, err)
				}
				if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
					t.Errorf("Read #%d mismatch (-want +got):\n%s", i, diff)
				}
			}
			if err := pb.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// newSim returns a BME280 simulator on a scheduled bus with retries.
func newSim(t *testing.T, c i2c.Config) (*i2csim.Bus, *i2csim.BME280, *bme280.Dev) {
	t.Helper()
	sim := i2csim.NewBus("t")
	chip := i2csim.NewBME280(i2csim.Env{Temperature: 21.5, Humidity: 40, Pressure: 101.3})
	sim.Attach(0x77, chip)
	b := i2c.New(sim, c)
	runBus(t, b)
	d, err := bme280.New(b, "cabin", bme280.Opts{Addr: 0x77, Oversampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	return sim, chip, d
}

func values(t *testing.T, rs []drivers.Reading) map[string]float64 {
	t.Helper()
	m := make(map[string]float64)
	for _, r := range rs {
		m[r.Point] = r.Value.(float64)
	}
	return m
}

func TestReadSimulator(t *testing.T) {
	_, chip, d := newSim(t, i2c.Config{})
	ctx := context.Background()
	approx := cmpopts.EquateApprox(0, 0.011)
	for _, env := range []i2csim.Env{
		{Temperature: 21.5, Humidity: 40, Pressure: 101.3},
		{Temperature: -5.25, Humidity: 88.5, Pressure: 85},
	} {
		chip.SetEnv(env)
		rs, err := d.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		want := map[string]float64{"temperature": env.Temperature, "humidity": env.Humidity, "pressure": env.Pressure}
		if diff := cmp.Diff(want, values(t, rs), approx); diff != "" {
			t.Errorf("Read at %+v (-want +got):\n%s", env, diff)
		}
		for _, r := range rs {
			if r.Quality != drivers.Good || r.Time.IsZero() || r.Time.Location() != time.UTC {
				t.Errorf("reading %+v: want good quality and a UTC time", r)
			}
		}
	}
}

// TestFaults covers an absent device, a glitch that a retry hides and a
// device that comes back (it is initialised again).
func TestFaults(t *testing.T) {
	sim, chip, d := newSim(t, i2c.Config{Retries: 1})
	ctx := context.Background()

	sim.FailNext(0x77, 1) // one glitch: the retry hides it
	if _, err := d.Read(ctx); err != nil {
		t.Fatalf("Read with one glitch and a retry: %v", err)
	}

	sim.Detach(0x77)
	_, err := d.Read(ctx)
	if !errors.Is(err, i2csim.ErrNACK) {
		t.Fatalf("Read of absent device = %v, want ErrNACK in the chain", err)
	}
	if !strings.Contains(err.Error(), `bme280 "cabin"`) {
		t.Errorf("error %q does not name the device", err)
	}

	// Power-cycled chip: registers back to reset values.
	fresh := i2csim.NewBME280(i2csim.Env{Temperature: 30, Humidity: 20, Pressure: 100})
	sim.Attach(0x77, fresh)
	rs, err := d.Read(ctx)
	if err != nil {
		t.Fatalf("Read after the device came back: %v", err)
	}
	if got := values(t, rs); math.Abs(got["humidity"]-20) > 0.02 {
		t.Errorf("humidity after re-init = %v, want 20 (configuration restored)", got["humidity"])
	}
	_ = chip
}

func TestQuarantine(t *testing.T) {
	sim, _, d := newSim(t, i2c.Config{})
	sim.Detach(0x77)
	ctx := context.Background()
	var err error
	for range 4 {
		_, err = d.Read(ctx)
	}
	if !errors.Is(err, bus.ErrQuarantined) {
		t.Fatalf("fourth Read of an absent device = %v, want ErrQuarantined", err)
	}
}

// stuck is a chip whose status register always shows a conversion running.
type stuck struct{ *i2csim.BME280 }

func (s stuck) Tx(w, r []byte) error {
	if len(w) == 1 && w[0] == 0xF3 && len(r) == 1 {
		r[0] = 0x08
		return nil
	}
	return s.BME280.Tx(w, r)
}

func TestBusyChip(t *testing.T) {
	sim, chip, d := newSim(t, i2c.Config{})
	sim.Attach(0x77, stuck{chip})
	if _, err := d.Read(context.Background()); !errors.Is(err, bme280.ErrBusy) {
		t.Fatalf("Read of a stuck chip = %v, want ErrBusy", err)
	}
}

func TestCancelledRead(t *testing.T) {
	_, _, d := newSim(t, i2c.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestFactory(t *testing.T) {
	b := i2c.New(i2csim.NewBus("t"), i2c.Config{})
	decode := func(o bme280.Opts) func(any) error {
		return func(v any) error { *v.(*bme280.Opts) = o; return nil }
	}
	tests := []struct {
		name    string
		spec    drivers.Spec
		wantErr string
	}{
		{"defaults", drivers.Spec{Name: "cabin", Bus: b, Decode: decode(bme280.Opts{})}, ""},
		{"wrong bus", drivers.Spec{Name: "cabin", Bus: "rs485"}, "bus is string"},
		{"decode error", drivers.Spec{Name: "cabin", Bus: b, Decode: func(any) error { return errors.New("unknown key") }}, "unknown key"},
		{"bad options", drivers.Spec{Name: "cabin", Bus: b, Decode: decode(bme280.Opts{
			Addr: 0x40, Oversampling: 3,
			Points: []bme280.Point{{Name: "temperature"}, {Name: "co2"}, {Name: "temperature"},
				{Name: "pressure", Rule: poll.Rule{Deadband: -1, Interval: -time.Second}}},
		})}, `addr: 0x40 is not 0x76 or 0x77
oversampling: 3 is not 1, 2, 4, 8 or 16
points[1].name: "co2" is not temperature, humidity or pressure
points[2].name: "temperature" listed twice
points[3].interval: -1s must not be negative
points[3].deadband: -1 must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := bme280.Factory(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Factory = %v", err)
				}
				if d.Name() != "cabin" {
					t.Errorf("Name() = %q", d.Name())
				}
				if err := d.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Factory = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzRead feeds arbitrary chip answers (chip id, calibration, data) to a
// Read: it must never panic, and readings must be finite.
func FuzzRead(f *testing.F) {
	flat := func(ios []i2ctest.IO) []byte {
		var b []byte
		for _, io := range ios {
			b = append(b, io.R...)
		}
		return b
	}
	f.Add(flat(concat(initIO, senseIO)))
	f.Add(flat(concat(initIO, hotIO)))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, data []byte) {
		dev := &replay{data: data}
		b := i2c.New(dev, i2c.Config{})
		runBus(t, b)
		d, err := bme280.New(b, "cabin", bme280.Opts{})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := d.Read(context.Background())
		if err != nil {
			return
		}
		for _, r := range rs {
			v := r.Value.(float64)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("reading %+v is not finite", r)
			}
		}
	})
}

// replay answers every read with the next bytes of data (zeros once used up).
type replay struct{ data []byte }

func (r *replay) String() string                  { return "replay" }
func (r *replay) SetSpeed(physic.Frequency) error { return nil }
func (r *replay) Tx(_ uint16, _, rd []byte) error {
	n := copy(rd, r.data)
	clear(rd[n:])
	r.data = r.data[n:]
	return nil
}

func TestRules(t *testing.T) {
	b := i2c.New(i2csim.NewBus("t"), i2c.Config{})
	lo, hi := -20.0, 60.0
	d, err := bme280.New(b, "cabin", bme280.Opts{Points: []bme280.Point{
		{Name: "temperature", Rule: poll.Rule{Deadband: 0.2, Min: &lo, Max: &hi}},
		{Name: "pressure", Rule: poll.Rule{MaxSilence: 5 * time.Minute}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]poll.Rule{
		"temperature": {Deadband: 0.2, Min: &lo, Max: &hi},
		"pressure":    {MaxSilence: 5 * time.Minute},
	}
	if diff := cmp.Diff(want, d.Rules()); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
}

// bmp280 answers like a BMP280: the same registers without humidity.
type bmp280 struct{ *i2csim.BME280 }

func (c bmp280) Tx(w, r []byte) error {
	if len(w) == 1 && w[0] == 0xD0 && len(r) == 1 {
		r[0] = 0x58
		return nil
	}
	return c.BME280.Tx(w, r)
}

func TestBMP280(t *testing.T) {
	sim := i2csim.NewBus("t")
	sim.Attach(0x76, bmp280{i2csim.NewBME280(i2csim.Env{Temperature: 20, Pressure: 100})})
	b := i2c.New(sim, i2c.Config{})
	runBus(t, b)
	d, err := bme280.New(b, "cabin", bme280.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); !errors.Is(err, bme280.ErrNoHumidity) || !strings.Contains(err.Error(), "BMP280") {
		t.Errorf("Read of a BMP280 with humidity configured = %v, want ErrNoHumidity naming the chip", err)
	}
	d, err = bme280.New(b, "cabin", bme280.Opts{Points: []bme280.Point{{Name: "temperature"}, {Name: "pressure"}}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatalf("Read of a BMP280 for temperature and pressure: %v", err)
	}
	if diff := cmp.Diff(map[string]float64{"temperature": 20, "pressure": 100}, values(t, rs), cmpopts.EquateApprox(0, 0.011)); diff != "" {
		t.Errorf("BMP280 values (-want +got):\n%s", diff)
	}
}
