package client

import (
	"fmt"
	"io"
	"os"
)

// rxState is the QoS 2 receive state: one bit per packet identifier
// delivered to the application and awaiting PUBREL. With a file, each change
// is written in place (one byte) and synced, so that a restarted process
// still knows which resent PUBLISHes it has already delivered. Guarded by
// Client.mu.
type rxState struct {
	bits [8192]byte
	f    *os.File
}

func openRxState(path string) (*rxState, error) {
	s := &rxState{}
	if path == "" {
		return s, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	n, err := io.ReadFull(f, s.bits[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		return nil, err
	}
	if n < len(s.bits) {
		// New or short (torn) file: what was read stays, the rest is
		// zero; make the file whole.
		if _, err := f.WriteAt(s.bits[:], 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	s.f = f
	return s, nil
}

func (s *rxState) has(id uint16) bool { return s.bits[id>>3]&(1<<(id&7)) != 0 }

func (s *rxState) add(id uint16) error {
	s.bits[id>>3] |= 1 << (id & 7)
	return s.write(id)
}

func (s *rxState) release(id uint16) error {
	if !s.has(id) {
		return nil
	}
	s.bits[id>>3] &^= 1 << (id & 7)
	return s.write(id)
}

func (s *rxState) write(id uint16) error {
	if s.f == nil {
		return nil
	}
	i := int64(id >> 3)
	if _, err := s.f.WriteAt(s.bits[i:i+1], i); err != nil {
		return fmt.Errorf("client: state file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("client: state file: %w", err)
	}
	return nil
}

// clear forgets everything: the server did not resume the session.
func (s *rxState) clear() {
	var zero [8192]byte
	if s.bits == zero {
		return
	}
	s.bits = zero
	if s.f != nil {
		s.f.WriteAt(s.bits[:], 0)
		s.f.Sync()
	}
}

func (s *rxState) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
