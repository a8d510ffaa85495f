package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/supervisor"
)

// field is the part of the daemon a configuration reload replaces:
// simulators, buses, the devices' supervisor and the gateway's routes. The
// broker, the queue and the uplink live on across reloads.
type field struct {
	cfg *config.Config
	log *slog.Logger
	gw  *gateway.Gateway
	sup *supervisor.Supervisor
}

// devices returns the devices' states, for /healthz and the console.
func (f *field) devices() map[string]string { return f.sup.Devices() }

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

// newField builds the supervisor and the gateway of c; run starts
// everything else.
func newField(c *config.Config, reg *drivers.Registry, log *slog.Logger, d gateway.Deps) (*field, error) {
	sup := supervisor.New(supervisor.Options{Devices: supervised(c, reg), Log: log})
	d.Prefix = c.Gateway.Prefix()
	d.StateDir = c.Gateway.StateDir
	d.Actuator = sup.Actuator
	d.QoS = byte(c.Uplink.QoS)
	d.Commands = commandPolicy(c.Commands)
	d.Log = log
	gw, err := gateway.New(d, routes(c))
	if err != nil {
		return nil, err
	}
	return &field{cfg: c, log: log, gw: gw, sup: sup}, nil
}

// supervised returns the devices of c, as the supervisor takes them.
func supervised(c *config.Config, reg *drivers.Registry) []supervisor.Device {
	ds := make([]supervisor.Device, 0, len(c.Devices))
	for _, d := range c.Devices {
		factory, _ := reg.Lookup(d.Kind) // checked before start
		ds = append(ds, supervisor.Device{Name: d.Name, Kind: d.Kind, Bus: d.Bus, Interval: d.Interval.D(),
			Factory: factory, Decode: d.Decode})
	}
	return ds
}

// run starts the simulators, opens the buses and runs the supervisor (the
// devices and the gateway) until ctx is done; then it stops the
// supervisor, the buses and the simulators, in that order.
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
		ob, err := openBusFor(b, sims, false, f.sup.Status, f.log)
		if err != nil {
			// An adapter that cannot be opened at all (no I2C on this
			// host): the supervisor reports its devices offline.
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

	values := make(map[string]any, len(buses))
	for n, b := range buses {
		values[n] = b.value
	}
	return f.sup.Run(ctx, f.gw, values)
}
