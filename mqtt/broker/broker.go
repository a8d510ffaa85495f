package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// ErrServerClosed is returned by Serve, ListenAndServe and Publish after
// Shutdown.
var ErrServerClosed = errors.New("broker: server closed")

// Options configure a Server. The zero value is a usable broker for
// loopback clients (anonymous access allowed because no listener is
// configured, default limits, no persistence).
type Options struct {
	Listen      string // TCP address for ListenAndServe; "" none
	TLSListen   string // TLS address; needs TLSCert and TLSKey
	TLSCert     string // PEM certificate chain file
	TLSKey      string // PEM private key file
	TLSClientCA string // PEM CA file: client certificates required, CN is the user name
	WSListen    string // MQTT over WebSocket address (path "/" and "/mqtt")
	// WSSListen is an MQTT over WebSocket address behind TLS, with
	// TLSCert and TLSKey, and TLSClientCA's client certificates as on
	// TLSListen.
	WSSListen string

	// AllowAnonymous lets clients connect without a user name. nil
	// means true only when every configured listener is on a loopback
	// address and none is a WebSocket listener (a web page in a browser
	// on the vehicle could reach it); a connection over a WebSocket is
	// anonymous only with AllowAnonymous set true.
	AllowAnonymous *bool
	// WSAllowedOrigins lists the origins (scheme://host[:port], or "*"
	// for any) whose web pages may open the WebSocket listeners. Empty:
	// every request carrying an Origin header, i.e. from a browser, is
	// refused; clients that send none (not browsers) are served.
	WSAllowedOrigins []string
	// PasswordFile holds "user:hash" lines (bcrypt or argon2id, see
	// HashPassword). Empty: any user name is accepted without a
	// password check when it is given, and anonymous access follows
	// AllowAnonymous.
	PasswordFile string
	// ACL rules, checked in order; the first matching rule decides. No
	// rules: everything is allowed. Rules but none matching: denied.
	ACL []ACLRule
	// ACLFile is an optional Mosquitto-style ACL file, appended to ACL
	// (see ParseACL).
	ACLFile string
	// DenySubscribeCode is the SUBACK code of a subscription the ACL
	// denies: 0x80 (default) or 0x87 (not authorized; 5.0 clients only,
	// 3.1.1 clients always get 0x80).
	DenySubscribeCode byte
	// EnhancedAuth handles MQTT 5.0 AUTH exchanges; nil refuses a CONNECT
	// carrying an authentication method with 0x8C.
	EnhancedAuth EnhancedAuth

	MaxPacketSize  int           // largest packet accepted and sent; default 512 KiB
	MaxKeepAlive   time.Duration // longest keep alive granted to 5.0 clients (Server Keep Alive); default 10 min, <0 no limit
	ReceiveMaximum int           // QoS 1/2 publications a client may have unacknowledged toward us; default 64
	MaxInflight    int           // QoS 1/2 messages in flight toward a client; default 64
	MaxQueued      int           // messages queued per session beyond those in flight; default 1000
	// QueueQoS0 keeps QoS 0 messages for an offline persistent session
	// too, in order with the others and within MaxQueued (Mosquitto's
	// queue_qos0_messages). Off, they are not kept.
	QueueQoS0        bool
	MaxConnections   int           // concurrent connections; default 100, <0 unlimited
	MaxSessionExpiry time.Duration // longest session expiry granted (3.1.1 persistent sessions too); default 24 h, <0 no limit
	// MaxRetained bounds the retained messages held: once reached, a
	// retained message on a topic that holds none is delivered but not
	// stored (replacing and clearing always work). Clients and the
	// gateway (in process) each have a budget of this size; $SYS is not
	// limited. Default 10000, <0 no limit.
	MaxRetained int
	// MaxSubscriptions bounds one session's subscriptions: a new filter
	// beyond it gets SUBACK 0x97 (Quota exceeded; 0x80 at 3.1.1).
	// Default 1000, <0 no limit. In-process subscriptions are not counted.
	MaxSubscriptions int
	// MaxWriteBuffer bounds the bytes waiting to be written to one
	// client; QoS 0 messages beyond it are dropped. Default 64 KiB.
	MaxWriteBuffer int
	// TopicAliasMaximum is the number of topic aliases a 5.0 client may
	// use toward the server, and the most the server assigns toward a
	// client; default 16, -1 none.
	TopicAliasMaximum int

	// StateDir keeps retained messages and persistent sessions; "" keeps
	// them in memory only.
	StateDir string
	// SyncInterval is the longest time between a change and its record
	// in the journal on disk, fsynced (the loss window of a kill -9);
	// default 1 s.
	SyncInterval time.Duration
	// SysInterval is how often $SYS/broker/... statistics are published;
	// default 10 s, <0 never.
	SysInterval time.Duration

	// MaxPendingConnections bounds the connections not logged in yet
	// (TLS handshake, CONNECT, authentication), which MaxConnections no
	// longer counts: when full, the one waiting longest is closed to
	// admit a newcomer. Default 64, <0 unlimited.
	MaxPendingConnections int
	// ConnectTimeout is how long a connection has for its TLS handshake
	// and its CONNECT; default 5 s.
	ConnectTimeout time.Duration

	// Byte budgets beside the counts above (see the package
	// documentation for the memory ceiling they give).
	//
	// MaxSessionBytes bounds the bytes of one session's queued and
	// in-flight messages; beyond it messages for that session are
	// dropped (counted). Default 1 MiB, <0 no limit.
	MaxSessionBytes int64
	// MaxQueuedBytes bounds the same for all sessions together, a
	// message counted once per session holding it. Default 32 MiB, <0
	// no limit.
	MaxQueuedBytes int64
	// MaxRetainedBytes bounds the bytes of the retained messages of
	// clients, as MaxRetained bounds their number. The gateway's own
	// (published in process) have a budget of the same size of their
	// own, so clients cannot use it up; $SYS is not limited. Default
	// 8 MiB, <0 no limit.
	MaxRetainedBytes int64
	// MaxRetainedMessageBytes is the largest retained message (topic and
	// payload) of a client that is stored; a larger one is delivered
	// but not stored. Default 64 KiB, <0 no limit.
	MaxRetainedMessageBytes int64
	// MaxSessions bounds the sessions that outlive their connection
	// (persistent), connected or not: a CONNECT asking for a new one
	// beyond it is refused with 0x97 Quota exceeded (3.1.1: 3, server
	// unavailable); held sessions keep their place until they expire.
	// Default 256, <0 no limit.
	MaxSessions int

	Log *slog.Logger // nil discards
}

// Message is an application message as published in process or delivered
// to an in-process subscriber. A Message handed to Publish or to a
// Subscribe callback must not be modified afterwards: its slices are
// shared with every subscriber.
type Message struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	ResponseTopic   string
	CorrelationData []byte
	// Expiry is the MQTT 5 message expiry interval: how long the message
	// may wait for a subscriber, from Publish (or, on delivery, what is
	// left of it, at least a second). 0: never expires. Rounded down to
	// seconds on the wire.
	Expiry        time.Duration
	ContentType   string
	PayloadFormat byte // 1: payload is UTF-8
	User          []packet.UserProperty
}

// Stats are the server's counters since New.
type Stats struct {
	Clients            int   // connected clients
	Sessions           int   // sessions, connected or not
	MaxClients         int   // most clients connected at once
	MessagesReceived   int64 // PUBLISH packets received from clients and Publish calls
	MessagesSent       int64 // PUBLISH packets sent and in-process deliveries
	BytesReceived      int64
	BytesSent          int64
	Dropped            int64 // messages dropped: full session queue, full write buffer, expired
	Retained           int   // retained messages
	RetainedRefused    int64 // retained messages not stored: MaxRetained reached
	SubscribeRefused   int64 // subscriptions refused: MaxSubscriptions reached
	QueuedBytes        int64 // bytes of the sessions' queued and in-flight messages
	RetainedBytes      int64 // bytes of the clients' retained messages
	LocalRetained      int   // retained messages of the gateway's own, and $SYS
	LocalRetainedBytes int64 // their bytes
	SessionsRefused    int64 // new persistent sessions refused: MaxSessions reached
	Subscriptions      int
	Uptime             time.Duration
	ConnectionsTotal   int64
	ConnectionsRefused int64
	Denied             int64 // publications and wills refused by the ACL or for $SYS
}

// Server is an MQTT broker. Its methods are safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	anonymous bool
	auth      *authenticator
	tlsConfig *tls.Config
	start     time.Time

	subs     topic.Tree[*session, subOpts]
	retained topic.Names[*msg]
	store    *store // nil without StateDir

	// mu guards sessions, conns, listeners and closed.
	mu        sync.Mutex
	sessions  map[string]*session
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	bound     map[string]net.Listener // by Listen: "tcp", "tls", "ws"
	closed    bool

	done     chan struct{} // closed by Shutdown
	bg       sync.WaitGroup
	connWG   sync.WaitGroup
	nclients atomic.Int64
	maxCli   atomic.Int64

	msgsIn, msgsOut, bytesIn, bytesOut, dropped, connTotal, connRefused atomic.Int64
	retainRefused, subRefused                                           atomic.Int64
	denied                                                              atomic.Int64 // publications the ACL refused
	originRefused                                                       atomic.Int64 // WebSocket requests from an origin not allowed
	willRefused, ownerRefused, reservedRefused                          atomic.Int64 // CONNECTs refused (acl.go)

	health      listenerHealth
	pending     pendingConns // guarded by mu
	rbudget     retainedBudget
	queuedBytes atomic.Int64 // of every session's queued and in-flight messages
	sessRefused atomic.Int64

	matchPool sync.Pool     // *matchBuf
	shareRR   atomic.Uint32 // round-robin cursor of shared subscriptions
}

// New builds a Server from o: it loads the password and ACL files and the
// persisted state, and starts the background tasks ($SYS statistics,
// snapshots). It listens on nothing until Serve or ListenAndServe.
func New(o Options) (*Server, error) {
	o, err := withDefaults(o)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:      o,
		log:       o.Log,
		start:     time.Now(),
		sessions:  make(map[string]*session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		done:      make(chan struct{}),
	}
	s.anonymous = AnonymousAllowed(o)
	for i, origin := range o.WSAllowedOrigins {
		if !ValidOrigin(origin) {
			return nil, fmt.Errorf("broker: ws allowed origins[%d] %q: want scheme://host[:port] or *", i, origin)
		}
	}
	a, err := newAuthenticator(o)
	if err != nil {
		return nil, err
	}
	s.auth = a
	if o.TLSListen != "" || o.WSSListen != "" {
		if s.tlsConfig, err = loadTLS(o); err != nil {
			return nil, err
		}
	}
	if o.StateDir != "" {
		st, err := openStore(o.StateDir, o.Log)
		if err != nil {
			return nil, err
		}
		s.store = st
		s.restore()
		s.bg.Add(1)
		go s.syncLoop()
	}
	if o.SysInterval > 0 {
		s.bg.Add(1)
		go s.sysLoop()
	}
	if a.hasFile {
		s.bg.Add(1)
		go s.summaryLoop()
	}
	return s, nil
}

// withDefaults returns o with every option left zero set to its default
// and every option beyond what the protocol can carry brought within it;
// an option that has no sensible value is an error.
func withDefaults(o Options) (Options, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = 512 << 10
	}
	if o.MaxPacketSize > packet.MaxRemaining+5 {
		o.MaxPacketSize = packet.MaxRemaining + 5
	}
	if o.MaxKeepAlive == 0 {
		o.MaxKeepAlive = 10 * time.Minute
	}
	if o.MaxKeepAlive > 65535*time.Second {
		o.MaxKeepAlive = 65535 * time.Second
	}
	if o.ReceiveMaximum <= 0 {
		o.ReceiveMaximum = 64
	}
	o.ReceiveMaximum = min(o.ReceiveMaximum, 65535)
	if o.MaxInflight <= 0 {
		o.MaxInflight = 64
	}
	o.MaxInflight = min(o.MaxInflight, 65535)
	if o.MaxQueued == 0 {
		o.MaxQueued = 1000
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 100
	}
	if o.MaxPendingConnections == 0 {
		o.MaxPendingConnections = 64
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = connectTimeout
	}
	defBytes(&o.MaxSessionBytes, 1<<20)
	defBytes(&o.MaxQueuedBytes, 32<<20)
	defBytes(&o.MaxRetainedBytes, 8<<20)
	defBytes(&o.MaxRetainedMessageBytes, 64<<10)
	if o.MaxSessions == 0 {
		o.MaxSessions = 256
	}
	if o.MaxSessionExpiry == 0 {
		o.MaxSessionExpiry = 24 * time.Hour
	}
	if o.MaxRetained == 0 {
		o.MaxRetained = 10000
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = 1000
	}
	if o.MaxWriteBuffer <= 0 {
		o.MaxWriteBuffer = 64 << 10
	}
	switch {
	case o.TopicAliasMaximum == 0:
		o.TopicAliasMaximum = 16
	case o.TopicAliasMaximum < 0:
		o.TopicAliasMaximum = 0
	}
	o.TopicAliasMaximum = min(o.TopicAliasMaximum, 65535)
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.SysInterval == 0 {
		o.SysInterval = 10 * time.Second
	}
	switch o.DenySubscribeCode {
	case 0:
		o.DenySubscribeCode = 0x80
	case 0x80, 0x87:
	default:
		return o, fmt.Errorf("broker: deny subscribe code %#x: want 0x80 or 0x87", o.DenySubscribeCode)
	}
	return o, nil
}

// defBytes sets a byte budget left 0 to its default; a negative one
// means no limit.
func defBytes(p *int64, v int64) {
	if *p == 0 {
		*p = v
	}
}

// AnonymousAllowed reports whether a broker with options o lets clients
// without an account connect: o.AllowAnonymous, or when unset whether
// every listener is on loopback and none is a WebSocket one (where a web
// page may reach it). A WebSocket connection is anonymous only when
// AllowAnonymous says so.
func AnonymousAllowed(o Options) bool {
	if o.AllowAnonymous != nil {
		return *o.AllowAnonymous
	}
	return loopbackOnly(o.Listen, o.TLSListen, o.WSListen, o.WSSListen) && o.WSListen == "" && o.WSSListen == ""
}

// loopbackOnly reports whether every non-empty address has a loopback
// host ("localhost", 127.0.0.0/8, ::1).
func loopbackOnly(addrs ...string) bool {
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return false
		}
		if host == "localhost" {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// Serve accepts connections on l and serves each on its own goroutine
// until Shutdown is called; then it returns ErrServerClosed. A failing
// Accept is retried with back-off (see Health); Serve returns early only
// when l is closed by someone else. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if !s.trackListener(l) {
		return ErrServerClosed
	}
	defer func() {
		s.untrackListener(l)
		l.Close()
	}()
	for {
		nc, err := s.accept(l)
		if err != nil {
			if errors.Is(err, ErrServerClosed) {
				return err
			}
			s.health.stop(l, err)
			return fmt.Errorf("broker: accept: %w", err)
		}
		go s.startConn(nc)
	}
}

// trackListener registers l so that Shutdown closes it; once the server is
// closed it closes l and returns false.
func (s *Server) trackListener(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrackListener(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// ServeConn serves one client connection until it closes, then closes nc.
// Listeners of other transports (WebSocket, a TLS listener of the
// caller's) hand their connections here. A *tls.Conn is handshaken first
// and, with client certificates, its common name is the user name.
func (s *Server) ServeConn(nc net.Conn) {
	if c := s.startConn(nc); c != nil {
		<-c.done
	}
}

// startConn accepts nc: it runs the TLS handshake and CONNECT on the
// calling goroutine, then hands the connected client to a read loop of
// its own and returns it. It returns nil when the connection already
// ended.
//
// The hand-over keeps idle connections small: the handshake, CONNECT and
// authentication need a deep stack, which goes back to the runtime with
// the calling goroutine, while the read loop starts on a minimal stack
// that an idle client never grows.
func (s *Server) startConn(nc net.Conn) *conn {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	busy := s.opts.MaxConnections > 0 && s.clientsLocked() >= s.opts.MaxConnections
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	evict := s.admitPendingLocked(c)
	s.connWG.Add(1)
	s.mu.Unlock()
	if evict != nil {
		evict.nc.Close()
	}
	if busy {
		s.connRefused.Add(1)
		s.refuseBusy(c)
		s.loggedIn(c)
		c.finish()
		return nil
	}
	s.connTotal.Add(1)
	ok := c.start()
	s.loggedIn(c)
	if !ok {
		c.finish()
		return nil
	}
	go c.run()
	return c
}

// Shutdown stops accepting connections, sends every 5.0 client a
// DISCONNECT with reason 0x8B (server shutting down), closes every
// connection, writes the persistent state and stops the background tasks.
// It returns ctx.Err() if ctx ends first; the state is then still written.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for l := range s.listeners {
		l.Close()
	}
	for _, l := range s.bound {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.disconnect(packet.ServerShuttingDown, "server shutting down")
	}
	waited := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.bg.Wait()
		close(waited)
	}()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.nc.Close()
		}
	}
	if s.store != nil {
		if serr := s.closeStore(); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	nsess := len(s.sessions)
	s.mu.Unlock()
	s.rbudget.mu.Lock()
	rbytes, rlocal, rlocalBytes := s.rbudget.bytes[ownerClient], s.rbudget.count[ownerLocal], s.rbudget.bytes[ownerLocal]
	s.rbudget.mu.Unlock()
	return Stats{
		QueuedBytes:        s.queuedBytes.Load(),
		RetainedBytes:      rbytes,
		LocalRetained:      rlocal,
		LocalRetainedBytes: rlocalBytes,
		SessionsRefused:    s.sessRefused.Load(),
		Clients:            int(s.nclients.Load()),
		Sessions:           nsess,
		MaxClients:         int(s.maxCli.Load()),
		MessagesReceived:   s.msgsIn.Load(),
		MessagesSent:       s.msgsOut.Load(),
		BytesReceived:      s.bytesIn.Load(),
		BytesSent:          s.bytesOut.Load(),
		Dropped:            s.dropped.Load(),
		RetainedRefused:    s.retainRefused.Load(),
		SubscribeRefused:   s.subRefused.Load(),
		Retained:           s.retained.Len(),
		Subscriptions:      s.subs.Len(),
		Uptime:             time.Since(s.start),
		ConnectionsTotal:   s.connTotal.Load(),
		ConnectionsRefused: s.connRefused.Load(),
		Denied:             s.denied.Load(),
	}
}

// Publish publishes m into the broker as if a client had sent it, with no
// ACL check: it is the owner's door, for the gateway's own readings,
// statuses and results; messages on someone else's behalf (the cloud's)
// go through PublishAs. Retained messages are stored, and every matching
// subscriber gets a copy. It returns once the message is queued to every
// subscriber. A topic beginning with '$' is allowed.
func (s *Server) Publish(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.done:
		return ErrServerClosed
	default:
	}
	if err := topic.ValidName(m.Topic); err != nil {
		return fmt.Errorf("broker: publish %q: %w", m.Topic, err)
	}
	if m.QoS > 2 {
		return fmt.Errorf("broker: publish %q: QoS %d", m.Topic, m.QoS)
	}
	s.msgsIn.Add(1)
	x := fromMessage(m, time.Now())
	x.local = true
	s.publish(x, nil)
	return nil
}

// Subscribe calls fn with every message published to a topic matching
// filter (which may be a shared subscription "$share/group/filter"),
// delivered at QoS min(qos, published QoS) with retained messages first.
// The RETAIN flag is as published (Retain As Published [MQTT-3.3.1-13]):
// a retained message arriving live is told apart from one that is not,
// so that the gateway can refuse retained commands however they come.
// fn runs on a goroutine owned by the subscription, one message at a time
// in order; when fn falls more than 1024 messages behind, further messages
// are dropped and counted. cancel removes the subscription and waits for a
// running fn to return; it must not be called from fn.
func (s *Server) Subscribe(filter string, qos byte, fn func(Message)) (cancel func(), err error) {
	if _, _, err := topic.ParseShared(filter); err != nil {
		return nil, fmt.Errorf("broker: subscribe %q: %w", filter, err)
	}
	if qos > 2 {
		return nil, fmt.Errorf("broker: subscribe %q: QoS %d", filter, qos)
	}
	ls := newLocalSession(s, fn)
	ls.mu.Lock()
	o := subOpts{QoS: qos, RetainAsPublished: true}
	ls.addSub(filter, o)
	s.subs.Subscribe(filter, ls, o)
	s.sendRetained(ls, filter, o, true)
	ls.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.subs.Unsubscribe(filter, ls)
			ls.local.close()
		})
	}, nil
}
