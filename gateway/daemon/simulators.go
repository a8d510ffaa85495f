package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
	"github.com/edgegw/edgegw/drivers/tpms/tpmssim"
	"github.com/edgegw/edgegw/gateway/config"
)

// simulatorKind is how the daemon handles one [[simulator]] kind: check
// decodes and validates its options without starting anything (Check,
// edgegw -check); start starts it until ctx is done (the field's run).
type simulatorKind struct {
	kind  string
	check func(s config.Simulator) error
	start func(ctx context.Context, s config.Simulator, log *slog.Logger) (*sim, error)
}

// simulators is every [[simulator]] kind: the one table that Check and
// startSimulator look a kind up in.
var simulators = []simulatorKind{
	{modbustest.KindRTU, checkModbusSim, startModbusSim},
	{modbustest.KindTCP, checkModbusSim, startModbusSim},
	{"i2c_sim", checkValid[i2csim.Opts], startI2CSim},
	{"gpio_sim", checkValid[gpiosim.Opts], startGPIOSim},
	{tpmssim.KindRTL433, checkTPMSSim, startTPMSSim},
	{tpmssim.KindModule, checkTPMSSim, startTPMSSim},
}

// SimulatorKinds are the [[simulator]] kinds the daemon can start.
var SimulatorKinds = func() []string {
	var kinds []string
	for _, s := range simulators {
		kinds = append(kinds, s.kind)
	}
	return kinds
}()

func lookupSimulator(kind string) (simulatorKind, bool) {
	for _, s := range simulators {
		if s.kind == kind {
			return s, true
		}
	}
	return simulatorKind{}, false
}

// sim is a running simulator.
type sim struct {
	close  func() error
	i2c    *i2csim.Bus  // i2c_sim
	pins   gpiosim.Pins // gpio_sim
	isGPIO bool
}

// startSimulator starts one [[simulator]]; ctx bounds its life.
func startSimulator(ctx context.Context, s config.Simulator, log *slog.Logger) (*sim, error) {
	if s.Link != "" {
		if err := os.MkdirAll(filepath.Dir(s.Link), 0o755); err != nil {
			return nil, err
		}
	}
	k, ok := lookupSimulator(s.Kind)
	if !ok {
		return nil, fmt.Errorf("unknown simulator kind %q (known: %s)", s.Kind, strings.Join(SimulatorKinds, ", "))
	}
	return k.start(ctx, s, log)
}

// checkValid decodes a simulator's options into an O and validates them.
func checkValid[O interface{ Validate() error }](s config.Simulator) error {
	var o O
	if err := s.DecodeOptions(&o); err != nil {
		return err
	}
	return o.Validate()
}

func checkModbusSim(s config.Simulator) error {
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
}

func startModbusSim(ctx context.Context, s config.Simulator, log *slog.Logger) (*sim, error) {
	var o modbustest.Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, err
	}
	o.Kind, o.Link, o.Listen, o.Log = s.Kind, s.Link, s.Listen, log
	m, err := modbustest.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &sim{close: m.Close}, nil
}

func checkTPMSSim(s config.Simulator) error {
	var o tpmssim.Opts
	if err := s.DecodeOptions(&o); err != nil {
		return err
	}
	o.Kind = s.Kind
	return o.Validate()
}

func startTPMSSim(ctx context.Context, s config.Simulator, log *slog.Logger) (*sim, error) {
	var o tpmssim.Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, err
	}
	o.Kind, o.Link, o.Log = s.Kind, s.Link, log
	m, err := tpmssim.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &sim{close: m.Close}, nil
}

func startI2CSim(ctx context.Context, s config.Simulator, _ *slog.Logger) (*sim, error) {
	var o i2csim.Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, err
	}
	m, err := i2csim.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &sim{close: m.Close, i2c: m.Bus()}, nil
}

func startGPIOSim(ctx context.Context, s config.Simulator, _ *slog.Logger) (*sim, error) {
	var o gpiosim.Opts
	if err := s.DecodeOptions(&o); err != nil {
		return nil, err
	}
	m, err := gpiosim.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &sim{close: m.Close, pins: m.Pins(), isGPIO: true}, nil
}
