// Package supervisor runs the devices of one configuration: it builds each
// device, retrying with backoff while its factory fails; polls a sensor
// (drivers/poll) or runs a stream through its points' rules (poll.Filter),
// restarting it with backoff; and holds what is known of the devices: the
// one status map, the poll counters and the actuators, lent to the gateway
// for commands.
//
// A device's status is reported by whoever notices a change, the poller or
// the bus scheduler (Status); the Supervisor keeps it, logs a change once
// and hands it on to the gateway, which publishes it.
//
// A reading's way through here: a sensor's Read (called by a poll.Poller
// at its interval) or a stream's emit (a TPMS receiver hearing a wheel)
// → the device's poll.Filter (range, report by exception) → Gateway.Emit.
// A command's way: the gateway, having checked it, asks Actuator for the
// device and calls its Set.
package supervisor

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/backoff"
)

// Gateway is what the Supervisor feeds: *gateway.Gateway.
type Gateway interface {
	// Run routes until ctx is done. The Supervisor runs it between the
	// devices' start and their close (see Supervisor.Run).
	Run(ctx context.Context) error
	// Emit routes readings; it is called from the devices' goroutines.
	Emit([]drivers.Reading)
	// DeviceStatus publishes a status change; it is called once per
	// change.
	DeviceStatus(device string, online bool)
}

// Device is one device to supervise.
type Device struct {
	Name, Kind string
	// Bus names the bus the device sits on, a key of Run's buses; "" for
	// none. A device whose bus is missing there is offline and not built.
	Bus string
	// Interval is a sensor's poll period (poll.Options.Interval).
	Interval time.Duration
	// Factory builds the device from its Spec.
	Factory drivers.Factory
	// Decode hands the device's options to the factory (Spec.Decode).
	Decode func(any) error
}

// Options configure a Supervisor.
type Options struct {
	Devices []Device
	// Retry is how long a device waits before it is built again, or its
	// stream restarted (default 1s doubling up to 1m, ±20 %).
	Retry backoff.Policy
	Log   *slog.Logger
}

// Supervisor runs devices; see the package comment. Its methods are safe
// for concurrent use.
type Supervisor struct {
	o     Options
	log   *slog.Logger
	retry backoff.Policy

	// mu guards gw and devs (the counters in a devState are atomic).
	mu   sync.Mutex
	gw   Gateway
	devs map[string]*devState

	// up is closed once every device was tried once, or Run returned.
	up     chan struct{}
	upOnce sync.Once
}

// devState is what the Supervisor knows of one device.
type devState struct {
	known, online bool             // known: a status was reported
	err           error            // the last failure seen, for the log
	act           drivers.Actuator // nil while not built, or not an actuator
	polled        bool             // a sensor: the counters are kept
	polls, errors atomic.Int64
}

// Counts are one sensor's polls and failed polls.
type Counts struct {
	Polls, Errors int64
}

// New returns a Supervisor of o.Devices; start it with Run.
func New(o Options) *Supervisor {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := o.Retry
	if retry.Min <= 0 {
		retry = backoff.Policy{Min: time.Second, Max: time.Minute, Rand: retry.Rand}
	}
	s := &Supervisor{o: o, log: log, retry: retry, devs: map[string]*devState{}, up: make(chan struct{})}
	for _, d := range o.Devices {
		s.devs[d.Name] = &devState{}
	}
	return s
}

// dev returns the state of name; s.mu must be held.
func (s *Supervisor) dev(name string) *devState {
	st := s.devs[name]
	if st == nil {
		st = &devState{} // a device on a bus but not in Options.Devices
		s.devs[name] = st
	}
	return st
}

// Up is closed once every device was built or failed to be, once: then an
// actuator that could be built is found by Actuator. It is closed when Run
// returns too.
func (s *Supervisor) Up() <-chan struct{} { return s.up }

func (s *Supervisor) markUp() { s.upOnce.Do(func() { close(s.up) }) }

// Actuator returns the built actuator named dev, for the gateway's
// commands.
func (s *Supervisor) Actuator(dev string) (drivers.Actuator, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.devs[dev]
	if st == nil || st.act == nil {
		return nil, false
	}
	return st.act, true
}

func (s *Supervisor) setActuator(dev string, a drivers.Actuator) {
	s.mu.Lock()
	s.dev(dev).act = a
	s.mu.Unlock()
}

// Status is told a device went online or offline; it is the OnChange of
// the buses and the OnStatus of the pollers. A change is logged once and
// handed to the gateway; a repeat is ignored.
func (s *Supervisor) Status(dev string, online bool) { s.status(dev, online, nil) }

// status is Status with the cause of going offline, if known; else the
// last failure seen is logged.
func (s *Supervisor) status(dev string, online bool, cause error) {
	s.mu.Lock()
	st := s.dev(dev)
	if cause != nil {
		st.err = cause
	}
	if st.known && st.online == online {
		s.mu.Unlock()
		return
	}
	known, err, gw := st.known, st.err, s.gw
	st.known, st.online = true, online
	if online {
		st.err = nil
	}
	s.mu.Unlock()
	switch {
	case !online && err != nil:
		s.log.Warn("device offline", "device", dev, "err", err)
	case !online:
		s.log.Warn("device offline", "device", dev)
	case known:
		s.log.Info("device online", "device", dev)
	}
	if gw != nil {
		gw.DeviceStatus(dev, online)
	}
}

// Devices returns each device's state: starting (nothing reported yet),
// online or offline.
func (s *Supervisor) Devices() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.o.Devices))
	for _, d := range s.o.Devices {
		switch st := s.devs[d.Name]; {
		case !st.known:
			out[d.Name] = "starting"
		case st.online:
			out[d.Name] = "online"
		default:
			out[d.Name] = "offline"
		}
	}
	return out
}

// PollStats returns each sensor's poll counts, for /metrics.
func (s *Supervisor) PollStats() map[string]Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Counts{}
	for n, st := range s.devs {
		if st.polled {
			out[n] = Counts{Polls: st.polls.Load(), Errors: st.errors.Load()}
		}
	}
	return out
}
