package tpms

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/drivers/poll"
)

// Defaults of Opts, applied to zero fields.
const (
	DefaultLowPressureKPa    = 180.0
	DefaultHysteresisKPa     = 5.0
	DefaultFastLeakKPaPerMin = 20.0
	DefaultLeakWindow        = 5 * time.Minute
	DefaultStaleAfter        = 5 * time.Minute
	DefaultDedupWindow       = 2 * time.Second
)

// Opts are the options of both receiver kinds ([device.options]).
type Opts struct {
	// Wheels maps a sensor id (hex, see ParseID) to a wheel position:
	// "fl", "fr", "rl", "rr", "spare", or any lower_snake name. Required.
	Wheels map[string]string `toml:"wheels"`
	// LowPressureKPa raises pos_low_pressure below it (default 180).
	LowPressureKPa float64 `toml:"low_pressure_kpa"`
	// HysteresisKPa: low pressure clears at LowPressureKPa + HysteresisKPa
	// (default 5).
	HysteresisKPa float64 `toml:"hysteresis_kpa"`
	// FastLeakKPaPerMin raises pos_fast_leak when pressure falls faster
	// (default 20).
	FastLeakKPaPerMin float64 `toml:"fast_leak_kpa_per_min"`
	// LeakWindow is the span of readings the leak rate is estimated over
	// (default 5m).
	LeakWindow time.Duration `toml:"leak_window"`
	// StaleAfter marks a wheel stale when not heard for this long
	// (default 5m).
	StaleAfter time.Duration `toml:"stale_after"`
	// DedupWindow drops repeats of a transmission heard within it
	// (default 2s).
	DedupWindow time.Duration `toml:"dedup_window"`
	// Points are reporting rules (drivers/poll.Rule: deadband,
	// max_silence, min, max and, for tpms_module only, interval), keyed
	// by a point kind — "pressure", "temperature", "battery_ok" — for
	// every wheel, or by one wheel's point name ("spare_pressure"), whose
	// rule then replaces the kind's for that wheel. The alarm points are
	// always reported and take no rule.
	Points map[string]poll.Rule `toml:"points"`
}

// Point kinds of every wheel that take a rule (Opts.Points).
var ruleKinds = []string{"pressure", "temperature", "battery_ok"}

// rules returns the rule of each point that has one, given the positions.
func (o Opts) rules(positions []string) map[string]poll.Rule {
	if len(o.Points) == 0 {
		return nil
	}
	out := make(map[string]poll.Rule)
	for _, p := range positions {
		for _, k := range ruleKinds {
			if r, ok := o.Points[p+"_"+k]; ok {
				out[p+"_"+k] = r
			} else if r, ok := o.Points[k]; ok {
				out[p+"_"+k] = r
			}
		}
	}
	return out
}

var positionRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (o *Opts) setDefaults() {
	if o.LowPressureKPa == 0 {
		o.LowPressureKPa = DefaultLowPressureKPa
	}
	if o.HysteresisKPa == 0 {
		o.HysteresisKPa = DefaultHysteresisKPa
	}
	if o.FastLeakKPaPerMin == 0 {
		o.FastLeakKPaPerMin = DefaultFastLeakKPaPerMin
	}
	if o.LeakWindow == 0 {
		o.LeakWindow = DefaultLeakWindow
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = DefaultDedupWindow
	}
}

// Validate reports every problem of o with its key, joined. It does not
// apply defaults; zero values mean the default.
func (o Opts) Validate() error {
	_, err := o.positions()
	return err
}

// positions validates o and returns the id → position map.
func (o Opts) positions() (map[uint64]string, error) {
	var errs []error
	if len(o.Wheels) == 0 {
		errs = append(errs, errors.New("wheels: at least one sensor id = position is required"))
	}
	pos := make(map[uint64]string, len(o.Wheels))
	byPos := make(map[string]string)
	keys := make([]string, 0, len(o.Wheels))
	for k := range o.Wheels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable error order
	for _, k := range keys {
		p := o.Wheels[k]
		id, err := ParseID(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("wheels.%s: %w", k, err))
			continue
		}
		if !positionRE.MatchString(p) {
			errs = append(errs, fmt.Errorf("wheels.%s: position %q must be lower_snake (fl, fr, rl, rr, spare, …)", k, p))
			continue
		}
		if other, dup := byPos[p]; dup {
			errs = append(errs, fmt.Errorf("wheels.%s: position %q already taken by %s", k, p, other))
			continue
		}
		if other, dup := pos[id]; dup {
			errs = append(errs, fmt.Errorf("wheels.%s: same sensor id as the one at %q", k, other))
			continue
		}
		byPos[p] = k
		pos[id] = p
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{"low_pressure_kpa", o.LowPressureKPa}, {"hysteresis_kpa", o.HysteresisKPa}, {"fast_leak_kpa_per_min", o.FastLeakKPaPerMin}} {
		if f.v < 0 || f.v != f.v {
			errs = append(errs, fmt.Errorf("%s: %v must not be negative", f.key, f.v))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"leak_window", o.LeakWindow}, {"stale_after", o.StaleAfter}, {"dedup_window", o.DedupWindow}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v must not be negative", d.key, d.v))
		}
	}
	errs = append(errs, o.checkPoints(byPos)...)
	if o.StaleAfter > 0 && o.DedupWindow >= o.StaleAfter {
		errs = append(errs, fmt.Errorf("dedup_window: %v must be shorter than stale_after %v", o.DedupWindow, o.StaleAfter))
	}
	return pos, errors.Join(errs...)
}

// checkPoints validates Points against the wheel positions.
func (o Opts) checkPoints(byPos map[string]string) []error {
	var errs []error
	keys := make([]string, 0, len(o.Points))
	for k := range o.Points {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !o.pointKey(k, byPos) {
			errs = append(errs, fmt.Errorf("points.%s: not a point kind (%s) nor a wheel's point (fl_pressure, …)",
				k, strings.Join(ruleKinds, ", ")))
			continue
		}
		if err := o.Points[k].Validate(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("points.%s.%w", k, e))
			}
		}
	}
	return errs
}

// pointKey reports whether k names a point kind or a configured wheel's
// point of that kind.
func (o Opts) pointKey(k string, byPos map[string]string) bool {
	for _, kind := range ruleKinds {
		if k == kind {
			return true
		}
		if p, ok := strings.CutSuffix(k, "_"+kind); ok {
			if _, ok := byPos[p]; ok {
				return true
			}
		}
	}
	return false
}

// checkStreamed reports the rule keys that a streaming receiver, which is
// not polled, cannot honour.
func (o Opts) checkStreamed() error {
	var errs []error
	keys := make([]string, 0, len(o.Points))
	for k := range o.Points {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if o.Points[k].Interval != 0 {
			errs = append(errs, fmt.Errorf("points.%s.interval: tpms_rtl433 is not polled (wheels report when they transmit); use deadband and max_silence", k))
		}
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
