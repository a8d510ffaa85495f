// Package uplink drains the outbound queue to the cloud broker over MQTT
// and brings remote commands back.
//
// An Uplink takes records from the buffer queue (alarm class first),
// decodes them (gateway.Record), maps the local topic prefix to the remote
// one and publishes them at QoS 1 or 2, keeping up to the server's Receive
// Maximum in flight. A record is acknowledged in the queue only when its
// PUBACK or PUBCOMP arrives, in whatever order they come. Across a lost
// connection the client resends what is unacknowledged itself; across a
// restart of the process the queue hands out again everything after its
// durable cursor, and a small outbox file (see outbox.go) lets the uplink
// resume QoS 2 flows with their packet identifiers and skip what the cloud
// had already acknowledged, so that a kill of the process duplicates
// nothing at QoS 2 and at most the in-flight window at QoS 1.
// With Options.Batch, telemetry goes in batches (batch.go: format v1,
// batchdrain.go: the drain), acknowledged and resumed as a whole.
//
// The uplink connects with a will ({prefix}/status, retained "offline"),
// publishes a retained "online" after each connect and, on shutdown,
// "offline" before disconnecting. It subscribes to {prefix}/cmd/# at QoS 2
// and hands each command to Options.OnCommand with its topic mapped back
// to the local prefix; [[uplink.receive]] rules hand other remote messages
// to Options.Deliver. Forward spools local messages for [[uplink.forward]].
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// Rule is one [[uplink.forward]] or [[uplink.receive]] entry: messages
// matching Filter are published with the part of their topic after the
// filter's wildcard-free prefix appended to Prefix ("" keeps the topic).
type Rule struct {
	Filter string
	Prefix string
	QoS    byte
}

// Map returns the topic a message on name gets under r.
func (r Rule) Map(name string) string {
	if r.Prefix == "" {
		return name
	}
	base := r.Filter
	if i := strings.IndexAny(base, "+#"); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimSuffix(base, "/")
	prefix := strings.TrimSuffix(r.Prefix, "/")
	if base == "" {
		return prefix + "/" + name
	}
	return prefix + strings.TrimPrefix(name, base)
}

// Options mirror the [uplink] config keys, plus what the daemon wires in.
type Options struct {
	URL      string   // mqtt://host:port or mqtts://host:port
	URLs     []string // more nodes of the same cloud, tried in turn after URL (client.Options.Addrs)
	ClientID string
	Username string
	Password []byte
	// PasswordFile, when set, holds the password on its first line.
	// It, CAFile, CertFile and KeyFile are read again before a connection
	// attempt when one of them changed: rotated credentials need no
	// restart.
	PasswordFile string
	CAFile       string
	CertFile     string
	KeyFile      string
	ServerName   string
	ALPN         []string
	QoS          byte   // 1 (default) or 2: for records that ask for QoS 0
	Protocol     string // "5" (default, with fallback to 3.1.1 when refused) or "3.1.1"
	Keepalive    time.Duration
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// ReconnectSpread spreads a fleet's reconnects (client.Options).
	ReconnectSpread time.Duration
	// SessionExpiry is how long the cloud keeps the session and the
	// commands for an offline gateway; default 24 h.
	SessionExpiry time.Duration
	// LocalPrefix is the gateway's topic prefix; TopicPrefix the remote one
	// (default LocalPrefix).
	LocalPrefix string
	TopicPrefix string
	// Receive rules: remote filter → local topic, handed to Deliver.
	Receive []Rule
	// MaxInflight caps the window below the server's Receive Maximum; 0
	// takes the server's.
	MaxInflight int
	// Batch, when set, packs records into batches ([uplink.batch]; see
	// BatchOptions); nil sends every record alone.
	Batch *BatchOptions

	// Queue is the outbound queue; required. The uplink is its only
	// consumer.
	Queue *buffer.Queue
	// StateDir holds the outbox and the client's QoS 2 receive state
	// ("uplink.outbox", "uplink.rx"); "" keeps them in memory.
	StateDir string
	// OnCommand receives each remote command once (QoS 2), with its topic
	// under LocalPrefix, its MQTT 5 response topic, correlation data and
	// message expiry, and Time set to its arrival. It is called from the
	// connection's reader and must not block.
	OnCommand func(gateway.Record)
	// Deliver publishes a message matched by a Receive rule into the local
	// broker; it must not block.
	Deliver func(gateway.Record)
	Log     *slog.Logger
	// Dialer replaces the TCP dialer (tests: fault-injecting proxies).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Budget is the monthly data budget; its MonthStartDay also starts
	// the meter's month. See Usage for what is counted.
	Budget Budget
	// MeterSync is the longest time between writes of the day and month
	// totals to StateDir ("uplink.meter"); default 1 min. They are also
	// written when Run returns.
	MeterSync time.Duration

	now func() time.Time // tests; default time.Now
}

// Status is the uplink's state for health and metrics.
type Status struct {
	Connected  bool
	LastError  string
	Sent       int64 // publishes written, resends included
	Acked      int64 // records acknowledged by the cloud
	InFlight   int
	QueueDepth int
	Expired    int64 // records whose message expiry passed in the queue
	Rejected   int64 // records the cloud refused (negative PUBACK/PUBREC) or would not take (too large)
	Malformed  int64 // records that did not decode
	Commands   int64 // commands received
	// Server is the address of the current (or last) connection.
	Server string
	// Protocol is "5.0" or "3.1.1", ProtocolReason why 3.1.1 when the
	// protocol was negotiated.
	Protocol       string
	ProtocolReason string
	// MaxQoS is the highest QoS records go out with: the configured qos,
	// lowered to what the cloud takes; QoSReason says why it is lower.
	MaxQoS    byte
	QoSReason string
	// Downgraded counts records asked at QoS 2 and delivered at QoS 1
	// (at least once) because the cloud takes no QoS 2.
	Downgraded int64
	Thinned    int64 // telemetry records kept back by the budget since start
	Meter      MeterStatus
	Budget     BudgetStatus
}

// Uplink drains the queue to the cloud. See the package documentation.
type Uplink struct {
	o       Options
	log     *slog.Logger
	addr    string
	classes []string
	copts   client.Options

	meter  *meter
	budget *budget

	// mu guards cl.
	mu sync.Mutex
	cl *client.Client

	acked, expired, rejected, malformed, commands, thinned atomic.Int64
	downgraded                                             atomic.Int64 // see Status.Downgraded
}

// New checks o; Run connects.
func New(o Options) (*Uplink, error) {
	var errs []error
	if o.Queue == nil {
		errs = append(errs, errors.New("queue: required"))
	}
	addrs, tlsOn, err := parseURLs(o.URL, o.URLs)
	if err != nil {
		errs = append(errs, err)
	}
	addr := ""
	if len(addrs) > 0 {
		addr = addrs[0]
	}
	if o.QoS == 0 {
		o.QoS = 1
	}
	if o.QoS > 2 {
		errs = append(errs, fmt.Errorf("qos: %d: want 1 or 2", o.QoS))
	}
	var v packet.Version
	switch o.Protocol {
	case "", "5", "5.0":
	case "3.1.1", "4":
		v = packet.V311
	default:
		errs = append(errs, fmt.Errorf("protocol: %q: want 5 or 3.1.1", o.Protocol))
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = o.LocalPrefix
	}
	if topic.ValidName(o.TopicPrefix+"/status") != nil {
		errs = append(errs, fmt.Errorf("topic_prefix: %q: invalid", o.TopicPrefix))
	}
	for i, r := range o.Receive {
		if topic.ValidFilter(r.Filter) != nil {
			errs = append(errs, fmt.Errorf("receive[%d].filter: %q: invalid", i, r.Filter))
		}
	}
	if o.Batch != nil {
		b := *o.Batch
		errs = append(errs, b.check()...)
		o.Batch = &b
	}
	if o.SessionExpiry == 0 {
		o.SessionExpiry = 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Budget.MonthStartDay == 0 {
		o.Budget.MonthStartDay = 1
	}
	if o.Budget.MonthStartDay < 1 || o.Budget.MonthStartDay > 28 {
		errs = append(errs, fmt.Errorf("budget.month_start_day: %d outside 1..28", o.Budget.MonthStartDay))
	}
	if o.Budget.Monthly < 0 {
		errs = append(errs, fmt.Errorf("budget.monthly: %d: negative", o.Budget.Monthly))
	}
	if o.Keepalive == 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.MeterSync <= 0 {
		o.MeterSync = time.Minute
	}
	if o.now == nil {
		o.now = time.Now
	}
	creds := &credFiles{password: o.Password, passwordFile: o.PasswordFile, tls: tlsOn,
		ca: o.CAFile, cert: o.CertFile, key: o.KeyFile, serverName: o.ServerName, alpn: o.ALPN, log: o.Log}
	// The files must load at start; later changes that do not load keep
	// the previous credentials.
	first, err := creds.get()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	up := &Uplink{o: o, log: o.Log, addr: addr}
	if up.meter, err = openMeter(o.StateDir, o.Budget.MonthStartDay, o.MeterSync, o.now, o.Log); err != nil {
		return nil, err
	}
	up.budget = newBudget(o.Budget, up.meter, o.now, o.Log)
	for _, c := range o.Queue.Stats().Classes {
		up.classes = append(up.classes, c.Name)
	}
	rx := ""
	if o.StateDir != "" {
		rx = filepath.Join(o.StateDir, "uplink.rx")
	}
	up.copts = client.Options{
		Addr: addr, TLS: first.TLS, GetCredentials: creds.get, Dialer: o.Dialer, Version: v,
		ClientID: o.ClientID, Username: o.Username,
		SessionExpiry: o.SessionExpiry, KeepAlive: o.Keepalive,
		ReconnectMin: o.ReconnectMin, ReconnectMax: o.ReconnectMax, ReconnectSpread: o.ReconnectSpread,
		MaxInflight: o.MaxInflight, TopicAliases: true, StateFile: rx,
		Will:      &client.Will{Topic: o.TopicPrefix + "/status", Payload: []byte("offline"), QoS: 1, Retain: true},
		OnMessage: up.onMessage,
		Log:       o.Log,
	}
	up.copts.Addrs = addrs[min(1, len(addrs)):]
	return up, nil
}

// Status returns the uplink's counters and state.
func (u *Uplink) Status() Status {
	s := Status{Acked: u.acked.Load(), Expired: u.expired.Load(), Rejected: u.rejected.Load(),
		Malformed: u.malformed.Load(), Commands: u.commands.Load(), QueueDepth: u.o.Queue.Len(),
		Thinned: u.thinned.Load(), Meter: u.meter.status(), Budget: u.budget.status()}
	s.MaxQoS, s.Downgraded = u.o.QoS, u.downgraded.Load()
	u.mu.Lock()
	cl := u.cl
	u.mu.Unlock()
	if cl != nil {
		cs := cl.Status()
		s.Connected, s.Sent, s.InFlight = cs.Connected, cs.Sent, cs.Inflight
		u.negotiated(&s, cs)
		if cs.LastError != nil {
			s.LastError = cs.LastError.Error()
		}
	}
	return s
}

type key struct {
	class int
	seq   uint64
}

// Run drains the queue until ctx is done, then publishes "offline",
// disconnects and returns ctx.Err(). It fails only when the state files
// cannot be opened. Run may be called again after it returned.
func (u *Uplink) Run(ctx context.Context) error {
	var obPath string
	if u.o.StateDir != "" {
		obPath = filepath.Join(u.o.StateDir, "uplink.outbox")
	}
	ob, err := openOutbox(obPath, u.classes)
	if err != nil {
		return err
	}
	copts := u.copts
	copts.OnConnect = u.onConnect
	cl, err := client.New(copts)
	if err != nil {
		ob.close()
		return fmt.Errorf("uplink: %w", err)
	}
	u.mu.Lock()
	u.cl = cl
	u.mu.Unlock()
	u.meter.attach(cl)
	mctx, stopMeter := context.WithCancel(context.Background())
	var mwg sync.WaitGroup
	mwg.Go(func() { u.runMeter(mctx) })

	// obMu guards ob against the client's callbacks after shutdown.
	var obMu sync.Mutex
	obOpen := true
	d := &drain{u: u, cl: cl, ob: ob, obMu: &obMu, obOpen: &obOpen, resume: map[key]slot{},
		wake: make(chan struct{}, 1)}
	d.receivedHook = d.received
	// The identifiers of an earlier process's flows are reserved before
	// the client can hand any out (to SUBSCRIBE or the status message).
	ends := d.recover()

	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { cl.Run(cctx) })
	switch err = d.endAll(ctx, ends); {
	case err != nil:
	case u.o.Batch != nil:
		err = d.runBatched(ctx)
	default:
		err = d.run(ctx)
	}

	if cl.Status().Connected {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		cl.Publish(octx, client.Message{Topic: u.o.TopicPrefix + "/status", Payload: []byte("offline"), QoS: 1, Retain: true, Class: classStatus})
		cancel()
	}
	cl.Close() // DISCONNECT, then pending flows fail with ErrClosed
	stop()
	wg.Wait()
	stopMeter()
	mwg.Wait()
	u.meter.attach(nil)
	if merr := u.meter.tick(true); merr != nil {
		u.log.Warn("cannot write the meter file", "err", merr)
	}
	obMu.Lock()
	obOpen = false
	ob.close()
	obMu.Unlock()
	return err
}

// drain is one Run's consumer state.
//
// Records are published by one of two hands in turn, so that they leave
// in queue order. The drain goroutine (run) waits for records and
// publishes them while the window has room. When it is full, run parks
// the record and hands over to the acknowledgements: each Done hook,
// running on the client's reader, refills the freed slot from the queue
// (feed), and the reader writes those publishes out with its next write.
// A window of acknowledgements thus costs the reader's wake and nothing
// else. When the queue runs dry feed hands back to run.
type drain struct {
	u      *Uplink
	cl     *client.Client
	ob     *outbox
	obMu   *sync.Mutex
	obOpen *bool

	ctx  context.Context // run's, for feed
	wake chan struct{}   // cap 1: feeding ended

	// fm guards feeding, parked, isParked and err, and serialises the two
	// hands: whichever publishes also owns resume and the queue's read
	// position (q.Next, q.TryNext).
	fm       sync.Mutex
	feeding  bool // the Done hooks publish; run waits on wake
	parked   buffer.Record
	isParked bool         // parked holds a record read and not yet sent
	err      error        // feed's failure, for run to return
	resume   map[key]slot // flows of an earlier process, by record

	flights      sync.Pool        // of *flight, for send
	receivedHook func(pid uint16) // d.received, bound once
}

func (d *drain) run(ctx context.Context) error {
	q := d.u.o.Queue
	d.ctx = ctx
	fail := func(err error) error { return stopped(ctx, err) }
	for {
		d.fm.Lock()
		parked, isParked, err := d.parked, d.isParked, d.err
		d.parked, d.isParked = buffer.Record{}, false
		resume := len(d.resume) > 0
		d.fm.Unlock()
		if err != nil {
			if !d.later(ctx, err) {
				return fail(err)
			}
			d.fm.Lock()
			d.err = nil
			d.parked, d.isParked = parked, isParked // feed parked its record
			d.fm.Unlock()
			continue
		}
		var r buffer.Record
		if isParked {
			r = parked
		} else if r, err = q.Next(ctx); err != nil {
			return fail(fmt.Errorf("uplink: queue: %w", err))
		}
		if resume {
			// Resuming an earlier process's flows may wait for slots
			// and identifiers: not from the reader.
			if _, err := d.send(ctx, r, true); err != nil {
				if !d.later(ctx, err) {
					return fail(err)
				}
				d.fm.Lock()
				d.parked, d.isParked = r, true
				d.fm.Unlock()
			}
			continue
		}
		d.fm.Lock()
		sent, err := d.send(ctx, r, false)
		if err == nil && !sent || isRetry(err) {
			d.parked, d.isParked = r, true
			d.feeding = err == nil
		}
		d.fm.Unlock()
		if err != nil {
			if !d.later(ctx, err) {
				return fail(err)
			}
			continue
		}
		if sent {
			continue
		}
		select {
		case <-d.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// feed refills the window after an acknowledgement freed a slot, while
// run has handed over. It runs in a Done hook, on the client's reader.
func (d *drain) feed() {
	d.fm.Lock()
	defer d.fm.Unlock()
	for d.feeding {
		var rec buffer.Record
		switch {
		case d.ctx.Err() != nil:
			return // shutting down: run is gone
		case len(d.resume) > 0:
			d.handBack(nil)
			return
		case d.isParked:
			rec = d.parked
		default:
			r, ok, err := d.u.o.Queue.TryNext()
			if err != nil || !ok {
				d.handBack(err)
				return
			}
			rec = r
		}
		sent, err := d.send(d.ctx, rec, false)
		if err != nil {
			if isRetry(err) {
				d.parked, d.isParked = rec, true // run tries it again
			}
			d.handBack(err)
			return
		}
		if !sent {
			d.parked, d.isParked = rec, true
			return
		}
		d.parked, d.isParked = buffer.Record{}, false
	}
}

// handBack gives the publishing back to run, with fm held.
func (d *drain) handBack(err error) {
	d.feeding = false
	if err != nil {
		d.err = fmt.Errorf("uplink: %w", err)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// recover sorts the outbox's slots from an earlier process and reserves
// their identifiers: flows whose record is still queued wait in d.resume
// for it; the others are returned, to be ended.
func (d *drain) recover() (ends []slot) {
	d.u.o.Queue.Rewind()
	st := d.u.o.Queue.Stats()
	for _, s := range d.ob.slots() {
		d.cl.Reserve(s.id)
		cs := st.Classes[s.class]
		if s.seq <= cs.Cursor || s.seq >= cs.NextSeq || d.ob.completed(s.class, s.seq) {
			ends = append(ends, s)
			continue
		}
		d.resume[key{s.class, s.seq}] = s
	}
	return ends
}

// endAll ends the flows recover returned, before the drain starts.
func (d *drain) endAll(ctx context.Context, ends []slot) error {
	for _, s := range ends {
		if err := d.end(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// stopped returns ctx's error once the drain's ctx is done, else err.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// end finishes an earlier process's flow whose record will not be sent.
func (d *drain) end(ctx context.Context, s slot) error {
	if s.qos != 2 {
		d.cl.Unreserve(s.id)
		d.obMu.Lock()
		d.ob.free(s.id)
		d.obMu.Unlock()
		return nil
	}
	return d.cl.Release(ctx, s.id, func(err error) {
		if err == nil {
			d.obMu.Lock()
			if *d.obOpen {
				d.ob.free(s.id)
			}
			d.obMu.Unlock()
		}
	})
}

// decode decodes rec into r and returns its class's index; -1 when rec
// does not decode, having counted it and acknowledged it in the queue
// (the error is the queue's).
func (d *drain) decode(rec buffer.Record, r *gateway.Record) (int, error) {
	ci := slices.Index(d.u.classes, rec.Class)
	if err := r.UnmarshalBinary(rec.Data); err != nil || ci < 0 {
		if d.u.malformed.Add(1) == 1 {
			d.u.log.Warn("dropping undecodable queue record", "class", rec.Class, "seq", rec.Seq, "err", err)
		}
		return -1, d.u.o.Queue.Ack(rec.Class, rec.Seq)
	}
	return ci, nil
}

// received is a flow's Received hook: the PUBREC of pid, kept in the
// outbox while it is open.
func (d *drain) received(pid uint16) {
	d.obMu.Lock()
	if *d.obOpen {
		d.ob.received(pid)
	}
	d.obMu.Unlock()
}

// send publishes rec, or acknowledges it in the queue when it is not to
// be sent. Without wait it returns false, having done nothing, while the
// window is full. Without wait, fm is held.
func (d *drain) send(ctx context.Context, rec buffer.Record, wait bool) (bool, error) {
	u := d.u
	q := u.o.Queue
	var r gateway.Record
	ci, err := d.decode(rec, &r)
	if ci < 0 {
		return true, err
	}
	left, alive := r.Remaining(time.Now())
	if !alive {
		u.expired.Add(1)
		return true, q.Ack(rec.Class, rec.Seq)
	}
	d.obMu.Lock()
	done := d.ob.completed(ci, rec.Seq)
	d.obMu.Unlock()
	if done {
		// Acknowledged by the cloud after the queue last wrote its cursor.
		return true, q.Ack(rec.Class, rec.Seq)
	}
	if !d.resuming(ci, rec.Seq) && u.thin(rec.Class, &r) {
		return true, q.Ack(rec.Class, rec.Seq)
	}
	m := client.Message{Topic: u.remote(r.Topic), Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		Expiry: left, ResponseTopic: r.ResponseTopic, CorrelationData: r.CorrelationData, Class: rec.Class}
	m.QoS = u.qosFor(r.QoS, d.cl)
	var f client.Flow
	var resumed *slot // the earlier process's flow this publish resumes
	if len(d.resume) > 0 {
		k := key{ci, rec.Seq}
		if s, ok := d.resume[k]; ok {
			delete(d.resume, k)
			f.ID, f.Released = s.id, s.state == slotReceived
			m.QoS = s.qos
			resumed = &s
		}
		// Flows of this class for records before this one are gone
		// (dropped from the queue meanwhile).
		for k, s := range d.resume {
			if k.class == ci && k.seq < rec.Seq {
				delete(d.resume, k)
				if err := d.end(ctx, s); err != nil {
					return false, err
				}
			}
		}
	}
	fl := d.newFlight()
	fl.id, fl.ci, fl.class, fl.seq, fl.qos, fl.asked, fl.remote = f.ID, ci, rec.Class, rec.Seq, m.QoS, r.QoS, m.Topic
	f.Start, f.Received, f.Done = fl.start, d.receivedHook, fl.done
	var sent bool
	if wait {
		sent, err = true, d.cl.PublishFlow(ctx, m, f)
	} else {
		sent, err = d.cl.TryPublishFlow(m, f)
	}
	var started uint16 // set by Start for a new flow that then failed
	if err != nil || !sent {
		// The flow did not start: no hook is kept, fl is ours again.
		started = fl.id
		d.flights.Put(fl)
	}
	if err != nil {
		if f.ID == 0 && started != 0 {
			// Start recorded a flow that failed before it went out.
			d.obMu.Lock()
			if *d.obOpen {
				d.ob.free(started)
			}
			d.obMu.Unlock()
		}
		if ctx.Err() != nil {
			return false, err
		}
		if !unpublishable(err) {
			// The client could not take it now: the record stays
			// queued and is tried again (never acknowledged unsent),
			// resuming the same flow if it was one.
			if resumed != nil {
				d.resume[key{ci, rec.Seq}] = *resumed
			}
			return false, &retryError{err}
		}
		// Not publishable (a topic the remote prefix made invalid, too
		// large for the server): it never will be.
		if u.rejected.Add(1) == 1 {
			u.log.Warn("cannot publish queue record", "topic", m.Topic, "err", err)
		}
		return true, q.Ack(rec.Class, rec.Seq)
	}
	return sent, nil
}

// unpublishable reports whether err says a message can never be
// published as it is: the queue record is then acknowledged and counted
// rejected. Any other error leaves the record queued.
func unpublishable(err error) bool {
	var refused *client.RefusedError
	return errors.Is(err, client.ErrInvalidMessage) || errors.Is(err, client.ErrTooLarge) || errors.As(err, &refused)
}

// retryError is a publish that failed for now: the record is tried again
// after retryPause.
type retryError struct{ err error }

func (e *retryError) Error() string { return "uplink: publish, to try again: " + e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func isRetry(err error) bool {
	var re *retryError
	return errors.As(err, &re)
}

// retryPause is the wait before a record whose publish failed for now is
// tried again.
const retryPause = time.Second

// later waits retryPause when err is a retryError and reports whether the
// drain goes on (false: err ends it, or ctx ended).
func (d *drain) later(ctx context.Context, err error) bool {
	if !isRetry(err) {
		return false
	}
	d.u.log.Warn("publish failed, trying again", "err", err, "backoff", retryPause)
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// resuming reports whether an earlier process's flow waits for the record:
// the server may hold it already, so it is not thinned.
func (d *drain) resuming(class int, seq uint64) bool {
	if len(d.resume) == 0 {
		return false
	}
	_, ok := d.resume[key{class, seq}]
	return ok
}

// DefaultKeepalive is the MQTT keepalive when Options.Keepalive is zero.
// Cellular carriers' NATs drop a TCP flow idle for 30 to 120 s: a PINGREQ
// after 25 s of silence keeps the shortest of them open, and costs nothing
// while data flows, as a ping goes only on a quiet link. With the client's
// ping timeout of half the keepalive, a link that vanished without a reset
// is found within 1.5 × 25 s + 1 s (see client.Options.KeepAlive), after
// which the client reconnects with backoff.
const DefaultKeepalive = 25 * time.Second

// classStatus is the meter's class of the uplink's own online/offline
// messages.
const classStatus = "status"

// runMeter samples the client's traffic once a second, for the budget,
// and writes the meter file every MeterSync, until ctx is done.
func (u *Uplink) runMeter(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := u.meter.tick(false)
		if err != nil && !failing {
			u.log.Warn("cannot write the meter file", "err", err)
		}
		failing = err != nil
	}
}

// remote maps a local topic to the remote prefix.
func (u *Uplink) remote(t string) string {
	lp, rp := u.o.LocalPrefix, u.o.TopicPrefix
	if lp == rp || lp == "" {
		return t
	}
	if t == lp {
		return rp
	}
	if rest, ok := strings.CutPrefix(t, lp+"/"); ok {
		return rp + "/" + rest
	}
	return t
}

// local maps a remote topic under the remote prefix to the local one.
func (u *Uplink) local(t string) string {
	lp, rp := u.o.LocalPrefix, u.o.TopicPrefix
	if lp == rp {
		return t
	}
	if rest, ok := strings.CutPrefix(t, rp+"/"); ok {
		return lp + "/" + rest
	}
	return t
}

// onConnect announces the gateway online and subscribes.
func (u *Uplink) onConnect(ctx context.Context, present bool) {
	u.mu.Lock()
	cl := u.cl
	u.mu.Unlock()
	if cl == nil {
		return
	}
	subs := []client.Subscription{{Filter: u.o.TopicPrefix + "/cmd/#", QoS: 2, NoLocal: true, RetainHandling: 1}}
	for _, r := range u.o.Receive {
		subs = append(subs, client.Subscription{Filter: r.Filter, QoS: r.QoS, NoLocal: true, RetainHandling: 1})
	}
	if _, err := cl.Subscribe(ctx, subs...); err != nil && ctx.Err() == nil {
		u.log.Warn("subscribe failed", "err", err)
	}
	cl.PublishAsync(ctx, client.Message{Topic: u.o.TopicPrefix + "/status", Payload: []byte("online"), QoS: 1, Retain: true, Class: classStatus}, nil)
}

func (u *Uplink) onMessage(m client.Message) {
	if topic.Match(u.o.TopicPrefix+"/cmd/+/+", m.Topic) {
		u.commands.Add(1)
		if u.o.OnCommand != nil {
			u.o.OnCommand(recordOf(m, u.local(m.Topic), m.QoS))
		}
		return
	}
	for _, r := range u.o.Receive {
		if topic.Match(r.Filter, m.Topic) {
			if u.o.Deliver != nil {
				u.o.Deliver(recordOf(m, r.Map(m.Topic), r.QoS))
			}
			return
		}
	}
}

// Forward subscribes to the local broker for each [[uplink.forward]] rule
// and spools every matching message, its topic mapped by the rule, into
// the queue's telemetry class at the rule's QoS, for the uplink to send.
// cancel ends every subscription.
func Forward(sub gateway.Subscriber, spool gateway.Spool, rules []Rule, log *slog.Logger) (cancel func(), err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cancels []func()
	cancel = func() {
		for _, c := range cancels {
			c()
		}
	}
	var failed atomic.Bool
	for i, r := range rules {
		if topic.ValidFilter(r.Filter) != nil {
			cancel()
			return nil, fmt.Errorf("uplink: forward[%d].filter: %q: invalid", i, r.Filter)
		}
		c, err := sub.Subscribe(r.Filter, r.QoS, func(m gateway.Record) {
			m.Topic = r.Map(m.Topic)
			m.QoS = r.QoS
			if m.Time.IsZero() {
				m.Time = time.Now().UTC()
			}
			b, err := m.MarshalBinary()
			if err == nil {
				_, err = spool.Put(gateway.ClassTelemetry, b)
			}
			if err != nil && failed.CompareAndSwap(false, true) {
				log.Warn("forward: cannot spool", "topic", m.Topic, "err", err)
			} else if err == nil {
				failed.Store(false)
			}
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("uplink: forward %q: %w", r.Filter, err)
		}
		cancels = append(cancels, c)
	}
	return cancel, nil
}
