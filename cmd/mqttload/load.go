package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// config describes one run.
type config struct {
	Addr     string
	Version  packet.Version
	QoS      byte
	Pubs     int           // publishers
	Subs     int           // subscribers
	Pairs    bool          // publisher i → subscriber i on its own topic; else every subscriber takes every publisher (wildcard)
	Count    int           // messages per publisher; 0: until Duration
	Duration time.Duration // publishing time; 0: until Count
	Rate     float64       // total messages/s over all publishers; 0: as fast as the flow control allows
	Size     int           // payload bytes, at least headerLen
	Window   int           // unacknowledged QoS 1/2 PUBLISHes per publisher
	Ahead    int           // messages a publisher may run ahead of its subscribers (0: unbounded)
	Batch    int           // most PUBLISHes per write
	Drain    time.Duration // how long to wait without progress for the last messages
	PID      int           // broker process for CPU and RSS figures; 0: none
	Idle     int           // idle mode: connections to open
	IdleWait time.Duration // idle mode: settling time before RSS is read
	Prefix   string        // topic prefix; a random one when empty
}

// result is what a run measured.
type result struct {
	Mode     string // "flow" or "idle"
	Sent     int64  // PUBLISHes written by publishers
	Acked    int64  // QoS 1/2 flows completed toward publishers
	Expected int64  // deliveries expected: Sent × subscribers of each publisher
	Received int64  // PUBLISHes received by subscribers, duplicates included
	Unique   int64  // distinct messages received
	Dups     int64  // Received − Unique
	Lost     int64  // Expected − Unique
	Elapsed  time.Duration
	Lat      hist
	CPU      time.Duration // broker CPU during the run; -1 unknown
	ToolCPU  time.Duration // this process's CPU during the run
	RSS      int64         // broker RSS at the end, bytes; -1 unknown
	RSS0     int64         // idle mode: broker RSS before connecting, bytes
	Conns    int           // idle mode: connections opened
	Err      error         // a failure after the run started (counts are still valid)
}

// headerLen is the part of the payload the tool uses: send time (ns since
// the run's start, monotonic), publisher index and sequence number.
const headerLen = 16

func (c *config) defaults() error {
	if c.Version == 0 {
		c.Version = packet.V311
	}
	if c.Version != packet.V311 && c.Version != packet.V5 {
		return fmt.Errorf("protocol version %d: want 4 (3.1.1) or 5", c.Version)
	}
	if c.QoS > 2 {
		return fmt.Errorf("qos %d", c.QoS)
	}
	if c.Size < headerLen {
		c.Size = headerLen
	}
	if c.Window <= 0 {
		c.Window = 32
	}
	c.Window = min(c.Window, 65535)
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Second
	}
	if c.IdleWait <= 0 {
		c.IdleWait = 2 * time.Second
	}
	if c.Prefix == "" {
		var b [4]byte
		rand.Read(b[:])
		c.Prefix = "mqttload/" + hex.EncodeToString(b[:])
	}
	if c.Idle > 0 {
		return nil
	}
	if c.Pubs <= 0 || c.Subs <= 0 {
		return errors.New("need at least one publisher and one subscriber")
	}
	if c.Pairs && c.Pubs != c.Subs {
		return fmt.Errorf("pairs: %d publishers but %d subscribers", c.Pubs, c.Subs)
	}
	if c.Count <= 0 && c.Duration <= 0 {
		return errors.New("need a message count or a duration")
	}
	return nil
}

// dial opens a connection and completes CONNECT/CONNACK. It returns the
// server's Receive Maximum (65535 when absent or 3.1.1).
func dial(ctx context.Context, c *config, id string) (net.Conn, *bufio.Reader, int, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, nil, 0, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := packet.Append(nil, &packet.Connect{Version: c.Version, CleanStart: true, ClientID: id}, c.Version)
	if err == nil {
		_, err = nc.Write(b)
	}
	r := bufio.NewReaderSize(nc, 64<<10)
	var p packet.Packet
	if err == nil {
		p, err = packet.Read(r, c.Version, 0)
	}
	if err != nil {
		nc.Close()
		return nil, nil, 0, fmt.Errorf("connect %s: %w", id, err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		nc.Close()
		return nil, nil, 0, fmt.Errorf("connect %s: got %v, want CONNACK", id, p.Type())
	}
	if ack.Code != packet.Success {
		nc.Close()
		return nil, nil, 0, fmt.Errorf("connect %s: refused: %v", id, ack.Code)
	}
	recvMax := 65535
	if ack.Props.ReceiveMaximum != 0 {
		recvMax = int(ack.Props.ReceiveMaximum)
	}
	nc.SetDeadline(time.Time{})
	return nc, r, recvMax, nil
}

// publisher owns one connection: the run's goroutine writes PUBLISHes,
// a reader goroutine handles acknowledgements.
type publisher struct {
	idx    int
	nc     net.Conn
	r      *bufio.Reader
	tokens chan struct{} // QoS 1/2 window; one per unacknowledged PUBLISH
	wake   chan struct{} // poked by subscribers when they make progress
	abort  chan struct{} // closed when a subscriber's connection ends
	recvrs int64         // subscribers that receive this publisher's messages

	// mu guards w: the reader writes PUBRELs.
	mu sync.Mutex
	w  *bufio.Writer

	msg    []byte // pre-encoded PUBLISH, patched per message
	idOff  int    // packet identifier offset in msg (QoS > 0)
	payOff int    // payload offset in msg
	rel    []byte // pre-encoded PUBREL

	sent      atomic.Int64
	acked     atomic.Int64
	delivered atomic.Int64 // distinct deliveries to subscribers
	err       error        // reader's error; read after the reader is done
	done      chan struct{}
}

// subscriber owns one connection and one goroutine that reads PUBLISHes
// and writes their acknowledgements.
type subscriber struct {
	idx  int
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	pubs []*publisher // indexed by publisher index; nil: not expected here
	seen [][]uint64   // per publisher, bitmap of sequence numbers

	ack, rec, comp []byte // pre-encoded PUBACK, PUBREC, PUBCOMP

	received atomic.Int64
	unique   atomic.Int64
	last     atomic.Int64 // ns since start of the last delivery
	lat      hist
	err      error
	done     chan struct{}
	abort    func() // closes the publishers' abort channel
}

// flow is one run's connections.
type flow struct {
	pubs  []*publisher
	subs  []*subscriber
	conns []net.Conn
}

// runFlow runs publishers and subscribers and checks the deliveries.
func runFlow(ctx context.Context, c config) (*result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &result{Mode: "flow", CPU: -1, RSS: -1, RSS0: -1}

	f := &flow{}
	defer func() {
		for _, nc := range f.conns {
			nc.Close()
		}
	}()
	if err := f.dial(ctx, &c); err != nil {
		return nil, err
	}

	start := time.Now()
	self0 := selfCPU()
	cpu0 := time.Duration(-1)
	if c.PID > 0 {
		var err error
		if cpu0, err = procCPU(c.PID); err != nil {
			return nil, fmt.Errorf("broker pid %d: %w", c.PID, err)
		}
	}
	for _, s := range f.subs {
		go s.run(&c, start)
	}
	for _, p := range f.pubs {
		go p.read(&c)
	}
	var wg sync.WaitGroup
	perr := make([]error, len(f.pubs))
	for i, p := range f.pubs {
		wg.Go(func() { perr[i] = p.run(ctx, &c, start) })
	}
	wg.Wait()
	if err := errors.Join(perr...); err != nil {
		res.Err = err
	}
	for _, p := range f.pubs {
		res.Sent += p.sent.Load()
		res.Expected += p.sent.Load() * p.recvrs
	}
	f.wait(ctx, &c, res)
	res.ToolCPU = selfCPU() - self0
	if c.PID > 0 {
		if cpu1, err := procCPU(c.PID); err == nil {
			res.CPU = cpu1 - cpu0
		}
		if rss, err := procRSS(c.PID); err == nil {
			res.RSS = rss
		}
	}
	f.close(&c, res)
	return res, nil
}

// dial connects and subscribes the subscribers, connects the publishers
// and tells each subscriber whom it hears from.
func (f *flow) dial(ctx context.Context, c *config) error {
	abort := make(chan struct{})
	abortOnce := sync.OnceFunc(func() { close(abort) })
	f.subs = make([]*subscriber, c.Subs)
	f.pubs = make([]*publisher, c.Pubs)
	for i := range f.subs {
		nc, r, _, err := dial(ctx, c, fmt.Sprintf("%s-s%d", c.Prefix, i))
		if err != nil {
			return err
		}
		f.conns = append(f.conns, nc)
		s := &subscriber{idx: i, nc: nc, r: r, w: bufio.NewWriterSize(nc, 16<<10), done: make(chan struct{}), abort: abortOnce}
		filter := c.Prefix + "/+"
		if c.Pairs {
			filter = c.Prefix + "/" + strconv.Itoa(i)
		}
		if err := subscribe(c, nc, r, filter); err != nil {
			return err
		}
		s.ack = mustAppend(&packet.Puback{PacketID: 1}, c.Version)
		s.rec = mustAppend(&packet.Pubrec{PacketID: 1}, c.Version)
		s.comp = mustAppend(&packet.Pubcomp{PacketID: 1}, c.Version)
		f.subs[i] = s
	}
	for i := range f.pubs {
		nc, r, recvMax, err := dial(ctx, c, fmt.Sprintf("%s-p%d", c.Prefix, i))
		if err != nil {
			return err
		}
		f.conns = append(f.conns, nc)
		p := &publisher{idx: i, nc: nc, r: r, w: bufio.NewWriterSize(nc, 64<<10),
			wake: make(chan struct{}, 1), abort: abort, done: make(chan struct{})}
		if c.QoS > 0 {
			win := min(c.Window, recvMax)
			p.tokens = make(chan struct{}, win)
			for range win {
				p.tokens <- struct{}{}
			}
		}
		if err := p.encode(c); err != nil {
			return err
		}
		f.pubs[i] = p
	}
	for _, s := range f.subs {
		s.pubs = make([]*publisher, len(f.pubs))
		s.seen = make([][]uint64, len(f.pubs))
		for i, p := range f.pubs {
			if !c.Pairs || i == s.idx {
				s.pubs[i] = p
				p.recvrs++
			}
		}
	}
	return nil
}

// wait waits for acknowledgements and deliveries until every one expected
// arrived, nothing moved for c.Drain, or a connection failed.
func (f *flow) wait(ctx context.Context, c *config, res *result) {
	progress := func() int64 {
		var n int64
		for _, p := range f.pubs {
			n += p.acked.Load()
		}
		for _, s := range f.subs {
			n += s.received.Load()
		}
		return n
	}
	complete := func() bool {
		var u int64
		for _, s := range f.subs {
			u += s.unique.Load()
		}
		if u < res.Expected {
			return false
		}
		if c.QoS > 0 {
			for _, p := range f.pubs {
				if p.acked.Load() < p.sent.Load() {
					return false
				}
			}
		}
		return true
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	last, lastMove := progress(), time.Now()
	for !complete() && res.Err == nil {
		select {
		case <-ctx.Done():
			res.Err = ctx.Err()
		case <-tick.C:
		}
		if n := progress(); n != last {
			last, lastMove = n, time.Now()
		} else if time.Since(lastMove) > c.Drain {
			break
		}
		if res.Err == nil {
			res.Err = firstDone(f.pubs, f.subs)
		}
	}
}

// close disconnects every connection, which ends the goroutines, and adds
// up what they counted.
func (f *flow) close(c *config, res *result) {
	for _, nc := range f.conns {
		nc.SetDeadline(time.Now().Add(time.Second))
		if b, err := packet.Append(nil, &packet.Disconnect{}, c.Version); err == nil {
			nc.Write(b)
		}
		nc.Close()
	}
	var lastNS int64
	for _, s := range f.subs {
		<-s.done
		res.Received += s.received.Load()
		res.Unique += s.unique.Load()
		res.Lat.merge(&s.lat)
		lastNS = max(lastNS, s.last.Load())
	}
	for _, p := range f.pubs {
		<-p.done
		res.Acked += p.acked.Load()
	}
	res.Dups = res.Received - res.Unique
	res.Lost = res.Expected - res.Unique
	res.Elapsed = time.Duration(lastNS)
}

// firstDone returns the error of a connection that ended early.
func firstDone(pubs []*publisher, subs []*subscriber) error {
	for _, p := range pubs {
		select {
		case <-p.done:
			return fmt.Errorf("publisher %d: %w", p.idx, p.err)
		default:
		}
	}
	for _, s := range subs {
		select {
		case <-s.done:
			return fmt.Errorf("subscriber %d: %w", s.idx, s.err)
		default:
		}
	}
	return nil
}

func mustAppend(p packet.Packet, v packet.Version) []byte {
	b, err := packet.Append(nil, p, v)
	if err != nil {
		panic(err) // fixed packets built above: a programmer error
	}
	return b
}

func subscribe(c *config, nc net.Conn, r *bufio.Reader, filter string) error {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	b, err := packet.Append(nil, &packet.Subscribe{PacketID: 1,
		Subscriptions: []packet.Subscription{{Filter: filter, QoS: c.QoS}}}, c.Version)
	if err != nil {
		return err
	}
	if _, err := nc.Write(b); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	p, err := packet.Read(r, c.Version, 0)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	ack, ok := p.(*packet.Suback)
	if !ok || len(ack.Codes) != 1 {
		return fmt.Errorf("subscribe %s: got %v, want SUBACK", filter, p.Type())
	}
	if ack.Codes[0].IsError() || byte(ack.Codes[0]) != c.QoS {
		return fmt.Errorf("subscribe %s: granted %v, want QoS %d", filter, ack.Codes[0], c.QoS)
	}
	return nil
}

// encode pre-encodes the publisher's PUBLISH and PUBREL.
func (p *publisher) encode(c *config) error {
	pub := &packet.Publish{Topic: c.Prefix + "/" + strconv.Itoa(p.idx), Payload: make([]byte, c.Size), QoS: c.QoS}
	if c.QoS > 0 {
		pub.PacketID = 1
	}
	var err error
	if p.msg, err = packet.Append(nil, pub, c.Version); err != nil {
		return err
	}
	p.payOff = len(p.msg) - c.Size
	p.idOff = p.payOff - 2
	if c.Version == packet.V5 {
		p.idOff-- // empty properties: one length byte
	}
	p.rel = mustAppend(&packet.Pubrel{PacketID: 1}, c.Version)
	return nil
}

// run writes the publisher's messages, in batches, within the window,
// the rate and the lead over its subscribers.
func (p *publisher) run(ctx context.Context, c *config, start time.Time) error {
	var rate float64
	if c.Rate > 0 {
		rate = c.Rate / float64(c.Pubs)
	}
	held := 0 // window tokens taken but not yet used
	var seq uint32
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Since(start)
		if c.Duration > 0 && now >= c.Duration || c.Count > 0 && int(seq) >= c.Count {
			return nil
		}
		n := c.Batch
		if c.Count > 0 {
			n = min(n, c.Count-int(seq))
		}
		if rate > 0 {
			due := int64(now.Seconds()*rate) + 1 - int64(seq)
			if due <= 0 {
				next := time.Duration(float64(seq) / rate * float64(time.Second))
				sleepCtx(ctx, next-now)
				continue
			}
			n = min(n, int(due))
		}
		if c.Ahead > 0 {
			lead := int64(seq)*p.recvrs - p.delivered.Load()
			room := (int64(c.Ahead)*p.recvrs - lead) / p.recvrs
			if room <= 0 {
				// Subscribers are behind. Wait for one to move; a
				// lost QoS 0 message never arrives, so go on after
				// a while.
				t := time.NewTimer(100 * time.Millisecond)
				select {
				case <-p.wake:
					t.Stop()
					continue
				case <-t.C:
					room = 1
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-p.abort:
					t.Stop()
					return errors.New("a subscriber failed")
				}
			}
			n = min(n, int(room))
		}
		if c.QoS > 0 && held == 0 {
			select {
			case <-p.tokens:
			case <-ctx.Done():
				return ctx.Err()
			case <-p.done:
				return fmt.Errorf("publisher %d: %w", p.idx, p.err)
			case <-p.abort:
				return errors.New("a subscriber failed")
			}
			held = 1
		}
		p.mu.Lock()
		var err error
		for i := 0; i < n; i++ {
			if c.QoS > 0 && held == 0 {
				select {
				case <-p.tokens:
					held = 1
				default:
				}
				if held == 0 {
					break
				}
			}
			m := p.msg
			if c.QoS > 0 {
				binary.BigEndian.PutUint16(m[p.idOff:], uint16(seq%65535)+1)
				held--
			}
			binary.BigEndian.PutUint64(m[p.payOff:], uint64(time.Since(start)))
			binary.BigEndian.PutUint32(m[p.payOff+8:], uint32(p.idx))
			binary.BigEndian.PutUint32(m[p.payOff+12:], seq)
			if _, err = p.w.Write(m); err != nil {
				break
			}
			seq++
		}
		if err == nil {
			err = p.w.Flush()
		}
		p.mu.Unlock()
		p.sent.Store(int64(seq))
		if err != nil {
			return fmt.Errorf("publisher %d: write: %w", p.idx, err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// read handles the publisher's acknowledgements until the connection ends.
func (p *publisher) read(c *config) {
	defer close(p.done)
	buf := make([]byte, 0, 256)
	for {
		h, err := packet.ReadFixedHeader(p.r, 1<<20)
		if err != nil {
			p.err = err
			return
		}
		if cap(buf) < h.Remaining {
			buf = make([]byte, h.Remaining)
		}
		body := buf[:h.Remaining]
		if _, err := io.ReadFull(p.r, body); err != nil {
			p.err = err
			return
		}
		var code byte
		if c.Version == packet.V5 && len(body) > 2 {
			code = body[2]
		}
		if h.Type == packet.TypePuback || h.Type == packet.TypePubrec || h.Type == packet.TypePubcomp {
			if len(body) < 2 {
				p.err = fmt.Errorf("%v: short body", h.Type)
				return
			}
			if code >= 0x80 {
				p.err = fmt.Errorf("%v: reason %v", h.Type, packet.ReasonCode(code))
				return
			}
		}
		switch {
		case h.Type == packet.TypePuback && c.QoS == 1, h.Type == packet.TypePubcomp && c.QoS == 2:
			p.acked.Add(1)
			select {
			case p.tokens <- struct{}{}:
			default:
				p.err = fmt.Errorf("more %vs than publications", h.Type)
				return
			}
		case h.Type == packet.TypePubrec && c.QoS == 2:
			p.mu.Lock()
			copy(p.rel[2:4], body[:2])
			_, err = p.w.Write(p.rel)
			if err == nil && p.r.Buffered() == 0 {
				err = p.w.Flush()
			}
			p.mu.Unlock()
			if err != nil {
				p.err = err
				return
			}
		case h.Type == packet.TypePingresp:
		default:
			p.err = fmt.Errorf("unexpected %v", h.Type)
			return
		}
		if p.r.Buffered() == 0 {
			p.mu.Lock()
			err = p.w.Flush()
			p.mu.Unlock()
			if err != nil {
				p.err = err
				return
			}
		}
	}
}

// run reads PUBLISHes and acknowledges them until the connection ends.
// PUBLISH bodies are parsed in place in the read buffer: no allocation
// per message.
func (s *subscriber) run(c *config, start time.Time) {
	defer close(s.done)
	defer s.abort()
	var big []byte
	for {
		if s.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				s.err = err
				return
			}
			for _, p := range s.pubs {
				if p != nil {
					select {
					case p.wake <- struct{}{}:
					default:
					}
				}
			}
		}
		h, err := packet.ReadFixedHeader(s.r, 1<<20)
		if err != nil {
			s.err = err
			return
		}
		var body []byte
		inBuf := h.Remaining <= s.r.Size()
		if inBuf {
			body, err = s.r.Peek(h.Remaining)
		} else {
			if cap(big) < h.Remaining {
				big = make([]byte, h.Remaining)
			}
			body = big[:h.Remaining]
			_, err = io.ReadFull(s.r, body)
		}
		if err != nil {
			s.err = err
			return
		}
		switch h.Type {
		case packet.TypePublish:
			err = s.publish(c, start, h, body)
		case packet.TypePubrel:
			if len(body) < 2 {
				err = errors.New("PUBREL: short body")
				break
			}
			copy(s.comp[2:4], body[:2])
			_, err = s.w.Write(s.comp)
		case packet.TypePingresp:
		default:
			err = fmt.Errorf("unexpected %v", h.Type)
		}
		if inBuf {
			s.r.Discard(h.Remaining)
		}
		if err != nil {
			s.err = err
			return
		}
	}
}

func (s *subscriber) publish(c *config, start time.Time, h packet.FixedHeader, b []byte) error {
	now := time.Since(start)
	qos := h.Flags >> 1 & 3
	if len(b) < 2 {
		return errors.New("PUBLISH: short body")
	}
	off := 2 + int(binary.BigEndian.Uint16(b))
	var id []byte
	if qos > 0 {
		if len(b) < off+2 {
			return errors.New("PUBLISH: short body")
		}
		id = b[off : off+2]
		off += 2
	}
	if c.Version == packet.V5 {
		n, k := uvarint(b[min(off, len(b)):])
		if k <= 0 {
			return errors.New("PUBLISH: bad property length")
		}
		off += k + int(n)
	}
	if len(b) < off+headerLen {
		return errors.New("PUBLISH: short payload")
	}
	pl := b[off:]
	sentAt := time.Duration(binary.BigEndian.Uint64(pl))
	pi := int(binary.BigEndian.Uint32(pl[8:]))
	seq := binary.BigEndian.Uint32(pl[12:])
	if pi >= len(s.pubs) || s.pubs[pi] == nil {
		return fmt.Errorf("PUBLISH from unexpected publisher %d", pi)
	}
	s.received.Add(1)
	bm := s.seen[pi]
	w := int(seq / 64)
	if w >= len(bm) {
		bm = append(bm, make([]uint64, w+1-len(bm)+len(bm))...)
		s.seen[pi] = bm
	}
	if bit := uint64(1) << (seq % 64); bm[w]&bit == 0 {
		bm[w] |= bit
		s.unique.Add(1)
		s.pubs[pi].delivered.Add(1)
		s.lat.record(now - sentAt)
	}
	s.last.Store(int64(now))
	switch qos {
	case 1:
		copy(s.ack[2:4], id)
		_, err := s.w.Write(s.ack)
		return err
	case 2:
		copy(s.rec[2:4], id)
		_, err := s.w.Write(s.rec)
		return err
	}
	return nil
}

// uvarint decodes an MQTT variable byte integer [MQTT-1.5.5]; k <= 0 on
// error.
func uvarint(b []byte) (n uint32, k int) {
	for i := 0; i < 4 && i < len(b); i++ {
		n |= uint32(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return n, i + 1
		}
	}
	return 0, -1
}

// runIdle opens c.Idle connections, waits c.IdleWait and measures the
// broker's RSS before and after.
func runIdle(ctx context.Context, c config) (*result, error) {
	res := &result{Mode: "idle", CPU: -1, RSS: -1, RSS0: -1}
	if c.PID > 0 {
		var err error
		if res.RSS0, err = procRSS(c.PID); err != nil {
			return nil, fmt.Errorf("broker pid %d: %w", c.PID, err)
		}
	}
	conns := make([]net.Conn, c.Idle)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make([]error, c.Idle)
	)
	for range min(c.Idle, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= c.Idle || ctx.Err() != nil {
					return
				}
				nc, _, _, err := dial(ctx, &c, fmt.Sprintf("%s-i%d", c.Prefix, i))
				conns[i], errs[i] = nc, err
			}
		})
	}
	wg.Wait()
	for _, nc := range conns {
		if nc != nil {
			res.Conns++
		}
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = err
	}
	sleepCtx(ctx, c.IdleWait)
	if c.PID > 0 {
		if rss, err := procRSS(c.PID); err == nil {
			res.RSS = rss
		}
	}
	// The connections must still be open: a broker that dropped them
	// saved their memory unfairly.
	open := 0
	one := make([]byte, 1)
	for _, nc := range conns {
		if nc == nil {
			continue
		}
		nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := nc.Read(one); errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open != res.Conns && res.Err == nil {
		res.Err = fmt.Errorf("%d of %d idle connections closed by the broker", res.Conns-open, res.Conns)
	}
	return res, nil
}
