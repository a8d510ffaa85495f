// Package poll is the poll loop shared by every drivers.Sensor: it reads a
// device at its interval, applies each point's Rule (own interval,
// plausibility range, report by exception) and reports the device going
// offline and back online.
package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"

	"github.com/edgegw/edgegw/drivers"
)

// Rule is the reporting rule of one point. Drivers embed it in their point
// options, so its keys sit next to the point's own:
//
//	[[device.options.points]]
//	name = "temperature"
//	interval = "10s"
//	deadband = 0.2
//	max_silence = "5m"
//	min = -40.0
//	max = 85.0
type Rule struct {
	// Interval is how often the point is read; 0 means at every poll of
	// the device. It is rounded to whole device intervals.
	Interval time.Duration `toml:"interval"`
	// Deadband: a numeric value is reported when it moved more than
	// Deadband from the last reported value (a bool or string when it
	// changed). With Deadband and MaxSilence both zero every reading is
	// reported; with MaxSilence alone, every change is.
	Deadband float64 `toml:"deadband"`
	// MaxSilence forces a report when nothing was reported for this long.
	MaxSilence time.Duration `toml:"max_silence"`
	// Min and Max bound a plausible numeric value; outside, the reading
	// is kept with Quality out_of_range.
	Min *float64 `toml:"min"`
	Max *float64 `toml:"max"`
}

// Validate reports the problems of r, with key paths relative to r.
func (r Rule) Validate() error {
	var errs []error
	if r.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: %v must not be negative", r.Interval))
	}
	if r.Deadband < 0 || math.IsNaN(r.Deadband) {
		errs = append(errs, fmt.Errorf("deadband: %v must not be negative", r.Deadband))
	}
	if r.MaxSilence < 0 {
		errs = append(errs, fmt.Errorf("max_silence: %v must not be negative", r.MaxSilence))
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		errs = append(errs, fmt.Errorf("min: %v above max %v", *r.Min, *r.Max))
	}
	return errors.Join(errs...)
}

// InRange reports whether v is within [Min, Max]. Non-numeric values are.
func (r Rule) InRange(v any) bool {
	f, ok := v.(float64)
	if !ok {
		return true
	}
	if math.IsNaN(f) {
		return false
	}
	return (r.Min == nil || f >= *r.Min) && (r.Max == nil || f <= *r.Max)
}

// Ruler is implemented by drivers with per-point rules.
type Ruler interface {
	Rules() map[string]Rule
}

// PointReader is implemented by sensors that can read a subset of their
// points, so that a point with a longer interval is not read at every poll.
type PointReader interface {
	ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error)
}

// Options configure a Poller.
type Options struct {
	// Interval is the device's poll period (default 1s).
	Interval time.Duration
	// Rules by point name; nil takes the sensor's own (Ruler), if any.
	// Points without a rule are read and reported at every poll.
	Rules map[string]Rule
	// Emit receives the readings to report from one poll, in the
	// poller's goroutine. Required.
	Emit func([]drivers.Reading)
	// OnStatus, if set, is called when the device goes online (first good
	// read, recovery) or offline (a failed read). It is called before the
	// readings of that poll are emitted.
	OnStatus func(device string, online bool)
	Log      *slog.Logger
}

// Poller polls one sensor. Run it once.
type Poller struct {
	s     drivers.Sensor
	o     Options
	log   *slog.Logger
	state map[string]*pointState
	// online is nil before the first poll.
	online *bool
	polls  int64 // polls done, for per-point intervals
}

type pointState struct {
	every    int64 // read at every every-th poll
	lastRead int64 // poll number of the last read, -1 never
	reported bool
	value    any
	quality  drivers.Quality
	unit     string
	lastTime time.Time // of the last report
}

// New returns a Poller of s.
func New(s drivers.Sensor, o Options) *Poller {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Rules == nil {
		if r, ok := s.(Ruler); ok {
			o.Rules = r.Rules()
		}
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Poller{s: s, o: o, log: log, state: make(map[string]*pointState)}
	for name := range o.Rules {
		p.point(name)
	}
	return p
}

func (p *Poller) point(name string) *pointState {
	ps := p.state[name]
	if ps == nil {
		every := int64(1)
		if r, ok := p.o.Rules[name]; ok && r.Interval > p.o.Interval {
			every = int64((r.Interval + p.o.Interval/2) / p.o.Interval)
		}
		ps = &pointState{every: every, lastRead: -1}
		p.state[name] = ps
	}
	return ps
}

// Run polls at once and then every interval until ctx is done; it returns
// nil then.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// due returns the names of the points due at this poll, sorted, and
// whether that is every known point.
func (p *Poller) due() (names []string, all bool) {
	all = true
	for name, ps := range p.state {
		if ps.lastRead < 0 || p.polls-ps.lastRead >= ps.every {
			names = append(names, name)
		} else {
			all = false
		}
	}
	sort.Strings(names)
	return names, all
}

// Poll polls the sensor once and emits what is to be reported. Run calls
// it; it is exported for drivers' tests.
func (p *Poller) Poll(ctx context.Context) {
	defer func() { p.polls++ }()
	names, all := p.due()
	var rs []drivers.Reading
	var err error
	pr, partial := p.s.(PointReader)
	switch {
	case !all && len(names) == 0:
		return // every known point waits for its interval
	case !all && partial:
		rs, err = pr.ReadPoints(ctx, names)
	default:
		rs, err = p.s.Read(ctx)
	}
	if ctx.Err() != nil {
		return // shutting down: say nothing about the device
	}
	now := time.Now().UTC()
	if err != nil {
		p.down(now, err)
		return
	}
	var out []drivers.Reading
	if p.online == nil || !*p.online {
		p.setOnline(true, nil)
	}
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	for _, r := range rs {
		_, known := p.state[r.Point]
		if known && !all && !wanted[r.Point] {
			continue // read along, but not due
		}
		ps := p.point(r.Point)
		ps.lastRead = p.polls
		if r.Quality == "" {
			r.Quality = drivers.Good
		}
		if r.Time.IsZero() {
			r.Time = now
		}
		if r.Device == "" {
			r.Device = p.s.Name()
		}
		rule := p.o.Rules[r.Point]
		if r.Quality == drivers.Good && !rule.InRange(r.Value) {
			r.Quality = drivers.OutOfRange
		}
		ps.unit = r.Unit
		if p.report(rule, ps, r) {
			ps.reported, ps.value, ps.quality, ps.lastTime = true, r.Value, r.Quality, r.Time
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		p.o.Emit(out)
	}
}

// report decides whether r is reported, by exception.
func (p *Poller) report(rule Rule, ps *pointState, r drivers.Reading) bool {
	if !ps.reported || r.Quality != ps.quality || r.Alarm {
		return true
	}
	if rule.Deadband == 0 && rule.MaxSilence == 0 {
		return true
	}
	if rule.MaxSilence > 0 && r.Time.Sub(ps.lastTime) >= rule.MaxSilence {
		return true
	}
	f, ok1 := r.Value.(float64)
	g, ok2 := ps.value.(float64)
	if ok1 && ok2 {
		return math.Abs(f-g) > rule.Deadband || (rule.Deadband == 0 && f != g)
	}
	return r.Value != ps.value
}

// down reports the device offline once: each point seen so far gets one
// comm_error reading.
func (p *Poller) down(now time.Time, err error) {
	if p.online != nil && !*p.online {
		return
	}
	p.setOnline(false, err)
	var out []drivers.Reading
	names := make([]string, 0, len(p.state))
	for n := range p.state {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ps := p.state[n]
		out = append(out, drivers.Reading{Device: p.s.Name(), Point: n, Unit: ps.unit, Time: now, Quality: drivers.CommError})
		ps.reported, ps.value, ps.quality, ps.lastTime = true, nil, drivers.CommError, now
	}
	if len(out) > 0 {
		p.o.Emit(out)
	}
}

func (p *Poller) setOnline(on bool, err error) {
	was := p.online
	p.online = &on
	if on {
		if was != nil {
			p.log.Info("device online", "device", p.s.Name())
		}
	} else {
		p.log.Warn("device offline", "device", p.s.Name(), "err", err)
	}
	if p.o.OnStatus != nil {
		p.o.OnStatus(p.s.Name(), on)
	}
}
