package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers"
)

// Emit routes readings, as a poller or streamer delivers them (one batch
// per poll). Per device, the non-alarm readings become one telemetry
// message; each alarm reading becomes one alarm message.
func (g *Gateway) Emit(rs []drivers.Reading) {
	if len(rs) == 0 {
		return
	}
	g.stats.Readings.Add(int64(len(rs)))
	g.mu.Lock()
	for _, r := range rs {
		g.latest[r.Device+"."+r.Point] = r
	}
	g.mu.Unlock()
	// Group by device, keeping the order of first appearance.
	var devices []string
	byDev := map[string][]drivers.Reading{}
	for _, r := range rs {
		if _, ok := byDev[r.Device]; !ok {
			devices = append(devices, r.Device)
		}
		byDev[r.Device] = append(byDev[r.Device], r)
	}
	for _, dev := range devices {
		var points []drivers.Reading
		for _, r := range byDev[dev] {
			if r.Alarm {
				g.alarm(r)
			} else {
				points = append(points, r)
			}
		}
		if len(points) > 0 {
			g.telemetry(dev, points)
		}
	}
}

func (g *Gateway) route(device string) *route {
	g.mu.Lock()
	defer g.mu.Unlock()
	rt := g.routes[device]
	if rt == nil {
		rt = &route{Route: Route{Device: device}, seq: g.seqs.get(device)}
		g.routes[device] = rt
	}
	return rt
}

// telemetry sends one message on {prefix}/telemetry/{device}.
func (g *Gateway) telemetry(device string, points []drivers.Reading) {
	rt := g.route(device)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	seq := rt.seq + 1
	ts := points[0].Time
	for _, p := range points {
		if p.Time.After(ts) {
			ts = p.Time
		}
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	m := Record{
		Topic:   g.d.Prefix + "/telemetry/" + device,
		Payload: telemetryJSON(seq, ts, points),
		QoS:     g.d.QoS,
		Retain:  true,
		Time:    time.Now().UTC(),
	}
	// Spool first: a number the queue did not take is used again, so the
	// cloud sees no gap.
	q, ok := g.spool(m, ClassTelemetry)
	if !ok {
		return
	}
	rt.seq = seq
	g.seqs.set(device, seq, q)
	g.stats.Messages.Add(1)
	if g.d.Publisher != nil {
		if err := g.d.Publisher.Publish(context.Background(), m); err != nil {
			g.stats.PublishFails.Add(1)
		}
	}
}

// alarm sends one alarm reading on {prefix}/alarm/{device}/{point}.
func (g *Gateway) alarm(r drivers.Reading) {
	g.stats.Alarms.Add(1)
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	var b bytes.Buffer
	b.WriteString(`{"v":`)
	b.Write(valueJSON(r.Value))
	fmt.Fprintf(&b, `,"ts":%q,"q":%q}`, ts.UTC().Format(time.RFC3339Nano), qualityOf(r))
	g.send(Record{
		Topic:   g.d.Prefix + "/alarm/" + r.Device + "/" + r.Point,
		Payload: b.Bytes(),
		QoS:     g.d.QoS,
		Retain:  true,
		Time:    time.Now().UTC(),
	}, ClassAlarm)
}

func qualityOf(r drivers.Reading) drivers.Quality {
	if r.Quality == "" {
		return drivers.Good
	}
	return r.Quality
}

// telemetryJSON builds
// {"seq":N,"ts":"…","points":{"pressure":{"v":231.5,"u":"kPa","q":"good"}}}
// with points in name order.
func telemetryJSON(seq uint64, ts time.Time, points []drivers.Reading) []byte {
	points = slices.Clone(points)
	slices.SortStableFunc(points, func(a, b drivers.Reading) int { return strings.Compare(a.Point, b.Point) })
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"seq":%d,"ts":%q,"points":{`, seq, ts.UTC().Format(time.RFC3339Nano))
	for i, p := range points {
		if i > 0 && p.Point == points[i-1].Point {
			continue // the later duplicate of a point in one batch is dropped
		}
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(p.Point)
		b.Write(name)
		b.WriteString(`:{`)
		if p.Value != nil && qualityOf(p) != drivers.CommError {
			b.WriteString(`"v":`)
			b.Write(valueJSON(p.Value))
			b.WriteByte(',')
		}
		if p.Unit != "" {
			u, _ := json.Marshal(p.Unit)
			b.WriteString(`"u":`)
			b.Write(u)
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"q":%q}`, qualityOf(p))
	}
	b.WriteString("}}")
	return b.Bytes()
}

// valueJSON encodes a reading value; NaN and ±Inf, which JSON lacks, are null.
func valueJSON(v any) []byte {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return []byte("null")
		}
		// 12 significant digits: a register scaled by 0.1 reads 49.3,
		// not 49.300000000000004.
		return strconv.AppendFloat(nil, x, 'g', 12, 64)
	case float32:
		return valueJSON(float64(x))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

// payloadSeq returns the seq of a telemetry payload. The gateway's own
// payloads start with {"seq":N, and are read without a JSON decode (the
// whole backlog is scanned at start).
func payloadSeq(p []byte) (uint64, bool) {
	if rest, ok := bytes.CutPrefix(p, []byte(`{"seq":`)); ok {
		if i := bytes.IndexByte(rest, ','); i > 0 {
			if n, err := strconv.ParseUint(string(rest[:i]), 10, 64); err == nil {
				return n, true
			}
		}
	}
	var v struct {
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(p, &v) != nil || v.Seq == nil {
		return 0, false
	}
	return *v.Seq, true
}

// seqFile keeps, for every device, its last telemetry sequence numbers
// together with the queue sequence numbers their records got, in
// {state_dir}/seq, one "device seq queueseq" line each. It is rewritten in
// place after every message (one write, no fsync: a killed process loses
// nothing the kernel has).
//
// The queue may accept a record before writing it (fsync = "interval"), so
// a kill can lose the last records after their numbers were saved. At
// start, Recover drops the saved numbers whose queue record was never
// written (queue seq at or past the queue's next number) and uses the
// newest one left: lost records' numbers are used again, so the cloud sees
// no gap. Records that were written and not yet acknowledged raise the
// number further (the backlog), covering a save lost with a power cut.
type seqFile struct {
	// mu guards f, seqs and buf.
	mu   sync.Mutex
	f    *os.File
	seqs map[string][]seqPair // ascending, at most keepSeqs
	buf  []byte
}

// seqPair is a telemetry seq and the queue seq of its record (0: unknown).
type seqPair struct{ n, q uint64 }

// keepSeqs is how many numbers are kept per device: more than the records
// of one device that a queue writer can hold unwritten.
const keepSeqs = 32

func openSeqFile(dir string) (*seqFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, "seq"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &seqFile{f: f, seqs: map[string][]seqPair{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// A torn or damaged line is skipped; the backlog covers it.
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || len(fields) > 3 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		var q uint64
		if len(fields) == 3 {
			if q, err = strconv.ParseUint(fields[2], 10, 64); err != nil {
				continue
			}
		}
		s.seqs[fields[0]] = append(s.seqs[fields[0]], seqPair{n, q})
	}
	for dev, ps := range s.seqs {
		slices.SortFunc(ps, func(a, b seqPair) int { return cmpUint(a.n, b.n) })
		s.seqs[dev] = ps[max(0, len(ps)-keepSeqs):]
	}
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// recover drops the numbers whose queue record is at or past next, the
// queue's next sequence number at open: those records were never written.
// When every kept number of a device was lost, the one before the oldest
// is the best guess left (the backlog may raise it).
func (s *seqFile) recover(next uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for dev, ps := range s.seqs {
		i := len(ps)
		for i > 0 && ps[i-1].q != 0 && ps[i-1].q >= next {
			i--
		}
		switch {
		case i == len(ps):
		case i > 0:
			s.seqs[dev] = ps[:i]
		default:
			s.seqs[dev] = []seqPair{{n: ps[0].n - 1}}
		}
	}
}

func (s *seqFile) get(dev string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.seqs[dev]
	if len(ps) == 0 {
		return 0
	}
	return ps[len(ps)-1].n
}

// set saves n for dev, spooled as queue record q (0: not spooled). A
// failed write is not fatal: the backlog recovers the number after a
// restart.
func (s *seqFile) set(dev string, n, q uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.seqs[dev]
	if len(ps) > 0 && ps[len(ps)-1].n >= n {
		ps = ps[:0] // raised by the backlog, or a new start
	}
	ps = append(ps, seqPair{n, q})
	s.seqs[dev] = ps[max(0, len(ps)-keepSeqs):]
	if s.f == nil {
		return
	}
	names := make([]string, 0, len(s.seqs))
	for k := range s.seqs {
		names = append(names, k)
	}
	slices.Sort(names)
	s.buf = s.buf[:0]
	for _, k := range names {
		for _, p := range s.seqs[k] {
			s.buf = fmt.Appendf(s.buf, "%s %d %d\n", k, p.n, p.q)
		}
	}
	if _, err := s.f.WriteAt(s.buf, 0); err == nil {
		s.f.Truncate(int64(len(s.buf)))
	}
}

func (s *seqFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
