package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// start runs s until the test ends, inside the test's bubble.
func start(t *testing.T, o Options) *Scheduler {
	t.Helper()
	s := New(o)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
	return s
}

var errDevice = errors.New("no answer")

// silent behaves like a dead slave: it waits out its attempt's deadline.
func silent(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("%w: %w", errDevice, ctx.Err())
}

type exception struct{}

func (exception) Error() string  { return "exception 2" }
func (exception) Answered() bool { return true }

func TestCommandAheadOfPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, Options{})
		release := make(chan struct{})
		var mu sync.Mutex
		var order []string
		run := func(name string) func(context.Context) error {
			return func(context.Context) error {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return nil
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			s.Do(t.Context(), "a", Poll, func(context.Context) error { <-release; return run("busy")(nil) })
		})
		synctest.Wait()
		for _, n := range []string{"p1", "p2", "p3"} {
			wg.Go(func() { s.Do(t.Context(), "a", Poll, run(n)) })
			synctest.Wait()
		}
		wg.Go(func() { s.Do(t.Context(), "b", Command, run("cmd")) })
		synctest.Wait()
		close(release)
		wg.Wait()
		if diff := cmp.Diff([]string{"busy", "cmd", "p1", "p2", "p3"}, order); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})
}

func TestGapKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const gap = 5 * time.Millisecond
		s := start(t, Options{Gap: gap, Retries: 1})
		var starts []time.Time
		work := func(ctx context.Context) error {
			starts = append(starts, time.Now())
			time.Sleep(time.Millisecond)
			return nil
		}
		for range 3 {
			if err := s.Do(t.Context(), "a", Poll, work); err != nil {
				t.Fatal(err)
			}
		}
		// A retry keeps the gap too.
		fails := 0
		s.Do(t.Context(), "a", Poll, func(ctx context.Context) error {
			starts = append(starts, time.Now())
			time.Sleep(time.Millisecond)
			if fails++; fails == 1 {
				return errDevice
			}
			return nil
		})
		for i := 1; i < len(starts); i++ {
			if d := starts[i].Sub(starts[i-1]); d < gap+time.Millisecond {
				t.Errorf("transaction %d started %v after the previous one, want ≥ %v", i, d, gap+time.Millisecond)
			}
		}
		if len(starts) != 5 {
			t.Errorf("%d attempts, want 5", len(starts))
		}
	})
}

func TestTimeoutAndRetries(t *testing.T) {
	tests := []struct {
		name      string
		retries   int
		fails     int // attempts that fail before one succeeds
		fn        func(ctx context.Context) error
		wantCalls int
		wantTime  time.Duration
		wantErr   error
	}{
		{name: "timeout once", retries: 0, fn: silent, wantCalls: 1, wantTime: 200 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "timeout with retries", retries: 2, fn: silent, wantCalls: 3, wantTime: 600 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "recovers on retry", retries: 2, fails: 2, wantCalls: 3, wantTime: 0},
		{name: "exception not retried", retries: 2, fn: func(context.Context) error { return exception{} }, wantCalls: 1, wantErr: exception{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := start(t, Options{Timeout: 200 * time.Millisecond, Retries: tt.retries})
				calls := 0
				fn := tt.fn
				if fn == nil {
					fn = func(context.Context) error {
						if calls <= tt.fails {
							return errDevice
						}
						return nil
					}
				}
				t0 := time.Now()
				err := s.Do(t.Context(), "a", Poll, func(ctx context.Context) error {
					calls++
					return fn(ctx)
				})
				if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Do = %v, want %v", err, tt.wantErr)
				}
				if calls != tt.wantCalls {
					t.Errorf("%d calls, want %d", calls, tt.wantCalls)
				}
				if d := time.Since(t0); d != tt.wantTime {
					t.Errorf("Do took %v, want %v", d, tt.wantTime)
				}
			})
		})
	}
}

func TestQuarantine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type change struct {
			dev    string
			online bool
			at     time.Duration
		}
		t0 := time.Now()
		var mu sync.Mutex
		var changes []change
		s := start(t, Options{
			Timeout:         200 * time.Millisecond,
			QuarantineAfter: 3,
			BackoffMin:      time.Second,
			BackoffMax:      4 * time.Second,
			OnChange: func(dev string, online bool) {
				mu.Lock()
				changes = append(changes, change{dev, online, time.Since(t0)})
				mu.Unlock()
			},
		})
		dead := true
		calls := 0
		fn := func(ctx context.Context) error {
			calls++
			if dead {
				return silent(ctx)
			}
			return nil
		}
		for range 3 {
			if err := s.Do(t.Context(), "d", Poll, fn); !errors.Is(err, errDevice) {
				t.Fatalf("Do = %v, want %v", err, errDevice)
			}
		}
		if s.Online("d") {
			t.Fatal("device online after 3 failures")
		}
		// Quarantined: polls fail at once, without touching the bus.
		calls = 0
		if err := s.Do(t.Context(), "d", Poll, fn); !errors.Is(err, ErrQuarantined) {
			t.Fatalf("Do = %v, want ErrQuarantined", err)
		}
		// Others on the bus are not affected.
		if err := s.Do(t.Context(), "ok", Poll, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
		// Polling every 100 ms, the device is probed once per backoff
		// period: 1 s, 2 s, 4 s, 4 s (±20 %).
		probes := []time.Time{t0.Add(600 * time.Millisecond)} // quarantined then
		for time.Since(t0) < 20*time.Second {
			time.Sleep(100 * time.Millisecond)
			before := calls
			s.Do(t.Context(), "d", Poll, fn)
			if calls > before {
				probes = append(probes, time.Now())
			}
		}
		wantGaps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
		if len(probes) < len(wantGaps)+1 {
			t.Fatalf("%d probes in 20 s, want ≥ %d", len(probes)-1, len(wantGaps))
		}
		for i, want := range wantGaps {
			// The gap between probes is the backoff (jittered ±20 %, capped) plus the
			// 200 ms probe itself and up to one poll period.
			got := probes[i+1].Sub(probes[i])
			lo, hi := want*8/10, min(want*12/10, 4*time.Second)+400*time.Millisecond
			if got < lo || got > hi {
				t.Errorf("probe %d came %v after the previous one, want %v..%v", i+1, got, lo, hi)
			}
		}
		// Commands are always tried, even in quarantine.
		calls = 0
		s.Do(t.Context(), "d", Command, fn)
		if calls != 1 {
			t.Errorf("command in quarantine: %d calls, want 1", calls)
		}
		// Recovery: the next probe succeeds and the device is online.
		dead = false
		for s.Do(t.Context(), "d", Poll, fn) != nil {
			time.Sleep(100 * time.Millisecond)
		}
		if !s.Online("d") {
			t.Error("device still offline after a good probe")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 2 || changes[0].online || !changes[1].online || changes[0].at != 600*time.Millisecond {
			t.Errorf("changes = %+v, want offline at 600ms then online", changes)
		}
	})
}

func TestConcurrentProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, Options{Timeout: 100 * time.Millisecond, QuarantineAfter: 1, BackoffMin: time.Second})
		calls := 0
		fn := func(ctx context.Context) error { calls++; return silent(ctx) }
		s.Do(t.Context(), "d", Poll, fn)
		time.Sleep(2 * time.Second)
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { s.Do(t.Context(), "d", Poll, fn) })
		}
		wg.Wait()
		if calls != 2 {
			t.Errorf("%d calls, want 2 (one failure, one probe)", calls)
		}
	})
}

func TestCallerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		changed := false
		s := start(t, Options{QuarantineAfter: 1, OnChange: func(string, bool) { changed = true }})
		release := make(chan struct{})
		go s.Do(t.Context(), "a", Poll, func(context.Context) error { <-release; return nil })
		synctest.Wait()
		// Queued behind a busy bus, the caller gives up: Do returns at once
		// and fn never runs.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		ran := false
		t0 := time.Now()
		err := s.Do(ctx, "b", Poll, func(context.Context) error { ran = true; return nil })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) != 50*time.Millisecond {
			t.Errorf("Do = %v after %v, want deadline exceeded after 50ms", err, time.Since(t0))
		}
		close(release)
		synctest.Wait()
		if ran {
			t.Error("a cancelled transaction ran")
		}
		// Cancelled while running: not counted against the device.
		ctx2, cancel2 := context.WithCancel(t.Context())
		go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
		err = s.Do(ctx2, "c", Poll, silent)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %v, want context.Canceled", err)
		}
		synctest.Wait()
		if changed || !s.Online("c") {
			t.Error("a caller's cancellation put the device offline")
		}
	})
}

func TestRunShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		release := make(chan struct{})
		go s.Do(t.Context(), "a", Poll, func(context.Context) error { <-release; return nil })
		synctest.Wait()
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- s.Do(t.Context(), "b", Poll, func(context.Context) error { return nil }) }()
		}
		synctest.Wait()
		cancel()
		close(release)
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		for range 3 {
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Errorf("queued Do = %v, want ErrClosed", err)
			}
		}
		if err := s.Do(t.Context(), "b", Command, func(context.Context) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Do after Run = %v, want ErrClosed", err)
		}
	})
}
