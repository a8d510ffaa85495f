package modbus

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/edgegw/edgegw/drivers/bus"
	grid "github.com/grid-x/modbus"
)

// Limits of one request, Modbus Application Protocol V1.1b3 §6.
const (
	MaxReadBits       = 2000 // FC01, FC02
	MaxReadRegisters  = 125  // FC03, FC04
	MaxWriteBits      = 1968 // FC15
	MaxWriteRegisters = 123  // FC16
)

func checkQty(qty, limit int) error {
	if qty < 1 || qty > limit {
		return fmt.Errorf("modbus: quantity %d outside 1..%d", qty, limit)
	}
	return nil
}

// ReadCoils reads qty coils from addr (FC01).
func (b *Bus) ReadCoils(ctx context.Context, slave byte, pri bus.Priority, addr, qty uint16) ([]bool, error) {
	return b.readBits(ctx, slave, pri, "read coils", addr, qty, grid.Client.ReadCoils)
}

// ReadDiscreteInputs reads qty discrete inputs from addr (FC02).
func (b *Bus) ReadDiscreteInputs(ctx context.Context, slave byte, pri bus.Priority, addr, qty uint16) ([]bool, error) {
	return b.readBits(ctx, slave, pri, "read discrete inputs", addr, qty, grid.Client.ReadDiscreteInputs)
}

// ReadHoldingRegisters reads qty holding registers from addr (FC03).
func (b *Bus) ReadHoldingRegisters(ctx context.Context, slave byte, pri bus.Priority, addr, qty uint16) ([]uint16, error) {
	return b.readRegs(ctx, slave, pri, "read holding registers", addr, qty, grid.Client.ReadHoldingRegisters)
}

// ReadInputRegisters reads qty input registers from addr (FC04).
func (b *Bus) ReadInputRegisters(ctx context.Context, slave byte, pri bus.Priority, addr, qty uint16) ([]uint16, error) {
	return b.readRegs(ctx, slave, pri, "read input registers", addr, qty, grid.Client.ReadInputRegisters)
}

// WriteSingleCoil sets one coil (FC05).
func (b *Bus) WriteSingleCoil(ctx context.Context, slave byte, pri bus.Priority, addr uint16, v bool) error {
	val := uint16(0)
	if v {
		val = 0xFF00
	}
	_, err := b.do(ctx, slave, pri, "write coil", func(c grid.Client) ([]byte, error) {
		return c.WriteSingleCoil(addr, val)
	})
	return err
}

// WriteMultipleCoils sets len(vs) coils from addr (FC15).
func (b *Bus) WriteMultipleCoils(ctx context.Context, slave byte, pri bus.Priority, addr uint16, vs []bool) error {
	if err := checkQty(len(vs), MaxWriteBits); err != nil {
		return err
	}
	packed := make([]byte, (len(vs)+7)/8)
	for i, v := range vs {
		if v {
			packed[i/8] |= 1 << (i % 8)
		}
	}
	_, err := b.do(ctx, slave, pri, "write coils", func(c grid.Client) ([]byte, error) {
		return c.WriteMultipleCoils(addr, uint16(len(vs)), packed)
	})
	return err
}

// WriteSingleRegister sets one holding register (FC06).
func (b *Bus) WriteSingleRegister(ctx context.Context, slave byte, pri bus.Priority, addr, v uint16) error {
	_, err := b.do(ctx, slave, pri, "write register", func(c grid.Client) ([]byte, error) {
		return c.WriteSingleRegister(addr, v)
	})
	return err
}

// WriteMultipleRegisters sets len(vs) holding registers from addr (FC16).
func (b *Bus) WriteMultipleRegisters(ctx context.Context, slave byte, pri bus.Priority, addr uint16, vs []uint16) error {
	if err := checkQty(len(vs), MaxWriteRegisters); err != nil {
		return err
	}
	raw := make([]byte, 2*len(vs))
	for i, v := range vs {
		binary.BigEndian.PutUint16(raw[2*i:], v)
	}
	_, err := b.do(ctx, slave, pri, "write registers", func(c grid.Client) ([]byte, error) {
		return c.WriteMultipleRegisters(addr, uint16(len(vs)), raw)
	})
	return err
}

func (b *Bus) readBits(ctx context.Context, slave byte, pri bus.Priority, what string, addr, qty uint16, read func(grid.Client, uint16, uint16) ([]byte, error)) ([]bool, error) {
	if err := checkQty(int(qty), MaxReadBits); err != nil {
		return nil, err
	}
	raw, err := b.do(ctx, slave, pri, what, func(c grid.Client) ([]byte, error) { return read(c, addr, qty) })
	if err != nil {
		return nil, err
	}
	if len(raw) < (int(qty)+7)/8 {
		return nil, fmt.Errorf("modbus %s slave %d: %s: %w: %d bytes for %d bits", b.cfg.Name, slave, what, ErrFrame, len(raw), qty)
	}
	out := make([]bool, qty)
	for i := range out {
		out[i] = raw[i/8]&(1<<(i%8)) != 0
	}
	return out, nil
}

func (b *Bus) readRegs(ctx context.Context, slave byte, pri bus.Priority, what string, addr, qty uint16, read func(grid.Client, uint16, uint16) ([]byte, error)) ([]uint16, error) {
	if err := checkQty(int(qty), MaxReadRegisters); err != nil {
		return nil, err
	}
	raw, err := b.do(ctx, slave, pri, what, func(c grid.Client) ([]byte, error) { return read(c, addr, qty) })
	if err != nil {
		return nil, err
	}
	if len(raw) != 2*int(qty) {
		return nil, fmt.Errorf("modbus %s slave %d: %s: %w: %d bytes for %d registers", b.cfg.Name, slave, what, ErrFrame, len(raw), qty)
	}
	out := make([]uint16, qty)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	return out, nil
}
