package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

const (
	localPrefix  = "vehicles/V1"
	remotePrefix = "cloud/V1"
)

// brokerConf keeps every message for a slow subscriber.
var brokerConf = []string{"max_queued_messages 0"}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openQueue(t testing.TB, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Fsync: buffer.FsyncNever, CursorInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// fill queues n telemetry records spread over devs devices, plus one alarm
// per 100, with payloads "dev seq" padded to size bytes.
func fill(t testing.TB, q *buffer.Queue, devs, n, size int, qos byte) {
	t.Helper()
	for i := range n {
		dev := i % devs
		p := fmt.Appendf(nil, "%d %d ", dev, i/devs)
		for len(p) < size {
			p = append(p, 'x')
		}
		r := gateway.Record{Topic: fmt.Sprintf("%s/telemetry/d%d", localPrefix, dev), Payload: p, QoS: qos, Time: time.Now()}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Put(gateway.ClassTelemetry, b); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			a := gateway.Record{Topic: fmt.Sprintf("%s/alarm/d%d/p", localPrefix, dev), Payload: fmt.Appendf(nil, "A %d", i/100), QoS: qos}
			b, _ := a.MarshalBinary()
			if _, err := q.Put(gateway.ClassAlarm, b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// collector subscribes in the cloud and checks what arrives.
type collector struct {
	mu     sync.Mutex
	next   map[string]int // device → next expected sequence
	dups   int
	dupLog []string
	// brokerDups are duplicates the broker sent again on its own hop.
	brokerDups int
	total      int
	alarms     int
	batches    int
	errs       []string
	signal     chan struct{}
	cl         *client.Client
}

func newCollector(t testing.TB, addr, id string) *collector {
	t.Helper()
	c := &collector{next: map[string]int{}, signal: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: id, OnMessage: c.add, SessionExpiry: time.Hour, ReceiveMaximum: 20,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Subscribe(ctx, client.Subscription{Filter: remotePrefix + "/telemetry/#", QoS: 2},
		client.Subscription{Filter: remotePrefix + "/alarm/#", QoS: 2},
		client.Subscription{Filter: remotePrefix + "/" + BatchTopicSuffix, QoS: 2}); err != nil {
		t.Fatal(err)
	}
	c.cl = cl
	t.Cleanup(func() { cl.Close() })
	return c
}

func (c *collector) add(m client.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		select {
		case c.signal <- struct{}{}:
		default:
		}
	}()
	if strings.HasSuffix(m.Topic, "/"+BatchTopicSuffix) {
		c.batches++
		msgs, err := DecodeBatch(m.Payload, BatchDecodeLimit)
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("batch: %v", err))
			return
		}
		for _, b := range msgs {
			c.addOne(b.Topic, b.Payload, m.Dup)
		}
		return
	}
	c.addOne(m.Topic, m.Payload, m.Dup)
}

// addOne checks one message: a payload "dev seq …" (fill) or a demo
// reading {"seq":N,…} on …/telemetry/dev (fillDemo).
func (c *collector) addOne(topic string, payload []byte, dup bool) {
	if strings.Contains(topic, "/alarm/") {
		c.alarms++
		return
	}
	var dev string
	var seq int
	if len(payload) > 0 && payload[0] == '{' {
		var r struct{ Seq *int }
		if err := json.Unmarshal(payload, &r); err != nil || r.Seq == nil {
			c.errs = append(c.errs, fmt.Sprintf("payload %q", payload))
			return
		}
		dev, seq = topic[strings.LastIndexByte(topic, '/')+1:], *r.Seq
	} else {
		f := strings.Fields(string(payload))
		if len(f) < 2 {
			c.errs = append(c.errs, fmt.Sprintf("payload %q", payload))
			return
		}
		dev = f[0]
		seq, _ = strconv.Atoi(f[1])
	}
	want := c.next[dev]
	switch {
	case seq == want:
		c.next[dev]++
		c.total++
	case seq < want && dup:
		// Resent by the broker to the collector: the DUP flag is per hop
		// [MQTT-3.3.1-3], so this is not the uplink's duplicate.
		c.brokerDups++
	case seq < want:
		c.dups++
		if c.dups <= 50 {
			c.dupLog = append(c.dupLog, fmt.Sprintf("%s/%d", dev, seq))
		}
	default:
		c.errs = append(c.errs, fmt.Sprintf("device %s: got %d, want %d: lost or out of order", dev, seq, want))
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// waitFor waits until n records arrived, or fails after timeout.
func (c *collector) waitFor(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for c.count() < n {
		select {
		case <-c.signal:
		case <-deadline.C:
			c.mu.Lock()
			errs := c.errs[:min(len(c.errs), 5)]
			c.mu.Unlock()
			t.Fatalf("%d of %d records arrived within %v; first errors: %q", c.count(), n, timeout, errs)
		}
	}
}

func (c *collector) check(t testing.TB, n, maxDups int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.errs {
		if i == 10 {
			break
		}
		t.Error(e)
	}
	if c.total != n {
		t.Errorf("%d records arrived, want %d", c.total, n)
	}
	if c.dups > maxDups {
		t.Errorf("%d duplicates, want at most %d: %v", c.dups, maxDups, c.dupLog)
	}
}

func startUplink(t testing.TB, o Options) (*Uplink, func()) {
	t.Helper()
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	return u, func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	}
}

func waitDrained(t testing.TB, q *buffer.Queue, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for q.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d records after %v", q.Len(), timeout)
		}
		<-tick.C
	}
}

func TestDrain(t *testing.T) {
	b := mqtttest.StartMosquitto(t, brokerConf...)
	tests := []struct {
		name     string
		qos      byte
		protocol string
	}{
		{"qos1", 1, "5"},
		{"qos2", 2, "5"},
		{"qos1-3.1.1", 1, "3.1.1"},
		{"qos2-3.1.1", 2, "3.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 4000
			col := newCollector(t, b.Addr, "col-"+tt.name)
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fill(t, q, 5, n, 200, tt.qos)
			u, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw-" + tt.name, Protocol: tt.protocol,
				LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir()})
			col.waitFor(t, n, 60*time.Second)
			waitDrained(t, q, 10*time.Second)
			st := u.Status()
			stop()
			col.check(t, n, 0)
			if st.Acked != n+n/100 || st.QueueDepth != 0 || !st.Connected {
				t.Errorf("status %+v", st)
			}
			col.mu.Lock()
			if col.alarms != n/100 {
				t.Errorf("%d alarms, want %d", col.alarms, n/100)
			}
			col.mu.Unlock()
		})
	}
}

// TestOversized queues records too large for the cloud broker's Maximum
// Packet Size while the broker is down, more of them than the window
// holds: once connected, they are dropped and counted, and the rest of
// the queue still drains.
func TestOversized(t *testing.T) {
	b := mqtttest.StartMosquitto(t, append([]string{"max_packet_size 1000"}, brokerConf...)...)
	const n, big = 500, 30
	col := newCollector(t, b.Addr, "col")
	q := openQueue(t, t.TempDir())
	defer q.Close()
	for i := range big {
		r := gateway.Record{Topic: localPrefix + "/blob", Payload: make([]byte, 2000+i), Time: time.Now()}
		data, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Put(gateway.ClassTelemetry, data); err != nil {
			t.Fatal(err)
		}
	}
	fill(t, q, 5, n, 100, 1)
	b.Stop()
	u, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw", LocalPrefix: localPrefix, Log: testLog(t),
		TopicPrefix: remotePrefix, Queue: q, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	defer stop()
	for u.Status().InFlight < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	b.Start()
	col.waitFor(t, n, 30*time.Second)
	waitDrained(t, q, 10*time.Second)
	col.check(t, n, 0)
	if st := u.Status(); st.Rejected != big || st.InFlight != 0 {
		t.Errorf("rejected %d, in flight %d; want %d, 0", st.Rejected, st.InFlight, big)
	}
}

// TestBrokerRestart stops the cloud broker twice mid-drain: its
// persistence keeps what it acknowledged, the uplink resends the rest.
func TestBrokerRestart(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := mqtttest.StartMosquitto(t, brokerConf...)
			const n = 20000
			col := newCollector(t, b.Addr, "col")
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fill(t, q, 3, n, 100, qos)
			_, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw", LocalPrefix: localPrefix, Log: testLog(t),
				TopicPrefix: remotePrefix, Queue: q, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
			defer stop()
			for _, at := range []int{n / 4, n / 2} {
				col.waitFor(t, at, 25*time.Second)
				b.Stop()
				b.Start()
			}
			col.waitFor(t, n, 60*time.Second)
			waitDrained(t, q, 10*time.Second)
			maxDups := 0
			if qos == 1 {
				// Per restart, the uplink's window: 20, Mosquitto's
				// receive maximum.
				maxDups = 2 * 20
			}
			col.check(t, n, maxDups)
		})
	}
}

// TestCommandsWhileOffline publishes commands while the gateway is away:
// its persistent session keeps them, and they arrive once it is back,
// exactly once at QoS 2, with their MQTT 5 properties.
func TestCommandsWhileOffline(t *testing.T) {
	addr := mqtttest.Mosquitto(t)
	q := openQueue(t, t.TempDir())
	defer q.Close()
	state := t.TempDir()
	var mu sync.Mutex
	var got []gateway.Record
	arrived := make(chan struct{}, 16)
	o := Options{URL: "mqtt://" + addr, ClientID: "gw", LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q,
		StateDir: state, OnCommand: func(r gateway.Record) {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			arrived <- struct{}{}
		}}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status := make(chan string, 16)
	watcher, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "watch", CleanStart: true,
		OnMessage: func(m client.Message) { status <- string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if _, err := watcher.Subscribe(ctx, client.Subscription{Filter: remotePrefix + "/status", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	expectStatus := func(want string) {
		t.Helper()
		select {
		case s := <-status:
			if s != want {
				t.Fatalf("status %q, want %q", s, want)
			}
		case <-ctx.Done():
			t.Fatalf("no status %q", want)
		}
	}

	u, stop := startUplink(t, o)
	expectStatus("online")
	for tick := time.NewTicker(5 * time.Millisecond); !u.Status().Connected; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("not connected")
		}
	}
	stop()
	expectStatus("offline")

	cloud, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "cloud", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	const n = 5
	for i := range n {
		if err := cloud.Publish(ctx, client.Message{Topic: remotePrefix + "/cmd/seat/heat", QoS: 2,
			Payload: fmt.Appendf(nil, `{"id":"c%d","value":true}`, i), ResponseTopic: "cloud/replies",
			CorrelationData: []byte{byte(i)}, Expiry: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// A result of the gateway's own is not a command.
	cloud.Publish(ctx, client.Message{Topic: remotePrefix + "/cmd/seat/heat/result", QoS: 1, Payload: []byte("{}")})

	_, stop = startUplink(t, o)
	expectStatus("online")
	for range n {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("commands did not arrive")
		}
	}
	// A little longer for any duplicate.
	cloud.Publish(ctx, client.Message{Topic: remotePrefix + "/cmd/seat/heat", QoS: 2, Payload: []byte("last")})
	<-arrived
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n+1 {
		t.Fatalf("%d commands, want %d", len(got), n+1)
	}
	for i, r := range got[:n] {
		want := fmt.Sprintf(`{"id":"c%d","value":true}`, i)
		if r.Topic != localPrefix+"/cmd/seat/heat" || string(r.Payload) != want || r.ResponseTopic != "cloud/replies" ||
			len(r.CorrelationData) != 1 || r.CorrelationData[0] != byte(i) || r.Expiry <= 0 || r.Expiry > time.Hour {
			t.Errorf("command %d = %+v", i, r)
		}
	}
}

func TestRuleMap(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		in   string
		want string
	}{
		{"unchanged", Rule{Filter: "a/#"}, "a/b/c", "a/b/c"},
		{"hash", Rule{Filter: "fleet/bc/#", Prefix: "local/bc"}, "fleet/bc/x/y", "local/bc/x/y"},
		{"plus", Rule{Filter: "fleet/+/cfg", Prefix: "cfg/"}, "fleet/7/cfg", "cfg/7/cfg"},
		{"exact", Rule{Filter: "a/b", Prefix: "c"}, "a/b", "c"},
		{"root", Rule{Filter: "#", Prefix: "in"}, "x/y", "in/x/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.Map(tt.in); got != tt.want {
				t.Errorf("Map(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// fakeLocal is an in-process local broker: Subscribe and Spool.
type fakeLocal struct {
	mu   sync.Mutex
	subs map[string]func(gateway.Record)
	recs [][]byte
}

func (f *fakeLocal) Subscribe(filter string, qos byte, fn func(gateway.Record)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[string]func(gateway.Record){}
	}
	f.subs[filter] = fn
	return func() { f.mu.Lock(); delete(f.subs, filter); f.mu.Unlock() }, nil
}

func (f *fakeLocal) Put(class string, rec []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, rec)
	return uint64(len(f.recs)), nil
}

func TestForward(t *testing.T) {
	f := &fakeLocal{}
	cancel, err := Forward(f, f, []Rule{{Filter: "cabin/+/temp", Prefix: "vehicles/V1/cabin", QoS: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.subs["cabin/+/temp"](gateway.Record{Topic: "cabin/rear/temp", Payload: []byte("21.5")})
	cancel()
	if len(f.subs) != 0 || len(f.recs) != 1 {
		t.Fatalf("subs %d recs %d", len(f.subs), len(f.recs))
	}
	var r gateway.Record
	if err := r.UnmarshalBinary(f.recs[0]); err != nil {
		t.Fatal(err)
	}
	if r.Topic != "vehicles/V1/cabin/rear/temp" || r.QoS != 1 || string(r.Payload) != "21.5" {
		t.Errorf("spooled %+v", r)
	}
}

func TestOutboxReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ob")
	classes := []string{"alarm", "telemetry"}
	ob, err := openOutbox(path, classes)
	if err != nil {
		t.Fatal(err)
	}
	ob.start(5, 1, 2, 1000)
	ob.start(6, 1, 2, 1001)
	ob.received(6)
	ob.start(7, 0, 1, 3)
	ob.complete(7, 0, 3)
	ob.close()
	ob, err = openOutbox(path, classes)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.close()
	got := ob.slots()
	want := []slot{{id: 5, state: slotSent, class: 1, qos: 2, seq: 1000}, {id: 6, state: slotReceived, class: 1, qos: 2, seq: 1001}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slots %v, want %v", got, want)
	}
	if !ob.completed(0, 3) || ob.completed(0, 4) || ob.completed(1, 3) {
		t.Error("completed ring wrong")
	}
	// Other classes: the state is reset.
	ob2, err := openOutbox(path+"2", []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	ob2.close()
}

func mqtttestStart(t *testing.T) *mqtttest.Broker { return mqtttest.StartMosquitto(t, brokerConf...) }
