package console

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway"
)

// state is what the console learned from the local broker: the last
// reading of each point, the alarms, the charts and the command log. Only
// devices named by Options.Status are kept, so a local client publishing
// under the gateway's prefix cannot make it grow.
type state struct {
	o       Options
	under   string        // Prefix + "/": the topics dispatch looks at
	spacing time.Duration // least time between two samples of a chart

	// mu guards everything below.
	mu      sync.Mutex
	devices map[string]*deviceState
	known   map[string]bool // configured devices, from the last Status
	alarms  map[string]*alarmState
	series  map[string]*series
	log     []*logEntry
	// Changes since the last delta.
	changedPts   map[string]map[string]bool // device → points
	changedAlarm map[string]bool
	newSamples   map[string][]sample
	changedLog   map[*logEntry]bool
}

type point struct {
	V  json.RawMessage `json:"v,omitempty"`
	U  string          `json:"u,omitempty"`
	Q  string          `json:"q"`
	TS int64           `json:"ts"` // Unix ms
}

type deviceState struct {
	TS     int64             `json:"ts"` // last reading, Unix ms
	Points map[string]*point `json:"p"`
}

type alarmState struct {
	Device string          `json:"d"`
	Point  string          `json:"p"`
	V      json.RawMessage `json:"v"`
	Active bool            `json:"on"`
	Q      string          `json:"q,omitempty"`
	TS     int64           `json:"ts"`
}

type logEntry struct {
	TS      int64           `json:"ts"` // when first seen, Unix ms
	Device  string          `json:"d"`
	Command string          `json:"c"`
	ID      string          `json:"id"`
	Source  string          `json:"src,omitempty"` // console, local; empty: the cloud or the gateway
	User    string          `json:"user,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Status  string          `json:"status,omitempty"` // empty while pending
	Error   string          `json:"error,omitempty"`
	Done    int64           `json:"done,omitempty"` // result time, Unix ms
}

// sample is one chart point: Unix ms and value.
type sample struct {
	T int64
	V float64
}

// maxSnapshotSamples bounds the samples of a chart in a snapshot: a chart
// is drawn 300 units wide, and a page over a slow link should not wait
// for 720 samples of 17 charts.
const maxSnapshotSamples = 150

// thin returns at most n of xs, evenly spread, keeping the last.
func thin(xs []sample, n int) []sample {
	if len(xs) <= n {
		return xs
	}
	out := make([]sample, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, xs[i*(len(xs)-1)/(n-1)])
	}
	return out
}

// encodeSamples writes [[s,v],…] with s the seconds from ref to the
// sample (one decimal) and v to 6 significant digits: about 16 bytes a
// sample.
func encodeSamples(xs []sample, ref int64) json.RawMessage {
	b := make([]byte, 0, 2+len(xs)*16)
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendFloat(b, float64(x.T-ref)/1000, 'f', 1, 64)
		b = append(b, ',')
		b = appendFloat(b, x.V)
		b = append(b, ']')
	}
	return append(b, ']')
}

// series is a ring of samples, allocated as it fills up to its bound.
type series struct {
	buf  []sample
	head int // index of the oldest sample once full
}

func (s *series) add(x sample, max int) {
	if len(s.buf) < max {
		s.buf = append(s.buf, x)
		return
	}
	s.buf[s.head] = x
	s.head = (s.head + 1) % len(s.buf)
}

func (s *series) last() (sample, bool) {
	if len(s.buf) == 0 {
		return sample{}, false
	}
	return s.buf[(s.head+len(s.buf)-1)%len(s.buf)], true
}

// since returns the samples at or after from, oldest first.
func (s *series) since(from int64) []sample {
	out := make([]sample, 0, len(s.buf))
	for i := range s.buf {
		x := s.buf[(s.head+i)%len(s.buf)]
		if x.T >= from {
			out = append(out, x)
		}
	}
	return out
}

func newState(o Options) *state {
	return &state{
		o:            o,
		under:        o.Prefix + "/",
		spacing:      o.History / time.Duration(o.MaxPoints),
		devices:      map[string]*deviceState{},
		known:        map[string]bool{},
		alarms:       map[string]*alarmState{},
		series:       map[string]*series{},
		changedPts:   map[string]map[string]bool{},
		changedAlarm: map[string]bool{},
		newSamples:   map[string][]sample{},
		changedLog:   map[*logEntry]bool{},
	}
}

// setKnown records the configured devices.
func (s *state) setKnown(devs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.known)
	for _, d := range devs {
		s.known[d] = true
	}
}

// telemetryMsg is the gateway's telemetry payload.
type telemetryMsg struct {
	TS     time.Time `json:"ts"`
	Points map[string]struct {
		V json.RawMessage `json:"v"`
		U string          `json:"u"`
		Q string          `json:"q"`
	} `json:"points"`
}

// parseTelemetry decodes a telemetry payload. Values longer than
// maxValueBytes are dropped (the point shows without a value); points
// whose names are longer than maxNameBytes are dropped, so that the
// names kept stay within maxPointsPer × maxNameBytes a device.
func parseTelemetry(b []byte) (telemetryMsg, bool) {
	var m telemetryMsg
	if len(b) > maxPayload || json.Unmarshal(b, &m) != nil || m.TS.IsZero() {
		return telemetryMsg{}, false
	}
	for n, p := range m.Points {
		switch {
		case len(n) > maxNameBytes:
			delete(m.Points, n)
		case len(p.V) > maxValueBytes:
			p.V = nil
			m.Points[n] = p
		}
	}
	return m, true
}

// dispatch hands a message under the prefix to its handler by topic:
// telemetry/{device}, alarm/{device}/{point}, cmd/{device}/{command} and
// cmd/{device}/{command}/result. Payloads over maxPayload are not
// decoded.
func (s *state) dispatch(r gateway.Record) {
	rest, ok := strings.CutPrefix(r.Topic, s.under)
	if !ok || len(r.Payload) > maxPayload {
		return
	}
	ls := strings.Split(rest, "/")
	switch {
	case len(ls) == 2 && ls[0] == "telemetry":
		s.telemetry(ls[1], r.Payload)
	case len(ls) == 3 && ls[0] == "alarm":
		s.alarm(ls[1], ls[2], r.Payload)
	case len(ls) == 3 && ls[0] == "cmd":
		s.command(ls[1], ls[2], r.Payload)
	case len(ls) == 4 && ls[0] == "cmd" && ls[3] == "result":
		s.result(ls[1], ls[2], r.Payload)
	}
}

func (s *state) telemetry(dev string, payload []byte) {
	m, ok := parseTelemetry(payload)
	if !ok {
		return
	}
	ts := m.TS.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known[dev] {
		return
	}
	d := s.devices[dev]
	if d == nil {
		d = &deviceState{Points: map[string]*point{}}
		s.devices[dev] = d
	}
	d.TS = max(d.TS, ts)
	if s.changedPts[dev] == nil {
		s.changedPts[dev] = map[string]bool{} // the device's time, at least
	}
	names := make([]string, 0, len(m.Points))
	for n := range m.Points {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := m.Points[n]
		if d.Points[n] == nil && len(d.Points) >= maxPointsPer {
			continue
		}
		np := &point{V: p.V, U: trim(p.U, 32), Q: trim(p.Q, 32), TS: ts}
		if old := d.Points[n]; old == nil || !bytes.Equal(old.V, np.V) || old.U != np.U || old.Q != np.Q {
			s.changedPts[dev][n] = true // unchanged points are not sent again
		}
		d.Points[n] = np
		var f float64
		if p.Q == "good" && len(p.V) > 0 && json.Unmarshal(p.V, &f) == nil && !math.IsNaN(f) {
			s.addSample(dev+"."+n, sample{T: ts, V: f})
		}
	}
}

// addSample appends x to its chart unless the chart's last sample is
// less than spacing older, or newer.
func (s *state) addSample(key string, x sample) {
	sr := s.series[key]
	if sr == nil {
		if len(s.series) >= s.o.MaxSeries {
			return
		}
		sr = &series{}
		s.series[key] = sr
	}
	if l, ok := sr.last(); ok && x.T-l.T < s.spacing.Milliseconds() {
		return
	}
	sr.add(x, s.o.MaxPoints)
	s.newSamples[key] = append(s.newSamples[key], x)
}

func (s *state) alarm(dev, pt string, payload []byte) {
	var m struct {
		V  json.RawMessage `json:"v"`
		TS time.Time       `json:"ts"`
		Q  string          `json:"q"`
	}
	if json.Unmarshal(payload, &m) != nil || len(m.V) > maxValueBytes {
		return
	}
	key := dev + "/" + pt
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known[dev] || len(pt) > maxNameBytes {
		return
	}
	active := truthy(m.V)
	a := s.alarms[key]
	if a == nil && !active {
		return // a cleared alarm never seen raised
	}
	if a == nil && len(s.alarms) >= s.o.MaxSeries {
		return
	}
	s.alarms[key] = &alarmState{Device: dev, Point: pt, V: m.V, Active: active, Q: trim(m.Q, 32), TS: m.TS.UnixMilli()}
	s.changedAlarm[key] = true
}

// truthy says whether an alarm value is raised: true, a non-zero number
// or a non-empty string other than "false" and "0".
func truthy(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0, string(v) == "false", string(v) == "null", string(v) == `""`, string(v) == `"false"`, string(v) == `"0"`:
		return false
	}
	var f float64
	if json.Unmarshal(v, &f) == nil {
		return f != 0
	}
	return true
}

// command notes a command published on the local broker.
func (s *state) command(dev, cmd string, payload []byte) {
	var m struct {
		ID    string          `json:"id"`
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(payload, &m) != nil || m.ID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known[dev] {
		return
	}
	e := s.entryLocked(dev, cmd, trim(m.ID, maxNameBytes))
	if e.Source == "" {
		e.Source = "local"
	}
	if e.Value == nil && len(m.Value) <= maxValueBytes {
		e.Value = m.Value
	}
}

// result notes a command result the gateway published.
func (s *state) result(dev, cmd string, payload []byte) {
	var res gateway.Result
	if json.Unmarshal(payload, &res) != nil || res.Status == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known[dev] {
		return
	}
	s.noteResultLocked(dev, cmd, res)
}

func (s *state) noteResultLocked(dev, cmd string, res gateway.Result) {
	e := s.entryLocked(dev, cmd, trim(res.ID, maxNameBytes))
	if e.Status != "" && e.Done != 0 && res.ID != "auto_off" {
		return // a repeated id: the first result stands
	}
	e.Status, e.Error = trim(res.Status, 32), trim(res.Error, 512)
	e.Done = s.o.Now().UnixMilli()
	if t, err := time.Parse(time.RFC3339Nano, res.TS); err == nil {
		e.Done = t.UnixMilli()
	}
}

// entryLocked returns the log entry of id on dev/cmd, adding it.
// auto_off results get an entry each.
func (s *state) entryLocked(dev, cmd, id string) *logEntry {
	if id != "auto_off" {
		for _, e := range s.log {
			if e.ID == id && e.Device == dev && e.Command == cmd {
				s.changedLog[e] = true
				return e
			}
		}
	}
	e := &logEntry{TS: s.o.Now().UnixMilli(), Device: dev, Command: trim(cmd, maxNameBytes), ID: id}
	if len(s.log) >= maxLog {
		delete(s.changedLog, s.log[0])
		s.log = slices.Delete(s.log, 0, 1)
	}
	s.log = append(s.log, e)
	s.changedLog[e] = true
	return e
}

// sent notes a command sent from the page, before it is applied.
func (s *state) sent(user, dev, cmd, id string, value json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entryLocked(dev, cmd, id)
	e.Source, e.User, e.Value = "console", user, value
}

func (s *state) finished(dev, cmd string, res gateway.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteResultLocked(dev, cmd, res)
}

// view is what the page is sent: all of it in a snapshot, what changed
// in a delta.
type view struct {
	T        int64                   `json:"t"`
	Prefix   string                  `json:"prefix,omitempty"`
	History  int64                   `json:"history_s,omitempty"`
	Devices  map[string]*deviceState `json:"dev,omitempty"`
	Alarms   []*alarmState           `json:"alarms,omitempty"`
	Series   map[string][]sample     `json:"hist,omitempty"`
	Status   json.RawMessage         `json:"st,omitempty"`
	Log      []*logEntry             `json:"log,omitempty"`
	Commands []CommandRule           `json:"commands,omitempty"`
	Session  *sessionView            `json:"me,omitempty"`
	CanSend  bool                    `json:"can_send,omitempty"`
}

// MarshalJSON writes v with the charts' samples as "hist", their times
// relative to v.T.
func (v view) MarshalJSON() ([]byte, error) {
	type plain view
	out := struct {
		plain
		Hist map[string]json.RawMessage `json:"hist,omitempty"`
	}{plain: plain(v)}
	if len(v.Series) > 0 {
		out.Hist = make(map[string]json.RawMessage, len(v.Series))
		for k, xs := range v.Series {
			out.Hist[k] = encodeSamples(xs, v.T)
		}
	}
	return json.Marshal(out)
}

type sessionView struct {
	User string `json:"user"`
	CSRF string `json:"csrf"`
}

// snapshot returns everything, with the charts' samples of the last
// History.
func (s *state) snapshot(now time.Time) view {
	v := view{T: now.UnixMilli(), Prefix: s.o.Prefix, History: int64(s.o.History / time.Second),
		Devices: map[string]*deviceState{}, Series: map[string][]sample{}}
	if s.o.Command != nil {
		v.Commands = s.o.Commands() // outside mu: it asks the daemon
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, d := range s.devices {
		v.Devices[n] = &deviceState{TS: d.TS, Points: maps.Clone(d.Points)}
	}
	for _, a := range s.alarms {
		v.Alarms = append(v.Alarms, a)
	}
	from := now.Add(-s.o.History).UnixMilli()
	for k, sr := range s.series {
		v.Series[k] = thin(sr.since(from), maxSnapshotSamples)
	}
	v.Log = s.copyLogLocked(func(*logEntry) bool { return true })
	return v
}

// copyLogLocked returns copies of the log entries keep selects: entries
// change in place, and a view is marshalled outside mu.
func (s *state) copyLogLocked(keep func(*logEntry) bool) []*logEntry {
	var out []*logEntry
	for _, e := range s.log {
		if keep(e) {
			c := *e
			out = append(out, &c)
		}
	}
	return out
}

// delta returns and forgets the changes since the last delta.
func (s *state) delta(now time.Time) view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := view{T: now.UnixMilli()}
	if len(s.changedPts) > 0 {
		v.Devices = map[string]*deviceState{}
		for dev, pts := range s.changedPts {
			d := s.devices[dev]
			c := &deviceState{TS: d.TS, Points: map[string]*point{}}
			for n := range pts {
				c.Points[n] = d.Points[n]
			}
			v.Devices[dev] = c
		}
		clear(s.changedPts)
	}
	for k := range s.changedAlarm {
		v.Alarms = append(v.Alarms, s.alarms[k])
	}
	clear(s.changedAlarm)
	if len(s.newSamples) > 0 {
		v.Series = s.newSamples
		s.newSamples = map[string][]sample{}
	}
	v.Log = s.copyLogLocked(func(e *logEntry) bool { return s.changedLog[e] })
	clear(s.changedLog)
	return v
}

// memBytes estimates the bytes the charts hold.
func (s *state) memBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sr := range s.series {
		n += cap(sr.buf) * 16
	}
	return n
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
