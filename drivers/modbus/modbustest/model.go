package modbustest

import (
	"fmt"
	"math"
	"time"
)

// Slave models. Their register maps are the ones drivers/modbusdev's
// profiles of the same names read.
const (
	// XYMD02 is the XY-MD02 (SHT20) RS-485 temperature and humidity
	// module: input register 1 temperature ×0.1 °C (int16), input
	// register 2 relative humidity ×0.1 %RH; holding registers 0x0101
	// (slave address) and 0x0102 (baud code). The values vary slowly.
	XYMD02 = "xy_md02"
	// SeatModule is a seat with an occupancy switch and a heater:
	// discrete input 0 occupied; coil 0 heater on; holding register 0
	// heater level 0..3 (0 off; the coil and the level follow each other,
	// a level above 3 is refused with illegal data value); input register
	// 0 seat temperature ×0.1 °C (int16), which warms towards 22 °C + 6 °C
	// per level and cools back to 22 °C. Simulator only: writing holding
	// register 0x0100 sets the occupancy input (1 occupied, 0 empty), so a
	// demo can toggle it with any Modbus master, e.g.
	// mbpoll -m tcp -p 1502 -a 2 -t 4 -0 -r 256 127.0.0.1 1
	SeatModule = "seat_module"
	// Relay8 is an eight-relay board: coils 0..7 drive the relays,
	// discrete inputs 0..7 read back their contacts.
	Relay8 = "relay8"
	// Empty is a slave with empty tables, for the caller to fill.
	Empty = "bank"
)

// AddModel adds slave id running model to the bank, with its initial
// values.
func (b *Bank) AddModel(id byte, model string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.units[id]; dup {
		return fmt.Errorf("modbustest: slave %d added twice", id)
	}
	u := b.unit(id)
	switch model {
	case XYMD02:
		u.regs[0][1] = uint16(int16(215))
		u.regs[0][2] = 450
		u.regs[1][0x0101] = uint16(id)
		u.regs[1][0x0102] = 0
	case SeatModule:
		u.bits[1][0] = false
		u.bits[0][0] = false
		u.regs[1][0] = 0
		u.regs[1][0x0100] = 0
		u.regs[0][0] = 220
		u.check = func(t Table, addr, v uint16) byte {
			if t == HoldingRegister && (addr == 0 && v > 3 || addr == 0x0100 && v > 1) {
				return IllegalDataValue
			}
			return 0
		}
		u.written = func(u *unit, t Table, addr uint16) {
			switch {
			case t == Coil && addr == 0:
				if on := u.bits[0][0]; on && u.regs[1][0] == 0 {
					u.regs[1][0] = 3
				} else if !on {
					u.regs[1][0] = 0
				}
			case t == HoldingRegister && addr == 0:
				u.bits[0][0] = u.regs[1][0] > 0
			case t == HoldingRegister && addr == 0x0100:
				u.bits[1][0] = u.regs[1][0x0100] != 0
			}
		}
	case Relay8:
		for i := range uint16(8) {
			u.bits[0][i] = false
			u.bits[1][i] = false
		}
		u.written = func(u *unit, t Table, addr uint16) {
			if t == Coil {
				u.bits[1][addr] = u.bits[0][addr]
			}
		}
	case Empty:
	default:
		delete(b.units, id)
		return fmt.Errorf("modbustest: unknown model %q (want %s, %s, %s or %s)", model, XYMD02, SeatModule, Relay8, Empty)
	}
	b.models = append(b.models, &modelAt{id: id, model: model, seat: 22})
	return nil
}

type modelAt struct {
	id    byte
	model string
	seat  float64 // seat temperature, °C, unrounded
}

// Step advances the models by dt at time since start: the XY-MD02's
// values drift, seats warm or cool. Sims call it once a second; tests may
// call it directly.
func (b *Bank) Step(since, dt time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.models {
		u := b.units[m.id]
		if u == nil {
			continue
		}
		switch m.model {
		case XYMD02:
			s := since.Seconds()
			temp := 21.5 + 1.5*math.Sin(2*math.Pi*s/600+float64(m.id))
			hum := 45 + 5*math.Sin(2*math.Pi*s/900+float64(m.id))
			u.regs[0][1] = uint16(int16(math.Round(temp * 10)))
			u.regs[0][2] = uint16(math.Round(hum * 10))
		case SeatModule:
			level := float64(u.regs[1][0])
			target := 22 + 6*level
			// First-order approach with a 30 s time constant.
			k := 1 - math.Exp(-dt.Seconds()/30)
			m.seat += (target - m.seat) * k
			u.regs[0][0] = uint16(int16(math.Round(m.seat * 10)))
		}
	}
}
