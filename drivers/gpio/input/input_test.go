package input_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"github.com/edgegw/edgegw/drivers/gpio/input"
	"github.com/edgegw/edgegw/drivers/poll"
	pgpio "periph.io/x/conn/v3/gpio"
)

// seat returns a seat switch to ground on a pulled-up input: occupied reads
// true when the switch closes (line low).
func seat(t *testing.T) (*gpiosim.Pin, *input.Dev) {
	t.Helper()
	s, err := gpiosim.Start(context.Background(), gpiosim.Opts{Pins: []gpiosim.PinOpts{{Name: "GPIO27"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d, err := input.New(gpio.New(s.Pins(), gpio.Config{}), "seat_driver", input.Opts{
		Pin: "GPIO27", Pull: "up", Debounce: 50 * time.Millisecond, Invert: true, Point: "occupied",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s.Pin("GPIO27"), d
}

// bounce drives the pin through levels, each held for the given time.
type step struct {
	l    pgpio.Level
	for_ time.Duration
}

func bounce(p *gpiosim.Pin, steps []step) {
	for _, s := range steps {
		p.Drive(s.l)
		time.Sleep(s.for_)
	}
}

// closing is a switch closing with 30 ms of contact bounce.
var closing = []step{
	{pgpio.Low, 3 * time.Millisecond}, {pgpio.High, 5 * time.Millisecond},
	{pgpio.Low, 2 * time.Millisecond}, {pgpio.High, 10 * time.Millisecond},
	{pgpio.Low, 4 * time.Millisecond}, {pgpio.High, 6 * time.Millisecond},
	{pgpio.Low, 0},
}

func value(t *testing.T, rs []drivers.Reading) bool {
	t.Helper()
	if len(rs) != 1 || rs[0].Point != "occupied" || rs[0].Device != "seat_driver" {
		t.Fatalf("readings = %+v, want one occupied reading", rs)
	}
	return rs[0].Value.(bool)
}

func TestReadDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin, d := seat(t)
		ctx := context.Background()
		rs, err := d.Read(ctx)
		if err != nil || value(t, rs) {
			t.Fatalf("Read of an empty seat = %v, %v; want false", rs, err)
		}

		go bounce(pin, closing)
		time.Sleep(time.Millisecond) // in the middle of the bounce
		start := time.Now()
		rs, err = d.Read(ctx)
		if err != nil || !value(t, rs) {
			t.Fatalf("Read during contact bounce = %v, %v; want true once settled", rs, err)
		}
		// Settled 30 ms after the first contact, plus the debounce time.
		if took := time.Since(start); took < 50*time.Millisecond || took > 100*time.Millisecond {
			t.Errorf("Read took %v, want the bounce plus 50ms", took)
		}

		// A short glitch (shorter than the debounce time) is ignored.
		go bounce(pin, []step{{pgpio.High, 10 * time.Millisecond}, {pgpio.Low, 0}})
		rs, err = d.Read(ctx)
		if err != nil || !value(t, rs) {
			t.Errorf("Read across a 10ms glitch = %v, %v; want true", rs, err)
		}
	})
}

func TestReadBouncing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin, d := seat(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		chatter := func(ctx context.Context) {
			for l := pgpio.Low; ctx.Err() == nil; l = !l {
				pin.Drive(l)
				time.Sleep(10 * time.Millisecond)
			}
		}
		// Never settled before: an error.
		var wg sync.WaitGroup
		wg.Go(func() { chatter(ctx) })
		if _, err := d.Read(ctx); !errors.Is(err, input.ErrBouncing) {
			t.Errorf("Read of a chattering line = %v, want ErrBouncing", err)
		}
		cancel()
		wg.Wait()

		// Settled once: the last settled level.
		pin.Drive(pgpio.Low)
		if rs, err := d.Read(context.Background()); err != nil || !value(t, rs) {
			t.Fatalf("Read = %v, %v; want true", rs, err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		wg.Go(func() { chatter(ctx2) })
		if rs, err := d.Read(context.Background()); err != nil || !value(t, rs) {
			t.Errorf("Read of a chattering line after a settled true = %v, %v; want true", rs, err)
		}
		cancel2()
		wg.Wait()
	})
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin, d := seat(t)
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		type event struct {
			at time.Duration
			v  bool
		}
		var got []event
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			done <- d.Stream(ctx, func(rs []drivers.Reading) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, event{time.Since(start).Round(10 * time.Millisecond), value(t, rs)})
			})
		}()
		time.Sleep(time.Second)
		bounce(pin, closing)                                                    // sits down at 1s
		time.Sleep(2 * time.Second)                                             //
		bounce(pin, []step{{pgpio.High, 5 * time.Millisecond}, {pgpio.Low, 0}}) // glitch at 3s
		time.Sleep(2 * time.Second)
		bounce(pin, []step{{pgpio.High, 0}}) // gets up at 5s
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Stream = %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		// The initial state after one debounce period, each change one
		// debounce period after its last bounce, the glitch not at all.
		want := []event{{50 * time.Millisecond, false}, {1080 * time.Millisecond, true}, {5090 * time.Millisecond, false}}
		if len(got) != len(want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		for i := range want {
			if got[i].v != want[i].v || got[i].at < want[i].at-30*time.Millisecond || got[i].at > want[i].at+30*time.Millisecond {
				t.Errorf("event %d = %v, want %v (±30ms)", i, got[i], want[i])
			}
		}
	})
}

func TestFactory(t *testing.T) {
	s, err := gpiosim.Start(context.Background(), gpiosim.Opts{Pins: []gpiosim.PinOpts{{Name: "GPIO27"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	decode := func(o input.Opts) func(any) error {
		return func(v any) error { *v.(*input.Opts) = o; return nil }
	}
	tests := []struct {
		name    string
		spec    drivers.Spec
		wantErr string
	}{
		{"ok", drivers.Spec{Name: "seat", Bus: s.Pins(), Decode: decode(input.Opts{Pin: "GPIO27"})}, ""},
		{"wrong bus", drivers.Spec{Name: "seat", Bus: 1}, "bus is int"},
		{"bad options", drivers.Spec{Name: "seat", Bus: s.Pins(), Decode: decode(input.Opts{Pull: "sideways", Debounce: -time.Second, Rule: poll.Rule{MaxSilence: -time.Second}})},
			"pin: must be set\npull: \"sideways\" is not up, down, none or empty\ndebounce: -1s outside 0..10s\nmax_silence: -1s must not be negative"},
		{"unknown pin", drivers.Spec{Name: "seat", Bus: s.Pins(), Decode: decode(input.Opts{Pin: "GPIO4"})}, "no such pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := input.Factory(tt.spec)
			if tt.wantErr == "" {
				if err != nil || d.Name() != "seat" || d.Close() != nil {
					t.Fatalf("Factory = %v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Factory = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// noEdges is a pin without edge detection (a GPIO expander line).
type noEdges struct{ *gpiosim.Pin }

func (p noEdges) In(pull pgpio.Pull, edge pgpio.Edge) error {
	if edge != pgpio.NoEdge {
		return errors.New("no edge detection")
	}
	return p.Pin.In(pull, edge)
}

type pinsFunc func(string) (pgpio.PinIO, error)

func (f pinsFunc) Pin(name string) (pgpio.PinIO, error) { return f(name) }

func TestStreamWithoutEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := gpiosim.NewPin("X0", 0)
		d, err := input.New(pinsFunc(func(string) (pgpio.PinIO, error) { return noEdges{pin}, nil }), "seat", input.Opts{Pin: "X0", Pull: "down"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		events := make(chan bool, 10)
		done := make(chan error, 1)
		go func() { done <- d.Stream(ctx, func(rs []drivers.Reading) { events <- rs[0].Value.(bool) }) }()
		time.Sleep(time.Second)
		pin.Drive(pgpio.High)
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Stream = %v", err)
		}
		close(events)
		var got []bool
		for v := range events {
			got = append(got, v)
		}
		if len(got) != 2 || got[0] || !got[1] {
			t.Errorf("events = %v, want [false true]", got)
		}
	})
}

func TestRules(t *testing.T) {
	d, err := input.New(pinsFunc(func(n string) (pgpio.PinIO, error) { return gpiosim.NewPin(n, 0), nil }), "seat",
		input.Opts{Pin: "X", Point: "occupied", Rule: poll.Rule{MaxSilence: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Rules(); len(got) != 1 || got["occupied"].MaxSilence != time.Minute {
		t.Errorf("Rules() = %v, want occupied with max_silence 1m", got)
	}
}
