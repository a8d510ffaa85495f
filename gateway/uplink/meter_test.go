package uplink

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/google/go-cmp/cmp"
)

// fakeClock is an injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeTraffic is a client's cumulative counters.
type fakeTraffic struct{ t client.Traffic }

func (f *fakeTraffic) Traffic() client.Traffic {
	t := f.t
	t.Publish = make(map[string]int64)
	for k, v := range f.t.Publish {
		t.Publish[k] = v
	}
	return t
}

// send adds a PUBLISH of n bytes of class, written, and its 4-byte PUBACK.
func (f *fakeTraffic) send(class string, n int64) {
	if f.t.Publish == nil {
		f.t.Publish = map[string]int64{}
	}
	f.t.Publish[class] += n
	f.t.SocketOut += n
	f.t.SocketIn += 4
}

func TestMonthStart(t *testing.T) {
	tests := []struct {
		name string
		t    string
		day  int
		want string
	}{
		{"first", "2026-12-07T08:00:00Z", 1, "2026-12-01T00:00:00Z"},
		{"on the day", "2026-12-15T00:00:00Z", 15, "2026-12-15T00:00:00Z"},
		{"before the day", "2026-12-14T23:59:59Z", 15, "2026-11-15T00:00:00Z"},
		{"across the year", "2027-01-03T10:00:00Z", 28, "2026-12-28T00:00:00Z"},
		{"not UTC", "2026-12-01T00:30:00+02:00", 1, "2026-11-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, tt.t)
			if got := monthStart(at, tt.day).Format(time.RFC3339); got != tt.want {
				t.Errorf("monthStart(%s, %d) = %s, want %s", tt.t, tt.day, got, tt.want)
			}
		})
	}
}

// TestMeterRollover: day totals start again at 00:00 UTC, month totals on
// the month's start day; the split into data and overhead adds up.
func TestMeterRollover(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 14, 23, 0, 0, 0, time.UTC)}
	m, err := openMeter("", 15, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTraffic{}
	m.attach(f)
	f.send("telemetry", 100)
	f.t.SocketOut += 30 // CONNECT
	m.sample()
	st := m.status()
	want := Usage{Data: map[string]int64{"telemetry": 100}, Overhead: 30, OverheadIn: 4}
	if diff := cmp.Diff(want, st.DayUsage); diff != "" {
		t.Errorf("day (-want +got):\n%s", diff)
	}
	if st.Day != "2026-12-14" || !st.MonthStart.Equal(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day %s month %v", st.Day, st.MonthStart)
	}

	clk.advance(2 * time.Hour) // 2026-12-15 01:00: a new day and a new month
	f.send("alarm", 50)
	st = m.status()
	want = Usage{Data: map[string]int64{"alarm": 50}, OverheadIn: 4}
	if diff := cmp.Diff(want, st.DayUsage); diff != "" {
		t.Errorf("new day (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, st.MonthUsage); diff != "" {
		t.Errorf("new month (-want +got):\n%s", diff)
	}
	if st.Process.Total() != 100+30+4+50+4 {
		t.Errorf("process total %d", st.Process.Total())
	}

	clk.advance(24 * time.Hour) // a new day, same month
	f.send("telemetry", 10)
	st = m.status()
	if st.Day != "2026-12-16" || st.DayUsage.Total() != 14 || st.MonthUsage.Total() != 54+14 {
		t.Errorf("day %s %d month %d", st.Day, st.DayUsage.Total(), st.MonthUsage.Total())
	}

	// A PUBLISH queued but not yet written: the overhead does not go
	// below what it was, and the data counts.
	f.t.Publish["telemetry"] += 200
	st = m.status()
	if st.DayUsage.Overhead != 0 || st.DayUsage.Data["telemetry"] != 210 {
		t.Errorf("unwritten publish: %+v", st.DayUsage)
	}
	f.t.SocketOut += 200 + 2 // written, with a PINGREQ
	st = m.status()
	if st.DayUsage.Overhead != 2 {
		t.Errorf("overhead %d after the write, want 2", st.DayUsage.Overhead)
	}
}

// TestMeterPersists: the totals survive a reopen; the file is written no
// more often than syncEvery, and at a forced tick; a corrupt file is set
// aside.
func TestMeterPersists(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	m, err := openMeter(dir, 1, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTraffic{}
	m.attach(f)
	f.send("telemetry", 1000)
	if err := m.tick(false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, meterFile)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file written before syncEvery: %v", err)
	}
	clk.advance(time.Minute)
	if err := m.tick(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file not written after syncEvery: %v", err)
	}
	f.send("alarm", 20)
	m.thinned()
	if err := m.tick(true); err != nil {
		t.Fatal(err)
	}
	before := m.status()

	m2, err := openMeter(dir, 1, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	after := m2.status()
	if diff := cmp.Diff(before.MonthUsage, after.MonthUsage); diff != "" {
		t.Errorf("month after reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before.DayUsage, after.DayUsage); diff != "" {
		t.Errorf("day after reopen (-want +got):\n%s", diff)
	}
	if after.MonthThinned != 1 || after.Process.Total() != 0 {
		t.Errorf("thinned %d, process %d", after.MonthThinned, after.Process.Total())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the state dir, want the meter file alone", len(ents))
	}
	// Reopened next month: the month starts from zero.
	clk.advance(31 * 24 * time.Hour)
	m3, err := openMeter(dir, 1, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := m3.status(); st.MonthUsage.Total() != 0 || st.MonthThinned != 0 {
		t.Errorf("next month: %+v", st)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openMeter(dir, 1, time.Minute, clk.now, testLog(t)); err != nil {
		t.Fatalf("corrupt file: %v", err)
	}
	if _, err := os.Stat(path + ".bad"); err != nil {
		t.Errorf("corrupt file not set aside: %v", err)
	}
}

// TestMeterMatchesMosquitto drains to a real Mosquitto and compares the
// meter with the bytes Mosquitto counted ($SYS/broker/bytes/received and
// /sent: every byte of every MQTT packet). Over plain TCP the socket
// carries MQTT packets alone, so the bytes sent must match exactly; the
// bytes received, up to the $SYS messages Mosquitto sent the probe that
// reads them. Then the totals survive a restart of the uplink.
func TestMeterMatchesMosquitto(t *testing.T) {
	b := mqtttest.StartMosquitto(t, append([]string{"sys_interval 1"}, brokerConf...)...)
	const n = 500
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 5, n, 200, 1)
	state := t.TempDir()
	o := Options{URL: "mqtt://" + b.Addr, ClientID: "gw-meter", LocalPrefix: localPrefix, TopicPrefix: remotePrefix,
		Queue: q, StateDir: state, Log: testLog(t)}
	u, stop := startUplink(t, o)
	waitDrained(t, q, 30*time.Second)
	stop()
	st := u.Status().Meter
	up := st.Process
	if up.Data["telemetry"] == 0 || up.Data["alarm"] == 0 || up.Data["status"] == 0 || up.Overhead == 0 || up.OverheadIn == 0 {
		t.Errorf("usage %+v: want data of every class and overhead both ways", up)
	}
	// A PUBACK is 4 bytes at 5.0 (2 for the header, 2 for the id) per
	// record and status message, at least.
	if min := int64(4 * (n + n/100 + 2)); up.OverheadIn < min {
		t.Errorf("overhead in %d, want at least %d", up.OverheadIn, min)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type sys struct{ recv, sent int64 }
	vals := make(chan sys, 100)
	var mu sync.Mutex
	var cur sys
	probe, err := client.Dial(ctx, client.Options{Addr: b.Addr, ClientID: "probe", CleanStart: true, Version: 5,
		OnMessage: func(m client.Message) {
			v, _ := strconv.ParseInt(string(m.Payload), 10, 64)
			mu.Lock()
			defer mu.Unlock()
			switch m.Topic {
			case "$SYS/broker/bytes/received":
				cur.recv = v
			case "$SYS/broker/bytes/sent":
				cur.sent = v
			}
			select {
			case vals <- cur:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if _, err := probe.Subscribe(ctx, client.Subscription{Filter: "$SYS/broker/bytes/+"}); err != nil {
		t.Fatal(err)
	}
	var last sys
	var probeOut int64
	for {
		// CONNECT and SUBSCRIBE: read each time, as the writer counts
		// the SUBSCRIBE only after its write returned, which may be
		// after the SUBACK came back.
		probeOut = probe.Traffic().SocketOut
		select {
		case v := <-vals:
			last = v
		case <-ctx.Done():
			t.Fatalf("Mosquitto counted %d bytes received, want %d (uplink %d + probe %d); sent %d",
				last.recv, up.Sent()+probeOut, up.Sent(), probeOut, last.sent)
		}
		if last.recv != up.Sent()+probeOut || last.sent == 0 {
			continue
		}
		probeIn := probe.Traffic().SocketIn
		if last.sent < up.Received() || last.sent > up.Received()+probeIn {
			t.Errorf("Mosquitto sent %d bytes, want %d (uplink) + up to %d (probe)", last.sent, up.Received(), probeIn)
		}
		break
	}
	t.Logf("uplink sent %d bytes (data %v, overhead %d), received %d (overhead %d); Mosquitto agrees",
		up.Sent(), up.Data, up.Overhead, up.Received(), up.OverheadIn)

	// A restart keeps the day's and month's totals.
	u2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	st2 := u2.Status().Meter
	if st2.MonthUsage.Total() != st.MonthUsage.Total() || st2.DayUsage.Total() != st.DayUsage.Total() || st.MonthUsage.Total() != up.Total() {
		t.Errorf("after restart: month %d day %d, before: month %d day %d process %d",
			st2.MonthUsage.Total(), st2.DayUsage.Total(), st.MonthUsage.Total(), st.DayUsage.Total(), up.Total())
	}
}

// FuzzOpenMeter: whatever the meter file holds, opening it neither fails
// nor panics; what does not decode is set aside and counting starts from
// zero.
func FuzzOpenMeter(f *testing.F) {
	good, _ := json.Marshal(meterState{Day: "2026-12-07", MonthStart: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		MonthUsage: Usage{Data: map[string]int64{"telemetry": 5}, Overhead: 1}, MonthThinned: 2})
	for _, s := range [][]byte{good, nil, []byte("{"), []byte(`{"day":5}`), []byte(`{"month_usage":{"data":{"a":-1}}}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, meterFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		now := func() time.Time { return time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC) }
		m, err := openMeter(dir, 1, time.Minute, now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("openMeter: %v", err)
		}
		if st := m.status(); st.Day != "2026-12-07" || !st.MonthStart.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("day %s month %v", st.Day, st.MonthStart)
		}
	})
}

// rawCounter counts the bytes of the connections its dialer makes, below
// everything the uplink does to them.
type rawCounter struct{ out, in atomic.Int64 }

type rawConn struct {
	net.Conn
	c *rawCounter
}

func (r *rawConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.c.in.Add(int64(n))
	return n, err
}

func (r *rawConn) Write(b []byte) (int, error) {
	n, err := r.Conn.Write(b)
	r.c.out.Add(int64(n))
	return n, err
}

func (rc *rawCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c, c: rc}, nil
}

// TestMeterTLS: over mTLS the meter counts the TLS records, handshakes
// included, as the socket carried them: its totals equal the bytes under
// the TLS layer, and the overhead holds the handshake (certificates both
// ways).
func TestMeterTLS(t *testing.T) {
	b, good, _ := tlsMosquitto(t, t.TempDir())
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 2, 100, 50, 1)
	var raw rawCounter
	u, stop := startUplink(t, Options{URL: "mqtts://" + b.Addr, ClientID: "gw-meter-tls", Username: "gw",
		Password: []byte("s3cret"), CAFile: good.ca, CertFile: good.clientCert, KeyFile: good.clientKey,
		LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q, Dialer: raw.dial})
	waitDrained(t, q, 20*time.Second)
	stop()
	m := u.Status().Meter.Process
	if m.Sent() != raw.out.Load() || m.Received() != raw.in.Load() {
		t.Errorf("meter sent %d received %d, socket %d %d", m.Sent(), m.Received(), raw.out.Load(), raw.in.Load())
	}
	if m.Data["telemetry"] == 0 || m.Overhead < 500 || m.OverheadIn < 500 {
		t.Errorf("usage %+v: want telemetry data and the TLS handshake in the overhead", m)
	}
	t.Logf("over mTLS: sent %d (data %v, overhead %d), received %d (overhead %d)", m.Sent(), m.Data, m.Overhead, m.Received(), m.OverheadIn)
}
