// Package bme280 is the driver kind "bme280": a Bosch BME280 temperature,
// humidity and pressure sensor on an I²C bus, read through periph's bmxx80
// driver in forced mode (one measurement per Read).
//
// Datasheet: Bosch Sensortec BME280, BST-BME280-DS002
// (https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf);
// operating range in section 1 (table 1: -40..85 °C, 0..100 %RH,
// 300..1100 hPa), I²C addresses 0x76/0x77 in section 6.2.
//
// Options, under [device.options] of a device with kind = "bme280" on a bus
// of type "i2c":
//
//	addr = 0x76           # 0x76 (default) or 0x77, set by the SDO pin
//	oversampling = 4      # 1, 2, 4 (default), 8 or 16, for all three values
//	[[device.options.points]]   # optional; default: all three
//	name = "temperature"  # temperature (°C), humidity (%RH) or pressure (kPa)
//	deadband = 0.2        # and the other drivers/poll.Rule keys: interval,
//	max_silence = "5m"    # deadband, max_silence, min, max
//
// A BMP280 (or BMP180) at the address works for temperature and pressure;
// configuring humidity on one is reported as ErrNoHumidity. A value outside the chip's operating range is reported with quality
// out_of_range by the driver itself; min and max narrow that further through
// the poller. A device that does not answer makes Read fail (the poller
// reports it offline); it is initialised again on the next Read, so a sensor
// that was power-cycled gets its configuration back.
package bme280
