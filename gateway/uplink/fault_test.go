package uplink

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// tcpProxy forwards the loopback connections it accepts to upstream, each
// as serve(i, client side, broker side) does for the i-th; at the test's
// end it closes them all and waits for serve's goroutines (started with
// wg).
type tcpProxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup

	// mu guards conns, and what an embedding proxy says.
	mu    sync.Mutex
	conns []net.Conn
}

func (p *tcpProxy) start(t *testing.T, upstream string, serve func(i uint64, c, s net.Conn)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln, p.upstream = ln, upstream
	p.wg.Go(func() { p.accept(serve) })
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept(serve func(i uint64, c, s net.Conn)) {
	for i := uint64(0); ; i++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		serve(i, c, s)
	}
}

// faultProxy forwards loopback connections to a broker and injects
// faults at random points: it half-closes a connection in one direction
// (the one fault toxiproxy has no toxic for; cuts, resets and stalls are
// in TestLinkFaults). After faults have been injected it forwards
// cleanly.
type faultProxy struct {
	tcpProxy
	faults   atomic.Int64 // left to inject
	injected sync.Map     // kind → *atomic.Int64
	seed     uint64
}

func newFaultProxy(t *testing.T, upstream string, faults int) *faultProxy {
	t.Helper()
	p := &faultProxy{seed: rand.Uint64()}
	t.Logf("fault proxy seed %d", p.seed)
	p.faults.Store(int64(faults))
	p.start(t, upstream, p.serve)
	return p
}

func (p *faultProxy) count(kind string) {
	v, _ := p.injected.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (p *faultProxy) serve(i uint64, c, s net.Conn) {
	rng := rand.New(rand.NewPCG(p.seed, i))
	// One of the two directions may carry the fault, after a random
	// number of bytes.
	faulty := rng.IntN(2)
	at := rng.Int64N(32 << 10) // client to broker: PUBLISH
	if faulty == 1 {
		at = rng.Int64N(1 << 10) // broker to client: acks
	}
	kind := 2
	stall := time.Duration(300+rng.IntN(1200)) * time.Millisecond
	for dir, pair := range [][2]net.Conn{{c, s}, {s, c}} {
		p.wg.Go(func() {
			if dir != faulty || p.faults.Load() <= 0 {
				io.Copy(pair[1], pair[0])
				pair[1].(*net.TCPConn).CloseWrite()
				return
			}
			io.CopyN(pair[1], pair[0], at)
			if p.faults.Add(-1) < 0 {
				io.Copy(pair[1], pair[0])
				pair[1].(*net.TCPConn).CloseWrite()
				return
			}
			switch kind {
			case 0:
				p.count("cut")
				c.Close()
				s.Close()
			case 1:
				p.count("stall")
				time.Sleep(stall)
				c.Close()
				s.Close()
			case 2:
				p.count("half-close")
				pair[1].(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, pair[0])
			}
		})
	}
}

func (p *faultProxy) String() string {
	s := ""
	p.injected.Range(func(k, v any) bool {
		s += fmt.Sprintf("%s=%d ", k, v.(*atomic.Int64).Load())
		return true
	})
	return s
}

// TestFaultyLink drains through a link that half-closes at random
// points: everything arrives.
func TestFaultyLink(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := mqtttestStart(t)
			const n, faults = 6000, 12
			proxy := newFaultProxy(t, b.Addr, faults)
			col := newCollector(t, b.Addr, "col")
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fill(t, q, 4, n, 200, qos)
			_, stop := startUplink(t, Options{URL: "mqtt://" + proxy.addr(), ClientID: "gw", LocalPrefix: localPrefix,
				TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Keepalive: time.Second,
				ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
			defer stop()
			col.waitFor(t, n, 120*time.Second)
			waitDrained(t, q, 30*time.Second)
			maxDups := 0
			if qos == 1 {
				maxDups = 20 * faults
			}
			col.check(t, n, maxDups)
			t.Logf("faults injected: %v; duplicates %d", proxy, col.dups)
		})
	}
}

// TestLinkFaults drains through an emulated link (toxiproxy) that slices
// every packet into small segments and, one after another, closes
// connections after a random number of bytes, resets them, and stalls
// them (nothing passes, no reset, until the proxy gives up on them):
// everything arrives, at QoS 2 once.
func TestLinkFaults(t *testing.T) {
	for _, batched := range []bool{false, true} {
		for _, qos := range []byte{1, 2} {
			t.Run(fmt.Sprintf("batched=%v/qos%d", batched, qos), func(t *testing.T) {
				const n, faults = 4000, 8
				b := mqtttestStart(t)
				lan, _ := mqtttest.LinkProfile("lan")
				link := startLink(t, lan, b.Addr)
				for _, dir := range []string{"upstream", "downstream"} {
					js := fmt.Sprintf(`{"name":"slicer_%s","type":"slicer","stream":"%s","toxicity":1,"attributes":{"average_size":48,"size_variation":40,"delay":0}}`, dir, dir)
					if _, err := link.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
						t.Fatal(err)
					}
				}
				col := newCollector(t, b.Addr, "col")
				q := openQueue(t, t.TempDir())
				defer q.Close()
				fill(t, q, 4, n, 200, qos)
				o := Options{URL: "mqtt://" + link.addr(), ClientID: "gw", LocalPrefix: localPrefix,
					TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Keepalive: time.Second,
					ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
				// A fault held for a while cuts several connections in a
				// row: QoS 1 may resend a window at each, not at each fault.
				var dials atomic.Int64
				o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}
				if batched {
					o.Batch = &BatchOptions{MaxRecords: 40, MaxDelay: 50 * time.Millisecond}
				}
				_, stop := startUplink(t, o)
				defer stop()
				seed := rand.Uint64()
				t.Logf("fault seed %d", seed)
				rng := rand.New(rand.NewPCG(seed, 0))
				var kinds []string
				for i := range faults {
					var js string
					hold := time.Duration(100+rng.IntN(400)) * time.Millisecond
					switch i % 3 {
					case 0:
						js = fmt.Sprintf(`{"name":"fault","type":"limit_data","stream":"upstream","toxicity":1,"attributes":{"bytes":%d}}`, 200+rng.IntN(8000))
					case 1:
						js = fmt.Sprintf(`{"name":"fault","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":%d}}`, rng.IntN(100))
					case 2:
						js = fmt.Sprintf(`{"name":"fault","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":%d}}`, hold.Milliseconds())
						hold += 200 * time.Millisecond
					}
					if _, err := link.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
						t.Fatal(err)
					}
					kinds = append(kinds, [...]string{"close", "reset", "stall"}[i%3])
					time.Sleep(hold)
					link.proxy.Toxics.RemoveToxic(context.Background(), "fault")
					time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
				}
				col.waitFor(t, n, 120*time.Second)
				waitDrained(t, q, 30*time.Second)
				maxDups := 0
				if qos == 1 {
					// The window (Mosquitto's Receive Maximum, 20) resent
					// at each connection after the first.
					maxDups = 20 * int(dials.Load()-1)
					if batched {
						maxDups *= 40
					}
				}
				col.check(t, n, maxDups)
				t.Logf("faults %v; connections %d; duplicates %d", kinds, dials.Load(), col.dups)
			})
		}
	}
}
