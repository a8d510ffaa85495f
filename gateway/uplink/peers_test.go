package uplink

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// The uplink against the brokers of Debian's packages other than
// Mosquitto's defaults, each a row of issue 15's table: it must negotiate
// what they take and drain every device's seq without a gap.

// drainTo drains a backlog at QoS 2 (the gateway's records, QoS 0 in the
// queue, at the uplink's qos 2) to addr and returns the uplink's status
// and how many connections it dialled.
func drainTo(t *testing.T, addr string, n int) (Status, int64) {
	return drainProto(t, addr, addr, "", n)
}

// drainProto is drainTo with the collector on colAddr and the uplink's
// protocol.
func drainProto(t *testing.T, addr, colAddr, protocol string, n int) (Status, int64) {
	t.Helper()
	col := newCollector(t, colAddr, "col-"+protocol)
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 4, n, 100, 0)
	dial, dials := countingDialer()
	u, stop := startUplink(t, Options{URL: "mqtt://" + addr, ClientID: "gw", QoS: 2, Protocol: protocol, LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Dialer: dial, Log: testLog(t),
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 2 * time.Second})
	defer stop()
	col.waitFor(t, n, 60*time.Second)
	waitDrained(t, q, 20*time.Second)
	col.check(t, n, n) // QoS 1 at the cloud: a resend may duplicate
	return u.Status(), dials.Load()
}

// TestNATS: NATS answers 5.0 with a 3.1.1 CONNACK (20 02 00 01) and drops
// the link on a QoS 2 PUBLISH. Before: no connection at all; then ~1.3
// reconnects/s, each firing the will.
func TestNATS(t *testing.T) {
	nats := mqtttest.StartNATS(t)
	// Count the wills the cloud publishes: before, 56 "offline" against
	// one "online".
	var mu sync.Mutex
	status := map[string]int{}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	watch, err := client.Dial(ctx, client.Options{Addr: nats.Addr, ClientID: "watch", CleanStart: true,
		OnMessage: func(m client.Message) {
			mu.Lock()
			status[string(m.Payload)]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	if _, err := watch.Subscribe(ctx, client.Subscription{Filter: remotePrefix + "/status", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	st, dials := drainTo(t, nats.Addr, 2000)
	if st.Protocol != "3.1.1" || !strings.Contains(st.ProtocolReason, "3.1.1 CONNACK") {
		t.Errorf("protocol %q (%q), want 3.1.1 after NATS's 3.1.1 CONNACK", st.Protocol, st.ProtocolReason)
	}
	if st.MaxQoS != 1 || st.QoSReason == "" || st.Downgraded == 0 {
		t.Errorf("max qos %d (%q), %d downgraded: want 1 with a reason", st.MaxQoS, st.QoSReason, st.Downgraded)
	}
	// At most: the 5.0 and 3.1.1 handshakes, two closes after the same
	// QoS 2 PUBLISH (if the SUBACK did not tell first), then one
	// connection for good.
	if dials > 5 {
		t.Errorf("%d connections dialled, want ≤ 5", dials)
	}
	mu.Lock()
	// The two closes that told, and the uplink's own at its stop.
	if status["offline"] > 3 {
		t.Errorf("%d offline (wills) against %d online, want at most 3", status["offline"], status["online"])
	}
	mu.Unlock()
	t.Logf("status %+v, %d dials", st, dials)
}

// TestMosquittoMaxQoS1Batched: batched records sent at QoS 1 to a cloud
// that takes no QoS 2 count as downgraded, one by one, as unbatched
// records do.
func TestMosquittoMaxQoS1Batched(t *testing.T) {
	b := mqtttest.StartMosquitto(t, append(brokerConf, "max_qos 1")...)
	const n = 600
	col := newCollector(t, b.Addr, "col")
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fillDemo(t, q, loadDemo(t), 0, n, 2)
	u, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw", QoS: 2, LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Log: testLog(t),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		Batch: &BatchOptions{MaxRecords: 100, MaxDelay: 50 * time.Millisecond}})
	stop = sync.OnceFunc(stop)
	defer stop()
	waitDrained(t, q, 30*time.Second)
	col.waitFor(t, n, 30*time.Second)
	// Every record asked for QoS 2 and went at 1, batched or not (the
	// demo's alarm and status records go alone).
	if st := u.Status(); st.MaxQoS != 1 || st.Acked < n || st.Downgraded != st.Acked {
		t.Errorf("max qos %d, %d downgraded of %d acknowledged: want 1, and every one of at least %d", st.MaxQoS, st.Downgraded, st.Acked, n)
	}
	// The batches' bytes are metered under their records' class (the
	// meter's last sample is taken as the uplink stops).
	stop()
	if d := u.Status().Meter.DayUsage.Data; d["telemetry"] == 0 || d[""] != 0 {
		t.Errorf("data bytes by class %v: want the batches under telemetry", d)
	}
}

// TestMosquittoMaxQoS1: Mosquitto with max_qos 1 announces Maximum QoS 1
// in CONNACK; before, the uplink sent QoS 2 and looped on DISCONNECT
// 0x9B.
func TestMosquittoMaxQoS1(t *testing.T) {
	b := mqtttest.StartMosquitto(t, append(brokerConf, "max_qos 1")...)
	st, dials := drainTo(t, b.Addr, 2000)
	if st.Protocol != "5.0" || st.MaxQoS != 1 || st.QoSReason != "server maximum_qos 1" {
		t.Errorf("protocol %q max qos %d (%q), want 5.0 and 1 for server maximum_qos 1", st.Protocol, st.MaxQoS, st.QoSReason)
	}
	if st.Downgraded < 2000 || dials != 1 {
		t.Errorf("%d downgraded, %d dials: want every record, one connection", st.Downgraded, dials)
	}
	if testing.Short() {
		return
	}
	// At 3.1.1 there is no Maximum QoS in CONNACK: the SUBACK granting 1,
	// or the closes after a QoS 2 PUBLISH, tell.
	st, dials = drainProto(t, b.Addr, b.Addr, "3.1.1", 2000)
	if st.Protocol != "3.1.1" || st.MaxQoS != 1 || st.QoSReason == "" || dials > 3 {
		t.Errorf("3.1.1: protocol %q max qos %d (%q), %d dials: want 1 with a reason, ≤ 3 dials", st.Protocol, st.MaxQoS, st.QoSReason, dials)
	}
	t.Logf("3.1.1: %+v, %d dials", st, dials)
}

// TestClosedBeforeConnackOnce: a NAT or load balancer that accepts one
// connection and closes it before CONNACK does not switch the uplink to
// 3.1.1 (before: for the life of the process).
func TestClosedBeforeConnackOnce(t *testing.T) {
	b := mqtttestStart(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for first := true; ; first = false {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if first {
				c.Read(make([]byte, 64)) // the CONNECT, unanswered
				c.Close()
				continue
			}
			go proxy(c, b.Addr)
		}
	}()
	st, dials := drainProto(t, l.Addr().String(), b.Addr, "", 200)
	if st.Protocol != "5.0" || dials != 2 {
		t.Errorf("protocol %q (%q) after %d dials, want 5.0 at the second", st.Protocol, st.ProtocolReason, dials)
	}
}

// proxy copies c to and from a new connection to addr until either ends.
func proxy(c net.Conn, addr string) {
	defer c.Close()
	s, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
}

// TestRabbitMQ: RabbitMQ 3.10 closes a 5.0 connection without a word and
// answers a QoS 2 PUBLISH with PUBACK. Slow to start: scripts/test-clouds.sh.
func TestRabbitMQ(t *testing.T) {
	r := mqtttest.StartRabbitMQ(t)
	st, _ := drainTo(t, r.Addr, 2000)
	if st.Protocol != "3.1.1" || !strings.Contains(st.ProtocolReason, "closed 5.0") {
		t.Errorf("protocol %q (%q), want 3.1.1 after 5.0 was closed twice", st.Protocol, st.ProtocolReason)
	}
	if st.MaxQoS != 1 || st.QoSReason == "" || st.Downgraded < 1 {
		t.Errorf("max qos %d (%q), %d downgraded: want 1 with a reason", st.MaxQoS, st.QoSReason, st.Downgraded)
	}
	t.Logf("status %+v", st)

	// A client that subscribed to nothing learns it from the PUBACK its
	// QoS 2 PUBLISH gets: delivered at least once, and said so.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: r.Addr, ClientID: "pub", CleanStart: true,
		ReconnectMin: 50 * time.Millisecond, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Publish(ctx, client.Message{Topic: "x/y", Payload: []byte("1"), QoS: 2}); err != nil {
		t.Fatal(err)
	}
	if cs := cl.Status(); cs.MaxQoS != 1 || cs.QoSReason != "server answered PUBACK to QoS 2" || cs.Downgraded != 1 {
		t.Errorf("client status %+v, want QoS 1 after a PUBACK to QoS 2, one message downgraded", cs)
	}
}

// TestQoSDecidedWhenSent: the gateway's records (QoS 0 in the queue) go
// out at the uplink's qos when they are sent, so that a changed qos
// applies to a backlog; a record stamped QoS 2 by an earlier version
// still drains.
func TestQoSDecidedWhenSent(t *testing.T) {
	b := mqtttestStart(t)
	got := make(chan client.Message, 16)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sub, err := client.Dial(ctx, client.Options{Addr: b.Addr, ClientID: "sub", CleanStart: true,
		OnMessage: func(m client.Message) { got <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, client.Subscription{Filter: remotePrefix + "/#", QoS: 2}); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, t.TempDir())
	defer q.Close()
	put := func(name string, qos byte) {
		r := gateway.Record{Topic: localPrefix + "/telemetry/" + name, Payload: []byte(name), QoS: qos, Time: time.Now()}
		b, _ := r.MarshalBinary()
		if _, err := q.Put(gateway.ClassTelemetry, b); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	for _, step := range []struct {
		qos  byte
		recs map[string]byte // name → QoS stamped in the queue
		want map[string]byte // name → QoS at the cloud
	}{
		{2, map[string]byte{"a": 0}, map[string]byte{"a": 2}},
		{1, map[string]byte{"b": 0, "old": 2}, map[string]byte{"b": 1, "old": 2}},
	} {
		for name, qos := range step.recs {
			put(name, qos)
		}
		_, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw", QoS: step.qos, LocalPrefix: localPrefix,
			TopicPrefix: remotePrefix, Queue: q, StateDir: state})
		for range step.want {
			var m client.Message
			for {
				m = <-got
				if !strings.HasSuffix(m.Topic, "/status") {
					break
				}
			}
			name := string(m.Payload)
			if m.QoS != step.want[name] {
				t.Errorf("qos %d: %q arrived at QoS %d, want %d", step.qos, name, m.QoS, step.want[name])
			}
		}
		waitDrained(t, q, 10*time.Second)
		stop()
	}
}

// TestNATSCluster: three NATS nodes with JetStream MQTT; the node the
// uplink is connected to is killed mid-drain: the uplink moves to another
// node of urls, its session and queue carry over, and every device's seq
// arrives without a gap.
//
// JetStream replicated on three nodes takes about 100 QoS 1 messages/s
// here and the test about 25 s: it runs with EDGEGW_TEST_CLOUDS=1
// (scripts/test-clouds.sh).
func TestNATSCluster(t *testing.T) {
	if os.Getenv(mqtttest.CloudsEnv) != "1" {
		t.Skipf("a 3-node NATS cluster test takes about 25 s: set %s=1 (scripts/test-clouds.sh)", mqtttest.CloudsEnv)
	}
	start := time.Now()
	nodes := mqtttest.StartNATSCluster(t, 3)
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	const n = 1000 // JetStream R3 takes ~100 QoS 1 messages/s on two busy cores
	// The collector sits on the last node; the uplink starts on the
	// first, which is killed.
	col := newCollector(t, nodes[2].Addr, "col")
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 4, n, 100, 0)
	urls := []string{"mqtt://" + nodes[1].Addr, "mqtt://" + nodes[2].Addr}
	u, stop := startUplink(t, Options{URL: "mqtt://" + nodes[0].Addr, URLs: urls, ClientID: "gw", QoS: 1,
		LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Log: testLog(t),
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second, Keepalive: 5 * time.Second})
	defer stop()
	col.waitFor(t, 200, 30*time.Second)
	first := u.Status().Server
	if first != nodes[0].Addr {
		t.Fatalf("connected to %s, want the first url %s", first, nodes[0].Addr)
	}
	nodes[0].Kill()
	killed := time.Now()
	t.Logf("killed %s after %d records, %v after the start", nodes[0].Name, col.count(), killed.Sub(start).Round(time.Millisecond))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 1; col.count() < n; i++ {
		<-tick.C
		if i%100 == 0 {
			t.Logf("%d of %d records; uplink %+v", col.count(), n, u.Status())
		}
		if i == 900 {
			t.Fatalf("%d of %d records after 90 s", col.count(), n)
		}
	}
	t.Logf("all records %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitDrained(t, q, 30*time.Second)
	st := u.Status()
	if st.Server == first || !st.Connected {
		t.Errorf("status %+v after %s was killed, want connected to another node", st, first)
	}
	col.check(t, n, n) // QoS 1: what was in flight may arrive twice
	t.Logf("status %+v", st)
}
