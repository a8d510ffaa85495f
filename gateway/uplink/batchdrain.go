package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/packet"
	"golang.org/x/sync/semaphore"
)

// BatchOptions are the [uplink.batch] keys. With them the uplink packs
// queued records of one class into one PUBLISH (see batch.go for the
// format); records of the alarm class (alarms, device status, command
// results) and records with MQTT 5 request/response properties are sent
// alone, at once, as without batches.
type BatchOptions struct {
	MaxRecords  int           // records per batch; default 500
	MaxBytes    int           // bytes of a batch's JSON before compression; default 256 KiB
	MaxDelay    time.Duration // longest wait of a record for others; default 5 s
	Compression string        // "deflate" (default) or "none"
}

// Batch limits.
const (
	defaultBatchRecords = 500
	defaultBatchBytes   = 256 << 10
	defaultBatchDelay   = 5 * time.Second
	maxBatchRecords     = 65535
	maxBatchBytes       = 16 << 20
	// BatchDecodeLimit is the largest batch body DecodeBatch takes by
	// default (edgegw decode): above any batch the uplink makes.
	BatchDecodeLimit = maxBatchBytes
)

func (b *BatchOptions) check() []error {
	var errs []error
	if b.MaxRecords == 0 {
		b.MaxRecords = defaultBatchRecords
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = defaultBatchBytes
	}
	if b.MaxDelay == 0 {
		b.MaxDelay = defaultBatchDelay
	}
	if b.Compression == "" {
		b.Compression = CompressDeflate
	}
	if b.MaxRecords < 1 || b.MaxRecords > maxBatchRecords {
		errs = append(errs, fmt.Errorf("batch.max_records: %d outside 1..%d", b.MaxRecords, maxBatchRecords))
	}
	if b.MaxBytes < 1024 || b.MaxBytes > maxBatchBytes {
		errs = append(errs, fmt.Errorf("batch.max_bytes: %d outside 1024..%d", b.MaxBytes, maxBatchBytes))
	}
	if b.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("batch.max_delay: %v negative", b.MaxDelay))
	}
	if b.Compression != CompressDeflate && b.Compression != CompressNone {
		errs = append(errs, fmt.Errorf("batch.compression: %q: want %q or %q", b.Compression, CompressDeflate, CompressNone))
	}
	return errs
}

// batch is one batch being filled or on the wire: records of one class,
// at one QoS, consecutive in the class but for records dropped (expired,
// undecodable, already acknowledged, thinned by the data budget).
type batch struct {
	class int
	qos   byte
	recs  []batchEntry
	size  int       // bound of the body's bytes
	since time.Time // when the first record joined

	// A batch an earlier process had on the wire: resumed with its packet
	// identifier, holding the records of seqs [first, last].
	id          uint16
	released    bool
	first, last uint64
}

type batchEntry struct {
	seq     uint64
	topic   string // remote
	payload []byte
	retain  bool
	expiry  time.Duration // 0: none
	asked   byte          // the QoS the record asked for; 0: the uplink's
}

func (b *batch) resumed() bool { return b.id != 0 }

// batcher is runBatched's state. Only the drain goroutine touches open
// and w.
type batcher struct {
	d    *drain
	o    BatchOptions
	open map[int]*batch // by class index
	w    *batchWriter

	// inflight bounds the bytes of the batches in flight (their JSON
	// before compression, which the records they hold add up to):
	// acquired before a batch is published, released when its flow
	// ends. The window alone is a count, up to 65,471 batches.
	inflight *semaphore.Weighted
	capacity int64

	// mu guards retry and kick: batches a Done hook hands back to be
	// split (refused as too large).
	mu    sync.Mutex
	retry []*batch
	kick  context.CancelFunc // wakes the wait for records
}

// batchBytesInFlight is the least room for batches in flight, in bytes of
// their JSON: 40 batches of 500 demo readings, ten times what keeps an
// lte link busy. Tests shrink it.
var batchBytesInFlight int64 = 4 << 20

// runBatched is run for [uplink.batch]: one goroutine takes records,
// fills batches and publishes them, waiting for room in the window.
func (d *drain) runBatched(ctx context.Context) error {
	u := d.u
	q := u.o.Queue
	bt := &batcher{d: d, o: *u.o.Batch, open: map[int]*batch{},
		w: newBatchWriter(u.o.TopicPrefix, u.o.Batch.Compression == CompressDeflate)}
	bt.capacity = max(batchBytesInFlight, 2*int64(bt.o.MaxBytes))
	bt.inflight = semaphore.NewWeighted(bt.capacity)
	fail := func(err error) error { return stopped(ctx, err) }
	for {
		if err := bt.sendRetries(ctx); err != nil {
			return fail(err)
		}
		if err := bt.flushDue(ctx, time.Now()); err != nil {
			return fail(err)
		}
		rec, ok, err := q.TryNext()
		if err != nil {
			return fail(fmt.Errorf("uplink: queue: %w", err))
		}
		if !ok {
			if rec, ok, err = bt.wait(ctx); err != nil {
				return fail(err)
			}
			if !ok {
				continue
			}
		}
		if err := bt.add(ctx, rec); err != nil {
			return fail(err)
		}
	}
}

// wait waits for the next record until the oldest open batch is due or a
// Done hook hands a batch back.
func (bt *batcher) wait(ctx context.Context) (buffer.Record, bool, error) {
	var due time.Time
	for _, b := range bt.open {
		at := b.since.Add(bt.o.MaxDelay)
		if b.resumed() {
			at = time.Now() // its records are all queued: do not wait
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !due.IsZero() {
		var c2 context.CancelFunc
		wctx, c2 = context.WithDeadline(wctx, due)
		defer c2()
	}
	bt.mu.Lock()
	if len(bt.retry) > 0 {
		bt.mu.Unlock()
		return buffer.Record{}, false, nil
	}
	bt.kick = cancel
	bt.mu.Unlock()
	rec, err := bt.d.u.o.Queue.Next(wctx)
	bt.mu.Lock()
	bt.kick = nil
	bt.mu.Unlock()
	switch {
	case err == nil:
		return rec, true, nil
	case ctx.Err() != nil:
		return rec, false, ctx.Err()
	case wctx.Err() != nil:
		for _, b := range bt.open {
			if b.resumed() {
				if err := bt.flush(ctx, b); err != nil {
					return rec, false, err
				}
			}
		}
		return rec, false, nil // due or kicked: the loop flushes
	default:
		return rec, false, fmt.Errorf("uplink: queue: %w", err)
	}
}

// flushDue publishes the batches that waited MaxDelay.
func (bt *batcher) flushDue(ctx context.Context, now time.Time) error {
	for _, b := range bt.open {
		if !b.resumed() && now.Sub(b.since) >= bt.o.MaxDelay {
			if err := bt.flush(ctx, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (bt *batcher) batchable(class string, r *gateway.Record) bool {
	return class != gateway.ClassAlarm && r.ResponseTopic == "" && r.CorrelationData == nil
}

// add takes one record: into its class's batch, or alone.
func (bt *batcher) add(ctx context.Context, rec buffer.Record) error {
	d := bt.d
	u := d.u
	q := u.o.Queue
	var r gateway.Record
	ci, err := d.decode(rec, &r)
	if ci < 0 {
		return err
	}
	b := bt.open[ci]
	if b != nil && b.resumed() && rec.Seq > b.last {
		if err := bt.flush(ctx, b); err != nil {
			return err
		}
		b = nil
	}
	if len(d.resume) > 0 && (b == nil || !b.resumed()) {
		if s, ok := d.resume[key{ci, rec.Seq}]; ok && s.span == 0 {
			// An earlier process sent this record alone: resume that.
			if b != nil {
				if err := bt.flush(ctx, b); err != nil {
					return err
				}
			}
			_, err := d.send(ctx, rec, true)
			return err
		}
		rb, err := bt.resume(ctx, ci, rec)
		if err != nil {
			return err
		}
		if rb != nil {
			if b != nil {
				if err := bt.flush(ctx, b); err != nil {
					return err
				}
			}
			bt.open[ci], b = rb, rb
		}
	}
	d.obMu.Lock()
	done := d.ob.completed(ci, rec.Seq)
	d.obMu.Unlock()
	left, alive := r.Remaining(time.Now())
	switch {
	case done:
		return q.Ack(rec.Class, rec.Seq)
	case !alive:
		u.expired.Add(1)
		return q.Ack(rec.Class, rec.Seq)
	}
	if b != nil && b.resumed() {
		b.recs = append(b.recs, batchEntry{seq: rec.Seq, topic: u.remote(r.Topic), payload: r.Payload, retain: r.Retain, expiry: left})
		if rec.Seq == b.last {
			return bt.flush(ctx, b)
		}
		return nil
	}
	if !bt.batchable(rec.Class, &r) {
		if b != nil {
			if err := bt.flush(ctx, b); err != nil {
				return err
			}
		}
		_, err := d.send(ctx, rec, true)
		return err
	}
	if u.thin(rec.Class, &r) {
		// Kept back by the data budget: gone from the queue, like an
		// expired record; the batch's span skips it.
		return q.Ack(rec.Class, rec.Seq)
	}
	// The QoS is decided now, from the configuration and what the cloud
	// takes (qosFor), as for a record sent alone.
	qos := u.qosFor(r.QoS, d.cl)
	e := batchEntry{seq: rec.Seq, topic: u.remote(r.Topic), payload: r.Payload, retain: r.Retain, expiry: left, asked: r.QoS}
	size := recordSize(e.topic, e.payload)
	if b != nil && (b.qos != qos || b.size+size > bt.o.MaxBytes) {
		if err := bt.flush(ctx, b); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		b = &batch{class: ci, qos: qos, since: time.Now(), size: 64 + jsonStringLen(u.o.TopicPrefix)}
		bt.open[ci] = b
	}
	b.recs = append(b.recs, e)
	b.size += size
	if len(b.recs) >= bt.o.MaxRecords || b.size >= bt.o.MaxBytes {
		return bt.flush(ctx, b)
	}
	return nil
}

// resume finds the batch of an earlier process whose range holds rec and
// returns it, for add to fill with the records of its range. Flows of the class wholly
// before rec are gone and ended.
func (bt *batcher) resume(ctx context.Context, ci int, rec buffer.Record) (*batch, error) {
	d := bt.d
	var found *batch
	for k, s := range d.resume {
		if k.class != ci {
			continue
		}
		last := s.seq + uint64(max(s.span, 1)) - 1
		switch {
		case s.span > 0 && s.seq <= rec.Seq && rec.Seq <= last:
			delete(d.resume, k)
			found = &batch{class: ci, qos: s.qos, since: time.Now(), id: s.id,
				released: s.state == slotReceived, first: s.seq, last: last}
		case last < rec.Seq:
			delete(d.resume, k)
			if err := d.end(ctx, s); err != nil {
				return nil, err
			}
		}
	}
	return found, nil
}

// flush publishes b, waiting for room in the window, and closes it.
func (bt *batcher) flush(ctx context.Context, b *batch) error {
	if bt.open[b.class] == b {
		delete(bt.open, b.class)
	}
	if len(b.recs) == 0 {
		if b.resumed() {
			// Every record of the earlier flow is gone.
			return bt.d.end(ctx, slot{id: b.id, class: b.class, qos: b.qos, seq: b.first})
		}
		return nil
	}
	return bt.publish(ctx, b)
}

func (bt *batcher) publish(ctx context.Context, b *batch) error {
	d := bt.d
	u := d.u
	bt.w.reset()
	var expiry time.Duration
	for _, e := range b.recs {
		bt.w.add(e.topic, e.payload, e.retain)
		if e.expiry == 0 || expiry < 0 {
			expiry = -1 // one record without expiry: none for the batch
		} else {
			expiry = max(expiry, e.expiry)
		}
	}
	payload, ctype, err := bt.w.finish()
	if err != nil {
		return err
	}
	// The client keeps the payload for resends until the flow ends.
	payload = append([]byte(nil), payload...)
	m := client.Message{Topic: u.o.TopicPrefix + "/" + BatchTopicSuffix, Payload: payload, QoS: b.qos,
		ContentType: ctype, Expiry: max(expiry, 0), Class: u.classes[b.class]}
	if ctype == BatchContentTypeJSON {
		m.PayloadFormat = 1 // UTF-8 [MQTT-3.3.2.3.2]
	}
	if b.first == 0 {
		b.first, b.last = b.recs[0].seq, b.recs[len(b.recs)-1].seq
	}
	f := client.Flow{ID: b.id, Released: b.released}
	id := b.id
	ci, qos, first, span := b.class, b.qos, b.first, uint32(b.last-b.first+1)
	f.Start = func(pid uint16) {
		id = pid
		d.obMu.Lock()
		d.ob.startBatch(pid, ci, qos, first, span)
		d.obMu.Unlock()
	}
	f.Received = d.received
	weight := min(int64(b.size), bt.capacity)
	f.Done = func(err error) {
		bt.inflight.Release(weight)
		bt.done(b, id, err)
	}
	if err := bt.inflight.Acquire(ctx, weight); err != nil {
		return err
	}
	err = d.cl.PublishFlow(ctx, m, f)
	if err != nil {
		bt.inflight.Release(weight) // the flow did not start
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return err
	case errors.Is(err, client.ErrTooLarge) && len(b.recs) > 1:
		if id != 0 {
			d.obMu.Lock()
			d.ob.free(id)
			d.obMu.Unlock()
		}
		x, y := b.split()
		if err := bt.publish(ctx, x); err != nil {
			return err
		}
		return bt.publish(ctx, y)
	case !unpublishable(err):
		// The client could not take it now: the records stay queued
		// for the next run, never acknowledged unsent.
		return fmt.Errorf("uplink: publish batch: %w", err)
	default:
		// Not publishable, never will be.
		if u.rejected.Add(int64(len(b.recs))) == int64(len(b.recs)) {
			u.log.Warn("cannot publish batch", "topic", m.Topic, "records", len(b.recs), "err", err)
		}
		for _, e := range b.recs {
			if err := u.o.Queue.Ack(u.classes[b.class], e.seq); err != nil {
				return err
			}
		}
		return nil
	}
}

// split halves a batch refused as too large. The halves are new flows.
func (b *batch) split() (*batch, *batch) {
	h := len(b.recs) / 2
	x := &batch{class: b.class, qos: b.qos, since: b.since, recs: b.recs[:h:h]}
	y := &batch{class: b.class, qos: b.qos, since: b.since, recs: b.recs[h:]}
	return x, y
}

// done is b's Done hook, on the client's reader.
func (bt *batcher) done(b *batch, id uint16, err error) {
	d := bt.d
	u := d.u
	var refused *client.RefusedError
	switch {
	case err == nil:
	case (errors.Is(err, client.ErrTooLarge) || errors.As(err, &refused) && refused.Code == packet.PacketTooLarge) &&
		len(b.recs) > 1:
		// Queued while disconnected, and above the new server's limit;
		// or refused by it: the drain splits it. Batches made since may
		// go out before the halves: complete, not in order.
		d.obMu.Lock()
		if *d.obOpen {
			d.ob.free(id)
		}
		d.obMu.Unlock()
		x, y := b.split()
		bt.mu.Lock()
		bt.retry = append(bt.retry, x, y)
		if bt.kick != nil {
			bt.kick()
		}
		bt.mu.Unlock()
		return
	case errors.As(err, &refused), errors.Is(err, client.ErrTooLarge):
		if u.rejected.Add(int64(len(b.recs))) == int64(len(b.recs)) {
			u.log.Warn("cloud refused a batch", "records", len(b.recs), "err", err)
		}
	default:
		return // closed: the records stay queued for the next run
	}
	d.obMu.Lock()
	if *d.obOpen {
		// The first record last: completed(first) then stands for all.
		for _, e := range b.recs[1:] {
			d.ob.complete(0, b.class, e.seq)
		}
		d.ob.complete(0, b.class, b.recs[0].seq)
		d.ob.freeBatch(id, b.class, b.first)
	}
	d.obMu.Unlock()
	u.acked.Add(int64(len(b.recs)))
	class := u.classes[b.class]
	bt.countDowngraded(b, err)
	for _, e := range b.recs {
		u.o.Queue.Ack(class, e.seq)
	}
}

// countDowngraded counts b's records in Status.Downgraded when b went
// out below the QoS they asked for, one by one as records sent alone are.
// A batch the client lowered itself, having learnt the cloud's maximum
// (or been answered PUBACK) after its QoS was chosen, the client counted
// once: its other records are counted here.
func (bt *batcher) countDowngraded(b *batch, err error) {
	u := bt.d.u
	if err != nil {
		return
	}
	if mq := bt.d.cl.MaxQoS(); mq < b.qos {
		u.downgraded.Add(int64(len(b.recs) - 1))
		return
	}
	for _, e := range b.recs {
		u.delivered(e.asked, b.qos, nil)
	}
}

// sendRetries publishes the batches Done hooks handed back.
func (bt *batcher) sendRetries(ctx context.Context) error {
	bt.mu.Lock()
	r := bt.retry
	bt.retry = nil
	bt.mu.Unlock()
	for _, b := range r {
		if err := bt.publish(ctx, b); err != nil {
			return err
		}
	}
	return nil
}
