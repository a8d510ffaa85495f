package buffer

import (
	"context"
	"io"
	"os"
	"path/filepath"
)

const readChunk = 256 << 10

// reader is a class's read position. Guarded by Queue.rmu.
type reader struct {
	f      file
	seg    *segment // nil: position at ackBase+1 on the next read
	off    int64    // file offset of the next record
	expect uint64   // sequence number expected at off
	from   uint64   // hand out only records ≥ from
	pos    uint64   // one past the last record handed out; 0 after Rewind
	buf    []byte   // file bytes [bufOff, bufOff+len(buf))
	bufOff int64
	rbuf   []byte
}

func (r *reader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.seg = nil
	r.buf = r.buf[:0]
}

// Next returns the next record not yet handed out, from the
// highest-priority class that has one, blocking until one is appended or ctx
// is done. It advances the read position, not the durable cursor: call Ack
// once the record is safe elsewhere. Next returns ctx.Err() or ErrClosed.
func (q *Queue) Next(ctx context.Context) (Record, error) {
	for {
		rec, ok, err := q.TryNext()
		if ok || err != nil {
			return rec, err
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		case <-q.done:
			return Record{}, ErrClosed
		}
	}
}

// TryNext is Next without blocking: ok is false when no record is waiting.
func (q *Queue) TryNext() (rec Record, ok bool, err error) {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	select {
	case <-q.done:
		return Record{}, false, ErrClosed
	default:
	}
	for _, c := range q.classes {
		if rec, ok := c.next(); ok {
			return rec, true, nil
		}
	}
	return Record{}, false, nil
}

// Rewind makes Next start again, in every class, from the oldest record not
// yet acknowledged; records acknowledged out of order are not handed out
// again. Call it after the consumer lost its connection.
func (q *Queue) Rewind() {
	q.rmu.Lock()
	for _, c := range q.classes {
		c.r.close()
		c.r.pos = 0
	}
	q.rmu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// next returns the class's next record, if one is committed. Called with
// q.rmu held.
func (c *class) next() (Record, bool) {
	r := &c.r
	for {
		c.mu.Lock()
		base := c.ackBase
		if r.seg != nil && r.seg.first < c.segs[0].first {
			r.close() // our segment was deleted (acknowledged or dropped)
		}
		if r.seg != nil && r.from <= base {
			r.from = base + 1 // dropped meanwhile: skip what is gone
		}
		if r.seg == nil {
			if !c.openReaderLocked(base) {
				return Record{}, false
			}
			continue
		}
		i := c.segIndex(r.seg.first)
		seg := r.seg
		limit := seg.size
		sealed := c.segs[i] == seg && i+1 < len(c.segs)
		if !sealed && c.q.o.Fsync == FsyncInterval {
			// Hand out only synced records: one the cloud has seen is never
			// lost in a power cut, so its number is never used again.
			limit = min(limit, c.synced)
		}
		maxSeq := c.nextSeq - 1
		var nextFirst uint64
		if sealed {
			nextFirst = c.segs[i+1].first
			maxSeq = nextFirst - 1
		}
		c.mu.Unlock()

		if r.off+recordHeaderSize > limit {
			if !sealed {
				return Record{}, false
			}
			c.nextSegment(seg, nextFirst)
			continue
		}
		if rec, ok := c.readRecord(limit, maxSeq); ok {
			return rec, true
		}
	}
}

// openReaderLocked opens the segment holding the record after what was
// handed out (past records known lost), at least base+1. It is called with
// c.mu held and returns with it released; false means nothing is readable
// now (the active segment cannot be opened), true to look again.
func (c *class) openReaderLocked(base uint64) bool {
	r := &c.r
	target := max(base+1, r.pos)
	for _, rg := range c.skips {
		if rg.lo <= target && target <= rg.hi {
			target = rg.hi + 1
		}
	}
	seg := c.segs[c.segIndex(target)]
	c.mu.Unlock()
	f, err := c.q.o.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err == nil {
		r.f, r.seg, r.off, r.expect, r.from = f, seg, segHeaderSize, seg.first, target
		r.buf = r.buf[:0]
		return true
	}
	c.mu.Lock()
	j := c.segIndex(seg.first)
	listed := c.segs[j] == seg
	sealed := listed && j+1 < len(c.segs)
	if sealed {
		// Gone or unreadable behind our back: its records are lost.
		c.lostLocked(max(seg.first, target), c.segs[j+1].first-1)
	}
	c.mu.Unlock()
	if sealed {
		c.log.Error("segment unreadable, skipping it", "class", c.name, "segment", seg.path, "err", err)
	}
	// Not listed: deleted by the queue meanwhile; sealed: skipped. Either
	// way, look again.
	return !listed || sealed
}

// nextSegment moves the reader from the end of the sealed segment seg to
// the next one, whose first record is nextFirst: whatever is missing up to
// it was lost. If seg or the next one went meanwhile, the reader is left
// closed, to reposition from ackBase.
func (c *class) nextSegment(seg *segment, nextFirst uint64) {
	r := &c.r
	c.mu.Lock()
	j := c.segIndex(seg.first)
	if c.segs[j] != seg || j+1 >= len(c.segs) {
		c.mu.Unlock()
		return // deleted meanwhile: reposition from ackBase
	}
	c.lostLocked(max(r.expect, r.from), nextFirst-1)
	next := c.segs[j+1]
	c.mu.Unlock()
	r.close()
	f, err := c.q.o.fs.OpenFile(next.path, os.O_RDONLY, 0)
	if err != nil {
		return // deleted or unreadable: reposition from ackBase
	}
	r.f, r.seg, r.off, r.expect, r.from = f, next, segHeaderSize, next.first, max(r.from, next.first)
}

// readRecord reads the record at the reader's offset, below limit, and
// moves past it; false when it is damaged (skipped), before the reader's
// start or already acknowledged, and the caller looks again.
func (c *class) readRecord(limit int64, maxSeq uint64) (Record, bool) {
	r := &c.r
	hb, err := r.read(r.off, recordHeaderSize, limit)
	var h recordHeader
	var payload []byte
	if err == nil {
		h, err = parseHeader(hb, c.q.o.MaxRecordSize, r.expect, maxSeq)
	}
	if err == nil && r.off+int64(recordSize(h.n)) > limit {
		err = errShort
	}
	if err == nil {
		var b []byte
		b, err = r.read(r.off, recordSize(h.n), limit)
		if err == nil {
			hb, payload = b[:recordHeaderSize], b[recordHeaderSize:]
			err = h.verify(hb, payload)
		}
	}
	if err != nil {
		c.skipDamage(limit, maxSeq, err)
		return Record{}, false
	}
	seq := h.seq
	if seq > r.expect {
		c.mu.Lock()
		c.lostLocked(max(r.expect, r.from), seq-1)
		c.mu.Unlock()
	}
	r.expect = seq + 1
	r.off += int64(recordSize(h.n))
	if seq < r.from {
		return Record{}, false
	}
	c.mu.Lock()
	_, acked := c.acked[seq]
	acked = acked || seq <= c.ackBase
	c.mu.Unlock()
	if acked {
		return Record{}, false
	}
	r.pos = seq + 1
	return Record{Class: c.name, Seq: seq, Data: append([]byte(nil), payload...)}, true
}

// skipDamage moves the reader past damage at r.off to the next valid record
// of its segment, or to limit.
func (c *class) skipDamage(limit int64, maxSeq uint64, cause error) {
	r := &c.r
	start := r.off
	n := int(min(limit-start, maxScan))
	data := make([]byte, n)
	m, err := r.f.ReadAt(data, start)
	if err != nil && err != io.EOF {
		c.log.Error("segment read failed, skipping its rest", "class", c.name, "segment", filepath.Base(r.seg.path), "err", err)
		r.off, r.buf = limit, r.buf[:0]
		return
	}
	data = data[:m]
	pos := resync(data, 1, c.q.o.MaxRecordSize, r.expect, maxSeq)
	switch {
	case pos >= 0:
		r.off = start + int64(pos)
	case int64(m) < limit-start && m > recordSize(c.q.o.MaxRecordSize):
		// Only the first maxScan bytes were searched: go on from where
		// a record may start that did not fit.
		r.off = start + int64(m-recordSize(c.q.o.MaxRecordSize))
	default:
		r.off = limit
	}
	r.buf = r.buf[:0]
	c.log.Warn("skipping damaged data", "class", c.name, "segment", filepath.Base(r.seg.path),
		"offset", start, "bytes", r.off-start, "err", cause)
}

// lostLocked records that sequence numbers lo..hi were lost to damage: they
// are counted once and treated as acknowledged. Called with c.mu held.
func (c *class) lostLocked(lo, hi uint64) {
	lo = max(lo, c.ackBase+1, c.corruptHigh+1)
	if lo > hi {
		return
	}
	c.st.corrupt += hi - lo + 1
	c.corruptHigh = hi
	for s := range c.acked {
		if s >= lo && s <= hi {
			delete(c.acked, s) // covered by the range now
			c.st.corrupt--
		}
	}
	c.skips = append(c.skips, seqRange{lo, hi})
	c.advance()
}

// read returns file bytes [off, off+n), which must lie below limit.
func (r *reader) read(off int64, n int, limit int64) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff:][:n], nil
	}
	want := int64(max(n, readChunk))
	want = min(want, limit-off)
	if int64(cap(r.rbuf)) < want {
		r.rbuf = make([]byte, want)
	}
	b := r.rbuf[:want]
	m, err := r.f.ReadAt(b, off)
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, err
	}
	r.buf, r.bufOff = b[:m], off
	return b[:n], nil
}
