package supervisor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/backoff"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/google/go-cmp/cmp"
)

// fakeGateway records what the supervisor feeds it.
type fakeGateway struct {
	mu       sync.Mutex
	statuses []string // "dev online" / "dev offline"
	readings []drivers.Reading
	stopped  bool
}

func (g *fakeGateway) Run(ctx context.Context) error {
	<-ctx.Done()
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	return nil
}

func (g *fakeGateway) Emit(rs []drivers.Reading) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.readings = append(g.readings, rs...)
}

func (g *fakeGateway) DeviceStatus(dev string, online bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.statuses = append(g.statuses, dev+map[bool]string{true: " online", false: " offline"}[online])
}

func (g *fakeGateway) status() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.statuses...)
}

func (g *fakeGateway) isStopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// logLines returns a logger and the messages it logged, with their
// device and err attributes.
func logLines() (*slog.Logger, func() []string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == "kind" {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestStatusOnce: whoever reports (a poller, a bus scheduler, both), a
// change reaches the gateway and the log once; the first "online" is not
// logged, as nothing changed from the operator's view.
func TestStatusOnce(t *testing.T) {
	log, lines := logLines()
	s := New(Options{Devices: []Device{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Log: log})
	gw := &fakeGateway{}
	s.gw = gw
	if diff := cmp.Diff(map[string]string{"a": "starting", "b": "starting", "c": "starting"}, s.Devices()); diff != "" {
		t.Errorf("Devices() before any report (-want +got):\n%s", diff)
	}
	s.Status("a", true)
	s.Status("a", true) // the bus agrees
	s.status("b", false, errors.New("no answer"))
	s.Status("b", false) // the bus quarantines it too
	s.Status("b", true)
	s.Status("a", false)
	if diff := cmp.Diff([]string{"a online", "b offline", "b online", "a offline"}, gw.status()); diff != "" {
		t.Errorf("gateway told (-want +got):\n%s", diff)
	}
	want := []string{
		`msg="device offline" device=b err="no answer"`,
		`msg="device online" device=b`,
		`msg="device offline" device=a`,
	}
	if diff := cmp.Diff(want, lines()); diff != "" {
		t.Errorf("logged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"a": "offline", "b": "online", "c": "starting"}, s.Devices()); diff != "" {
		t.Errorf("Devices() (-want +got):\n%s", diff)
	}
}

// fakeSensor fails while err is set.
type fakeSensor struct {
	mu  sync.Mutex
	err error
	v   float64
}

func (f *fakeSensor) Name() string { return "temp" }
func (f *fakeSensor) Close() error { return nil }
func (f *fakeSensor) Read(context.Context) ([]drivers.Reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.v++
	return []drivers.Reading{{Point: "t", Value: f.v, Unit: "°C"}}, nil
}

func (f *fakeSensor) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// relay is an actuator that is neither polled nor streamed.
type relay struct{ closed chan struct{} }

func (r *relay) Name() string                               { return "seat" }
func (r *relay) Close() error                               { close(r.closed); return nil }
func (r *relay) Set(context.Context, drivers.Command) error { return nil }

// TestRun builds the devices, retrying a factory that fails with backoff,
// polls and counts, lends the actuator while it is open, and reports a
// device whose bus is missing offline without building it.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, lines := logLines()
		sensor := &fakeSensor{}
		var builds []time.Duration
		t0 := time.Now()
		rl := &relay{closed: make(chan struct{})}
		devs := []Device{
			{Name: "temp", Kind: "fake", Bus: "line", Interval: time.Second, Factory: func(sp drivers.Spec) (drivers.Device, error) {
				if sp.Bus != "bus value" {
					t.Errorf("Spec.Bus = %v, want the bus's value", sp.Bus)
				}
				builds = append(builds, time.Since(t0))
				if len(builds) < 3 {
					return nil, errors.New("no such port")
				}
				return sensor, nil
			}},
			{Name: "seat", Kind: "relay", Factory: func(drivers.Spec) (drivers.Device, error) { return rl, nil }},
			{Name: "lost", Kind: "fake", Bus: "gone", Factory: func(drivers.Spec) (drivers.Device, error) {
				t.Error("a device on a missing bus was built")
				return nil, errors.New("unreachable")
			}},
		}
		s := New(Options{Devices: devs, Log: log, Retry: backoff.Policy{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.5 }}})
		gw := &fakeGateway{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, gw, map[string]any{"line": "bus value"}) }()
		<-s.Up() // after temp's first failure
		if _, ok := s.Actuator("seat"); !ok {
			t.Error("Actuator(seat) not found once up")
		}
		time.Sleep(3500 * time.Millisecond) // built at 0, 1s, 3s; polled at 3s
		sensor.fail(errors.New("crc"))
		time.Sleep(time.Second) // fails at 4s
		sensor.fail(nil)
		time.Sleep(time.Second) // back at 5s
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if diff := cmp.Diff([]time.Duration{0, time.Second, 3 * time.Second}, builds); diff != "" {
			t.Errorf("builds at (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]Counts{"temp": {Polls: 3, Errors: 1}}, s.PollStats()); diff != "" {
			t.Errorf("PollStats() (-want +got):\n%s", diff)
		}
		if _, ok := s.Actuator("seat"); ok {
			t.Error("Actuator(seat) still lent after Run returned")
		}
		select {
		case <-rl.closed:
		default:
			t.Error("relay not closed")
		}
		if !gw.isStopped() {
			t.Error("gateway still running after Run returned")
		}
		wantStatus := []string{"lost offline", "seat online", "temp offline", "temp online", "temp offline", "temp online"}
		got := gw.status()
		// "lost", "seat" and temp's first failure race at start; the
		// order per device is what counts.
		for _, dev := range []string{"lost", "seat", "temp"} {
			if diff := cmp.Diff(only(wantStatus, dev), only(got, dev)); diff != "" {
				t.Errorf("%s status (-want +got):\n%s", dev, diff)
			}
		}
		for _, want := range []string{
			`msg="device offline" device=lost err="bus \"gone\" unavailable"`,
			`msg="device offline" device=temp err="not built, retrying: no such port"`,
			`msg="device offline" device=temp err=crc`,
		} {
			if n := count(lines(), want); n != 1 {
				t.Errorf("%q logged %d times, want once; log:\n%s", want, n, strings.Join(lines(), "\n"))
			}
		}
		if n := count(lines(), `msg="device online" device=temp`); n != 2 {
			t.Errorf("temp back online logged %d times, want 2", n)
		}
	})
}

func only(ss []string, dev string) []string {
	var out []string
	for _, s := range ss {
		if strings.HasPrefix(s, dev+" ") {
			out = append(out, s)
		}
	}
	return out
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// streamer fails its first Stream at once; the second pushes its script
// and runs until ctx is done.
type streamer struct {
	rules  map[string]poll.Rule
	script [][]drivers.Reading
	calls  int
}

func (s *streamer) Name() string                { return "tyres" }
func (s *streamer) Close() error                { return nil }
func (s *streamer) Rules() map[string]poll.Rule { return s.rules }
func (s *streamer) Stream(ctx context.Context, emit func([]drivers.Reading)) error {
	s.calls++
	if s.calls == 1 {
		return errors.New("receiver gone")
	}
	for _, rs := range s.script {
		emit(rs)
	}
	<-ctx.Done()
	return ctx.Err()
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestStream: a stream's readings go through its rules' filter (none: as
// they come), a failed stream is offline and restarted after the backoff,
// and a pushed batch is online.
func TestStream(t *testing.T) {
	script := [][]drivers.Reading{
		{{Device: "tyres", Point: "fl_pressure", Value: 230.0, Time: t0}},
		{{Device: "tyres", Point: "fl_pressure", Value: 231.0, Time: t0.Add(time.Second)}},
		{{Device: "tyres", Point: "fl_pressure", Value: 240.0, Time: t0.Add(2 * time.Second)}},
	}
	for _, tt := range []struct {
		name  string
		rules map[string]poll.Rule
		want  []float64
	}{
		{"no rules: everything", nil, []float64{230, 231, 240}},
		{"deadband", map[string]poll.Rule{"fl_pressure": {Deadband: 5}}, []float64{230, 240}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &streamer{rules: tt.rules, script: script}
				s := New(Options{Devices: []Device{{Name: "tyres", Factory: func(drivers.Spec) (drivers.Device, error) { return st, nil }}},
					Retry: backoff.Policy{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.5 }}})
				gw := &fakeGateway{}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx, gw, nil) }()
				synctest.Wait()
				if diff := cmp.Diff([]string{"tyres offline"}, gw.status()); diff != "" {
					t.Errorf("after the failed stream (-want +got):\n%s", diff)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				cancel()
				<-done
				if st.calls != 2 {
					t.Errorf("Stream called %d times, want 2 (restarted after 1s)", st.calls)
				}
				if diff := cmp.Diff([]string{"tyres offline", "tyres online"}, gw.status()); diff != "" {
					t.Errorf("status (-want +got):\n%s", diff)
				}
				var got []float64
				for _, r := range gw.readings {
					got = append(got, r.Value.(float64))
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("emitted (-want +got):\n%s", diff)
				}
			})
		})
	}
}
