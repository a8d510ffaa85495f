package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
	"github.com/edgegw/edgegw/drivers/tpms/tpmssim"
	"github.com/edgegw/edgegw/gateway/config"
)

// Check validates c completely without touching hardware: the config
// itself, the simulator and driver kinds, and every simulator's and
// device's own options, which each driver decodes and validates against an
// inert bus of the right type. It returns every problem joined.
func Check(c *config.Config, reg *drivers.Registry) error {
	errs := []error{c.Validate()}
	for i, s := range c.Simulators {
		if !slices.Contains(SimulatorKinds, s.Kind) {
			errs = append(errs, c.Problemf(fmt.Sprintf("simulator[%d].kind", i), "unknown simulator kind %q", s.Kind))
			continue
		}
		if err := checkSimulator(s); err != nil {
			for _, p := range c.SimulatorProblems(i, err) {
				errs = append(errs, p)
			}
		}
	}
	buses := map[string]*openBus{}
	quiet := slog.New(slog.DiscardHandler)
	for _, b := range c.Buses {
		ob, err := openBusFor(b, nil, true, nil, quiet)
		if err == nil {
			buses[b.Name] = ob
		}
	}
	defer func() {
		for _, ob := range buses {
			ob.close()
		}
	}()
	for i, d := range c.Devices {
		f, ok := reg.Lookup(d.Kind)
		if !ok {
			if d.Kind != "" {
				errs = append(errs, c.Problemf(fmt.Sprintf("device[%d].kind", i), "unknown driver kind %q (known: %v)", d.Kind, reg.Kinds()))
			}
			continue
		}
		spec := drivers.Spec{Name: d.Name, Decode: d.Decode, Log: quiet}
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

// checkSimulator decodes and validates a simulator's options.
func checkSimulator(s config.Simulator) error {
	switch s.Kind {
	case modbustest.KindRTU, modbustest.KindTCP:
		var o modbustest.Opts
		if err := s.DecodeOptions(&o); err != nil {
			return err
		}
		// The bank checks slave ids and models.
		b := modbustest.NewBank()
		var errs []error
		for i, sl := range o.Slaves {
			if sl.ID < 1 || sl.ID > 247 {
				errs = append(errs, fmt.Errorf("slaves[%d].id: %d outside 1..247", i, sl.ID))
			} else if err := b.AddModel(byte(sl.ID), sl.Model); err != nil {
				errs = append(errs, fmt.Errorf("slaves[%d].model: %w", i, err))
			}
		}
		return errors.Join(errs...)
	case tpmssim.KindRTL433, tpmssim.KindModule:
		var o tpmssim.Opts
		if err := s.DecodeOptions(&o); err != nil {
			return err
		}
		o.Kind = s.Kind
		return o.Validate()
	case "i2c_sim":
		var o i2csim.Opts
		if err := s.DecodeOptions(&o); err != nil {
			return err
		}
		return o.Validate()
	case "gpio_sim":
		var o gpiosim.Opts
		if err := s.DecodeOptions(&o); err != nil {
			return err
		}
		return o.Validate()
	}
	return nil
}
