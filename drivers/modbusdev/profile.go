package modbusdev

import "github.com/edgegw/edgegw/drivers/poll"

func f(v float64) *float64 { return &v }

// profiles are register maps shared by many devices, by name. A device's
// own points are added to its profile's, replacing those of the same name.
var profiles = map[string][]Point{
	// XY-MD02 (SHT20) RS-485 temperature and humidity module: FC04, input
	// registers 1 and 2, signed ×0.1 °C and ×0.1 %RH. The sensor's
	// ranges (-40..125 °C, 0..100 %RH) are its plausibility limits.
	"xy_md02": {
		{Name: "temperature", Table: tableInput, Address: 1, Type: "int16", Scale: f(0.1), Unit: "°C",
			Rule: poll.Rule{Min: f(-40), Max: f(125)}},
		{Name: "humidity", Table: tableInput, Address: 2, Type: "uint16", Scale: f(0.1), Unit: "%RH",
			Rule: poll.Rule{Min: f(0), Max: f(100)}},
	},
	// Eight-relay board: coils 0..7, written with FC05 and read back.
	"relay8": relay8(),
	// Seat module (the map modbustest.SeatModule simulates): occupancy
	// switch, heater on/off, heater level 0..3, seat temperature.
	"seat_module": {
		{Name: "occupied", Table: tableDiscrete, Address: 0, Type: "bool"},
		{Name: "heater", Table: tableCoil, Address: 0, Type: "bool", Writable: true, Verify: true},
		{Name: "heater_level", Table: tableHolding, Address: 0, Type: "uint16", Writable: true, Verify: true,
			Rule: poll.Rule{Min: f(0), Max: f(3)}},
		{Name: "seat_temperature", Table: tableInput, Address: 0, Type: "int16", Scale: f(0.1), Unit: "°C",
			Rule: poll.Rule{Min: f(-40), Max: f(85)}},
	},
}

func relay8() []Point {
	ps := make([]Point, 8)
	for i := range ps {
		ps[i] = Point{Name: "relay" + string(rune('1'+i)), Table: tableCoil, Address: i, Type: "bool", Writable: true, Verify: true}
	}
	return ps
}

// Profiles returns the names of the built-in profiles.
func Profiles() []string { return []string{"relay8", "seat_module", "xy_md02"} }
