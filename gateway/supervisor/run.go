package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/backoff"
	"github.com/edgegw/edgegw/drivers/poll"
	"golang.org/x/sync/errgroup"
)

// Run runs gw and the devices until ctx is done; buses maps a Device.Bus
// to the value the factory gets as Spec.Bus. Stopping goes in three steps:
// the devices stop polling; then the gateway stops (it saves the numbers
// of every reading emitted; the commands on it were finished before, by
// gateway.Commands.Hold); then the devices close. Run returns gw's error, or nil. The buses must
// outlive Run.
func (s *Supervisor) Run(ctx context.Context, gw Gateway, buses map[string]any) error {
	s.mu.Lock()
	s.gw = gw
	s.mu.Unlock()
	defer s.markUp()

	g, gctx := errgroup.WithContext(ctx)
	gwCtx, stopGateway := context.WithCancel(context.Background())
	defer stopGateway()
	gwDone := make(chan struct{})
	var polling, tried sync.WaitGroup
	g.Go(func() error {
		defer close(gwDone)
		return gw.Run(gwCtx)
	})
	for _, d := range s.o.Devices {
		var bus any
		if d.Bus != "" {
			var ok bool
			if bus, ok = buses[d.Bus]; !ok {
				s.status(d.Name, false, fmt.Errorf("bus %q unavailable", d.Bus))
				continue
			}
		}
		polling.Add(1)
		tried.Add(1)
		h := hooks{tried: tried.Done, stopped: polling.Done, gwDone: gwDone}
		g.Go(func() error { s.device(gctx, d, bus, h); return nil })
	}
	go func() {
		tried.Wait()
		s.markUp()
	}()
	g.Go(func() error {
		<-gctx.Done()
		polling.Wait()
		stopGateway()
		return nil
	})
	return g.Wait()
}

// hooks tie a device's goroutine to Run.
type hooks struct {
	tried   func()          // called once the device was built (an actuator registered) or failed to be
	stopped func()          // called once the device stopped polling
	gwDone  <-chan struct{} // closed once the gateway stopped: then the device closes
}

// device builds one device and polls or streams it until ctx is done. Then
// it calls h.stopped and, once h.gwDone is closed, closes the device.
func (s *Supervisor) device(ctx context.Context, d Device, bus any, h hooks) {
	tried, stopped := sync.OnceFunc(h.tried), sync.OnceFunc(h.stopped)
	defer tried()
	defer stopped() // when no device was built
	log := s.log.With("device", d.Name, "kind", d.Kind)
	dev, ok := s.build(ctx, d, bus, log, tried)
	if !ok {
		return
	}
	defer func() {
		stopped()
		<-h.gwDone
		s.setActuator(d.Name, nil)
		if err := dev.Close(); err != nil {
			log.Warn("device close", "err", err)
		}
	}()
	if a, ok := dev.(drivers.Actuator); ok {
		s.setActuator(d.Name, a)
	}
	tried()
	switch dv := dev.(type) {
	case drivers.Sensor:
		s.poll(ctx, d, dv)
	case drivers.Streamer:
		s.stream(ctx, d, dv)
	default:
		s.status(d.Name, true, nil)
		<-ctx.Done()
	}
}

// build calls d's factory until it succeeds, waiting s.retry between
// attempts; the device is offline meanwhile, and tried is called after the
// first failure. It reports false if ctx ended first.
func (s *Supervisor) build(ctx context.Context, d Device, bus any, log *slog.Logger, tried func()) (drivers.Device, bool) {
	for attempt := 0; ; attempt++ {
		dev, err := d.Factory(drivers.Spec{Name: d.Name, Bus: bus, Decode: d.Decode, Log: log})
		if err == nil {
			return dev, true
		}
		s.status(d.Name, false, fmt.Errorf("not built, retrying: %w", err))
		tried()
		if !backoff.Sleep(ctx, s.retry.Delay(attempt)) {
			return nil, false
		}
	}
}

// poll polls sensor until ctx is done, counting its polls.
func (s *Supervisor) poll(ctx context.Context, d Device, sensor drivers.Sensor) {
	s.mu.Lock()
	st := s.dev(d.Name)
	st.polled = true
	s.mu.Unlock()
	var rules map[string]poll.Rule
	if r, ok := sensor.(poll.Ruler); ok {
		rules = r.Rules()
	}
	c := countedSensor{Sensor: sensor, s: s, st: st}
	var cs drivers.Sensor = c
	if pr, ok := sensor.(poll.PointReader); ok {
		cs = countedPoints{countedSensor: c, pr: pr}
	}
	p := poll.New(cs, poll.Options{Interval: d.Interval, Rules: rules, Emit: s.emit, OnStatus: s.Status})
	p.Run(ctx)
}

// emit hands readings to the gateway.
func (s *Supervisor) emit(rs []drivers.Reading) {
	s.mu.Lock()
	gw := s.gw
	s.mu.Unlock()
	gw.Emit(rs)
}

// stream runs st until ctx is done, restarting it with backoff when it
// fails; the backoff starts again after a stream that ran for a minute.
// A batch it pushes means the device is online.
func (s *Supervisor) stream(ctx context.Context, d Device, st drivers.Streamer) {
	emit := s.streamEmit(st)
	attempt := 0
	for ctx.Err() == nil {
		started := time.Now()
		err := st.Stream(ctx, func(rs []drivers.Reading) {
			s.status(d.Name, true, nil)
			emit(rs)
		})
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			attempt = 0
		}
		s.status(d.Name, false, fmt.Errorf("stream stopped, restarting: %w", err))
		if !backoff.Sleep(ctx, s.retry.Delay(attempt)) {
			return
		}
		attempt++
	}
}

// streamEmit returns how the readings of st reach the gateway: through a
// poll.Filter of its rules when it has some (poll.Ruler), as a polled
// sensor's do, else directly.
func (s *Supervisor) streamEmit(st drivers.Streamer) func([]drivers.Reading) {
	r, ok := st.(poll.Ruler)
	if !ok {
		return s.emit
	}
	rules := r.Rules()
	if len(rules) == 0 {
		return s.emit
	}
	f := poll.NewFilter(st.Name(), rules)
	return func(rs []drivers.Reading) {
		if out := f.Apply(time.Now().UTC(), rs); len(out) > 0 {
			s.emit(out)
		}
	}
}

// countedSensor counts a Sensor's polls and failed polls, and keeps the
// last failure for the log of its going offline. countedPoints adds
// poll.PointReader when the sensor has it.
type countedSensor struct {
	drivers.Sensor
	s  *Supervisor
	st *devState
}

func (c countedSensor) Read(ctx context.Context) ([]drivers.Reading, error) {
	rs, err := c.Sensor.Read(ctx)
	c.count(err)
	return rs, err
}

func (c countedSensor) count(err error) {
	c.st.polls.Add(1)
	if err != nil {
		c.st.errors.Add(1)
		c.s.mu.Lock()
		c.st.err = err
		c.s.mu.Unlock()
	}
}

type countedPoints struct {
	countedSensor
	pr poll.PointReader
}

func (c countedPoints) ReadPoints(ctx context.Context, names []string) ([]drivers.Reading, error) {
	rs, err := c.pr.ReadPoints(ctx, names)
	c.count(err)
	return rs, err
}
