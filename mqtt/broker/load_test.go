package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestBrokerProcess is not a test: with EDGEGW_BROKER_LISTEN set it runs
// a broker in this process until stdin closes, so that BenchmarkVsMosquitto
// can measure the broker's own CPU time in a separate process.
func TestBrokerProcess(t *testing.T) {
	addr := os.Getenv("EDGEGW_BROKER_LISTEN")
	if addr == "" {
		t.Skip("helper process")
	}
	s, err := New(Options{Listen: addr, SysInterval: -1, MaxInflight: 1000, MaxQueued: 1000000, MaxWriteBuffer: 4 << 20,
		MaxSessionBytes: -1, MaxQueuedBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	// "g" on stdin returns freed memory to the system, as a long-running
	// broker's background scavenger eventually does; "m" prints the
	// runtime's StackInuse, HeapInuse and TotalAlloc; EOF stops. Each
	// command is answered with one line.
	buf := make([]byte, 1)
	for {
		if n, _ := os.Stdin.Read(buf); n == 0 {
			break
		}
		switch buf[0] {
		case 'g':
			debug.FreeOSMemory()
			os.Stdout.Write([]byte("g\n"))
		case 'm':
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Printf("%d %d %d\n", m.StackInuse, m.HeapInuse, m.TotalAlloc)
		}
	}
	s.Shutdown(context.Background())
}

// cpuTime returns the user+system CPU time of process pid.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// rss returns the resident set size of process pid in KiB.
func rss(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

// loadRun drives pubs publishers of n messages each at QoS qos into one
// subscriber of "load/#" and returns when every message arrived.
func loadRun(tb testing.TB, addr string, pubs, n int, qos byte) {
	dial := func(id string) (net.Conn, *bufio.Reader, *bufio.Writer) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriterSize(nc, 64<<10)
		r := bufio.NewReaderSize(nc, 64<<10)
		b, _ := packet.Append(nil, &packet.Connect{ClientID: id, CleanStart: true, KeepAlive: 60, Version: packet.V311}, packet.V311)
		w.Write(b)
		w.Flush()
		if _, err := packet.Read(r, packet.V311, 0); err != nil {
			tb.Fatal(err)
		}
		return nc, r, w
	}
	snc, sr, sw := dial("load-sub")
	defer snc.Close()
	b, _ := packet.Append(nil, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "load/#", QoS: qos}}}, packet.V311)
	sw.Write(b)
	sw.Flush()
	packet.Read(sr, packet.V311, 0)
	total := pubs * n
	done := make(chan error, 1)
	go func() {
		var ack []byte
		for got := 0; got < total; {
			p, err := packet.Read(sr, packet.V311, 0)
			if err != nil {
				done <- err
				return
			}
			switch p := p.(type) {
			case *packet.Publish:
				switch p.QoS {
				case 0:
					got++
				case 1:
					got++
					ack, _ = packet.Append(ack[:0], &packet.Puback{PacketID: p.PacketID}, packet.V311)
				case 2:
					ack, _ = packet.Append(ack[:0], &packet.Pubrec{PacketID: p.PacketID}, packet.V311)
				}
			case *packet.Pubrel:
				got++
				ack, _ = packet.Append(ack[:0], &packet.Pubcomp{PacketID: p.PacketID}, packet.V311)
			}
			if len(ack) > 0 {
				sw.Write(ack)
				ack = ack[:0]
			}
			if sr.Buffered() == 0 {
				sw.Flush()
			}
		}
		sw.Flush()
		done <- nil
	}()
	var wg sync.WaitGroup
	payload := make([]byte, 100)
	for i := 0; i < pubs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, r, w := dial(fmt.Sprintf("load-pub-%d", i))
			defer nc.Close()
			const window = 100
			sem := make(chan struct{}, window)
			var wmu sync.Mutex // guards w
			acksDone := make(chan struct{})
			// Close only after every acknowledgement is read: closing with
			// unread data sends a reset that can discard our last packets.
			defer func() {
				if qos > 0 {
					<-acksDone
				}
			}()
			go func() {
				defer close(acksDone)
				var buf []byte
				for acked := 0; acked < n; {
					if r.Buffered() == 0 {
						wmu.Lock()
						w.Flush()
						wmu.Unlock()
					}
					p, err := packet.Read(r, packet.V311, 0)
					if err != nil {
						return
					}
					switch p := p.(type) {
					case *packet.Puback:
						acked++
						<-sem
					case *packet.Pubrec:
						buf, _ = packet.Append(buf[:0], &packet.Pubrel{PacketID: p.PacketID}, packet.V311)
						wmu.Lock()
						w.Write(buf)
						wmu.Unlock()
					case *packet.Pubcomp:
						acked++
						<-sem
					}
				}
			}()
			topic := fmt.Sprintf("load/%d", i)
			var buf []byte
			for k := 0; k < n; k++ {
				p := &packet.Publish{Topic: topic, Payload: payload, QoS: qos}
				if qos > 0 {
					p.PacketID = uint16(k%60000 + 1)
					sem <- struct{}{}
				}
				buf, _ = packet.Append(buf[:0], p, packet.V311)
				wmu.Lock()
				w.Write(buf)
				if len(sem) == window || k == n-1 || k%32 == 0 {
					w.Flush()
				}
				wmu.Unlock()
			}
			wmu.Lock()
			w.Flush()
			wmu.Unlock()
		}()
	}
	select {
	case err := <-done:
		if err != nil {
			tb.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		tb.Fatal("load run timed out")
	}
	wg.Wait()
}

// BenchmarkVsMosquitto compares the broker's CPU per million messages
// with Mosquitto's, both in their own process: EDGEGW_BENCH=1 go test
// -run XXX -bench VsMosquitto ./mqtt/broker. Only QoS 1 is driven here;
// cmd/mqttload covers the full matrix.
func BenchmarkVsMosquitto(b *testing.B) {
	if os.Getenv("EDGEGW_BENCH") == "" {
		b.Skip("set EDGEGW_BENCH=1")
	}
	for _, qos := range []byte{0, 1, 2} {
		for _, which := range []string{"edgegw", "mosquitto"} {
			b.Run(fmt.Sprintf("qos%d/%s", qos, which), func(b *testing.B) {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				addr := l.Addr().String()
				l.Close()
				var cmd *exec.Cmd
				if which == "edgegw" {
					cmd = exec.Command(os.Args[0], "-test.run=^TestBrokerProcess$")
					cmd.Env = append(os.Environ(), "EDGEGW_BROKER_LISTEN="+addr)
				} else {
					_, port, _ := net.SplitHostPort(addr)
					conf := b.TempDir() + "/mosquitto.conf"
					// The same limits as the edgegw helper process.
					os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\n"+
						"max_queued_messages 1000000\nmax_inflight_messages 1000\n"), 0o600)
					cmd = exec.Command(needProgramB(b, "mosquitto"), "-c", conf)
				}
				stdin, _ := cmd.StdinPipe()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
				for i := 0; ; i++ {
					if c, err := net.Dial("tcp", addr); err == nil {
						c.Close()
						break
					}
					if i > 200 {
						b.Fatal("broker did not start")
					}
					time.Sleep(10 * time.Millisecond)
				}
				rss0 := rss(cmd.Process.Pid)
				const pubs, per = 10, 20000
				loadRun(b, addr, 1, 100, qos) // warm up
				c0 := cpuTime(cmd.Process.Pid)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					loadRun(b, addr, pubs, per, qos)
				}
				b.StopTimer()
				cpu := cpuTime(cmd.Process.Pid) - c0
				msgs := float64(b.N * pubs * per)
				b.ReportMetric(cpu.Seconds()/msgs*1e6, "cpu-s/Mmsg")
				b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(rss0), "rss0-KiB")
			})
		}
	}
}

func needProgramB(b *testing.B, name string) string {
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	b.Skipf("%s not installed", name)
	return ""
}

// BenchmarkIdleConnections reports the broker's memory per idle
// connection in its own, freshly started process, measured as
// scripts/bench-broker.sh does: 1,000 MQTT 3.1.1 connections (clean
// session, keep alive 0), the RSS growth 2 s after the last CONNACK
// divided by 1,000 (B/conn; issue target ≤ 8 KB). Its parts from
// runtime.MemStats: stack-B/conn (StackInuse), heap-B/conn (HeapInuse),
// alloc-B/conn (everything allocated, garbage included), and
// steady-B/conn, the RSS growth once a GC has run and freed memory went
// back to the system. rss0-KiB is the RSS of the idle process.
//
//	go test -run XXX -bench IdleConnections ./mqtt/broker
func BenchmarkIdleConnections(b *testing.B) {
	const n = 1000
	var sum [6]float64
	for i := 0; i < b.N; i++ {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerProcess$")
		cmd.Env = append(os.Environ(), "EDGEGW_BROKER_LISTEN="+addr)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		outr := bufio.NewReader(out)
		for i := 0; ; i++ {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if i > 500 {
				b.Fatal("broker did not start")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// ask sends a command to the helper process and returns its reply.
		ask := func(cmd string) []int64 {
			stdin.Write([]byte(cmd))
			line, err := outr.ReadString('\n')
			if err != nil {
				b.Fatalf("broker process: %v", err)
			}
			var v []int64
			for _, f := range strings.Fields(line) {
				x, _ := strconv.ParseInt(f, 10, 64)
				v = append(v, x)
			}
			return v
		}
		time.Sleep(500 * time.Millisecond)
		r0 := rss(cmd.Process.Pid)
		m0 := ask("m")
		conns := idleConns(b, addr, n)
		time.Sleep(2 * time.Second)
		r1 := rss(cmd.Process.Pid)
		m1 := ask("m")
		ask("g")
		r2 := rss(cmd.Process.Pid)
		sum[0] += float64(r0)
		sum[1] += float64(r1-r0) * 1024 / n
		sum[2] += float64(m1[0]-m0[0]) / n
		sum[3] += float64(m1[1]-m0[1]) / n
		sum[4] += float64(m1[2]-m0[2]) / n
		sum[5] += float64(r2-r0) * 1024 / n
		for _, c := range conns {
			c.Close()
		}
		stdin.Close()
		cmd.Wait()
	}
	nb := float64(b.N)
	b.ReportMetric(sum[0]/nb, "rss0-KiB")
	b.ReportMetric(sum[1]/nb, "B/conn")
	b.ReportMetric(sum[2]/nb, "stack-B/conn")
	b.ReportMetric(sum[3]/nb, "heap-B/conn")
	b.ReportMetric(sum[4]/nb, "alloc-B/conn")
	b.ReportMetric(sum[5]/nb, "steady-B/conn")
}

// BenchmarkInProcessLoad runs the QoS 1 fan-in against an in-process
// server, for profiling: go test -run XXX -bench InProcessLoad -cpuprofile.
func BenchmarkInProcessLoad(b *testing.B) {
	s := newServer(b, Options{MaxInflight: 1000, MaxQueued: 100000, MaxWriteBuffer: 4 << 20, MaxSessionBytes: -1, MaxQueuedBytes: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loadRun(b, l.Addr().String(), 10, 2000, 1)
	}
	b.ReportMetric(float64(b.N*20000)/b.Elapsed().Seconds(), "msgs/s")
}
