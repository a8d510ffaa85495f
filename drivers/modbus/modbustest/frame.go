package modbustest

import (
	"encoding/binary"
	"errors"
)

// ErrFrame is returned for bytes that are not a Modbus request frame.
var ErrFrame = errors.New("modbustest: malformed frame")

// CRC returns the Modbus RTU CRC of b (Modbus over Serial Line V1.02
// §6.2.2: polynomial 0xA001 reflected, initial value 0xFFFF), sent low
// byte first.
func CRC(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendRTU appends the RTU frame of pdu for slave id: id, PDU, CRC.
func AppendRTU(dst []byte, id byte, pdu []byte) []byte {
	start := len(dst)
	dst = append(dst, id)
	dst = append(dst, pdu...)
	return binary.LittleEndian.AppendUint16(dst, CRC(dst[start:]))
}

// requestLen returns the length of the RTU request frame starting at b, 0
// if more bytes are needed to tell, or -1 for an unknown function.
func requestLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case 1, 2, 3, 4, 5, 6:
		return 8
	case 15, 16:
		if len(b) < 7 {
			return 0
		}
		return 7 + int(b[6]) + 2
	default:
		return -1
	}
}

// SplitRTU finds the first request frame in b (Modbus over Serial Line
// V1.02 §2.5.1: address, PDU, CRC). On a line, frames are delimited by
// silence; a simulator reading a pty has only the bytes, so it frames by
// the function's length and the CRC and skips what does not fit.
//
// It returns the frame (nil if none is complete yet) and n, the bytes of b
// consumed: noise before the frame and the frame itself. With frame nil,
// b[n:] needs more input.
func SplitRTU(b []byte) (frame []byte, n int) {
	wait := len(b) // first place a frame may still be completed
	for i := range b {
		l := requestLen(b[i:])
		switch {
		case l < 0:
			continue // unknown function: noise
		case l == 0 || len(b)-i < l:
			if wait == len(b) && len(b)-i <= 256 {
				wait = i
			}
			continue
		}
		f := b[i : i+l]
		if CRC(f[:l-2]) == binary.LittleEndian.Uint16(f[l-2:]) {
			return f, i + l
		}
	}
	return nil, wait
}

// MBAP header, Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3.
const mbapLen = 7

// ParseTCP parses one Modbus TCP ADU at the start of b. It returns the
// transaction id, unit id, PDU and the bytes consumed; n == 0 with a nil
// error means more bytes are needed. An error means the stream cannot be
// resynchronised: the connection should be closed.
func ParseTCP(b []byte) (tid uint16, unit byte, pdu []byte, n int, err error) {
	if len(b) < mbapLen {
		return 0, 0, nil, 0, nil
	}
	tid = binary.BigEndian.Uint16(b)
	if proto := binary.BigEndian.Uint16(b[2:]); proto != 0 {
		return 0, 0, nil, 0, ErrFrame
	}
	l := int(binary.BigEndian.Uint16(b[4:]))
	if l < 2 || l > 254 { // unit id + PDU of 1..253 bytes
		return 0, 0, nil, 0, ErrFrame
	}
	if len(b) < 6+l {
		return 0, 0, nil, 0, nil
	}
	return tid, b[6], b[mbapLen : 6+l], 6 + l, nil
}

// AppendTCP appends the Modbus TCP ADU of pdu.
func AppendTCP(dst []byte, tid uint16, unit byte, pdu []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, tid)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pdu)+1))
	dst = append(dst, unit)
	return append(dst, pdu...)
}
