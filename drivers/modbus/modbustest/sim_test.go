package modbustest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/modbus"
)

// open starts a simulator of kind with slaves and a bus to it; both stop
// with the test.
func open(t *testing.T, kind string, cfg modbus.Config, slaves ...SlaveOpts) (*Sim, *modbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim, err := Start(ctx, Opts{Kind: kind, Slaves: slaves, Static: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Type = kind
	cfg.Name = "test"
	if kind == KindRTU {
		cfg.Device = sim.Path()
		cfg.Baud = 115200
	} else {
		cfg.Device = sim.Addr()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	b, err := modbus.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		b.Close()
		sim.Close()
	})
	return sim, b
}

var kinds = []string{KindRTU, KindTCP}

func TestReadWrite(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			_, b := open(t, kind, modbus.Config{},
				SlaveOpts{ID: 1, Model: XYMD02}, SlaveOpts{ID: 2, Model: SeatModule, Occupied: true}, SlaveOpts{ID: 3, Model: Relay8})
			ctx := t.Context()
			regs, err := b.ReadInputRegisters(ctx, 1, bus.Poll, 1, 2)
			if err != nil || regs[0] != 215 || regs[1] != 450 {
				t.Errorf("ReadInputRegisters(1, 2) = %v, %v, want [215 450]", regs, err)
			}
			occ, err := b.ReadDiscreteInputs(ctx, 2, bus.Poll, 0, 1)
			if err != nil || !occ[0] {
				t.Errorf("ReadDiscreteInputs = %v, %v, want [true]", occ, err)
			}
			if err := b.WriteSingleRegister(ctx, 2, bus.Command, 0, 2); err != nil {
				t.Fatal(err)
			}
			coil, err := b.ReadCoils(ctx, 2, bus.Poll, 0, 1)
			if err != nil || !coil[0] {
				t.Errorf("heater coil after level 2 = %v, %v, want on", coil, err)
			}
			if err := b.WriteMultipleCoils(ctx, 3, bus.Command, 0, []bool{true, false, true, true, false, false, false, true}); err != nil {
				t.Fatal(err)
			}
			in, err := b.ReadDiscreteInputs(ctx, 3, bus.Poll, 0, 8)
			want := []bool{true, false, true, true, false, false, false, true}
			for i := range want {
				if err != nil || in[i] != want[i] {
					t.Fatalf("relay contacts = %v, %v, want %v", in, err, want)
				}
			}
			if err := b.WriteSingleCoil(ctx, 3, bus.Command, 1, true); err != nil {
				t.Fatal(err)
			}
			if err := b.WriteMultipleRegisters(ctx, 1, bus.Command, 0x0101, []uint16{1, 0}); err != nil {
				t.Fatal(err)
			}
			hr, err := b.ReadHoldingRegisters(ctx, 1, bus.Poll, 0x0101, 2)
			if err != nil || hr[0] != 1 || hr[1] != 0 {
				t.Errorf("ReadHoldingRegisters = %v, %v", hr, err)
			}
		})
	}
}

func TestExceptions(t *testing.T) {
	tests := []struct {
		name string
		do   func(context.Context, *modbus.Bus) error
		code byte
	}{
		{"unmapped address", func(ctx context.Context, b *modbus.Bus) error {
			_, err := b.ReadInputRegisters(ctx, 1, bus.Poll, 100, 1)
			return err
		}, modbus.IllegalDataAddress},
		{"heater level out of range", func(ctx context.Context, b *modbus.Bus) error {
			return b.WriteSingleRegister(ctx, 2, bus.Command, 0, 9)
		}, modbus.IllegalDataValue},
		{"busy", func(ctx context.Context, b *modbus.Bus) error {
			_, err := b.ReadInputRegisters(ctx, 4, bus.Poll, 1, 2)
			return err
		}, modbus.ServerDeviceBusy},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			sim, b := open(t, kind, modbus.Config{Retries: 2},
				SlaveOpts{ID: 1, Model: XYMD02}, SlaveOpts{ID: 2, Model: SeatModule}, SlaveOpts{ID: 4, Model: XYMD02})
			sim.Bank().SetFault(4, Fault{Exception: ServerDeviceBusy})
			for _, tt := range tests {
				err := tt.do(t.Context(), b)
				var ee *modbus.ExceptionError
				if !errors.As(err, &ee) || ee.Code != tt.code {
					t.Errorf("%s: err = %v, want exception %d", tt.name, err, tt.code)
				}
			}
		})
	}
}

func TestStartOpts(t *testing.T) {
	tests := []struct {
		name string
		o    Opts
		want string // substring of the error; "" for none
	}{
		{"rtu", Opts{Kind: KindRTU, Slaves: []SlaveOpts{{ID: 1, Model: XYMD02}}}, ""},
		{"tcp", Opts{Kind: KindTCP, Slaves: []SlaveOpts{{ID: 1, Model: Relay8}, {ID: 2, Model: Empty}}}, ""},
		{"bad kind", Opts{Kind: "modbus"}, "kind"},
		{"bad id", Opts{Kind: KindTCP, Slaves: []SlaveOpts{{ID: 0, Model: XYMD02}}}, "slaves[0].id"},
		{"bad model", Opts{Kind: KindTCP, Slaves: []SlaveOpts{{ID: 1, Model: "sht20"}}}, "slaves[0].model"},
		{"duplicate", Opts{Kind: KindTCP, Slaves: []SlaveOpts{{ID: 1, Model: XYMD02}, {ID: 1, Model: XYMD02}}}, "slaves[1].model"},
	}
	for _, tt := range tests {
		s, err := Start(t.Context(), tt.o)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Start = %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: Start = %v, want %q", tt.name, err, tt.want)
		}
		if err == nil {
			if (s.Path() == "") == (s.Addr() == "") {
				t.Errorf("%s: Path %q Addr %q: want exactly one", tt.name, s.Path(), s.Addr())
			}
			s.Close()
		}
	}
}

func TestModels(t *testing.T) {
	b := NewBank()
	b.AddModel(1, XYMD02)
	b.AddModel(2, SeatModule)
	// Heater at level 3 warms the seat towards 40 °C; off, it cools back.
	b.Handle(2, []byte{0x06, 0x00, 0x00, 0x00, 0x03})
	for i := range 300 {
		b.Step(time.Duration(i)*time.Second, time.Second)
	}
	if v, _ := b.Register(2, InputRegister, 0); v < 390 || v > 400 {
		t.Errorf("seat temperature after 5 min of heating = %d, want about 400", v)
	}
	// The simulated occupancy switch.
	b.Handle(2, []byte{0x06, 0x01, 0x00, 0x00, 0x01})
	if occ, _ := b.Bit(2, DiscreteInput, 0); !occ {
		t.Error("occupancy not set by holding register 0x0100")
	}
	if v, _ := b.Register(1, InputRegister, 1); int16(v) < 200 || int16(v) > 230 {
		t.Errorf("XY-MD02 temperature = %d, want 20.0..23.0 °C", int16(v))
	}
}

// TestLateAnswerDiscarded: a slave answers a read after its timeout; the
// next read of the same size at another address must not get that late
// answer.
func TestLateAnswerDiscarded(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			sim, b := open(t, kind, modbus.Config{Timeout: 200 * time.Millisecond, QuarantineAfter: 100}, SlaveOpts{ID: 1, Model: Empty})
			bank := sim.Bank()
			for a := uint16(1); a <= 4; a++ {
				bank.SetRegister(1, InputRegister, a, 100*a)
			}
			bank.SetFault(1, Fault{Delay: 250 * time.Millisecond})
			if _, err := b.ReadInputRegisters(t.Context(), 1, bus.Poll, 1, 2); !errors.Is(err, modbus.ErrTimeout) {
				t.Fatalf("late read = %v, want ErrTimeout", err)
			}
			bank.SetFault(1, Fault{})
			got, err := b.ReadInputRegisters(t.Context(), 1, bus.Poll, 3, 2)
			if err != nil || got[0] != 300 || got[1] != 400 {
				t.Errorf("next read = %v, %v, want [300 400] (not the late [100 200])", got, err)
			}
		})
	}
}
