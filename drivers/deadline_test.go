package drivers

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestCheckDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		live, cancelLive := context.WithDeadline(bg, time.Now().Add(time.Second))
		defer cancelLive()
		past, cancelPast := context.WithDeadline(bg, time.Now().Add(-time.Second))
		defer cancelPast()
		cancelled, cancel := context.WithCancel(bg)
		cancel()
		tests := []struct {
			name string
			ctx  context.Context
			want error
		}{
			{"no deadline", bg, nil},
			{"before the deadline", live, nil},
			{"past the deadline", past, context.DeadlineExceeded},
			{"cancelled", cancelled, context.Canceled},
		}
		for _, tt := range tests {
			if err := CheckDeadline(tt.ctx); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("%s: CheckDeadline = %v, want %v", tt.name, err, tt.want)
			}
		}
		time.Sleep(time.Second)
		if err := CheckDeadline(live); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("at the deadline: CheckDeadline = %v, want %v", err, context.DeadlineExceeded)
		}
	})
}
