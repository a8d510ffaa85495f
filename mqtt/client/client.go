package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// Errors returned by the client. Server refusals are *RefusedError.
var (
	ErrClosed       = errors.New("client: closed")
	ErrNotConnected = errors.New("client: not connected")
	ErrConnLost     = errors.New("client: connection lost")
	ErrRunning      = errors.New("client: already running")
	ErrOptions      = errors.New("client: invalid options")
	// ErrTooLarge: the PUBLISH is above the Maximum Packet Size the server
	// announced. It ends the flow, at once or when a reconnect finds the
	// server's limit lower than the message.
	ErrTooLarge = errors.New("client: above the server's maximum packet size")
	// ErrInvalidMessage: the message can never be published (a topic
	// that is not a valid topic name, a QoS above 2).
	ErrInvalidMessage = errors.New("client: invalid message")

	// errNoPacketID: every packet identifier is in use.
	errNoPacketID = errors.New("client: no free packet identifier")
)

// RefusedError is a negative reason code from the server: a CONNACK that
// refuses the connection, or a PUBACK, PUBREC, SUBACK or UNSUBACK failure.
type RefusedError struct {
	Packet packet.Type
	Code   packet.ReasonCode
	Reason string // the server's Reason String, if any
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("client: %v: %v (0x%02x)", e.Packet, e.Code, byte(e.Code))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Will is the will message the server publishes when the connection ends
// without DISCONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Delay   time.Duration // 5.0 Will Delay Interval
}

// Message is a message published or received.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Dup     bool // received only: the server sent it again
	// MQTT 5.0 properties; ignored at 3.1.1.
	Expiry          time.Duration // Message Expiry Interval, whole seconds; 0 none
	ResponseTopic   string
	CorrelationData []byte
	ContentType     string
	PayloadFormat   byte // Payload Format Indicator: 0 unspecified bytes, 1 UTF-8
	User            []packet.UserProperty
	// Class names what the message carries, for metering only: the bytes
	// of its PUBLISH count under it in Traffic.Publish. Not sent.
	Class string
}

// Credentials are what GetCredentials returns: Password for CONNECT, and
// TLS, which must be non-nil when Options.TLS is.
type Credentials struct {
	Password []byte
	TLS      *tls.Config
}

// Options configures a Client. Addr and ClientID (unless CleanStart) are
// required.
type Options struct {
	Addr string // host:port
	// Addrs are more addresses of the same server (the nodes of a
	// cluster): after a failed attempt the next one is tried, at once
	// while some address of the round is untried. The session carries
	// over. Host names are resolved again at each attempt.
	Addrs []string
	// TLS, when non-nil, wraps the connection (mqtts). See TLSConfig.
	TLS *tls.Config
	// Dialer dials the TCP connection; default a net.Dialer. Tests inject
	// proxies and pipes.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Version is packet.V5 or packet.V311; zero means 5.0 with fallback to
	// 3.1.1 when the server refuses 5.0.
	Version  packet.Version
	ClientID string
	Username string
	Password []byte
	// GetCredentials, when set, is called before each connection attempt,
	// and the password and TLS configuration it returns replace Password
	// and TLS for that attempt: credentials kept in files that are
	// rotated are read again without a restart. An error fails the
	// attempt, which is retried after the backoff.
	GetCredentials func() (Credentials, error)
	// CleanStart discards the server's session at each connect. Off, the
	// server keeps subscriptions and queued messages for SessionExpiry
	// (5.0) or forever (3.1.1).
	CleanStart    bool
	SessionExpiry time.Duration
	// KeepAlive is sent in CONNECT; a PINGREQ goes out after KeepAlive of
	// silence and the link is declared dead when nothing arrives within
	// PingTimeout after it, or for KeepAlive+PingTimeout while sending.
	// Default 30 s; a server's Server Keep Alive wins. On Linux the TCP
	// socket also gets TCP_USER_TIMEOUT = KeepAlive+PingTimeout, so that
	// the kernel too stops retransmitting into a dead link.
	KeepAlive   time.Duration
	PingTimeout time.Duration // default KeepAlive/2, at least 1 s
	// ConnectTimeout bounds dial, TLS handshake and CONNACK; default 15 s.
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// attempts (jittered over its upper half); defaults 1 s and 2 min.
	ReconnectMin, ReconnectMax time.Duration
	// ReconnectSpread, when set, is the smallest window a retry is drawn
	// from, uniformly: while ReconnectMin·2^attempt is below it, the wait
	// is anywhere in [ReconnectMin/2, ReconnectSpread]. A fleet that loses
	// its cloud at once (a restart of the broker) then comes back spread
	// over the window, at most about 1/(ReconnectSpread − ReconnectMin/2)
	// of it each second, instead of in step. Zero (the default here) keeps
	// the plain exponential backoff.
	ReconnectSpread time.Duration
	// StableAfter is how long a connection must have lived for the
	// backoff to start again from ReconnectMin; default 60 s. Until then
	// each loss doubles it, so that a server that accepts and then drops
	// the connection (a broken QoS, a flapping link) is not hammered and
	// does not publish the will at every attempt. 60 s is two keep
	// alives at the default 30 s: the link held through a NAT's idle
	// timeout and the server's checks. A count of acknowledgements would
	// reset it on a server that takes some messages and drops the link at
	// the next one.
	StableAfter time.Duration
	// MaxInflight caps unacknowledged outgoing QoS 1/2 messages below the
	// server's Receive Maximum. Zero means the Receive Maximum at 5.0, and
	// 20 at 3.1.1, which has no way to announce a limit: Mosquitto's
	// default max_inflight_messages, past which it drops QoS 2 messages.
	MaxInflight int
	// ReceiveMaximum (5.0) limits the QoS 1/2 messages the server sends
	// unacknowledged; 0 leaves the protocol's 65,535.
	ReceiveMaximum uint16
	// MaxPacketSize bounds inbound packets (announced at 5.0); default
	// 16 MiB.
	MaxPacketSize int
	Will          *Will
	// TopicAliases enables 5.0 topic aliases for outgoing publishes, up
	// to the server's Topic Alias Maximum.
	TopicAliases bool
	User         []packet.UserProperty // CONNECT user properties
	// StateFile keeps the QoS 2 receive state (identifiers delivered and
	// awaiting PUBREL) across restarts; empty keeps it in memory only.
	StateFile string
	// OnMessage receives inbound messages; see the package documentation.
	OnMessage func(Message)
	// OnConnect runs on its own goroutine after each successful connect,
	// once unacknowledged messages have been queued for resending; its ctx
	// ends when the connection is lost. It may publish and subscribe.
	OnConnect func(ctx context.Context, sessionPresent bool)
	// Log receives state changes: connected, lost, retrying. Nil discards.
	Log *slog.Logger

	now  func() time.Time    // tests
	rand func(n int64) int64 // jitter; tests
}

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("addr: must be set"))
	}
	for i, a := range o.Addrs {
		if a == "" {
			errs = append(errs, fmt.Errorf("addrs[%d]: empty", i))
		}
	}
	if o.ClientID == "" && !o.CleanStart {
		errs = append(errs, errors.New("client_id: must be set without clean start"))
	}
	switch o.Version {
	case 0, packet.V5, packet.V311:
	default:
		errs = append(errs, fmt.Errorf("version: %v: want 5.0 or 3.1.1", o.Version))
	}
	if o.Will != nil && (topic.ValidName(o.Will.Topic) != nil || o.Will.QoS > 2) {
		errs = append(errs, fmt.Errorf("will: topic %q qos %d: invalid", o.Will.Topic, o.Will.QoS))
	}
	if o.KeepAlive < 0 || o.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("keepalive: %v: outside 0..65535s", o.KeepAlive))
	}
	if o.SessionExpiry < 0 {
		errs = append(errs, fmt.Errorf("session_expiry: %v: negative", o.SessionExpiry))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = max(o.KeepAlive/2, time.Second)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = time.Second
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(2*time.Minute, o.ReconnectMin)
	}
	if o.MaxInflight < 0 || o.MaxInflight > 65535 {
		o.MaxInflight = 65535
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = 16 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Dialer == nil {
		d := &net.Dialer{}
		o.Dialer = d.DialContext
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.rand == nil {
		o.rand = rand.Int64N
	}
	return o, nil
}

// Client is an MQTT client that keeps reconnecting. See the package
// documentation.
type Client struct {
	o   Options
	log *slog.Logger
	rx  *rxState // QoS 2 receive state

	running atomic.Bool
	stop    context.CancelFunc // set by Connect/Dial; Close calls it
	runDone chan struct{}      // closed when a background Run returns

	// mu guards the fields below and the session state.
	mu        sync.Mutex
	cur       *conn // nil while disconnected
	version   packet.Version
	closed    bool
	up        chan struct{} // closed while connected; replaced on loss
	pending   map[uint16]*pending
	order     uint64 // insertion order of pending
	ids       idPool
	inflight  int // QoS 1/2 publishes holding a window slot
	limit     int // window size of the current (or last) connection
	slotFree  chan struct{}
	slotWait  bool                           // someone took slotFree to wait on
	subs      map[string]packet.Subscription // for resubscribing after a lost session
	lastErr   error
	connected bool
	neg       negotiation

	sent, acked, downgraded atomic.Int64
	wire                    wire // bytes on the wire; see Traffic
}

// inflight311 is the window at 3.1.1 when Options.MaxInflight is zero.
const inflight311 = 20

// requestIDs are the packet identifiers kept out of the publish window
// for SUBSCRIBE and UNSUBSCRIBE; maxWindow is the largest window.
const (
	requestIDs = 64
	maxWindow  = 65535 - requestIDs
)

// pending is one outgoing request awaiting its acknowledgement.
type pending struct {
	id    uint16
	order uint64
	pub   *packet.Publish // nil for SUBSCRIBE/UNSUBSCRIBE
	msg   packet.Publish  // where pub points for a publish
	class string          // Message.Class, for Traffic
	rel   bool            // QoS 2: PUBREC received, PUBREL sent
	// downgraded: asked at QoS 2, sent at QoS 1 or answered by PUBACK.
	downgraded bool
	done       func(error) // publishes
	received   func(id uint16)
	ctl        packet.Packet // SUBSCRIBE or UNSUBSCRIBE
	reply      chan packet.Packet
}

// New checks o and builds a Client. It does not connect: call Run, or use
// Dial.
func New(o Options) (*Client, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	rx, err := openRxState(o.StateFile)
	if err != nil {
		return nil, fmt.Errorf("client: state file: %w", err)
	}
	c := &Client{
		o:        o,
		log:      o.Log,
		rx:       rx,
		version:  o.Version,
		up:       make(chan struct{}),
		pending:  make(map[uint16]*pending),
		limit:    20,
		slotFree: make(chan struct{}),
		subs:     make(map[string]packet.Subscription),
		neg:      negotiation{maxQoS: 2, willQoS: 2, willRetain: true},
	}
	c.o.Dialer = countingDialer(c.o.Dialer, &c.wire, o.KeepAlive+o.PingTimeout)
	return c, nil
}

// Dial builds a Client, runs it in the background and waits until it is
// connected or ctx is done (then it is closed). Close stops it.
func Dial(ctx context.Context, o Options) (*Client, error) {
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Connect starts Run in the background, if it is not running yet, and
// waits until the client is connected or ctx is done. Close stops it.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.stop == nil && !c.running.Load() {
		rctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.runDone = make(chan struct{})
		done := c.runDone
		go func() {
			defer close(done)
			c.Run(rctx)
		}()
	}
	c.mu.Unlock()
	return c.WaitConnected(ctx)
}

// WaitConnected waits until the client is connected. It returns the last
// connection error with ctx's error when ctx ends first.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		up, ok, closed, last := c.up, c.connected, c.closed, c.lastErr
		c.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if ok {
			return nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("client: %w (last error: %w)", ctx.Err(), last)
			}
			return ctx.Err()
		}
	}
}

// Close disconnects (DISCONNECT, so the will is not published), stops a
// background Run and fails what is still pending with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cn := c.cur
	stop, done := c.stop, c.runDone
	c.mu.Unlock()
	if cn != nil {
		cn.disconnect()
	}
	if stop != nil {
		stop()
		<-done
	}
	c.failAll(ErrClosed)
	c.mu.Lock()
	c.rx.close()
	c.mu.Unlock()
	return nil
}

func (c *Client) failAll(err error) {
	c.mu.Lock()
	var ps []*pending
	for id, p := range c.pending {
		ps = append(ps, p)
		delete(c.pending, id)
		c.ids.put(id)
		if p.pub != nil {
			c.inflight--
		}
	}
	c.wakeSlots()
	c.mu.Unlock()
	for _, p := range ps {
		p.finish(err, nil)
	}
}

func (p *pending) finish(err error, reply packet.Packet) {
	if p.done != nil {
		p.done(err)
	}
	if p.reply != nil {
		p.reply <- reply // buffered, cap 1
	}
}

// Status is a snapshot of the client's state.
type Status struct {
	Connected bool
	Version   packet.Version
	LastError error
	Sent      int64 // QoS 1/2 publishes written (resends included)
	Acked     int64 // QoS 1/2 publishes completed
	Inflight  int
	// Addr is the address of the current or last connection; "" before
	// the first.
	Addr string
	// VersionReason says why Version is 3.1.1 when the version is
	// automatic: "server answered 5.0 with a 3.1.1 CONNACK", …
	VersionReason string
	// MaxQoS is the highest QoS publishes go out with, 2 unless the
	// server showed it cannot do QoS 2; QoSReason says how ("server
	// maximum_qos 1", "server answered PUBACK to QoS 2", …).
	MaxQoS    byte
	QoSReason string
	// Downgraded counts messages published at QoS 2 and delivered at
	// QoS 1 (at least once).
	Downgraded int64
}

// Status returns the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Connected: c.connected, Version: c.version, LastError: c.lastErr,
		Sent: c.sent.Load(), Acked: c.acked.Load(), Inflight: c.inflight, Addr: c.neg.lastAddr,
		VersionReason: c.neg.reason, MaxQoS: c.neg.maxQoS, QoSReason: c.neg.qosReason,
		Downgraded: c.downgraded.Load()}
}

// MaxQoS returns the highest QoS publishes go out with (see Status).
func (c *Client) MaxQoS() byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.neg.maxQoS
}

// Run connects and reconnects until ctx is done, then disconnects and
// returns ctx.Err(). Only one Run may be active.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	var lastLogged string
	// attempt counts failed attempts and short-lived connections since
	// the last connection that lived Options.StableAfter.
	for attempt := 0; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return ErrClosed
		}
		cn, present, err := c.connect(ctx)
		if err == nil {
			lastLogged = ""
			c.log.Info("connected", "addr", cn.addr, "version", cn.v.String(), "session_present", present)
			start := c.o.now()
			err = c.serve(ctx, cn, present)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lived := c.o.now().Sub(start)
			if lived >= c.o.StableAfter {
				attempt = 0
			}
			c.log.Warn("connection lost", "addr", cn.addr, "err", err, "lived", lived.Round(time.Millisecond))
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else if c.failedAddr() {
			// Another node of the cluster is untried in this round.
			c.log.Debug("connect failed, trying the next address", "err", err)
			continue
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		d := c.backoff(attempt)
		attempt++
		if msg := err.Error(); msg != lastLogged {
			lastLogged = msg
			c.log.Warn("retrying", "addr", c.dialAddr(), "err", err, "backoff", d, "attempt", attempt)
		} else {
			c.log.Debug("retrying", "addr", c.dialAddr(), "err", err, "backoff", d, "attempt", attempt)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt+1: ReconnectMin·2^attempt capped
// at ReconnectMax, jittered over its upper half so that a fleet that lost
// the same tower does not come back in step; while that is below
// ReconnectSpread, anywhere in [ReconnectMin/2, ReconnectSpread].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.o.ReconnectMin
	for i := 0; i < attempt && d < c.o.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, c.o.ReconnectMax)
	if spread := min(c.o.ReconnectSpread, c.o.ReconnectMax); d < spread {
		lo := int64(c.o.ReconnectMin / 2)
		return time.Duration(lo + c.o.rand(int64(spread)-lo+1))
	}
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + c.o.rand(half+1))
}

// serve registers cn as the current connection, resends what is pending,
// runs OnConnect and waits until cn fails or ctx ends.
func (c *Client) serve(ctx context.Context, cn *conn, present bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cn.disconnect()
		cn.wait()
		return ErrClosed
	}
	c.limit = int(cn.receiveMax)
	if cn.v != packet.V5 {
		c.limit = inflight311
	}
	if c.o.MaxInflight > 0 {
		c.limit = min(c.o.MaxInflight, c.limit)
	}
	// Packet identifiers are shared with SUBSCRIBE and UNSUBSCRIBE: a
	// window of the whole 65,535 (a server's Receive Maximum may say so)
	// would leave none for them, or none for a publish while one waits.
	c.limit = min(c.limit, maxWindow)
	c.version = cn.v
	c.learnConnack(cn)
	// Resend in the original order, before any new request can reach the
	// wire. [MQTT-4.4.0-1]
	ps := make([]*pending, 0, len(c.pending))
	for _, p := range c.pending {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].order < ps[j].order })
	type ended struct {
		p   *pending
		err error
	}
	var done []ended
	for _, p := range ps {
		switch {
		case p.pub != nil && p.rel && present:
			cn.send(&packet.Pubrel{PacketID: p.id})
		case p.pub != nil && p.rel:
			// The server lost the session after it had the message: the
			// flow cannot complete but the message was received.
			delete(c.pending, p.id)
			c.ids.put(p.id)
			c.inflight--
			done = append(done, ended{p, nil})
		case p.pub != nil:
			p.pub.Dup = present
			c.capPublish(cn, p)
			if err := cn.sendPublish(p.pub, p.class); err != nil {
				// Queued while disconnected and too large for this
				// server: it never will be sent.
				delete(c.pending, p.id)
				c.ids.put(p.id)
				c.inflight--
				done = append(done, ended{p, err})
				continue
			}
			c.sent.Add(1)
		default:
			// SUBSCRIBE/UNSUBSCRIBE are not resent: fail them.
			delete(c.pending, p.id)
			c.ids.put(p.id)
			done = append(done, ended{p, ErrConnLost})
		}
	}
	if !present && len(c.subs) > 0 {
		subs := make([]packet.Subscription, 0, len(c.subs))
		for _, s := range c.subs {
			s.QoS = min(s.QoS, c.neg.maxQoS)
			subs = append(subs, s)
		}
		sort.Slice(subs, func(i, j int) bool { return subs[i].Filter < subs[j].Filter })
		if id, ok := c.ids.get(); ok {
			// Answered by a SUBACK that matches nothing pending; the id
			// is freed then.
			c.pending[id] = &pending{id: id, order: c.nextOrder(), ctl: &packet.Subscribe{}, reply: make(chan packet.Packet, 1)}
			cn.send(&packet.Subscribe{PacketID: id, Subscriptions: subs})
		}
	}
	c.cur = cn
	c.connected = true
	c.lastErr = nil
	close(c.up)
	c.wakeSlots()
	c.mu.Unlock()
	for _, e := range done {
		if e.err == nil {
			c.acked.Add(1)
		}
		e.p.finish(e.err, nil)
	}

	cctx, cancel := context.WithCancel(ctx)
	var hook sync.WaitGroup
	if c.o.OnConnect != nil {
		hook.Go(func() { c.o.OnConnect(cctx, present) })
	}
	var err error
	select {
	case <-cn.dead:
		err = cn.err()
	case <-ctx.Done():
		cn.disconnect()
		err = ctx.Err()
	}
	cancel()
	cn.wait()
	hook.Wait()

	c.mu.Lock()
	c.lost(cn, err)
	c.cur = nil
	c.connected = false
	c.up = make(chan struct{})
	// Subscribe and unsubscribe requests die with the connection.
	var lost []*pending
	for id, p := range c.pending {
		if p.pub == nil {
			delete(c.pending, id)
			c.ids.put(id)
			lost = append(lost, p)
		}
	}
	c.mu.Unlock()
	for _, p := range lost {
		p.finish(ErrConnLost, nil)
	}
	return err
}

func (c *Client) nextOrder() uint64 { c.order++; return c.order }

// wakeSlots wakes goroutines waiting for a window slot. Called with c.mu
// held.
func (c *Client) wakeSlots() {
	if !c.slotWait {
		return // a refill from the acknowledgements: nobody waits
	}
	close(c.slotFree)
	c.slotFree = make(chan struct{})
	c.slotWait = false
}

// acquire takes a window slot, waiting while the window is full.
func (c *Client) acquire(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.inflight < c.limit {
			c.inflight++
			c.mu.Unlock()
			return nil
		}
		ch := c.slotFree
		c.slotWait = true
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Publish publishes m and waits for the end of its flow: QoS 0 once
// written to the connection's buffer, QoS 1 on PUBACK, QoS 2 on PUBCOMP.
// A QoS 0 message fails with ErrNotConnected while disconnected; QoS 1
// and 2 messages wait for a connection. If ctx ends after the message was
// queued it is still delivered; Publish just stops waiting.
func (c *Client) Publish(ctx context.Context, m Message) error {
	ch := make(chan error, 1)
	if err := c.PublishAsync(ctx, m, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishAsync queues m, waiting for a window slot (QoS 1/2) while the
// in-flight window is full, and returns. done, if not nil, is called once
// with the outcome (nil on PUBACK/PUBCOMP, a *RefusedError, ErrClosed, or
// ErrTooLarge when m, queued while disconnected, is above the Maximum
// Packet Size of the server then reached) from a client goroutine; it must
// not block. An error return means m was not queued and done is not
// called.
func (c *Client) PublishAsync(ctx context.Context, m Message, done func(error)) error {
	return c.PublishFlow(ctx, m, Flow{Done: done})
}

// Flow hooks into a QoS 1/2 publish for a caller that keeps its own record
// of outbound flows, so that a restarted process can resume them with the
// same packet identifiers and the server drops what it already has.
type Flow struct {
	// ID, when non-zero, resumes a flow an earlier process started with
	// this packet identifier; it must have been taken with Reserve. The
	// PUBLISH is sent with DUP when the server resumed the session.
	ID uint16
	// Released resumes a QoS 2 flow whose PUBREC had arrived: only PUBREL
	// is sent.
	Released bool
	// Start is called with the packet identifier of a new flow before the
	// PUBLISH can reach the wire; Received when PUBREC arrives, before
	// PUBREL is sent. Both run under the client's lock: they must be quick
	// and must not call the client.
	Start, Received func(id uint16)
	// Done is called once with the outcome, as for PublishAsync.
	Done func(error)
}

// Reserve takes packet identifiers of flows to be resumed with Flow.ID or
// ended with Release, before anything new is published. It returns false
// for an identifier already in use.
func (c *Client) Reserve(id uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids.take(id)
}

// Unreserve frees a reserved identifier that will not be resumed (a QoS 1
// flow, whose identifier the server does not keep).
func (c *Client) Unreserve(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[id] == nil {
		c.ids.put(id)
	}
}

// Release ends a reserved QoS 2 flow whose message is gone: it sends
// PUBREL so that the server frees the identifier, and frees it on PUBCOMP.
// done as for PublishAsync.
func (c *Client) Release(ctx context.Context, id uint16, done func(error)) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.inflight--
		return ErrClosed
	}
	if !c.ids.isUsed(id) || c.pending[id] != nil {
		c.inflight--
		return fmt.Errorf("client: release of packet identifier %d not reserved or in use", id)
	}
	p := &pending{id: id, order: c.nextOrder(), pub: &packet.Publish{QoS: 2, PacketID: id}, rel: true, done: done}
	c.pending[id] = p
	if cn := c.cur; cn != nil {
		cn.send(&packet.Pubrel{PacketID: id})
	}
	return nil
}

// PublishFlow is PublishAsync with the hooks of f. See Flow.
func (c *Client) PublishFlow(ctx context.Context, m Message, f Flow) error {
	_, err := c.publishFlow(ctx, m, f, true)
	return err
}

// TryPublishFlow is PublishFlow without waiting: it returns false, and
// does nothing, while the in-flight window is full. Called from a Done
// hook, which runs on the connection's reader as acknowledgements arrive,
// it lets a producer refill the window from there, the PUBLISH going out
// with the reader's next write instead of after a wake of other
// goroutines.
func (c *Client) TryPublishFlow(m Message, f Flow) (bool, error) {
	return c.publishFlow(nil, m, f, false)
}

func (c *Client) publishFlow(ctx context.Context, m Message, f Flow, wait bool) (bool, error) {
	if m.QoS > 2 {
		return false, fmt.Errorf("%w: publish %q: qos %d", ErrInvalidMessage, m.Topic, m.QoS)
	}
	if topic.ValidName(m.Topic) != nil {
		return false, fmt.Errorf("%w: publish: invalid topic %q", ErrInvalidMessage, m.Topic)
	}
	// The PUBLISH lives in its pending: one allocation per message.
	p := &pending{msg: packet.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}}
	pub := &p.msg
	if m.Expiry > 0 {
		pub.Props.HasMessageExpiry = true
		pub.Props.MessageExpiry = uint32(min((m.Expiry+time.Second-1)/time.Second, 1<<32-1))
	}
	pub.Props.ResponseTopic = m.ResponseTopic
	pub.Props.CorrelationData = m.CorrelationData
	pub.Props.ContentType = m.ContentType
	pub.Props.PayloadFormat = m.PayloadFormat
	pub.Props.User = m.User
	if m.QoS == 0 {
		c.mu.Lock()
		cn := c.cur
		if c.closed {
			c.mu.Unlock()
			return false, ErrClosed
		}
		if cn == nil {
			c.mu.Unlock()
			return false, ErrNotConnected
		}
		err := cn.sendPublish(pub, m.Class)
		c.mu.Unlock()
		if err != nil {
			return false, err
		}
		if f.Done != nil {
			f.Done(nil)
		}
		return true, nil
	}
	if wait {
		if err := c.acquire(ctx); err != nil {
			return false, err
		}
		c.mu.Lock()
	} else {
		c.mu.Lock()
		if !c.closed && c.inflight >= c.limit {
			c.mu.Unlock()
			return false, nil
		}
		c.inflight++
	}
	defer c.mu.Unlock()
	if c.closed {
		c.inflight--
		return false, ErrClosed
	}
	id := f.ID
	if id == 0 {
		var ok bool
		if id, ok = c.ids.get(); !ok { // cannot happen: the window is below 65535
			c.inflight--
			return false, errNoPacketID
		}
	} else if !c.ids.isUsed(id) || c.pending[id] != nil {
		c.inflight--
		return false, fmt.Errorf("client: resume of packet identifier %d not reserved or in use", id)
	}
	pub.PacketID = id
	p.id, p.order, p.pub, p.class, p.done, p.received = id, c.nextOrder(), pub, m.Class, f.Done, f.Received
	p.rel = f.Released && m.QoS == 2
	if f.ID == 0 && f.Start != nil {
		f.Start(id)
	}
	cn := c.cur
	if cn != nil {
		var err error
		switch {
		case p.rel:
			err = cn.send(&packet.Pubrel{PacketID: id})
		default:
			// A resumed flow goes out with DUP if the server kept the
			// session; the next reconnect's resend sets it anyway.
			pub.Dup = f.ID != 0 && cn.present
			c.capPublish(cn, p)
			err = cn.sendPublish(pub, m.Class)
			c.sent.Add(1)
		}
		if err != nil {
			c.ids.put(id)
			c.inflight--
			return false, err
		}
	}
	c.pending[id] = p
	return true, nil
}

// Subscription is a topic filter and its options.
type Subscription = packet.Subscription

// Subscribe subscribes and waits for the SUBACK; it returns the reason
// codes, and a *RefusedError when any subscription failed. The
// subscriptions are remembered and made again after a reconnect that did
// not resume the session.
func (c *Client) Subscribe(ctx context.Context, subs ...Subscription) ([]packet.ReasonCode, error) {
	for _, s := range subs {
		if topic.ValidFilter(s.Filter) != nil || s.QoS > 2 {
			return nil, fmt.Errorf("client: subscribe: invalid filter %q or qos %d", s.Filter, s.QoS)
		}
	}
	// A subscription asks no more than the server takes: AWS IoT Core,
	// which announces Maximum QoS 1, leaves a QoS 2 SUBSCRIBE unanswered.
	c.mu.Lock()
	maxQoS := c.neg.maxQoS
	c.mu.Unlock()
	asked := subs
	subs = make([]Subscription, len(asked))
	for i, s := range asked {
		s.QoS = min(s.QoS, maxQoS)
		subs[i] = s
	}
	reply, err := c.request(ctx, func(id uint16) packet.Packet {
		return &packet.Subscribe{PacketID: id, Subscriptions: subs}
	})
	if err != nil {
		return nil, err
	}
	ack, ok := reply.(*packet.Suback)
	if !ok || len(ack.Codes) != len(subs) {
		return nil, fmt.Errorf("client: subscribe: bad SUBACK")
	}
	c.mu.Lock()
	var refused error
	for i, code := range ack.Codes {
		if subs[i].QoS == 2 && code == packet.GrantedQoS1 {
			c.lowerQoS(1, "server granted QoS 1 to a QoS 2 subscription", false)
		}
		if code.IsError() {
			refused = &RefusedError{Packet: packet.TypeSuback, Code: code, Reason: ack.Props.ReasonString}
			continue
		}
		c.subs[subs[i].Filter] = asked[i]
	}
	c.mu.Unlock()
	return ack.Codes, refused
}

// Unsubscribe unsubscribes and waits for the UNSUBACK.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	reply, err := c.request(ctx, func(id uint16) packet.Packet {
		return &packet.Unsubscribe{PacketID: id, Filters: filters}
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	for _, f := range filters {
		delete(c.subs, f)
	}
	c.mu.Unlock()
	if ack, ok := reply.(*packet.Unsuback); ok {
		for _, code := range ack.Codes {
			if code.IsError() && code != packet.NoSubscriptionExisted {
				return &RefusedError{Packet: packet.TypeUnsuback, Code: code, Reason: ack.Props.ReasonString}
			}
		}
	}
	return nil
}

// request sends a SUBSCRIBE or UNSUBSCRIBE on the current connection and
// waits for its answer.
func (c *Client) request(ctx context.Context, build func(id uint16) packet.Packet) (packet.Packet, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	cn := c.cur
	if cn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	id, ok := c.ids.get()
	if !ok {
		c.mu.Unlock()
		return nil, errNoPacketID
	}
	pk := build(id)
	p := &pending{id: id, order: c.nextOrder(), ctl: pk, reply: make(chan packet.Packet, 1)}
	c.pending[id] = p
	if err := cn.send(pk); err != nil {
		delete(c.pending, id)
		c.ids.put(id)
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Unlock()
	select {
	case r := <-p.reply:
		if r == nil {
			return nil, ErrConnLost
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handle processes one inbound packet of cn (reader goroutine).
func (c *Client) handle(cn *conn, pk packet.Packet) error {
	switch p := pk.(type) {
	case *packet.Publish:
		return c.receive(cn, p)
	case *packet.Puback:
		c.complete(p.PacketID, packet.TypePuback, p.Code, p.Props.ReasonString)
	case *packet.Pubrec:
		if p.Code.IsError() {
			c.complete(p.PacketID, packet.TypePubrec, p.Code, p.Props.ReasonString)
			return nil
		}
		c.mu.Lock()
		cn.q2acked = true
		c.neg.q2ok = cn.addr
		if pd, ok := c.pending[p.PacketID]; ok && pd.pub != nil && !pd.rel {
			pd.rel = true
			if pd.received != nil {
				pd.received(p.PacketID)
			}
		}
		// PUBREL even for an unknown id, so that the server can free it.
		err := cn.send(&packet.Pubrel{PacketID: p.PacketID})
		c.mu.Unlock()
		return err
	case *packet.Pubcomp:
		c.complete(p.PacketID, packet.TypePubcomp, p.Code, p.Props.ReasonString)
	case *packet.Pubrel:
		c.mu.Lock()
		err := c.rx.release(p.PacketID)
		if err == nil {
			err = cn.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
		c.mu.Unlock()
		return err
	case *packet.Suback:
		c.reply(p.PacketID, p)
	case *packet.Unsuback:
		c.reply(p.PacketID, p)
	case *packet.Pingresp:
	case *packet.Disconnect:
		if p.Code == packet.QoSNotSupported {
			c.mu.Lock()
			c.lowerQoS(1, "server sent DISCONNECT 0x9b (QoS not supported)", false)
			c.mu.Unlock()
		}
		return &RefusedError{Packet: packet.TypeDisconnect, Code: p.Code, Reason: p.Props.ReasonString}
	default:
		return fmt.Errorf("client: unexpected %v from server", pk.Type())
	}
	return nil
}

// receive delivers an inbound PUBLISH and acknowledges it.
func (c *Client) receive(cn *conn, p *packet.Publish) error {
	if n, err := packet.Size(p, cn.v); err == nil {
		c.wire.pubIn.Add(int64(n)) // as re-encoded: the server's own encoding may differ by a byte or two
	}
	m := Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Dup,
		ResponseTopic: p.Props.ResponseTopic, CorrelationData: p.Props.CorrelationData,
		ContentType: p.Props.ContentType, User: p.Props.User}
	if p.Props.HasMessageExpiry {
		m.Expiry = time.Duration(p.Props.MessageExpiry) * time.Second
	}
	switch p.QoS {
	case 0, 1:
		if c.o.OnMessage != nil {
			c.o.OnMessage(m)
		}
		if p.QoS == 0 {
			return nil
		}
		c.mu.Lock()
		err := cn.send(&packet.Puback{PacketID: p.PacketID})
		c.mu.Unlock()
		return err
	}
	// QoS 2, method A of [MQTT-4.3.3]: deliver once, remember the id
	// until PUBREL, acknowledge a resent PUBLISH without delivering it.
	c.mu.Lock()
	seen := c.rx.has(p.PacketID)
	c.mu.Unlock()
	if !seen && c.o.OnMessage != nil {
		c.o.OnMessage(m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !seen {
		if err := c.rx.add(p.PacketID); err != nil {
			return err
		}
	}
	return cn.send(&packet.Pubrec{PacketID: p.PacketID})
}

func (c *Client) complete(id uint16, t packet.Type, code packet.ReasonCode, reason string) {
	c.mu.Lock()
	p, ok := c.pending[id]
	if !ok || p.pub == nil {
		c.mu.Unlock()
		return
	}
	// A PUBACK for a QoS 2 message is a server that cannot do QoS 2
	// (RabbitMQ): the message arrived at least once. A PUBCOMP for QoS 1
	// is the server's bug; take it as the end of the flow all the same.
	if t == packet.TypePuback && p.pub.QoS == 2 && !code.IsError() {
		c.lowerQoS(1, "server answered PUBACK to QoS 2", false)
		c.countDowngraded(p)
	}
	delete(c.pending, id)
	c.ids.put(id)
	c.inflight--
	if c.inflight == c.limit-1 {
		c.wakeSlots()
	}
	c.mu.Unlock()
	c.acked.Add(1)
	var err error
	if code.IsError() {
		err = &RefusedError{Packet: t, Code: code, Reason: reason}
	}
	p.finish(err, nil)
}

func (c *Client) reply(id uint16, pk packet.Packet) {
	c.mu.Lock()
	p, ok := c.pending[id]
	if ok && p.pub == nil {
		delete(c.pending, id)
		c.ids.put(id)
	}
	c.mu.Unlock()
	if ok && p.pub == nil {
		p.finish(nil, pk)
	}
}

// idPool hands out packet identifiers 1..65535: freed ones from a stack,
// else the next never used. A bitmap marks the ids in use, so that an id
// taken by number (a flow resumed after a restart) is skipped lazily when
// it surfaces from the stack. Every operation is amortised O(1).
type idPool struct {
	used [1024]uint64
	free []uint16
	next uint32 // highest id ever handed out by get or take
}

func (p *idPool) isUsed(id uint16) bool { return p.used[id>>6]&(1<<(id&63)) != 0 }
func (p *idPool) mark(id uint16)        { p.used[id>>6] |= 1 << (id & 63) }

func (p *idPool) get() (uint16, bool) {
	for n := len(p.free); n > 0; n = len(p.free) {
		id := p.free[n-1]
		p.free = p.free[:n-1]
		if !p.isUsed(id) {
			p.mark(id)
			return id, true
		}
	}
	for p.next < 65535 {
		p.next++
		if id := uint16(p.next); !p.isUsed(id) {
			p.mark(id)
			return id, true
		}
	}
	return 0, false
}

// take marks id used; false if it already is.
func (p *idPool) take(id uint16) bool {
	if id == 0 || p.isUsed(id) {
		return false
	}
	p.mark(id)
	return true
}

func (p *idPool) put(id uint16) {
	if !p.isUsed(id) {
		return
	}
	p.used[id>>6] &^= 1 << (id & 63)
	p.free = append(p.free, id)
}
