package gateway

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// Queue classes of the outbound queue the gateway writes.
const (
	ClassAlarm     = "alarm"     // alarms, device status, command results: sent first
	ClassTelemetry = "telemetry" // readings
)

// Publisher publishes into the local broker, without a socket. The daemon
// adapts the broker's in-process API to it.
type Publisher interface {
	Publish(ctx context.Context, m Record) error
}

// Spool appends an encoded Record to a class of the outbound queue and
// returns once the queue accepted it. *buffer.Queue satisfies it.
type Spool interface {
	Put(class string, rec []byte) (uint64, error)
}

// Subscriber subscribes to the local broker with a callback, without a
// socket. fn is called for each matching message and must not block long.
type Subscriber interface {
	Subscribe(filter string, qos byte, fn func(Record)) (cancel func(), err error)
}

// Deps are what a Gateway uses. Nil interfaces are left out: a gateway
// without a Spool only publishes locally.
type Deps struct {
	// Prefix is the expanded topic prefix ("vehicles/WVW123").
	Prefix string
	// StateDir keeps the per-device sequence numbers and recent command
	// ids; it must exist.
	StateDir  string
	Publisher Publisher
	Spool     Spool
	// Actuator returns the built actuator of a device, if it is up.
	Actuator func(device string) (drivers.Actuator, bool)
	// Backlog yields, oldest first, the telemetry records the Spool holds
	// from queue sequence number from on, with their sequence numbers.
	// New reads it once, from just past the point up to which the saved
	// sequence numbers are known complete, to recover the numbers of
	// records spooled but not yet saved when the process died: only the
	// tail written since the last save, not the whole backlog.
	Backlog func(from uint64) iter.Seq2[uint64, []byte]
	// TelemetryNext is the Spool's next sequence number of the telemetry
	// class when it was opened: every record numbered below it was
	// written. New uses it to forget the numbers of records a killed
	// process had handed to the queue but the queue had not written yet.
	// Zero: not known.
	TelemetryNext uint64
	// QoS of spooled records (the uplink's qos); default 1.
	QoS byte
	// Commands bounds the commands accepted (config [commands]).
	Commands CommandPolicy
	// Latest are readings known before New, from the Latest of the
	// gateway a reload replaces, so that interlocks can be checked
	// before the devices are read again. They pass an interlock only
	// while fresh (see Route.Interval), as the device's status is not
	// known yet.
	Latest []drivers.Reading
	Log    *slog.Logger
}

// Route is one device's routing and command policy.
type Route struct {
	Device   string
	Interval time.Duration // poll period; readings older than 3 periods (at least 30s) fail an interlock
	Commands []CommandRule
}

// CommandRule says what a remote command may do (config [[device.command]]).
type CommandRule struct {
	Name      string
	Type      string // bool | number | string
	Min, Max  *float64
	Values    []string
	Require   []string // "device.point" readings that must be true / non-zero
	AutoOff   time.Duration
	Verify    bool
	RateLimit time.Duration
	Timeout   time.Duration
}

// Gateway routes readings to the local broker and the queue, and commands
// to actuators. Its methods are safe for concurrent use.
type Gateway struct {
	d      Deps
	log    *slog.Logger
	routes map[string]*route
	seqs   *seqFile
	cmds   *commandLog
	policy CommandPolicy

	stats Stats

	// life is done once Run returns; auto-off timers run under it.
	life     context.Context
	stopLife context.CancelFunc

	// mu guards latest and status.
	mu     sync.Mutex
	latest map[string]drivers.Reading // "device.point" → last reading
	status map[string]bool            // device → online

	// errMu guards spoolErr, the last spool failure logged.
	errMu    sync.Mutex
	spoolErr bool
}

type route struct {
	Route
	cmds map[string]*command
	// mu serialises this device's messages so that seq order is queue
	// order, and guards seq.
	mu  sync.Mutex
	seq uint64 // last used
}

// Stats are the gateway's counters, read with Load.
type Stats struct {
	Readings     atomic.Int64
	Messages     atomic.Int64 // telemetry messages
	Alarms       atomic.Int64
	SpoolErrors  atomic.Int64
	PublishFails atomic.Int64
	// Commands by outcome.
	CmdDone, CmdRejected, CmdExpired, CmdFailed atomic.Int64
}

// New builds a Gateway: it loads the sequence numbers and recent command
// ids from StateDir and recovers sequence numbers from the Backlog.
func New(d Deps, routes []Route) (*Gateway, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.QoS == 0 {
		d.QoS = 1
	}
	if err := topic.ValidName(d.Prefix); err != nil || d.Prefix == "" {
		return nil, fmt.Errorf("gateway: prefix %q: %v", d.Prefix, err)
	}
	if d.StateDir == "" {
		return nil, errors.New("gateway: no state directory")
	}
	g := &Gateway{
		d:      d,
		log:    d.Log,
		routes: make(map[string]*route),
		latest: make(map[string]drivers.Reading, len(d.Latest)),
		status: make(map[string]bool),
		policy: d.Commands.withDefaults(),
	}
	g.life, g.stopLife = context.WithCancel(context.Background())
	for _, r := range d.Latest {
		g.latest[r.Device+"."+r.Point] = r
	}
	g.d.Latest = nil
	for _, r := range routes {
		rt := &route{Route: r, cmds: make(map[string]*command)}
		for _, c := range r.Commands {
			rt.cmds[c.Name] = &command{CommandRule: c}
		}
		g.routes[r.Device] = rt
	}
	var err error
	if g.seqs, err = openSeqFile(d.StateDir); err != nil {
		return nil, err
	}
	if d.TelemetryNext != 0 {
		g.seqs.recover(d.TelemetryNext)
	}
	if d.Backlog != nil {
		g.recoverSeqs(d.Backlog(g.seqs.complete() + 1))
	}
	if d.TelemetryNext != 0 {
		// Every record below TelemetryNext is accounted for now; the
		// queue numbers the next ones from there.
		g.seqs.restart(d.TelemetryNext - 1)
	}
	for name, rt := range g.routes {
		rt.seq = g.seqs.get(name)
	}
	if g.cmds, err = openCommandLog(d.StateDir, g.policy, g.log); err != nil {
		g.seqs.close()
		return nil, err
	}
	return g, nil
}

// Latest returns the last reading of every point, for the Deps of the
// gateway a reload builds.
func (g *Gateway) Latest() []drivers.Reading {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := make([]drivers.Reading, 0, len(g.latest))
	for _, r := range g.latest {
		rs = append(rs, r)
	}
	return rs
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

// recoverSeqs raises each device's sequence number to the highest one found
// in the telemetry backlog: a record spooled just before a crash, whose
// number was not yet saved, must not be numbered again.
func (g *Gateway) recoverSeqs(backlog iter.Seq2[uint64, []byte]) {
	prefix := g.d.Prefix + "/telemetry/"
	highest := map[string]seqPair{}
	for q, b := range backlog {
		var r Record
		if r.UnmarshalBinary(b) != nil {
			continue
		}
		dev, ok := strings.CutPrefix(r.Topic, prefix)
		if !ok || strings.Contains(dev, "/") {
			continue
		}
		if seq, ok := payloadSeq(r.Payload); ok && seq > highest[dev].n {
			highest[dev] = seqPair{seq, q}
		}
	}
	for dev, p := range highest {
		if p.n > g.seqs.get(dev) {
			g.seqs.set(dev, p.n, p.q)
		}
	}
}

// Run runs the auto-off timers, those saved before a restart too, until
// ctx is done; then it cancels them and saves the state. Commands reach the
// gateway through Commands: stop it only while they are held
// (Commands.Hold) or after Commands.Close, so that none is being applied.
// Readings may be passed to Emit before and while Run runs.
func (g *Gateway) Run(ctx context.Context) error {
	g.cmds.resumeAutoOff(g.life, g)
	<-ctx.Done()
	g.stopLife()
	g.cmds.stop()
	// An auto-off moving its actuator finishes (its context is done)
	// before the devices may be closed.
	g.cmds.autoOffs.Wait()
	return errors.Join(g.seqs.close(), g.cmds.close())
}

// DeviceStatus reports a device going online or offline: retained status
// on {prefix}/devices/{device}/status, and the alarm
// {prefix}/alarm/{device}/offline raised when it goes offline and cleared
// when it comes back.
func (g *Gateway) DeviceStatus(device string, online bool) {
	g.mu.Lock()
	was, known := g.status[device]
	g.status[device] = online
	g.mu.Unlock()
	if known && was == online {
		return
	}
	now := time.Now().UTC()
	status := "offline"
	if online {
		status = "online"
	}
	payload := fmt.Appendf(nil, `{"status":%q,"ts":%q}`, status, now.Format(time.RFC3339Nano))
	g.send(Record{Topic: g.d.Prefix + "/devices/" + device + "/status", Payload: payload, QoS: g.d.QoS, Retain: true, Time: now}, ClassAlarm)
	if !online || known {
		g.Emit([]drivers.Reading{{Device: device, Point: "offline", Value: !online, Time: now, Quality: drivers.Good, Alarm: true}})
	}
}

// send publishes m locally and spools it to class.
func (g *Gateway) send(m Record, class string) {
	if g.d.Publisher != nil {
		if err := g.d.Publisher.Publish(context.Background(), m); err != nil {
			g.stats.PublishFails.Add(1)
		}
	}
	g.spool(m, class)
}

// spool appends m to class and returns its queue sequence number (0
// without a Spool) and whether the queue took it.
func (g *Gateway) spool(m Record, class string) (uint64, bool) {
	if g.d.Spool == nil {
		return 0, true
	}
	// The uplink decides the QoS when it sends the record, from its
	// configuration then and what the cloud takes: 0 asks for its qos.
	m.QoS = 0
	b, err := m.MarshalBinary()
	var q uint64
	if err == nil {
		q, err = g.d.Spool.Put(class, b)
	}
	g.errMu.Lock()
	defer g.errMu.Unlock()
	if err != nil {
		g.stats.SpoolErrors.Add(1)
		if !g.spoolErr {
			g.log.Error("queue refused records", "topic", m.Topic, "err", err)
		}
		g.spoolErr = true
		return 0, false
	}
	if g.spoolErr {
		g.log.Info("queue accepts records again")
		g.spoolErr = false
	}
	return q, true
}
