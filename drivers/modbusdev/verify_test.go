package modbusdev

import (
	"testing"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/modbus"
	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
)

// TestSetReadsBackOnce: Set reads a point back when its profile or the
// command asks, once however many ask, and not otherwise.
func TestSetReadsBackOnce(t *testing.T) {
	bank := newBank(t, map[byte]string{2: modbustest.SeatModule, 3: modbustest.Relay8})
	b, _ := setup(t, modbustest.KindTCP, bank, modbus.Config{})
	ctx := t.Context()
	seat := mustNew(t, b, "seat", Opts{Slave: 2, Profile: "seat_module"})
	board := mustNew(t, b, "board", Opts{Slave: 3, Points: []Point{{Name: "lamp", Table: tableCoil, Address: 5, Type: "bool", Writable: true}}})
	tests := []struct {
		name     string
		dev      *Dev
		slave    byte
		c        drivers.Command
		requests int // the write and the reads back
	}{
		{"profile verifies", seat, 2, drivers.Command{Command: "heater", Value: true}, 2},
		{"profile and command verify", seat, 2, drivers.Command{Command: "heater", Value: false, Verify: true}, 2},
		{"nobody verifies", board, 3, drivers.Command{Command: "lamp", Value: true}, 1},
		{"command verifies", board, 3, drivers.Command{Command: "lamp", Value: false, Verify: true}, 2},
	}
	for _, tt := range tests {
		before := bank.Requests(tt.slave)
		if err := tt.dev.Set(ctx, tt.c); err != nil {
			t.Fatalf("%s: Set(%+v) = %v", tt.name, tt.c, err)
		}
		if n := bank.Requests(tt.slave) - before; n != tt.requests {
			t.Errorf("%s: Set(%+v) made %d requests, want %d", tt.name, tt.c, n, tt.requests)
		}
	}
}
