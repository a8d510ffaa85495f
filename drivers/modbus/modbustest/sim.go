package modbustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers/backoff"
	"github.com/edgegw/edgegw/drivers/serial/serialtest"
)

// Simulator kinds.
const (
	KindRTU = "modbus_rtu"
	KindTCP = "modbus_tcp"
)

// SlaveOpts describes one simulated slave.
type SlaveOpts struct {
	ID    int    `toml:"id"`
	Model string `toml:"model"` // XYMD02, SeatModule, Relay8 or Empty
	// Occupied sets a seat module's occupancy input at start.
	Occupied bool `toml:"occupied"`
}

// Opts configure a simulator, from a [[simulator]] entry.
type Opts struct {
	Kind   string      `toml:"kind"`   // KindRTU or KindTCP
	Link   string      `toml:"link"`   // RTU: symlink to the pty's slave side (optional)
	Listen string      `toml:"listen"` // TCP: address, default 127.0.0.1:0
	Slaves []SlaveOpts `toml:"slaves"`
	// Baud, if set, makes the RTU slave take the time the request and
	// the answer would take on a line at this rate (11 bits a character)
	// before it answers, so that a pty behaves like a real line.
	Baud int `toml:"baud"`
	// Static keeps the models' values still (no drift, no warming) for
	// tests that set values themselves.
	Static bool `toml:"static"`
	// Bank, if set, is served instead of a new one, so that an RTU and a
	// TCP simulator can share one bank. Slaves are added to it.
	Bank *Bank        `toml:"-"`
	Log  *slog.Logger `toml:"-"`
}

// Sim is a running simulator. Close stops it.
type Sim struct {
	bank   *Bank
	baud   int
	pty    *serialtest.PTY
	ln     net.Listener
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards conns.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start starts a simulator; it runs until ctx is done or Close.
func Start(ctx context.Context, o Opts) (*Sim, error) {
	b := o.Bank
	if b == nil {
		b = NewBank()
	}
	var errs []error
	for i, s := range o.Slaves {
		if s.ID < 1 || s.ID > 247 {
			errs = append(errs, fmt.Errorf("slaves[%d].id: %d outside 1..247", i, s.ID))
			continue
		}
		if err := b.AddModel(byte(s.ID), s.Model); err != nil {
			errs = append(errs, fmt.Errorf("slaves[%d].model: %w", i, err))
			continue
		}
		if s.Occupied {
			b.SetBit(byte(s.ID), DiscreteInput, 0, true)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("modbustest: %w", err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sim{bank: b, baud: o.Baud, log: log, cancel: cancel, conns: make(map[net.Conn]struct{})}
	switch o.Kind {
	case KindRTU:
		p, err := serialtest.OpenPTY()
		if err != nil {
			cancel()
			return nil, err
		}
		if o.Link != "" {
			err := os.MkdirAll(filepath.Dir(o.Link), 0o755)
			if err == nil {
				err = p.Link(o.Link)
			}
			if err != nil {
				p.Close()
				cancel()
				return nil, err
			}
		}
		s.pty = p
		s.wg.Go(func() { s.serveRTU(ctx) })
	case KindTCP:
		addr := o.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("modbustest: %w", err)
		}
		s.ln = ln
		s.wg.Go(func() { s.serveTCP(ctx) })
	default:
		cancel()
		return nil, fmt.Errorf("modbustest: kind %q must be %s or %s", o.Kind, KindRTU, KindTCP)
	}
	if !o.Static {
		s.wg.Go(func() { s.tick(ctx) })
	}
	s.wg.Go(func() {
		<-ctx.Done()
		s.shut()
	})
	return s, nil
}

// Bank returns the simulator's register bank.
func (s *Sim) Bank() *Bank { return s.bank }

// Path returns the pty's slave path (RTU), "" for TCP.
func (s *Sim) Path() string {
	if s.pty == nil {
		return ""
	}
	return s.pty.SlavePath
}

// Addr returns the TCP listen address, "" for RTU.
func (s *Sim) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the simulator, closes its pty or listener and connections,
// and waits for its goroutines.
func (s *Sim) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// shut unblocks the servers' reads.
func (s *Sim) shut() {
	if s.pty != nil {
		s.pty.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

func (s *Sim) tick(ctx context.Context) {
	const dt = time.Second
	start := time.Now()
	t := time.NewTicker(dt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.bank.Step(now.Sub(start), dt)
		}
	}
}

func noise(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return b
}

// serveRTU answers requests on the pty's master side, like a line with
// all the bank's slaves on it.
func (s *Sim) serveRTU(ctx context.Context) {
	m := s.pty.Master
	buf := make([]byte, 0, 1024)
	rd := make([]byte, 512)
	for {
		n, err := m.Read(rd)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
				s.log.Warn("simulator read failed", "err", err)
			}
			return
		}
		buf = append(buf, rd[:n]...)
		for {
			frame, used := SplitRTU(buf)
			if frame == nil {
				buf = append(buf[:0], buf[used:]...)
				break
			}
			id, pdu := frame[0], frame[1:len(frame)-2]
			pdu = append([]byte(nil), pdu...)
			buf = append(buf[:0], buf[used:]...)
			if !s.answerRTU(ctx, id, pdu, len(frame)) {
				return
			}
		}
		if len(buf) > 4096 {
			buf = buf[:0]
		}
	}
}

func (s *Sim) answerRTU(ctx context.Context, id byte, pdu []byte, reqLen int) bool {
	f, ok := s.bank.faultOf(id)
	if !ok && id != 0 {
		return true // no such slave on the line
	}
	ans := s.bank.Handle(id, pdu)
	if id == 0 || f.Dead || ans == nil {
		return true // broadcast: no answer, V1.02 §2.2
	}
	delay := f.Delay
	if s.baud > 0 {
		chars := reqLen + len(ans) + 3
		delay += time.Duration(chars) * 11 * time.Second / time.Duration(s.baud)
	}
	if !backoff.Sleep(ctx, delay) {
		return false
	}
	var out []byte
	if f.Noise > 0 {
		out = append(out, noise(f.Noise)...)
	}
	if f.Garbage {
		out = append(out, noise(len(ans)+3)...)
	} else {
		out = AppendRTU(out, id, ans)
	}
	if _, err := s.pty.Master.Write(out); err != nil {
		return false
	}
	return true
}

func (s *Sim) serveTCP(ctx context.Context) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.serveConn(ctx, c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		})
	}
}

func (s *Sim) serveConn(ctx context.Context, c net.Conn) {
	buf := make([]byte, 0, 600)
	rd := make([]byte, 512)
	for {
		n, err := c.Read(rd)
		if err != nil {
			return
		}
		buf = append(buf, rd[:n]...)
		for {
			tid, unit, pdu, used, err := ParseTCP(buf)
			if err != nil {
				return // cannot resynchronise a TCP stream: drop it
			}
			if used == 0 {
				break
			}
			pdu = append([]byte(nil), pdu...)
			buf = append(buf[:0], buf[used:]...)
			f, ok := s.bank.faultOf(unit)
			if !ok || f.Dead {
				continue
			}
			ans := s.bank.Handle(unit, pdu)
			if ans == nil {
				continue
			}
			if !backoff.Sleep(ctx, f.Delay) {
				return
			}
			var out []byte
			if f.Garbage {
				out = noise(len(ans) + mbapLen)
				out[2] = 0xFF // never a valid protocol id
			} else {
				out = AppendTCP(nil, tid, unit, ans)
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}
