package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

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

// commandMsg is the payload of a command.
type commandMsg struct {
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
	ExpiresAt *time.Time      `json:"expires_at"`
}

type command struct {
	CommandRule
	// mu serialises applying this command and guards last.
	mu   sync.Mutex
	last time.Time // when it was last applied (rate limit)
}

// Command handles a command that came from the cloud through the uplink.
// m.Topic ends in cmd/{device}/{command} (the prefix before it may be the
// local or the remote one); m.Payload is the command JSON; m.Time is when
// it was received and m.Expiry its remaining MQTT 5 message expiry (zero:
// none). The result is published locally and spooled to the alarm class,
// on the result topic and, if m has one, on its response topic with its
// correlation data. Command returns once the command is finished.
func (g *Gateway) Command(ctx context.Context, m Record) Result {
	return g.command(ctx, m, false)
}

// command handles a command; local says it came from the local broker,
// where its response topic lives.
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
	var msg commandMsg
	res, dup := g.decide(ctx, device, name, m, &msg)
	if dup {
		g.log.Info("command repeated, first result sent again", "device", device, "command", name, "id", msg.ID, "status", res.Status)
		g.publishResult(device, name, res, m, local)
		return res
	}
	res.TS = time.Now().UTC().Format(time.RFC3339Nano)
	g.finish(device, name, msg.ID, res, m, local)
	return res
}

// decide checks and applies a command. For an id seen before it returns
// the first result and dup.
func (g *Gateway) decide(ctx context.Context, device, name string, m Record, msg *commandMsg) (res Result, dup bool) {
	if err := json.Unmarshal(m.Payload, msg); err != nil {
		return g.reject(device, name, "", StatusRejected, "payload is not a command object: %v", err), false
	}
	if msg.ID == "" || len(msg.ID) > 128 {
		return g.reject(device, name, "", StatusRejected, "id must be 1 to 128 characters"), false
	}
	key := device + "/" + name
	if first, dup := g.cmds.claim(ctx, msg.ID, key); dup {
		return first, true
	}
	rt := g.routes[device]
	if rt == nil {
		return g.reject(device, name, msg.ID, StatusRejected, "unknown device %q", device), false
	}
	cmd := rt.cmds[name]
	if cmd == nil {
		return g.reject(device, name, msg.ID, StatusRejected, "device %q has no command %q", device, name), false
	}
	now := time.Now()
	if msg.ExpiresAt != nil && !now.Before(*msg.ExpiresAt) {
		return g.reject(device, name, msg.ID, StatusExpired, "expired at %s", msg.ExpiresAt.UTC().Format(time.RFC3339)), false
	}
	if _, alive := m.Remaining(now); !alive {
		return g.reject(device, name, msg.ID, StatusExpired, "MQTT message expiry elapsed"), false
	}
	value, err := cmd.value(msg.Value)
	if err != nil {
		return g.reject(device, name, msg.ID, StatusRejected, "value: %v", err), false
	}
	if err := g.interlocks(cmd.Require, now); err != nil {
		return g.reject(device, name, msg.ID, StatusRejected, "interlock: %v", err), false
	}
	cmd.mu.Lock()
	defer cmd.mu.Unlock()
	if !cmd.last.IsZero() && now.Sub(cmd.last) < cmd.RateLimit {
		return g.reject(device, name, msg.ID, StatusRejected, "rate limited: one per %v", cmd.RateLimit), false
	}
	deadline := now.Add(cmd.Timeout)
	if msg.ExpiresAt != nil && msg.ExpiresAt.Before(deadline) {
		deadline = *msg.ExpiresAt
	}
	if err := g.apply(ctx, device, cmd, value, deadline); err != nil {
		return g.reject(device, name, msg.ID, StatusFailed, "%v", err), false
	}
	cmd.last = now
	g.log.Info("command applied", "device", device, "command", name, "id", msg.ID, "value", value)
	if cmd.AutoOff > 0 {
		if value == true {
			g.cmds.scheduleAutoOff(ctx, g, device, name, now.Add(cmd.AutoOff))
		} else {
			g.cmds.cancelAutoOff(device, name)
		}
	}
	return Result{ID: msg.ID, Status: StatusDone}, false
}

func (g *Gateway) reject(device, name, id, status, format string, args ...any) Result {
	res := Result{ID: id, Status: status, Error: fmt.Sprintf(format, args...)}
	g.log.Warn("command "+status, "device", device, "command", name, "id", id, "err", res.Error)
	return res
}

// apply sets value through the actuator within deadline, and reads it
// back when the rule asks.
func (g *Gateway) apply(ctx context.Context, device string, cmd *command, value any, deadline time.Time) error {
	if g.d.Actuator == nil {
		return errors.New("device has no actuator")
	}
	act, ok := g.d.Actuator(device)
	if !ok {
		return errors.New("device offline")
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := act.Set(ctx, drivers.Command{Device: device, Command: cmd.Name, Value: value, Deadline: deadline}); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	if !cmd.Verify {
		return nil
	}
	sr, ok := act.(drivers.StateReader)
	if !ok {
		return errors.New("verify: device cannot read its state back")
	}
	got, err := sr.State(ctx, cmd.Name)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !sameValue(got, value) {
		return fmt.Errorf("verify: device reports %v, want %v", got, value)
	}
	return nil
}

func sameValue(a, b any) bool {
	fa, aok := toFloat(a)
	fb, bok := toFloat(b)
	if aok && bok {
		return fa == fb
	}
	return a == b
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

// finish records the result of id and sends it.
func (g *Gateway) finish(device, name, id string, res Result, m Record, local bool) {
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
	if id != "" {
		g.cmds.done(id, res)
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

// commandLog remembers recent command ids with their first result, and
// pending auto-off deadlines, in {state_dir}/commands.json, so that a
// command redelivered after a restart is not applied twice and a heater
// still turns itself off.
type commandLog struct {
	path string
	log  *slog.Logger

	// mu guards everything below.
	mu      sync.Mutex
	state   logState
	waiters map[string]chan struct{} // ids being applied
	timers  map[string]*time.Timer   // device/command → auto-off
	stopped bool
}

type logState struct {
	IDs     []logEntry         `json:"ids"`
	AutoOff map[string]logTime `json:"auto_off"` // device/command → when
}

type logEntry struct {
	ID     string    `json:"id"`
	Key    string    `json:"key"`
	At     time.Time `json:"at"`
	Result *Result   `json:"result"` // nil while applying
}

type logTime = time.Time

// Bounds of the remembered ids.
const (
	maxIDs = 1000
	idTTL  = 7 * 24 * time.Hour
)

func openCommandLog(dir string, log *slog.Logger) (*commandLog, error) {
	l := &commandLog{
		path:    filepath.Join(dir, "commands.json"),
		log:     log,
		waiters: map[string]chan struct{}{},
		timers:  map[string]*time.Timer{},
	}
	b, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("gateway: %w", err)
	default:
		if err := json.Unmarshal(b, &l.state); err != nil {
			// Replaced atomically, so only a damaged disk gets here; the
			// gateway still starts.
			log.Error("command log unreadable, starting empty", "err", err)
			l.state = logState{}
		}
	}
	if l.state.AutoOff == nil {
		l.state.AutoOff = map[string]logTime{}
	}
	// A command that was being applied when the process died may or may
	// not have moved the actuator: it is not applied again.
	for i, e := range l.state.IDs {
		if e.Result == nil {
			l.state.IDs[i].Result = &Result{ID: e.ID, Status: StatusFailed, Error: "gateway restarted while applying", TS: e.At.UTC().Format(time.RFC3339Nano)}
		}
	}
	return l, nil
}

// claim marks id as being applied, or returns its first result. A
// duplicate arriving while the first is applied waits for it.
func (l *commandLog) claim(ctx context.Context, id, key string) (Result, bool) {
	for {
		l.mu.Lock()
		if w, ok := l.waiters[id]; ok {
			l.mu.Unlock()
			select {
			case <-w:
				continue
			case <-ctx.Done():
				return Result{ID: id, Status: StatusFailed, Error: "shutting down"}, true
			}
		}
		for _, e := range l.state.IDs {
			if e.ID == id && e.Result != nil {
				l.mu.Unlock()
				return *e.Result, true
			}
		}
		l.waiters[id] = make(chan struct{})
		now := time.Now()
		ids := l.state.IDs[:0]
		for _, e := range l.state.IDs {
			if now.Sub(e.At) < idTTL {
				ids = append(ids, e)
			}
		}
		if len(ids) >= maxIDs {
			ids = ids[len(ids)-maxIDs+1:]
		}
		l.state.IDs = append(ids, logEntry{ID: id, Key: key, At: now})
		l.saveLocked()
		l.mu.Unlock()
		return Result{}, false
	}
}

// done stores the result of a claimed id.
func (l *commandLog) done(id string, res Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.state.IDs) - 1; i >= 0; i-- {
		if l.state.IDs[i].ID == id {
			l.state.IDs[i].Result = &res
			break
		}
	}
	l.saveLocked()
	if w, ok := l.waiters[id]; ok {
		close(w)
		delete(l.waiters, id)
	}
}

// saveLocked replaces the file atomically: temp file, fsync, rename,
// directory fsync.
func (l *commandLog) saveLocked() {
	b, err := json.Marshal(l.state)
	if err == nil {
		err = writeFileSync(l.path, b)
	}
	if err != nil {
		l.log.Error("command log not saved", "err", err)
	}
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (l *commandLog) scheduleAutoOff(ctx context.Context, g *Gateway, device, name string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := device + "/" + name
	l.state.AutoOff[key] = at
	l.saveLocked()
	l.armLocked(ctx, g, key, at)
}

func (l *commandLog) armLocked(ctx context.Context, g *Gateway, key string, at time.Time) {
	if l.stopped {
		return
	}
	if t := l.timers[key]; t != nil {
		t.Stop()
	}
	l.timers[key] = time.AfterFunc(time.Until(at), func() { g.autoOff(ctx, key, at) })
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
		l.saveLocked()
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

func (l *commandLog) close() error { return nil }

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
		g.cmds.saveLocked()
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
