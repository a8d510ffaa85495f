// Package i2creg is the driver kind "i2c_register": a generic I²C device
// whose values sit in 8-bit-addressed registers, read with one combined
// write-register/read transaction per point (the access most simple sensors
// use: TMP102, LM75, MCP9808, INA219, HDC1080 in its register mode, …).
//
// Options, under [device.options] of a device with kind = "i2c_register"
// on a bus of type "i2c":
//
//	addr = 0x48                 # 7-bit address, 0x08..0x77
//	[[device.options.points]]
//	name = "temperature"
//	register = 0x00
//	type = "int16"              # int8 uint8 int16 uint16 int32 uint32
//	order = "big"               # big (default, most-significant byte first) or little
//	length = 2                  # bytes read; default the type's width; extra
//	                            # bytes (a status or CRC byte) are read and ignored
//	scale = 0.00390625          # value = raw × scale + offset; default 1, never 0
//	offset = 0
//	unit = "°C"
//	deadband = 0.1              # and the other drivers/poll.Rule keys: interval,
//	                            # deadband, max_silence, min, max
//
// A device that does not answer makes Read fail (the poller reports it
// offline).
package i2creg
