package tpmssim

import (
	"bytes"
	"strings"

	"github.com/edgegw/edgegw/drivers/serial/serialtest"
	"github.com/edgegw/edgegw/drivers/tpms"
)

// maxRequest bounds a request; longer input without "#" is dropped.
const maxRequest = 64

// serve answers the requests arriving on p until p is closed.
func (s *Sim) serve(p *serialtest.PTY) {
	defer s.wg.Done()
	var req []byte
	buf := make([]byte, 256)
	for {
		n, err := p.Master.Read(buf)
		if err != nil {
			return // closed: unplugged or stopped
		}
		for _, c := range buf[:n] {
			switch {
			case c == '$':
				req = append(req[:0], c)
			case len(req) == 0:
				// noise between requests
			case c == '#':
				s.answer(p, append(req, c))
				req = req[:0]
			case len(req) >= maxRequest:
				req = req[:0]
			default:
				req = append(req, c)
			}
		}
	}
}

// answer replies to one request received on p.
func (s *Sim) answer(p *serialtest.PTY, req []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pty != p {
		return
	}
	var reply []byte
	if bytes.Equal(req, tpms.Request) {
		reply = s.frameLocked(s.o.Now())
	} else {
		reply = tpms.AppendError(nil, 1)
	}
	f := FaultNone
	if s.faultN != 0 {
		f = s.fault
		if s.faultN > 0 {
			s.faultN--
		}
	}
	switch f {
	case FaultChecksum:
		const hex = "0123456789ABCDEF"
		i := len(reply) - 2 // last checksum digit: replace by the next one
		reply[i] = hex[(strings.IndexByte(hex, reply[i])+1)%16]
	case FaultNoise:
		reply = append([]byte("\x00\xff#~~ noise\r\n"), reply...)
	case FaultSilent:
		return
	case FaultTruncated:
		reply = reply[:len(reply)/2]
	}
	s.writeLocked(reply)
}
