// Package modbustest is the far end of a Modbus bus for tests and the demo:
// a register bank of Modbus slaves (coils, discrete inputs, input and
// holding registers) served by an RTU slave on a pseudo-terminal and by a
// Modbus TCP server on loopback, with slave models (an XY-MD02 temperature
// and humidity module, a seat module, a relay board) and faults (dead
// slave, late answer, line noise, garbage, exception replies).
//
// The framing code is its own, independent of github.com/grid-x/modbus,
// so that the transport in drivers/modbus is tested against a separate
// implementation of Modbus Application Protocol V1.1b3 and Modbus over
// Serial Line V1.02; Debian's mbpoll (libmodbus) cross-checks both.
//
// Simulator kinds for [[simulator]] entries: "modbus_rtu" (a pty; its slave
// side is linked at Opts.Link) and "modbus_tcp" (Opts.Listen, default
// 127.0.0.1:0). Options: slaves = [{id = 1, model = "xy_md02"}, …], models
// "xy_md02", "seat_module", "relay8", "bank" (an empty unit the caller
// fills).
package modbustest
