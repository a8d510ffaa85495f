package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestDelay(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Minute}
	tests := []struct {
		name    string
		rand    float64
		attempt int
		want    time.Duration
	}{
		{"first, centre", 0.5, 0, time.Second},
		{"first, low edge", 0, 0, 800 * time.Millisecond},
		{"first, high edge", 1, 0, 1200 * time.Millisecond},
		{"doubles", 0.5, 1, 2 * time.Second},
		{"doubles again", 0.5, 3, 8 * time.Second},
		{"low edge doubled", 0, 2, 3200 * time.Millisecond},
		{"capped", 0.5, 6, time.Minute},
		{"capped after jitter", 1, 6, time.Minute},
		{"below the cap by jitter", 0, 6, 48 * time.Second},
		{"huge attempt", 0.5, 1 << 30, time.Minute},
		{"negative attempt is the first", 0.5, -3, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := p
			p.Rand = fixed(tt.rand)
			if got := p.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) with rand %v = %v, want %v", tt.attempt, tt.rand, got, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		cur  time.Duration
		want time.Duration
	}{
		{"start", Policy{Min: time.Second, Max: time.Minute}, 0, time.Second},
		{"double", Policy{Min: time.Second, Max: time.Minute}, 4 * time.Second, 8 * time.Second},
		{"cap", Policy{Min: time.Second, Max: time.Minute}, 40 * time.Second, time.Minute},
		{"stay at cap", Policy{Min: time.Second, Max: time.Minute}, time.Minute, time.Minute},
		{"min above max", Policy{Min: time.Hour, Max: time.Minute}, 0, time.Minute},
		{"no overflow", Policy{Min: time.Second, Max: 1<<63 - 1}, 1 << 62, 1<<63 - 1},
	}
	for _, tt := range tests {
		if got := tt.p.Next(tt.cur); got != tt.want {
			t.Errorf("%s: Next(%v) = %v, want %v", tt.name, tt.cur, got, tt.want)
		}
	}
}

// TestSpreadBounds: with the real random source every delay stays within
// ±20 % of its period and never above Max.
func TestSpreadBounds(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for attempt := range 10 {
		per := p.Period(attempt)
		for range 200 {
			d := p.Delay(attempt)
			if lo := per - per/5; d < lo || d > per+per/5 || d > p.Max {
				t.Fatalf("Delay(%d) = %v, want within %v ±20 %% and at most %v", attempt, d, per, p.Max)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(t.Context(), 3*time.Second) {
			t.Fatal("Sleep = false with a live context")
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("slept %v, want 3s", got)
		}
		if !Sleep(t.Context(), 0) || !Sleep(t.Context(), -time.Second) {
			t.Error("Sleep(0) = false with a live context")
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		if Sleep(ctx, time.Minute) {
			t.Error("Sleep = true, want false when ctx ends first")
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("returned after %v, want 1s (when ctx ended)", got)
		}
		if Sleep(ctx, 0) {
			t.Error("Sleep(ctx, 0) = true with ctx ended")
		}
	})
}
