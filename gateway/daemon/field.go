package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"golang.org/x/sync/errgroup"
)

// field is the part of the daemon a configuration reload replaces:
// simulators, buses, devices, pollers and the gateway's routes. The broker,
// the queue and the uplink live on across reloads.
type field struct {
	cfg *config.Config
	reg *drivers.Registry
	log *slog.Logger
	gw  *gateway.Gateway

	// mu guards acts, online and counts.
	mu     sync.Mutex
	acts   map[string]drivers.Actuator
	online map[string]bool
	counts map[string]*pollCounts

	// up is closed once every device was tried once (see markUp).
	up     chan struct{}
	upOnce sync.Once
}

// pollCounts are one device's poll figures, for /metrics.
type pollCounts struct {
	polls, errors atomic.Int64
}

// countedSensor counts a Sensor's polls and failed polls. countedPoints
// adds poll.PointReader when the sensor has it.
type countedSensor struct {
	drivers.Sensor
	c *pollCounts
}

func (s countedSensor) Read(ctx context.Context) ([]drivers.Reading, error) {
	rs, err := s.Sensor.Read(ctx)
	s.count(err)
	return rs, err
}

func (s countedSensor) count(err error) {
	s.c.polls.Add(1)
	if err != nil {
		s.c.errors.Add(1)
	}
}

type countedPoints struct {
	countedSensor
	pr poll.PointReader
}

func (s countedPoints) ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error) {
	rs, err := s.pr.ReadPoints(ctx, names)
	s.count(err)
	return rs, err
}

// counted wraps s for counting, keeping its poll capabilities.
func (f *field) counted(name string, s drivers.Sensor) (drivers.Sensor, map[string]poll.Rule) {
	c := &pollCounts{}
	f.mu.Lock()
	f.counts[name] = c
	f.mu.Unlock()
	var rules map[string]poll.Rule
	if r, ok := s.(poll.Ruler); ok {
		rules = r.Rules()
	}
	cs := countedSensor{Sensor: s, c: c}
	if pr, ok := s.(poll.PointReader); ok {
		return countedPoints{countedSensor: cs, pr: pr}, rules
	}
	return cs, rules
}

// pollStats returns each device's polls and failed polls.
func (f *field) pollStats() map[string][2]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][2]int64{}
	for n, c := range f.counts {
		out[n] = [2]int64{c.polls.Load(), c.errors.Load()}
	}
	return out
}

func routes(c *config.Config) []gateway.Route {
	var rs []gateway.Route
	for _, d := range c.Devices {
		r := gateway.Route{Device: d.Name, Interval: d.Interval.D()}
		for _, cm := range d.Commands {
			r.Commands = append(r.Commands, gateway.CommandRule{
				Name: cm.Name, Type: cm.Type, Min: cm.Min, Max: cm.Max, Values: cm.Values,
				Require: cm.Require, AutoOff: cm.AutoOff.D(), Verify: cm.Verify,
				RateLimit: cm.RateLimit.D(), Timeout: cm.Timeout.D(),
			})
		}
		rs = append(rs, r)
	}
	return rs
}

func commandPolicy(c config.Commands) gateway.CommandPolicy {
	return gateway.CommandPolicy{
		AllowNoExpiry: c.AllowNoExpiry, MaxExpiry: c.MaxExpiry.D(), MaxPayload: int(c.MaxPayload),
		MaxIDs: c.MaxIDs, MaxIDBytes: int(c.MaxIDBytes),
	}
}

// markUp closes up, once.
func (f *field) markUp() { f.upOnce.Do(func() { close(f.up) }) }

// newField builds the gateway of c; run starts everything else.
func newField(c *config.Config, reg *drivers.Registry, log *slog.Logger, d gateway.Deps) (*field, error) {
	f := &field{cfg: c, reg: reg, log: log, acts: map[string]drivers.Actuator{}, online: map[string]bool{}, counts: map[string]*pollCounts{},
		up: make(chan struct{})}
	d.Prefix = c.Gateway.Prefix()
	d.StateDir = c.Gateway.StateDir
	d.Actuator = f.actuator
	d.QoS = byte(c.Uplink.QoS)
	d.Commands = commandPolicy(c.Commands)
	d.Log = log
	gw, err := gateway.New(d, routes(c))
	if err != nil {
		return nil, err
	}
	f.gw = gw
	return f, nil
}

func (f *field) actuator(dev string) (drivers.Actuator, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.acts[dev]
	return a, ok
}

// status reports a device state change once, whoever notices it (the
// poller or the bus scheduler).
func (f *field) status(dev string, online bool) {
	f.mu.Lock()
	was, known := f.online[dev]
	f.online[dev] = online
	f.mu.Unlock()
	if known && was == online {
		return
	}
	if !online || known {
		f.log.Info("device status", "device", dev, "online", online)
	}
	f.gw.DeviceStatus(dev, online)
}

// devices returns the devices' states, for /healthz.
func (f *field) devices() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, d := range f.cfg.Devices {
		switch on, ok := f.online[d.Name]; {
		case !ok:
			out[d.Name] = "starting"
		case on:
			out[d.Name] = "online"
		default:
			out[d.Name] = "offline"
		}
	}
	return out
}

// run starts the simulators, opens the buses, builds and polls the devices
// and runs the gateway until ctx is done; then it stops pollers, closes
// devices, buses and simulators, in that order.
func (f *field) run(ctx context.Context) error {
	simCtx, stopSims := context.WithCancel(context.Background())
	sims := map[string]*sim{}
	defer func() {
		stopSims()
		for _, s := range sims {
			s.close()
		}
	}()
	for _, s := range f.cfg.Simulators {
		sm, err := startSimulator(simCtx, s, f.log.With("simulator", s.Name))
		if err != nil {
			return fmt.Errorf("simulator %q: %w", s.Name, err)
		}
		sims[s.Name] = sm
		f.log.Info("simulator started", "simulator", s.Name, "kind", s.Kind)
	}
	buses := map[string]*openBus{}
	defer func() {
		for _, b := range buses {
			b.close()
		}
	}()
	for _, b := range f.cfg.Buses {
		ob, err := openBusFor(b, sims, false, f.status, f.log)
		if err != nil {
			// An adapter that cannot be opened at all (no I2C on this
			// host): its devices are reported offline.
			f.log.Error("bus unavailable", "bus", b.Name, "err", err)
			continue
		}
		buses[b.Name] = ob
	}
	// Buses outlive the devices: they stop after the device group.
	busCtx, stopBuses := context.WithCancel(context.Background())
	var busWG sync.WaitGroup
	for _, b := range buses {
		busWG.Go(func() {
			if err := b.run(busCtx); err != nil {
				f.log.Error("bus stopped", "bus", b.name, "err", err)
			}
		})
	}
	defer func() {
		stopBuses()
		busWG.Wait()
	}()

	// up closes once every device was tried once, or when run returns.
	defer f.markUp()

	// Stopping goes in three steps. The devices stop polling. Then the
	// gateway stops: it waits for the commands it is applying and saves
	// the numbers of every reading emitted. Then the devices close.
	g, gctx := errgroup.WithContext(ctx)
	gwCtx, stopGateway := context.WithCancel(context.Background())
	defer stopGateway()
	gwDone := make(chan struct{})
	var polling, tried sync.WaitGroup
	g.Go(func() error {
		defer close(gwDone)
		return f.gw.Run(gwCtx)
	})
	for _, d := range f.cfg.Devices {
		var busValue any
		if d.Bus != "" {
			ob := buses[d.Bus]
			if ob == nil {
				f.status(d.Name, false)
				continue
			}
			busValue = ob.value
		}
		polling.Add(1)
		tried.Add(1)
		h := devHooks{tried: tried.Done, stopped: polling.Done, gwDone: gwDone}
		g.Go(func() error { f.device(gctx, d, busValue, h); return nil })
	}
	go func() {
		tried.Wait()
		f.markUp()
	}()
	g.Go(func() error {
		<-gctx.Done()
		polling.Wait()
		stopGateway()
		return nil
	})
	return g.Wait()
}

// devHooks tie a device's goroutine to its field's run.
type devHooks struct {
	tried   func()          // called once the device was built (an actuator registered) or failed to be
	stopped func()          // called once the device stopped polling
	gwDone  <-chan struct{} // closed once the gateway stopped: then the device closes
}

// device builds one device, retrying with backoff while its factory fails,
// and polls or streams it until ctx is done. Then it calls h.stopped and,
// once h.gwDone is closed, closes the device.
func (f *field) device(ctx context.Context, d config.Device, busValue any, h devHooks) {
	tried, stopped := sync.OnceFunc(h.tried), sync.OnceFunc(h.stopped)
	defer tried()
	defer stopped() // when no device was built
	log := f.log.With("device", d.Name, "kind", d.Kind)
	factory, _ := f.reg.Lookup(d.Kind) // checked before start
	var dev drivers.Device
	b := backoff{min: time.Second, max: time.Minute}
	for {
		var err error
		dev, err = factory(drivers.Spec{Name: d.Name, Bus: busValue, Decode: d.Decode, Log: log})
		if err == nil {
			break
		}
		if b.n == 0 {
			log.Warn("device not built, retrying", "err", err)
			f.status(d.Name, false)
		}
		tried()
		if !b.wait(ctx) {
			return
		}
	}
	defer func() {
		stopped()
		<-h.gwDone
		f.mu.Lock()
		delete(f.acts, d.Name)
		f.mu.Unlock()
		if err := dev.Close(); err != nil {
			log.Warn("device close", "err", err)
		}
	}()
	if a, ok := dev.(drivers.Actuator); ok {
		f.mu.Lock()
		f.acts[d.Name] = a
		f.mu.Unlock()
	}
	tried()
	switch s := dev.(type) {
	case drivers.Sensor:
		cs, rules := f.counted(d.Name, s)
		p := poll.New(cs, poll.Options{Interval: d.Interval.D(), Rules: rules, Emit: f.gw.Emit, OnStatus: f.status})
		p.Run(ctx)
	case drivers.Streamer:
		emit := streamEmit(ctx, s, f.gw.Emit)
		b := backoff{min: time.Second, max: time.Minute}
		for ctx.Err() == nil {
			started := time.Now()
			err := s.Stream(ctx, func(rs []drivers.Reading) {
				f.status(d.Name, true)
				emit(rs)
			})
			if ctx.Err() != nil {
				return
			}
			if time.Since(started) > time.Minute {
				b.n = 0
			}
			if b.n == 0 {
				log.Warn("stream failed, restarting", "err", err)
			}
			f.status(d.Name, false)
			if !b.wait(ctx) {
				return
			}
		}
	default:
		f.status(d.Name, true)
		<-ctx.Done()
	}
}

// backoff waits capped, jittered, doubling times.
type backoff struct {
	min, max time.Duration
	n        int
}

// wait sleeps the next period; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.min << min(b.n, 16)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.n++
	d += time.Duration((rand.Float64()*0.4 - 0.2) * float64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// streamEmit returns how the readings of s reach emit: through its rules
// filter when s has rules (poll.Ruler), else directly.
func streamEmit(ctx context.Context, s drivers.Streamer, emit func([]drivers.Reading)) func([]drivers.Reading) {
	if r, ok := s.(poll.Ruler); ok {
		if rules := r.Rules(); len(rules) > 0 {
			return streamFilter(ctx, s.Name(), rules, emit)
		}
	}
	return emit
}

// streamFilter applies per-point rules to a Streamer's readings, as the
// poll loop does to a Sensor's: outside min..max the quality becomes
// out_of_range, and a point with a deadband or max_silence is reported by
// exception. It runs each batch through a poll.Poller over a sensor that
// returns that batch, so both follow one implementation. Intervals do not
// apply to pushed readings and are ignored. The returned func is safe for
// concurrent use.
func streamFilter(ctx context.Context, device string, rules map[string]poll.Rule, emit func([]drivers.Reading)) func([]drivers.Reading) {
	flat := make(map[string]poll.Rule, len(rules))
	for n, r := range rules {
		r.Interval = 0
		flat[n] = r
	}
	src := &batchSensor{name: device}
	p := poll.New(src, poll.Options{Rules: flat, Emit: emit})
	var mu sync.Mutex
	return func(rs []drivers.Reading) {
		mu.Lock()
		defer mu.Unlock()
		src.batch = rs
		p.Poll(ctx)
		src.batch = nil
	}
}

// batchSensor is a drivers.Sensor whose Read returns the batch a Streamer
// just emitted.
type batchSensor struct {
	name  string
	batch []drivers.Reading
}

func (s *batchSensor) Name() string { return s.name }
func (s *batchSensor) Close() error { return nil }
func (s *batchSensor) Read(context.Context) ([]drivers.Reading, error) {
	return s.batch, nil
}
