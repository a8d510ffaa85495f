package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers/backoff"
)

// TestKeepRunning: an uplink that stops on an error of its own is started
// again after a growing wait, logged each time; it is not left stopped
// until the next restart of the gateway. The end of ctx ends it for good.
func TestKeepRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Read after synctest.Wait, which orders the writes before.
		var log strings.Builder
		logger := slog.New(slog.NewTextHandler(&log, nil))
		var starts []time.Duration
		begin := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		run := func(ctx context.Context) error {
			starts = append(starts, time.Since(begin))
			if len(starts) <= 3 {
				return errors.New("uplink: queue: read failed")
			}
			<-ctx.Done()
			return ctx.Err()
		}
		done := make(chan struct{})
		go func() {
			keepRunning(ctx, run, backoff.Policy{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.5 }}, logger)
			close(done)
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if len(starts) != len(want) {
			t.Fatalf("started at %v, want %v", starts, want)
		}
		for i := range want {
			if starts[i] != want[i] {
				t.Errorf("start %d at %v, want %v", i, starts[i], want[i])
			}
		}
		if n := strings.Count(log.String(), "uplink stopped, starting it again"); n != 3 {
			t.Errorf("%d restarts logged, want 3", n)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Error("keepRunning goes on after ctx ended")
		}
	})
}
