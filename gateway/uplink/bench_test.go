package uplink

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// The drain benchmarks move b.N queued 200-byte readings to a local
// Mosquitto ("remote"), where mosquitto_sub takes them (run them with
// -benchtime=1000000x; scripts/bench-uplink.sh does). The clock runs from
// the start of the drain until mosquitto_sub has received all b.N.
//
// BenchmarkDrain is the uplink draining its queue; BenchmarkMosquittoBridge
// is Mosquitto's bridge draining the same backlog, queued in a second
// Mosquitto ("local") while the bridge was down. Both report msgs/s; for
// the forwarding process (the uplink: this process; the bridge: the local
// Mosquitto) its CPU seconds per million messages, its read and write
// system calls and its sleeps per message; and the CPU seconds per million
// messages of the remote Mosquitto and of mosquitto_sub. All of them share
// the machine's cores: on a small machine the sum of the three CPU figures
// bounds the throughput.
//
// EDGEGW_BENCH_PROTOCOL=3.1.1 runs the uplink at the bridge's protocol
// version; unset, it uses 5.0 with topic aliases.

const benchPayload = 200

// benchInflight is Mosquitto's max_inflight_messages for every broker of
// the benchmarks, from EDGEGW_BENCH_INFLIGHT; "" leaves Mosquitto's
// default (20). It is the Receive Maximum the uplink gets at 5.0 and the
// window of the bridge's outgoing messages alike, so both sides of the
// comparison run with the same window.
func benchInflight() string { return os.Getenv("EDGEGW_BENCH_INFLIGHT") }

// benchBroker runs a Mosquitto with exactly conf (plus the listener) and
// no logging, for benchmarks.
type benchBroker struct {
	addr string
	cmd  *exec.Cmd
	dir  string
	conf string
}

func startBenchBroker(b *testing.B, conf ...string) *benchBroker {
	b.Helper()
	bin := mqtttest.MosquittoPath(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := b.TempDir()
	lines := append([]string{"listener " + port + " 127.0.0.1", "allow_anonymous true", "log_dest none",
		"persistence false", "max_queued_messages 0"}, conf...)
	if n := benchInflight(); n != "" {
		lines = append(lines, "max_inflight_messages "+n)
	}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root")
	}
	bb := &benchBroker{addr: addr, dir: dir, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(bb.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	bb.cmd = exec.Command(bin, "-c", bb.conf)
	if err := bb.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		bb.cmd.Process.Kill()
		bb.cmd.Wait()
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 500 {
			b.Fatalf("mosquitto not listening on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return bb
}

// cpuTime returns a process's user+system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// syscalls returns a process's count of read and write system calls (of
// any kind: sockets, files) from /proc, summed over its threads so that
// children it has reaped are not counted; 0, 0 where it cannot.
func syscalls(pid int) (reads, writes int64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/io", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ": ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "syscr":
				reads += n
			case "syscw":
				writes += n
			}
		}
	}
	return reads, writes
}

// reportSyscalls reports the read and write system calls per message of
// pid since r0, w0.
func reportSyscalls(b *testing.B, pid int, r0, w0 int64) {
	r, w := syscalls(pid)
	if r == 0 && w == 0 {
		return
	}
	b.ReportMetric(float64(r-r0)/float64(b.N), "reads/msg")
	b.ReportMetric(float64(w-w0)/float64(b.N), "writes/msg")
}

// peerStats samples a peer process (the remote Mosquitto) at the start of
// a run; report gives its reads and sleeps per message since.
type peerStats struct {
	pid         int
	reads, slps int64
}

func samplePeer(pid int) peerStats {
	r, _ := syscalls(pid)
	return peerStats{pid: pid, reads: r, slps: sleeps(pid)}
}

func (p peerStats) report(b *testing.B, name string) {
	r, _ := syscalls(p.pid)
	b.ReportMetric(float64(r-p.reads)/float64(b.N), name+"-reads/msg")
	b.ReportMetric(float64(sleeps(p.pid)-p.slps)/float64(b.N), name+"-sleeps/msg")
}

// sleeps returns how many times a process's threads have blocked (their
// voluntary context switches): each is a later wake-up, the dearest part of
// forwarding one message at a time.
func sleeps(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// subscriber prepares mosquitto_sub taking n messages of bench/# at qos.
func subscriber(b *testing.B, addr string, qos byte, n int) *exec.Cmd {
	b.Helper()
	bin := mqtttest.LookPath(b, "mosquitto_sub")
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-h", host, "-p", port, "-t", "bench/#", "-q", strconv.Itoa(int(qos)),
		"-C", strconv.Itoa(n), "-i", "bench-sub")
	cmd.Stderr = os.Stderr
	return cmd
}

// waitSub waits for mosquitto_sub to exit after its count of messages.
func waitSub(b *testing.B, sub *exec.Cmd, timeout time.Duration) {
	b.Helper()
	t := time.AfterFunc(timeout, func() { sub.Process.Kill() })
	defer t.Stop()
	if err := sub.Wait(); err != nil {
		b.Fatalf("mosquitto_sub did not get all %d messages within %v: %v", b.N, timeout, err)
	}
	ps := sub.ProcessState
	b.ReportMetric((ps.UserTime()+ps.SystemTime()).Seconds()*1e6/float64(b.N), "sub-cpu-s/Mmsg")
}

// waitSubscribed waits until a probe message reaches mosquitto_sub's
// subscription; it cannot see it, so it waits for the broker to accept the
// subscriber: a short fixed pause is the only portable signal.
func waitSubscribed() { time.Sleep(300 * time.Millisecond) }

func benchRecord(b *testing.B, i int, qos byte) []byte {
	p := make([]byte, benchPayload)
	copy(p, fmt.Sprintf(`{"seq":%d,"points":{}}`, i))
	r := gateway.Record{Topic: fmt.Sprintf("vehicles/V1/telemetry/d%d", i%8), Payload: p, QoS: qos}
	rec, err := r.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

func BenchmarkDrain(b *testing.B) {
	for _, qos := range []byte{1, 2} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			remote := startBenchBroker(b)
			q, err := openBenchQueue(b)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			for i := range b.N {
				if _, err := q.Put(gateway.ClassTelemetry, benchRecord(b, i, qos)); err != nil {
					b.Fatal(err)
				}
			}
			sub := subscriber(b, remote.addr, qos, b.N)
			if err := sub.Start(); err != nil {
				b.Fatal(err)
			}
			waitSubscribed()
			u, err := New(Options{URL: "mqtt://" + remote.addr, ClientID: "gw", LocalPrefix: "vehicles/V1",
				TopicPrefix: "bench/V1", Queue: q, StateDir: b.TempDir(), Protocol: os.Getenv("EDGEGW_BENCH_PROTOCOL")})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			r0, w0 := syscalls(os.Getpid())
			s0 := sleeps(os.Getpid())
			rs := samplePeer(remote.cmd.Process.Pid)
			rcpu0, cpu0, t0 := cpuTime(remote.cmd.Process.Pid), selfCPU(), time.Now()
			go func() { done <- u.Run(ctx) }()
			waitSub(b, sub, 3*time.Minute)
			el, cpu, rcpu := time.Since(t0), selfCPU()-cpu0, cpuTime(remote.cmd.Process.Pid)-rcpu0
			b.StopTimer()
			reportSyscalls(b, os.Getpid(), r0, w0)
			b.ReportMetric(float64(sleeps(os.Getpid())-s0)/float64(b.N), "sleeps/msg")
			b.ReportMetric(rcpu.Seconds()*1e6/float64(b.N), "remote-cpu-s/Mmsg")
			rs.report(b, "remote")
			cancel()
			<-done
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-s/Mmsg")
		})
	}
}

// publishAll publishes n messages, msg(i) the i-th, without waiting for
// each acknowledgement; then it waits for them all and closes pub.
func publishAll(ctx context.Context, b *testing.B, pub *client.Client, n int, msg func(i int) client.Message) {
	b.Helper()
	var wg sync.WaitGroup
	var failed sync.Once
	var pubErr error
	for i := range n {
		wg.Add(1)
		if err := pub.PublishAsync(ctx, msg(i), func(err error) {
			if err != nil {
				failed.Do(func() { pubErr = err })
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	pub.Close()
	if pubErr != nil {
		b.Fatal(pubErr)
	}
}

func BenchmarkMosquittoBridge(b *testing.B) {
	for _, qos := range []byte{1, 2} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			if qos == 2 && os.Getenv("EDGEGW_BENCH_BRIDGE_QOS2") == "" {
				// Mosquitto 2.0.11's bridge here never delivered a QoS 2
				// backlog queued while the remote was down; opt in to
				// retry it.
				b.Skip("set EDGEGW_BENCH_BRIDGE_QOS2=1 to run")
			}
			remote := startBenchBroker(b)
			local := startBenchBroker(b, "connection cloud", "address "+remote.addr, "cleansession false",
				"bridge_protocol_version mqttv311", fmt.Sprintf("topic bench/# out %d", qos),
				"restart_timeout 1", "start_type automatic")
			// Stop the remote side so that the bridge queues the backlog.
			remote.cmd.Process.Kill()
			remote.cmd.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			pub, err := client.Dial(ctx, client.Options{Addr: local.addr, ClientID: "bench-pub", CleanStart: true})
			if err != nil {
				b.Fatal(err)
			}
			p := make([]byte, benchPayload)
			publishAll(ctx, b, pub, b.N, func(i int) client.Message {
				copy(p, fmt.Sprintf(`{"seq":%d,"points":{}}`, i))
				return client.Message{Topic: fmt.Sprintf("bench/V1/telemetry/d%d", i%8), Payload: append([]byte(nil), p...), QoS: qos}
			})
			remote.cmd = exec.Command(remote.cmd.Path, "-c", remote.conf)
			if err := remote.cmd.Start(); err != nil {
				b.Fatal(err)
			}
			for i := 0; ; i++ {
				c, err := net.DialTimeout("tcp", remote.addr, time.Second)
				if err == nil {
					c.Close()
					break
				}
				if i == 500 {
					b.Fatal("remote mosquitto did not restart")
				}
				time.Sleep(10 * time.Millisecond)
			}
			sub := subscriber(b, remote.addr, qos, b.N)
			out, err := sub.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := sub.Start(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			// The clock starts at the first message, so that the bridge's
			// reconnect delay (restart_timeout) is not counted.
			br := bufio.NewReaderSize(out, 1<<20)
			if _, err := br.ReadSlice('\n'); err != nil {
				b.Fatalf("mosquitto_sub: %v", err)
			}
			pid := local.cmd.Process.Pid
			r0, w0 := syscalls(pid)
			s0 := sleeps(pid)
			rs := samplePeer(remote.cmd.Process.Pid)
			rcpu0, cpu0, t0 := cpuTime(remote.cmd.Process.Pid), cpuTime(pid), time.Now()
			io.Copy(io.Discard, br)
			waitSub(b, sub, 3*time.Minute)
			el, cpu, rcpu := time.Since(t0), cpuTime(pid)-cpu0, cpuTime(remote.cmd.Process.Pid)-rcpu0
			b.StopTimer()
			reportSyscalls(b, pid, r0, w0)
			b.ReportMetric(float64(sleeps(pid)-s0)/float64(b.N), "sleeps/msg")
			b.ReportMetric(rcpu.Seconds()*1e6/float64(b.N), "remote-cpu-s/Mmsg")
			rs.report(b, "remote")
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-s/Mmsg")
		})
	}
}

func openBenchQueue(b *testing.B) (*buffer.Queue, error) {
	return buffer.Open(b.TempDir(), buffer.Options{Fsync: buffer.FsyncInterval, SegmentSize: 64 << 20})
}
