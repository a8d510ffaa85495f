// Package tpmssim simulates TPMS receivers at the far end of a serial line,
// for tests and for the demo: a pseudo-terminal pair (serialtest.OpenPTY)
// whose slave side is linked at Opts.Link, where the real serial driver
// opens it like any /dev/serial/by-id link. No external program is needed.
//
// Kinds (the [[simulator]] kind):
//
//   - "tpms_rtl433": prints rtl_433 JSON lines (-F json) for four wheels
//     every Period, each transmission Repeats times as rtl_433 does, in the
//     field styles of four rtl_433 decoders (PSI, kPa, °F, integer and hex
//     ids, battery_ok and battery_mV), plus a neighbour's car sensor
//     (NeighbourID) and a weather station line (not TPMS). One wheel
//     (LeakWheel) loses LeakKPaPerMin from LeakStartKPa: with the defaults
//     it falls below tpms.DefaultLowPressureKPa within about a minute.
//   - "tpms_module": a receiver module answering "$W0#" with the four
//     wheels in the frame format of package tpms; the module hears each
//     wheel every Period.
//
// Sensor ids are fixed (IDs, Wheels) so that a configuration can name them.
package tpmssim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/drivers/serial/serialtest"
	"github.com/edgegw/edgegw/drivers/tpms"
)

// Simulator kinds.
const (
	KindRTL433 = "tpms_rtl433"
	KindModule = "tpms_module"
)

// Defaults of Opts.
const (
	DefaultPeriod        = 5 * time.Second
	DefaultRepeats       = 3
	DefaultPressureKPa   = 230.0
	DefaultLeakWheel     = "rr"
	DefaultLeakStartKPa  = 194.0
	DefaultLeakKPaPerMin = 15.0
)

// IDs are the sensor ids of the simulated car, by wheel position.
var IDs = map[string]string{"fl": "1a2b3c01", "fr": "1a2b3c02", "rl": "1a2b3c03", "rr": "1a2b3c04"}

// NeighbourID is the sensor id of the car parked next to it.
const NeighbourID = "0badcafe"

// positions in slot order.
var positions = []string{"fl", "fr", "rl", "rr"}

// Wheels returns the id → position map of the simulated car, as
// tpms.Opts.Wheels wants it.
func Wheels() map[string]string {
	m := make(map[string]string, len(IDs))
	for p, id := range IDs {
		m[id] = p
	}
	return m
}

// Opts configure a simulator ([[simulator]] entry and its options).
type Opts struct {
	// Kind is KindRTL433 or KindModule (the entry's kind).
	Kind string `toml:"kind"`
	// Link is where the pty's slave side is linked (the entry's link); the
	// serial bus's device points here. Empty: no link, see Sim.Path.
	Link string `toml:"link"`
	// Period between two transmissions of a wheel (default 5s).
	Period time.Duration `toml:"period"`
	// Repeats is how many times rtl_433 prints each transmission
	// (default 3).
	Repeats int `toml:"repeats"`
	// PressureKPa of the wheels that do not leak (default 230).
	PressureKPa float64 `toml:"pressure_kpa"`
	// LeakWheel is the position of the leaking wheel (default "rr"),
	// "none" for none.
	LeakWheel string `toml:"leak_wheel"`
	// LeakStartKPa is its pressure at start (default 194) and
	// LeakKPaPerMin how fast it falls (default 15), down to 0.
	LeakStartKPa  float64 `toml:"leak_start_kpa"`
	LeakKPaPerMin float64 `toml:"leak_kpa_per_min"`

	// Now is the simulator's clock for the leak and the module's ages
	// (default time.Now).
	Now func() time.Time `toml:"-"`
	// Manual stops the periodic transmissions: tests call Transmit.
	Manual bool         `toml:"-"`
	Log    *slog.Logger `toml:"-"`
}

// Validate reports every problem of o, joined.
func (o Opts) Validate() error {
	var errs []error
	if o.Kind != KindRTL433 && o.Kind != KindModule {
		errs = append(errs, fmt.Errorf("kind: %q must be %q or %q", o.Kind, KindRTL433, KindModule))
	}
	if o.Period < 0 {
		errs = append(errs, fmt.Errorf("period: %v must not be negative", o.Period))
	}
	if o.Repeats < 0 || o.Repeats > 10 {
		errs = append(errs, fmt.Errorf("repeats: %d outside 0..10", o.Repeats))
	}
	if o.LeakWheel != "" && o.LeakWheel != "none" && IDs[o.LeakWheel] == "" {
		errs = append(errs, fmt.Errorf("leak_wheel: %q must be fl, fr, rl, rr or none", o.LeakWheel))
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{"pressure_kpa", o.PressureKPa}, {"leak_start_kpa", o.LeakStartKPa}, {"leak_kpa_per_min", o.LeakKPaPerMin}} {
		if f.v < 0 || f.v > 999 || f.v != f.v {
			errs = append(errs, fmt.Errorf("%s: %v outside 0..999", f.key, f.v))
		}
	}
	return errors.Join(errs...)
}

func (o *Opts) setDefaults() {
	if o.Period == 0 {
		o.Period = DefaultPeriod
	}
	if o.Repeats == 0 {
		o.Repeats = DefaultRepeats
	}
	if o.PressureKPa == 0 {
		o.PressureKPa = DefaultPressureKPa
	}
	if o.LeakWheel == "" {
		o.LeakWheel = DefaultLeakWheel
	}
	if o.LeakStartKPa == 0 {
		o.LeakStartKPa = DefaultLeakStartKPa
	}
	if o.LeakKPaPerMin == 0 {
		o.LeakKPaPerMin = DefaultLeakKPaPerMin
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Fault is a misbehaviour of the module simulator's replies.
type Fault int

// Faults of the module simulator.
const (
	FaultNone      Fault = iota
	FaultChecksum        // a wrong checksum
	FaultNoise           // garbage bytes before the frame
	FaultSilent          // no reply
	FaultTruncated       // the frame cut off before its end
)

// writeTimeout bounds a write to the line: while nobody reads the far end,
// output is dropped rather than blocking the simulator.
const writeTimeout = 200 * time.Millisecond

// Sim is a running simulator. Its methods are safe for concurrent use.
type Sim struct {
	o     Opts
	start time.Time
	wg    sync.WaitGroup
	stop  context.CancelFunc

	// mu guards the fields below.
	mu       sync.Mutex
	pty      *serialtest.PTY // nil while unplugged
	closed   bool
	silentAt map[string]time.Time // wheels that stopped transmitting, and when
	override map[string]float64   // pressures set by SetPressure
	fault    Fault
	faultN   int // replies left with fault; < 0: all

	written, dropped atomic.Int64
}

// Start starts a simulator; it runs until ctx is done or Close.
func Start(ctx context.Context, o Opts) (*Sim, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("tpmssim: %w", err)
	}
	o.setDefaults()
	if o.Link != "" {
		if err := os.MkdirAll(filepath.Dir(o.Link), 0o755); err != nil {
			return nil, fmt.Errorf("tpmssim: %w", err)
		}
	}
	ctx, stop := context.WithCancel(ctx)
	s := &Sim{o: o, start: o.Now(), stop: stop, silentAt: make(map[string]time.Time), override: make(map[string]float64)}
	if err := s.Replug(); err != nil {
		stop()
		return nil, err
	}
	if o.Kind == KindRTL433 && !o.Manual {
		s.wg.Add(1)
		go s.emit(ctx)
	}
	s.wg.Add(1)
	go func() { // Close when ctx is done.
		defer s.wg.Done()
		<-ctx.Done()
		s.unplug(true)
	}()
	o.Log.Info("tpms simulator started", "kind", o.Kind, "path", s.Path())
	return s, nil
}

// Path returns where the driver opens the line: the link, or the pty's
// slave path without one.
func (s *Sim) Path() string {
	if s.o.Link != "" {
		return s.o.Link
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pty == nil {
		return ""
	}
	return s.pty.SlavePath
}

// Close stops the simulator and removes its link.
func (s *Sim) Close() error {
	s.stop()
	s.wg.Wait()
	return nil
}

// Unplug closes the pty and removes the link, like pulling the USB
// adapter: the driver's reads fail and its reopens find nothing.
func (s *Sim) Unplug() error {
	s.unplug(false)
	return nil
}

func (s *Sim) unplug(final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if final {
		s.closed = true
	}
	if s.pty != nil {
		s.pty.Close()
		s.pty = nil
	}
}

// Replug opens a new pty and links it at the same path, like the adapter
// coming back (maybe under another /dev name).
func (s *Sim) Replug() error {
	p, err := serialtest.OpenPTY()
	if err != nil {
		return fmt.Errorf("tpmssim: %w", err)
	}
	if s.o.Link != "" {
		if err := p.Link(s.o.Link); err != nil {
			p.Close()
			return fmt.Errorf("tpmssim: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		p.Close()
		return errors.New("tpmssim: closed")
	}
	if s.pty != nil {
		s.pty.Close()
	}
	s.pty = p
	if s.o.Kind == KindModule {
		s.wg.Add(1)
		go s.serve(p)
	}
	return nil
}

// Silence stops (or with false, resumes) the transmissions of the wheel at
// pos, as a sensor out of radio range or with a dead battery.
func (s *Sim) Silence(pos string, silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !silent {
		delete(s.silentAt, pos)
	} else if _, ok := s.silentAt[pos]; !ok {
		s.silentAt[pos] = s.o.Now()
	}
}

// SetPressure fixes the pressure of the wheel at pos, overriding the model
// (values outside what a sensor reports are allowed: that is the point).
func (s *Sim) SetPressure(pos string, kpa float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[pos] = kpa
}

// SetFault makes the next n module replies (all, with n < 0) misbehave.
func (s *Sim) SetFault(f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultN = f, n
}

// Inject writes raw bytes to the line (line noise, truncated output).
func (s *Sim) Inject(b []byte) error { return s.write(b) }

// Stats returns how many writes reached the line and how many were dropped
// (unplugged, or nobody reading).
func (s *Sim) Stats() (written, dropped int64) { return s.written.Load(), s.dropped.Load() }

func (s *Sim) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(b)
}

func (s *Sim) writeLocked(b []byte) error {
	if s.pty == nil {
		s.dropped.Add(1)
		return errors.New("tpmssim: unplugged")
	}
	s.pty.Master.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.pty.Master.Write(b); err != nil {
		s.dropped.Add(1)
		return fmt.Errorf("tpmssim: write: %w", err)
	}
	s.written.Add(1)
	return nil
}

// pressure returns the model pressure of the wheel at pos at time t.
func (s *Sim) pressureLocked(pos string, t time.Time) float64 {
	if p, ok := s.override[pos]; ok {
		return p
	}
	if pos == s.o.LeakWheel {
		return math.Max(0, s.o.LeakStartKPa-s.o.LeakKPaPerMin*t.Sub(s.start).Minutes())
	}
	return s.o.PressureKPa + float64(slices.Index(positions, pos))*0.5
}

func temperature(pos string) float64 { return 20 + float64(slices.Index(positions, pos)) }

// heardLocked returns when the module last heard the wheel at pos: at the
// last multiple of Period since start, and never after it fell silent.
func (s *Sim) heardLocked(pos string, now time.Time) time.Time {
	if at, ok := s.silentAt[pos]; ok {
		now = at
	}
	n := now.Sub(s.start) / s.o.Period
	return s.start.Add(n * s.o.Period)
}

// frame builds the module's reply at now.
func (s *Sim) frameLocked(now time.Time) []byte {
	ws := make([]tpms.Wheel, 0, len(positions))
	for i, pos := range positions {
		id, _ := tpms.ParseID(IDs[pos])
		heard := s.heardLocked(pos, now)
		kpa := math.Round(s.pressureLocked(pos, heard) * 10)
		w := tpms.Wheel{
			Slot:         uint8(i),
			ID:           uint32(id),
			Pressure:     uint16(min(max(kpa, 0), 9999)),
			TemperatureC: int16(temperature(pos)),
			Age:          uint16(min(now.Sub(heard)/time.Second, tpms.AgeNever-1)),
		}
		if kpa < 0 || kpa > 9999 {
			w.Status |= tpms.SensorFault
		}
		ws = append(ws, w)
	}
	b, _ := tpms.AppendFrame(nil, ws) // every value is within range
	return b
}
