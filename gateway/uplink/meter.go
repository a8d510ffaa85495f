package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/internal/atomicfile"
	"github.com/edgegw/edgegw/mqtt/client"
)

// Usage is the uplink's bytes on the wire over a period, split into data and
// overhead.
//
// Bytes are counted at the TCP socket, under TLS (client.Traffic): what the
// gateway writes and reads, not the TCP/IP headers the kernel adds (about
// 52 bytes per segment and per TCP acknowledgement over IPv4, which a
// carrier bills too). Data is the whole PUBLISH packets (header, topic or
// alias, properties, payload) the uplink sends, by the queue class of the
// record they carry ("alarm": alarms, device status, command results;
// "telemetry"; "status": the uplink's own online/offline), resends
// included, and the PUBLISH packets it receives (commands, [[uplink.receive]]).
// Overhead is every other byte of the socket, each way: CONNECT/CONNACK,
// PUBACK/PUBREC/PUBREL/PUBCOMP both ways, PINGREQ/PINGRESP, SUBSCRIBE/SUBACK,
// DISCONNECT, and the TLS handshakes and record framing, TLS's share of a
// PUBLISH included. A PUBLISH counts when it is queued for the socket; one
// lost with its connection before it was written counts all the same.
type Usage struct {
	Data       map[string]int64 `json:"data"` // PUBLISH bytes sent, by class
	Overhead   int64            `json:"overhead"`
	DataIn     int64            `json:"data_in"`
	OverheadIn int64            `json:"overhead_in"`
}

// Sent is the bytes written, data and overhead.
func (u Usage) Sent() int64 {
	n := u.Overhead
	for _, v := range u.Data {
		n += v
	}
	return n
}

// Received is the bytes read.
func (u Usage) Received() int64 { return u.DataIn + u.OverheadIn }

// Total is the bytes both ways: what a data plan counts, headers aside.
func (u Usage) Total() int64 { return u.Sent() + u.Received() }

func (u *Usage) add(d Usage) {
	if len(d.Data) > 0 && u.Data == nil {
		u.Data = make(map[string]int64)
	}
	for k, v := range d.Data {
		u.Data[k] += v
	}
	u.Overhead += d.Overhead
	u.DataIn += d.DataIn
	u.OverheadIn += d.OverheadIn
}

func (u Usage) clone() Usage {
	u.Data = maps.Clone(u.Data)
	return u
}

// meterState is what the meter keeps in its file: the current UTC day's
// and month's usage. The month starts at 00:00 UTC on MonthStartDay.
type meterState struct {
	Day        string    `json:"day"` // 2006-01-02, UTC
	DayUsage   Usage     `json:"day_usage"`
	MonthStart time.Time `json:"month_start"`
	MonthUsage Usage     `json:"month_usage"`
	// MonthThinned is the telemetry records the budget kept back this
	// month (see budget).
	MonthThinned int64 `json:"month_thinned"`
}

// meter turns the client's cumulative traffic into day and month totals
// that survive restarts in a state file, written atomically at most every
// syncEvery and at close.
type meter struct {
	path      string // "" keeps the totals in memory
	startDay  int    // 1..28
	syncEvery time.Duration
	now       func() time.Time
	log       *slog.Logger

	// mu guards the fields below.
	mu       sync.Mutex
	cl       trafficSource  // the client being sampled; nil between runs
	last     client.Traffic // cl's traffic at the last sample
	lastOver [2]int64       // cl's overhead out, in at the last sample
	st       meterState
	process  Usage // since the process started
	saved    time.Time
	dirty    bool
}

const meterFile = "uplink.meter"

// openMeter loads the state file in dir ("" keeps the totals in memory).
// A file that does not decode is renamed to .bad, logged, and counting
// starts from zero; only a file that cannot be read at all is an error.
func openMeter(dir string, startDay int, syncEvery time.Duration, now func() time.Time, log *slog.Logger) (*meter, error) {
	m := &meter{startDay: startDay, syncEvery: syncEvery, now: now, log: log}
	if dir == "" {
		m.roll(now())
		return m, nil
	}
	m.path = filepath.Join(dir, meterFile)
	b, err := os.ReadFile(m.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("uplink: meter: %w", err)
	default:
		var st meterState
		if err := json.Unmarshal(b, &st); err != nil {
			log.Warn("meter file unreadable, counting from zero", "path", m.path, "err", err)
			if err := os.Rename(m.path, m.path+".bad"); err != nil {
				return nil, fmt.Errorf("uplink: meter: %w", err)
			}
		} else {
			m.st = st
		}
	}
	m.roll(now())
	m.saved = now()
	return m, nil
}

// monthStart returns the start of the month of t that begins at 00:00 UTC
// on day (1..28).
func monthStart(t time.Time, day int) time.Time {
	t = t.UTC()
	s := time.Date(t.Year(), t.Month(), day, 0, 0, 0, 0, time.UTC)
	if t.Before(s) {
		s = s.AddDate(0, -1, 0)
	}
	return s
}

// roll starts a new day or month when now is past the current one. mu
// held.
func (m *meter) roll(now time.Time) {
	day := now.UTC().Format(time.DateOnly)
	if m.st.Day != day {
		m.st.Day, m.st.DayUsage = day, Usage{}
		m.dirty = true
	}
	if ms := monthStart(now, m.startDay); !m.st.MonthStart.Equal(ms) {
		m.st.MonthStart, m.st.MonthUsage, m.st.MonthThinned = ms, Usage{}, 0
		m.dirty = true
	}
}

// trafficSource is a *client.Client.
type trafficSource interface{ Traffic() client.Traffic }

// attach makes cl the client sampled from now on; nil detaches after a
// last sample.
func (m *meter) attach(cl trafficSource) {
	m.sample()
	m.mu.Lock()
	m.cl, m.last, m.lastOver = cl, client.Traffic{}, [2]int64{}
	m.mu.Unlock()
}

// sample adds what the client counted since the last sample to the
// current day and month.
func (m *meter) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(m.now())
	if m.cl == nil {
		return
	}
	t := m.cl.Traffic()
	var d Usage
	var pubOut int64
	for k, v := range t.Publish {
		pubOut += v
		if n := v - m.last.Publish[k]; n != 0 {
			if d.Data == nil {
				d.Data = make(map[string]int64)
			}
			d.Data[k] = n
		}
	}
	d.DataIn = t.PublishIn - m.last.PublishIn
	// A PUBLISH counts when queued, the socket when written: the
	// overhead is what the socket carried beyond the data, never less
	// than it was.
	over := [2]int64{max(m.lastOver[0], t.SocketOut-pubOut), max(m.lastOver[1], t.SocketIn-t.PublishIn)}
	d.Overhead, d.OverheadIn = over[0]-m.lastOver[0], over[1]-m.lastOver[1]
	m.last, m.lastOver = t, over
	if d.Total() == 0 {
		return
	}
	m.st.DayUsage.add(d)
	m.st.MonthUsage.add(d)
	m.process.add(d)
	m.dirty = true
}

// thinned counts a record the budget kept back.
func (m *meter) thinned() {
	m.mu.Lock()
	m.roll(m.now())
	m.st.MonthThinned++
	m.dirty = true
	m.mu.Unlock()
}

// month returns the month's bytes so far, its start and its end.
func (m *meter) month() (used int64, start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(m.now())
	start = m.st.MonthStart
	return m.st.MonthUsage.Total(), start, start.AddDate(0, 1, 0)
}

// MeterStatus is the meter's part of Status.
type MeterStatus struct {
	Process      Usage     // since the process started
	Day          string    // UTC date of DayUsage
	DayUsage     Usage     //
	MonthStart   time.Time // UTC
	MonthUsage   Usage
	MonthThinned int64
}

func (m *meter) status() MeterStatus {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return MeterStatus{Process: m.process.clone(), Day: m.st.Day, DayUsage: m.st.DayUsage.clone(),
		MonthStart: m.st.MonthStart, MonthUsage: m.st.MonthUsage.clone(), MonthThinned: m.st.MonthThinned}
}

// tick samples and writes the file when it changed and syncEvery has
// passed since the last write; force writes it whenever it changed.
func (m *meter) tick(force bool) error {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.path == "" || !m.dirty || (!force && now.Sub(m.saved) < m.syncEvery) {
		return nil
	}
	b, err := json.Marshal(m.st)
	if err != nil {
		return fmt.Errorf("uplink: meter: %w", err)
	}
	if err := atomicfile.WriteFile(m.path, b, 0o644); err != nil {
		return fmt.Errorf("uplink: meter: %w", err)
	}
	m.saved, m.dirty = now, false
	return nil
}
