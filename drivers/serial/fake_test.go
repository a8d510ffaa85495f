package serial

import (
	"bytes"
	"sync"
	"syscall"
	"time"
)

// fakeConn is an open line in memory: chunks sent on in are read in order;
// a read with nothing to read waits for the read timeout. It works inside
// synctest bubbles.
type fakeConn struct {
	in      chan []byte
	unplug  chan struct{} // closed: reads and writes fail with EIO
	closed  chan struct{}
	reply   func(req []byte) [][]byte // answers writes, if set
	pending []byte
	timeout time.Duration

	// mu guards written and closeOnce.
	mu        sync.Mutex
	written   bytes.Buffer
	closeOnce sync.Once
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 64), unplug: make(chan struct{}), closed: make(chan struct{}), timeout: -1}
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if len(f.pending) == 0 {
		var tc <-chan time.Time
		if f.timeout >= 0 {
			t := time.NewTimer(f.timeout)
			defer t.Stop()
			tc = t.C
		}
		select {
		case b := <-f.in:
			f.pending = b
		case <-f.unplug:
			return 0, syscall.EIO
		case <-f.closed:
			return 0, syscall.EBADF
		case <-tc:
			return 0, nil
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	select {
	case <-f.unplug:
		return 0, syscall.EIO
	default:
	}
	f.mu.Lock()
	f.written.Write(p)
	f.mu.Unlock()
	if f.reply != nil {
		for _, c := range f.reply(p) {
			f.in <- c
		}
	}
	return len(p), nil
}

func (f *fakeConn) SetReadTimeout(t time.Duration) error { f.timeout = t; return nil }

func (f *fakeConn) ResetInputBuffer() error {
	for {
		select {
		case <-f.in:
		default:
			f.pending = nil
			return nil
		}
	}
}

func (f *fakeConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// fakeDevice is a device node that can be missing: open fails with
// ENOENT while conn is nil.
type fakeDevice struct {
	// mu guards the fields below.
	mu     sync.Mutex
	conn   *fakeConn
	opens  []time.Time // every open attempt
	failed int
}

func (d *fakeDevice) open(path string, c *Config) (conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opens = append(d.opens, time.Now())
	if d.conn == nil {
		d.failed++
		return nil, syscall.ENOENT
	}
	return d.conn, nil
}

func (d *fakeDevice) plug(c *fakeConn) {
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
}

func (d *fakeDevice) attempts() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.opens...)
}
