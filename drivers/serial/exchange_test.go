package serial

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers/bus"
)

var errBad = errors.New("bad frame")

func TestExchange(t *testing.T) {
	frame := Frame{Start: '$', End: '#', Max: 16, Check: func(b []byte) error {
		if string(b) == "$bad#" {
			return errBad
		}
		return nil
	}}
	tests := []struct {
		name    string
		reply   []string // chunks answered to each request
		want    string
		wantErr error
	}{
		{name: "reply", reply: []string{"$W1;ok*00#"}, want: "$W1;ok*00#"},
		{name: "split reply", reply: []string{"$W1", ";o", "k*00#"}, want: "$W1;ok*00#"},
		{name: "noise before", reply: []string{"\x00\xff~~", "$W#"}, want: "$W#"},
		{name: "trailing bytes dropped", reply: []string{"$W#$X#"}, want: "$W#"},
		{name: "cut frame then a whole one", reply: []string{"$W1;o", "$W2#"}, want: "$W2#"},
		{name: "no reply", reply: nil, wantErr: ErrNoReply},
		{name: "check fails", reply: []string{"$bad#"}, wantErr: errBad},
		{name: "no end", reply: []string{"$W1;ok"}, wantErr: ErrNoReply},
		{name: "too long", reply: []string{"$0123456789abcdefghij#"}, wantErr: ErrFrameTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newFakeConn()
				var reqs []string
				c.reply = func(req []byte) [][]byte {
					reqs = append(reqs, string(req))
					var out [][]byte
					for _, r := range tt.reply {
						out = append(out, []byte(r))
					}
					return out
				}
				p, err := Open(Config{Device: "/dev/null", Timeout: 300 * time.Millisecond, open: (&fakeDevice{conn: c}).open})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error)
				go func() { done <- p.Run(ctx) }()
				defer func() { cancel(); <-done }()

				c.in <- []byte("$late#") // a late reply to an earlier request
				start := time.Now()
				got, err := p.Exchange(ctx, "dev", bus.Poll, []byte("$W0#"), frame)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Exchange() = %q, %v; want %v", got, err, tt.wantErr)
					}
					if d := time.Since(start); d > 300*time.Millisecond {
						t.Errorf("Exchange failed after %v, beyond its 300ms timeout", d)
					}
					return
				}
				if err != nil || string(got) != tt.want {
					t.Fatalf("Exchange() = %q, %v; want %q", got, err, tt.want)
				}
				if len(reqs) != 1 || reqs[0] != "$W0#" {
					t.Errorf("requests written = %q, want one $W0#", reqs)
				}
			})
		})
	}
}

// TestExchangeOffline: a request on a line that is down fails at once with
// ErrOffline, and the scheduler quarantines the device after repeated
// failures.
func TestExchangeOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []bool
		dev := &fakeDevice{}
		p, err := Open(Config{Device: "/dev/null", ReopenMin: time.Minute, open: dev.open,
			OnChange: func(device string, online bool) { changes = append(changes, online) }})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		defer func() { cancel(); <-done }()
		start := time.Now()
		for i := range 3 {
			if _, err := p.Exchange(ctx, "dev", bus.Poll, []byte("$W0#"), Frame{Start: '$', End: '#', Max: 16}); !errors.Is(err, ErrOffline) {
				t.Fatalf("Exchange %d on a missing device = %v, want ErrOffline", i, err)
			}
		}
		if time.Since(start) != 0 {
			t.Errorf("offline exchanges took %v, want no wait", time.Since(start))
		}
		if _, err := p.Exchange(ctx, "dev", bus.Poll, []byte("$W0#"), Frame{Start: '$', End: '#', Max: 16}); !errors.Is(err, bus.ErrQuarantined) {
			t.Errorf("fourth Exchange = %v, want ErrQuarantined", err)
		}
		if len(changes) != 1 || changes[0] {
			t.Errorf("OnChange calls = %v, want one offline", changes)
		}
	})
}
