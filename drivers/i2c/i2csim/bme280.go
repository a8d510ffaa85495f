package i2csim

import (
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// BME280 register map, from the Bosch BME280 datasheet (BST-BME280-DS002),
// section 5.3 "Memory map".
const (
	regCalib00  = 0x88 // calib00..calib25: dig_T1..dig_P9, pad, dig_H1
	regID       = 0xD0
	regReset    = 0xE0
	regCalib26  = 0xE1 // calib26..calib32: dig_H2..dig_H6
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regConfig   = 0xF5
	regData     = 0xF7 // press_msb..hum_lsb, 8 bytes

	chipIDBME280 = 0x60
	resetWord    = 0xB6
)

// Env is what a simulated BME280 senses.
type Env struct {
	Temperature float64 // °C
	Humidity    float64 // %RH
	Pressure    float64 // kPa
}

// Drift moves the sensed values slowly around their targets, as a sine of
// Period with the given amplitudes, so the demo has readings that change.
type Drift struct {
	Period      time.Duration
	Temperature float64 // °C
	Humidity    float64 // %RH
	Pressure    float64 // kPa
}

// calibration holds the trimming parameters of section 4.2.2, table 16.
type calibration struct {
	t1                             uint16
	t2, t3                         int16
	p1                             uint16
	p2, p3, p4, p5, p6, p7, p8, p9 int16
	h1                             uint8
	h2                             int16
	h3                             uint8
	h4, h5                         int16
	h6                             int8
}

// realCalibration was read from a real BME280.
var realCalibration = calibration{
	t1: 28176, t2: 26220, t3: 350,
	p1: 38237, p2: -10824, p3: 3024, p4: 7799, p5: -99, p6: -7, p7: 9900, p8: -10230, p9: 4285,
	h1: 75, h2: 366, h3: 0, h4: 309, h5: 0, h6: 30,
}

// BME280 is a simulated Bosch BME280 at one address. It answers like the
// chip: chip id 0x60, calibration registers, ctrl_hum/ctrl_meas/config,
// forced and normal mode, and raw ADC values in 0xF7..0xFE computed from the
// target Env by inverting the datasheet's compensation formulas, so a real
// driver decodes the target values (within the chip's resolution). Writes
// are register/value pairs (datasheet 6.2.1); reads auto-increment. Safe for
// concurrent use.
type BME280 struct {
	cal calibration

	// mu guards every field below.
	mu    sync.Mutex
	regs  [256]byte
	ptr   byte
	env   Env
	drift Drift
	start time.Time
	reads int
}

var _ Device = (*BME280)(nil)

// NewBME280 returns a BME280 sensing env, in sleep mode as after power-on.
func NewBME280(env Env) *BME280 {
	d := &BME280{cal: realCalibration, env: env, start: time.Now()}
	d.reset()
	return d
}

// SetEnv changes what the sensor senses.
func (d *BME280) SetEnv(env Env) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.env = env
}

// SetDrift sets a slow drift around the target values.
func (d *BME280) SetDrift(dr Drift) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drift = dr
}

// Measurements returns how many measurements the chip has taken.
func (d *BME280) Measurements() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reads
}

// reset puts the registers in their power-on state. d.mu held or d unshared.
func (d *BME280) reset() {
	d.regs = [256]byte{}
	d.regs[regID] = chipIDBME280
	c := d.cal
	le := binary.LittleEndian
	b := d.regs[regCalib00:]
	le.PutUint16(b[0:], c.t1)
	le.PutUint16(b[2:], uint16(c.t2))
	le.PutUint16(b[4:], uint16(c.t3))
	le.PutUint16(b[6:], c.p1)
	for i, p := range []int16{c.p2, c.p3, c.p4, c.p5, c.p6, c.p7, c.p8, c.p9} {
		le.PutUint16(b[8+2*i:], uint16(p))
	}
	b[25] = c.h1
	h := d.regs[regCalib26:]
	le.PutUint16(h[0:], uint16(c.h2))
	h[2] = c.h3
	// dig_H4 is 0xE4[7:0] / 0xE5[3:0], dig_H5 is 0xE5[7:4] / 0xE6[7:0].
	h[3] = byte(c.h4 >> 4)
	h[4] = byte(c.h4&0x0F) | byte(c.h5&0x0F)<<4
	h[5] = byte(c.h5 >> 4)
	h[6] = byte(c.h6)
	// Data registers read 0x80000 / 0x8000 until a measurement is taken.
	copy(d.regs[regData:], []byte{0x80, 0, 0, 0x80, 0, 0, 0x80, 0})
}

// Tx implements Device.
func (d *BME280) Tx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(w) > 0 {
		d.ptr = w[0]
		// Register/value pairs.
		for i := 0; i+1 < len(w); i += 2 {
			d.write(w[i], w[i+1])
		}
	}
	if len(r) > 0 {
		if d.regs[regCtrlMeas]&3 == 3 && d.ptr >= regData {
			d.measure() // normal mode: the chip keeps measuring
		}
		for i := range r {
			r[i] = d.regs[d.ptr]
			d.ptr++
		}
	}
	return nil
}

func (d *BME280) write(reg, v byte) {
	switch reg {
	case regReset:
		if v == resetWord {
			d.reset()
		}
	case regCtrlHum:
		d.regs[reg] = v & 0x07
	case regConfig:
		d.regs[reg] = v
	case regCtrlMeas:
		d.regs[reg] = v
		if mode := v & 3; mode == 1 || mode == 2 {
			// Forced mode: one measurement, then back to sleep. The
			// simulated conversion is instant, so status never shows
			// "measuring".
			d.measure()
			d.regs[reg] &^= 3
		}
	}
	// Every other register is read-only.
}

// now returns the current target values with the drift applied.
func (d *BME280) now() Env {
	e := d.env
	if p := d.drift.Period; p > 0 {
		s := math.Sin(2 * math.Pi * float64(time.Since(d.start)%p) / float64(p))
		e.Temperature += s * d.drift.Temperature
		e.Humidity += s * d.drift.Humidity
		e.Pressure += s * d.drift.Pressure
	}
	return e
}

// measure stores raw values for the current targets in the data registers.
func (d *BME280) measure() {
	d.reads++
	e := d.now()
	osrsT := d.regs[regCtrlMeas] >> 5
	osrsP := (d.regs[regCtrlMeas] >> 2) & 7
	osrsH := d.regs[regCtrlHum] & 7
	tRaw := d.cal.rawTemperature(e.Temperature)
	_, tFine := d.cal.temperature(tRaw)
	pRaw := d.cal.rawPressure(e.Pressure, tFine)
	hRaw := d.cal.rawHumidity(e.Humidity, tFine)
	// A skipped measurement reads 0x80000 (0x8000 for humidity), section 4.
	if osrsT == 0 {
		tRaw = 0x80000
	}
	if osrsP == 0 {
		pRaw = 0x80000
	}
	if osrsH == 0 {
		hRaw = 0x8000
	}
	b := d.regs[regData:]
	put20 := func(b []byte, v int32) {
		b[0], b[1], b[2] = byte(v>>12), byte(v>>4), byte(v<<4)
	}
	put20(b[0:], pRaw)
	put20(b[3:], tRaw)
	b[6], b[7] = byte(hRaw>>8), byte(hRaw)
}

// The compensation formulas of section 4.2.3 (and 8.2 for the 64-bit
// pressure variant), as the chip's users compute them.

// temperature returns the temperature in 0.01 °C and t_fine.
func (c *calibration) temperature(raw int32) (centi, tFine int32) {
	x := ((raw>>3 - int32(c.t1)<<1) * int32(c.t2)) >> 11
	y := ((((raw>>4 - int32(c.t1)) * (raw>>4 - int32(c.t1))) >> 12) * int32(c.t3)) >> 14
	tFine = x + y
	return (tFine*5 + 128) >> 8, tFine
}

// pressure returns the pressure in Pa as Q24.8.
func (c *calibration) pressure(raw, tFine int32) uint32 {
	x := int64(tFine) - 128000
	y := x * x * int64(c.p6)
	y += (x * int64(c.p5)) << 17
	y += int64(c.p4) << 35
	x = (x*x*int64(c.p3))>>8 + ((x * int64(c.p2)) << 12)
	x = ((int64(1)<<47 + x) * int64(c.p1)) >> 33
	if x == 0 {
		return 0
	}
	p := ((((1048576 - int64(raw)) << 31) - y) * 3125) / x
	x = (int64(c.p9) * (p >> 13) * (p >> 13)) >> 25
	y = (int64(c.p8) * p) >> 19
	return uint32(((p + x + y) >> 8) + (int64(c.p7) << 4))
}

// humidity returns the relative humidity in %RH as Q22.10.
func (c *calibration) humidity(raw, tFine int32) uint32 {
	x := tFine - 76800
	x1 := raw<<14 - int32(c.h4)<<20 - int32(c.h5)*x
	x2 := (x1 + 16384) >> 15
	x3 := (x * int32(c.h6)) >> 10
	x4 := (x * int32(c.h3)) >> 11
	x5 := (x3 * (x4 + 32768)) >> 10
	x6 := ((x5+2097152)*int32(c.h2) + 8192) >> 14
	x = x2 * x6
	x -= ((((x >> 15) * (x >> 15)) >> 7) * int32(c.h1)) >> 4
	x = min(max(x, 0), 419430400)
	return uint32(x >> 12)
}

// search returns the raw value in [0, n) whose compensated value f is
// nearest to want, for f monotonic in raw (increasing when up, else
// decreasing).
func search(n int32, up bool, want float64, f func(int32) float64) int32 {
	lo, hi := int32(0), n-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if v := f(mid); (v < want) == up {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo > 0 && math.Abs(f(lo-1)-want) < math.Abs(f(lo)-want) {
		return lo - 1
	}
	return lo
}

func (c *calibration) rawTemperature(celsius float64) int32 {
	return search(1<<20, true, celsius*100, func(raw int32) float64 {
		t, _ := c.temperature(raw)
		return float64(t)
	})
}

func (c *calibration) rawPressure(kPa float64, tFine int32) int32 {
	return search(1<<20, false, kPa*1000*256, func(raw int32) float64 {
		return float64(c.pressure(raw, tFine))
	})
}

func (c *calibration) rawHumidity(rh float64, tFine int32) int32 {
	return search(1<<16, true, rh*1024, func(raw int32) float64 {
		return float64(c.humidity(raw, tFine))
	})
}
