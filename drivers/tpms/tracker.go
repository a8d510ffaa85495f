package tpms

import (
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/poll"
)

// Plausible values of a tyre sensor; outside them a value is out_of_range.
const (
	minKPa, maxKPa = 0, 1000
	minC, maxC     = -50, 150
)

// Leak-rate estimation limits (see the package documentation).
const (
	maxSamples    = 32
	minSamples    = 3
	minLeakSpan   = 20 * time.Second
	maxUnknownLog = 16 // unknown ids logged once each, up to this many
)

// Stats counts what a receiver heard since it was built.
type Stats struct {
	Accepted   int64 // transmissions turned into readings
	Duplicates int64 // repeats within the dedup window
	Unknown    int64 // transmissions of sensors not in Wheels
	NotTPMS    int64 // rtl_433 lines of other device types
	Malformed  int64 // lines or frames that could not be decoded
	Checksum   int64 // module frames with a bad checksum
	TooLong    int64 // over-long lines discarded
	OutOfRange int64 // transmissions with an implausible value
}

type counters struct {
	accepted, duplicates, unknown, notTPMS, malformed, checksum, outOfRange atomic.Int64
}

func (c *counters) stats() Stats {
	return Stats{
		Accepted: c.accepted.Load(), Duplicates: c.duplicates.Load(), Unknown: c.unknown.Load(),
		NotTPMS: c.notTPMS.Load(), Malformed: c.malformed.Load(), Checksum: c.checksum.Load(),
		OutOfRange: c.outOfRange.Load(),
	}
}

// tracker turns messages into readings: positions, de-duplication,
// plausibility, alarms and staleness. It is shared by both receiver kinds
// and safe for concurrent use.
type tracker struct {
	device string
	o      Opts
	log    *slog.Logger
	pos    map[uint64]string
	order  []string // positions, sorted
	c      counters

	// mu guards the fields below.
	mu      sync.Mutex
	start   time.Time // first sweep or snapshot: never-heard wheels go stale from here
	wheels  map[string]*wheel
	unknown map[uint64]bool
}

type sample struct {
	t   time.Time
	kpa float64
}

type wheel struct {
	pos     string
	heard   time.Time // last accepted transmission; zero: never
	last    Message
	points  []drivers.Reading // readings of the last accepted transmission
	samples []sample          // good pressures within the leak window, oldest first
	stale   bool              // reported stale since last heard
	low     bool              // low-pressure alarm raised
	leak    bool              // fast-leak alarm raised
}

func newTracker(device string, o Opts, log *slog.Logger) (*tracker, error) {
	pos, err := o.positions()
	if err != nil {
		return nil, err
	}
	o.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &tracker{device: device, o: o, log: log, pos: pos, wheels: make(map[string]*wheel), unknown: make(map[uint64]bool)}
	for _, p := range pos {
		t.order = append(t.order, p)
		t.wheels[p] = &wheel{pos: p}
	}
	slices.Sort(t.order)
	return t, nil
}

// rules returns the per-point rules of the wheels (nil: none).
func (t *tracker) rules() map[string]poll.Rule { return t.o.rules(t.order) }

func (t *tracker) reading(point string, v any, unit string, at time.Time, q drivers.Quality) drivers.Reading {
	return drivers.Reading{Device: t.device, Point: point, Value: v, Unit: unit, Time: at, Quality: q}
}

func (t *tracker) alarm(w *wheel, name string, on bool, at time.Time) drivers.Reading {
	r := t.reading(w.pos+"_"+name, on, "", at, drivers.Good)
	r.Alarm = true
	if on {
		t.log.Warn("tpms alarm raised", "point", r.Point)
	} else {
		t.log.Info("tpms alarm cleared", "point", r.Point)
	}
	return r
}

// observe takes a message heard at time at. It returns the point readings
// of the transmission and the alarm readings it raised or cleared; both are
// empty for an unknown sensor or a repeat.
func (t *tracker) observe(at time.Time, m Message) (points, alarms []drivers.Reading) {
	p, ok := t.pos[m.ID]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok {
		t.c.unknown.Add(1)
		if !t.unknown[m.ID] && len(t.unknown) < maxUnknownLog {
			t.unknown[m.ID] = true
			t.log.Info("unknown tpms sensor ignored", "id", FormatID(m.ID), "model", m.Model)
		}
		return nil, nil
	}
	w := t.wheels[p]
	if !w.heard.IsZero() && (at.Before(w.heard.Add(-t.o.DedupWindow)) ||
		sameValues(w.last, m) && at.Sub(w.heard).Abs() < t.o.DedupWindow) {
		t.c.duplicates.Add(1)
		return nil, nil
	}
	t.c.accepted.Add(1)
	if w.stale {
		t.log.Info("tpms wheel heard again", "point", w.pos)
	}
	w.heard, w.last, w.stale = at, m, false

	pOK := !m.Fault && m.PressureKPa >= minKPa && m.PressureKPa <= maxKPa
	tOK := !m.Fault && m.TemperatureC >= minC && m.TemperatureC <= maxC
	quality := func(ok bool) drivers.Quality {
		if ok {
			return drivers.Good
		}
		return drivers.OutOfRange
	}
	points = append(points, t.reading(p+"_pressure", round2(m.PressureKPa), "kPa", at, quality(pOK)))
	if m.HasTemp {
		points = append(points, t.reading(p+"_temperature", round2(m.TemperatureC), "°C", at, quality(tOK)))
	}
	if m.HasBattery {
		points = append(points, t.reading(p+"_battery_ok", m.BatteryOK, "", at, drivers.Good))
	}
	if !pOK || m.HasTemp && !tOK {
		t.c.outOfRange.Add(1)
	}
	w.points = points
	if pOK {
		alarms = t.evaluate(w, at, m.PressureKPa)
	}
	return slices.Clone(points), alarms
}

func sameValues(a, b Message) bool {
	return a.PressureKPa == b.PressureKPa && a.HasTemp == b.HasTemp && a.TemperatureC == b.TemperatureC &&
		a.HasBattery == b.HasBattery && a.BatteryOK == b.BatteryOK && a.Fault == b.Fault
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// evaluate updates w's alarms with a good pressure heard at time at.
func (t *tracker) evaluate(w *wheel, at time.Time, kpa float64) []drivers.Reading {
	var out []drivers.Reading
	switch {
	case !w.low && kpa < t.o.LowPressureKPa:
		w.low = true
		out = append(out, t.alarm(w, "low_pressure", true, at))
	case w.low && kpa >= t.o.LowPressureKPa+t.o.HysteresisKPa:
		w.low = false
		out = append(out, t.alarm(w, "low_pressure", false, at))
	}
	w.samples = append(w.samples, sample{at, kpa})
	from := at.Add(-t.o.LeakWindow)
	i := 0
	for i < len(w.samples) && w.samples[i].t.Before(from) {
		i++
	}
	i = max(i, len(w.samples)-maxSamples)
	w.samples = append(w.samples[:0], w.samples[i:]...)
	if rate, ok := leakRate(w.samples); ok {
		switch {
		case !w.leak && rate > t.o.FastLeakKPaPerMin:
			w.leak = true
			out = append(out, t.alarm(w, "fast_leak", true, at))
		case w.leak && rate < t.o.FastLeakKPaPerMin/2:
			w.leak = false
			out = append(out, t.alarm(w, "fast_leak", false, at))
		}
	}
	return out
}

// leakRate returns how fast pressure falls, in kPa/min (negative when it
// rises), as the least-squares slope over s; ok is false with fewer than
// minSamples samples or a span under minLeakSpan.
func leakRate(s []sample) (rate float64, ok bool) {
	if len(s) < minSamples || s[len(s)-1].t.Sub(s[0].t) < minLeakSpan {
		return 0, false
	}
	n := float64(len(s))
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x := p.t.Sub(s[0].t).Minutes()
		sx += x
		sy += p.kpa
		sxx += x * x
		sxy += x * p.kpa
	}
	d := n*sxx - sx*sx
	if d <= 0 {
		return 0, false
	}
	return -(n*sxy - sx*sy) / d, true
}

// sweep returns stale readings for the wheels that have just gone stale:
// not heard within StaleAfter (of the first sweep, for a wheel never heard).
// Each wheel is reported stale once until it is heard again.
func (t *tracker) sweep(now time.Time) []drivers.Reading {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.start.IsZero() {
		t.start = now
	}
	var out []drivers.Reading
	for _, p := range t.order {
		w := t.wheels[p]
		if w.stale || !t.isStale(w, now) {
			continue
		}
		w.stale = true
		t.log.Warn("tpms wheel stale", "point", p, "heard", w.heard)
		out = append(out, t.staleReadings(w, now)...)
	}
	return out
}

func (t *tracker) isStale(w *wheel, now time.Time) bool {
	since := w.heard
	if since.IsZero() {
		since = t.start
	}
	return now.Sub(since) > t.o.StaleAfter
}

func (t *tracker) staleReadings(w *wheel, now time.Time) []drivers.Reading {
	if len(w.points) == 0 {
		return []drivers.Reading{t.reading(w.pos+"_pressure", nil, "kPa", now, drivers.Stale)}
	}
	out := slices.Clone(w.points)
	for i := range out {
		out[i].Quality = drivers.Stale
	}
	return out
}

// snapshot returns the current readings of every wheel, for a polled
// receiver: the last transmission's readings, stale ones for wheels not
// heard within StaleAfter, nothing for a wheel never heard while the
// receiver is younger than StaleAfter.
func (t *tracker) snapshot(now time.Time) []drivers.Reading {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.start.IsZero() {
		t.start = now
	}
	var out []drivers.Reading
	for _, p := range t.order {
		w := t.wheels[p]
		if !t.isStale(w, now) {
			out = append(out, w.points...)
			continue
		}
		if !w.stale {
			w.stale = true
			t.log.Warn("tpms wheel stale", "point", p, "heard", w.heard)
		}
		out = append(out, t.staleReadings(w, now)...)
	}
	return out
}
