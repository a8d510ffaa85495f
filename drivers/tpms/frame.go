package tpms

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrMalformed is returned for a message or frame that does not
	// follow its format.
	ErrMalformed = errors.New("tpms: malformed message")
	// ErrChecksum is returned for a module frame whose checksum does not
	// match.
	ErrChecksum = errors.New("tpms: bad checksum")
	// ErrRejected is returned when the module answers with an error frame.
	ErrRejected = errors.New("tpms: module rejected the request")
	// ErrNotTPMS is returned for a well-formed rtl_433 line from a device
	// that is not a tyre sensor.
	ErrNotTPMS = errors.New("tpms: not a TPMS message")
)

// Request asks a receiver module for every learned wheel.
var Request = []byte("$W0#")

// Module frame limits.
const (
	MaxWheels = 8     // entries in one reply
	MaxFrame  = 256   // bytes in one reply, "$" to "#"
	AgeNever  = 65535 // Wheel.Age of a sensor never heard
)

// Status bits of a module entry.
const (
	LowBattery  = 1 << 0
	SensorFault = 1 << 1
	NoSignal    = 1 << 2
)

// Wheel is one entry of a module's reply.
type Wheel struct {
	Slot         uint8  // 0-7
	ID           uint32 // sensor id
	Pressure     uint16 // 0.1 kPa, 0-9999
	TemperatureC int16  // -999..999
	Status       uint8  // LowBattery | SensorFault | NoSignal
	Age          uint16 // seconds since heard; AgeNever: never
}

// KPa returns w's pressure in kPa.
func (w Wheel) KPa() float64 { return float64(w.Pressure) / 10 }

// AppendFrame appends the reply frame carrying ws to dst. It fails when ws
// has more than MaxWheels entries or a value outside the frame's ranges.
func AppendFrame(dst []byte, ws []Wheel) ([]byte, error) {
	if len(ws) > MaxWheels {
		return dst, fmt.Errorf("tpms: %d wheels in a frame, max %d", len(ws), MaxWheels)
	}
	start := len(dst)
	dst = append(dst, '$', 'W', byte('0'+len(ws)))
	for _, w := range ws {
		if w.Slot > 7 || w.Pressure > 9999 || w.TemperatureC < -999 || w.TemperatureC > 999 || w.Status > 0x07 {
			return dst[:start], fmt.Errorf("tpms: wheel %+v outside the frame's ranges", w)
		}
		dst = append(dst, ';', '0'+w.Slot, ',')
		dst = appendHex(dst, uint64(w.ID), 8)
		dst = append(dst, ',')
		dst = strconv.AppendUint(dst, uint64(w.Pressure), 10)
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, int64(w.TemperatureC), 10)
		dst = append(dst, ',')
		dst = appendHex(dst, uint64(w.Status), 2)
		dst = append(dst, ',')
		dst = strconv.AppendUint(dst, uint64(w.Age), 10)
	}
	return appendTrailer(dst, start), nil
}

// AppendError appends the module's error frame with code (0-9) to dst.
func AppendError(dst []byte, code uint8) []byte {
	start := len(dst)
	dst = append(dst, '$', 'E', '0'+code%10)
	return appendTrailer(dst, start)
}

func appendTrailer(dst []byte, start int) []byte {
	cs := checksum(dst[start+1:])
	dst = append(dst, '*')
	dst = appendHex(dst, uint64(cs), 2)
	return append(dst, '#')
}

const hexDigits = "0123456789ABCDEF"

func appendHex(dst []byte, v uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(4*i))&0xf])
	}
	return dst
}

func checksum(b []byte) byte {
	var cs byte
	for _, c := range b {
		cs ^= c
	}
	return cs
}

// CheckFrame verifies the framing and checksum of a module reply, without
// decoding its entries.
func CheckFrame(b []byte) error {
	_, err := body(b)
	return err
}

// body checks "$...*cs#" and returns what lies between "$" and "*".
func body(b []byte) ([]byte, error) {
	n := len(b)
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes, max %d", ErrMalformed, n, MaxFrame)
	}
	if n < 6 || b[0] != '$' || b[n-1] != '#' || b[n-4] != '*' {
		return nil, fmt.Errorf("%w: frame %q not $...*XX#", ErrMalformed, b)
	}
	want, ok := parseHex(b[n-3 : n-1])
	if !ok {
		return nil, fmt.Errorf("%w: checksum %q not hex", ErrMalformed, b[n-3:n-1])
	}
	if got := checksum(b[1 : n-4]); uint64(got) != want {
		return nil, fmt.Errorf("%w: %02X, frame says %02X", ErrChecksum, got, want)
	}
	return b[1 : n-4], nil
}

// DecodeFrame decodes a module reply frame, "$" to "#" inclusive.
func DecodeFrame(b []byte) ([]Wheel, error) {
	body, err := body(b)
	if err != nil {
		return nil, err
	}
	if len(body) == 2 && body[0] == 'E' && isDigit(body[1]) {
		return nil, fmt.Errorf("%w: error %c", ErrRejected, body[1])
	}
	if len(body) < 2 || body[0] != 'W' || !isDigit(body[1]) {
		return nil, fmt.Errorf("%w: reply %q not W<count>", ErrMalformed, body)
	}
	count := int(body[1] - '0')
	if count > MaxWheels {
		return nil, fmt.Errorf("%w: %d wheels, max %d", ErrMalformed, count, MaxWheels)
	}
	rest := body[2:]
	ws := make([]Wheel, 0, count)
	for len(rest) > 0 {
		if rest[0] != ';' {
			return nil, fmt.Errorf("%w: %q where an entry should start", ErrMalformed, rest)
		}
		rest = rest[1:]
		var entry []byte
		if i := bytes.IndexByte(rest, ';'); i >= 0 {
			entry, rest = rest[:i], rest[i:]
		} else {
			entry, rest = rest, nil
		}
		w, err := decodeEntry(entry)
		if err != nil {
			return nil, err
		}
		if len(ws) == count {
			return nil, fmt.Errorf("%w: more entries than the count %d", ErrMalformed, count)
		}
		ws = append(ws, w)
	}
	if len(ws) != count {
		return nil, fmt.Errorf("%w: %d entries, count says %d", ErrMalformed, len(ws), count)
	}
	return ws, nil
}

func decodeEntry(e []byte) (Wheel, error) {
	var f [6][]byte
	for i := range f {
		j := bytes.IndexByte(e, ',')
		if i == len(f)-1 {
			if j >= 0 {
				return Wheel{}, fmt.Errorf("%w: entry %q has more than 6 fields", ErrMalformed, e)
			}
			f[i] = e
			break
		}
		if j < 0 {
			return Wheel{}, fmt.Errorf("%w: entry %q has fewer than 6 fields", ErrMalformed, e)
		}
		f[i], e = e[:j], e[j+1:]
	}
	bad := func(what string, v []byte) (Wheel, error) {
		return Wheel{}, fmt.Errorf("%w: %s %q", ErrMalformed, what, v)
	}
	var w Wheel
	if len(f[0]) != 1 || f[0][0] < '0' || f[0][0] > '7' {
		return bad("slot", f[0])
	}
	w.Slot = f[0][0] - '0'
	if len(f[1]) != 8 {
		return bad("id", f[1])
	}
	id, ok := parseHex(f[1])
	if !ok {
		return bad("id", f[1])
	}
	w.ID = uint32(id)
	p, ok := parseDec(f[2], 4)
	if !ok {
		return bad("pressure", f[2])
	}
	w.Pressure = uint16(p)
	t := f[3]
	neg := len(t) > 0 && t[0] == '-'
	if neg {
		t = t[1:]
	}
	tv, ok := parseDec(t, 3)
	if !ok {
		return bad("temperature", f[3])
	}
	w.TemperatureC = int16(tv)
	if neg {
		w.TemperatureC = -w.TemperatureC
	}
	if len(f[4]) != 2 {
		return bad("status", f[4])
	}
	st, ok := parseHex(f[4])
	if !ok || st > 0x07 {
		return bad("status", f[4])
	}
	w.Status = uint8(st)
	age, ok := parseDec(f[5], 5)
	if !ok || age > AgeNever {
		return bad("age", f[5])
	}
	w.Age = uint16(age)
	return w, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseDec parses 1 to maxDigits decimal digits.
func parseDec(b []byte, maxDigits int) (uint64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// parseHex parses 1 to 16 hex digits of either case.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}
