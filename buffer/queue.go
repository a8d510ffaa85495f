package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Queue methods.
var (
	ErrClosed       = errors.New("buffer: queue closed")
	ErrFull         = errors.New("buffer: queue full")
	ErrTooLarge     = errors.New("buffer: record too large")
	ErrUnknownClass = errors.New("buffer: unknown class")
	ErrUnknownSeq   = errors.New("buffer: sequence number never appended")
	ErrLocked       = errors.New("buffer: queue directory in use by another process")
)

// Record is one record handed out by Next. Data belongs to the caller.
type Record struct {
	Class string
	Seq   uint64
	Data  []byte
}

// Queue is a disk-backed queue with priority classes. See the package
// documentation for the model and the concurrency contract.
type Queue struct {
	dir     string
	o       Options
	log     *slog.Logger
	classes []*class // priority order
	byName  map[string]*class
	release func()

	notify chan struct{} // cap 1: new records committed, or Rewind
	kick   chan struct{} // cap 1: wake the maintainer
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// rmu serialises the consumer side (Next, TryNext, Rewind) and guards
	// every class's reader.
	rmu sync.Mutex

	// pending counts bytes Put but not yet written, over all classes.
	pending atomic.Int64

	// spaceMu guards the free-space estimate.
	spaceMu   sync.Mutex
	free      uint64
	freeKnown bool
	freeAt    time.Time
}

// batch is a group of records committed with one write (and one fdatasync).
type batch struct {
	recs  [][]byte
	bytes int
	first uint64 // sequence number of recs[0], set by the leader
	err   error
	done  bool
}

type seqRange struct{ lo, hi uint64 }

// counters are a class's statistics since Open.
type counters struct {
	appended, acked, dropped, corrupt uint64
}

type class struct {
	q       *Queue
	name    string
	opts    ClassOptions
	dir     string
	segSize int64
	log     *slog.Logger

	// cmu serialises cursor writes and segment deletion; taken before mu.
	cmu sync.Mutex
	cur *cursorFile

	// fmu serialises fdatasync of the active file with its closing.
	fmu sync.Mutex

	// wbuf is the leader's encoding buffer; only the leader (writing) uses it.
	wbuf []byte

	// mu guards the fields below; cond (on mu) signals batch completion.
	mu      sync.Mutex
	cond    sync.Cond
	closed  bool
	pending *batch
	writing bool // a leader or the writer is appending, or a segment rotating
	// The writer goroutine's input (FsyncInterval, FsyncNever): encoded
	// records with sequence numbers pfirst.. pfirst+pcount-1.
	pbuf        []byte
	pfirst      uint64
	pcount      int
	werr        error      // last append error; cleared by a successful append
	unwritten   int64      // bytes Put, not yet written (pbuf and the chunk in flight)
	lastBatch   int        // records in the last batch: >1 means concurrent producers
	segs        []*segment // oldest first; the last one is active
	active      file       // write handle of the active segment
	broken      bool       // active segment's tail uncertain: rotate before writing
	nextSeq     uint64
	synced      int64 // bytes of the active segment known durable
	ackBase     uint64
	acked       map[uint64]struct{} // acknowledged above ackBase
	skips       []seqRange          // lost to damage above ackBase, ascending
	durable     uint64              // cursor value last written
	cursorAt    time.Time
	bytes       int64
	corruptHigh uint64 // highest sequence number counted as corrupt
	st          counters

	r reader // guarded by q.rmu

	wake  chan struct{} // cap 1: the writer has input or should stop
	wdone chan struct{} // closed when the writer has exited
}

// Open opens or creates the queue in dir, recovering from any crash. It
// fails only when the directory is unusable or options are invalid, never
// because of damaged data. The caller must Close the queue.
func Open(dir string, o Options) (*Queue, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("buffer: open: %w", err)
	}
	if os.IsNotExist(statErr) {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("buffer: open: %w", err)
		}
	}
	release, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("buffer: open %s: %w", dir, err)
	}
	q := &Queue{
		dir:     dir,
		o:       o,
		log:     o.Log,
		byName:  map[string]*class{},
		release: release,
		notify:  make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	for _, co := range o.Classes {
		c, err := q.openClass(co)
		if err != nil {
			for _, c := range q.classes {
				c.closeFiles()
			}
			release()
			return nil, fmt.Errorf("buffer: open class %q: %w", co.Name, err)
		}
		q.classes = append(q.classes, c)
		q.byName[c.name] = c
	}
	q.wg.Add(1)
	go q.maintainer()
	for _, c := range q.classes {
		if o.Fsync == FsyncAlways {
			close(c.wdone)
		} else {
			go c.writer()
		}
	}
	return q, nil
}

func (q *Queue) class(name string) (*class, error) {
	c := q.byName[name]
	if c == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownClass, name)
	}
	return c, nil
}

// Put appends rec to class and returns its sequence number once it is
// durable under the fsync policy: with FsyncAlways once written and
// fdatasync'ed (concurrent Puts share the fdatasync), with FsyncInterval and
// FsyncNever once the class's writer has it (see the package documentation;
// Flush waits for the write). rec is not retained after Put returns.
// Errors: ErrUnknownClass, ErrTooLarge, ErrClosed, ErrFull (bounds with the
// Reject policy, or nothing left to drop), or a wrapped I/O error; on any
// error the record was not appended.
func (q *Queue) Put(class string, rec []byte) (uint64, error) {
	c, err := q.class(class)
	if err != nil {
		return 0, err
	}
	if len(rec) > q.o.MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), q.o.MaxRecordSize)
	}
	if q.o.Fsync != FsyncAlways {
		return c.putAsync(rec)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	b := c.pending
	idx := len(b.recs)
	b.recs = append(b.recs, rec)
	b.bytes += recordSize(len(rec))
	for !b.done {
		if !c.writing {
			// b is the pending batch: lead its commit. Yield once first
			// so that producers ready to run join the batch: one write
			// (and one fdatasync) for all of them.
			c.writing = true
			if c.lastBatch > 1 {
				c.mu.Unlock()
				runtime.Gosched()
				c.mu.Lock()
			}
			c.pending = &batch{}
			c.lastBatch = len(b.recs)
			c.commit(b)
			c.writing = false
			c.cond.Broadcast()
			break
		}
		c.cond.Wait()
	}
	seq, err := b.first+uint64(idx), b.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// maxPending bounds the bytes waiting for the writer; Put blocks above it.
const maxPending = 256 << 10

// putAsync appends rec for the writer goroutine (FsyncInterval and
// FsyncNever): the record is assigned its sequence number and is written
// within microseconds, but Put does not wait for the write.
func (c *class) putAsync(rec []byte) (uint64, error) {
	n := int64(recordSize(len(rec)))
	q := c.q
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return 0, ErrClosed
		}
		if c.werr != nil {
			err := c.werr
			c.mu.Unlock()
			return 0, fmt.Errorf("buffer: append to %s: %w", c.name, err)
		}
		if len(c.pbuf) < maxPending {
			break
		}
		c.cond.Wait()
	}
	if c.opts.MaxBytes > 0 && c.bytes+c.unwritten+n > c.opts.MaxBytes || q.o.MinFreeBytes > 0 && !q.reserve(n) {
		// Near a bound: let the writer finish so that whole segments
		// exist to drop and the free space is real, then make room.
		c.flushLocked()
		c.mu.Unlock()
		if err := c.makeRoom(n); err != nil {
			return 0, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, ErrClosed
		}
	}
	seq := c.nextSeq
	c.nextSeq++
	if c.pcount == 0 {
		c.pfirst = seq
	}
	c.pbuf = appendRecord(c.pbuf, seq, rec)
	c.pcount++
	q.pending.Add(n)
	c.unwritten += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// flushLocked waits until everything Put so far is written or the writer
// failed. Called with c.mu held.
func (c *class) flushLocked() {
	for (len(c.pbuf) > 0 || c.writing || len(c.pending.recs) > 0) && c.werr == nil && !c.closed {
		c.cond.Wait()
	}
}

// Flush waits until every record Put so far is written and fdatasync'ed,
// whatever the fsync policy. It returns the error that keeps records from
// being written, if any.
func (q *Queue) Flush() error {
	var errs []error
	for _, c := range q.classes {
		c.mu.Lock()
		c.flushLocked()
		if c.werr != nil {
			errs = append(errs, fmt.Errorf("buffer: flush %s: %w", c.name, c.werr))
		}
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			c.syncActive()
		}
	}
	return errors.Join(errs...)
}

// writer appends what putAsync queued, until Close. After a write error
// (disk full, I/O error) it truncates back, keeps the records, fails new
// Puts with the error and retries every FsyncInterval.
func (c *class) writer() {
	defer close(c.wdone)
	var spare []byte
	retry := time.NewTimer(0)
	<-retry.C
	for {
		c.mu.Lock()
		if len(c.pbuf) == 0 {
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
			<-c.wake
			continue
		}
		for c.writing {
			c.cond.Wait()
		}
		c.writing = true
		buf, first, count := c.pbuf, c.pfirst, c.pcount
		c.pbuf, c.pcount = spare[:0], 0
		c.cond.Broadcast()
		c.mu.Unlock()

		rest, restFirst, err := c.writeChunks(buf, first)

		c.mu.Lock()
		c.writing = false
		c.cond.Broadcast()
		if err == nil {
			if cap(buf) <= 2*maxPending {
				spare = buf
			}
			c.mu.Unlock()
			continue
		}
		// Put the unwritten records back in front of newer ones.
		n := count - int(restFirst-first)
		c.pbuf = append(append([]byte(nil), rest...), c.pbuf...)
		c.pfirst, c.pcount = restFirst, c.pcount+n
		if c.werr == nil {
			c.log.Error("append failed, retrying", "class", c.name, "records", c.pcount, "err", err)
		}
		c.werr = err
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		retry.Reset(c.q.o.FsyncInterval)
		select {
		case <-retry.C:
		case <-c.q.done:
		}
	}
}

// writeChunks writes encoded records (the first numbered first) to the
// active segment, rotating when it is full. On error it returns the
// unwritten records and the number of the first of them. Called by the
// writer with writing set and no lock held.
func (c *class) writeChunks(buf []byte, first uint64) ([]byte, uint64, error) {
	for len(buf) > 0 {
		c.mu.Lock()
		act := c.segs[len(c.segs)-1]
		if c.broken || (act.size >= c.segSize && act.size > segHeaderSize) {
			if err := c.rotateLocked(first); err != nil {
				c.mu.Unlock()
				return buf, first, err
			}
			act = c.segs[len(c.segs)-1]
		}
		off, f := act.size, c.active
		room := c.segSize - off
		c.mu.Unlock()
		// Whole records up to the room left, at least one.
		k, nrec := 0, uint64(0)
		for k < len(buf) {
			sz := recordSize(int(binary.LittleEndian.Uint32(buf[k:])))
			if nrec > 0 && int64(k+sz) > room {
				break
			}
			k += sz
			nrec++
		}
		if _, err := f.WriteAt(buf[:k], off); err != nil {
			c.mu.Lock()
			if terr := f.Truncate(off); terr != nil {
				c.broken = true
				c.log.Error("cannot truncate failed append", "class", c.name, "segment", act.path, "err", terr)
			}
			c.mu.Unlock()
			return buf, first, fmt.Errorf("buffer: append to %s: %w", c.name, err)
		}
		c.q.pending.Add(-int64(k))
		c.mu.Lock()
		c.unwritten -= int64(k)
		act.size = off + int64(k)
		act.last = first + nrec - 1
		act.lastWrite = time.Now()
		c.bytes += int64(k)
		c.st.appended += nrec
		if c.werr != nil {
			c.log.Info("append recovered", "class", c.name)
			c.werr = nil
		}
		c.mu.Unlock()
		select {
		case c.q.notify <- struct{}{}:
		default:
		}
		buf, first = buf[k:], first+nrec
	}
	return nil, first, nil
}

// commit writes b. Called by the leader with c.mu held; it releases c.mu
// during I/O.
func (c *class) commit(b *batch) {
	defer func() { b.done = true }()
	c.mu.Unlock()
	err := c.makeRoom(int64(b.bytes))
	c.mu.Lock()
	if err != nil {
		b.err = err
		return
	}
	act := c.segs[len(c.segs)-1]
	if c.broken || (act.size >= c.segSize && act.size > segHeaderSize) {
		if err := c.rotateLocked(c.nextSeq); err != nil {
			b.err = err
			return
		}
		act = c.segs[len(c.segs)-1]
	}
	b.first = c.nextSeq
	off, f := act.size, c.active
	c.mu.Unlock()

	buf := c.wbuf[:0]
	for i, r := range b.recs {
		buf = appendRecord(buf, b.first+uint64(i), r)
	}
	if cap(buf) <= 4<<20 {
		c.wbuf = buf
	}
	_, err = f.WriteAt(buf, off)
	if err == nil && c.q.o.Fsync == FsyncAlways {
		err = datasync(f)
	}

	c.mu.Lock()
	if err != nil {
		// Leave no half record: cut back to the last good offset. If even
		// that fails, the tail is uncertain; seal the segment there (readers
		// stop at its recorded size) and start a new one next time.
		if terr := f.Truncate(off); terr != nil {
			c.broken = true
			c.log.Error("cannot truncate failed append", "class", c.name, "segment", act.path, "err", terr)
		}
		b.err = fmt.Errorf("buffer: append to %s: %w", c.name, err)
		return
	}
	n := uint64(len(b.recs))
	act.size = off + int64(len(buf))
	act.last = b.first + n - 1
	act.lastWrite = time.Now()
	c.nextSeq += n
	c.bytes += int64(len(buf))
	c.st.appended += n
	if c.q.o.Fsync == FsyncAlways {
		c.synced = act.size
	}
	select {
	case c.q.notify <- struct{}{}:
	default:
	}
}

// rotateLocked seals the active segment and starts a new one whose first
// record will be first. Called with c.mu held and writing set; it releases
// c.mu during I/O.
func (c *class) rotateLocked(first uint64) error {
	old := c.active
	c.mu.Unlock()
	// The sealed segment is durable before its successor exists, so after
	// a power cut only the newest segment can have a torn tail.
	if old != nil {
		c.fmu.Lock()
		if serr := datasync(old); serr != nil {
			c.log.Error("sync of sealed segment failed", "class", c.name, "err", serr)
		}
		c.fmu.Unlock()
	}
	seg, f, err := c.createSegment(first)
	if err == nil && old != nil {
		c.fmu.Lock()
		old.Close()
		c.fmu.Unlock()
	}
	c.mu.Lock()
	if err != nil {
		return fmt.Errorf("buffer: new segment in %s: %w", c.name, err)
	}
	c.segs = append(c.segs, seg)
	c.active = f
	c.synced = seg.size
	c.broken = false
	c.bytes += seg.size
	return nil
}

// createSegment creates and syncs a new, empty segment file and its
// directory entry.
func (c *class) createSegment(first uint64) (*segment, file, error) {
	path := filepath.Join(c.dir, segName(first))
	f, err := c.q.o.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	hdr := appendSegHeader(nil, first, now)
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		os.Remove(path)
		return nil, nil, err
	}
	if c.q.o.Fsync != FsyncNever {
		if err := datasync(f); err != nil {
			f.Close()
			os.Remove(path)
			return nil, nil, err
		}
	}
	if err := syncDir(c.dir); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &segment{first: first, path: path, size: segHeaderSize, last: first - 1, lastWrite: now}, f, nil
}

// makeRoom applies the bounds before n more bytes are appended to c. Called
// by c's leader without locks.
func (c *class) makeRoom(n int64) error {
	if max := c.opts.MaxBytes; max > 0 {
		for {
			c.mu.Lock()
			over := c.bytes+c.unwritten+n > max
			c.mu.Unlock()
			if !over {
				break
			}
			if c.opts.Policy == Reject || !c.dropOldest("max_bytes") {
				return fmt.Errorf("%w: class %s at max_bytes %d", ErrFull, c.name, max)
			}
		}
	}
	q := c.q
	if q.o.MinFreeBytes == 0 {
		return nil
	}
	for range 1 << 16 {
		if q.reserve(n) {
			return nil
		}
		// Drop from drop_oldest classes, lowest priority first.
		dropped := false
		for i := len(q.classes) - 1; i >= 0 && !dropped; i-- {
			v := q.classes[i]
			if v.opts.Policy == DropOldest {
				dropped = v.dropOldest("free_space")
			}
		}
		if !dropped {
			break
		}
		q.spaceMu.Lock()
		q.freeKnown = false
		q.spaceMu.Unlock()
	}
	return fmt.Errorf("%w: free space below %d bytes", ErrFull, q.o.MinFreeBytes)
}

// reserve reports whether n bytes fit above the free-space floor, using a
// cached statfs result refreshed every second or when close to the floor.
func (q *Queue) reserve(n int64) bool {
	const slack = 1 << 20
	q.spaceMu.Lock()
	defer q.spaceMu.Unlock()
	need := uint64(n) + uint64(max(q.pending.Load(), 0)) + q.o.MinFreeBytes
	if !q.freeKnown || time.Since(q.freeAt) > time.Second || q.free < need+slack {
		free, ok := freeSpace(q.dir)
		if !ok {
			return true // unknown: do not block producers
		}
		q.free, q.freeKnown, q.freeAt = free, true, time.Now()
	}
	if q.free < need {
		return false
	}
	q.free -= uint64(n)
	return true
}

// dropOldest deletes c's oldest sealed segment, counting its unacknowledged
// records as dropped. It reports false when there is none.
func (c *class) dropOldest(why string) bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	c.mu.Lock()
	if len(c.segs) < 2 {
		c.mu.Unlock()
		return false
	}
	s := c.segs[0]
	last := c.segs[1].first - 1
	var n uint64
	if last > c.ackBase {
		n = last - c.ackBase
		for seq := range c.acked {
			if seq <= last {
				n--
			}
		}
		for _, r := range c.skips {
			if r.lo <= last {
				n -= min(r.hi, last) - r.lo + 1
			}
		}
	}
	c.advanceTo(last)
	c.segs = c.segs[1:]
	c.bytes -= s.size
	c.st.dropped += n
	v := c.ackBase
	c.mu.Unlock()
	c.log.Warn("dropped oldest segment", "class", c.name, "reason", why, "records", n, "segment", filepath.Base(s.path))
	c.writeCursor(v)
	c.removeSegments([]*segment{s})
	return true
}

// advanceTo marks everything up to v as gone (acknowledged or dropped).
// Called with c.mu held.
func (c *class) advanceTo(v uint64) {
	if v <= c.ackBase {
		return
	}
	c.ackBase = v
	for seq := range c.acked {
		if seq <= v {
			delete(c.acked, seq)
		}
	}
	for len(c.skips) > 0 && c.skips[0].hi <= v {
		c.skips = c.skips[1:]
	}
	c.advance()
}

// advance moves ackBase over contiguous acknowledged or lost records.
// Called with c.mu held.
func (c *class) advance() {
	for {
		if _, ok := c.acked[c.ackBase+1]; ok {
			delete(c.acked, c.ackBase+1)
			c.ackBase++
			continue
		}
		if len(c.skips) > 0 && c.skips[0].lo <= c.ackBase+1 {
			if c.skips[0].hi > c.ackBase {
				c.ackBase = c.skips[0].hi
			}
			c.skips = c.skips[1:]
			continue
		}
		return
	}
}

// Ack acknowledges the record seq of class. Acknowledgements may come in any
// order; acknowledging a record twice, or one already dropped, is a no-op.
// Errors: ErrUnknownClass, ErrUnknownSeq (never appended), ErrClosed.
func (q *Queue) Ack(class string, seq uint64) error {
	c, err := q.class(class)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if seq == 0 || seq >= c.nextSeq {
		return fmt.Errorf("%w: %s %d", ErrUnknownSeq, c.name, seq)
	}
	if seq <= c.ackBase {
		return nil
	}
	if _, ok := c.acked[seq]; ok {
		return nil
	}
	c.acked[seq] = struct{}{}
	c.st.acked++
	c.advance()
	if len(c.segs) > 1 && c.segs[1].first-1 <= c.ackBase {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// writeCursor stores v as the durable cursor if it is newer. Called with
// c.cmu held.
func (c *class) writeCursor(v uint64) {
	c.mu.Lock()
	if v <= c.durable {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := c.cur.write(v); err != nil {
		c.log.Error("cursor write failed", "class", c.name, "err", err)
		return
	}
	c.mu.Lock()
	c.durable = v
	c.cursorAt = time.Now()
	c.mu.Unlock()
}

// removeSegments deletes segment files and syncs the directory. Called with
// c.cmu held, after the cursor covering them was written.
func (c *class) removeSegments(segs []*segment) {
	if len(segs) == 0 {
		return
	}
	for _, s := range segs {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			c.log.Error("segment delete failed", "class", c.name, "segment", s.path, "err", err)
		}
	}
	if err := syncDir(c.dir); err != nil {
		c.log.Error("directory sync failed", "class", c.name, "err", err)
	}
}

// collect deletes fully acknowledged sealed segments and writes the cursor
// when it is due (or force).
func (c *class) collect(now time.Time, force bool) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	c.mu.Lock()
	var del []*segment
	for len(c.segs) > 1 && c.segs[1].first-1 <= c.ackBase {
		del = append(del, c.segs[0])
		c.bytes -= c.segs[0].size
		c.segs = c.segs[1:]
	}
	v := c.ackBase
	due := force || len(del) > 0 || now.Sub(c.cursorAt) >= c.q.o.CursorInterval
	c.mu.Unlock()
	if due {
		c.writeCursor(v)
	}
	c.removeSegments(del)
}

// syncActive fdatasyncs the active segment if it has unsynced data.
func (c *class) syncActive() {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.mu.Lock()
	f := c.active
	size := c.segs[len(c.segs)-1].size
	dirty := size > c.synced
	c.mu.Unlock()
	if !dirty || f == nil {
		return
	}
	if err := datasync(f); err != nil {
		c.log.Error("segment sync failed", "class", c.name, "err", err)
		return
	}
	c.mu.Lock()
	c.synced = max(c.synced, size)
	c.mu.Unlock()
	select {
	case c.q.notify <- struct{}{}: // synced records are now visible to Next
	default:
	}
}

// expire drops segments whose newest record is older than MaxAge, sealing
// the active segment first when it has gone stale.
func (c *class) expire(now time.Time) {
	age := c.opts.MaxAge
	if age <= 0 {
		return
	}
	c.mu.Lock()
	for c.writing {
		c.cond.Wait()
	}
	act := c.segs[len(c.segs)-1]
	if act.size > segHeaderSize && now.Sub(act.lastWrite) > age && !c.closed {
		c.writing = true
		if err := c.rotateLocked(act.last + 1); err != nil {
			c.log.Error("rotation failed", "class", c.name, "err", err)
		}
		c.writing = false
		c.cond.Broadcast()
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		stale := len(c.segs) > 1 && now.Sub(c.segs[0].lastWrite) > age
		c.mu.Unlock()
		if !stale || !c.dropOldest("max_age") {
			return
		}
	}
}

// maintainer syncs, writes cursors, deletes and expires segments in the
// background until Close.
func (q *Queue) maintainer() {
	defer q.wg.Done()
	tick := min(q.o.CursorInterval, time.Second)
	if q.o.Fsync == FsyncInterval {
		tick = min(tick, q.o.FsyncInterval)
	}
	for _, c := range q.classes {
		if c.opts.MaxAge > 0 {
			tick = min(tick, max(c.opts.MaxAge/4, time.Millisecond))
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-t.C:
		case <-q.kick:
		}
		now := time.Now()
		for _, c := range q.classes {
			if q.o.Fsync == FsyncInterval {
				c.syncActive()
			}
			c.expire(now)
			c.collect(now, false)
		}
	}
}

// Close flushes and syncs every class, writes the durable cursors and
// releases the directory. Puts waiting in a batch complete first; later
// calls fail with ErrClosed, and a blocked Next returns ErrClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.done)
		q.wg.Wait()
		var errs []error
		for _, c := range q.classes {
			c.mu.Lock()
			c.closed = true
			c.cond.Broadcast()
			for c.writing || len(c.pending.recs) > 0 {
				c.cond.Wait()
			}
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
			<-c.wdone
			c.mu.Lock()
			if c.werr != nil {
				errs = append(errs, fmt.Errorf("buffer: close %s: %d records not written: %w", c.name, c.pcount, c.werr))
			}
			c.mu.Unlock()
			c.syncActive()
			c.collect(time.Now(), true)
		}
		q.rmu.Lock()
		for _, c := range q.classes {
			if err := c.closeFiles(); err != nil {
				errs = append(errs, err)
			}
		}
		q.rmu.Unlock()
		q.release()
		q.closeErr = errors.Join(errs...)
	})
	return q.closeErr
}

func (c *class) closeFiles() error {
	var errs []error
	c.fmu.Lock()
	if c.active != nil {
		if err := datasync(c.active); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, c.active.Close())
		c.active = nil
	}
	c.fmu.Unlock()
	if c.cur != nil {
		errs = append(errs, c.cur.close())
	}
	c.r.close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("buffer: close %s: %w", c.name, err)
	}
	return nil
}

// Len returns the number of records appended and not yet acknowledged or
// dropped, over all classes.
func (q *Queue) Len() int {
	n := 0
	for _, c := range q.classes {
		c.mu.Lock()
		n += c.lenLocked()
		c.mu.Unlock()
	}
	return n
}

func (c *class) lenLocked() int {
	n := int64(c.nextSeq-1-c.ackBase) - int64(len(c.acked))
	for _, r := range c.skips {
		n -= int64(r.hi - r.lo + 1)
	}
	return int(max(n, 0))
}

// Stats are counters since Open and current sizes.
type Stats struct {
	Appended       uint64 // records appended
	Acked          uint64 // records acknowledged
	Dropped        uint64 // records dropped unacknowledged (bounds, MaxAge)
	CorruptSkipped uint64 // records lost to damage, skipped by the reader
	Bytes          int64  // bytes on disk in segments
	Len            int    // records not yet acknowledged or dropped
	Classes        []ClassStats
}

// ClassStats are one class's figures.
type ClassStats struct {
	Name           string
	Appended       uint64
	Acked          uint64
	Dropped        uint64
	CorruptSkipped uint64
	Bytes          int64
	Len            int
	Segments       int
	Cursor         uint64 // the durable cursor: everything up to it is acknowledged on disk
	NextSeq        uint64 // sequence number the next Put gets
}

// Stats returns the queue's counters, per class in priority order and in
// total.
func (q *Queue) Stats() Stats {
	var s Stats
	for _, c := range q.classes {
		c.mu.Lock()
		cs := ClassStats{
			Name:           c.name,
			Appended:       c.st.appended,
			Acked:          c.st.acked,
			Dropped:        c.st.dropped,
			CorruptSkipped: c.st.corrupt,
			Bytes:          c.bytes,
			Len:            c.lenLocked(),
			Segments:       len(c.segs),
			Cursor:         c.durable,
			NextSeq:        c.nextSeq,
		}
		c.mu.Unlock()
		s.Appended += cs.Appended
		s.Acked += cs.Acked
		s.Dropped += cs.Dropped
		s.CorruptSkipped += cs.CorruptSkipped
		s.Bytes += cs.Bytes
		s.Len += cs.Len
		s.Classes = append(s.Classes, cs)
	}
	return s
}

// segIndex returns the index of the segment holding seq in c.segs: the last
// one whose first is ≤ seq, or 0. Called with c.mu held.
func (c *class) segIndex(seq uint64) int {
	i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].first > seq })
	return max(i-1, 0)
}
