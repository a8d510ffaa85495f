package tpms

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rtlTests is shared by TestDecodeRTL433 and the seeds of FuzzRTL433Line.
var rtlTests = []struct {
	name string
	line string
	want Message
	err  error
}{
	{
		name: "schrader kPa hex id",
		line: `{"time" : "2026-11-22 02:20:00", "model" : "Schrader", "type" : "TPMS", "flags" : "3a", "id" : "1A2B3C02", "pressure_kPa" : 230.000, "temperature_C" : 22.000, "mic" : "CRC"}`,
		want: Message{ID: 0x1a2b3c02, Model: "Schrader", PressureKPa: 230, TemperatureC: 22, HasTemp: true},
	},
	{
		name: "toyota PSI",
		line: `{"time":"2026-11-22 02:20:00","model":"Toyota","type":"TPMS","id":"1a2b3c01","status":128,"pressure_PSI":29.0075,"temperature_C":21.0,"mic":"CRC"}`,
		want: Message{ID: 0x1a2b3c01, Model: "Toyota", PressureKPa: 29.0075 * kPaPerPSI, TemperatureC: 21, HasTemp: true},
	},
	{
		name: "integer id, fahrenheit, battery_ok",
		line: `{"model":"PMV-107J","type":"TPMS","id":439041027,"battery_ok":1,"pressure_kPa":231.5,"temperature_F":68.0}`,
		want: Message{ID: 439041027, Model: "PMV-107J", PressureKPa: 231.5, TemperatureC: 20, HasTemp: true, BatteryOK: true, HasBattery: true},
	},
	{
		name: "0x id, bar, battery low by mV",
		line: `{"model":"Ford","type":"TPMS","id":"0x1a2b3c04","pressure_bar":1.9,"temperature_C":-5,"battery_mV":2300}`,
		want: Message{ID: 0x1a2b3c04, Model: "Ford", PressureKPa: 190, TemperatureC: -5, HasTemp: true, HasBattery: true},
	},
	{
		name: "battery_ok bool false, no temperature",
		line: `{"model":"X","type":"TPMS","id":"ab","pressure_kPa":0,"battery_ok":false}`,
		want: Message{ID: 0xab, Model: "X", HasBattery: true},
	},
	{
		name: "unix time used",
		line: `{"time":"1795400000","model":"X","type":"TPMS","id":"ab","pressure_kPa":200}`,
		want: Message{ID: 0xab, Model: "X", PressureKPa: 200, Time: time.Unix(1795400000, 0).UTC()},
	},
	{
		name: "rfc3339 time used",
		line: `{"time":"2026-11-22T02:20:00+01:00","model":"X","type":"TPMS","id":"ab","pressure_kPa":200}`,
		want: Message{ID: 0xab, Model: "X", PressureKPa: 200, Time: time.Date(2026, 11, 22, 1, 20, 0, 0, time.UTC)},
	},
	{
		name: "crlf and spaces",
		line: "  {\"type\":\"TPMS\",\"id\":\"1\",\"pressure_kPa\":1}\r",
		want: Message{ID: 1, PressureKPa: 1},
	},
	{name: "weather station", line: `{"model":"Acurite-Tower","id":1234,"channel":"A","battery_ok":1,"temperature_C":12.3,"humidity":55}`, err: ErrNotTPMS},
	{name: "empty", line: ``, err: ErrMalformed},
	{name: "noise", line: "\x00\xff\xfe garbage ~~ $W#", err: ErrMalformed},
	{name: "truncated", line: `{"model":"Toyota","type":"TPMS","id":"1a2b3c01","pressure_PSI":29.0`, err: ErrMalformed},
	{name: "no id", line: `{"type":"TPMS","pressure_kPa":200}`, err: ErrMalformed},
	{name: "bad hex id", line: `{"type":"TPMS","id":"xyz","pressure_kPa":200}`, err: ErrMalformed},
	{name: "negative id", line: `{"type":"TPMS","id":-5,"pressure_kPa":200}`, err: ErrMalformed},
	{name: "float id", line: `{"type":"TPMS","id":1.5,"pressure_kPa":200}`, err: ErrMalformed},
	{name: "no pressure", line: `{"type":"TPMS","id":"ab","temperature_C":20}`, err: ErrMalformed},
	{name: "pressure as string", line: `{"type":"TPMS","id":"ab","pressure_kPa":"200"}`, err: ErrMalformed},
	{name: "bad battery", line: `{"type":"TPMS","id":"ab","pressure_kPa":200,"battery_ok":"yes"}`, err: ErrMalformed},
	{name: "huge number", line: `{"type":"TPMS","id":"ab","pressure_kPa":1e999}`, err: ErrMalformed},
	{name: "array", line: `[1,2,3]`, err: ErrMalformed},
}

func TestDecodeRTL433(t *testing.T) {
	for _, tt := range rtlTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRTL433([]byte(tt.line))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("DecodeRTL433(%q) = %+v, %v; want %v", tt.line, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRTL433(%q) = %v", tt.line, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
				t.Errorf("DecodeRTL433(%q) (-want +got):\n%s", tt.line, diff)
			}
		})
	}
}

func FuzzRTL433Line(f *testing.F) {
	for _, tt := range rtlTests {
		f.Add([]byte(tt.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := DecodeRTL433(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotTPMS) {
				t.Fatalf("DecodeRTL433 error %v wraps neither ErrMalformed nor ErrNotTPMS", err)
			}
			return
		}
		if m.PressureKPa != m.PressureKPa || m.TemperatureC != m.TemperatureC {
			t.Fatalf("DecodeRTL433 gave NaN: %+v", m)
		}
	})
}

// frameTests is shared by TestFrame and the seeds of FuzzModuleFrame.
var frameTests = []struct {
	name  string
	frame string
	want  []Wheel
	err   error
}{
	{name: "doc example", frame: "$W1;0,1A2B3C01,2300,21,00,3*01#", want: []Wheel{{Slot: 0, ID: 0x1a2b3c01, Pressure: 2300, TemperatureC: 21, Age: 3}}},
	{name: "empty", frame: "$W0*67#", want: []Wheel{}},
	{
		name:  "four wheels",
		frame: "",
		want: []Wheel{
			{Slot: 0, ID: 0x1a2b3c01, Pressure: 2300, TemperatureC: 21, Age: 3},
			{Slot: 1, ID: 0x1a2b3c02, Pressure: 2315, TemperatureC: -7, Status: LowBattery, Age: 0},
			{Slot: 2, ID: 0xffffffff, Pressure: 9999, TemperatureC: 999, Status: SensorFault, Age: 65534},
			{Slot: 7, ID: 0, Pressure: 0, TemperatureC: -999, Status: NoSignal, Age: AgeNever},
		},
	},
	{name: "lower-case hex", frame: withCS("W1;0,1a2b3c01,2300,21,00,3"), want: []Wheel{{Slot: 0, ID: 0x1a2b3c01, Pressure: 2300, TemperatureC: 21, Age: 3}}},
	{name: "error reply", frame: "$E1*74#", err: ErrRejected},
	{name: "bad checksum", frame: "$W1;0,1A2B3C01,2300,21,00,3*02#", err: ErrChecksum},
	{name: "checksum not hex", frame: "$W0*ZZ#", err: ErrMalformed},
	{name: "no star", frame: "$W0-67#", err: ErrMalformed},
	{name: "too short", frame: "$#", err: ErrMalformed},
	{name: "request echoed", frame: "$W0#", err: ErrMalformed},
	{name: "count too small", frame: withCS("W1;0,1A2B3C01,2300,21,00,3;1,1A2B3C02,2300,21,00,3"), err: ErrMalformed},
	{name: "count too large", frame: withCS("W2;0,1A2B3C01,2300,21,00,3"), err: ErrMalformed},
	{name: "count over max", frame: withCS("W9"), err: ErrMalformed},
	{name: "short id", frame: withCS("W1;0,1A2B3C0,2300,21,00,3"), err: ErrMalformed},
	{name: "slot 8", frame: withCS("W1;8,1A2B3C01,2300,21,00,3"), err: ErrMalformed},
	{name: "pressure too long", frame: withCS("W1;0,1A2B3C01,23000,21,00,3"), err: ErrMalformed},
	{name: "empty temperature", frame: withCS("W1;0,1A2B3C01,2300,-,00,3"), err: ErrMalformed},
	{name: "status bit 3", frame: withCS("W1;0,1A2B3C01,2300,21,08,3"), err: ErrMalformed},
	{name: "age over 65535", frame: withCS("W1;0,1A2B3C01,2300,21,00,65536"), err: ErrMalformed},
	{name: "missing field", frame: withCS("W1;0,1A2B3C01,2300,21,00"), err: ErrMalformed},
	{name: "extra field", frame: withCS("W1;0,1A2B3C01,2300,21,00,3,9"), err: ErrMalformed},
	{name: "garbage after count", frame: withCS("W1x;0,1A2B3C01,2300,21,00,3"), err: ErrMalformed},
	{name: "not W", frame: withCS("Q1"), err: ErrMalformed},
}

func withCS(body string) string {
	return "$" + body + "*" + string(appendHex(nil, uint64(checksum([]byte(body))), 2)) + "#"
}

func TestFrame(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.frame
			if tt.err == nil {
				enc, err := AppendFrame(nil, tt.want)
				if err != nil {
					t.Fatalf("AppendFrame(%v) = %v", tt.want, err)
				}
				if frame == "" {
					frame = string(enc)
				} else if tt.name != "lower-case hex" && string(enc) != frame {
					t.Errorf("AppendFrame(%v) = %q, want %q", tt.want, enc, frame)
				}
			}
			got, err := DecodeFrame([]byte(frame))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("DecodeFrame(%q) = %v, %v; want %v", frame, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeFrame(%q) = %v", frame, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeFrame(%q) (-want +got):\n%s", frame, diff)
			}
		})
	}
	if got := string(AppendError(nil, 1)); got != "$E1*74#" {
		t.Errorf("AppendError(1) = %q, want $E1*74#", got)
	}
	if _, err := AppendFrame(nil, make([]Wheel, 9)); err == nil {
		t.Error("AppendFrame accepted 9 wheels")
	}
	if _, err := AppendFrame(nil, []Wheel{{Pressure: 10000}}); err == nil {
		t.Error("AppendFrame accepted a pressure of 1000.0 kPa")
	}
}

// FuzzModuleFrame: decoding never panics, and what decodes re-encodes to a
// frame that decodes to the same wheels.
func FuzzModuleFrame(f *testing.F) {
	for _, tt := range frameTests {
		if tt.frame != "" {
			f.Add([]byte(tt.frame))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrRejected) {
				t.Fatalf("DecodeFrame error %v wraps no sentinel", err)
			}
			return
		}
		enc, err := AppendFrame(nil, ws)
		if err != nil {
			t.Fatalf("AppendFrame(DecodeFrame(%q)) = %v", b, err)
		}
		again, err := DecodeFrame(enc)
		if err != nil {
			t.Fatalf("DecodeFrame(%q) = %v", enc, err)
		}
		if diff := cmp.Diff(ws, again); diff != "" {
			t.Fatalf("decode(encode(decode(%q))) differs (-first +second):\n%s", b, diff)
		}
	})
}
