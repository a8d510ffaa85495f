// Package i2csim is an in-memory I²C bus with simulated devices attached by
// address: a BME280 that answers like the real chip and a generic
// register-file device. It implements periph's i2c.Bus, so the real driver
// code path (drivers/i2c, periph's bmxx80, drivers/i2creg) runs against it in
// tests and in the demo.
//
// The simulator kind "i2c_sim" is started by Start from Opts; see Opts for
// its configuration keys.
package i2csim

import (
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

var (
	// ErrNACK is returned for a transaction to an address where no device
	// answers, as a real bus reports a missing acknowledge.
	ErrNACK = errors.New("i2csim: address not acknowledged")
	// ErrInjected is returned for a transaction failed by FailNext.
	ErrInjected = errors.New("i2csim: injected bus error")
)

// Device is a simulated device at one address. Tx gets the bytes the master
// writes, then fills r with what the master reads, like one combined
// write-then-read I²C transaction.
type Device interface {
	Tx(w, r []byte) error
}

// Bus is an in-memory I²C bus. Safe for concurrent use.
type Bus struct {
	name string

	// mu guards devs, fail and txs.
	mu   sync.Mutex
	devs map[uint16]Device
	fail map[uint16]int
	txs  int
}

var _ i2c.Bus = (*Bus)(nil)

// NewBus returns an empty bus.
func NewBus(name string) *Bus {
	return &Bus{name: name, devs: make(map[uint16]Device), fail: make(map[uint16]int)}
}

// Attach puts d at addr, replacing what was there.
func (b *Bus) Attach(addr uint16, d Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.devs[addr] = d
}

// Detach removes the device at addr: it no longer acknowledges, as if it
// were unplugged.
func (b *Bus) Detach(addr uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.devs, addr)
}

// Device returns the device at addr.
func (b *Bus) Device(addr uint16) (Device, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.devs[addr]
	return d, ok
}

// FailNext makes the next n transactions to addr fail with ErrInjected, like
// a glitch on the line.
func (b *Bus) FailNext(addr uint16, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail[addr] = n
}

// Count returns the number of transactions the bus has seen.
func (b *Bus) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.txs
}

// String implements i2c.Bus.
func (b *Bus) String() string { return "i2csim:" + b.name }

// Tx implements i2c.Bus.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	b.txs++
	d, ok := b.devs[addr]
	if n := b.fail[addr]; n > 0 {
		b.fail[addr] = n - 1
		b.mu.Unlock()
		return fmt.Errorf("%w at 0x%02x", ErrInjected, addr)
	}
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w at 0x%02x", ErrNACK, addr)
	}
	return d.Tx(w, r)
}

// SetSpeed implements i2c.Bus; the simulated bus runs at any speed.
func (b *Bus) SetSpeed(physic.Frequency) error { return nil }
