package uplink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// emulatedLink is an in-process toxiproxy between the uplink and a broker
// shaped like an mqtttest.Link profile: latency, jitter and bandwidth in
// each direction, and for flaky profiles a weather goroutine that cuts and
// stalls the link. It counts the bytes that cross it each way: the TCP
// payload, as the gateway's socket sees it (headers of TCP/IP and of the
// cellular bearer not included).
type emulatedLink struct {
	prof   mqtttest.Link
	proxy  *toxiproxy.Proxy
	up     *atomic.Int64
	down   *atomic.Int64
	cuts   atomic.Int64
	stalls atomic.Int64
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// countToxic adds the size of every chunk to a counter chosen by name: a
// toxic is built from JSON, so it finds its counter in counters.
type countToxic struct {
	Counter string `json:"counter"`
}

var (
	counters sync.Map // name → *atomic.Int64
	firsts   sync.Map // name → *atomic.Int64: UnixNano of the first byte
)

func (t *countToxic) Pipe(stub *toxics.ToxicStub) {
	v, _ := counters.LoadOrStore(t.Counter, new(atomic.Int64))
	n := v.(*atomic.Int64)
	f, _ := firsts.LoadOrStore(t.Counter, new(atomic.Int64))
	first := f.(*atomic.Int64)
	passEach(stub, func(data []byte) {
		n.Add(int64(len(data)))
		first.CompareAndSwap(0, time.Now().UnixNano())
	})
}

// passEach passes every chunk through stub, calling fn on it first, until
// toxiproxy interrupts the toxic or the input closes.
func passEach(stub *toxics.ToxicStub, fn func(data []byte)) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			fn(c.Data)
			stub.Output <- c
		}
	}
}

var linkSeq atomic.Int64

func init() {
	toxics.Register("edgegw_count", new(countToxic))
	toxics.Register("edgegw_window", new(windowToxic))
	// toxiproxy logs every connection through zerolog's global logger.
	zerolog.SetGlobalLevel(zerolog.Disabled)
}

// startLink starts a proxy to upstream shaped like prof; it is closed when
// the test ends.
func startLink(t testing.TB, prof mqtttest.Link, upstream string) *emulatedLink {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	name := fmt.Sprintf("link%d", linkSeq.Add(1))
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	l := &emulatedLink{prof: prof, proxy: p}
	up, _ := counters.LoadOrStore(name+"/up", new(atomic.Int64))
	down, _ := counters.LoadOrStore(name+"/down", new(atomic.Int64))
	l.up, l.down = up.(*atomic.Int64), down.(*atomic.Int64)
	add := func(toxic, stream, attrs string) {
		js := fmt.Sprintf(`{"name":"%s_%s","type":"%s","stream":"%s","toxicity":1,"attributes":%s}`,
			toxic, stream, toxic, stream, attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("toxiproxy: %s: %v", js, err)
		}
	}
	// upstream: gateway → cloud. Counted where the bytes enter the link.
	add("edgegw_count", "upstream", fmt.Sprintf(`{"counter":%q}`, name+"/up"))
	add("edgegw_count", "downstream", fmt.Sprintf(`{"counter":%q}`, name+"/down"))
	// The window is read at the gateway's end: PUBLISHes as they enter
	// the link, acknowledgements as they leave it (the last downstream
	// toxic, added below).
	add("edgegw_window", "upstream", fmt.Sprintf(`{"tracker":%q,"up":true}`, name))
	if prof.Latency > 0 {
		lat := fmt.Sprintf(`{"latency":%d,"jitter":%d}`, prof.Latency.Milliseconds(), prof.Jitter.Milliseconds())
		add("latency", "upstream", lat)
		add("latency", "downstream", lat)
	}
	// toxiproxy's rate is in KB/s (1000 bytes).
	if prof.Up > 0 {
		add("bandwidth", "upstream", fmt.Sprintf(`{"rate":%d}`, max(prof.Up/8000, 1)))
	}
	if prof.Down > 0 {
		add("bandwidth", "downstream", fmt.Sprintf(`{"rate":%d}`, max(prof.Down/8000, 1)))
	}
	add("edgegw_window", "downstream", fmt.Sprintf(`{"tracker":%q}`, name))
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	if prof.CutEvery > 0 || prof.StallEvery > 0 {
		l.wg.Go(func() { l.weather(ctx, t) })
	}
	t.Cleanup(func() {
		cancel()
		l.wg.Wait()
		p.Stop()
	})
	return l
}

func (l *emulatedLink) addr() string { return l.proxy.Listen }

// firstUp returns when the first byte went up the link, zero before.
func (l *emulatedLink) firstUp() time.Time {
	v, ok := firsts.Load(l.proxy.Name + "/up")
	if !ok || v.(*atomic.Int64).Load() == 0 {
		return time.Time{}
	}
	return time.Unix(0, v.(*atomic.Int64).Load())
}

// maxInflight returns the most QoS 1 and 2 PUBLISHes the gateway had
// unacknowledged at once on the link so far (see windowTracker).
func (l *emulatedLink) maxInflight() int64 { return trackerFor(l.proxy.Name).maxOpen() }

// bytes returns the bytes carried so far, gateway → cloud and back.
func (l *emulatedLink) bytes() (up, down int64) { return l.up.Load(), l.down.Load() }

func (l *emulatedLink) String() string {
	return fmt.Sprintf("%s: %d cuts, %d stalls", l.prof.Name, l.cuts.Load(), l.stalls.Load())
}

// between returns a uniform duration in [lo, hi].
func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// weather cuts and stalls the link at random times around the profile's
// means until ctx is done, leaving the link up.
func (l *emulatedLink) weather(ctx context.Context, t testing.TB) {
	p := l.prof
	next := func(every time.Duration) <-chan time.Time {
		if every <= 0 {
			return nil
		}
		return time.After(between(every/2, every*3/2))
	}
	cut, stall := next(p.CutEvery), next(p.StallEvery)
	for {
		select {
		case <-ctx.Done():
			return
		case <-cut:
			l.cuts.Add(1)
			l.proxy.Stop() // resets every connection, refuses new ones
			select {
			case <-ctx.Done():
			case <-time.After(between(p.CutMin, p.CutMax)):
			}
			if err := l.proxy.Start(); err != nil {
				t.Errorf("toxiproxy: restart after a cut: %v", err)
				return
			}
			cut = next(p.CutEvery)
		case <-stall:
			l.stalls.Add(1)
			d := between(p.StallMin, p.StallMax)
			// The timeout toxic passes nothing and closes the
			// connections after d.
			js := fmt.Sprintf(`{"name":"stall_%s","type":"timeout","stream":"%s","toxicity":1,"attributes":{"timeout":%d}}`,
				"up", "upstream", d.Milliseconds())
			js2 := strings.ReplaceAll(strings.ReplaceAll(js, "stall_up", "stall_down"), `"upstream"`, `"downstream"`)
			l.proxy.Toxics.AddToxicJson(strings.NewReader(js))
			l.proxy.Toxics.AddToxicJson(strings.NewReader(js2))
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			l.proxy.Toxics.RemoveToxic(context.Background(), "stall_up")
			l.proxy.Toxics.RemoveToxic(context.Background(), "stall_down")
			stall = next(p.StallEvery)
		}
	}
}
