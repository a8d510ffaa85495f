package buffer

import (
	"errors"
	"io"
	"os"
)

// Scan calls fn, in order, with each record of class whose sequence number
// is at least from and which is in the class's segments when Scan starts:
// written, acknowledged or not, until fn returns false. It opens only the
// segment holding from and those after it, so a caller that knows where
// its interest starts reads the tail of a large backlog, not all of it.
// data aliases Scan's buffer and is valid only during the call.
//
// Scan is independent of the consumer: it neither moves Next's position
// nor counts damage, which it skips silently (Next counts and logs it).
// Records appended while it runs may or may not be seen. It may be called
// concurrently with every other method.
func (q *Queue) Scan(class string, from uint64, fn func(seq uint64, data []byte) bool) error {
	c, err := q.class(class)
	if err != nil {
		return err
	}
	type span struct {
		path          string
		first, maxSeq uint64
		size          int64
	}
	var spans []span
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	for j := c.segIndex(from); j < len(c.segs); j++ {
		s := c.segs[j]
		maxSeq := c.nextSeq - 1
		if j+1 < len(c.segs) {
			maxSeq = c.segs[j+1].first - 1
		}
		if maxSeq >= from && maxSeq >= s.first {
			spans = append(spans, span{s.path, s.first, maxSeq, s.size})
		}
	}
	c.mu.Unlock()
	sc := scanner{maxRec: q.o.MaxRecordSize}
	for _, s := range spans {
		f, err := q.o.fs.OpenFile(s.path, os.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted meanwhile: acknowledged or dropped
		}
		if err != nil {
			return err
		}
		more, err := sc.segment(f, s.size, s.first, s.maxSeq, from, fn)
		f.Close()
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// scanner reads the records of segment files for Scan.
type scanner struct {
	maxRec int
	buf    []byte // file bytes [off, off+len(buf))
	off    int64
	f      file
	size   int64
}

// at returns file bytes [off, off+n), or nil past size.
func (s *scanner) at(off int64, n int) ([]byte, error) {
	if off+int64(n) > s.size {
		return nil, nil
	}
	if off >= s.off && off+int64(n) <= s.off+int64(len(s.buf)) {
		return s.buf[off-s.off:][:n], nil
	}
	want := min(int64(max(n, readChunk)), s.size-off)
	if int64(cap(s.buf)) < want {
		s.buf = make([]byte, want)
	}
	b := s.buf[:want]
	m, err := s.f.ReadAt(b, off)
	if m < n {
		s.buf = s.buf[:0]
		if err == nil || err == io.EOF {
			return nil, nil // shorter than listed: the rest is gone
		}
		return nil, err
	}
	s.buf, s.off = b[:m], off
	return b[:n], nil
}

// segment scans one segment of size bytes holding sequence numbers
// first..maxSeq; more is false once fn returned false.
func (s *scanner) segment(f file, size int64, first, maxSeq, from uint64, fn func(uint64, []byte) bool) (more bool, err error) {
	s.f, s.size, s.buf, s.off = f, size, s.buf[:0], 0
	off, expect := int64(segHeaderSize), first
	for {
		hb, err := s.at(off, recordHeaderSize)
		if hb == nil || err != nil {
			return true, err
		}
		h, err := parseHeader(hb, s.maxRec, expect, maxSeq)
		var b []byte
		if err == nil {
			if b, err = s.at(off, recordSize(h.n)); err != nil {
				return true, err
			}
			if b == nil {
				err = errShort
			} else {
				err = h.verify(b[:recordHeaderSize], b[recordHeaderSize:])
			}
		}
		if err != nil {
			// Damage: look for the next valid record within what a
			// reader would search.
			n := min(size-off, maxScan)
			data := make([]byte, n)
			m, rerr := f.ReadAt(data, off)
			if rerr != nil && rerr != io.EOF {
				return true, rerr
			}
			pos := resync(data[:m], 1, s.maxRec, expect, maxSeq)
			if pos < 0 {
				return true, nil
			}
			off += int64(pos)
			s.buf = s.buf[:0]
			continue
		}
		off += int64(len(b))
		expect = h.seq + 1
		if h.seq >= from && !fn(h.seq, b[recordHeaderSize:]) {
			return false, nil
		}
	}
}
