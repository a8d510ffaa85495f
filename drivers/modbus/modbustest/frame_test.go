package modbustest

import (
	"bytes"
	"testing"
)

// rtuTests is the byte-level table of RTU request framing (Modbus over
// Serial Line V1.02 §2.5.1); it seeds FuzzRTUFrame.
var rtuTests = []struct {
	name  string
	in    []byte
	frame []byte // nil: no complete frame
	n     int
}{
	// Read input registers 1..2 of slave 1 (the XY-MD02 request).
	{"fc04", []byte{0x01, 0x04, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0B}, []byte{0x01, 0x04, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0B}, 8},
	{"noise before", []byte{0xFF, 0x00, 0x01, 0x04, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0B}, []byte{0x01, 0x04, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0B}, 10},
	{"partial", []byte{0x01, 0x04, 0x00, 0x01}, nil, 0},
	{"bad CRC", []byte{0x01, 0x04, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0C}, nil, 2}, // a frame may start at 00 01
	{"unknown function", []byte{0x01, 0x2B, 0x0E}, nil, 2},                      // 0E may start a frame
	{"fc16", AppendRTU(nil, 2, []byte{0x10, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02}), AppendRTU(nil, 2, []byte{0x10, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02}), 13},
	{"fc15 short", []byte{0x02, 0x0F, 0x00, 0x00, 0x00, 0x08}, nil, 0},
	{"fc05", AppendRTU(nil, 3, []byte{0x05, 0x00, 0x02, 0xFF, 0x00}), AppendRTU(nil, 3, []byte{0x05, 0x00, 0x02, 0xFF, 0x00}), 8},
	{"empty", nil, nil, 0},
}

func TestSplitRTU(t *testing.T) {
	for _, tt := range rtuTests {
		frame, n := SplitRTU(tt.in)
		if !bytes.Equal(frame, tt.frame) || n != tt.n {
			t.Errorf("%s: SplitRTU(%x) = %x, %d, want %x, %d", tt.name, tt.in, frame, n, tt.frame, tt.n)
		}
	}
}

func FuzzRTUFrame(f *testing.F) {
	for _, tt := range rtuTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		frame, n := SplitRTU(in)
		if n < 0 || n > len(in) {
			t.Fatalf("consumed %d of %d bytes", n, len(in))
		}
		if frame != nil {
			if len(frame) < 4 || !bytes.HasSuffix(in[:n], frame) {
				t.Fatalf("frame %x is not the end of the consumed %x", frame, in[:n])
			}
			// Re-encoding the frame gives it back.
			if re := AppendRTU(nil, frame[0], frame[1:len(frame)-2]); !bytes.Equal(re, frame) {
				t.Fatalf("AppendRTU(SplitRTU(%x)) = %x", frame, re)
			}
			// The bank answers any frame without panicking.
			b := NewBank()
			b.AddModel(frame[0], SeatModule)
			b.Handle(frame[0], frame[1:len(frame)-2])
		}
	})
}

// tcpTests is the byte-level table of Modbus TCP framing (Modbus Messaging
// on TCP/IP Implementation Guide V1.0b §3.1.3); it seeds FuzzTCPFrame.
var tcpTests = []struct {
	name string
	in   []byte
	tid  uint16
	unit byte
	pdu  []byte
	n    int
	err  bool
}{
	{"fc04", []byte{0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x01, 0x04, 0x00, 0x01, 0x00, 0x02}, 7, 1, []byte{0x04, 0x00, 0x01, 0x00, 0x02}, 12, false},
	{"two frames", []byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x05, 0x11, 0x00, 0x02}, 1, 5, []byte{0x11}, 8, false},
	{"header only", []byte{0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x01}, 0, 0, nil, 0, false},
	{"short", []byte{0x00, 0x07, 0x00}, 0, 0, nil, 0, false},
	{"bad protocol", []byte{0x00, 0x07, 0x00, 0x01, 0x00, 0x06, 0x01}, 0, 0, nil, 0, true},
	{"zero length", []byte{0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01}, 0, 0, nil, 0, true},
	{"too long", []byte{0x00, 0x07, 0x00, 0x00, 0x01, 0x00, 0x01}, 0, 0, nil, 0, true},
}

func TestParseTCP(t *testing.T) {
	for _, tt := range tcpTests {
		tid, unit, pdu, n, err := ParseTCP(tt.in)
		if (err != nil) != tt.err || tid != tt.tid || unit != tt.unit || !bytes.Equal(pdu, tt.pdu) || n != tt.n {
			t.Errorf("%s: ParseTCP(%x) = %d, %d, %x, %d, %v; want %d, %d, %x, %d, err %v",
				tt.name, tt.in, tid, unit, pdu, n, err, tt.tid, tt.unit, tt.pdu, tt.n, tt.err)
		}
	}
}

func FuzzTCPFrame(f *testing.F) {
	for _, tt := range tcpTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tid, unit, pdu, n, err := ParseTCP(in)
		if err != nil || n == 0 {
			return
		}
		if n > len(in) || len(pdu) < 1 || len(pdu) > 253 {
			t.Fatalf("ParseTCP(%x): n %d, pdu %x", in, n, pdu)
		}
		if re := AppendTCP(nil, tid, unit, pdu); !bytes.Equal(re, in[:n]) {
			t.Fatalf("AppendTCP(ParseTCP(%x)) = %x", in[:n], re)
		}
		b := NewBank()
		b.AddModel(unit, Relay8)
		b.Handle(unit, pdu)
	})
}
