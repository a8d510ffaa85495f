package buffer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// openClass opens one class directory and recovers it: read the cursor,
// delete fully acknowledged segments, scan the active segment and truncate
// its torn tail. Damage is logged and counted, never fatal.
func (q *Queue) openClass(co ClassOptions) (*class, error) {
	c := &class{
		q:       q,
		name:    co.Name,
		opts:    co,
		dir:     filepath.Join(q.dir, co.Name),
		segSize: q.o.SegmentSize,
		log:     q.log,
		pending: &batch{},
		acked:   map[uint64]struct{}{},
		wake:    make(chan struct{}, 1),
		wdone:   make(chan struct{}),
	}
	c.cond.L = &c.mu
	if co.MaxBytes > 0 {
		c.segSize = max(min(c.segSize, co.MaxBytes/4), minSegmentSize)
	}
	if _, err := os.Stat(c.dir); os.IsNotExist(err) {
		if err := os.Mkdir(c.dir, 0o755); err != nil {
			return nil, err
		}
		if err := syncDir(q.dir); err != nil {
			return nil, err
		}
	}
	cur, v, found, created, err := openCursor(q.o.fs, filepath.Join(c.dir, cursorName))
	if err != nil {
		return nil, err
	}
	c.cur = cur
	if created {
		if err := syncDir(c.dir); err != nil {
			c.closeFiles()
			return nil, err
		}
	}
	segs, err := listSegments(c.dir)
	if err != nil {
		c.closeFiles()
		return nil, err
	}
	if !found && len(segs) > 0 {
		c.log.Warn("cursor missing or damaged, delivering from the oldest segment", "class", c.name)
	}
	c.durable = v
	c.ackBase = v
	if len(segs) > 0 && c.ackBase < segs[0].first-1 {
		c.ackBase = segs[0].first - 1
	}
	c.cursorAt = time.Now()

	// Fully acknowledged sealed segments: their deletion was interrupted.
	var del []*segment
	for len(segs) > 1 && segs[1].first-1 <= c.ackBase {
		del = append(del, segs[0])
		segs = segs[1:]
	}
	c.removeSegments(del)

	if len(segs) == 0 {
		seg, f, err := c.createSegment(c.ackBase + 1)
		if err != nil {
			c.closeFiles()
			return nil, err
		}
		segs = []*segment{seg}
		c.active = f
	} else if err := c.recoverActive(segs[len(segs)-1]); err != nil {
		c.closeFiles()
		return nil, err
	}
	c.segs = segs
	act := segs[len(segs)-1]
	c.nextSeq = act.last + 1
	c.synced = act.size
	for i, s := range segs[:len(segs)-1] {
		s.last = segs[i+1].first - 1
	}
	for _, s := range segs {
		c.bytes += s.size
	}
	if c.ackBase >= c.nextSeq {
		// The cursor is ahead of the data: acknowledged records were lost
		// with unsynced writes (power loss under FsyncInterval). Continue
		// after the cursor so no new record hides below it.
		c.log.Warn("cursor ahead of data, continuing after it", "class", c.name, "cursor", c.ackBase, "next", c.nextSeq)
		c.nextSeq = c.ackBase + 1
		c.writing = true
		c.mu.Lock()
		err := c.rotateLocked(c.nextSeq)
		c.mu.Unlock()
		c.writing = false
		if err != nil {
			c.closeFiles()
			return nil, err
		}
		c.collect(time.Now(), true)
	}
	return c, nil
}

// maxScan bounds the bytes read at once from a damaged or oversized file.
const maxScan = 256 << 20

// recoverActive scans the active segment from its start, resyncing over
// damage, and truncates it after the last valid record. It sets seg.size and
// seg.last and opens c.active.
func (c *class) recoverActive(seg *segment) error {
	f, err := c.q.o.fs.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// A segment this queue wrote is at most SegmentSize plus one batch; a
	// far larger file is damage, and only its start is worth reading.
	data := make([]byte, min(seg.size, max(c.segSize, maxScan)))
	n, err := f.ReadAt(data, 0)
	if err != nil && err != io.EOF {
		f.Close()
		return err
	}
	data = data[:n]
	if first, herr := parseSegHeader(data); herr != nil || first != seg.first {
		if len(data) > 0 {
			c.log.Warn("rewrote damaged segment header", "class", c.name, "segment", filepath.Base(seg.path))
		}
		hdr := appendSegHeader(nil, seg.first, time.Now())
		if len(data) < segHeaderSize {
			data = append(data[:0], hdr...)
		} else {
			copy(data, hdr)
		}
		if _, err := f.WriteAt(hdr, 0); err != nil {
			f.Close()
			return err
		}
	}
	maxRec := c.q.o.MaxRecordSize
	off, end := segHeaderSize, segHeaderSize
	expect := seg.first
	maxSeq := seg.first + uint64(len(data)/recordHeaderSize)
	damaged := 0
	for off+recordHeaderSize <= len(data) {
		seq, _, size, err := decodeRecord(data[off:], maxRec, expect, maxSeq)
		if err == nil {
			expect = seq + 1
			off += size
			end = off
			continue
		}
		pos := resync(data, off+1, maxRec, expect, maxSeq)
		if pos < 0 {
			break
		}
		damaged++
		off = pos
	}
	if damaged > 0 {
		c.log.Warn("damaged records in active segment", "class", c.name, "segment", filepath.Base(seg.path), "regions", damaged)
	}
	if end < len(data) {
		c.log.Warn("truncated torn tail", "class", c.name, "segment", filepath.Base(seg.path), "bytes", len(data)-end)
	}
	if int64(end) != seg.size {
		if err := f.Truncate(int64(end)); err != nil {
			f.Close()
			return fmt.Errorf("truncate %s: %w", seg.path, err)
		}
	}
	if err := datasync(f); err != nil {
		f.Close()
		return err
	}
	seg.size = int64(end)
	seg.last = expect - 1
	c.active = f
	return nil
}
