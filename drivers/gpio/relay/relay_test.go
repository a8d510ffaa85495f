package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"github.com/edgegw/edgegw/drivers/gpio/relay"
	pgpio "periph.io/x/conn/v3/gpio"
)

func newSim(t *testing.T) *gpiosim.Sim {
	t.Helper()
	s, err := gpiosim.Start(context.Background(), gpiosim.Opts{Pins: []gpiosim.PinOpts{{Name: "GPIO17"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSafeState checks the pin level at start, after commands and after
// Close, for each polarity and safe state.
func TestSafeState(t *testing.T) {
	tests := []struct {
		name      string
		opts      relay.Opts
		wantStart pgpio.Level // also after Close
		wantOn    pgpio.Level
	}{
		{"active high, safe off", relay.Opts{Pin: "GPIO17"}, pgpio.Low, pgpio.High},
		{"active low, safe off", relay.Opts{Pin: "GPIO17", ActiveLow: true}, pgpio.High, pgpio.Low},
		{"active low, safe on", relay.Opts{Pin: "GPIO17", ActiveLow: true, Safe: true}, pgpio.Low, pgpio.Low},
		{"active high, safe on", relay.Opts{Pin: "GPIO17", Safe: true}, pgpio.High, pgpio.High},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t)
			pin := s.Pin("GPIO17")
			pin.Drive(!tt.wantStart) // whatever the line floated at before
			d, err := relay.New(gpio.New(s.Pins(), gpio.Config{}), "heater", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !pin.IsOutput() || pin.Level() != tt.wantStart {
				t.Errorf("at start: output %v level %v; want output at %v", pin.IsOutput(), pin.Level(), tt.wantStart)
			}
			ctx := context.Background()
			if err := d.Set(ctx, drivers.Command{Command: "state", Value: true}); err != nil {
				t.Fatal(err)
			}
			if pin.Level() != tt.wantOn {
				t.Errorf("after on: level %v, want %v", pin.Level(), tt.wantOn)
			}
			if st, err := d.State(ctx, "state"); err != nil || st != true {
				t.Errorf("State = %v, %v; want true", st, err)
			}
			rs, err := d.Read(ctx)
			if err != nil || len(rs) != 1 || rs[0].Value != true || rs[0].Point != "state" {
				t.Errorf("Read = %+v, %v; want state true", rs, err)
			}
			if err := d.Set(ctx, drivers.Command{Command: "state", Value: false}); err != nil {
				t.Fatal(err)
			}
			if st, _ := d.State(ctx, "state"); st != false {
				t.Errorf("State after off = %v, want false", st)
			}
			if err := d.Set(ctx, drivers.Command{Command: "state", Value: true}); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if pin.Level() != tt.wantStart {
				t.Errorf("after Close: level %v, want safe %v", pin.Level(), tt.wantStart)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	s := newSim(t)
	d, err := relay.New(s.Pins(), "heater", relay.Opts{Pin: "GPIO17", Command: "heater"})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()
	past, cancelPast := context.WithDeadline(ctx, time.Now().Add(-time.Minute))
	defer cancelPast()
	tests := []struct {
		name string
		ctx  context.Context
		c    drivers.Command
		want error
	}{
		{"unknown command", ctx, drivers.Command{Command: "fan", Value: true}, relay.ErrCommand},
		{"not a bool", ctx, drivers.Command{Command: "heater", Value: 1.0}, relay.ErrCommand},
		{"expired", past, drivers.Command{Command: "heater", Value: true}, relay.ErrExpired},
		{"cancelled", cancelled, drivers.Command{Command: "heater", Value: true}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Set(tt.ctx, tt.c); !errors.Is(err, tt.want) {
				t.Errorf("Set(%+v) = %v, want %v", tt.c, err, tt.want)
			}
			if s.Pin("GPIO17").Level() != pgpio.Low {
				t.Error("a refused command moved the relay")
			}
		})
	}
	if _, err := d.State(ctx, "fan"); !errors.Is(err, relay.ErrCommand) {
		t.Errorf("State(fan) = %v, want ErrCommand", err)
	}
	future, cancelFuture := context.WithDeadline(ctx, time.Now().Add(time.Minute))
	defer cancelFuture()
	if err := d.Set(future, drivers.Command{Command: "heater", Value: true}); err != nil {
		t.Errorf("Set before deadline = %v", err)
	}
	if err := d.Set(future, drivers.Command{Command: "heater", Value: false, Verify: true}); err != nil || s.Pin("GPIO17").Level() != pgpio.Low {
		t.Errorf("Set with verify = %v, level %v, want nil and low", err, s.Pin("GPIO17").Level())
	}
}

func TestFactory(t *testing.T) {
	s := newSim(t)
	decode := func(o relay.Opts) func(any) error {
		return func(v any) error { *v.(*relay.Opts) = o; return nil }
	}
	tests := []struct {
		name    string
		spec    drivers.Spec
		wantErr string
	}{
		{"ok", drivers.Spec{Name: "heater", Bus: gpio.New(s.Pins(), gpio.Config{}), Decode: decode(relay.Opts{Pin: "GPIO17"})}, ""},
		{"sim pins", drivers.Spec{Name: "heater", Bus: s.Pins(), Decode: decode(relay.Opts{Pin: "GPIO17"})}, ""},
		{"wrong bus", drivers.Spec{Name: "heater", Bus: "i2c"}, "bus is string"},
		{"no pin", drivers.Spec{Name: "heater", Bus: s.Pins(), Decode: decode(relay.Opts{})}, "pin: must be set"},
		{"unknown pin", drivers.Spec{Name: "heater", Bus: s.Pins(), Decode: decode(relay.Opts{Pin: "GPIO5"})}, "no such pin"},
		{"decode", drivers.Spec{Name: "heater", Bus: s.Pins(), Decode: func(any) error { return errors.New("bad key") }}, "bad key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := relay.Factory(tt.spec)
			if tt.wantErr == "" {
				if err != nil || d.Name() != "heater" {
					t.Fatalf("Factory = %v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Factory = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
