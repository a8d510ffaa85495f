// Package tpms reads tyre-pressure monitoring (TPMS) receivers on a serial
// line and turns what they hear into per-wheel readings and alarms.
//
// Two kinds of receiver are supported, both on a *serial.Port:
//
//   - "tpms_rtl433" (RTL433, a drivers.Streamer): an SDR running rtl_433
//     (https://github.com/merbanan/rtl_433) with JSON output (-F json), its
//     standard output carried over a serial line, one JSON object per line.
//     Fields used: "type" must be "TPMS" (other lines are counted and
//     ignored); "id" as a hex string ("1a2b3c4d", "0x1A2B3C4D") or an integer;
//     "pressure_kPa", "pressure_PSI" or "pressure_bar" (converted to kPa);
//     "temperature_C" or "temperature_F" (converted to °C); "battery_ok"
//     (0/1 or a bool) or, failing that, "battery_mV" (ok from 2500 mV);
//     "model" (logs only) and "time". "flags" and other model-specific
//     fields are ignored: their meaning differs per model. Readings are
//     stamped with the gateway's clock unless "time" carries a zone (RFC
//     3339) or is a Unix time and lies within 5 minutes of it: rtl_433's
//     default time format is local wall time without a zone. See rtl_433's
//     src/devices/tpms_*.c for the fields of each model.
//
//   - "tpms_module" (Module, a drivers.Sensor): a receiver module answering
//     ASCII requests framed by "$" and "#". There is no public specification
//     of such modules; the framing below is modelled on TyreDog-style
//     receivers and is what this package and tpmssim implement:
//
//     request  = "$W0#"                  ; report every learned wheel
//     reply    = "$W" count *(";" entry) "*" checksum "#"
//     error    = "$E" DIGIT "*" checksum "#"   ; request not understood
//     count    = DIGIT                   ; number of entries, 0-8
//     entry    = slot "," id "," pressure "," temperature "," status "," age
//     slot     = DIGIT                   ; the module's learning slot, 0-7
//     id       = 8HEXDIG                 ; sensor id, either case
//     pressure = 1*4DIGIT                ; kPa × 10, 0-9999 (0.0-999.9 kPa)
//     temperature = ["-"] 1*3DIGIT       ; °C
//     status   = 2HEXDIG                 ; bit 0 low battery, bit 1 sensor
//     ;                                    fault, bit 2 no signal; others 0
//     age      = 1*5DIGIT                ; seconds since the module last
//     ;                                    heard the sensor; 65535 = never
//     checksum = 2HEXDIG                 ; XOR of every byte after "$" and
//     ;                                    before "*", as in NMEA 0183
//
//     Example: "$W1;0,1A2B3C01,2300,21,00,3*01#" is one wheel in slot 0,
//     sensor 1a2b3c01, 230.0 kPa, 21 °C, battery ok, heard 3 s ago. The
//     module is polled through the serial Port's scheduler; a reply with a
//     bad checksum fails the attempt, so the scheduler's retries apply.
//
// Both kinds map sensor ids to wheel positions (Opts.Wheels) and report, per
// position pos, the points pos_pressure (kPa), pos_temperature (°C) and
// pos_battery_ok, and the alarm points pos_low_pressure and pos_fast_leak
// (drivers.Reading with Alarm set and a bool Value, sent when raised and
// when cleared). Sensors not in the map (the neighbour's car) are ignored
// and counted. A sensor repeats each transmission several times and
// rtl_433 prints every copy: a message with the same values as the last one
// accepted from that sensor within DedupWindow is a repeat and dropped.
// Values outside what a tyre sensor can report (pressure outside 0..1000 kPa,
// temperature outside -50..150 °C, or the module's fault bit) are reported
// with Quality out_of_range and take no part in alarms. A wheel not heard
// from within StaleAfter is reported with Quality stale and its last value
// (no value if it was never heard).
//
// Low pressure is raised when a wheel's pressure falls below LowPressureKPa
// and cleared when it is back at or above LowPressureKPa + HysteresisKPa.
// The fast-leak rate is the least-squares slope of pressure over time of the
// accepted readings of the last LeakWindow (at most 32 of them), computed
// once at least 3 readings spanning at least 20 s are available, so that a
// single noisy value cannot raise it. Fast leak is raised when the pressure
// falls faster than FastLeakKPaPerMin and cleared when it falls slower than
// half that rate.
//
// Reporting rules (Opts.Points, the keys of drivers/poll.Rule): deadband,
// max_silence, min and max, per point kind for every wheel
// ([device.options.points.pressure], .temperature, .battery_ok) or for one
// wheel's point ([device.options.points.spare_pressure]), whose rule then
// replaces the kind's for that wheel as a whole (keys are not merged). A
// reading is reported when it moved more than deadband from the last one
// reported, when max_silence has passed since then, or when its quality
// changed (stale, out_of_range); outside min..max it is reported with
// Quality out_of_range, like the sensor limits above. Both kinds expose the
// rules through Rules (poll.Ruler): the daemon applies them to the polled
// module through its poll loop and to the rtl_433 stream as the readings
// arrive. interval is accepted for tpms_module only (the module's point is
// then reported every interval, rounded to whole device intervals);
// tpms_rtl433 hears wheels when they transmit, so an interval there is an
// error. The alarm points take no rule: they are always reported. Report
// by exception is what suits a TPMS stream: a wheel transmits every
// minute or so, and a deadband on pressure with a max_silence keeps
// readings flowing only when something changes.
//
// A configuration, with the simulator of package tpmssim as the receiver:
//
//	[[simulator]]
//	name = "tpms_sim"
//	kind = "tpms_rtl433"
//	link = "var/demo/tpms"
//
//	[[bus]]
//	name = "tpms"
//	type = "serial"
//	device = "var/demo/tpms"   # on a car: /dev/serial/by-id/usb-…
//	baud = 115200
//
//	[[device]]
//	name = "tyres"
//	kind = "tpms_rtl433"       # or "tpms_module" (polled every interval)
//	bus = "tpms"
//	[device.options]
//	wheels = { "1a2b3c01" = "fl", "1a2b3c02" = "fr", "1a2b3c03" = "rl", "1a2b3c04" = "rr" }
//	low_pressure_kpa = 180
//	fast_leak_kpa_per_min = 20
//	stale_after = "5m"
//	dedup_window = "2s"
//	[device.options.points.pressure]         # every wheel
//	deadband = 2.0                            # kPa
//	max_silence = "10m"
//	[device.options.points.temperature]
//	deadband = 1.0                            # °C
//	max_silence = "10m"
//	[device.options.points.spare_pressure]   # the spare: its own rule
//	max_silence = "1h"
package tpms
