package poll

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/google/go-cmp/cmp"
)

// fakeSensor returns the values its test sets, or err.
type fakeSensor struct {
	mu     sync.Mutex
	values map[string]any
	err    error
	reads  [][]string // names asked by ReadPoints, nil for Read
}

func (f *fakeSensor) Name() string { return "dev" }
func (f *fakeSensor) Close() error { return nil }

func (f *fakeSensor) set(point string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[point] = v
}

func (f *fakeSensor) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSensor) Read(ctx context.Context) ([]drivers.Reading, error) {
	return f.read(nil)
}

func (f *fakeSensor) read(names []string) ([]drivers.Reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, names)
	if f.err != nil {
		return nil, f.err
	}
	var rs []drivers.Reading
	for _, n := range []string{"a", "b", "c"} {
		v, ok := f.values[n]
		if !ok {
			continue
		}
		if names != nil && !contains(names, n) {
			continue
		}
		rs = append(rs, drivers.Reading{Point: n, Value: v, Unit: "°C"})
	}
	return rs, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// partialSensor also reads subsets.
type partialSensor struct{ *fakeSensor }

func (p partialSensor) ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error) {
	return p.read(names)
}

type event struct {
	At      time.Duration
	Point   string
	Value   any
	Quality drivers.Quality
}

// run polls s for d and returns what was emitted and the status changes.
func run(t *testing.T, s drivers.Sensor, o Options, d time.Duration, script func(at time.Duration)) ([]event, []string) {
	t.Helper()
	var evs []event
	var status []string
	t0 := time.Now()
	o.Emit = func(rs []drivers.Reading) {
		for _, r := range rs {
			if r.Device != "dev" || r.Time.IsZero() {
				t.Errorf("reading %+v: want device and time set", r)
			}
			evs = append(evs, event{time.Since(t0), r.Point, r.Value, r.Quality})
		}
	}
	o.OnStatus = func(dev string, online bool) {
		s := "offline"
		if online {
			s = "online"
		}
		status = append(status, time.Since(t0).String()+" "+s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	p := New(s, o)
	if script != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second / 2):
					script(time.Since(t0))
				}
			}
		}()
	}
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	return evs, status
}

func ptr(f float64) *float64 { return &f }

func TestReportByException(t *testing.T) {
	tests := []struct {
		name   string
		rule   Rule
		values []float64 // value of "a" at each second
		want   []event
	}{
		{
			name:   "no rule reports every poll",
			values: []float64{1, 1, 1},
			want:   []event{{0, "a", 1.0, drivers.Good}, {time.Second, "a", 1.0, drivers.Good}, {2 * time.Second, "a", 1.0, drivers.Good}},
		},
		{
			name:   "deadband",
			rule:   Rule{Deadband: 0.5},
			values: []float64{20, 20.3, 20.6, 20.7, 19.9},
			want:   []event{{0, "a", 20.0, drivers.Good}, {2 * time.Second, "a", 20.6, drivers.Good}, {4 * time.Second, "a", 19.9, drivers.Good}},
		},
		{
			name:   "max silence forces a report",
			rule:   Rule{Deadband: 5, MaxSilence: 2 * time.Second},
			values: []float64{1, 1, 1, 1, 1},
			want:   []event{{0, "a", 1.0, drivers.Good}, {2 * time.Second, "a", 1.0, drivers.Good}, {4 * time.Second, "a", 1.0, drivers.Good}},
		},
		{
			name:   "max silence alone reports changes",
			rule:   Rule{MaxSilence: time.Minute},
			values: []float64{1, 1, 2, 2},
			want:   []event{{0, "a", 1.0, drivers.Good}, {2 * time.Second, "a", 2.0, drivers.Good}},
		},
		{
			name:   "out of range kept and reported on quality change",
			rule:   Rule{Deadband: 10, Min: ptr(-40), Max: ptr(85)},
			values: []float64{20, 120, 121, 20},
			want: []event{{0, "a", 20.0, drivers.Good}, {time.Second, "a", 120.0, drivers.OutOfRange},
				{3 * time.Second, "a", 20.0, drivers.Good}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &fakeSensor{values: map[string]any{"a": tt.values[0]}}
				i := 0
				got, _ := run(t, s, Options{Interval: time.Second, Rules: map[string]Rule{"a": tt.rule}},
					time.Duration(len(tt.values))*time.Second-time.Millisecond, func(time.Duration) {
						// Runs at 0.5 s, 1 s, 1.5 s, …: value k is set at k-0.5 s.
						i++
						if k := (i + 1) / 2; i%2 == 1 && k < len(tt.values) {
							s.set("a", tt.values[k])
						}
					})
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("emitted (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestPointInterval(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(map[bool]string{false: "Read", true: "ReadPoints"}[partial], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeSensor{values: map[string]any{"a": 1.0, "b": 2.0}}
				var s drivers.Sensor = f
				if partial {
					s = partialSensor{f}
				}
				rules := map[string]Rule{"a": {}, "b": {Interval: 3 * time.Second}}
				got, _ := run(t, s, Options{Interval: time.Second, Rules: rules}, 4*time.Second-time.Millisecond, nil)
				var bs []time.Duration
				for _, e := range got {
					if e.Point == "b" {
						bs = append(bs, e.At)
					}
				}
				if diff := cmp.Diff([]time.Duration{0, 3 * time.Second}, bs); diff != "" {
					t.Errorf("b reported at (-want +got):\n%s", diff)
				}
				if partial {
					// All due: Read; some due: ReadPoints.
					want := [][]string{nil, {"a"}, {"a"}, nil}
					if diff := cmp.Diff(want, f.reads); diff != "" {
						t.Errorf("ReadPoints calls (-want +got):\n%s", diff)
					}
				}
			})
		})
	}
}

func TestOnlineOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSensor{values: map[string]any{"a": 1.0, "b": true}}
		rules := map[string]Rule{"a": {Deadband: 1}, "b": {Deadband: 1}}
		got, status := run(t, s, Options{Interval: time.Second, Rules: rules}, 6*time.Second-time.Millisecond, func(at time.Duration) {
			switch at {
			case 1500 * time.Millisecond:
				s.fail(errors.New("no answer"))
			case 4500 * time.Millisecond:
				s.fail(nil)
			}
		})
		want := []event{
			{0, "a", 1.0, drivers.Good}, {0, "b", true, drivers.Good},
			{2 * time.Second, "a", nil, drivers.CommError}, {2 * time.Second, "b", nil, drivers.CommError},
			{5 * time.Second, "a", 1.0, drivers.Good}, {5 * time.Second, "b", true, drivers.Good},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("emitted (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"0s online", "2s offline", "5s online"}, status); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	})
}

func TestRunStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSensor{values: map[string]any{"a": 1.0}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- New(s, Options{Emit: func([]drivers.Reading) {}}).Run(ctx) }()
		time.Sleep(3 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Rule
		ok   bool
	}{
		{"zero", Rule{}, true},
		{"full", Rule{Interval: time.Second, Deadband: 0.1, MaxSilence: time.Minute, Min: ptr(0), Max: ptr(1)}, true},
		{"negative deadband", Rule{Deadband: -1}, false},
		{"min above max", Rule{Min: ptr(2), Max: ptr(1)}, false},
		{"negative interval", Rule{Interval: -time.Second}, false},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
