package packet

import (
	"bufio"
	"bytes"
	"testing"
)

// benchPublish is a QoS 1 PUBLISH with a 100-byte payload, the shape of a
// gateway reading.
var benchPublish = &Publish{
	Topic:    "vehicles/WVWZZZ1JZXW000001/telemetry/tpms",
	Payload:  bytes.Repeat([]byte{'x'}, 100),
	QoS:      1,
	PacketID: 4242,
}

func BenchmarkAppendPublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = Append(buf[:0], benchPublish, v)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkAppendPuback(b *testing.B) {
	buf := make([]byte, 0, 16)
	p := &Puback{PacketID: 4242}
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Append(buf[:0], p, V5)
	}
}

func BenchmarkReadPublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			raw, err := Append(nil, benchPublish, v)
			if err != nil {
				b.Fatal(err)
			}
			src := bytes.NewReader(raw)
			r := bufio.NewReader(src)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(raw)
				r.Reset(src)
				if _, err := Read(r, v, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadPuback(b *testing.B) {
	raw, _ := Append(nil, &Puback{PacketID: 4242}, V5)
	src := bytes.NewReader(raw)
	r := bufio.NewReader(src)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		r.Reset(src)
		if _, err := Read(r, V5, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
