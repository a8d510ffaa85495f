package i2c_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/drivers/bus"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/google/go-cmp/cmp"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

var errGlitch = errors.New("glitch")

// flaky is a periph bus whose addresses fail a set number of times (-1:
// always, like an absent device) before answering with zeros.
type flaky struct {
	mu    sync.Mutex
	fails map[uint16]int
	txs   map[uint16]int
}

func (f *flaky) String() string                  { return "flaky" }
func (f *flaky) SetSpeed(physic.Frequency) error { return nil }
func (f *flaky) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txs[addr]++
	switch n := f.fails[addr]; {
	case n < 0:
		return errGlitch
	case n > 0:
		f.fails[addr] = n - 1
		return errGlitch
	}
	clear(r)
	return nil
}

// run starts b and stops it when the test ends.
func run(t *testing.T, b *i2c.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
}

func TestTxPlayback(t *testing.T) {
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x0c, 0x80}},
		{Addr: 0x48, W: []byte{0x01, 0x60, 0xa0}},
	}, DontPanic: true}
	b := i2c.New(pb, i2c.Config{Name: "1"})
	run(t, b)
	r := make([]byte, 2)
	if err := b.Tx(0x48, []byte{0x00}, r); err != nil {
		t.Fatalf("Tx = %v", err)
	}
	if diff := cmp.Diff([]byte{0x0c, 0x80}, r); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	if err := b.For("tmp").Tx(0x48, []byte{0x01, 0x60, 0xa0}, nil); err != nil {
		t.Fatalf("Conn.Tx = %v", err)
	}
	if err := b.SetSpeed(400 * physic.KiloHertz); err != nil {
		t.Errorf("SetSpeed = %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
	if got, want := b.String(), "i2c:1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name    string
		retries int
		fails   int
		wantErr bool
		wantTxs int
	}{
		{"clean", 0, 0, false, 1},
		{"glitch no retry", 0, 1, true, 1},
		{"glitch retried", 1, 1, false, 2},
		{"two glitches one retry", 1, 2, true, 2},
		{"absent", 2, -1, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{fails: map[uint16]int{0x40: tt.fails}, txs: map[uint16]int{}}
			b := i2c.New(f, i2c.Config{Retries: tt.retries})
			run(t, b)
			err := b.For("dev").Tx(0x40, []byte{0}, make([]byte, 2))
			if (err != nil) != tt.wantErr {
				t.Errorf("Tx = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errGlitch) {
				t.Errorf("Tx = %v, want it to wrap the bus error", err)
			}
			if got := f.txs[0x40]; got != tt.wantTxs {
				t.Errorf("bus saw %d transactions, want %d", got, tt.wantTxs)
			}
		})
	}
}

// TestQuarantinePerDevice checks that an absent device is quarantined under
// its own name while another device on the bus keeps answering.
func TestQuarantinePerDevice(t *testing.T) {
	f := &flaky{fails: map[uint16]int{0x40: -1}, txs: map[uint16]int{}}
	var mu sync.Mutex
	var changes []string
	b := i2c.New(f, i2c.Config{OnChange: func(dev string, online bool) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, dev+map[bool]string{true: " online", false: " offline"}[online])
	}})
	run(t, b)
	dead, live := b.For("dead"), b.For("live")
	for range 3 {
		if err := dead.Tx(0x40, []byte{0}, make([]byte, 1)); !errors.Is(err, errGlitch) {
			t.Fatalf("dead Tx = %v, want bus error", err)
		}
	}
	if err := dead.Tx(0x40, []byte{0}, make([]byte, 1)); !errors.Is(err, bus.ErrQuarantined) {
		t.Fatalf("dead Tx after 3 failures = %v, want ErrQuarantined", err)
	}
	if got := f.txs[0x40]; got != 3 {
		t.Errorf("quarantined device reached the bus: %d transactions, want 3", got)
	}
	for range 5 {
		if err := live.Tx(0x41, []byte{0}, make([]byte, 1)); err != nil {
			t.Fatalf("live Tx = %v", err)
		}
	}
	if b.Online("dead") || !b.Online("live") {
		t.Errorf("Online(dead, live) = %v, %v; want false, true", b.Online("dead"), b.Online("live"))
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"dead offline"}, changes); diff != "" {
		t.Errorf("OnChange calls (-want +got):\n%s", diff)
	}
}

// TestConnBindErr checks that the original transaction error survives a
// driver that flattens it, and that a bound context cancels queued work.
func TestConnBindErr(t *testing.T) {
	f := &flaky{fails: map[uint16]int{0x40: -1}, txs: map[uint16]int{}}
	b := i2c.New(f, i2c.Config{})
	run(t, b)
	c := b.For("dev")
	unbind := c.Bind(context.Background())
	_ = c.Tx(0x40, []byte{0}, nil)
	_ = c.Tx(0x41, []byte{0}, nil)
	unbind()
	if err := c.Err(); !errors.Is(err, errGlitch) {
		t.Errorf("Err() = %v, want the first transaction error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer c.Bind(ctx)()
	if err := c.Tx(0x41, []byte{0}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Tx with cancelled context = %v, want context.Canceled", err)
	}
	if got := f.txs[0x41]; got != 1 {
		t.Errorf("cancelled transaction reached the bus (%d transactions, want 1)", got)
	}
}

func TestClosedScheduler(t *testing.T) {
	f := &flaky{fails: map[uint16]int{}, txs: map[uint16]int{}}
	b := i2c.New(f, i2c.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := b.Tx(0x40, nil, make([]byte, 1)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Tx after Run returned = %v, want ErrClosed", err)
	}
}

// TestOpenMissing opens a bus this machine does not have.
func TestOpenMissing(t *testing.T) {
	_, err := i2c.Open(i2c.Config{Name: "/dev/i2c-97"})
	if err == nil {
		t.Skip("this machine has /dev/i2c-97")
	}
	if !errors.Is(err, i2c.ErrNoBus) && !strings.Contains(err.Error(), "i2c: open") {
		t.Errorf("Open(/dev/i2c-97) = %v, want ErrNoBus", err)
	}
}

// BenchmarkTx compares a transaction through the scheduler with the bare
// periph bus under it.
func BenchmarkTx(b *testing.B) {
	f := &flaky{fails: map[uint16]int{}, txs: map[uint16]int{}}
	r := make([]byte, 8)
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			_ = f.Tx(0x76, []byte{0xF7}, r)
		}
	})
	b.Run("scheduled", func(b *testing.B) {
		sb := i2c.New(f, i2c.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = sb.Run(ctx); close(done) }()
		c := sb.For("cabin")
		for b.Loop() {
			if err := c.Tx(0x76, []byte{0xF7}, r); err != nil {
				b.Fatal(err)
			}
		}
		cancel()
		<-done
	})
}
