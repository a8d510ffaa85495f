package tpms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/serial"
)

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

func testOpts() Opts {
	return Opts{
		Wheels:      map[string]string{"1a2b3c01": "fl", "0x1A2B3C04": "rr"},
		StaleAfter:  time.Minute,
		DedupWindow: 2 * time.Second,
		LeakWindow:  time.Minute,
	}
}

// brief renders readings compactly: point=value/quality, alarms with "!".
func brief(rs []drivers.Reading) []string {
	var out []string
	for _, r := range rs {
		s := fmt.Sprintf("%s=%v", r.Point, r.Value)
		if r.Alarm {
			s = "!" + s
		}
		if r.Quality != drivers.Good {
			s += "/" + string(r.Quality)
		}
		out = append(out, s)
	}
	return out
}

func TestTracker(t *testing.T) {
	msg := func(id uint64, kpa float64) Message {
		return Message{ID: id, PressureKPa: kpa, TemperatureC: 20, HasTemp: true}
	}
	const fl, rr = 0x1a2b3c01, 0x1a2b3c04
	type step struct {
		at   time.Duration // since t0
		m    Message
		want []string
	}
	tests := []struct {
		name  string
		steps []step
		stats Stats
	}{
		{
			name: "unknown sensor ignored",
			steps: []step{
				{0, msg(0xbadcafe, 230), nil},
				{time.Second, msg(fl, 230), []string{"fl_pressure=230", "fl_temperature=20"}},
			},
			stats: Stats{Accepted: 1, Unknown: 1},
		},
		{
			name: "repeats de-duplicated",
			steps: []step{
				{0, msg(fl, 230), []string{"fl_pressure=230", "fl_temperature=20"}},
				{100 * time.Millisecond, msg(fl, 230), nil},
				{200 * time.Millisecond, msg(fl, 230), nil},
				{300 * time.Millisecond, msg(rr, 230), []string{"rr_pressure=230", "rr_temperature=20"}},
				{1 * time.Second, msg(fl, 229), []string{"fl_pressure=229", "fl_temperature=20"}}, // new values
				{4 * time.Second, msg(fl, 229), []string{"fl_pressure=229", "fl_temperature=20"}}, // outside the window
				{-time.Minute, msg(fl, 300), nil},                                                 // older than the last one heard
			},
			stats: Stats{Accepted: 4, Duplicates: 3},
		},
		{
			name: "low pressure with hysteresis",
			steps: []step{
				{0, msg(rr, 190), []string{"rr_pressure=190", "rr_temperature=20"}},
				{time.Minute, msg(rr, 179.5), []string{"rr_pressure=179.5", "rr_temperature=20", "!rr_low_pressure=true"}},
				{2 * time.Minute, msg(rr, 183), []string{"rr_pressure=183", "rr_temperature=20"}},
				{3 * time.Minute, msg(rr, 185), []string{"rr_pressure=185", "rr_temperature=20", "!rr_low_pressure=false"}},
			},
			stats: Stats{Accepted: 4},
		},
		{
			name: "out of range takes no part in alarms",
			steps: []step{
				{0, msg(fl, 1500), []string{"fl_pressure=1500/out_of_range", "fl_temperature=20"}},
				{time.Minute, msg(fl, -3), []string{"fl_pressure=-3/out_of_range", "fl_temperature=20"}},
				{2 * time.Minute, Message{ID: fl, PressureKPa: 230, TemperatureC: 200, HasTemp: true}, []string{"fl_pressure=230", "fl_temperature=200/out_of_range"}},
				{3 * time.Minute, Message{ID: fl, PressureKPa: 100, Fault: true}, []string{"fl_pressure=100/out_of_range"}},
			},
			stats: Stats{Accepted: 4, OutOfRange: 4},
		},
		{
			name: "fast leak raised after 20s of samples and cleared",
			steps: []step{
				{0, msg(fl, 240), []string{"fl_pressure=240", "fl_temperature=20"}},
				{10 * time.Second, msg(fl, 235), []string{"fl_pressure=235", "fl_temperature=20"}},
				{20 * time.Second, msg(fl, 230), []string{"fl_pressure=230", "fl_temperature=20", "!fl_fast_leak=true"}}, // 30 kPa/min
				{30 * time.Second, msg(fl, 226), []string{"fl_pressure=226", "fl_temperature=20"}},
				// Pumped back up: the slope over the window turns.
				{40 * time.Second, msg(fl, 240), []string{"fl_pressure=240", "fl_temperature=20", "!fl_fast_leak=false"}},
				{50 * time.Second, msg(fl, 240.5), []string{"fl_pressure=240.5", "fl_temperature=20"}},
			},
			stats: Stats{Accepted: 6},
		},
		{
			name: "slow leak is not fast",
			steps: []step{
				{0, msg(fl, 240), []string{"fl_pressure=240", "fl_temperature=20"}},
				{20 * time.Second, msg(fl, 235), []string{"fl_pressure=235", "fl_temperature=20"}},
				{40 * time.Second, msg(fl, 230), []string{"fl_pressure=230", "fl_temperature=20"}}, // 15 kPa/min
			},
			stats: Stats{Accepted: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := newTracker("tpms", testOpts(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				points, alarms := tr.observe(t0.Add(s.at), s.m)
				got := brief(append(points, alarms...))
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("step %d: readings (-want +got):\n%s", i, diff)
				}
				for _, r := range append(points, alarms...) {
					if r.Device != "tpms" || !r.Time.Equal(t0.Add(s.at)) {
						t.Errorf("step %d: reading %+v: want device tpms, time %v", i, r, t0.Add(s.at))
					}
				}
			}
			if got := tr.c.stats(); got != tt.stats {
				t.Errorf("stats = %+v, want %+v", got, tt.stats)
			}
		})
	}
}

func TestOptsValidate(t *testing.T) {
	o := Opts{
		Wheels:         map[string]string{"zz": "fl", "01": "Front Left", "02": "rr", "0x2": "spare", "03": "rr"},
		LowPressureKPa: -1,
		StaleAfter:     time.Second,
		DedupWindow:    2 * time.Second,
	}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{
		`wheels.zz: tpms: sensor id "zz"`,
		`wheels.01: position "Front Left" must be lower_snake`,
		`wheels.03: position "rr" already taken by 02`,
		`wheels.0x2: same sensor id as the one at "rr"`,
		"low_pressure_kpa: -1 must not be negative",
		"dedup_window: 2s must be shorter than stale_after 1s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
		}
	}
	if err := (&Opts{}).Validate(); err == nil || !strings.Contains(err.Error(), "wheels: at least one") {
		t.Errorf("Validate() of empty Opts = %v", err)
	}
	if err := testOpts().Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// fakeLines delivers lines sent on ch; with none it times out like a
// serial read after timeout.
type fakeLines struct {
	ch      chan string
	timeout time.Duration
}

func (f *fakeLines) TooLong() int64 { return 0 }

func (f *fakeLines) ReadLine(ctx context.Context) ([]byte, error) {
	t := time.NewTimer(f.timeout)
	defer t.Stop()
	select {
	case l, ok := <-f.ch:
		if !ok {
			return nil, serial.ErrClosed
		}
		return []byte(l), nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func line(id string, kpa float64) string {
	return fmt.Sprintf(`{"model":"X","type":"TPMS","id":"%s","pressure_kPa":%g,"temperature_C":20}`, id, kpa)
}

// TestStreamStale: a wheel not heard within stale_after is reported stale
// once, with its last value; a wheel never heard, with no value; both go
// back to good when heard.
func TestStreamStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeLines{ch: make(chan string), timeout: 100 * time.Millisecond}
		d, err := newRTL433(src, "tpms", testOpts(), nil)
		if err != nil {
			t.Fatal(err)
		}
		type ev struct {
			at time.Duration
			rs []string
		}
		var got []ev
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- d.Stream(ctx, func(rs []drivers.Reading) {
				got = append(got, ev{time.Since(start).Round(100 * time.Millisecond), brief(rs)})
			})
		}()
		send := func(l string) { src.ch <- l; synctest.Wait() }
		send(line("1a2b3c01", 230))
		send("garbage")
		send(`{"type":"weather"}`)
		time.Sleep(40 * time.Second) // fake time inside the bubble
		send(line("1a2b3c01", 229))
		time.Sleep(90 * time.Second)
		send(line("1a2b3c04", 231))
		send(line("1a2b3c01", 228))
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Stream() = %v after cancel, want nil", err)
		}
		want := []ev{
			{0, []string{"fl_pressure=230", "fl_temperature=20"}},
			{40 * time.Second, []string{"fl_pressure=229", "fl_temperature=20"}},
			// rr never heard: stale one minute after the stream started.
			{time.Minute + 100*time.Millisecond, []string{"rr_pressure=<nil>/stale"}},
			{100*time.Second + 100*time.Millisecond, []string{"fl_pressure=229/stale", "fl_temperature=20/stale"}},
			{130 * time.Second, []string{"rr_pressure=231", "rr_temperature=20"}},
			{130 * time.Second, []string{"fl_pressure=228", "fl_temperature=20"}},
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(ev{})); diff != "" {
			t.Errorf("emitted (-want +got):\n%s", diff)
		}
		if s := d.Stats(); s.Malformed != 1 || s.NotTPMS != 1 || s.Accepted != 4 {
			t.Errorf("Stats() = %+v, want 1 malformed, 1 not TPMS, 4 accepted", s)
		}
	})
}

// errLines returns errs in turn, then ErrClosed.
type errLines struct{ errs []error }

func (e *errLines) TooLong() int64 { return 0 }

func (e *errLines) ReadLine(context.Context) ([]byte, error) {
	if len(e.errs) == 0 {
		return nil, serial.ErrClosed
	}
	err := e.errs[0]
	e.errs = e.errs[1:]
	return nil, err
}

// TestStreamFails: Stream returns when the line goes down or is closed, so
// that the caller reports the device offline and restarts it; an
// over-long line is only counted.
func TestStreamFails(t *testing.T) {
	tests := []struct {
		errs []error
		want error
	}{
		{[]error{fmt.Errorf("port: %w", serial.ErrOffline)}, serial.ErrOffline},
		{nil, serial.ErrClosed},
		{[]error{serial.ErrLineTooLong, serial.ErrLineTooLong}, serial.ErrClosed},
	}
	for _, tt := range tests {
		d, err := newRTL433(&errLines{tt.errs}, "tpms", testOpts(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Stream(context.Background(), func([]drivers.Reading) {}); !errors.Is(err, tt.want) {
			t.Errorf("Stream() after %v = %v, want %v", tt.errs, err, tt.want)
		}
	}
}

// fakeModule answers Exchange with frames built from wheels.
type fakeModule struct {
	wheels []Wheel
	raw    string // sent instead, if set
	err    error
}

func (f *fakeModule) Exchange(ctx context.Context, device string, pri bus.Priority, req []byte, fr serial.Frame) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	b := []byte(f.raw)
	if f.raw == "" {
		var err error
		if b, err = AppendFrame(nil, f.wheels); err != nil {
			return nil, err
		}
	}
	if fr.Check != nil {
		if err := fr.Check(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func TestModuleRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := &fakeModule{wheels: []Wheel{
			{Slot: 0, ID: 0x1a2b3c01, Pressure: 2300, TemperatureC: 21, Age: 5},
			{Slot: 1, ID: 0x1a2b3c04, Pressure: 1795, TemperatureC: 22, Status: LowBattery, Age: 0},
			{Slot: 2, ID: 0x0badcafe, Pressure: 2000, TemperatureC: 22, Age: 0}, // neighbour
		}}
		d, err := newModule(x, "tpms", testOpts(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		read := func() []string {
			t.Helper()
			rs, err := d.Read(ctx)
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			return brief(rs)
		}
		want := []string{
			"fl_pressure=230", "fl_temperature=21", "fl_battery_ok=true",
			"rr_pressure=179.5", "rr_temperature=22", "rr_battery_ok=false",
			"!rr_low_pressure=true",
		}
		if diff := cmp.Diff(want, read()); diff != "" {
			t.Errorf("first Read (-want +got):\n%s", diff)
		}
		// The same transmissions polled again: no new alarm.
		time.Sleep(5 * time.Second)
		x.wheels[0].Age += 5
		x.wheels[1].Age += 5
		if diff := cmp.Diff(want[:6], read()); diff != "" {
			t.Errorf("second Read (-want +got):\n%s", diff)
		}
		// fl not heard for over a minute: stale; rr lost its signal.
		time.Sleep(60 * time.Second)
		x.wheels[0].Age += 60
		x.wheels[1].Status |= NoSignal
		want = []string{
			"fl_pressure=230/stale", "fl_temperature=21/stale", "fl_battery_ok=true/stale",
			"rr_pressure=179.5/stale", "rr_temperature=22/stale", "rr_battery_ok=false/stale",
		}
		if diff := cmp.Diff(want, read()); diff != "" {
			t.Errorf("stale Read (-want +got):\n%s", diff)
		}
		if s := d.Stats(); s.Unknown != 3 || s.Accepted != 2 || s.Duplicates != 3 {
			t.Errorf("Stats() = %+v, want 3 unknown, 2 accepted, 3 duplicates", s)
		}

		x.raw = "$W0*00#"
		if _, err := d.Read(ctx); !errors.Is(err, ErrChecksum) {
			t.Errorf("Read of a bad checksum = %v, want ErrChecksum", err)
		}
		x.raw = "$E1*74#"
		if _, err := d.Read(ctx); !errors.Is(err, ErrRejected) {
			t.Errorf("Read of an error frame = %v, want ErrRejected", err)
		}
		x.raw, x.err = "", serial.ErrNoReply
		if _, err := d.Read(ctx); !errors.Is(err, serial.ErrNoReply) {
			t.Errorf("Read without reply = %v, want ErrNoReply", err)
		}
		if s := d.Stats(); s.Checksum != 1 {
			t.Errorf("Stats().Checksum = %d, want 1", s.Checksum)
		}
	})
}

func TestFactory(t *testing.T) {
	o := testOpts()
	decode := func(v any) error { *v.(*Opts) = o; return nil }
	if _, err := RTL433Factory(drivers.Spec{Name: "tpms", Bus: "not a port", Decode: decode}); err == nil || !strings.Contains(err.Error(), "want a serial bus") {
		t.Errorf("RTL433Factory with a wrong bus = %v", err)
	}
	p, err := serial.Open(serial.Config{Device: t.TempDir() + "/missing"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, f := range []drivers.Factory{RTL433Factory, ModuleFactory} {
		dev, err := f(drivers.Spec{Name: "tpms", Bus: p, Decode: decode})
		if err != nil {
			t.Fatalf("factory = %v", err)
		}
		if dev.Name() != "tpms" {
			t.Errorf("Name() = %q", dev.Name())
		}
		_, err = f(drivers.Spec{Name: "tpms", Bus: p, Decode: func(v any) error { return nil }})
		if err == nil || !strings.Contains(err.Error(), "wheels") {
			t.Errorf("factory without wheels = %v", err)
		}
	}
}
