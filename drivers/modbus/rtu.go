package modbus

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.bug.st/serial"
)

// rtuTransport implements grid-x's Transporter for a serial line. It is
// used only from the bus's owner goroutine, except Close.
type rtuTransport struct {
	path     string
	mode     serial.Mode
	deadline time.Time // of the current call, set before each Send
	open     func(path string, mode *serial.Mode) (serial.Port, error)
	port     serial.Port
	buf      [512]byte
	// settle is how long a slave that timed out may still answer late;
	// the next request to that slave first discards what arrives until
	// lateUntil, so the late answer is not taken for the new one (Modbus
	// RTU answers do not name the address they answer).
	settle    time.Duration
	lateSlave byte
	lateUntil time.Time
}

// Send writes the request and returns the answer frame, slave id to CRC.
func (t *rtuTransport) Send(req []byte) ([]byte, error) {
	if len(req) < 4 {
		return nil, fmt.Errorf("%w: request too short", ErrFrame)
	}
	if t.port == nil {
		p, err := t.open(t.path, &t.mode)
		if err != nil {
			return nil, fmt.Errorf("modbus: open %s: %w", t.path, err)
		}
		t.port = p
	}
	if !t.lateUntil.IsZero() && req[0] == t.lateSlave {
		end := t.lateUntil
		if t.deadline.Before(end) {
			end = t.deadline
		}
		if err := t.discardUntil(end); err != nil {
			return nil, err
		}
		t.lateUntil = time.Time{}
	}
	// Stale input discarded: a late answer to an earlier request, noise.
	if err := t.port.ResetInputBuffer(); err != nil {
		return nil, t.fail(err)
	}
	if _, err := t.port.Write(req); err != nil {
		return nil, t.fail(err)
	}
	n := 0
	for {
		wait := time.Until(t.deadline)
		if wait <= 0 {
			return nil, t.timedOut(req[0])
		}
		if err := t.port.SetReadTimeout(wait); err != nil {
			return nil, t.fail(err)
		}
		if n == len(t.buf) {
			// Noise filled the buffer: keep the tail, which may hold the start of the answer.
			n = copy(t.buf[:], t.buf[len(t.buf)-rtuMaxADU:])
		}
		m, err := t.port.Read(t.buf[n:])
		if err != nil {
			return nil, t.fail(err)
		}
		if m == 0 {
			t.timedOut(req[0])
			if n > 0 {
				return nil, fmt.Errorf("%w: %d bytes without a valid frame before the deadline", ErrFrame, n)
			}
			return nil, ErrTimeout
		}
		n += m
		if f := findAnswer(t.buf[:n], req[0], req[1]); f != nil {
			out := make([]byte, len(f))
			copy(out, f)
			return out, nil
		}
	}
}

// timedOut notes that slave may still answer late, and returns ErrTimeout.
func (t *rtuTransport) timedOut(slave byte) error {
	if t.settle > 0 {
		t.lateSlave, t.lateUntil = slave, time.Now().Add(t.settle)
	}
	return ErrTimeout
}

// discardUntil reads and drops input until the time end.
func (t *rtuTransport) discardUntil(end time.Time) error {
	for {
		wait := time.Until(end)
		if wait <= 0 {
			return nil
		}
		if err := t.port.SetReadTimeout(wait); err != nil {
			return t.fail(err)
		}
		if _, err := t.port.Read(t.buf[:]); err != nil {
			return t.fail(err)
		}
	}
}

// rtuMaxADU is the largest RTU frame: slave id, 253-byte PDU, CRC.
const rtuMaxADU = 256

// fail closes the port after an I/O error, so that the next request
// reopens it by path (an unplugged USB adapter that came back).
func (t *rtuTransport) fail(err error) error {
	t.close()
	return fmt.Errorf("modbus: %s: %w", t.path, err)
}

func (t *rtuTransport) close() error {
	if t.port == nil {
		return nil
	}
	err := t.port.Close()
	t.port = nil
	return err
}

// answerLen returns the length of the RTU answer frame that starts with b
// (slave id, function code, ...) to a request with function fc, or 0 if b
// is too short to tell, or -1 if b cannot start such an answer.
func answerLen(b []byte, fc byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case fc | 0x80:
		return 5
	case fc:
	default:
		return -1
	}
	switch fc {
	case 1, 2, 3, 4:
		if len(b) < 3 {
			return 0
		}
		return 3 + int(b[2]) + 2
	case 5, 6, 15, 16:
		return 8
	default:
		return -1
	}
}

// findAnswer returns the first well-formed answer from slave with function
// fc (or its exception) in b, skipping noise before it; nil if none yet.
func findAnswer(b []byte, slave, fc byte) []byte {
	for i := range b {
		if b[i] != slave {
			continue
		}
		n := answerLen(b[i:], fc)
		if n <= 0 || len(b)-i < n {
			continue
		}
		f := b[i : i+n]
		if crc16(f[:n-2]) == binary.LittleEndian.Uint16(f[n-2:]) {
			return f
		}
	}
	return nil
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001 reflected, init 0xFFFF),
// Modbus over Serial Line V1.02 §6.2.2.
func crc16(b []byte) uint16 {
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
