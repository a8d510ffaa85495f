package i2csim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Opts configure the simulator kind "i2c_sim": one simulated bus with
// devices attached by address. In the gateway configuration:
//
//	[[simulator]]
//	name = "i2c_demo"
//	kind = "i2c_sim"
//	[[simulator.options.devices]]
//	model = "bme280"
//	addr = 0x76
//	temperature = 21.5    # °C
//	humidity = 40         # %RH
//	pressure = 101.3      # kPa (default 101.325)
//	drift_period = "10m"  # optional slow sine drift
//	drift_temperature = 1.5
//	drift_humidity = 5
//	drift_pressure = 0.2
//	[[simulator.options.devices]]
//	model = "registers"
//	addr = 0x48
//	registers = [{register = 0x00, data = "0c80"}]
//
// A bus of type "i2c" with device = "simulator:i2c_demo" then uses it.
type Opts struct {
	Devices []DeviceOpts `toml:"devices"`
}

// DeviceOpts configure one simulated device.
type DeviceOpts struct {
	Model string `toml:"model"` // "bme280" or "registers"
	Addr  uint16 `toml:"addr"`  // 7-bit address, 0x08..0x77

	// bme280: target values and drift.
	Temperature      float64       `toml:"temperature"` // °C
	Humidity         float64       `toml:"humidity"`    // %RH
	Pressure         float64       `toml:"pressure"`    // kPa; 0 means 101.325
	DriftPeriod      time.Duration `toml:"drift_period"`
	DriftTemperature float64       `toml:"drift_temperature"`
	DriftHumidity    float64       `toml:"drift_humidity"`
	DriftPressure    float64       `toml:"drift_pressure"`

	// registers: initial register contents.
	Registers []RegisterOpts `toml:"registers"`
}

// RegisterOpts set registers from Register on to the bytes of Data (hex).
type RegisterOpts struct {
	Register uint8  `toml:"register"`
	Data     string `toml:"data"`
}

// Validate reports every problem of o with its key path.
func (o Opts) Validate() error {
	var errs []error
	seen := make(map[uint16]int)
	for i, d := range o.Devices {
		at := fmt.Sprintf("devices[%d]", i)
		if d.Addr < 0x08 || d.Addr > 0x77 {
			errs = append(errs, fmt.Errorf("%s.addr: 0x%02x outside 0x08..0x77", at, d.Addr))
		} else if j, dup := seen[d.Addr]; dup {
			errs = append(errs, fmt.Errorf("%s.addr: 0x%02x already used by devices[%d]", at, d.Addr, j))
		} else {
			seen[d.Addr] = i
		}
		switch d.Model {
		case "bme280":
			if d.DriftPeriod < 0 {
				errs = append(errs, fmt.Errorf("%s.drift_period: must not be negative", at))
			}
		case "registers":
			for k, r := range d.Registers {
				if _, err := hex.DecodeString(r.Data); err != nil {
					errs = append(errs, fmt.Errorf("%s.registers[%d].data: %w", at, k, err))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("%s.model: %q is not bme280 or registers", at, d.Model))
		}
	}
	return errors.Join(errs...)
}

// Sim is a running "i2c_sim" simulator.
type Sim struct {
	bus *Bus
}

// Start builds the simulated bus and its devices. The simulation needs no
// goroutine: devices compute their answers when read.
func Start(_ context.Context, o Opts) (*Sim, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("i2csim: %w", err)
	}
	b := NewBus("sim")
	for _, d := range o.Devices {
		switch d.Model {
		case "bme280":
			env := Env{Temperature: d.Temperature, Humidity: d.Humidity, Pressure: d.Pressure}
			if env.Pressure == 0 {
				env.Pressure = 101.325
			}
			m := NewBME280(env)
			m.SetDrift(Drift{Period: d.DriftPeriod, Temperature: d.DriftTemperature, Humidity: d.DriftHumidity, Pressure: d.DriftPressure})
			b.Attach(d.Addr, m)
		case "registers":
			m := &Registers{}
			for _, r := range d.Registers {
				data, _ := hex.DecodeString(r.Data) // checked by Validate
				m.Set(r.Register, data...)
			}
			b.Attach(d.Addr, m)
		}
	}
	return &Sim{bus: b}, nil
}

// Bus returns the simulated bus, a periph i2c.Bus. Wrap it with
// drivers/i2c.New to schedule it like a real bus.
func (s *Sim) Bus() *Bus { return s.bus }

// Close stops the simulator.
func (s *Sim) Close() error { return nil }
