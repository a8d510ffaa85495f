package broker

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// benchSyncEvery is the number of messages published between two sync
// intervals in the persistence benchmarks: a gateway polling ten readings
// a second.
const benchSyncEvery = 10

// BenchmarkPersistQueued reports the bytes written to the state directory
// per QoS 1 message queued for an offline persistent session (the car in a
// tunnel), ten messages per sync interval.
func BenchmarkPersistQueued(b *testing.B) {
	s := newServer(b, Options{StateDir: b.TempDir(), SyncInterval: time.Hour, MaxQueued: 1 << 20, MaxSessionBytes: -1, MaxQueuedBytes: -1})
	c := pipe(b, s, packet.V5)
	c.connack(&packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600}})
	c.subscribe(1, sub("vehicles/v1/telemetry/#", 1))
	c.nc.Close()
	waitOffline(b, s, "car")
	s.syncOnce()
	start := s.store.written.Load()
	ctx := context.Background()
	m := Message{Topic: "vehicles/v1/telemetry/speed", Payload: bytes.Repeat([]byte("x"), 100), QoS: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.Publish(ctx, m)
		if (i+1)%benchSyncEvery == 0 {
			s.syncOnce()
		}
	}
	s.syncOnce()
	b.StopTimer()
	b.ReportMetric(float64(s.store.written.Load()-start)/float64(b.N), "disk_bytes/msg")
}

// BenchmarkPersistRetained reports the bytes written per republication of
// one retained topic, once per sync interval, beside 100 other retained
// topics.
func BenchmarkPersistRetained(b *testing.B) {
	s := newServer(b, Options{StateDir: b.TempDir(), SyncInterval: time.Hour})
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 100)
	for i := range 100 {
		s.Publish(ctx, Message{Topic: "vehicles/v1/telemetry/" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Payload: payload, Retain: true})
	}
	s.syncOnce()
	start := s.store.written.Load()
	m := Message{Topic: "vehicles/v1/status", Payload: payload, Retain: true}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Publish(ctx, m)
		s.syncOnce()
	}
	b.StopTimer()
	b.ReportMetric(float64(s.store.written.Load()-start)/float64(b.N), "disk_bytes/msg")
}

// waitOffline waits until the session id has no connection.
func waitOffline(tb testing.TB, s *Server, id string) {
	tb.Helper()
	for range 1_000_000 {
		s.mu.Lock()
		ss := s.sessions[id]
		s.mu.Unlock()
		if ss != nil {
			ss.mu.Lock()
			off := ss.c == nil
			ss.mu.Unlock()
			if off {
				return
			}
		}
		runtime.Gosched()
	}
	tb.Fatalf("session %q still connected", id)
}

// BenchmarkPersistPublish measures the publishing cost of a QoS 1 message
// to a connected persistent session that acknowledges it, with the state
// kept in StateDir and synced every second in the background: the
// journal's cost on the hot path.
func BenchmarkPersistPublish(b *testing.B) {
	s := newServer(b, Options{StateDir: b.TempDir(), MaxQueued: 1 << 20, MaxSessionBytes: -1, MaxQueuedBytes: -1})
	c := pipe(b, s, packet.V5)
	c.connack(&packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600}})
	c.subscribe(1, sub("vehicles/#", 1))
	got := make(chan int)
	go func() {
		// Acknowledge every PUBLISH until the pipe closes.
		n := 0
		defer func() { got <- n }()
		var out []byte
		for {
			p, err := packet.Read(c.r, c.v, 0)
			if err != nil {
				return
			}
			if pub, ok := p.(*packet.Publish); ok {
				n++
				out, _ = packet.Append(out[:0], &packet.Puback{PacketID: pub.PacketID}, c.v)
				if _, err := c.nc.Write(out); err != nil {
					return
				}
			}
		}
	}()
	ctx := context.Background()
	m := Message{Topic: "vehicles/v1/telemetry/speed", Payload: bytes.Repeat([]byte("x"), 100), QoS: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Publish(ctx, m)
	}
	b.StopTimer()
	c.nc.Close()
	<-got
}
