package tpms

import "testing"

func BenchmarkDecodeRTL433(b *testing.B) {
	line := []byte(rtlTests[1].line)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRTL433(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame, err := AppendFrame(nil, []Wheel{
		{Slot: 0, ID: 0x1a2b3c01, Pressure: 2300, TemperatureC: 21, Age: 3},
		{Slot: 1, ID: 0x1a2b3c02, Pressure: 2305, TemperatureC: 22, Age: 3},
		{Slot: 2, ID: 0x1a2b3c03, Pressure: 2310, TemperatureC: 23, Age: 3},
		{Slot: 3, ID: 0x1a2b3c04, Pressure: 1950, TemperatureC: 24, Age: 3},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
