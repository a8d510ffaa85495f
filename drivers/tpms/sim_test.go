//go:build linux

package tpms_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/serial"
	"github.com/edgegw/edgegw/drivers/tpms"
	"github.com/edgegw/edgegw/drivers/tpms/tpmssim"
)

// These tests run the real serial driver on a pty whose far end is the
// simulator (or socat). They wait for events with bounded deadlines.

const wait = 10 * time.Second

// clock is a settable time source for the simulator's leak.
type clock struct {
	// mu guards t.
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openPort(t *testing.T, path string) *serial.Port {
	t.Helper()
	p, err := serial.Open(serial.Config{
		Name: "tpms", Device: path, Baud: 19200,
		ReadTimeout: 50 * time.Millisecond, ReopenMin: 20 * time.Millisecond, ReopenMax: 200 * time.Millisecond,
		Timeout: 300 * time.Millisecond, Retries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func wheelOpts() tpms.Opts {
	return tpms.Opts{Wheels: tpmssim.Wheels(), StaleAfter: time.Minute, DedupWindow: 2 * time.Second}
}

// stream runs d.Stream until the test ends and returns its readings. Like
// the daemon, it calls Stream again after the line went down; restarts
// counts those calls.
func stream(t *testing.T, d *tpms.RTL433) (<-chan drivers.Reading, *atomic.Int64) {
	t.Helper()
	ch := make(chan drivers.Reading, 4096)
	var restarts atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			err := d.Stream(ctx, func(rs []drivers.Reading) {
				for _, r := range rs {
					select {
					case ch <- r:
					default: // a test that stopped listening
					}
				}
			})
			if ctx.Err() != nil || !errors.Is(err, serial.ErrOffline) {
				done <- err
				return
			}
			restarts.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Stream() = %v", err)
		}
	})
	return ch, &restarts
}

// until calls poke every 100ms until match has accepted a reading from ch,
// failing the test after the deadline.
func until(t *testing.T, ch <-chan drivers.Reading, poke func(), what string, match func(drivers.Reading) bool) drivers.Reading {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	if poke != nil {
		poke()
	}
	for {
		select {
		case r := <-ch:
			if match(r) {
				return r
			}
		case <-tick.C:
			if poke != nil {
				poke()
			}
		case <-deadline.C:
			t.Fatalf("no reading %s within %v", what, wait)
		}
	}
}

// eventually polls cond every 10ms until it holds, failing the test after
// the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, wait)
		}
		<-tick.C
	}
}

func point(name string, q drivers.Quality) func(drivers.Reading) bool {
	return func(r drivers.Reading) bool { return r.Point == name && r.Quality == q }
}

func startSim(t *testing.T, o tpmssim.Opts) (*tpmssim.Sim, string) {
	t.Helper()
	if o.Link == "" {
		o.Link = filepath.Join(t.TempDir(), "usb-rtl433-if00")
	}
	s, err := tpmssim.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, o.Link
}

func TestRTL433OnPTY(t *testing.T) {
	c := newClock()
	sim, link := startSim(t, tpmssim.Opts{Kind: tpmssim.KindRTL433, Manual: true, Now: c.now})
	port := openPort(t, link)
	d, err := tpms.NewRTL433(port, "tpms", wheelOpts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := stream(t, d)

	want := map[string]float64{"fl_pressure": 230, "fr_pressure": 230.5, "rl_pressure": 231, "rr_pressure": tpmssim.DefaultLeakStartKPa}
	got := map[string]float64{}
	until(t, ch, sim.Transmit, "from every wheel", func(r drivers.Reading) bool {
		if _, ok := want[r.Point]; ok && r.Quality == drivers.Good {
			got[r.Point] = r.Value.(float64)
		}
		return len(got) == len(want)
	})
	for p, v := range want {
		if math.Abs(got[p]-v) > 0.01 {
			t.Errorf("%s = %v kPa, want %v", p, got[p], v)
		}
	}
	// The neighbour and the weather station come after the wheels.
	eventually(t, "the neighbour, the weather station and the repeats counted", func() bool {
		s := d.Stats()
		return s.Unknown > 0 && s.NotTPMS > 0 && s.Duplicates > 0
	})

	t.Run("noise, truncated JSON and over-long lines", func(t *testing.T) {
		before := d.Stats()
		sim.Inject([]byte("\x00\xff\xfe garbage \x1b[0m\n"))
		sim.Inject([]byte(`{"time" : "2026-11-22 02:20:00", "model" : "Toyota", "type" : "TPMS", "id" : "1a2b3c01", "pres` + "\n"))
		sim.Inject([]byte(strings.Repeat("x", 3*tpms.MaxLine) + "\n"))
		c.add(time.Second) // new values: not a repeat
		until(t, ch, sim.Transmit, "after the garbage", point("rr_pressure", drivers.Good))
		if s := d.Stats(); s.Malformed < before.Malformed+2 || s.TooLong < before.TooLong+1 {
			t.Errorf("Stats() = %+v, before %+v: want 2 more malformed, 1 more too long", s, before)
		}
	})

	t.Run("sensor out of range", func(t *testing.T) {
		sim.SetPressure("fl", 5000)
		r := until(t, ch, sim.Transmit, "fl out of range", point("fl_pressure", drivers.OutOfRange))
		if r.Value != 5000.0 {
			t.Errorf("out-of-range reading %+v, want the value kept", r)
		}
	})

	t.Run("slow leak raises low pressure", func(t *testing.T) {
		c.add(70 * time.Second)
		r := until(t, ch, sim.Transmit, "rr_low_pressure", func(r drivers.Reading) bool { return r.Point == "rr_low_pressure" })
		if !r.Alarm || r.Value != true {
			t.Errorf("alarm reading %+v, want Alarm and Value true", r)
		}
	})
}

// TestRTL433Replug pulls the adapter and plugs it back under another pty
// name at the same link: the driver reconnects by itself.
func TestRTL433Replug(t *testing.T) {
	c := newClock()
	sim, link := startSim(t, tpmssim.Opts{Kind: tpmssim.KindRTL433, Manual: true, Now: c.now})
	port := openPort(t, link)
	d, err := tpms.NewRTL433(port, "tpms", wheelOpts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, restarts := stream(t, d)
	until(t, ch, sim.Transmit, "before the unplug", point("fl_pressure", drivers.Good))
	first, _ := os.Readlink(link)

	// rr leaks: with the clock moved on, its values are neither a repeat
	// nor a line still buffered from before (they only go down).
	last := tpmssim.DefaultLeakStartKPa
	newer := func(r drivers.Reading) bool {
		if r.Point != "rr_pressure" || r.Quality != drivers.Good || r.Value.(float64) >= last {
			return false
		}
		last = r.Value.(float64)
		return true
	}
	poke := func() { c.add(time.Second); sim.Transmit() }

	// Pulled out for a while: the driver sees the line go down and finds
	// no device until it is back.
	sim.Unplug()
	eventually(t, "offline after the unplug", func() bool { return !port.Online() })
	if err := sim.Replug(); err != nil {
		t.Fatal(err)
	}
	until(t, ch, poke, "after the replug", newer)

	// Replugged at once under another name (the old pty is still open
	// when the new one is made, so its number differs).
	first, _ = os.Readlink(link)
	if err := sim.Replug(); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.Readlink(link); first == second {
		t.Fatalf("replugged under the same name %s", first)
	}
	until(t, ch, poke, "after the move", newer)
	if s := port.Stats(); s.Losses != 2 || s.Opens != 3 {
		t.Errorf("port Stats() = %+v, want 2 losses and 3 opens", s)
	}
	if n := restarts.Load(); n < 2 {
		t.Errorf("Stream returned ErrOffline %d times, want at least once per loss", n)
	}
}

// TestRTL433Stale: wheels silent for stale_after are reported stale; one
// never heard has no value, one heard before keeps its last value.
func TestRTL433Stale(t *testing.T) {
	c := newClock()
	sim, link := startSim(t, tpmssim.Opts{Kind: tpmssim.KindRTL433, Manual: true, Now: c.now, Repeats: 1})
	sim.Silence("rl", true)
	port := openPort(t, link)
	o := wheelOpts()
	o.StaleAfter, o.DedupWindow = 500*time.Millisecond, 10*time.Millisecond
	d, err := tpms.NewRTL433(port, "tpms", o, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := stream(t, d)
	r := until(t, ch, sim.Transmit, "rl stale", point("rl_pressure", drivers.Stale))
	if r.Value != nil {
		t.Errorf("never-heard wheel stale with value %v, want none", r.Value)
	}
	sim.Silence("fl", true)
	r = until(t, ch, sim.Transmit, "fl stale", point("fl_pressure", drivers.Stale))
	if r.Value != 230.0 {
		t.Errorf("stale fl = %v, want its last value 230", r.Value)
	}
	sim.Silence("fl", false)
	until(t, ch, sim.Transmit, "fl good again", point("fl_pressure", drivers.Good))
}

func TestModuleOnPTY(t *testing.T) {
	c := newClock()
	sim, link := startSim(t, tpmssim.Opts{Kind: tpmssim.KindModule, Now: c.now})
	port := openPort(t, link)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- port.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	d, err := tpms.NewModule(port, "tpms", wheelOpts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func() map[string]drivers.Reading {
		t.Helper()
		rs, err := d.Read(ctx)
		if err != nil {
			t.Fatalf("Read() = %v", err)
		}
		m := map[string]drivers.Reading{}
		for _, r := range rs {
			m[r.Point] = r
		}
		return m
	}
	rs := read()
	for p, want := range map[string]float64{"fl_pressure": 230, "fr_pressure": 230.5, "rl_pressure": 231, "rr_pressure": tpmssim.DefaultLeakStartKPa, "rr_temperature": 23} {
		if r := rs[p]; r.Quality != drivers.Good || r.Value != want {
			t.Errorf("%s = %+v, want %v good", p, r, want)
		}
	}
	if r := rs["fl_battery_ok"]; r.Value != true {
		t.Errorf("fl_battery_ok = %+v", r)
	}

	faults := []struct {
		name string
		f    tpmssim.Fault
		n    int
		err  error // nil: the read succeeds (noise, or one retry)
	}{
		{"noise before the frame", tpmssim.FaultNoise, 2, nil},
		{"one bad checksum, retried", tpmssim.FaultChecksum, 1, nil},
		{"bad checksum twice", tpmssim.FaultChecksum, 2, tpms.ErrChecksum},
		{"truncated frame", tpmssim.FaultTruncated, 2, serial.ErrNoReply},
		{"silent", tpmssim.FaultSilent, 2, serial.ErrNoReply},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			sim.SetFault(f.f, f.n)
			defer sim.SetFault(tpmssim.FaultNone, 0)
			_, err := d.Read(ctx)
			if f.err == nil && err != nil || f.err != nil && !errors.Is(err, f.err) {
				t.Errorf("Read() = %v, want %v", err, f.err)
			}
			sim.SetFault(tpmssim.FaultNone, 0)
			read() // a good read between faults keeps the device out of quarantine
		})
	}
	if s := d.Stats(); s.Checksum != 3 {
		t.Errorf("Stats().Checksum = %d, want 3", s.Checksum)
	}

	t.Run("sensor out of range", func(t *testing.T) {
		sim.SetPressure("fr", 1500)
		c.add(10 * time.Second) // a new transmission
		if r := read()["fr_pressure"]; r.Quality != drivers.OutOfRange {
			t.Errorf("fr_pressure = %+v, want out_of_range", r)
		}
	})

	t.Run("slow leak raises low pressure", func(t *testing.T) {
		c.add(70 * time.Second)
		r := read()["rr_low_pressure"]
		if !r.Alarm || r.Value != true {
			t.Errorf("rr_low_pressure = %+v, want a raised alarm", r)
		}
	})

	t.Run("unplug and replug", func(t *testing.T) {
		sim.Unplug()
		if _, err := d.Read(ctx); err == nil {
			t.Fatal("Read() on an unplugged line succeeded")
		}
		if err := sim.Replug(); err != nil {
			t.Fatal(err)
		}
		// The scheduler may hold the device in quarantine for a while.
		deadline := time.Now().Add(wait)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			_, err := d.Read(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no successful Read within %v of the replug: %v", wait, err)
			}
			<-tick.C
		}
	})
}

// TestRTL433Socat proves the driver against an independent pty producer:
// socat relays what the test writes on one pty to the other, which the
// driver opens.
func TestRTL433Socat(t *testing.T) {
	bin := lookPath(t, "socat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := socatPair(t, ctx, bin)

	port := openPort(t, b)
	d, err := tpms.NewRTL433(port, "tpms", wheelOpts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := stream(t, d)
	w, err := os.OpenFile(a, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	n := 0
	write := func() {
		n++ // change the value each time so no copy is a repeat
		fmt.Fprintf(w, "noise\n{\"time\" : \"2026-11-22 02:20:00\", \"model\" : \"Toyota\", \"type\" : \"TPMS\", \"id\" : \"%s\", \"status\" : 128, \"pressure_PSI\" : %d.000, \"temperature_C\" : 21.000, \"mic\" : \"CRC\"}\n",
			tpmssim.IDs["fl"], 30+n%5)
	}
	r := until(t, ch, write, "through socat", point("fl_pressure", drivers.Good))
	if v := r.Value.(float64); v < 30*6.89 || v > 35*6.9 {
		t.Errorf("fl_pressure = %v kPa, want 30..34 PSI in kPa", v)
	}
	eventually(t, "noise lines counted", func() bool { return d.Stats().Malformed > 0 })
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skipf("-short: not running %s", name)
	}
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if ci {
		t.Fatalf("%s not found (CI=true: the test script must install it)", name)
	}
	t.Skipf("%s not found", name)
	return ""
}
