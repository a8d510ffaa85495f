package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// flowCases are the short runs checked against each broker: the
// accounting must balance exactly (every message acknowledged and
// delivered once).
var flowCases = []struct {
	name  string
	v     packet.Version
	qos   byte
	pubs  int
	subs  int
	pairs bool
}{
	{"qos1 wildcard 3.1.1", packet.V311, 1, 3, 1, false},
	{"qos2 wildcard 3.1.1", packet.V311, 2, 3, 1, false},
	{"qos1 wildcard 5.0", packet.V5, 1, 3, 2, false},
	{"qos2 wildcard 5.0", packet.V5, 2, 3, 1, false},
	{"qos1 pairs 5.0", packet.V5, 1, 4, 4, true},
	{"qos2 pairs 3.1.1", packet.V311, 2, 4, 4, true},
	{"qos0 pairs 3.1.1", packet.V311, 0, 2, 2, true},
}

const perPublisher = 2000

func checkFlow(t *testing.T, addr string) {
	for _, tc := range flowCases {
		t.Run(tc.name, func(t *testing.T) {
			c := config{Addr: addr, Version: tc.v, QoS: tc.qos, Pubs: tc.pubs, Subs: tc.subs, Pairs: tc.pairs,
				Count: perPublisher, Size: 100, Ahead: 200, PID: os.Getpid()}
			if err := c.defaults(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			r, err := runFlow(ctx, c)
			if err != nil {
				t.Fatalf("runFlow: %v", err)
			}
			if r.Err != nil {
				t.Fatalf("run error: %v", r.Err)
			}
			recvrs := int64(tc.subs)
			if tc.pairs {
				recvrs = 1
			}
			sent := int64(tc.pubs * perPublisher)
			acked := sent
			if tc.qos == 0 {
				acked = 0
			}
			type counts struct{ Sent, Acked, Expected, Received, Unique, Lost, Dups int64 }
			got := counts{r.Sent, r.Acked, r.Expected, r.Received, r.Unique, r.Lost, r.Dups}
			want := counts{sent, acked, sent * recvrs, sent * recvrs, sent * recvrs, 0, 0}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if !r.ok(&c) {
				t.Errorf("ok() = false")
			}
			if r.Lat.n != want.Unique || r.Lat.quantile(0.99) < r.Lat.quantile(0.5) {
				t.Errorf("latency: %d samples, p50 %d, p99 %d", r.Lat.n, r.Lat.quantile(0.5), r.Lat.quantile(0.99))
			}
			if r.CPU < 0 || r.RSS <= 0 {
				t.Errorf("CPU %v, RSS %d: want measured", r.CPU, r.RSS)
			}
		})
	}
}

func TestFlowMosquitto(t *testing.T) {
	// Unbounded queues: the publishers' lead over the subscribers
	// (-ahead) bounds what is queued.
	addr := mqtttest.Mosquitto(t, "max_queued_messages 0", "max_inflight_messages 64", "set_tcp_nodelay true")
	checkFlow(t, addr)
}

func startBroker(t *testing.T, o broker.Options) string {
	t.Helper()
	s, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func TestFlowBroker(t *testing.T) {
	addr := startBroker(t, broker.Options{MaxQueued: 100_000, MaxWriteBuffer: 4 << 20, SysInterval: -1, MaxSessionBytes: -1, MaxQueuedBytes: -1})
	checkFlow(t, addr)
}

func TestIdleBroker(t *testing.T) {
	addr := startBroker(t, broker.Options{SysInterval: -1})
	c := config{Addr: addr, Idle: 50, IdleWait: time.Millisecond, PID: os.Getpid()}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	r, err := runIdle(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Err != nil || r.Conns != 50 || r.RSS0 <= 0 || r.RSS <= 0 {
		t.Errorf("runIdle = conns %d, RSS %d → %d, err %v; want 50 open, RSS measured", r.Conns, r.RSS0, r.RSS, r.Err)
	}
}

func TestRunOutput(t *testing.T) {
	addr := startBroker(t, broker.Options{SysInterval: -1})
	var out, errOut bytes.Buffer
	args := []string{"-addr", addr, "-qos", "1", "-pubs", "2", "-subs", "1", "-n", "100", "-d", "0",
		"-v", "5", "-label", "a b", "-pid", fmt.Sprint(os.Getpid())}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	line := strings.TrimSpace(out.String())
	for _, kv := range []string{"mode=flow ", `label="a b" `, "v=5.0 ", "qos=1 ", "sent=200 ", "acked=200 ",
		"unique=200 ", "lost=0 ", "dup=0 ", "ok=true "} {
		if !strings.Contains(line, kv) {
			t.Errorf("output line lacks %q:\n%s", kv, line)
		}
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout has more than one line:\n%s", out.String())
	}
}

func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"version", []string{"-v", "3"}},
		{"qos", []string{"-qos", "3"}},
		{"pairs", []string{"-pairs", "-pubs", "2", "-subs", "3"}},
		{"no length", []string{"-n", "0", "-d", "0"}},
		{"argument", []string{"extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 {
				t.Errorf("run(%q) = %d, want 2", tc.args, code)
			}
		})
	}
}

// TestEncode checks the offsets patched in the pre-encoded PUBLISH by
// decoding the patched packet with the codec.
func TestEncode(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%v qos%d", v, qos), func(t *testing.T) {
				c := config{Version: v, QoS: qos, Size: 40, Prefix: "load/x", Pubs: 1, Subs: 1, Count: 1}
				p := &publisher{idx: 7}
				if err := p.encode(&c); err != nil {
					t.Fatal(err)
				}
				if qos > 0 {
					binary.BigEndian.PutUint16(p.msg[p.idOff:], 0xbeef)
				}
				binary.BigEndian.PutUint32(p.msg[p.payOff+12:], 12345)
				got, err := packet.Read(bufio.NewReader(bytes.NewReader(p.msg)), v, 0)
				if err != nil {
					t.Fatal(err)
				}
				pub := got.(*packet.Publish)
				wantID := uint16(0)
				if qos > 0 {
					wantID = 0xbeef
				}
				if pub.Topic != "load/x/7" || pub.PacketID != wantID || len(pub.Payload) != 40 ||
					binary.BigEndian.Uint32(pub.Payload[12:]) != 12345 {
					t.Errorf("decoded %+v", pub)
				}
			})
		}
	}
}

func TestHist(t *testing.T) {
	var h hist
	for us := 1; us <= 10000; us++ {
		h.record(time.Duration(us) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want int64
	}{{0.5, 5000}, {0.99, 9900}, {1, 10000}}
	for _, tc := range tests {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < -0.04 || d > 0.04 {
			t.Errorf("quantile(%v) = %d, want %d ±4%%", tc.q, got, tc.want)
		}
	}
	for i := range histBuckets - 1 {
		if histValue(i) >= histValue(i+1) {
			t.Fatalf("histValue(%d) = %d >= histValue(%d) = %d", i, histValue(i), i+1, histValue(i+1))
		}
		if got := histIndex(histValue(i)); got != i {
			t.Fatalf("histIndex(histValue(%d)) = %d", i, got)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 1 0 0 0 250 130 0 0 20 0 1 0 100 0 0\n"
	if got, err := parseStat([]byte(stat)); err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 3.8s", got, err)
	}
	if _, err := parseStat([]byte("1234 (x) S 1 2")); err == nil {
		t.Errorf("parseStat(short) = nil error")
	}
	status := "Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmRSS:\t    6144 kB\nThreads:\t1\n"
	if got, err := parseRSS([]byte(status)); err != nil || got != 6144<<10 {
		t.Errorf("parseRSS = %d, %v; want %d", got, err, 6144<<10)
	}
	if _, err := parseRSS([]byte("Name:\tx\n")); err == nil {
		t.Errorf("parseRSS(no VmRSS) = nil error")
	}
	if _, err := procRSS(os.Getpid()); err != nil {
		t.Errorf("procRSS(self): %v", err)
	}
}

// fakeBroker is a minimal QoS 1 broker for one wildcard subscriber: it
// forwards the nth PUBLISH fate(n) times (0 drops it, 2 duplicates it),
// so the accounting can be checked against known losses.
func fakeBroker(t *testing.T, fate func(n int) int) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex // guards sub, subW, n, id
		sub  net.Conn
		subW []byte
		n    int
		id   uint16
	)
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			wg.Go(func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				var v packet.Version
				var out []byte
				for {
					p, err := packet.Read(r, v, 0)
					if err != nil {
						return
					}
					out = out[:0]
					switch p := p.(type) {
					case *packet.Connect:
						v = p.Version
						out, _ = packet.Append(out, &packet.Connack{}, v)
					case *packet.Subscribe:
						mu.Lock()
						sub = nc
						mu.Unlock()
						out, _ = packet.Append(out, &packet.Suback{PacketID: p.PacketID, Codes: []packet.ReasonCode{1}}, v)
					case *packet.Publish:
						out, _ = packet.Append(out, &packet.Puback{PacketID: p.PacketID}, v)
						mu.Lock()
						n++
						subW = subW[:0]
						for range fate(n) {
							id = id%65535 + 1
							subW, _ = packet.Append(subW, &packet.Publish{Topic: p.Topic, Payload: p.Payload, QoS: 1, PacketID: id}, v)
						}
						if len(subW) > 0 {
							sub.Write(subW)
						}
						mu.Unlock()
					case *packet.Disconnect:
						return
					}
					if len(out) > 0 {
						if _, err := nc.Write(out); err != nil {
							return
						}
					}
				}
			})
		}
	})
	return l.Addr().String()
}

func TestAccountingFake(t *testing.T) {
	fate := func(n int) int {
		switch {
		case n%100 == 7:
			return 0
		case n%100 == 50:
			return 2
		}
		return 1
	}
	addr := fakeBroker(t, fate)
	c := config{Addr: addr, QoS: 1, Pubs: 2, Subs: 1, Count: 500, Ahead: 0, Drain: 200 * time.Millisecond}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	r, err := runFlow(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	type counts struct{ Sent, Acked, Expected, Unique, Lost, Dups int64 }
	got := counts{r.Sent, r.Acked, r.Expected, r.Unique, r.Lost, r.Dups}
	want := counts{1000, 1000, 1000, 990, 10, 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if r.Err != nil || r.ok(&c) {
		t.Errorf("err %v, ok() = %v; want nil, false", r.Err, r.ok(&c))
	}
}
