// Package fleet simulates a fleet of gateways against one cloud broker, to
// measure what a reconnect storm costs: N uplinks (the real
// gateway/uplink code over the real buffer queue, each with its own queue
// and state directory) run in one process against a Mosquitto that this
// package starts on a loopback port.
//
// The scenario of Run:
//
//  1. The cloud (Mosquitto, with persistence) and a checker start; the
//     checker subscribes to every gateway's telemetry with a persistent
//     session.
//  2. The gateways start, Options.StartRate per second (a fleet does not
//     boot in the same second), and each connects. Once all are
//     connected, the process's resident memory and Go heap are read: less
//     the figures before the first gateway, divided by N, they are what a
//     gateway costs.
//  3. The cloud saves its persistence file (SIGUSR1) and is killed
//     (SIGKILL): every uplink loses its connection at the same moment.
//  4. While the cloud is down (at least Options.Down), each gateway's
//     devices queue Options.Backlog telemetry records, shaped like the
//     gateway's own ({"seq":N,"ts":…,"points":{…}} on
//     {prefix}/telemetry/{device}).
//  5. The cloud restarts on the same port with its saved sessions. The
//     uplinks reconnect on their own backoff and drain their backlogs.
//     The checker counts, per device, the seqs that arrive past a hole
//     (gaps) and, at the end, those that never arrived (lost).
//
// Connects per second come from the cloud's own log (every CONNECT it
// accepted after the restart, the checker's left out); the cloud's CPU
// from /proc/PID/stat between the restart and the last record.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/client"
)

// Options configure a run. Zero values take the defaults in brackets.
type Options struct {
	Gateways int // [1000]
	Backlog  int // records queued per gateway while the cloud is down [100]
	Devices  int // devices per gateway, records go round-robin [4]
	// Mosquitto is the broker binary [mosquitto from PATH or /usr/sbin].
	Mosquitto string
	// Dir holds the cloud's files and every gateway's queue and state
	// directory; required (the caller removes it).
	Dir string
	// Down is the least time the cloud stays down [5 s]; it stays down
	// longer while the backlogs are still being queued.
	Down time.Duration
	// StartRate is how many gateways start per second in step 2 [200].
	StartRate float64
	// Inflight is the cloud's max_inflight_messages [100]: the Receive
	// Maximum the uplinks get.
	Inflight int
	// ReconnectMin and ReconnectMax are the uplinks' reconnect_min and
	// reconnect_max [the uplink's defaults].
	ReconnectMin, ReconnectMax time.Duration
	// ReconnectSpread is the uplinks' reconnect_spread [none; the
	// configuration's default is 20 s, and fleetsim's].
	ReconnectSpread time.Duration
	// Timeout bounds the drain after the restart [5 min].
	Timeout time.Duration
	// Log receives the run's progress; nil discards. The uplinks' own
	// logs go to UplinkLog (nil discards): a thousand of them are noisy.
	Log, UplinkLog *slog.Logger
}

// Result is what a run measured.
type Result struct {
	Gateways int
	Records  int // records queued in all
	// Connects is the count of CONNECTs the cloud accepted in each second
	// from its restart (second 0 is the one the restart fell in).
	Connects []int
	Peak     int // highest of Connects
	// BootConnects counts the CONNECTs per second from the first
	// gateway's start until the cloud was killed: the fleet booting at
	// Options.StartRate, which the uplink does not spread (it connects at
	// once when it starts).
	BootConnects []int
	BootPeak     int
	Drained      time.Duration // restart to the last record's arrival
	Drain        bool          // every record arrived before the timeout
	Gaps         int           // arrivals past a hole in their device's seq
	Lost         int           // records that never arrived
	Dups         int           // records that arrived more than once (QoS 1)
	// GapGateways and LostGateways name the gateways with a gap or a
	// lost record, sorted.
	GapGateways, LostGateways []string
	CloudCPU                  time.Duration // the cloud's CPU time from restart to drained

	// RSSPerGateway and HeapPerGateway are the growth of the process's
	// resident memory and of the Go heap plus stacks from before the
	// first gateway until all were connected, divided by Gateways, in
	// bytes.
	RSSPerGateway, HeapPerGateway float64
}

// Line is the one-line summary of scripts/bench-fleet.sh.
func (r Result) Line() string {
	return fmt.Sprintf("fleet: %d gateways, peak connects/s %d, drained in %.1f s, gaps %d, lost %d, KB per gateway %.0f",
		r.Gateways, r.Peak, r.Drained.Seconds(), r.Gaps, r.Lost, r.RSSPerGateway/1024)
}

func (o Options) withDefaults() (Options, error) {
	if o.Gateways <= 0 {
		o.Gateways = 1000
	}
	if o.Backlog <= 0 {
		o.Backlog = 100
	}
	if o.Devices <= 0 {
		o.Devices = 4
	}
	if o.Down <= 0 {
		o.Down = 5 * time.Second
	}
	if o.StartRate <= 0 {
		o.StartRate = 200
	}
	if o.Inflight <= 0 {
		o.Inflight = 100
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.UplinkLog == nil {
		o.UplinkLog = slog.New(slog.DiscardHandler)
	}
	if o.Dir == "" {
		return o, errors.New("fleet: dir: required")
	}
	if o.Mosquitto == "" {
		p, err := lookMosquitto()
		if err != nil {
			return o, err
		}
		o.Mosquitto = p
	}
	return o, nil
}

// lookMosquitto finds the mosquitto binary in PATH or where Debian puts
// it (/usr/sbin is often not in a user's PATH).
func lookMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("fleet: mosquitto not found in PATH or /usr/sbin")
}

// checkerID is the checker's client id, left out of the connect counts.
const checkerID = "fleet-check"

// sim is one gateway.
type sim struct {
	id   string
	q    *buffer.Queue
	up   *uplink.Uplink
	seqs []uint64 // per device: last seq queued
	done chan error
}

// Run runs the scenario of the package documentation. It returns an
// error when the run could not be carried out; gaps, losses and a drain
// past the timeout are results, not errors.
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	sc := &scenario{o: o, log: o.Log, ck: newChecker(),
		res: Result{Gateways: o.Gateways, Records: o.Gateways * o.Backlog}}
	if sc.cl, err = startCloud(o.Mosquitto, o.Dir, o.Inflight); err != nil {
		return sc.res, err
	}
	defer sc.cl.stop(syscall.SIGKILL)
	sc.log.Info("cloud started", "addr", sc.cl.addr)
	sub, err := dialChecker(ctx, sc.cl.addr, sc.ck)
	if err != nil {
		return sc.res, err
	}
	defer sub.Close()

	gctx, stopGateways := context.WithCancel(ctx)
	defer func() {
		stopGateways()
		for _, s := range sc.sims {
			<-s.done
			s.q.Close()
		}
	}()
	if err := sc.boot(ctx, gctx); err != nil {
		return sc.res, err
	}
	restart, sent, err := sc.outage()
	if err != nil {
		return sc.res, err
	}
	err = sc.drain(ctx, restart, sent)
	return sc.res, err
}

// scenario is one Run's state.
type scenario struct {
	o         Options
	bootStart time.Time // when the first gateway started
	log       *slog.Logger
	cl        *cloud
	ck        *checker
	sims      []*sim
	res       Result
}

// notCounted leaves the checker out of the connect counts; read only.
var notCounted = map[string]bool{checkerID: true}

// boot starts the gateways at o.StartRate on gctx, waits until all are
// connected and measures what they cost.
func (sc *scenario) boot(ctx, gctx context.Context) error {
	o := sc.o
	m0 := memory()
	sc.bootStart = time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.StartRate))
	defer tick.Stop()
	for i := range o.Gateways {
		s, err := startGateway(gctx, o, i, sc.cl.addr)
		if err != nil {
			return err
		}
		sc.sims = append(sc.sims, s)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// A loaded machine takes a while to connect a large fleet: 10 ms each.
	if err := waitConnected(ctx, sc.sims, time.Minute+time.Duration(o.Gateways)*10*time.Millisecond); err != nil {
		return err
	}
	m1 := memory()
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(o.Gateways) }
	sc.res.RSSPerGateway, sc.res.HeapPerGateway = per(m0.rss, m1.rss), per(m0.heap, m1.heap)
	sc.log.Info("all gateways connected", "gateways", o.Gateways,
		"rss_per_gateway_kb", int(sc.res.RSSPerGateway/1024), "anon_kb", int(per(m0.anon, m1.anon)/1024),
		"file_kb", int(per(m0.file, m1.file)/1024), "heap_per_gateway_kb", int(sc.res.HeapPerGateway/1024))
	return nil
}

// outage saves and kills the cloud, counts the boot's connects, queues
// the backlogs, keeps the cloud down for at least o.Down and restarts it.
// It returns the time of the restart and every device's last seq.
func (sc *scenario) outage() (restart time.Time, sent map[string]uint64, err error) {
	if err := sc.cl.save(); err != nil {
		return restart, nil, err
	}
	sc.cl.stop(syscall.SIGKILL)
	down := time.Now()
	sc.log.Info("cloud killed")
	sc.res.BootConnects, err = sc.cl.connects(sc.bootStart.Truncate(time.Second), down.Truncate(time.Second).Add(time.Second), notCounted)
	if err != nil {
		return restart, nil, err
	}
	sc.res.BootPeak = slices.Max(append([]int{0}, sc.res.BootConnects...))
	if sent, err = queueBacklogs(sc.sims, sc.o); err != nil {
		return restart, nil, err
	}
	sc.ck.expect(sc.res.Records)
	if w := sc.o.Down - time.Since(down); w > 0 {
		time.Sleep(w)
	}
	restart = time.Now()
	if err := sc.cl.start(); err != nil {
		return restart, nil, err
	}
	sc.log.Info("cloud restarted", "down", time.Since(down).Round(time.Millisecond), "records", sc.res.Records)
	return restart, sent, nil
}

// drain waits until the checker has every record or o.Timeout passed, and
// fills in the results.
func (sc *scenario) drain(ctx context.Context, restart time.Time, sent map[string]uint64) error {
	res := &sc.res
	cpu0, _ := sc.cl.cpu()
	timeout := time.NewTimer(sc.o.Timeout)
	defer timeout.Stop()
	select {
	case <-sc.ck.done:
		res.Drain = true
	case <-timeout.C:
		sc.log.Warn("drain timed out", "timeout", sc.o.Timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, _ := sc.cl.cpu()
	res.CloudCPU = cpu1 - cpu0
	ck := sc.ck
	ck.mu.Lock()
	res.Drained = ck.last.Sub(restart)
	if !res.Drain {
		res.Drained = time.Since(restart)
	}
	res.Gaps, res.Dups = ck.gaps, ck.dups
	res.GapGateways = gatewaysOf(ck.gapsBy)
	ck.mu.Unlock()
	var lostBy map[string]int
	res.Lost, lostBy = ck.lost(sent)
	res.LostGateways = gatewaysOf(lostBy)
	sc.log.Info("drained", "after", res.Drained.Round(time.Millisecond), "gaps", res.Gaps, "lost", res.Lost, "dups", res.Dups)

	var err error
	if res.Connects, err = sc.cl.connects(restart.Truncate(time.Second), time.Time{}, notCounted); err != nil {
		return err
	}
	res.Peak = slices.Max(append([]int{0}, res.Connects...))
	return nil
}

// gatewaysOf returns the sorted gateway ids (the second topic level) of
// the topics with a count above zero.
func gatewaysOf(by map[string]int) []string {
	seen := map[string]bool{}
	for topic, n := range by {
		if parts := strings.Split(topic, "/"); n > 0 && len(parts) > 1 {
			seen[parts[1]] = true
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// dialChecker connects the checker's subscriber with a persistent session,
// so that it misses nothing across the cloud's restart.
func dialChecker(ctx context.Context, addr string, ck *checker) (*client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(dctx, client.Options{
		Addr: addr, ClientID: checkerID, SessionExpiry: time.Hour,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		OnMessage: func(m client.Message) { ck.receive(m.Topic, m.Payload, time.Now()) },
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: checker: %w", err)
	}
	if _, err := c.Subscribe(dctx, client.Subscription{Filter: "fleet/+/telemetry/#", QoS: 1}); err != nil {
		c.Close()
		return nil, fmt.Errorf("fleet: checker: %w", err)
	}
	return c, nil
}

// startGateway opens gateway i's queue and starts its uplink.
func startGateway(ctx context.Context, o Options, i int, addr string) (*sim, error) {
	id := fmt.Sprintf("gw%05d", i)
	dir := filepath.Join(o.Dir, "gateways", id)
	q, err := buffer.Open(filepath.Join(dir, "queue"), buffer.Options{
		Classes: []buffer.ClassOptions{{Name: gateway.ClassAlarm}, {Name: gateway.ClassTelemetry}},
		Fsync:   buffer.FsyncInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %s: %w", id, err)
	}
	up, err := uplink.New(uplink.Options{
		URL: "mqtt://" + addr, ClientID: id,
		LocalPrefix: "vehicles/" + id, TopicPrefix: "fleet/" + id,
		ReconnectMin: o.ReconnectMin, ReconnectMax: o.ReconnectMax, ReconnectSpread: o.ReconnectSpread,
		Queue: q, StateDir: dir, Log: o.UplinkLog.With("gateway", id),
	})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("fleet: %s: %w", id, err)
	}
	s := &sim{id: id, q: q, up: up, seqs: make([]uint64, o.Devices), done: make(chan error, 1)}
	go func() { s.done <- up.Run(ctx) }()
	return s, nil
}

func waitConnected(ctx context.Context, sims []*sim, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		missing := 0
		for _, s := range sims {
			if !s.up.Status().Connected {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet: %d of %d gateways not connected after %v", missing, len(sims), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queueBacklogs queues o.Backlog records in every gateway, from a few
// goroutines, and returns the highest seq of every device by its remote
// telemetry topic.
func queueBacklogs(sims []*sim, o Options) (map[string]uint64, error) {
	work := make(chan *sim)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range max(2, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for s := range work {
				if err := s.queue(o); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range sims {
		work <- s
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sent := map[string]uint64{}
	for _, s := range sims {
		for d, seq := range s.seqs {
			sent[fmt.Sprintf("fleet/%s/telemetry/d%d", s.id, d)] = seq
		}
	}
	return sent, nil
}

// queue spools o.Backlog telemetry records, round-robin over the devices,
// as the gateway's router does.
func (s *sim) queue(o Options) error {
	var b []byte
	for r := range o.Backlog {
		d := r % len(s.seqs)
		s.seqs[d]++
		now := time.Now().UTC()
		rec := gateway.Record{
			Topic:   fmt.Sprintf("vehicles/%s/telemetry/d%d", s.id, d),
			Payload: telemetry(s.seqs[d], now, r),
			Time:    now,
		}
		var err error
		if b, err = rec.AppendBinary(b[:0]); err != nil {
			return err
		}
		if _, err := s.q.Put(gateway.ClassTelemetry, b); err != nil {
			return fmt.Errorf("fleet: %s: %w", s.id, err)
		}
	}
	return nil
}

// telemetry is a payload in the gateway's format for a pressure reading.
func telemetry(seq uint64, ts time.Time, r int) []byte {
	v := 220 + float64(r%200)/10
	return fmt.Appendf(nil, `{"seq":%d,"ts":%q,"points":{"pressure":{"v":%s,"u":"kPa","q":"good"}}}`,
		seq, ts.Format(time.RFC3339Nano), strconv.FormatFloat(v, 'f', 1, 64))
}

// mem is the process's memory at one moment, in bytes.
type mem struct {
	rss, anon, file uint64 // resident: all, anonymous, file-backed (mapped outboxes)
	heap            uint64 // Go heap and stacks in use
}

// memory reads the process's resident memory from /proc/self/status
// (zero where there is none) and the Go heap and stacks in use, after a
// collection.
func memory() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heap: ms.HeapInuse + ms.StackInuse}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		case "RssFile":
			m.file = kb * 1024
		}
	}
	return m
}
