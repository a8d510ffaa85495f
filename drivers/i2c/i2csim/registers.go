package i2csim

import "sync"

// Registers is a device with 256 8-bit registers and an auto-incrementing
// register pointer, the layout most simple I²C sensors use: a write sets the
// pointer from its first byte and stores the rest from there on; a read
// returns bytes from the pointer on. Safe for concurrent use.
type Registers struct {
	// mu guards regs and ptr.
	mu   sync.Mutex
	regs [256]byte
	ptr  byte
}

var _ Device = (*Registers)(nil)

// Set stores b from register reg on, as the device itself would update its
// registers (wrapping past 0xFF).
func (d *Registers) Set(reg byte, b ...byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, v := range b {
		d.regs[reg+byte(i)] = v
	}
}

// Get returns n registers from reg on.
func (d *Registers) Get(reg byte, n int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]byte, n)
	for i := range out {
		out[i] = d.regs[reg+byte(i)]
	}
	return out
}

// Tx implements Device.
func (d *Registers) Tx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(w) > 0 {
		d.ptr = w[0]
		for _, v := range w[1:] {
			d.regs[d.ptr] = v
			d.ptr++
		}
	}
	for i := range r {
		r[i] = d.regs[d.ptr]
		d.ptr++
	}
	return nil
}
