package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// conn is one network connection after a successful CONNACK. Its reader,
// writer and keepalive goroutines end when it fails or disconnects; wait
// waits for them.
type conn struct {
	c   *Client
	nc  net.Conn
	v   packet.Version
	br  *bufio.Reader
	wg  sync.WaitGroup
	now func() time.Time

	addr    string // the address dialled
	present bool   // the server resumed the session
	maxQoS  byte   // server's Maximum QoS; 2 when not announced
	retain  bool   // server's Retain Available
	// Under Client.mu: the first QoS 2 PUBLISH sent on this connection,
	// when, and whether any PUBREC or PUBCOMP came (see lost).
	q2id        uint16
	q2at        time.Time
	q2acked     bool
	receiveMax  uint16
	aliasMax    uint16
	maxPacket   int // server's Maximum Packet Size; 0 none
	keepAlive   time.Duration
	pingTimeout time.Duration

	// wmu guards wbuf, aliases, closing, failure and rbusy.
	wmu     sync.Mutex
	wbuf    []byte
	aliases map[string]uint16
	closing bool // DISCONNECT queued: send nothing more
	failure error
	// rbusy: the reader is working through what it read and writes wbuf
	// out itself before it reads again, so senders need not wake the
	// writer. Acknowledgements, and the publishes a Done hook sends in
	// their place, then leave with one write and no goroutine switch.
	rbusy bool

	// sock is held while writing to nc, by the writer or the reader.
	sock        sync.Mutex
	raw         *tryWriter  // on nc's socket; nil: the reader does not write
	rd          *sockReader // the reader's reads of nc's socket; nil: nc.Read
	rout        []byte      // the reader's write buffer; under sock
	deadlineSet time.Time   // under sock

	wsig     chan struct{} // cap 1: wbuf has data
	dead     chan struct{} // closed on failure or disconnect
	deadOnce sync.Once

	lastSend atomic.Int64 // unix nanos
	lastRecv atomic.Int64
}

var errDisconnected = errors.New("client: disconnected")

// connect dials and exchanges CONNECT/CONNACK. With the version
// automatic it negotiates (see negotiate.go): 5.0 first, 3.1.1 after a
// 3.1.1-shaped refusal, or when 5.0 was closed before CONNACK at two
// attempts in a row and 3.1.1 is then accepted.
func (c *Client) connect(ctx context.Context) (*conn, bool, error) {
	addr := c.dialAddr()
	if c.o.Version != 0 {
		return c.handshake(ctx, addr, c.o.Version)
	}
	v := c.tryVersion()
	cn, present, err := c.handshake(ctx, addr, v)
	if v != packet.V5 || ctx.Err() != nil {
		return cn, present, err
	}
	switch {
	case refusedV5(err):
		c.log.Info("server refused MQTT 5.0, falling back to 3.1.1", "addr", addr, "err", err)
		reason := v311Reason(err) // of the 5.0 refusal, before err is the 3.1.1 attempt's
		cn, present, err = c.handshake(ctx, addr, packet.V311)
		if err == nil {
			c.pinV311(reason)
		}
	case closedBeforeConnack(err):
		// Not a refusal by itself: a NAT or a load balancer may close
		// one connection, and 5.0 is tried again at the next attempt.
		// Only a second close in a row, followed by a 3.1.1 CONNACK,
		// tells a server that does not take 5.0 (RabbitMQ 3.10 closes
		// the connection on a 5.0 CONNECT).
		c.mu.Lock()
		c.neg.closes5++
		again := c.neg.closes5 >= 2
		c.mu.Unlock()
		if !again {
			return nil, false, err
		}
		cn, present, err = c.handshake(ctx, addr, packet.V311)
		if err == nil {
			c.log.Info("server closed MQTT 5.0 connections twice in a row and accepted 3.1.1", "addr", addr)
			c.pinV311("server closed 5.0 CONNECT twice, accepted 3.1.1")
		}
		return cn, present, err
	}
	c.mu.Lock()
	c.neg.closes5 = 0
	c.mu.Unlock()
	return cn, present, err
}

// refusedV5 reports a refusal of 5.0 itself: CONNACK 0x84, or a CONNACK in
// 3.1.1's shape, whatever its return code (NATS answers a 5.0 CONNECT with
// 20 02 00 01).
func refusedV5(err error) bool {
	if errors.Is(err, errV311Connack) {
		return true
	}
	if r, ok := errors.AsType[*RefusedError](err); ok {
		return r.Packet == packet.TypeConnack && r.Code == packet.UnsupportedProtocolVersion
	}
	return false
}

// v311Reason says why 3.1.1 is in use after the refusal err.
func v311Reason(err error) string {
	if r, ok := errors.AsType[*RefusedError](err); ok && !errors.Is(err, errV311Connack) {
		return fmt.Sprintf("server refused 5.0: CONNACK 0x%02x", byte(r.Code))
	}
	return "server answered 5.0 with a 3.1.1 CONNACK"
}

// closedBeforeConnack reports a connection closed cleanly after CONNECT
// and before any CONNACK; a reset, a TLS alert or a timeout is something
// else (a refused client certificate shows as a reset).
func closedBeforeConnack(err error) bool {
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return false
	}
	return errors.Is(err, io.EOF) && !errors.Is(err, errConnReset)
}

// errV311Connack: a 5.0 CONNECT was answered by a CONNACK in 3.1.1's
// shape (remaining length 2, no properties).
var errV311Connack = errors.New("client: 3.1.1 CONNACK in answer to 5.0")

var errConnReset = errors.New("client: connection reset before CONNACK")

// tlsAlert returns the TLS alert the server sent before closing, if any:
// with TLS 1.3 a refused client certificate shows only on the first read
// after the handshake, after the write of CONNECT may already have failed.
func tlsAlert(nc net.Conn) error {
	if _, ok := nc.(*tls.Conn); !ok {
		return nil
	}
	nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	_, err := nc.Read(b[:])
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return err
	}
	var re *net.OpError
	if errors.As(err, &re) && strings.Contains(err.Error(), "tls:") {
		return err
	}
	return nil
}

func (c *Client) handshake(ctx context.Context, addr string, v packet.Version) (*conn, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.ConnectTimeout)
	defer cancel()
	cred := Credentials{Password: c.o.Password, TLS: c.o.TLS}
	if c.o.GetCredentials != nil {
		var err error
		if cred, err = c.o.GetCredentials(); err != nil {
			return nil, false, fmt.Errorf("client: credentials: %w", err)
		}
		if cred.TLS == nil && c.o.TLS != nil {
			return nil, false, errors.New("client: credentials: no TLS configuration")
		}
	}
	nc, err := c.o.Dialer(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	if cred.TLS != nil {
		cfg := cred.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, false, fmt.Errorf("client: tls %s: %w", addr, err)
		}
		nc = tc
	}
	// The deadline covers CONNECT and CONNACK; ctx's cancellation closes
	// the socket.
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	ka := uint16(min(c.o.KeepAlive/time.Second, 65535))
	cp := &packet.Connect{Version: v, CleanStart: c.o.CleanStart, KeepAlive: ka, ClientID: c.o.ClientID}
	if c.o.Username != "" {
		cp.UsernameFlag, cp.Username = true, c.o.Username
	}
	if cred.Password != nil {
		cp.PasswordFlag, cp.Password = true, cred.Password
	}
	if w := c.o.Will; w != nil {
		cp.Will = &packet.Will{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
		c.mu.Lock()
		cp.Will.QoS = min(cp.Will.QoS, c.neg.willQoS)
		cp.Will.Retain = cp.Will.Retain && c.neg.willRetain
		c.mu.Unlock()
		if w.Delay > 0 {
			cp.Will.Props.WillDelay = uint32(w.Delay / time.Second)
		}
	}
	if v == packet.V5 {
		cp.Props.SessionExpiry = uint32(min(c.o.SessionExpiry/time.Second, 1<<32-1))
		cp.Props.MaximumPacketSize = uint32(c.o.MaxPacketSize)
		cp.Props.ReceiveMaximum = c.o.ReceiveMaximum
		cp.Props.User = c.o.User
	}
	b, err := packet.Append(nil, cp, v)
	if err != nil {
		nc.Close()
		return nil, false, fmt.Errorf("client: connect: %w", err)
	}
	if _, err := nc.Write(b); err != nil {
		if alert := tlsAlert(nc); alert != nil {
			err = alert
		}
		nc.Close()
		return nil, false, fmt.Errorf("client: connect %s: %w", addr, resetErr(err))
	}
	rc := &readConn{nc: nc}
	br := bufio.NewReaderSize(rc, 32<<10)
	rv := v
	if v == packet.V5 {
		// A 5.0 CONNACK always has a property length: remaining length
		// 2 is a 3.1.1 server's answer. Decode it as such, or its
		// return code would be taken for a 5.0 reason code.
		if b, err := br.Peek(2); err == nil && b[0] == 0x20 && b[1] == 2 {
			rv = packet.V311
		}
	}
	pk, err := packet.Read(br, rv, c.o.MaxPacketSize)
	if err != nil {
		nc.Close()
		return nil, false, fmt.Errorf("client: connect %s: read CONNACK: %w", addr, resetErr(err))
	}
	ack, ok := pk.(*packet.Connack)
	if !ok {
		nc.Close()
		return nil, false, fmt.Errorf("client: connect %s: got %v, want CONNACK", addr, pk.Type())
	}
	if rv != v {
		nc.Close()
		return nil, false, fmt.Errorf("%w: %w", errV311Connack,
			&RefusedError{Packet: packet.TypeConnack, Code: ack.Code, Reason: "3.1.1 return code"})
	}
	if ack.Code != packet.Success {
		nc.Close()
		c.refusedConnect(ack.Code)
		return nil, false, &RefusedError{Packet: packet.TypeConnack, Code: ack.Code, Reason: ack.Props.ReasonString}
	}
	nc.SetDeadline(time.Time{})
	cn := &conn{
		c: c, nc: nc, v: v, br: br, now: c.o.now, addr: addr,
		receiveMax:  65535,
		maxQoS:      2,
		retain:      true,
		keepAlive:   c.o.KeepAlive,
		pingTimeout: c.o.PingTimeout,
		wsig:        make(chan struct{}, 1),
		dead:        make(chan struct{}),
		raw:         rawSocket(nc),
		rd:          newSockReader(nc),
	}
	rc.cn = cn
	if v == packet.V5 {
		if ack.Props.ReceiveMaximum > 0 {
			cn.receiveMax = ack.Props.ReceiveMaximum
		}
		if c.o.TopicAliases {
			cn.aliasMax = ack.Props.TopicAliasMaximum
			cn.aliases = make(map[string]uint16)
		}
		cn.maxPacket = int(ack.Props.MaximumPacketSize)
		if ack.Props.HasMaximumQoS { // [MQTT-3.2.2-11]
			cn.maxQoS = ack.Props.MaximumQoS
		}
		if ack.Props.HasRetainAvailable { // [MQTT-3.2.2-14]
			cn.retain = ack.Props.RetainAvailable != 0
		}
		if ack.Props.HasServerKeepAlive {
			cn.keepAlive = time.Duration(ack.Props.ServerKeepAlive) * time.Second
		}
	}
	cn.present = ack.SessionPresent
	if !ack.SessionPresent {
		// No session: forget the QoS 2 identifiers awaiting PUBREL before
		// the reader starts, or a PUBLISH sent right behind the CONNACK
		// would be recorded and then forgotten.
		c.mu.Lock()
		c.rx.clear()
		c.mu.Unlock()
	}
	now := cn.now().UnixNano()
	cn.lastSend.Store(now)
	cn.lastRecv.Store(now)
	cn.wg.Add(2)
	go cn.reader()
	go cn.writer()
	if cn.keepAlive > 0 {
		cn.wg.Add(1)
		go cn.keeper()
	}
	return cn, ack.SessionPresent, nil
}

// resetErr maps a reset of the connection to errConnReset (a server that
// does not speak 5.0 may reset instead of closing).
func resetErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && !op.Timeout() {
		return fmt.Errorf("%w: %w", errConnReset, err)
	}
	return err
}

// fail records err as the connection's failure and closes it.
func (cn *conn) fail(err error) {
	cn.wmu.Lock()
	if cn.failure == nil {
		cn.failure = err
	}
	cn.wmu.Unlock()
	cn.deadOnce.Do(func() {
		close(cn.dead)
		cn.nc.Close()
	})
}

func (cn *conn) err() error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	return cn.failure
}

func (cn *conn) wait() { cn.wg.Wait() }

// disconnect queues a DISCONNECT (normal: the will is not published), lets
// the writer flush it and closes the connection.
func (cn *conn) disconnect() {
	cn.wmu.Lock()
	if cn.closing || cn.failure != nil {
		cn.wmu.Unlock()
		cn.fail(errDisconnected)
		return
	}
	cn.wbuf, _ = packet.Append(cn.wbuf, &packet.Disconnect{}, cn.v)
	cn.closing = true
	cn.wmu.Unlock()
	cn.wake()
	select {
	case <-cn.dead:
	case <-time.After(2 * time.Second):
		cn.fail(errDisconnected)
	}
}

// send encodes p into the write buffer.
func (cn *conn) send(p packet.Packet) error {
	cn.wmu.Lock()
	if cn.closing || cn.failure != nil {
		cn.wmu.Unlock()
		return nil // the pending state resends it on the next connection
	}
	var err error
	cn.wbuf, err = packet.Append(cn.wbuf, p, cn.v)
	wake := !cn.rbusy
	cn.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("client: encode %v: %w", p.Type(), err)
	}
	if wake {
		cn.wake()
	}
	return nil
}

// wake tells the writer that wbuf has data.
func (cn *conn) wake() {
	select {
	case cn.wsig <- struct{}{}:
	default:
	}
}

// sendPublish sends p, replacing its topic by an alias where the server
// allows them. p itself keeps the topic for a resend on a later
// connection: it is changed only while it is encoded, under the client's
// lock, which every caller holds.
func (cn *conn) sendPublish(p *packet.Publish, class string) error {
	if cn.maxPacket > 0 {
		if n, err := packet.Size(p, cn.v); err == nil && n > cn.maxPacket {
			return fmt.Errorf("%w: publish %q: %d bytes, maximum %d", ErrTooLarge, p.Topic, n, cn.maxPacket)
		}
	}
	cn.wmu.Lock()
	if cn.closing || cn.failure != nil {
		cn.wmu.Unlock()
		return nil
	}
	name, alias := p.Topic, p.Props.TopicAlias
	if cn.aliasMax > 0 {
		if a, ok := cn.aliases[name]; ok {
			p.Topic, p.Props.TopicAlias = "", a
		} else if len(cn.aliases) < int(cn.aliasMax) {
			a := uint16(len(cn.aliases) + 1)
			cn.aliases[name] = a
			p.Props.TopicAlias = a
		}
	}
	var err error
	n := len(cn.wbuf)
	cn.wbuf, err = packet.Append(cn.wbuf, p, cn.v)
	n = len(cn.wbuf) - n
	p.Topic, p.Props.TopicAlias = name, alias
	wake := !cn.rbusy
	cn.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("client: publish %q: %w", p.Topic, err)
	}
	if cn.c != nil {
		cn.c.wire.publish(class, n)
	}
	if wake {
		cn.wake()
	}
	return nil
}

// writer writes the buffer out, swapping it so that senders fill one while
// the other is on the wire: concurrent publishes share a write.
func (cn *conn) writer() {
	defer cn.wg.Done()
	var out []byte
	for {
		select {
		case <-cn.dead:
			return
		case <-cn.wsig:
		}
		// Let the senders that were woken with this one add their
		// packets first: one write for a burst of publishes or acks.
		runtime.Gosched()
		cn.sock.Lock()
		cn.wmu.Lock()
		out, cn.wbuf = cn.wbuf, out[:0]
		closing := cn.closing
		cn.wmu.Unlock()
		err := cn.write(out)
		cn.sock.Unlock()
		if err != nil {
			cn.fail(err)
			return
		}
		if closing {
			cn.fail(errDisconnected)
			return
		}
		if cap(out) > 1<<20 {
			out = nil // let a burst's buffer go
		}
	}
}

// write writes b out, with sock held.
func (cn *conn) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	// The deadline catches a stalled link: no writeChunk bytes taken in
	// a keepalive. It is renewed before each chunk, so that a backlog
	// larger than the link carries in a keepalive (65,000 readings over
	// 3G) is not taken for a stall; renewing it at most once a second
	// spares a timer update per write.
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		cn.armDeadline()
		if _, err := cn.nc.Write(b[:n]); err != nil {
			return fmt.Errorf("client: write: %w", err)
		}
		cn.lastSend.Store(cn.now().UnixNano())
		b = b[n:]
	}
	return nil
}

// writeChunk is the most the writer hands the socket at once: the progress
// a write deadline waits for.
const writeChunk = 64 << 10

// minWriteDeadline is the shortest write deadline; tests shorten it.
var minWriteDeadline = 10 * time.Second

// armDeadline sets the write deadline a keepalive (at least 10 s) ahead,
// at most once a second (or a quarter of the deadline), with sock held.
func (cn *conn) armDeadline() {
	d := max(cn.keepAlive, minWriteDeadline)
	if now := cn.now(); now.Sub(cn.deadlineSet) > min(time.Second, d/4) {
		cn.deadlineSet = now
		cn.nc.SetWriteDeadline(now.Add(d))
	}
}

// flush is called by the reader before it reads from the socket: it
// writes out what was sent while it was busy, as far as the socket takes
// it without blocking, and leaves the rest to the writer. The reader
// never waits on a write, so that a peer slow to read cannot stop it
// reading. Where nc is not a plain socket (TLS), the writer does it all.
func (cn *conn) flush() {
	cn.wmu.Lock()
	cn.rbusy = false
	if len(cn.wbuf) == 0 || cn.closing || cn.failure != nil {
		cn.wmu.Unlock()
		return
	}
	if cn.raw == nil || !cn.sock.TryLock() {
		cn.wmu.Unlock()
		cn.wake()
		return
	}
	out := cn.wbuf
	cn.wbuf = cn.rout[:0]
	cn.wmu.Unlock()
	// The raw write never waits, but the socket refuses it once the
	// deadline has passed: a drain that only the reader fed for a
	// keepalive (the writer idle) would fail with a timeout on a link
	// that moves.
	cn.armDeadline()
	n, err := cn.raw.tryWrite(out)
	if err != nil {
		cn.sock.Unlock()
		cn.fail(fmt.Errorf("client: write: %w", err))
		return
	}
	if n > 0 {
		cn.lastSend.Store(cn.now().UnixNano())
		if cn.c != nil {
			cn.c.wire.out.Add(int64(n)) // past the countConn: counted here
		}
	}
	if n < len(out) {
		// The socket is full: the rest goes first when the writer
		// comes.
		cn.wmu.Lock()
		cn.wbuf = append(append(make([]byte, 0, len(out)-n+len(cn.wbuf)), out[n:]...), cn.wbuf...)
		cn.wmu.Unlock()
		cn.wake()
	}
	if cap(out) > 1<<20 {
		out = nil
	}
	cn.rout = out[:0]
	cn.sock.Unlock()
}

// readConn is the reader's side of nc: before each read it flushes what
// the reader sent, and after it marks the reader busy. cn is nil during
// the handshake.
type readConn struct {
	nc net.Conn
	cn *conn
}

func (r *readConn) Read(b []byte) (int, error) {
	cn := r.cn
	if cn == nil {
		return r.nc.Read(b)
	}
	cn.flush()
	cn.coalesce()
	var n int
	var err error
	if cn.rd != nil {
		n, err = cn.rd.read(b)
		cn.c.wire.in.Add(int64(n)) // past the countConn: counted here
	} else {
		n, err = r.nc.Read(b)
	}
	if n > 0 {
		cn.wmu.Lock()
		cn.rbusy = true
		cn.wmu.Unlock()
	}
	return n, err
}

func (cn *conn) reader() {
	defer cn.wg.Done()
	for {
		pk, err := packet.Read(cn.br, cn.v, cn.c.o.MaxPacketSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			cn.fail(fmt.Errorf("client: read: %w", err))
			return
		}
		cn.lastRecv.Store(cn.now().UnixNano())
		if err := cn.c.handle(cn, pk); err != nil {
			cn.fail(err)
			return
		}
	}
}

// keeper sends PINGREQ after KeepAlive without sending and declares the
// link dead when nothing was received for PingTimeout after a PINGREQ, or
// for KeepAlive+PingTimeout while sending: a link that vanished without a
// reset is found within KeepAlive+PingTimeout+tick of the last byte
// received (38.5 s with the uplink's defaults). It looks once a second
// (more often for a keepalive under 4 s), so that the bound does not grow
// by a quarter of the keepalive.
func (cn *conn) keeper() {
	defer cn.wg.Done()
	tick := min(max(cn.keepAlive/4, 100*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var pingAt int64
	for {
		select {
		case <-cn.dead:
			return
		case <-t.C:
		}
		now := cn.now().UnixNano()
		if silent := time.Duration(now - cn.lastRecv.Load()); silent >= cn.keepAlive+cn.pingTimeout {
			// Sending all along but nothing comes back: a stalled link.
			cn.fail(fmt.Errorf("client: nothing received for %v", silent))
			return
		}
		if pingAt != 0 {
			if cn.lastRecv.Load() >= pingAt {
				pingAt = 0
			} else if time.Duration(now-pingAt) >= cn.pingTimeout {
				cn.fail(fmt.Errorf("client: no answer to PINGREQ within %v", cn.pingTimeout))
				return
			}
		}
		if pingAt == 0 && time.Duration(now-cn.lastSend.Load()) >= cn.keepAlive-tick {
			pingAt = now
			cn.send(&packet.Pingreq{})
		}
	}
}
