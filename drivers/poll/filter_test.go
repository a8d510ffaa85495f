package poll

import (
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// batch is one call of Apply (or of Down, when down is set) and what it
// must return.
type batch struct {
	at   int // seconds after t0: now
	down bool
	in   []drivers.Reading
	want []drivers.Reading
}

func TestFilter(t *testing.T) {
	r := func(point string, v any, s int) drivers.Reading {
		return drivers.Reading{Device: "dev", Point: point, Value: v, Unit: "u", Time: at(s), Quality: drivers.Good}
	}
	q := func(rd drivers.Reading, qu drivers.Quality) drivers.Reading { rd.Quality = qu; return rd }
	tests := []struct {
		name    string
		rules   map[string]Rule
		batches []batch
	}{
		{
			name: "completes device, time and quality",
			batches: []batch{{at: 3,
				in:   []drivers.Reading{{Point: "a", Value: 1.0}},
				want: []drivers.Reading{{Device: "dev", Point: "a", Value: 1.0, Time: at(3), Quality: drivers.Good}}}},
		},
		{
			name: "keeps what the reading says",
			batches: []batch{{at: 3,
				in:   []drivers.Reading{{Device: "other", Point: "a", Value: 1.0, Time: at(1), Quality: drivers.Stale}},
				want: []drivers.Reading{{Device: "other", Point: "a", Value: 1.0, Time: at(1), Quality: drivers.Stale}}}},
		},
		{
			name: "no rule: everything",
			batches: []batch{
				{in: []drivers.Reading{r("a", 1.0, 0)}, want: []drivers.Reading{r("a", 1.0, 0)}},
				{in: []drivers.Reading{r("a", 1.0, 1)}, want: []drivers.Reading{r("a", 1.0, 1)}},
			},
		},
		{
			name:  "deadband",
			rules: map[string]Rule{"a": {Deadband: 0.5}},
			batches: []batch{
				{in: []drivers.Reading{r("a", 20.0, 0)}, want: []drivers.Reading{r("a", 20.0, 0)}},
				{in: []drivers.Reading{r("a", 20.3, 1)}},
				{in: []drivers.Reading{r("a", 20.6, 2)}, want: []drivers.Reading{r("a", 20.6, 2)}},
			},
		},
		{
			name:  "max silence alone reports changes and forces a report",
			rules: map[string]Rule{"a": {MaxSilence: time.Minute}},
			batches: []batch{
				{in: []drivers.Reading{r("a", "x", 0)}, want: []drivers.Reading{r("a", "x", 0)}},
				{in: []drivers.Reading{r("a", "x", 30)}},
				{in: []drivers.Reading{r("a", "y", 40)}, want: []drivers.Reading{r("a", "y", 40)}},
				{in: []drivers.Reading{r("a", "y", 100)}, want: []drivers.Reading{r("a", "y", 100)}},
			},
		},
		{
			name:  "out of range, and back",
			rules: map[string]Rule{"a": {Deadband: 10, Min: ptr(-40), Max: ptr(85)}},
			batches: []batch{
				{in: []drivers.Reading{r("a", 20.0, 0)}, want: []drivers.Reading{r("a", 20.0, 0)}},
				{in: []drivers.Reading{r("a", 120.0, 1)}, want: []drivers.Reading{q(r("a", 120.0, 1), drivers.OutOfRange)}},
				{in: []drivers.Reading{r("a", 121.0, 2)}},
				{in: []drivers.Reading{r("a", 20.0, 3)}, want: []drivers.Reading{r("a", 20.0, 3)}},
			},
		},
		{
			name:  "a bad quality from the driver stays",
			rules: map[string]Rule{"a": {Min: ptr(0), Max: ptr(1)}},
			batches: []batch{
				{in: []drivers.Reading{q(r("a", 5.0, 0), drivers.Stale)}, want: []drivers.Reading{q(r("a", 5.0, 0), drivers.Stale)}},
			},
		},
		{
			name:  "alarms always pass",
			rules: map[string]Rule{"low": {Deadband: 1}},
			batches: []batch{
				{in: []drivers.Reading{{Device: "dev", Point: "low", Value: true, Time: at(0), Alarm: true}},
					want: []drivers.Reading{{Device: "dev", Point: "low", Value: true, Time: at(0), Quality: drivers.Good, Alarm: true}}},
				{in: []drivers.Reading{{Device: "dev", Point: "low", Value: true, Time: at(1), Alarm: true}},
					want: []drivers.Reading{{Device: "dev", Point: "low", Value: true, Time: at(1), Quality: drivers.Good, Alarm: true}}},
			},
		},
		{
			name:  "down: every known point once, then the next good one",
			rules: map[string]Rule{"a": {Deadband: 5}, "b": {Deadband: 5}},
			batches: []batch{
				{in: []drivers.Reading{r("a", 1.0, 0), r("c", true, 0)}, want: []drivers.Reading{r("a", 1.0, 0), r("c", true, 0)}},
				{at: 5, down: true, want: []drivers.Reading{
					{Device: "dev", Point: "a", Unit: "u", Time: at(5), Quality: drivers.CommError},
					{Device: "dev", Point: "b", Time: at(5), Quality: drivers.CommError},
					{Device: "dev", Point: "c", Unit: "u", Time: at(5), Quality: drivers.CommError},
				}},
				{in: []drivers.Reading{r("a", 1.0, 6)}, want: []drivers.Reading{r("a", 1.0, 6)}},
			},
		},
		{
			name:  "intervals are the poller's",
			rules: map[string]Rule{"a": {Interval: time.Hour}},
			batches: []batch{
				{in: []drivers.Reading{r("a", 1.0, 0)}, want: []drivers.Reading{r("a", 1.0, 0)}},
				{in: []drivers.Reading{r("a", 1.0, 1)}, want: []drivers.Reading{r("a", 1.0, 1)}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFilter("dev", tt.rules)
			for i, b := range tt.batches {
				var got []drivers.Reading
				if b.down {
					got = f.Down(at(b.at))
				} else {
					in := append([]drivers.Reading(nil), b.in...)
					got = f.Apply(at(b.at), in)
					if diff := cmp.Diff(b.in, in); diff != "" {
						t.Errorf("batch %d: Apply modified its input (-before +after):\n%s", i, diff)
					}
				}
				if diff := cmp.Diff(b.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
					t.Errorf("batch %d: reported (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestFilterStream runs a TPMS receiver's pushed batches through a Filter,
// as the device supervisor does.
func TestFilterStream(t *testing.T) {
	lo, hi := 100.0, 400.0
	rules := map[string]Rule{
		"fl_pressure":    {Deadband: 2, MaxSilence: time.Minute, Min: &lo, Max: &hi, Interval: time.Hour},
		"fl_temperature": {Deadband: 1},
	}
	var got []string
	f := NewFilter("tyres", rules)
	emit := func(rs []drivers.Reading) {
		for _, r := range f.Apply(time.Now().UTC(), rs) {
			got = append(got, r.Point+" "+string(r.Quality)+" "+r.Time.Sub(t0).String())
		}
	}
	p := func(v float64, s int) drivers.Reading {
		return drivers.Reading{Device: "tyres", Point: "fl_pressure", Value: v, Unit: "kPa", Time: at(s), Quality: drivers.Good}
	}
	emit([]drivers.Reading{p(230, 0), {Device: "tyres", Point: "fl_battery_ok", Value: true, Time: at(0)}})
	emit([]drivers.Reading{p(231, 5), {Device: "tyres", Point: "fl_battery_ok", Value: true, Time: at(5)}}) // within deadband; no rule: reported
	emit([]drivers.Reading{p(233, 10)})                                                                     // moved 3 > 2
	emit([]drivers.Reading{p(233.5, 80)})                                                                   // silent for over a minute
	emit([]drivers.Reading{p(50, 85)})                                                                      // implausible
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_low_pressure", Value: true, Time: at(85), Alarm: true}})
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_low_pressure", Value: true, Time: at(86), Alarm: true}}) // alarms always pass
	emit([]drivers.Reading{p(233.5, 90), {Device: "tyres", Point: "fl_temperature", Value: 20.0, Time: at(90)}})
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_temperature", Value: 20.5, Time: at(95)}})
	want := []string{
		"fl_pressure good 0s", "fl_battery_ok good 0s",
		"fl_battery_ok good 5s",
		"fl_pressure good 10s",
		"fl_pressure good 1m20s",
		"fl_pressure out_of_range 1m25s",
		"fl_low_pressure good 1m25s",
		"fl_low_pressure good 1m26s",
		"fl_pressure good 1m30s", "fl_temperature good 1m30s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
}

// TestFilterConcurrent: a Filter is safe for concurrent use (run with -race).
func TestFilterConcurrent(t *testing.T) {
	f := NewFilter("dev", map[string]Rule{"a": {Deadband: 1}})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 100 {
				f.Apply(at(j), []drivers.Reading{{Point: "a", Value: float64(i * j % 7)}})
				if j%10 == 0 {
					f.Down(at(j))
				}
			}
		})
	}
	wg.Wait()
}
