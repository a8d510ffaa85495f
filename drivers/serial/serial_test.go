package serial

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // substrings of the joined error; none: valid
	}{
		{name: "minimal", c: Config{Device: "/dev/ttyUSB0"}},
		{name: "full", c: Config{Device: "/dev/ttyUSB0", Baud: 115200, DataBits: 7, Parity: "e", StopBits: 2, ReadTimeout: time.Second, ReopenMin: time.Second, ReopenMax: time.Minute}},
		{name: "everything wrong", c: Config{Baud: -1, DataBits: 9, Parity: "X", StopBits: 3, ReadTimeout: -1, ReopenMin: 2 * time.Second, ReopenMax: time.Second, Retries: -1},
			want: []string{"device: must be set", "baud: -1", "data_bits: 9 outside 5..8", `parity: "X"`, "stop_bits: 3", "read_timeout: -1ns", "reopen_max: 1s below reopen_min 2s", "retries: -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
			if _, err := Open(tt.c); err == nil {
				t.Errorf("Open accepted an invalid config")
			}
		})
	}
}

// TestReopenBackoff unplugs a line and checks that reopen attempts follow
// the capped, jittered, doubling backoff and that no Read blocks longer
// than the read timeout meanwhile.
func TestReopenBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rt   = 50 * time.Millisecond
			bmin = 100 * time.Millisecond
			bmax = time.Second
		)
		dev := &fakeDevice{}
		p, err := Open(Config{Device: "/dev/null", ReadTimeout: rt, ReopenMin: bmin, ReopenMax: bmax, open: dev.open})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		buf := make([]byte, 16)

		// The device is missing at start: 7 failed attempts, then it
		// appears.
		for len(dev.attempts()) < 7 {
			start := time.Now()
			_, err := p.Read(ctx, buf)
			if !errors.Is(err, ErrOffline) || !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("Read while missing = %v, want ErrOffline wrapping ENOENT", err)
			}
			if d := time.Since(start); d > rt {
				t.Fatalf("Read blocked %v, more than the read timeout %v", d, rt)
			}
		}
		want := []time.Duration{bmin, 2 * bmin, 4 * bmin, 8 * bmin, bmax, bmax}
		checkGaps(t, dev.attempts(), want, bmax)

		c := newFakeConn()
		dev.plug(c)
		deadline := time.Now().Add(2 * bmax)
		for !p.Online() && time.Now().Before(deadline) {
			if _, err := p.Read(ctx, buf); err != nil && !errors.Is(err, ErrOffline) {
				t.Fatal(err)
			}
		}
		c.in <- []byte("hello") // after the open, which flushes input
		var got string
		for got == "" && time.Now().Before(deadline) {
			n, err := p.Read(ctx, buf)
			if err != nil && !errors.Is(err, ErrOffline) {
				t.Fatal(err)
			}
			got = string(buf[:n])
		}
		if got != "hello" {
			t.Fatalf("after replug Read = %q, want %q", got, "hello")
		}
		if !p.Online() {
			t.Error("Online() = false after a successful read")
		}

		// Unplugged while open: the read fails once with ErrOffline,
		// and the first reopen comes after about ReopenMin.
		close(c.unplug)
		if _, err := p.Read(ctx, buf); !errors.Is(err, ErrOffline) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Read after unplug = %v, want ErrOffline wrapping EIO", err)
		}
		lostAt := time.Now()
		c2 := newFakeConn()
		dev.plug(c2)
		for !p.Online() && time.Now().Before(lostAt.Add(2*bmax)) {
			if _, err := p.Read(ctx, buf); err != nil && !errors.Is(err, ErrOffline) {
				t.Fatal(err)
			}
		}
		c2.in <- []byte("again")
		got = ""
		for got == "" && time.Now().Before(lostAt.Add(2*bmax)) {
			n, err := p.Read(ctx, buf)
			if err != nil && !errors.Is(err, ErrOffline) {
				t.Fatal(err)
			}
			got = string(buf[:n])
		}
		if got != "again" {
			t.Fatalf("after second replug Read = %q, want %q", got, "again")
		}
		a := dev.attempts()
		checkGaps(t, []time.Time{lostAt, a[len(a)-1]}, []time.Duration{bmin}, bmax)
		if s := p.Stats(); s != (Stats{Opens: 2, Losses: 1}) {
			t.Errorf("Stats() = %+v, want 2 opens, 1 loss", s)
		}
	})
}

func checkGaps(t *testing.T, at []time.Time, want []time.Duration, bmax time.Duration) {
	t.Helper()
	if len(at) != len(want)+1 {
		t.Fatalf("%d attempts, want %d", len(at), len(want)+1)
	}
	for i, w := range want {
		gap := at[i+1].Sub(at[i])
		lo, hi := time.Duration(0.8*float64(w)), min(time.Duration(1.2*float64(w)), bmax)
		if gap < lo || gap > hi {
			t.Errorf("gap before attempt %d = %v, want within [%v, %v]", i+2, gap, lo, hi)
		}
	}
}

func TestReadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := &fakeDevice{conn: newFakeConn()}
		p, err := Open(Config{Device: "/dev/null", ReadTimeout: 200 * time.Millisecond, open: dev.open})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		buf := make([]byte, 8)
		start := time.Now()
		n, err := p.Read(context.Background(), buf)
		if n != 0 || err != nil {
			t.Fatalf("Read on a quiet line = %d, %v; want 0, nil", n, err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Errorf("quiet Read took %v, want the read timeout 200ms", d)
		}
		// A context deadline sooner than the read timeout shortens it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start = time.Now()
		if n, err := p.Read(ctx, buf); n != 0 || err != nil {
			t.Fatalf("Read = %d, %v; want 0, nil", n, err)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("Read with a 30ms deadline took %v", d)
		}
		p.Close()
		if _, err := p.Read(context.Background(), buf); !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close = %v, want ErrClosed", err)
		}
		if _, err := p.Write([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close = %v, want ErrClosed", err)
		}
	})
}

func TestCloseUnblocksRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := &fakeDevice{conn: newFakeConn()}
		dev.conn.timeout = -1
		p, err := Open(Config{Device: "/dev/null", ReadTimeout: time.Hour, open: dev.open})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := p.Read(context.Background(), make([]byte, 8))
			done <- err
		}()
		synctest.Wait()
		p.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Read interrupted by Close = %v, want ErrClosed", err)
		}
	})
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		chunks  []string
		want    []string // lines; "!long" for ErrLineTooLong, "" for a timeout
		tooLong int64
	}{
		{name: "one line", max: 16, chunks: []string{"abc\n"}, want: []string{"abc", ""}},
		{name: "split and crlf", max: 16, chunks: []string{"ab", "c\r\nde", "f\n"}, want: []string{"abc", "def", ""}},
		{name: "two in one chunk", max: 16, chunks: []string{"a\nb\n"}, want: []string{"a", "b", ""}},
		{name: "partial waits", max: 16, chunks: []string{"abc"}, want: []string{"", ""}},
		{name: "exactly max", max: 4, chunks: []string{"abcd\n"}, want: []string{"abcd", ""}},
		{name: "too long then fine", max: 4, chunks: []string{"abcdefghij", "klmnop\nok\n"}, want: []string{"!long", "ok", ""}, tooLong: 1},
		{name: "too long in pieces", max: 4, chunks: []string{"ab", "cd", "e", "fg\nx\n"}, want: []string{"!long", "x", ""}, tooLong: 1},
		{name: "two too long", max: 2, chunks: []string{"abc\ndef\ngh\n"}, want: []string{"!long", "!long", "gh", ""}, tooLong: 2},
		{name: "empty lines", max: 4, chunks: []string{"\n\r\n"}, want: []string{"", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newFakeConn()
				p, err := Open(Config{Device: "/dev/null", open: (&fakeDevice{conn: c}).open})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				for _, ch := range tt.chunks {
					c.in <- []byte(ch)
				}
				lr := NewLineReader(p, tt.max)
				var got []string
				timeouts := 0
				for timeouts < 2 && len(got) < 20 {
					line, err := lr.ReadLine(context.Background())
					switch {
					case errors.Is(err, ErrLineTooLong):
						got = append(got, "!long")
					case err != nil:
						t.Fatal(err)
					case line == nil:
						timeouts++
						got = append(got, "")
					default:
						got = append(got, string(line))
					}
					if len(lr.buf) != tt.max+1 {
						t.Fatalf("buffer grew to %d bytes", len(lr.buf))
					}
				}
				// Drop the final timeouts the loop needed to stop.
				for len(got) > 0 && got[len(got)-1] == "" && len(got) > len(tt.want) {
					got = got[:len(got)-1]
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("lines (-want +got):\n%s", diff)
				}
				if lr.TooLong() != tt.tooLong {
					t.Errorf("TooLong() = %d, want %d", lr.TooLong(), tt.tooLong)
				}
			})
		})
	}
}

func TestLineReaderOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeConn()
		p, err := Open(Config{Device: "/dev/null", open: (&fakeDevice{conn: c}).open})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c.in <- []byte("partial")
		lr := NewLineReader(p, 64)
		if line, err := lr.ReadLine(context.Background()); line != nil || err != nil {
			t.Fatalf("ReadLine = %q, %v; want a timeout", line, err)
		}
		close(c.unplug)
		if _, err := lr.ReadLine(context.Background()); !errors.Is(err, ErrOffline) {
			t.Fatalf("ReadLine after unplug = %v, want ErrOffline", err)
		}
		if lr.w != 0 {
			t.Errorf("partial line kept after the line went down")
		}
	})
}

// FuzzLineReader feeds arbitrary bytes in arbitrary chunks: no panic, no
// line longer than the maximum, the buffer never grows.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("abc\ndef\r\n"), uint8(3), uint8(8))
	f.Add([]byte("abcdefghijklmnop\nq\n"), uint8(5), uint8(4))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, chunk, max uint8) {
		synctest.Test(t, func(t *testing.T) {
			c := newFakeConn()
			c.in = make(chan []byte, len(data)+1)
			p, err := Open(Config{Device: "/dev/null", open: (&fakeDevice{conn: c}).open})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			step := int(chunk%16) + 1
			for i := 0; i < len(data); i += step {
				c.in <- data[i:min(i+step, len(data))]
			}
			lr := NewLineReader(p, int(max))
			for range len(data) + 2 {
				line, err := lr.ReadLine(context.Background())
				if err != nil && !errors.Is(err, ErrLineTooLong) {
					t.Fatal(err)
				}
				if len(line) > lr.maxLen() {
					t.Fatalf("line of %d bytes, max %d", len(line), lr.maxLen())
				}
				if err == nil && line == nil {
					break
				}
			}
		})
	})
}

func (r *LineReader) maxLen() int { return len(r.buf) - 1 }
