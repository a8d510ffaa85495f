package modbustest

import (
	"encoding/binary"
	"sync"
	"time"
)

// Table is one of the four Modbus data tables.
type Table int

// Data tables, Modbus Application Protocol V1.1b3 §4.3.
const (
	Coil Table = iota
	DiscreteInput
	InputRegister
	HoldingRegister
)

// Exception codes answered by the simulator.
const (
	IllegalFunction    = 0x01
	IllegalDataAddress = 0x02
	IllegalDataValue   = 0x03
	ServerDeviceBusy   = 0x06
)

// Fault makes a slave misbehave. The zero value is a healthy slave.
type Fault struct {
	Dead      bool          // never answers
	Delay     time.Duration // answers this late
	Noise     int           // RTU: this many random bytes before the answer
	Garbage   bool          // answers random bytes (TCP: a broken header)
	Exception byte          // answers every request with this exception
}

// Bank holds the data of the simulated slaves, by slave id. It is safe for
// concurrent use: the RTU and TCP servers, the slave models and tests all
// use it at once.
type Bank struct {
	// mu guards units and models.
	mu     sync.Mutex
	units  map[byte]*unit
	models []*modelAt
}

type unit struct {
	bits  [2]map[uint16]bool   // Coil, DiscreteInput
	regs  [2]map[uint16]uint16 // InputRegister, HoldingRegister
	fault Fault
	reqs  int // requests handled
	// check, if set, vets a write (table, address, value) and returns an
	// exception code, 0 to accept. Called with mu held.
	check func(t Table, addr, v uint16) byte
	// written, if set, is called after a write, with mu held.
	written func(u *unit, t Table, addr uint16)
}

// NewBank returns an empty bank.
func NewBank() *Bank { return &Bank{units: make(map[byte]*unit)} }

// AddSlave makes slave id answer, with empty tables; it is a no-op if id
// exists. Addresses answer only once set.
func (b *Bank) AddSlave(id byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unit(id)
}

func (b *Bank) unit(id byte) *unit {
	u := b.units[id]
	if u == nil {
		u = &unit{
			bits: [2]map[uint16]bool{{}, {}},
			regs: [2]map[uint16]uint16{{}, {}},
		}
		b.units[id] = u
	}
	return u
}

// SetFault sets the fault of slave id (the zero Fault heals it).
func (b *Bank) SetFault(id byte, f Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unit(id).fault = f
}

// Requests returns how many requests slave id has handled (answered or
// not, faults aside).
func (b *Bank) Requests(id byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u, ok := b.units[id]; ok {
		return u.reqs
	}
	return 0
}

func (b *Bank) faultOf(id byte) (Fault, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.units[id]
	if !ok {
		return Fault{}, false
	}
	return u.fault, true
}

// SetBit sets a coil or discrete input of slave id.
func (b *Bank) SetBit(id byte, t Table, addr uint16, v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unit(id).bits[t&1][addr] = v
}

// Bit returns a coil or discrete input of slave id; ok is false if unset.
func (b *Bank) Bit(id byte, t Table, addr uint16) (v, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, found := b.units[id]
	if !found {
		return false, false
	}
	v, ok = u.bits[t&1][addr]
	return v, ok
}

// SetRegister sets an input or holding register of slave id.
func (b *Bank) SetRegister(id byte, t Table, addr, v uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unit(id).regs[t&1][addr] = v
}

// Register returns an input or holding register of slave id; ok is false if
// unset.
func (b *Bank) Register(id byte, t Table, addr uint16) (v uint16, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, found := b.units[id]
	if !found {
		return 0, false
	}
	v, ok = u.regs[t&1][addr]
	return v, ok
}

func exception(fc, code byte) []byte { return []byte{fc | 0x80, code} }

// Handle answers one request PDU for slave id. It returns nil if the slave
// does not exist (no answer), else the answer PDU, which may be an
// exception. Faults are the servers' business, except Exception.
func (b *Bank) Handle(id byte, pdu []byte) []byte {
	if len(pdu) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.units[id]
	if !ok {
		return nil
	}
	u.reqs++
	fc := pdu[0]
	if fc&0x80 != 0 {
		return exception(fc&0x7F, IllegalFunction)
	}
	if u.fault.Exception != 0 {
		return exception(fc, u.fault.Exception)
	}
	data := pdu[1:]
	switch fc {
	case 1, 2, 3, 4:
		if len(data) != 4 {
			return exception(fc, IllegalDataValue)
		}
		addr := binary.BigEndian.Uint16(data)
		qty := binary.BigEndian.Uint16(data[2:])
		if fc <= 2 {
			return u.readBits(fc, Table(fc-1), addr, qty)
		}
		t := HoldingRegister
		if fc == 4 {
			t = InputRegister
		}
		return u.readRegs(fc, t, addr, qty)
	case 5:
		if len(data) != 4 {
			return exception(fc, IllegalDataValue)
		}
		addr, v := binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
		if v != 0 && v != 0xFF00 {
			return exception(fc, IllegalDataValue)
		}
		if ex := u.writeBits(Coil, addr, []bool{v == 0xFF00}); ex != 0 {
			return exception(fc, ex)
		}
		return append([]byte{fc}, data...)
	case 6:
		if len(data) != 4 {
			return exception(fc, IllegalDataValue)
		}
		addr, v := binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
		if ex := u.writeRegs(addr, []uint16{v}); ex != 0 {
			return exception(fc, ex)
		}
		return append([]byte{fc}, data...)
	case 15, 16:
		if len(data) < 5 {
			return exception(fc, IllegalDataValue)
		}
		addr, qty, n := binary.BigEndian.Uint16(data), int(binary.BigEndian.Uint16(data[2:])), int(data[4])
		vals := data[5:]
		if fc == 15 {
			if qty < 1 || qty > 1968 || n != (qty+7)/8 || len(vals) != n {
				return exception(fc, IllegalDataValue)
			}
			bits := make([]bool, qty)
			for i := range bits {
				bits[i] = vals[i/8]&(1<<(i%8)) != 0
			}
			if ex := u.writeBits(Coil, addr, bits); ex != 0 {
				return exception(fc, ex)
			}
		} else {
			if qty < 1 || qty > 123 || n != 2*qty || len(vals) != n {
				return exception(fc, IllegalDataValue)
			}
			regs := make([]uint16, qty)
			for i := range regs {
				regs[i] = binary.BigEndian.Uint16(vals[2*i:])
			}
			if ex := u.writeRegs(addr, regs); ex != 0 {
				return exception(fc, ex)
			}
		}
		return append([]byte{fc}, data[:4]...)
	default:
		return exception(fc, IllegalFunction)
	}
}

func (u *unit) readBits(fc byte, t Table, addr, qty uint16) []byte {
	if qty < 1 || qty > 2000 {
		return exception(fc, IllegalDataValue)
	}
	if int(addr)+int(qty) > 0x10000 {
		return exception(fc, IllegalDataAddress)
	}
	out := make([]byte, 2+(int(qty)+7)/8)
	out[0], out[1] = fc, byte(len(out)-2)
	for i := range int(qty) {
		v, ok := u.bits[t&1][addr+uint16(i)]
		if !ok {
			return exception(fc, IllegalDataAddress)
		}
		if v {
			out[2+i/8] |= 1 << (i % 8)
		}
	}
	return out
}

func (u *unit) readRegs(fc byte, t Table, addr, qty uint16) []byte {
	if qty < 1 || qty > 125 {
		return exception(fc, IllegalDataValue)
	}
	if int(addr)+int(qty) > 0x10000 {
		return exception(fc, IllegalDataAddress)
	}
	out := make([]byte, 2, 2+2*int(qty))
	out[0], out[1] = fc, byte(2*qty)
	for i := range int(qty) {
		v, ok := u.regs[t&1][addr+uint16(i)]
		if !ok {
			return exception(fc, IllegalDataAddress)
		}
		out = binary.BigEndian.AppendUint16(out, v)
	}
	return out
}

func (u *unit) writeBits(t Table, addr uint16, vs []bool) byte {
	if int(addr)+len(vs) > 0x10000 {
		return IllegalDataAddress
	}
	for i, v := range vs {
		a := addr + uint16(i)
		if _, ok := u.bits[t&1][a]; !ok {
			return IllegalDataAddress
		}
		if u.check != nil {
			val := uint16(0)
			if v {
				val = 1
			}
			if ex := u.check(t, a, val); ex != 0 {
				return ex
			}
		}
	}
	for i, v := range vs {
		u.bits[t&1][addr+uint16(i)] = v
		if u.written != nil {
			u.written(u, t, addr+uint16(i))
		}
	}
	return 0
}

func (u *unit) writeRegs(addr uint16, vs []uint16) byte {
	if int(addr)+len(vs) > 0x10000 {
		return IllegalDataAddress
	}
	for i, v := range vs {
		a := addr + uint16(i)
		if _, ok := u.regs[1][a]; !ok {
			return IllegalDataAddress
		}
		if u.check != nil {
			if ex := u.check(HoldingRegister, a, v); ex != 0 {
				return ex
			}
		}
	}
	for i, v := range vs {
		u.regs[1][addr+uint16(i)] = v
		if u.written != nil {
			u.written(u, HoldingRegister, addr+uint16(i))
		}
	}
	return 0
}
