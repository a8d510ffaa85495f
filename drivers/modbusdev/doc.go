// Package modbusdev is the generic Modbus device (driver kind "modbus"): a
// register map of points, each in one of the four data tables (coil,
// discrete_input, input_register, holding_register) with a type (bool,
// int16, uint16, int32, uint32, int64, uint64, float32, float64, string),
// a byte and word order (ABCD, DCBA, BADC, CDAB), scale, offset, unit, an
// optional bit within a register and the poll rule keys of drivers/poll.
//
// Points next to each other in one table are read in one request (at most
// 125 registers or 2000 bits, across gaps of up to max_gap unmapped
// addresses; a slave that refuses a gap with "illegal data address" is then
// read point by point). Writable points are commands: a coil is written
// with FC05, registers with FC06 (one) or FC16 (several), optionally read
// back to verify.
//
// Profiles name a register map shared by many devices: profile = "xy_md02"
// (XY-MD02 / SHT20 RS-485 temperature and humidity module, FC04 input
// registers 1 and 2, ×0.1 °C and ×0.1 %RH), "relay8" (eight relays on coils
// 0..7), "seat_module" (occupancy, heater, heater level, seat temperature;
// the map drivers/modbus/modbustest simulates).
//
// Register layout: Modbus Application Protocol V1.1b3 §4.3 (data model),
// §6.1–6.16 (function codes); the protocol sends each register big-endian
// (§4.2), and the order option names the position of the bytes A (most
// significant) to D of a 32-bit value on the wire, by 16-bit halves for
// 64-bit values.
package modbusdev
