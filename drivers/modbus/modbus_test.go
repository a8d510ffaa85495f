package modbus

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func rtu(b ...byte) []byte {
	c := crc16(b)
	return append(b, byte(c), byte(c>>8))
}

// answerTests is the byte-level table of RTU answers as they arrive (Modbus
// over Serial Line V1.02 §2.5.1, with line noise); it seeds
// FuzzFindAnswer.
var answerTests = []struct {
	name      string
	in        []byte
	slave, fc byte
	want      []byte
}{
	{"fc04", rtu(1, 4, 4, 0, 215, 1, 194), 1, 4, rtu(1, 4, 4, 0, 215, 1, 194)},
	{"noise first", append([]byte{0x00, 0xFF, 0x01}, rtu(1, 4, 2, 0, 215)...), 1, 4, rtu(1, 4, 2, 0, 215)},
	{"other slave's late answer first", append(rtu(2, 4, 2, 1, 44), rtu(1, 4, 2, 0, 215)...), 1, 4, rtu(1, 4, 2, 0, 215)},
	{"exception", rtu(1, 0x84, 2), 1, 4, rtu(1, 0x84, 2)},
	{"write echo", rtu(3, 5, 0, 2, 0xFF, 0), 3, 5, rtu(3, 5, 0, 2, 0xFF, 0)},
	{"bad crc", []byte{1, 4, 2, 0, 215, 0, 0}, 1, 4, nil},
	{"incomplete", rtu(1, 4, 4, 0, 215, 1, 194)[:6], 1, 4, nil},
	{"wrong function", rtu(1, 3, 2, 0, 215), 1, 4, nil},
}

func TestFindAnswer(t *testing.T) {
	for _, tt := range answerTests {
		if got := findAnswer(tt.in, tt.slave, tt.fc); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: findAnswer(%x) = %x, want %x", tt.name, tt.in, got, tt.want)
		}
	}
}

func FuzzFindAnswer(f *testing.F) {
	for _, tt := range answerTests {
		f.Add(tt.in, tt.slave, tt.fc)
	}
	f.Fuzz(func(t *testing.T, in []byte, slave, fc byte) {
		got := findAnswer(in, slave, fc)
		if got == nil {
			return
		}
		if len(got) < 5 || got[0] != slave || got[1]&0x7F != fc&0x7F || !bytes.Contains(in, got) {
			t.Fatalf("findAnswer(%x, %d, %d) = %x", in, slave, fc, got)
		}
		if !bytes.Equal(rtu(got[:len(got)-2]...), got) {
			t.Fatalf("answer %x has a bad CRC", got)
		}
	})
}

func TestCRC(t *testing.T) {
	// Modbus over Serial Line V1.02 §6.2.2 example frame: 02 07 → CRC 0x1241.
	if got := crc16([]byte{0x02, 0x07}); got != 0x1241 {
		t.Errorf("crc16(02 07) = %#04x, want 0x1241", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // substrings of the error; nil for none
	}{
		{"rtu", Config{Type: RTU, Device: "/dev/ttyUSB0", Baud: 9600, Parity: "N"}, nil},
		{"tcp", Config{Type: TCP, Device: "127.0.0.1:502"}, nil},
		{"bad type", Config{Type: "modbus"}, []string{"type:"}},
		{"rtu everything wrong", Config{Type: RTU, Parity: "X", DataBits: 9, StopBits: 3}, []string{"device:", "parity:", "data_bits:", "stop_bits:"}},
		{"tcp without port", Config{Type: TCP, Device: "localhost"}, []string{"device:"}},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.want == nil && err != nil {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate() = %v, want %q", tt.name, err, w)
			}
		}
		if _, err := Open(tt.c); (err != nil) != (tt.want != nil) {
			t.Errorf("%s: Open() = %v", tt.name, err)
		}
	}
}

func TestExceptionError(t *testing.T) {
	var err error = &ExceptionError{Function: 3, Code: IllegalDataAddress}
	if got := err.Error(); got != "modbus: exception 2 (illegal data address) to function 3" {
		t.Errorf("Error() = %q", got)
	}
	var ee *ExceptionError
	if !errors.As(errors.Join(errors.New("x"), err), &ee) || !ee.Answered() || ee.Name() != "illegal data address" {
		t.Error("errors.As on a wrapped exception failed")
	}
	if (&ExceptionError{Code: ServerDeviceBusy}).Name() != "slave device busy" {
		t.Error("busy name")
	}
}
