package uplink

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// fillDemo queues the demo's readings [from, from+n) (see
// demoTemplates.reading) as the gateway does, retained, at qos, plus an
// alarm per 100 readings.
func fillDemo(t testing.TB, q *buffer.Queue, demo *demoTemplates, from, n int, qos byte) {
	t.Helper()
	for i := from; i < from+n; i++ {
		dev, p := demo.reading(i)
		r := gateway.Record{Topic: localPrefix + "/telemetry/" + dev, Payload: p, QoS: qos, Retain: true, Time: time.Now()}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Put(gateway.ClassTelemetry, b); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			a := gateway.Record{Topic: fmt.Sprintf("%s/alarm/%s/p", localPrefix, dev), Payload: fmt.Appendf(nil, `{"v":%d}`, i/100), QoS: qos, Retain: true}
			b, _ := a.MarshalBinary()
			if _, err := q.Put(gateway.ClassAlarm, b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLinkDrain drains a backlog of demo readings through every link
// profile, batched and not, at QoS 1 and 2: every device's seq arrives
// gap-free, without duplicates (flaky at QoS 1 excepted: resends after a
// cut are allowed there). On flaky (its weather ten times faster) readings
// keep coming for a while as the link cuts and stalls.
// EDGEGW_LINK_FLAKY_SECONDS lengthens that while (default 8).
func TestLinkDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	live := 8 * time.Second
	if s := os.Getenv("EDGEGW_LINK_FLAKY_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("EDGEGW_LINK_FLAKY_SECONDS: %v", err)
		}
		live = time.Duration(n) * time.Second
	}
	demo := loadDemo(t)
	profiles := []struct {
		name string
		n    int           // backlog
		live time.Duration // then readings at 50/s for this long
	}{
		{"lan", 3000, 0},
		{"lte", 600, 0},
		{"3g", 300, 0},
		{"flaky", 200, live},
	}
	for _, p := range profiles {
		prof, err := mqtttest.LinkProfile(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if prof.CutEvery > 0 {
			prof = prof.Faster(10)
		}
		for _, batched := range []bool{false, true} {
			for _, qos := range []byte{1, 2} {
				name := fmt.Sprintf("%s/batched=%v/qos%d", p.name, batched, qos)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					b := mqtttest.StartMosquitto(t, brokerConf...)
					link := startLink(t, prof, b.Addr)
					col := newCollector(t, b.Addr, "col")
					q := openQueue(t, t.TempDir())
					defer q.Close()
					fillDemo(t, q, demo, 0, p.n, qos)
					o := Options{URL: "mqtt://" + link.addr(), ClientID: "gw", LocalPrefix: localPrefix,
						TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Keepalive: time.Second,
						ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
					if batched {
						o.Batch = &BatchOptions{MaxDelay: 200 * time.Millisecond}
					}
					u, stop := startUplink(t, o)
					defer stop()
					total := p.n
					if p.live > 0 {
						tick := time.NewTicker(20 * time.Millisecond)
						end := time.Now().Add(p.live)
						for time.Now().Before(end) {
							<-tick.C
							fillDemo(t, q, demo, total, 1, qos)
							total++
						}
						tick.Stop()
					}
					col.waitFor(t, total, 60*time.Second)
					waitDrained(t, q, 30*time.Second)
					maxDups := 0
					if qos == 1 && prof.CutEvery > 0 {
						maxDups = total
					}
					col.check(t, total, maxDups)
					col.mu.Lock()
					alarms, batches, dups := col.alarms, col.batches, col.dups
					col.mu.Unlock()
					if want := (total + 99) / 100; alarms < want {
						t.Errorf("%d alarms, want %d", alarms, want)
					}
					if batched != (batches > 0) {
						t.Errorf("%d batches arrived, batched %v", batches, batched)
					}
					up, down := link.bytes()
					t.Logf("%v; %d readings in %d batches, %d duplicates; %.1f bytes up, %.1f down per reading; status %+v",
						link, total, batches, dups, float64(up)/float64(total), float64(down)/float64(total), u.Status())
				})
			}
		}
	}
}

// TestBatchSplit: batches far above the Maximum Packet Size Mosquitto
// announces are split until they fit, whether the uplink learns the limit
// before sending (connected) or after queueing them (the broker down at
// first): every reading arrives once. In the second case the halves of a
// batch refused on reconnect may come after batches made since: the
// readings arrive complete, not necessarily in order.
func TestBatchSplit(t *testing.T) {
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("down=%v", down), func(t *testing.T) {
			b := mqtttest.StartMosquitto(t, append([]string{"max_packet_size 4000"}, brokerConf...)...)
			const n = 1000
			col := newCollector(t, b.Addr, "col")
			seen := newSeenSet(t, b.Addr)
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fillDemo(t, q, loadDemo(t), 0, n, 2)
			if down {
				b.Stop()
			}
			u, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw", LocalPrefix: localPrefix,
				TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(),
				ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
				Batch: &BatchOptions{MaxRecords: 400, MaxDelay: 50 * time.Millisecond, Compression: CompressNone}})
			defer stop()
			if down {
				b.Start()
			}
			waitDrained(t, q, 60*time.Second)
			if !down {
				col.waitFor(t, n, 30*time.Second)
				col.check(t, n, 0)
			}
			seen.waitFor(t, n, 30*time.Second)
			col.mu.Lock()
			batches := col.batches
			col.mu.Unlock()
			if st := u.Status(); st.Rejected != 0 || batches < n/20 {
				t.Errorf("%d batches, status %+v: want batches of at most ~18 readings, none rejected", batches, st)
			}
		})
	}
}

// seenSet counts distinct readings (topic, payload) and duplicates.
type seenSet struct {
	mu     sync.Mutex
	seen   map[string]bool
	dups   int
	signal chan struct{}
}

func newSeenSet(t *testing.T, addr string) *seenSet {
	t.Helper()
	s := &seenSet{seen: map[string]bool{}, signal: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: addr, ClientID: "seen", SessionExpiry: time.Hour,
		OnMessage: func(m client.Message) {
			msgs, err := DecodeBatch(m.Payload, BatchDecodeLimit)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, r := range msgs {
				k := r.Topic + " " + string(r.Payload)
				if s.seen[k] && !m.Dup {
					s.dups++
				}
				s.seen[k] = true
			}
			s.mu.Unlock()
			select {
			case s.signal <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.Subscribe(ctx, client.Subscription{Filter: remotePrefix + "/" + BatchTopicSuffix, QoS: 2}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *seenSet) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		got, dups := len(s.seen), s.dups
		s.mu.Unlock()
		if dups > 0 {
			t.Fatalf("%d duplicate readings", dups)
		}
		if got >= n {
			return
		}
		select {
		case <-s.signal:
		case <-deadline:
			t.Fatalf("%d of %d readings arrived within %v", got, n, timeout)
		}
	}
}

// TestBatchBytesInFlight: the batches in flight are bounded in bytes, not
// only by the cloud's Receive Maximum: over a slow link with a large
// window the drain does not read its whole backlog into memory (before:
// every batch of the backlog in flight at once).
func TestBatchBytesInFlight(t *testing.T) {
	defer func(n int64) { batchBytesInFlight = n }(batchBytesInFlight)
	batchBytesInFlight = 64 << 10
	b := mqtttest.StartMosquitto(t, append([]string{"max_inflight_messages 1000"}, brokerConf...)...)
	prof, err := mqtttest.LinkProfile("lte")
	if err != nil {
		t.Fatal(err)
	}
	link := startLink(t, prof, b.Addr)
	const n = 3000
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fillDemo(t, q, loadDemo(t), 0, n, 1)
	// Batches of up to 4 KiB of JSON (about 20 demo readings): 150 of
	// them, and 64 KiB of room holds 16.
	_, stop := startUplink(t, Options{URL: "mqtt://" + link.addr(), ClientID: "gw", LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(),
		Batch: &BatchOptions{MaxRecords: 500, MaxBytes: 4 << 10, MaxDelay: 50 * time.Millisecond}})
	defer stop()
	waitDrained(t, q, 60*time.Second)
	// The 30 alarms (sent alone, first) and the status message may still
	// be in flight when the batches start; a few batches come out short
	// of 4 KiB. Without the bound: 261.
	if got, max := link.maxInflight(), int64(16+31+5); got > max {
		t.Errorf("%d PUBLISHes in flight at most, want at most %d: 16 batches and the alarms", got, max)
	}
}
