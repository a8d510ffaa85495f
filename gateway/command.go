package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw/drivers"
)

// Command result statuses.
const (
	StatusDone     = "done"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
	StatusFailed   = "failed"
)

// Result is the JSON answer to a command, sent on
// {prefix}/cmd/{device}/{command}/result and to the MQTT 5 response topic.
type Result struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	TS     string `json:"ts"`
}

// CommandPolicy bounds the commands a Gateway accepts, whichever way they
// come in (config [commands]). Zero fields take the defaults.
type CommandPolicy struct {
	// AllowNoExpiry accepts remote commands (Command) without an
	// expires_at; local ones (from the local broker, whose ACL names who
	// may send them) may always leave it out.
	AllowNoExpiry bool
	// MaxExpiry is the furthest expires_at accepted, counted from arrival;
	// default 24h. The id of an applied command is remembered this long,
	// so that a replay is answered with the first result, not applied.
	MaxExpiry time.Duration
	// MaxPayload bounds a command's payload in bytes; default 4096.
	MaxPayload int
	// MaxIDs and MaxIDBytes bound the remembered ids; defaults 10000 and
	// 1 MiB. When both the count and the bytes of ids not yet MaxExpiry
	// old are at the limit, commands are refused until one ages out:
	// forgetting an id early would let its command be replayed.
	MaxIDs     int
	MaxIDBytes int
}

// Defaults of CommandPolicy.
const (
	DefaultCommandMaxExpiry  = 24 * time.Hour
	DefaultCommandMaxPayload = 4 << 10
	DefaultCommandMaxIDs     = 10000
	DefaultCommandMaxIDBytes = 1 << 20
)

func (p CommandPolicy) withDefaults() CommandPolicy {
	if p.MaxExpiry <= 0 {
		p.MaxExpiry = DefaultCommandMaxExpiry
	}
	if p.MaxPayload <= 0 {
		p.MaxPayload = DefaultCommandMaxPayload
	}
	if p.MaxIDs <= 0 {
		p.MaxIDs = DefaultCommandMaxIDs
	}
	if p.MaxIDBytes <= 0 {
		p.MaxIDBytes = DefaultCommandMaxIDBytes
	}
	return p
}

// commandMsg is the payload of a command.
type commandMsg struct {
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
	ExpiresAt *time.Time      `json:"expires_at"`
}

// maxIDLen bounds a command id in bytes.
const maxIDLen = 128

// decodeCommand decodes a command payload of at most maxPayload bytes: a
// JSON object whose id is 1 to maxIDLen bytes of UTF-8 without control
// characters and whose expires_at, if present, is an RFC 3339 time. The
// value is checked later against the command's rule.
func decodeCommand(payload []byte, maxPayload int) (commandMsg, error) {
	var msg commandMsg
	if len(payload) > maxPayload {
		return msg, fmt.Errorf("payload of %d bytes over the limit of %d", len(payload), maxPayload)
	}
	if !utf8.Valid(payload) {
		// JSON is UTF-8 (RFC 8259 section 8.1); encoding/json would
		// quietly replace the bad bytes.
		return msg, errors.New("payload is not UTF-8")
	}
	if err := json.Unmarshal(payload, &msg); err != nil {
		return commandMsg{}, fmt.Errorf("payload is not a command object: %v", err)
	}
	if err := validID(msg.ID); err != nil {
		return commandMsg{}, err
	}
	return msg, nil
}

func validID(id string) error {
	if id == "" || len(id) > maxIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("id must be 1 to %d bytes of UTF-8", maxIDLen)
	}
	for _, r := range id {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return errors.New("id must not contain control characters")
		}
	}
	return nil
}

// checkExpiry checks a command's expires_at against the policy at now:
// status is "" when it passes.
func checkExpiry(msg commandMsg, now time.Time, remote bool, p CommandPolicy) (status string, err error) {
	switch {
	case msg.ExpiresAt == nil && remote && !p.AllowNoExpiry:
		return StatusRejected, errors.New("expires_at required ([commands] allow_no_expiry is off)")
	case msg.ExpiresAt == nil:
		return "", nil
	case !now.Before(*msg.ExpiresAt):
		return StatusExpired, fmt.Errorf("expired at %s", msg.ExpiresAt.UTC().Format(time.RFC3339))
	case msg.ExpiresAt.After(now.Add(p.MaxExpiry)):
		return StatusRejected, fmt.Errorf("expires_at %s is more than %v ahead", msg.ExpiresAt.UTC().Format(time.RFC3339), p.MaxExpiry)
	}
	return "", nil
}

// Commands is the one way in for commands, whichever door they come by: a
// client of the local broker (Subscribe), the cloud through the uplink
// (Remote) or a user of the web console (Console). Every command passes
// the same steps, in this order:
//
//  1. Who sent it. A local client met the broker's ACL when it published
//     (upstream); a console user meets the same ACL here (MayPublish); a
//     remote command comes from the cloud account the uplink logged in as.
//  2. The swap lock. A command runs on the gateway current when it got in
//     and finishes on it, with its actuators: Hold waits for the commands
//     running and keeps new ones waiting until Release, so that a reload
//     swaps the gateway between commands, never under one.
//  3. The gateway's gate (Gateway.command): retained, payload bounds, id,
//     device and command, replayed id, expiry (expires_at and the MQTT 5
//     message expiry), value, interlocks and rate limit, then the actuator
//     with the deadline in its context, and the result.
//
// Local commands may leave expires_at out; remote and console ones need
// it unless [commands] allow_no_expiry. Safe for concurrent use.
type Commands struct {
	o    CommandOptions
	swap swapLock

	// mu guards closed and unsubscribe, and orders running.Add before
	// Close's Wait.
	mu          sync.Mutex
	closed      bool
	unsubscribe func()
	running     sync.WaitGroup // commands being handled, until Close
}

// CommandOptions configure Commands.
type CommandOptions struct {
	// Prefix is the local topic prefix: commands arrive on
	// {prefix}/cmd/{device}/{command}.
	Prefix string
	// Gateway returns the gateway commands go to; it is called under the
	// swap lock, so a command keeps the gateway it got.
	Gateway func() *Gateway
	// MayPublish is the broker's ACL: whether user may publish on topic.
	// A console command meets it as if its user published the command;
	// nil refuses every console command.
	MayPublish func(user, topic string) bool
	Log        *slog.Logger
}

// commandBound bounds handling a command that came asynchronously (local
// or remote); its rule's timeout bounds the actuator.
const commandBound = time.Minute

// NewCommands returns the way in for commands, open.
func NewCommands(o CommandOptions) *Commands {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Commands{o: o, swap: swapLock{turn: make(chan struct{}, 1)}}
}

// Subscribe takes the commands of the local broker's clients
// ({prefix}/cmd/+/+, QoS 2) from s until Close; call it once. Each is
// handled in its own goroutine: the broker's delivery is not held for it.
func (c *Commands) Subscribe(s Subscriber) error {
	cancel, err := s.Subscribe(c.o.Prefix+"/cmd/+/+", 2, func(m Record) { c.async(m, true) })
	if err != nil {
		return fmt.Errorf("gateway: subscribe to commands: %w", err)
	}
	c.mu.Lock()
	c.unsubscribe = cancel
	c.mu.Unlock()
	return nil
}

// Remote takes a command that came from the cloud through the uplink,
// without blocking the uplink's reader; Close waits for it, so that its
// result is spooled before the uplink stops. See Gateway.command for what
// m holds.
func (c *Commands) Remote(m Record) { c.async(m, false) }

// Console applies a command of a console user and returns its result. The
// user meets the broker's ACL for the command topic first; the command
// then meets the remote policy (expires_at required unless allowed).
func (c *Commands) Console(ctx context.Context, user, device, name string, payload []byte) Result {
	topic := c.o.Prefix + "/cmd/" + device + "/" + name
	if c.o.MayPublish == nil || !c.o.MayPublish(user, topic) {
		c.o.Log.Warn("console command not authorized", "user", user, "topic", topic)
		return Result{Status: StatusRejected, Error: "not authorized: the broker's ACL does not let " + user + " publish " + topic}
	}
	if c.track() {
		defer c.running.Done()
	}
	return c.handle(ctx, Record{Topic: topic, Payload: payload, QoS: 1, Time: time.Now()}, false)
}

// Hold waits for the commands running to finish and keeps new ones
// waiting, until Release: the gateway can be swapped.
func (c *Commands) Hold() { c.swap.lock() }

// Release lets the waiting commands in, to the gateway current now.
func (c *Commands) Release() { c.swap.unlock() }

// Close stops taking local commands and waits for the commands being
// handled. A command that comes after (the uplink still reading) is
// handled at once, in the caller.
func (c *Commands) Close() {
	c.mu.Lock()
	c.closed = true
	unsubscribe := c.unsubscribe
	c.unsubscribe = nil
	c.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
	}
	c.running.Wait()
}

// track counts a command as running, unless Close was called.
func (c *Commands) track() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.running.Add(1)
	return true
}

// async handles m in its own goroutine, or in the caller once closed.
func (c *Commands) async(m Record, local bool) {
	run := func() {
		ctx, cancel := context.WithTimeout(context.Background(), commandBound)
		defer cancel()
		c.handle(ctx, m, local)
	}
	if !c.track() {
		run()
		return
	}
	go func() {
		defer c.running.Done()
		run()
	}()
}

// handle is the single entry: every command, whichever way it came, is
// handled here, under the swap lock, by the current gateway's gate.
func (c *Commands) handle(ctx context.Context, m Record, local bool) Result {
	c.swap.enter()
	defer c.swap.leave()
	return c.o.Gateway().command(ctx, m, local)
}

// swapLock is a readers-writer lock whose waits are channel and WaitGroup
// waits: commands share it (enter, leave), swapping the gateway takes it
// alone (lock, unlock). Commands pass through turn on their way in, so a
// waiting swap keeps new ones out. The zero value is not usable: make turn
// with capacity 1.
type swapLock struct {
	turn chan struct{} // held by the swap
	cmds sync.WaitGroup
}

func (l *swapLock) enter() {
	l.turn <- struct{}{}
	l.cmds.Add(1) // never while lock waits: both hold turn
	<-l.turn
}

func (l *swapLock) leave() { l.cmds.Done() }

func (l *swapLock) lock() {
	l.turn <- struct{}{}
	l.cmds.Wait()
}

func (l *swapLock) unlock() { <-l.turn }

type command struct {
	CommandRule
	// mu serialises handling this command, from looking its id up to
	// storing its result, and guards last: a repeated id waits for the
	// first to finish and gets its result.
	mu   sync.Mutex
	last time.Time // when it was last applied (rate limit)
}

// command is the gate of one gateway, where every command ends up through
// Commands: m.Topic ends in cmd/{device}/{command} (the prefix before it
// may be the local or the remote one); m.Payload is the command JSON;
// m.Time is when it was received and m.Expiry its remaining MQTT 5 message
// expiry (zero: none); m.Retain says it was a retained message, which is
// never applied. local says it came from the local broker, whose ACL
// already named who may send it and where its response topic lives. The
// result is published locally and spooled to the alarm class, on the
// result topic and, if m has one, on its response topic with its
// correlation data. command returns once the command is finished.
func (g *Gateway) command(ctx context.Context, m Record, local bool) Result {
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	levels := strings.Split(m.Topic, "/")
	if len(levels) < 3 || levels[len(levels)-3] != "cmd" {
		g.log.Warn("command on a malformed topic dropped", "topic", m.Topic)
		return Result{Status: StatusRejected, Error: "malformed topic"}
	}
	device, name := levels[len(levels)-2], levels[len(levels)-1]
	if len(m.Payload) == 0 {
		// A retained command being cleared (by the gateway itself or
		// its sender): nothing to apply and nobody to answer.
		g.log.Debug("empty command ignored", "topic", m.Topic)
		return Result{Status: StatusRejected, Error: "empty payload"}
	}
	if m.Retain {
		return g.retained(device, name, m, local)
	}
	res, id, dup := g.decide(ctx, device, name, m, !local)
	if dup {
		g.log.Info("command repeated, first result sent again", "device", device, "command", name, "id", id, "status", res.Status)
		g.publishResult(device, name, res, m, local)
		return res
	}
	if res.TS == "" {
		res.TS = time.Now().UTC().Format(time.RFC3339Nano)
	}
	g.finish(device, name, res, m, local)
	return res
}

// retained refuses a retained command: a retained message is delivered
// again to every new subscription, so after a reload or a restart it
// would be applied again. A local one is cleared at the broker (an empty
// retained message on its topic); a remote one must be cleared by its
// sender. Each is logged once per process.
func (g *Gateway) retained(device, name string, m Record, local bool) Result {
	var id string
	if msg, err := decodeCommand(m.Payload, g.policy.MaxPayload); err == nil {
		id = msg.ID
	}
	res := Result{ID: id, Status: StatusRejected, Error: "retained command not applied"}
	cleared := false
	if local && g.d.Publisher != nil {
		// In-process, as the broker itself: an empty retained message
		// removes the stored one.
		err := g.d.Publisher.Publish(context.Background(), Record{Topic: m.Topic, QoS: 1, Retain: true, Time: time.Now().UTC()})
		if err != nil {
			g.log.Error("retained command not cleared", "topic", m.Topic, "err", err)
		} else {
			cleared = true
			res.Error += "; cleared"
		}
	}
	if !g.cmds.firstRetained(m.Topic, m.Payload) {
		return res
	}
	g.log.Warn("retained command not applied", "device", device, "command", name, "id", id, "local", local, "cleared", cleared)
	res.TS = time.Now().UTC().Format(time.RFC3339Nano)
	g.finish(device, name, res, m, local)
	return res
}

// decide checks and applies a command. For an id applied before on the
// same device and command it returns the first result and dup. An id is
// remembered only once every check passed: a refused command can be sent
// again with the same id.
func (g *Gateway) decide(ctx context.Context, device, name string, m Record, remote bool) (res Result, id string, dup bool) {
	msg, err := decodeCommand(m.Payload, g.policy.MaxPayload)
	if err != nil {
		return g.reject(device, name, "", StatusRejected, "%v", err), "", false
	}
	id = msg.ID
	rt := g.routes[device]
	if rt == nil {
		return g.reject(device, name, id, StatusRejected, "unknown device %q", device), id, false
	}
	cmd := rt.cmds[name]
	if cmd == nil {
		return g.reject(device, name, id, StatusRejected, "device %q has no command %q", device, name), id, false
	}
	key := device + "/" + name
	cmd.mu.Lock()
	defer cmd.mu.Unlock()
	now := time.Now()
	if first, ok := g.cmds.lookup(key, id, now); ok {
		return first, id, true
	}
	value, status, err := g.check(cmd, msg, m, now, remote)
	if err == nil {
		err = g.cmds.claim(key, id, now)
	}
	if err != nil {
		return g.reject(device, name, id, cmp.Or(status, StatusRejected), "%v", err), id, false
	}
	defer func() {
		res.TS = time.Now().UTC().Format(time.RFC3339Nano)
		g.cmds.done(key, id, res)
	}()
	return g.run(ctx, device, id, cmd, value, msg.ExpiresAt, now), id, false
}

// check checks a command against the policy and its rule at now, and
// returns its value. On a refusal status is the result's status (""
// meaning rejected).
func (g *Gateway) check(cmd *command, msg commandMsg, m Record, now time.Time, remote bool) (value any, status string, err error) {
	if status, err := checkExpiry(msg, now, remote, g.policy); err != nil {
		return nil, status, err
	}
	if _, alive := m.Remaining(now); !alive {
		return nil, StatusExpired, errors.New("MQTT message expiry elapsed")
	}
	value, err = cmd.value(msg.Value)
	if err != nil {
		return nil, "", fmt.Errorf("value: %w", err)
	}
	if err := g.interlocks(cmd.Require, now); err != nil {
		return nil, "", fmt.Errorf("interlock: %w", err)
	}
	if !cmd.last.IsZero() && now.Sub(cmd.last) < cmd.RateLimit {
		return nil, "", fmt.Errorf("rate limited: one per %v", cmd.RateLimit)
	}
	return value, "", nil
}

// run applies a checked and claimed command, within its timeout and
// expires_at, and arms or cancels its auto-off. cmd.mu is held.
func (g *Gateway) run(ctx context.Context, device, id string, cmd *command, value any, expiresAt *time.Time, now time.Time) Result {
	deadline := now.Add(cmd.Timeout)
	if expiresAt != nil && expiresAt.Before(deadline) {
		deadline = *expiresAt
	}
	if err := g.apply(ctx, device, cmd, value, deadline); err != nil {
		return g.reject(device, cmd.Name, id, StatusFailed, "%v", err)
	}
	cmd.last = now
	g.log.Info("command applied", "device", device, "command", cmd.Name, "id", id, "value", value)
	if cmd.AutoOff > 0 {
		if value == true {
			// The gateway's context, not the command's: the heater
			// switches off long after the command returned.
			g.cmds.scheduleAutoOff(g.life, g, device, cmd.Name, now.Add(cmd.AutoOff))
		} else {
			g.cmds.cancelAutoOff(device, cmd.Name)
		}
	}
	return Result{ID: id, Status: StatusDone}
}

func (g *Gateway) reject(device, name, id, status, format string, args ...any) Result {
	res := Result{ID: id, Status: status, Error: fmt.Sprintf(format, args...)}
	g.log.Warn("command "+status, "device", device, "command", name, "id", id, "err", res.Error)
	return res
}

// apply sets value through the actuator within deadline. When the rule
// asks to verify, the actuator reads the value back in Set (the driver
// knows how): one that cannot read back fails the command.
func (g *Gateway) apply(ctx context.Context, device string, cmd *command, value any, deadline time.Time) error {
	if g.d.Actuator == nil {
		return errors.New("device has no actuator")
	}
	act, ok := g.d.Actuator(device)
	if !ok {
		return errors.New("device offline")
	}
	if _, ok := act.(drivers.StateReader); cmd.Verify && !ok {
		return errors.New("verify: device cannot read its state back")
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := act.Set(ctx, drivers.Command{Device: device, Command: cmd.Name, Value: value, Verify: cmd.Verify}); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint16:
		return float64(x), true
	}
	return 0, false
}

// value checks a command value against the rule and returns it as bool,
// float64 or string.
func (c *command) value(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch c.Type {
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s is not a bool", raw)
		}
		return b, nil
	case "number":
		f, ok := v.(float64)
		if !ok {
			return nil, fmt.Errorf("%s is not a number", raw)
		}
		if c.Min != nil && f < *c.Min || c.Max != nil && f > *c.Max {
			return nil, fmt.Errorf("%v outside %s..%s", f, bound(c.Min), bound(c.Max))
		}
		return f, nil
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s is not a string", raw)
		}
		if len(c.Values) > 0 && !slices.Contains(c.Values, s) {
			return nil, fmt.Errorf("%q not one of %s", s, strings.Join(c.Values, ", "))
		}
		return s, nil
	}
	return nil, fmt.Errorf("command type %q", c.Type)
}

func bound(p *float64) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(*p)
}

// interlocks checks that every required reading is current and true. A
// reading is current while its device is online: pollers report by
// exception, so an unchanged value may be old and still true. Before a
// device's status is known, a reading older than 3 poll periods (at least
// 30 s) is not trusted.
func (g *Gateway) interlocks(req []string, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, key := range req {
		r, ok := g.latest[key]
		if !ok {
			return fmt.Errorf("%s not known yet", key)
		}
		dev, _, _ := strings.Cut(key, ".")
		limit := 30 * time.Second
		if rt := g.routes[dev]; rt != nil {
			limit = max(limit, 3*rt.Interval)
		}
		online, known := g.status[dev]
		switch {
		case known && !online:
			return fmt.Errorf("%s: device %s is offline", key, dev)
		case qualityOf(r) != drivers.Good:
			return fmt.Errorf("%s is %s", key, qualityOf(r))
		case !known && !r.Time.IsZero() && now.Sub(r.Time) > limit:
			return fmt.Errorf("%s is older than %v", key, limit)
		case !truthy(r.Value):
			return fmt.Errorf("%s is %v", key, r.Value)
		}
	}
	return nil
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x != "" && x != "false" && x != "0"
	case nil:
		return false
	}
	f, ok := toFloat(v)
	return ok && f != 0
}

// finish counts a result and sends it.
func (g *Gateway) finish(device, name string, res Result, m Record, local bool) {
	switch res.Status {
	case StatusDone:
		g.stats.CmdDone.Add(1)
	case StatusRejected:
		g.stats.CmdRejected.Add(1)
	case StatusExpired:
		g.stats.CmdExpired.Add(1)
	default:
		g.stats.CmdFailed.Add(1)
	}
	g.publishResult(device, name, res, m, local)
}

// publishResult sends res on the result topic (locally and to the cloud)
// and on the command's response topic where it came from.
func (g *Gateway) publishResult(device, name string, res Result, m Record, local bool) {
	payload, _ := json.Marshal(res)
	now := time.Now().UTC()
	r := Record{Topic: g.d.Prefix + "/cmd/" + device + "/" + name + "/result", Payload: payload, QoS: g.d.QoS, Time: now}
	g.send(r, ClassAlarm)
	if m.ResponseTopic == "" {
		return
	}
	resp := Record{Topic: m.ResponseTopic, Payload: payload, QoS: g.d.QoS, Time: now, CorrelationData: m.CorrelationData}
	if local {
		if g.d.Publisher != nil {
			if err := g.d.Publisher.Publish(context.Background(), resp); err != nil {
				g.stats.PublishFails.Add(1)
			}
		}
		return
	}
	g.spool(resp, ClassAlarm)
}

// commandLog remembers the ids of applied commands with their first
// result, and pending auto-off deadlines, in {state_dir}/commands.log (see
// commandjournal.go), so
// that a command sent again (redelivered after a restart, or replayed) is
// not applied twice and a heater still turns itself off.
//
// An id is remembered per device and command, from when it was claimed
// until MaxExpiry later: longer than any accepted expires_at, after which a
// replay is refused as expired anyway. Ids are never forgotten early; when
// the count or bytes bound is reached, claim refuses instead.
type commandLog struct {
	path string
	log  *slog.Logger
	p    CommandPolicy

	// autoOffs counts the auto-offs being applied; Add only under mu and
	// before stopped.
	autoOffs sync.WaitGroup

	// mu guards everything below.
	mu       sync.Mutex
	f        *os.File // the journal, open for appends
	snapshot int      // bytes of the journal at its last compaction
	written  int      // bytes of the journal now
	state    logState
	index    map[idKey]*logEntry
	bytes    int                    // sum of entrySize over state.IDs
	timers   map[string]*time.Timer // device/command → auto-off
	stopped  bool
	retained map[[sha256.Size]byte]bool // retained commands already logged
}

type logState struct {
	IDs     []*logEntry          `json:"ids"`
	AutoOff map[string]time.Time `json:"auto_off"` // device/command → when
}

type logEntry struct {
	ID  string    `json:"id"`
	Key string    `json:"key"` // device/command
	At  time.Time `json:"at"`
	// Until is when the id may be forgotten; a file written before it
	// existed gets At + MaxExpiry.
	Until  time.Time `json:"until"`
	Result *Result   `json:"result"` // nil while applying
}

type idKey struct{ key, id string }

// entrySize is what an entry is counted for against MaxIDBytes: its
// strings and a fixed overhead for the rest.
func entrySize(e *logEntry) int {
	n := 128 + len(e.ID) + len(e.Key)
	if e.Result != nil {
		n += len(e.Result.ID) + len(e.Result.Status) + len(e.Result.Error) + len(e.Result.TS)
	}
	return n
}

// maxRetainedLogged bounds the retained commands remembered as logged.
const maxRetainedLogged = 256

func openCommandLog(dir string, p CommandPolicy, log *slog.Logger) (*commandLog, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &commandLog{
		log:      log,
		p:        p.withDefaults(),
		timers:   map[string]*time.Timer{},
		retained: map[[sha256.Size]byte]bool{},
	}
	if err := l.openJournal(dir, time.Now()); err != nil {
		return nil, err
	}
	return l, nil
}

// load replaces the state with b, a whole state as commands.json held it
// (none: empty).
func (l *commandLog) load(b []byte, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state = logState{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &l.state); err != nil {
			// Replaced atomically, so only a damaged disk gets here; the
			// gateway still starts.
			l.log.Error("command log unreadable, starting empty", "err", err)
			l.state = logState{}
		}
	}
	l.loadLocked(now)
}

// loadLocked rebuilds the index from a decoded state: it drops malformed
// and repeated entries, keeps the newest within the bounds, and marks a
// command that was being applied when the process died as failed: it may
// or may not have moved the actuator, and is not applied again.
func (l *commandLog) loadLocked(now time.Time) {
	if l.state.AutoOff == nil {
		l.state.AutoOff = map[string]time.Time{}
	}
	l.index = map[idKey]*logEntry{}
	l.bytes = 0
	var kept []*logEntry
	for i := len(l.state.IDs) - 1; i >= 0; i-- {
		e := l.state.IDs[i]
		if e == nil || validID(e.ID) != nil || e.Key == "" {
			continue
		}
		if e.Until.IsZero() {
			e.Until = e.At.Add(l.p.MaxExpiry)
		}
		k := idKey{e.Key, e.ID}
		if l.index[k] != nil || !now.Before(e.Until) {
			continue
		}
		if e.Result == nil {
			e.Result = &Result{ID: e.ID, Status: StatusFailed, Error: "gateway restarted while applying", TS: e.At.UTC().Format(time.RFC3339Nano)}
		}
		if len(kept) >= l.p.MaxIDs || l.bytes+entrySize(e) > l.p.MaxIDBytes {
			l.log.Warn("command log over its bounds, oldest ids dropped", "kept", len(kept))
			break
		}
		l.index[k] = e
		l.bytes += entrySize(e)
		kept = append(kept, e)
	}
	slices.Reverse(kept)
	l.state.IDs = kept
}

// lookup returns the result of id on key if it was applied and is still
// remembered at now.
func (l *commandLog) lookup(key, id string, now time.Time) (Result, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.index[idKey{key, id}]
	if e == nil || !now.Before(e.Until) {
		return Result{}, false
	}
	if e.Result == nil {
		// Not reached: claim and done run under the command's mutex,
		// which lookup's caller holds.
		return Result{ID: id, Status: StatusFailed, Error: "being applied"}, true
	}
	return *e.Result, true
}

// ErrCommandLogFull is why a command is refused while the remembered ids
// are at their bounds.
var ErrCommandLogFull = errors.New("gateway: too many recent command ids remembered; try again later")

// claim remembers id on key as being applied from now on, saved before the
// actuator moves. It forgets the ids whose time is up first, and refuses
// with ErrCommandLogFull when the bounds still do not allow one more.
func (l *commandLog) claim(key, id string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	e := &logEntry{ID: id, Key: key, At: now, Until: now.Add(l.p.MaxExpiry)}
	// The result, once stored, counts too: reserve room for it (done
	// keeps it within resultRoom).
	size := entrySize(e) + len(id) + resultRoom
	if len(l.state.IDs) >= l.p.MaxIDs || l.bytes+size > l.p.MaxIDBytes {
		return ErrCommandLogFull
	}
	if old := l.index[idKey{key, id}]; old != nil {
		l.removeLocked(old)
	}
	if err := l.appendLocked(journalRec{Entry: e}); err != nil {
		// Not durable: after a crash the command could be applied again.
		return err
	}
	l.state.IDs = append(l.state.IDs, e)
	l.index[idKey{key, id}] = e
	l.bytes += entrySize(e)
	return nil
}

// pruneLocked forgets the ids whose time is up.
func (l *commandLog) pruneLocked(now time.Time) {
	ids := l.state.IDs[:0]
	for _, e := range l.state.IDs {
		if now.Before(e.Until) {
			ids = append(ids, e)
			continue
		}
		delete(l.index, idKey{e.Key, e.ID})
		l.bytes -= entrySize(e)
	}
	clear(l.state.IDs[len(ids):])
	l.state.IDs = ids
}

func (l *commandLog) removeLocked(e *logEntry) {
	l.state.IDs = slices.DeleteFunc(l.state.IDs, func(x *logEntry) bool { return x == e })
	delete(l.index, idKey{e.Key, e.ID})
	l.bytes -= entrySize(e)
}

// done stores the result of a claimed id.
func (l *commandLog) done(key, id string, res Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.index[idKey{key, id}]
	if e == nil {
		return
	}
	l.bytes -= entrySize(e)
	// The copy kept for a replay fits the room claim reserved: a long
	// error (a driver's, say) is cut short there, not in the answer.
	res.Error = truncateUTF8(res.Error, resultRoom-len(res.Status)-len(res.TS))
	e.Result = &res
	l.bytes += entrySize(e)
	l.saveLocked(journalRec{Entry: e})
}

// resultRoom is the room claim reserves for a result's status, error and
// time, beyond its id.
const resultRoom = 256

// truncateUTF8 cuts s to at most n bytes, on a character boundary, ending
// with "…" when it cut.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	n -= len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:max(n, 0)] + ellipsis
}

// firstRetained reports whether the retained command m on topic is seen
// for the first time by this process (it is logged only then).
func (l *commandLog) firstRetained(topic string, payload []byte) bool {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retained[sum] {
		return false
	}
	if len(l.retained) >= maxRetainedLogged {
		clear(l.retained)
	}
	l.retained[sum] = true
	return true
}

func (l *commandLog) scheduleAutoOff(ctx context.Context, g *Gateway, device, name string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := device + "/" + name
	l.state.AutoOff[key] = at
	l.saveLocked(journalRec{AutoOff: &autoOffRec{Key: key, At: at}})
	l.armLocked(ctx, g, key, at)
}

func (l *commandLog) armLocked(ctx context.Context, g *Gateway, key string, at time.Time) {
	if l.stopped {
		return
	}
	if t := l.timers[key]; t != nil {
		t.Stop()
	}
	l.timers[key] = time.AfterFunc(time.Until(at), func() {
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return
		}
		l.autoOffs.Add(1) // never after stop: Gateway.Run waits for them
		l.mu.Unlock()
		defer l.autoOffs.Done()
		g.autoOff(ctx, key, at)
	})
}

func (l *commandLog) cancelAutoOff(device, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := device + "/" + name
	if t := l.timers[key]; t != nil {
		t.Stop()
		delete(l.timers, key)
	}
	if _, ok := l.state.AutoOff[key]; ok {
		delete(l.state.AutoOff, key)
		l.saveLocked(journalRec{AutoOff: &autoOffRec{Key: key}})
	}
}

// resumeAutoOff arms the auto-off deadlines saved before a restart; a
// deadline already past fires at once.
func (l *commandLog) resumeAutoOff(ctx context.Context, g *Gateway) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, at := range l.state.AutoOff {
		l.armLocked(ctx, g, key, at)
	}
}

// stop cancels the timers; saved deadlines stay for the next start.
func (l *commandLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for k, t := range l.timers {
		t.Stop()
		delete(l.timers, k)
	}
}

func (l *commandLog) close() error { return l.closeJournal() }

// autoOff sets a bool command back to false once its time is up. If the
// device is down it is retried a few times, then given up and logged.
func (g *Gateway) autoOff(ctx context.Context, key string, at time.Time) {
	device, name, _ := strings.Cut(key, "/")
	rt := g.routes[device]
	var cmd *command
	if rt != nil {
		cmd = rt.cmds[name]
	}
	res := Result{ID: "auto_off", Status: StatusDone}
	if cmd == nil {
		res = Result{ID: "auto_off", Status: StatusFailed, Error: "command no longer configured"}
	} else {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			cmd.mu.Lock()
			err = g.apply(ctx, device, cmd, false, time.Now().Add(cmd.Timeout))
			cmd.mu.Unlock()
			if err == nil || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * time.Second):
			}
		}
		if err != nil {
			res = Result{ID: "auto_off", Status: StatusFailed, Error: err.Error()}
		}
	}
	if ctx.Err() != nil {
		return // shutting down: the deadline stays saved
	}
	g.cmds.mu.Lock()
	if g.cmds.state.AutoOff[key].Equal(at) {
		delete(g.cmds.state.AutoOff, key)
		delete(g.cmds.timers, key)
		g.cmds.saveLocked(journalRec{AutoOff: &autoOffRec{Key: key}})
	}
	g.cmds.mu.Unlock()
	if res.Status == StatusDone {
		g.log.Info("auto-off applied", "device", device, "command", name)
	} else {
		g.log.Error("auto-off failed", "device", device, "command", name, "err", res.Error)
	}
	res.TS = time.Now().UTC().Format(time.RFC3339Nano)
	g.publishResult(device, name, res, Record{}, false)
}
