package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// idleConns opens n MQTT 3.1.1 connections (clean session, keep alive 0)
// to addr and returns them after their CONNACKs. The client side holds
// only the sockets: no goroutine, no buffer.
func idleConns(tb testing.TB, addr string, n int) []net.Conn {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	var ack [4]byte
	for k := 0; k < n; k++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		p, _ := packet.Append(nil, &packet.Connect{ClientID: fmt.Sprint("idle-", k), CleanStart: true, Version: packet.V311}, packet.V311)
		if _, err := nc.Write(p); err != nil {
			tb.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReaderSize(nc, 16).Read(ack[:]); err != nil {
			tb.Fatal(err)
		}
		nc.SetReadDeadline(time.Time{})
		conns = append(conns, nc)
	}
	return conns
}

// TestPipelinedAfterConnect checks that packets arriving with CONNECT, in
// the same write, reach the read loop that takes over after CONNECT: the
// bytes already buffered are not lost in the hand-over.
func TestPipelinedAfterConnect(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			c := pipe(t, s, v)
			var b []byte
			for _, p := range []packet.Packet{
				&packet.Connect{ClientID: "pipelined", CleanStart: true, Version: v},
				&packet.Subscribe{PacketID: 7, Subscriptions: []packet.Subscription{{Filter: "p/#", QoS: 1}}},
				&packet.Publish{Topic: "p/1", Payload: []byte("x"), QoS: 1, PacketID: 8},
				&packet.Pingreq{},
			} {
				var err error
				if b, err = packet.Append(b, p, v); err != nil {
					t.Fatalf("Append(%T): %v", p, err)
				}
			}
			errc := make(chan error, 1)
			go func() {
				_, err := c.nc.Write(b) // net.Pipe: returns once all is read
				errc <- err
			}()
			want := []packet.Type{packet.TypeConnack, packet.TypeSuback, packet.TypePublish, packet.TypePuback, packet.TypePingresp}
			var got []packet.Type
			for range want {
				got = append(got, c.recv().Type())
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// BenchmarkIdleMemory reports what one idle connection costs the broker
// inside the test process (1,000 connections, MQTT 3.1.1, keep alive 0,
// clean session), after a GC, unlike BenchmarkIdleConnections (RSS of a
// fresh broker process, garbage included): B/conn is the growth of the
// runtime's stack and heap in use, stack-B/conn and heap-B/conn its parts,
// goroutines/conn the goroutines per connection. The client sockets live
// in the same process and add their heap share (about 300 bytes each) to
// heap-B/conn. The measurement is taken once per process (a second one
// would reuse the first one's freed goroutines and stacks and
// under-count); EDGEGW_IDLE_HEAPPROFILE=file also writes a heap profile of
// every allocation at 1,000 connections:
//
//	go test -run XXX -bench IdleMemory ./mqtt/broker
func BenchmarkIdleMemory(b *testing.B) {
	// Nothing is timed: ns/op means nothing here.
	idleMemOnce.Do(func() { idleMem = measureIdleMemory(b) })
	b.ReportMetric(idleMem[0]+idleMem[1], "B/conn")
	b.ReportMetric(idleMem[0], "stack-B/conn")
	b.ReportMetric(idleMem[1], "heap-B/conn")
	b.ReportMetric(idleMem[2], "goroutines/conn")
}

var (
	idleMemOnce sync.Once
	idleMem     [3]float64 // stack, heap, goroutines per connection
)

func measureIdleMemory(b *testing.B) [3]float64 {
	const n = 1000
	if os.Getenv("EDGEGW_IDLE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	s, err := New(Options{SysInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	conns := idleConns(b, l.Addr().String(), n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The connection goroutines settle in their idle read.
	for k := 0; k < 100 && s.Stats().Clients < n; k++ {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()
	if f := os.Getenv("EDGEGW_IDLE_HEAPPROFILE"); f != "" {
		if w, err := os.Create(f); err == nil {
			pprof.Lookup("heap").WriteTo(w, 0)
			w.Close()
		}
	}
	return [3]float64{
		float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / n,
		float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / n,
		float64(g1-g0) / n,
	}
}
