package modbusdev

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/modbus"
	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/google/go-cmp/cmp"
)

var kinds = []string{modbustest.KindRTU, modbustest.KindTCP}

// setup starts a simulator of kind serving bank and a bus to it; both stop
// with the test. It returns the bus and a function that restarts the
// simulator (same bank, same address).
func setup(t *testing.T, kind string, bank *modbustest.Bank, cfg modbus.Config) (*modbus.Bus, func(stop bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim, err := modbustest.Start(ctx, modbustest.Opts{Kind: kind, Bank: bank, Static: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Type, cfg.Name = kind, "test"
	if kind == modbustest.KindRTU {
		cfg.Device, cfg.Baud = sim.Path(), 115200
	} else {
		cfg.Device = sim.Addr()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	if cfg.QuarantineAfter == 0 {
		cfg.QuarantineAfter = 1000
	}
	b, err := modbus.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		b.Close()
		sim.Close()
	})
	restart := func(stop bool) {
		sim.Close()
		if stop {
			return
		}
		sim, err = modbustest.Start(ctx, modbustest.Opts{Kind: kind, Bank: bank, Static: true, Listen: cfg.Device})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b, restart
}

func newBank(t *testing.T, models map[byte]string) *modbustest.Bank {
	t.Helper()
	bank := modbustest.NewBank()
	for id, m := range models {
		if err := bank.AddModel(id, m); err != nil {
			t.Fatal(err)
		}
	}
	return bank
}

func mustNew(t *testing.T, b *modbus.Bus, name string, o Opts) *Dev {
	t.Helper()
	d, err := New(b, name, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type val struct {
	V any
	Q drivers.Quality
}

func values(rs []drivers.Reading) map[string]val {
	m := make(map[string]val)
	for _, r := range rs {
		m[r.Point] = val{r.Value, r.Quality}
	}
	return m
}

func TestProfiles(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			bank := newBank(t, map[byte]string{1: modbustest.XYMD02, 2: modbustest.SeatModule, 3: modbustest.Relay8})
			bank.SetBit(2, modbustest.DiscreteInput, 0, true)
			b, _ := setup(t, kind, bank, modbus.Config{})
			ctx := t.Context()

			cabin := mustNew(t, b, "cabin", Opts{Slave: 1, Profile: "xy_md02"})
			rs, err := cabin.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]val{"temperature": {21.5, drivers.Good}, "humidity": {45.0, drivers.Good}}
			if diff := cmp.Diff(want, values(rs)); diff != "" {
				t.Errorf("xy_md02 (-want +got):\n%s", diff)
			}
			if rs[0].Unit != "%RH" && rs[0].Unit != "°C" {
				t.Errorf("unit %q", rs[0].Unit)
			}

			seat := mustNew(t, b, "seat", Opts{Slave: 2, Profile: "seat_module"})
			if err := seat.Set(ctx, drivers.Command{Command: "heater", Value: true}); err != nil {
				t.Fatal(err)
			}
			if v, err := seat.State(ctx, "heater_level"); err != nil || v != 3.0 {
				t.Errorf("heater_level after heater on = %v, %v, want 3", v, err)
			}
			if err := seat.Set(ctx, drivers.Command{Command: "heater_level", Value: 1.0}); err != nil {
				t.Fatal(err)
			}
			var ee *modbus.ExceptionError
			if err := seat.Set(ctx, drivers.Command{Command: "heater_level", Value: 9.0}); !errors.As(err, &ee) || ee.Code != modbus.IllegalDataValue {
				t.Errorf("heater_level 9: %v, want illegal data value", err)
			}
			if err := seat.Set(ctx, drivers.Command{Command: "seat_temperature", Value: 1.0}); err == nil {
				t.Error("writing a read-only point: no error")
			}
			expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			err = seat.Set(expired, drivers.Command{Command: "heater", Value: true})
			cancel()
			if err == nil {
				t.Error("expired command applied")
			}
			rs, err = seat.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want = map[string]val{"occupied": {true, drivers.Good}, "heater": {true, drivers.Good},
				"heater_level": {1.0, drivers.Good}, "seat_temperature": {22.0, drivers.Good}}
			if diff := cmp.Diff(want, values(rs)); diff != "" {
				t.Errorf("seat_module (-want +got):\n%s", diff)
			}

			relays := mustNew(t, b, "relays", Opts{Slave: 3, Profile: "relay8"})
			if err := relays.Set(ctx, drivers.Command{Command: "relay3", Value: 1.0}); err != nil {
				t.Fatal(err)
			}
			if on, _ := bank.Bit(3, modbustest.Coil, 2); !on {
				t.Error("relay3 set, coil 2 still off")
			}
		})
	}
}

func TestCoalesce(t *testing.T) {
	bank := modbustest.NewBank()
	bank.AddSlave(5)
	for a := uint16(10); a <= 13; a++ {
		bank.SetRegister(5, modbustest.HoldingRegister, a, a)
	}
	bank.SetRegister(5, modbustest.HoldingRegister, 20, 0x4142)
	bank.SetRegister(5, modbustest.HoldingRegister, 21, 0x4300)
	b, _ := setup(t, modbustest.KindTCP, bank, modbus.Config{})
	pts := []Point{
		{Name: "a", Table: tableHolding, Address: 10, Type: "uint32"},
		{Name: "b", Table: tableHolding, Address: 12},
		{Name: "c", Table: tableHolding, Address: 13, Type: "bool", Bit: bit(0)},
		{Name: "s", Table: tableHolding, Address: 20, Type: "string", Length: 2},
	}
	want := map[string]val{"a": {float64(10<<16 | 11), drivers.Good}, "b": {12.0, drivers.Good}, "c": {true, drivers.Good}, "s": {"ABC", drivers.Good}}
	tests := []struct {
		name    string
		maxGap  int
		perRead []int // requests per Read
	}{
		{"adjacent only", 0, []int{2, 2}},
		// 14..19 are unmapped: the slave refuses the coalesced read, so
		// the device falls back to one request per point, then reads
		// adjacent points together but no longer across the gap.
		{"gap refused", 8, []int{1 + 4, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, b, "d"+tt.name, Opts{Slave: 5, MaxGap: &tt.maxGap, Points: pts})
			for i, n := range tt.perRead {
				before := bank.Requests(5)
				rs, err := d.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, values(rs)); diff != "" {
					t.Errorf("read %d (-want +got):\n%s", i, diff)
				}
				if got := bank.Requests(5) - before; got != n {
					t.Errorf("read %d: %d requests, want %d", i, got, n)
				}
			}
		})
	}
	// Filling the gap makes one request.
	for a := uint16(14); a < 20; a++ {
		bank.SetRegister(5, modbustest.HoldingRegister, a, 0)
	}
	d := mustNew(t, b, "filled", Opts{Slave: 5, Points: pts})
	before := bank.Requests(5)
	if _, err := d.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := bank.Requests(5) - before; got != 1 {
		t.Errorf("%d requests across a readable gap, want 1", got)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   modbustest.Fault
		wantErr error           // from Read of the faulty slave, nil for none
		wantQ   drivers.Quality // of its readings when no error
		rtuOnly bool
	}{
		{name: "dead slave", fault: modbustest.Fault{Dead: true}, wantErr: modbus.ErrTimeout},
		{name: "late slave", fault: modbustest.Fault{Delay: 600 * time.Millisecond}, wantErr: modbus.ErrTimeout},
		{name: "line noise", fault: modbustest.Fault{Noise: 7}, wantQ: drivers.Good, rtuOnly: true},
		{name: "garbage", fault: modbustest.Fault{Garbage: true}, wantErr: errAny},
		{name: "exception", fault: modbustest.Fault{Exception: modbustest.ServerDeviceBusy}, wantQ: drivers.CommError},
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			bank := newBank(t, map[byte]string{1: modbustest.XYMD02, 2: modbustest.XYMD02})
			bank.SetRegister(2, modbustest.InputRegister, 1, 300)
			// A generous timeout: under load (-race, shared cores) a
			// good slave behind a late one still answers in time.
			b, _ := setup(t, kind, bank, modbus.Config{Timeout: 500 * time.Millisecond})
			bad := mustNew(t, b, "bad", Opts{Slave: 1, Profile: "xy_md02"})
			good := mustNew(t, b, "good", Opts{Slave: 2, Profile: "xy_md02"})
			for _, tt := range tests {
				if tt.rtuOnly && kind != modbustest.KindRTU {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					bank.SetFault(1, tt.fault)
					rs, err := bad.Read(t.Context())
					switch {
					case tt.wantErr == errAny && err == nil,
						tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr),
						tt.wantErr == nil && err != nil:
						t.Errorf("faulty Read = %v, want %v", err, tt.wantErr)
					case tt.wantErr == nil:
						for _, r := range rs {
							if r.Quality != tt.wantQ {
								t.Errorf("faulty reading %+v, want quality %s", r, tt.wantQ)
							}
						}
					}
					// The other slave on the bus reads fine right after
					// (stale or late input is not taken as its answer).
					for range 2 {
						rs, err = good.Read(t.Context())
						want := map[string]val{"temperature": {30.0, drivers.Good}, "humidity": {45.0, drivers.Good}}
						if diff := cmp.Diff(want, values(rs)); err != nil || diff != "" {
							t.Errorf("good Read = %v (-want +got):\n%s", err, diff)
						}
					}
					// Healed, the faulty slave answers again.
					bank.SetFault(1, modbustest.Fault{})
					if _, err := bad.Read(t.Context()); err != nil {
						t.Errorf("healed Read = %v", err)
					}
				})
			}
		})
	}
}

var errAny = errors.New("any error")

func TestTCPLinkRecovery(t *testing.T) {
	bank := newBank(t, map[byte]string{1: modbustest.XYMD02})
	b, restart := setup(t, modbustest.KindTCP, bank, modbus.Config{})
	d := mustNew(t, b, "cabin", Opts{Slave: 1, Profile: "xy_md02"})
	if _, err := d.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	restart(true)
	if _, err := d.Read(t.Context()); err == nil {
		t.Error("Read with the server down: no error")
	}
	restart(false)
	if _, err := d.Read(t.Context()); err != nil {
		t.Errorf("Read after the server came back = %v", err)
	}
}

func TestOutOfRangeThroughPoller(t *testing.T) {
	bank := newBank(t, map[byte]string{1: modbustest.XYMD02})
	bank.SetRegister(1, modbustest.InputRegister, 1, 2000) // 200.0 °C
	b, _ := setup(t, modbustest.KindRTU, bank, modbus.Config{})
	d := mustNew(t, b, "cabin", Opts{Slave: 1, Profile: "xy_md02"})
	var got []drivers.Reading
	p := poll.New(d, poll.Options{Emit: func(rs []drivers.Reading) { got = append(got, rs...) }})
	p.Poll(t.Context())
	q := map[string]drivers.Quality{}
	for _, r := range got {
		q[r.Point] = r.Quality
	}
	if diff := cmp.Diff(map[string]drivers.Quality{"temperature": drivers.OutOfRange, "humidity": drivers.Good}, q); diff != "" {
		t.Errorf("qualities (-want +got):\n%s", diff)
	}
}

func TestOptsErrors(t *testing.T) {
	bank := newBank(t, nil)
	b, _ := setup(t, modbustest.KindTCP, bank, modbus.Config{})
	_, err := New(b, "x", Opts{Slave: 300, Profile: "nope", Points: []Point{
		{Name: "a", Table: tableInput, Scale: f(0)},
		{Name: "b", Table: "register"},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"slave: 300", `profile: "nope"`, "points[0].scale: must not be 0", "points[1].table:"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Factory(drivers.Spec{Name: "x", Bus: "not a bus"}); err == nil {
		t.Error("Factory with a wrong bus: no error")
	}
	dev, err := Factory(drivers.Spec{Name: "x", Bus: b, Decode: func(v any) error {
		*(v.(*Opts)) = Opts{Slave: 1, Profile: "relay8"}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dev.(drivers.StateReader); !ok {
		t.Error("device is not a StateReader")
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

func TestRTUReplug(t *testing.T) {
	// The bus opens the by-id-like link; the adapter goes away and comes
	// back as another pty behind the same link.
	link := t.TempDir() + "/by-id/usb-RS485"
	bank := newBank(t, map[byte]string{1: modbustest.XYMD02})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sim, err := modbustest.Start(ctx, modbustest.Opts{Kind: modbustest.KindRTU, Bank: bank, Static: true, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	b, err := modbus.Open(modbus.Config{Name: "rs485", Type: modbus.RTU, Device: link, Timeout: 200 * time.Millisecond, QuarantineAfter: 1000})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	d := mustNew(t, b, "cabin", Opts{Slave: 1, Profile: "xy_md02"})
	if _, err := d.Read(ctx); err != nil {
		t.Fatal(err)
	}
	sim.Close() // unplugged
	if _, err := d.Read(ctx); err == nil {
		t.Error("Read with the adapter gone: no error")
	}
	sim, err = modbustest.Start(ctx, modbustest.Opts{Kind: modbustest.KindRTU, Bank: bank, Static: true, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var rerr error
	for range 3 { // the first request may find the old port's error
		if _, rerr = d.Read(ctx); rerr == nil {
			break
		}
	}
	if rerr != nil {
		t.Errorf("Read after replug = %v", rerr)
	}
}

func TestQuarantinedSlave(t *testing.T) {
	bank := newBank(t, map[byte]string{1: modbustest.XYMD02, 2: modbustest.XYMD02})
	bank.SetFault(2, modbustest.Fault{Dead: true})
	var mu sync.Mutex
	var changes []string
	b, _ := setup(t, modbustest.KindRTU, bank, modbus.Config{QuarantineAfter: 2, BackoffMin: time.Minute,
		OnChange: func(dev string, online bool) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, fmt.Sprint(dev, " ", online))
		}})
	dead := mustNew(t, b, "dead", Opts{Slave: 2, Profile: "xy_md02"})
	live := mustNew(t, b, "live", Opts{Slave: 1, Profile: "xy_md02"})
	for range 2 {
		if _, err := dead.Read(t.Context()); !errors.Is(err, modbus.ErrTimeout) {
			t.Fatalf("Read = %v, want ErrTimeout", err)
		}
	}
	before := bank.Requests(2)
	if _, err := dead.Read(t.Context()); !errors.Is(err, bus.ErrQuarantined) {
		t.Errorf("Read = %v, want ErrQuarantined", err)
	}
	if bank.Requests(2) != before {
		t.Error("a quarantined slave was asked")
	}
	if _, err := live.Read(t.Context()); err != nil {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"dead false"}, changes); diff != "" {
		t.Errorf("OnChange (-want +got):\n%s", diff)
	}
}
