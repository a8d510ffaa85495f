package daemon

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
)

// Check validates c completely without touching hardware: the config
// itself, the simulator and driver kinds, and every simulator's and
// device's own options, which each driver decodes and validates against an
// inert bus of the right type. It returns every problem joined.
func Check(c *config.Config, reg *drivers.Registry) error {
	errs := []error{c.Validate()}
	for i, s := range c.Simulators {
		k, ok := lookupSimulator(s.Kind)
		if !ok {
			errs = append(errs, c.Problemf(fmt.Sprintf("simulator[%d].kind", i), "unknown simulator kind %q", s.Kind))
			continue
		}
		if err := k.check(s); err != nil {
			for _, p := range c.SimulatorProblems(i, err) {
				errs = append(errs, p)
			}
		}
	}
	buses, closeBuses := inertBuses(c)
	defer closeBuses()
	for i, d := range c.Devices {
		f, ok := reg.Lookup(d.Kind)
		if !ok {
			if d.Kind != "" {
				errs = append(errs, c.Problemf(fmt.Sprintf("device[%d].kind", i), "unknown driver kind %q (known: %v)", d.Kind, reg.Kinds()))
			}
			continue
		}
		spec := drivers.Spec{Name: d.Name, Decode: d.Decode, Log: slog.New(slog.DiscardHandler)}
		if ob := buses[d.Bus]; ob != nil {
			spec.Bus = ob.value
		} else if d.Bus != "" {
			continue // reported by Validate
		}
		dev, err := f(spec)
		if err != nil {
			for _, p := range c.DeviceProblems(i, err) {
				errs = append(errs, p)
			}
			continue
		}
		dev.Close()
	}
	return errors.Join(errs...)
}
