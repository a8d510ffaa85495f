// Package poll is the poll loop shared by every drivers.Sensor, and the
// reporting rules of the points of any device. A Filter applies each
// point's Rule (plausibility range, report by exception) to readings,
// polled or pushed by a drivers.Streamer; a Poller is a ticker that reads a
// sensor, honours each point's own interval, runs the readings through a
// Filter and reports the device going offline and back online. Neither
// logs: the status goes to a callback, to whoever holds it.
package poll

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
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
	// readings of that poll are emitted. The poller does not log it.
	OnStatus func(device string, online bool)
}

// Poller polls one sensor. Run it once.
type Poller struct {
	s      drivers.Sensor
	o      Options
	filter *Filter
	sched  map[string]*schedule
	// online is nil before the first poll.
	online *bool
	polls  int64 // polls done, for per-point intervals
}

// schedule is when a point is read.
type schedule struct {
	every    int64 // read at every every-th poll
	lastRead int64 // poll number of the last read, -1 never
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
	p := &Poller{s: s, o: o, filter: NewFilter(s.Name(), o.Rules), sched: make(map[string]*schedule)}
	for name := range o.Rules {
		p.point(name)
	}
	return p
}

func (p *Poller) point(name string) *schedule {
	ps := p.sched[name]
	if ps == nil {
		every := int64(1)
		if r, ok := p.o.Rules[name]; ok && r.Interval > p.o.Interval {
			every = int64((r.Interval + p.o.Interval/2) / p.o.Interval)
		}
		ps = &schedule{every: every, lastRead: -1}
		p.sched[name] = ps
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
	for name, ps := range p.sched {
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
		p.down(now)
		return
	}
	if p.online == nil || !*p.online {
		p.setOnline(true)
	}
	if !all {
		rs = p.notDue(rs, names)
	}
	for _, r := range rs {
		p.point(r.Point).lastRead = p.polls
	}
	if out := p.filter.Apply(now, rs); len(out) > 0 {
		p.o.Emit(out)
	}
}

// notDue returns rs without the known points that were read along but are
// not due (not in names).
func (p *Poller) notDue(rs []drivers.Reading, names []string) []drivers.Reading {
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	kept := make([]drivers.Reading, 0, len(rs))
	for _, r := range rs {
		if _, known := p.sched[r.Point]; known && !wanted[r.Point] {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// down reports the device offline once: each point seen so far gets one
// comm_error reading.
func (p *Poller) down(now time.Time) {
	if p.online != nil && !*p.online {
		return
	}
	p.setOnline(false)
	if out := p.filter.Down(now); len(out) > 0 {
		p.o.Emit(out)
	}
}

func (p *Poller) setOnline(on bool) {
	p.online = &on
	if p.o.OnStatus != nil {
		p.o.OnStatus(p.s.Name(), on)
	}
}

// Filter applies the points' rules to the readings of one device, polled
// or pushed: it completes each reading (device, time, quality good), marks
// a numeric value outside min..max out_of_range, and reports a point with
// a deadband or max_silence by exception. A rule's Interval is the
// poller's business and is ignored here. Safe for concurrent use.
type Filter struct {
	device string
	rules  map[string]Rule

	// mu guards last.
	mu   sync.Mutex
	last map[string]*reported
}

// reported is what was last reported of a point.
type reported struct {
	ok      bool // something was reported
	value   any
	quality drivers.Quality
	unit    string // of the last reading, reported or not
	time    time.Time
}

// NewFilter returns the Filter of device with rules by point name (nil
// for none: every reading is reported). The rules' points are known from
// the start: Down reports them too.
func NewFilter(device string, rules map[string]Rule) *Filter {
	f := &Filter{device: device, rules: rules, last: make(map[string]*reported, len(rules))}
	for name := range rules {
		f.last[name] = &reported{}
	}
	return f
}

// Apply returns the readings of rs to report, completed: an empty Device
// becomes the filter's, a zero Time now, an empty Quality good (or
// out_of_range). rs is not modified.
func (f *Filter) Apply(now time.Time, rs []drivers.Reading) []drivers.Reading {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []drivers.Reading
	for _, r := range rs {
		if r.Quality == "" {
			r.Quality = drivers.Good
		}
		if r.Time.IsZero() {
			r.Time = now
		}
		if r.Device == "" {
			r.Device = f.device
		}
		rule := f.rules[r.Point]
		if r.Quality == drivers.Good && !rule.InRange(r.Value) {
			r.Quality = drivers.OutOfRange
		}
		last := f.last[r.Point]
		if last == nil {
			last = &reported{}
			f.last[r.Point] = last
		}
		last.unit = r.Unit
		if report(rule, last, r) {
			last.ok, last.value, last.quality, last.time = true, r.Value, r.Quality, r.Time
			out = append(out, r)
		}
	}
	return out
}

// Down returns one comm_error reading, at now, for each point known (with
// a rule or seen), sorted by name; the next good reading of each is then
// reported whatever its rule.
func (f *Filter) Down(now time.Time) []drivers.Reading {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := slices.Sorted(maps.Keys(f.last))
	out := make([]drivers.Reading, 0, len(names))
	for _, n := range names {
		last := f.last[n]
		out = append(out, drivers.Reading{Device: f.device, Point: n, Unit: last.unit, Time: now, Quality: drivers.CommError})
		last.ok, last.value, last.quality, last.time = true, nil, drivers.CommError, now
	}
	return out
}

// report decides whether r is reported, by exception.
func report(rule Rule, last *reported, r drivers.Reading) bool {
	if !last.ok || r.Quality != last.quality || r.Alarm {
		return true
	}
	if rule.Deadband == 0 && rule.MaxSilence == 0 {
		return true
	}
	if rule.MaxSilence > 0 && r.Time.Sub(last.time) >= rule.MaxSilence {
		return true
	}
	f, ok1 := r.Value.(float64)
	g, ok2 := last.value.(float64)
	if ok1 && ok2 {
		return math.Abs(f-g) > rule.Deadband || (rule.Deadband == 0 && f != g)
	}
	return r.Value != last.value
}
