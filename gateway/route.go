package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
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
	tok := g.seqs.begin()
	q, ok := g.spool(m, ClassTelemetry)
	if !ok {
		g.seqs.end(tok)
		return
	}
	rt.seq = seq
	g.seqs.set(device, seq, q)
	g.seqs.end(tok)
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
// backlog written since the last save is scanned at start).
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
// no gap. Records that were written and not yet saved (a kill between
// spooling and saving, a save lost with a power cut) raise the number
// further: the backlog.
//
// Only the backlog's tail needs reading for that. The file starts with a
// checksummed header line "#complete W LEN CRC": every telemetry record
// with a queue number up to W is reflected in the LEN bytes of lines that
// follow (CRC is their CRC-32C, in hex). W is the highest queue number
// saved, lowered below every spool still in progress, whose record gets a
// higher number than any saved before it started; so only records after W
// can be missing, whichever device they belong to and however long ago it
// last reported. A file without a valid header (damaged, torn, or older)
// has W = 0: the whole backlog is read, as before. Bytes after LEN (left
// by a kill between the write and the truncation) are ignored.
type seqFile struct {
	// mu guards the fields below.
	mu   sync.Mutex
	f    *os.File
	seqs map[string][]seqPair // ascending, at most keepSeqs
	buf  []byte
	// hiQ is the highest queue number saved (or known complete at start).
	hiQ uint64
	// inflight counts the spools in progress by the hiQ they started at.
	inflight map[uint64]int
}

// seqPair is a telemetry seq and the queue seq of its record (0: unknown).
type seqPair struct{ n, q uint64 }

// keepSeqs is how many numbers are kept per device: more than the records
// of one device that a queue writer can hold unwritten.
const keepSeqs = 32

const seqHeader = "#complete"

var seqCRC = crc32.MakeTable(crc32.Castagnoli)

func openSeqFile(dir string) (*seqFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, "seq"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &seqFile{f: f, seqs: map[string][]seqPair{}, inflight: map[uint64]int{}}
	data, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	body := data
	if w, b, ok := parseSeqHeader(data); ok {
		s.hiQ, body = w, b
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		// A torn or damaged line is skipped; the backlog covers it.
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || len(fields) > 3 || strings.HasPrefix(fields[0], "#") {
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

// parseSeqHeader returns W and the lines it covers, if data starts with a
// valid header.
func parseSeqHeader(data []byte) (w uint64, body []byte, ok bool) {
	line, rest, found := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if !found || len(fields) != 4 || fields[0] != seqHeader {
		return 0, nil, false
	}
	w, err1 := strconv.ParseUint(fields[1], 10, 64)
	n, err2 := strconv.ParseUint(fields[2], 10, 64)
	crc, err3 := strconv.ParseUint(fields[3], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil || n > uint64(len(rest)) ||
		crc32.Checksum(rest[:n], seqCRC) != uint32(crc) {
		return 0, nil, false
	}
	return w, rest[:n], true
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

// begin is called before a telemetry record is spooled, end after its
// number was saved (or the spool failed), with begin's token.
func (s *seqFile) begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight[s.hiQ]++
	return s.hiQ
}

func (s *seqFile) end(tok uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[tok]--; s.inflight[tok] <= 0 {
		delete(s.inflight, tok)
	}
}

// complete returns W: every telemetry record numbered up to it in the queue
// is reflected in the saved numbers.
func (s *seqFile) complete() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.completeLocked()
}

func (s *seqFile) completeLocked() uint64 {
	w := s.hiQ
	for t := range s.inflight {
		w = min(w, t)
	}
	return w
}

// restart sets W after recovery: every queue record up to w is accounted
// for, and the queue numbers new records from w+1 (numbers of records it
// lost are given out again), and saves.
func (s *seqFile) restart(w uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hiQ = w
	s.saveLocked()
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
	s.hiQ = max(s.hiQ, q)
	s.saveLocked()
}

// saveLocked rewrites the file in place: the header, then the lines.
func (s *seqFile) saveLocked() {
	if s.f == nil {
		return
	}
	names := make([]string, 0, len(s.seqs))
	for k := range s.seqs {
		names = append(names, k)
	}
	slices.Sort(names)
	// The lines go after room for the longest header, then the header
	// is put in front of them.
	const room = len(seqHeader) + 3*21 + 1
	s.buf = append(s.buf[:0], make([]byte, room)...)
	for _, k := range names {
		for _, p := range s.seqs[k] {
			s.buf = fmt.Appendf(s.buf, "%s %d %d\n", k, p.n, p.q)
		}
	}
	body := s.buf[room:]
	h := fmt.Appendf(nil, "%s %d %d %08x\n", seqHeader, s.completeLocked(), len(body), crc32.Checksum(body, seqCRC))
	out := s.buf[room-len(h):]
	copy(out, h)
	if _, err := s.f.WriteAt(out, 0); err == nil {
		s.f.Truncate(int64(len(out)))
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
