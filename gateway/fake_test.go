package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/drivers"
)

// fakeBroker records publishes and delivers to subscribers.
type fakeBroker struct {
	mu   sync.Mutex
	msgs []Record
	subs []func(Record)
}

func (b *fakeBroker) Publish(_ context.Context, m Record) error {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	return nil
}

func (b *fakeBroker) Subscribe(filter string, qos byte, fn func(Record)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, fn)
	return func() {}, nil
}

func (b *fakeBroker) published() []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Record(nil), b.msgs...)
}

// fakeSpool keeps encoded records per class.
type fakeSpool struct {
	mu   sync.Mutex
	recs map[string][][]byte
	fail bool
}

func (s *fakeSpool) Put(class string, rec []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("full")
	}
	if s.recs == nil {
		s.recs = map[string][][]byte{}
	}
	s.recs[class] = append(s.recs[class], rec)
	return uint64(len(s.recs[class])), nil
}

func (s *fakeSpool) records(t *testing.T, class string) []Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, b := range s.recs[class] {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatalf("spooled record %x: %v", b, err)
		}
		out = append(out, r)
	}
	return out
}

// fakeActuator is a heater relay that, as a driver does, refuses a command
// whose context is done and reads its state back in Set when the command
// asks to verify.
type fakeActuator struct {
	mu     sync.Mutex
	state  map[string]any
	sets   []drivers.Command
	setErr error
	liar   bool          // the state read back is the opposite
	block  chan struct{} // if set before use, Set waits until it is closed
}

var _ drivers.StateReader = (*fakeActuator)(nil)

func (a *fakeActuator) Name() string { return "seat" }
func (a *fakeActuator) Close() error { return nil }
func (a *fakeActuator) Set(ctx context.Context, c drivers.Command) error {
	a.mu.Lock()
	block := a.block
	a.mu.Unlock()
	if block != nil {
		<-block
	}
	// As a driver does: a command whose context is done does not move
	// anything.
	if err := drivers.CheckDeadline(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.setErr != nil {
		return a.setErr
	}
	if a.state == nil {
		a.state = map[string]any{}
	}
	a.sets = append(a.sets, c)
	a.state[c.Command] = c.Value
	if got := a.stateLocked(c.Command); c.Verify && got != c.Value {
		return fmt.Errorf("verify: device reports %v, want %v", got, c.Value)
	}
	return nil
}
func (a *fakeActuator) State(ctx context.Context, cmd string) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stateLocked(cmd), nil
}
func (a *fakeActuator) stateLocked(cmd string) any {
	v := a.state[cmd]
	if b, ok := v.(bool); ok && a.liar {
		return !b
	}
	return v
}
func (a *fakeActuator) applied() []drivers.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]drivers.Command(nil), a.sets...)
}

// remote hands m to g's gate as a command from the cloud, as Commands
// does once it let it in.
func (g *Gateway) remote(ctx context.Context, m Record) Result {
	return g.command(ctx, m, false)
}
