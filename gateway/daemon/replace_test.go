package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
)

// heldRelay is an actuator whose "heater on" waits until hold is closed.
// It notes a Close that comes while a Set is running.
type heldRelay struct {
	hold <-chan struct{}

	mu           sync.Mutex
	sets         []string // "command=value"
	setting      bool
	closed       bool
	closedMidSet bool
}

func (r *heldRelay) Name() string { return "seat" }

func (r *heldRelay) Set(ctx context.Context, c drivers.Command) error {
	r.mu.Lock()
	r.setting = true
	r.sets = append(r.sets, c.Command+"="+strings.ToLower(toString(c.Value)))
	r.mu.Unlock()
	if c.Command == "heater" && c.Value == true {
		<-r.hold
	}
	r.mu.Lock()
	r.setting = false
	r.mu.Unlock()
	return nil
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *heldRelay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.closedMidSet = r.closedMidSet || r.setting
	return nil
}

func (r *heldRelay) snapshot() (sets []string, closed, midSet bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sets), r.closed, r.closedMidSet
}

// localBus is the gateway's broker side: publishes are dropped, command
// subscriptions kept for the test to deliver to.
type localBus struct {
	mu   sync.Mutex
	subs []func(gateway.Record)
}

func (b *localBus) Publish(context.Context, gateway.Record) error { return nil }
func (b *localBus) Subscribe(_ string, _ byte, fn func(gateway.Record)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := len(b.subs)
	b.subs = append(b.subs, fn)
	return func() {
		b.mu.Lock()
		b.subs[i] = nil
		b.mu.Unlock()
	}, nil
}

// deliver hands m to the live subscribers, as the broker would.
func (b *localBus) deliver(m gateway.Record) {
	b.mu.Lock()
	subs := slices.Clone(b.subs)
	b.mu.Unlock()
	for _, fn := range subs {
		if fn != nil {
			fn(m)
		}
	}
}

// resultSpool numbers records per class and keeps the command results,
// by command id, and the telemetry sequence numbers. The next telemetry
// Put can be held.
type resultSpool struct {
	mu      sync.Mutex
	n       map[string]uint64
	results map[string][]string
	seqs    []int
	hold    chan struct{} // the next telemetry Put waits for it
}

func (s *resultSpool) Put(class string, rec []byte) (uint64, error) {
	var r gateway.Record
	if err := r.UnmarshalBinary(rec); err != nil {
		return 0, err
	}
	s.mu.Lock()
	hold := s.hold
	if class == gateway.ClassTelemetry {
		s.hold = nil
	} else {
		hold = nil
	}
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]uint64{}
	}
	s.n[class]++
	if class == gateway.ClassTelemetry {
		var t struct{ Seq int }
		json.Unmarshal(r.Payload, &t)
		s.seqs = append(s.seqs, t.Seq)
	}
	if strings.HasSuffix(r.Topic, "/result") {
		var res struct{ ID, Status string }
		json.Unmarshal(r.Payload, &res)
		if s.results == nil {
			s.results = map[string][]string{}
		}
		s.results[res.ID] = append(s.results[res.ID], res.Status)
	}
	return s.n[class], nil
}

func (s *resultSpool) of(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results[id])
}

// replaceEnv is a daemon with one field of a held relay, "seat", whose
// heater switches itself off after 30 minutes.
type replaceEnv struct {
	d      *daemon
	build  func(latest []drivers.Reading) (*field, error)
	bus    *localBus
	spool  *resultSpool
	hold   chan struct{}
	mu     sync.Mutex
	relays []*heldRelay // one per field built
}

func newReplaceEnv(t *testing.T) *replaceEnv {
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegw.toml")
	conf := `[gateway]
id = "TESTVIN"
state_dir = "` + dir + `"

[[device]]
name = "seat"
kind = "held_relay"

[[device.command]]
name = "heater"
type = "bool"
auto_off = "30m"

[[device.command]]
name = "fan"
type = "bool"
require = ["cabin.temperature"]

[[device]]
name = "cabin"
kind = "counter"
interval = "1s"
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &replaceEnv{bus: &localBus{}, spool: &resultSpool{}, hold: make(chan struct{})}
	var reg drivers.Registry
	reg.Register("held_relay", func(drivers.Spec) (drivers.Device, error) {
		r := &heldRelay{hold: e.hold}
		e.mu.Lock()
		e.relays = append(e.relays, r)
		e.mu.Unlock()
		return r, nil
	})
	reg.Register("counter", func(drivers.Spec) (drivers.Device, error) { return &counter{}, nil })
	log := slog.New(slog.DiscardHandler)
	deps := gateway.Deps{Publisher: e.bus, Spool: e.spool}
	e.d = &daemon{log: log}
	e.d.cmds = gateway.NewCommands(gateway.CommandOptions{Prefix: c.Gateway.Prefix(), Gateway: func() *gateway.Gateway { return e.d.field().gw }})
	if err := e.d.cmds.Subscribe(e.bus); err != nil {
		t.Fatal(err)
	}
	e.build = func(latest []drivers.Reading) (*field, error) {
		d := deps
		d.Latest = latest
		return newField(c, &reg, log, d)
	}
	return e
}

// run builds a field and starts it, and waits until its devices are up.
func (e *replaceEnv) run(t *testing.T) *running {
	t.Helper()
	f, err := e.build(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := e.d.start(f)
	synctest.Wait()
	return r
}

// stop stops r's field in the background; the channel closes when it
// has.
func (e *replaceEnv) stop(r *running) <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		e.d.replace(r, nil)
		close(stopped)
	}()
	return stopped
}

// reload replaces r's field with a new one in the background; the channel
// gets the new one once it runs.
func (e *replaceEnv) reload(t *testing.T, r *running) <-chan *running {
	replaced := make(chan *running, 1)
	go func() {
		nr, err := e.d.replace(r, e.build)
		if err != nil {
			t.Error(err)
		}
		replaced <- nr
	}()
	return replaced
}

func (e *replaceEnv) relay(t *testing.T, i int) *heldRelay {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.relays) <= i {
		t.Fatalf("%d relays built, want %d", len(e.relays), i+1)
	}
	return e.relays[i]
}

// counter is a sensor whose temperature goes up by one at each read, so
// that every poll is reported.
type counter struct{ n float64 }

func (c *counter) Name() string { return "cabin" }
func (c *counter) Close() error { return nil }
func (c *counter) Read(context.Context) ([]drivers.Reading, error) {
	c.n++
	return []drivers.Reading{{Point: "temperature", Value: c.n, Unit: "°C"}}, nil
}

func command(id, name string, on bool) gateway.Record {
	return gateway.Record{Topic: "vehicles/TESTVIN/cmd/seat/" + name, QoS: 2, Time: time.Now(),
		Payload: []byte(`{"id":"` + id + `","value":` + toString(on) + `,"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`)}
}

// TestReloadWaitsForRemoteCommand: a reload that comes while a remote
// command is applied waits for it: the command finishes on its actuator,
// which closes only then; a command arriving meanwhile goes to the new
// field; the new gateway knows the first command's id and arms its
// auto-off.
func TestReloadWaitsForRemoteCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newReplaceEnv(t)
		r := e.run(t)
		e.d.cmds.Remote(command("a", "heater", true))
		synctest.Wait()
		old := e.relay(t, 0)

		replaced := e.reload(t, r)
		synctest.Wait()
		e.d.cmds.Remote(command("b", "fan", true))
		synctest.Wait()
		select {
		case <-replaced:
			t.Fatal("reload did not wait for the command being applied")
		default:
		}
		if sets, closed, _ := old.snapshot(); closed || !slices.Equal(sets, []string{"heater=true"}) {
			t.Fatalf("while the command is applied: sets %v, closed %v", sets, closed)
		}

		close(e.hold)
		r = <-replaced
		synctest.Wait() // the commands are handled
		synctest.Wait()
		sets, closed, midSet := old.snapshot()
		if !closed || midSet || !slices.Equal(sets, []string{"heater=true"}) {
			t.Errorf("old relay: sets %v, closed %v, closed while setting %v", sets, closed, midSet)
		}
		if got := e.spool.of("a"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("results of a: %v, want [done]", got)
		}
		// b went to the new field, before its devices were read: the
		// old one's reading passed the interlock.
		if got := e.spool.of("b"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("results of b: %v, want [done]", got)
		}

		// The new gateway has the first command's id and its auto-off.
		e.d.cmds.Remote(command("a", "heater", true))
		synctest.Wait() // the commands are handled
		if got := e.spool.of("a"); !slices.Equal(got, []string{"done", "done"}) {
			t.Errorf("results of a sent again: %v, want [done done]", got)
		}
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		if sets, _, _ := e.relay(t, 1).snapshot(); slices.Contains(sets, "heater=true") || !slices.Contains(sets, "heater=false") {
			t.Errorf("new relay: sets %v, want the auto-off and not the repeated command", sets)
		}
		e.d.replace(r, nil)
	})
}

// TestReloadWaitsForLocalCommand: a command from the local broker meets
// the reload as a remote one does: the reload waits for it, and a local
// command arriving meanwhile goes to the new field instead of being lost.
func TestReloadWaitsForLocalCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newReplaceEnv(t)
		r := e.run(t)
		e.bus.deliver(command("a", "heater", true))
		synctest.Wait()
		old := e.relay(t, 0)

		replaced := e.reload(t, r)
		synctest.Wait()
		e.bus.deliver(command("b", "fan", true))
		synctest.Wait()
		select {
		case <-replaced:
			t.Fatal("reload did not wait for the local command being applied")
		default:
		}
		close(e.hold)
		r = <-replaced
		synctest.Wait()
		if sets, closed, midSet := old.snapshot(); !closed || midSet || !slices.Equal(sets, []string{"heater=true"}) {
			t.Errorf("old relay: sets %v, closed %v, closed while setting %v", sets, closed, midSet)
		}
		if got := e.spool.of("a"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("results of a: %v, want [done]", got)
		}
		if got := e.spool.of("b"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("results of b: %v, want [done]", got)
		}
		if sets, _, _ := e.relay(t, 1).snapshot(); !slices.Equal(sets, []string{"fan=true"}) {
			t.Errorf("new relay: sets %v, want [fan=true]", sets)
		}
		e.d.replace(r, nil)
	})
}

// TestStopWaitsForLocalCommand: stopping a field while a command from the
// local broker is applied closes the actuator only after it.
func TestStopWaitsForLocalCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newReplaceEnv(t)
		r := e.run(t)
		go e.bus.deliver(command("a", "heater", true))
		synctest.Wait()
		stopped := e.stop(r)
		synctest.Wait()
		rl := e.relay(t, 0)
		if _, closed, _ := rl.snapshot(); closed {
			t.Fatal("relay closed while its command is applied")
		}
		close(e.hold)
		<-stopped
		if sets, closed, midSet := rl.snapshot(); !closed || midSet || !slices.Equal(sets, []string{"heater=true"}) {
			t.Errorf("relay: sets %v, closed %v, closed while setting %v", sets, closed, midSet)
		}
		if got := e.spool.of("a"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("results of a: %v, want [done]", got)
		}
	})
}

// TestStopSavesEveryNumber stops a field while a reading is being spooled:
// the gateway saves its sequence number before it closes, so the next
// field goes on from it even without the queue's tail to recover from.
func TestStopSavesEveryNumber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newReplaceEnv(t)
		r := e.run(t)
		hold := make(chan struct{})
		e.spool.mu.Lock()
		e.spool.hold = hold
		e.spool.mu.Unlock()
		time.Sleep(time.Second) // the next poll's Put waits
		synctest.Wait()
		stopped := e.stop(r)
		synctest.Wait()
		close(hold)
		<-stopped

		r = e.run(t)
		e.d.replace(r, nil)
		e.spool.mu.Lock()
		defer e.spool.mu.Unlock()
		if !slices.Equal(e.spool.seqs, []int{1, 2, 3}) {
			t.Errorf("telemetry seq %v, want [1 2 3]", e.spool.seqs)
		}
	})
}
