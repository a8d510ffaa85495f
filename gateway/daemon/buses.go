package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/modbus"
	"github.com/edgegw/edgegw/drivers/serial"
	"github.com/edgegw/edgegw/gateway/config"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// openBus is an opened [[bus]]: value is what devices get as Spec.Bus.
type openBus struct {
	name  string
	value any
	run   func(context.Context) error
	close func() error
}

// inertBuses opens every bus of c inert (see openBusFor), for building
// devices without touching hardware; a bus that cannot be opened is left
// out. close closes them all.
func inertBuses(c *config.Config) (buses map[string]*openBus, close func()) {
	buses = map[string]*openBus{}
	quiet := slog.New(slog.DiscardHandler)
	for _, b := range c.Buses {
		if ob, err := openBusFor(b, nil, true, nil, quiet); err == nil {
			buses[b.Name] = ob
		}
	}
	return buses, func() {
		for _, ob := range buses {
			ob.close()
		}
	}
}

// openBusFor opens b. With inert set it builds a bus of the right type that
// touches nothing, for checking device options (edgegw -check).
func openBusFor(b config.Bus, sims map[string]*sim, inert bool, onChange func(string, bool), log *slog.Logger) (*openBus, error) {
	simName, isSim := strings.CutPrefix(b.Device, "simulator:")
	var sm *sim
	if isSim && !inert {
		sm = sims[simName]
		if sm == nil {
			return nil, fmt.Errorf("simulator %q is not running", simName)
		}
	}
	log = log.With("bus", b.Name)
	switch b.Type {
	case modbus.RTU, modbus.TCP:
		c := modbus.Config{
			Name: b.Name, Type: b.Type, Device: b.Device, Baud: b.Baud, Parity: b.Parity,
			DataBits: b.DataBits, StopBits: b.StopBits, Timeout: b.Timeout.D(), Gap: b.Gap.D(),
			Retries: b.Retries, OnChange: onChange, Log: log,
		}
		mb, err := modbus.Open(c) // opens the line on first use
		if err != nil {
			return nil, err
		}
		return &openBus{name: b.Name, value: mb, run: mb.Run, close: mb.Close}, nil
	case "serial":
		c := serial.Config{
			Name: b.Name, Device: b.Device, Baud: b.Baud, Parity: b.Parity, DataBits: b.DataBits,
			StopBits: b.StopBits, Timeout: b.Timeout.D(), Gap: b.Gap.D(), Retries: b.Retries,
			OnChange: onChange, Log: log,
		}
		if inert {
			c.Device = filepath.Join(os.TempDir(), "edgegw-check-no-such-port")
			c.Log = nil
		}
		p, err := serial.Open(c)
		if err != nil {
			return nil, err
		}
		return &openBus{name: b.Name, value: p, run: p.Run, close: p.Close}, nil
	case "i2c":
		c := i2c.Config{Name: b.Device, Timeout: b.Timeout.D(), Gap: b.Gap.D(), Retries: b.Retries, OnChange: onChange}
		var ib *i2c.Bus
		switch {
		case inert:
			ib = i2c.New(nullI2C{}, c)
		case sm != nil:
			if sm.i2c == nil {
				return nil, fmt.Errorf("simulator %q is not an I2C simulator", simName)
			}
			ib = i2c.New(sm.i2c, c)
		default:
			var err error
			if ib, err = i2c.Open(c); err != nil {
				return nil, err
			}
		}
		return &openBus{name: b.Name, value: ib, run: ib.Run, close: ib.Close}, nil
	case "gpio":
		c := gpio.Config{Name: b.Name, Log: log}
		var gb *gpio.Bus
		switch {
		case inert:
			gb = gpio.New(nullPins{}, c)
		case sm != nil:
			if !sm.isGPIO {
				return nil, fmt.Errorf("simulator %q is not a GPIO simulator", simName)
			}
			gb = gpio.New(sm.pins, c)
		default:
			var err error
			if gb, err = gpio.Open(c); err != nil {
				return nil, err
			}
		}
		return &openBus{name: b.Name, value: gb, run: gb.Run, close: gb.Close}, nil
	}
	return nil, fmt.Errorf("bus type %q", b.Type)
}

// nullI2C is an I2C bus that answers nothing, for -check.
type nullI2C struct{}

func (nullI2C) String() string                  { return "check" }
func (nullI2C) Tx(uint16, []byte, []byte) error { return errors.New("check: no I/O") }
func (nullI2C) SetSpeed(physic.Frequency) error { return nil }

// nullPins makes a free-standing simulated pin of every name, for -check.
type nullPins struct{}

func (nullPins) Pin(name string) (pgpio.PinIO, error) { return gpiosim.NewPin(name, 0), nil }
