package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// BenchmarkLink drains a backlog of b.N demo readings (five devices, as
// the demo makes them) to a Mosquitto ("remote") over an emulated link,
// the profile EDGEGW_LINK_PROFILE (default lte) of mqtttest.Links:
//
//   - bridge-qos1: Mosquitto's bridge between a local Mosquitto holding
//     the backlog and the remote (MQTT 3.1.1, cleansession false);
//   - unbatched-qos1, batched-qos1, batched-qos2: the uplink, in a child
//     process (this test binary again) so that its CPU time is its own.
//
// Every row has the same window, linkWindow: max_inflight_messages of
// both brokers, which the remote announces to the uplink as its Receive
// Maximum. The default is 65000, near MQTT's largest, because Mosquitto 2.0.11
// (Debian 12) keeps no smaller window but 1 while its bridge drains a
// queue: on each PUBACK db__message_delete_outgoing (src/database.c) moves
// up to max_inflight_messages queued messages into flight, counting only
// the messages ahead of the acknowledged one (none, when acknowledgements
// come in order), not those in flight (reported as eclipse/mosquitto#2301;
// 2.0.13 reworked the in-flight quota). A bridge at MQTT 5, held to the
// remote's Receive Maximum, goes past it the same way. So the window each row really had is
// measured, not assumed: max-inflight is the most QoS 1/2 PUBLISHes the
// forwarder had unacknowledged at once, read off the link (windowTracker).
//
// The clock runs from the first byte the forwarder sends up the link
// (its CONNECT) until a subscriber on the remote has every reading. Each
// row reports readings/s, the bytes that crossed the link per reading up
// and down (TCP payload: MQTT and TLS-less framing, no TCP/IP headers),
// the forwarder's CPU time per reading and max-inflight.
// scripts/bench-link.sh runs it.
func BenchmarkLink(b *testing.B) {
	name := os.Getenv("EDGEGW_LINK_PROFILE")
	if name == "" {
		name = "lte"
	}
	prof, err := mqtttest.LinkProfile(name)
	if err != nil {
		b.Fatal(err)
	}
	rows := []struct {
		name    string
		bridge  bool
		batched bool
		qos     byte
	}{
		{"bridge-qos1", true, false, 1},
		{"unbatched-qos1", false, false, 1},
		{"batched-qos1", false, true, 1},
		{"batched-qos2", false, true, 2},
	}
	for _, r := range rows {
		b.Run(r.name, func(b *testing.B) {
			demo := loadDemo(b)
			remote := startBenchBroker(b, "max_inflight_messages "+linkWindow())
			link := startLink(b, prof, remote.addr)
			sub := newReadingCounter(b, remote.addr, r.qos, b.N)
			var cpu time.Duration
			if r.bridge {
				cpu = benchBridge(b, demo, link, r.qos, sub)
			} else {
				cpu = benchUplink(b, demo, link, r.qos, r.batched, sub)
			}
			end := sub.wait(b, 30*time.Minute)
			b.StopTimer()
			el := end.Sub(link.firstUp())
			up, down := link.bytes()
			b.ReportMetric(float64(b.N)/el.Seconds(), "readings/s")
			b.ReportMetric(float64(up)/float64(b.N), "up-B/reading")
			b.ReportMetric(float64(down)/float64(b.N), "down-B/reading")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/reading")
			b.ReportMetric(float64(link.maxInflight()), "max-inflight")
		})
	}
}

// linkWindow is max_inflight_messages for both brokers of BenchmarkLink:
// EDGEGW_BENCH_INFLIGHT (startBenchBroker sets the same), else 65000:
// above what the bridge keeps over lte or 3g, and below MQTT's largest
// Receive Maximum, 65535, because there the uplink's client ran out of
// packet identifiers when one was held by a SUBSCRIBE left unanswered,
// and the uplink took that for a record it could never publish.
func linkWindow() string {
	if n := benchInflight(); n != "" {
		return n
	}
	return "65000"
}

// readingCounter subscribes to bench/# on the remote and counts readings,
// those of batches included.
type readingCounter struct {
	mu   sync.Mutex
	n    int
	want int
	end  time.Time
	done chan struct{}
	errs []string
}

func newReadingCounter(b *testing.B, addr string, qos byte, want int) *readingCounter {
	b.Helper()
	c := &readingCounter{want: want, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "bench-sub", SessionExpiry: time.Hour, OnMessage: c.add})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	if _, err := cl.Subscribe(ctx, client.Subscription{Filter: "bench/#", QoS: qos}); err != nil {
		b.Fatal(err)
	}
	return c
}

func (c *readingCounter) add(m client.Message) {
	n := 1
	switch {
	case strings.Contains(m.Topic, "/telemetry/"):
	case strings.HasSuffix(m.Topic, "/"+BatchTopicSuffix):
		msgs, err := DecodeBatch(m.Payload, BatchDecodeLimit)
		if err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
			return
		}
		n = len(msgs)
	default:
		return // the uplink's status
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.n
	c.n += n
	if before < c.want && c.n >= c.want {
		c.end = time.Now()
		close(c.done)
	}
}

func (c *readingCounter) wait(b *testing.B, timeout time.Duration) time.Time {
	b.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		b.Fatalf("%d of %d readings arrived within %v; errors %q", c.n, c.want, timeout, c.errs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end
}

// benchBridge queues the backlog in a local Mosquitto whose bridge cannot
// reach the remote (the link is down), then brings the link up. It
// returns the local Mosquitto's CPU time from then until every reading
// arrived.
func benchBridge(b *testing.B, demo *demoTemplates, link *emulatedLink, qos byte, sub *readingCounter) time.Duration {
	link.proxy.Stop()
	local := startBenchBroker(b, "connection cloud", "address "+link.addr(), "cleansession false",
		"bridge_protocol_version mqttv311", fmt.Sprintf("topic bench/# out %d", qos),
		"restart_timeout 1", "start_type automatic", "max_inflight_messages "+linkWindow())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pub, err := client.Dial(ctx, client.Options{Addr: local.addr, ClientID: "bench-pub", CleanStart: true})
	if err != nil {
		b.Fatal(err)
	}
	publishAll(ctx, b, pub, b.N, func(i int) client.Message {
		dev, p := demo.reading(i)
		return client.Message{Topic: "bench/V1/telemetry/" + dev, Payload: p, QoS: qos, Retain: true}
	})
	b.ResetTimer()
	pid := local.cmd.Process.Pid
	cpu0 := cpuTime(pid)
	if err := link.proxy.Start(); err != nil {
		b.Fatal(err)
	}
	sub.wait(b, 30*time.Minute)
	return cpuTime(pid) - cpu0
}

const (
	linkChildQueueEnv = "EDGEGW_LINK_CHILD_QUEUE"
	linkChildAddrEnv  = "EDGEGW_LINK_CHILD_ADDR"
	linkChildBatchEnv = "EDGEGW_LINK_CHILD_BATCH"
)

// benchUplink queues the backlog and runs the uplink in a child process
// until the queue is empty. It returns the child's CPU time.
func benchUplink(b *testing.B, demo *demoTemplates, link *emulatedLink, qos byte, batched bool, sub *readingCounter) time.Duration {
	dir := b.TempDir()
	q := openQueue(b, dir)
	for i := range b.N {
		dev, p := demo.reading(i)
		r := gateway.Record{Topic: "vehicles/V1/telemetry/" + dev, Payload: p, QoS: qos, Retain: true, Time: time.Now()}
		rec, err := r.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := q.Put(gateway.ClassTelemetry, rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLinkBenchChild$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), linkChildQueueEnv+"="+dir, linkChildAddrEnv+"="+link.addr(),
		linkChildBatchEnv+"="+strconv.FormatBool(batched))
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The child ends when the remote has acknowledged every record (or it
	// failed): then the readings are at most moments from the subscriber.
	if err := cmd.Wait(); err != nil {
		b.Fatalf("uplink child: %v", err)
	}
	sub.wait(b, 2*time.Minute)
	ps := cmd.ProcessState
	return ps.UserTime() + ps.SystemTime()
}

// TestLinkBenchChild is BenchmarkLink's uplink process; it does nothing
// in a normal run.
func TestLinkBenchChild(t *testing.T) {
	dir := os.Getenv(linkChildQueueEnv)
	if dir == "" {
		t.Skip("child process of BenchmarkLink only")
	}
	q := openQueue(t, dir)
	defer q.Close()
	o := Options{URL: "mqtt://" + os.Getenv(linkChildAddrEnv), ClientID: "gw", LocalPrefix: "vehicles/V1",
		TopicPrefix: "bench/V1", Queue: q, StateDir: t.TempDir(),
		// Warnings (a lost connection, a rejected record) to the
		// parent's stderr; bench-link.sh leaves log lines out of its
		// table.
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if os.Getenv(linkChildBatchEnv) == "true" {
		o.Batch = &BatchOptions{MaxDelay: 200 * time.Millisecond}
	}
	// A slow poll: its wake-ups are counted in the uplink's CPU.
	u := drainChild(t, o, 50*time.Millisecond)
	st, qs := u.Status(), q.Stats()
	if st.Rejected+st.Expired+st.Malformed > 0 || qs.Dropped > 0 {
		t.Errorf("uplink child: records not delivered: %+v; queue dropped %d", st, qs.Dropped)
	}
}
