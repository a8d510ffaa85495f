// Package backoff computes capped, doubling, jittered retry delays: the bus
// scheduler's quarantine, a serial line's reopen and the device
// supervisor's rebuilds all wait this way, so that devices failing together
// do not retry in step.
//
// It imports no project package, so every tree below gateway may use it.
// mqtt/client keeps its own reconnect backoff: it draws from the upper half
// and spreads the first reconnect (reconnect_spread), a different policy.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter is the spread of a delay around its period: ±20 %.
const Jitter = 0.2

// Policy is a backoff schedule: periods of Min, 2·Min, 4·Min, … up to
// Max, each delay jittered by ±20 % and never above Max. The zero Policy
// has no wait at all. A Policy is a value, safe for concurrent use when
// Rand is.
type Policy struct {
	Min, Max time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2's Float64.
	// Tests inject a fixed one.
	Rand func() float64
}

// Period returns the un-jittered period of attempt (0 for the first
// retry): Min doubled attempt times, at most Max.
func (p Policy) Period(attempt int) time.Duration {
	d := p.Min
	for range max(attempt, 0) {
		d = p.Next(d)
		if d >= p.Max {
			break
		}
	}
	return min(d, p.Max)
}

// Next returns the period after cur: Min when cur is zero, else twice cur,
// at most Max.
func (p Policy) Next(cur time.Duration) time.Duration {
	if cur <= 0 {
		return min(p.Min, p.Max)
	}
	if cur > p.Max/2 {
		return p.Max
	}
	return 2 * cur
}

// Spread returns d moved by up to ±20 % at random, at most Max.
func (p Policy) Spread(d time.Duration) time.Duration {
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	j := d + time.Duration((r()*2*Jitter-Jitter)*float64(d))
	return max(0, min(j, p.Max))
}

// Delay returns the wait before retry attempt (0 for the first):
// Spread(Period(attempt)).
func (p Policy) Delay(attempt int) time.Duration {
	return p.Spread(p.Period(attempt))
}

// Sleep waits d. It reports false, at once, if ctx ends first (or has
// ended, whatever d).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
