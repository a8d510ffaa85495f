package daemon

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway"
)

// BenchmarkStartRecovery measures what a start costs after a long outage:
// opening the queue and gateway.New recovering the per-device sequence
// numbers, with a backlog of unacknowledged telemetry written by a gateway
// (so the state directory holds what a real one leaves). The backlog is
// 1,000,000 records (about 250 MB) unless EDGEGW_BENCH_RECORDS says
// otherwise. ns/op is one start.
func BenchmarkStartRecovery(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("EDGEGW_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	qopts := buffer.Options{Fsync: buffer.FsyncNever,
		Classes: []buffer.ClassOptions{{Name: gateway.ClassAlarm}, {Name: gateway.ClassTelemetry, MaxBytes: 4 << 30}}}
	q, err := buffer.Open(dir+"/queue", qopts)
	if err != nil {
		b.Fatal(err)
	}
	// The bulk goes in directly (fast); a gateway then recovers its
	// numbers and sends the last messages, leaving its state as a running
	// gateway does.
	for i := range n {
		dev := fmt.Sprintf("dev%d", i%10)
		r := gateway.Record{Topic: "vehicles/B/telemetry/" + dev, QoS: 1, Retain: true, Time: time.Now(),
			Payload: fmt.Appendf(nil, `{"seq":%d,"ts":"2026-01-01T00:00:00Z","points":{"temperature":{"v":21.5,"u":"°C","q":"good"},"humidity":{"v":45.1,"u":"%%RH","q":"good"}}}`, i/10+1)}
		rb, _ := r.MarshalBinary()
		if _, err := q.Put(gateway.ClassTelemetry, rb); err != nil {
			b.Fatal(err)
		}
	}
	d := startDeps(q, dir)
	d.Spool = q
	g, err := gateway.New(d, nil)
	if err != nil {
		b.Fatal(err)
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		dev := fmt.Sprintf("dev%d", i%10)
		g.Emit([]drivers.Reading{
			{Device: dev, Point: "temperature", Value: 21.5, Unit: "°C", Time: ts},
			{Device: dev, Point: "humidity", Value: 45.1, Unit: "%RH", Time: ts},
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Run(ctx); err != nil {
		b.Fatal(err)
	}
	st := q.Stats()
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("backlog: %d records, %d MiB", st.Len, st.Bytes>>20)
	for b.Loop() {
		q, err := buffer.Open(dir+"/queue", qopts)
		if err != nil {
			b.Fatal(err)
		}
		g, err := gateway.New(startDeps(q, dir), nil)
		if err != nil {
			b.Fatal(err)
		}
		g.Run(ctx)
		q.Close()
	}
}

// startDeps are the recovery inputs the daemon hands the first gateway.
func startDeps(q *buffer.Queue, dir string) gateway.Deps {
	d := gateway.Deps{Prefix: "vehicles/B", StateDir: dir, Backlog: backlog(q, false)}
	for _, cs := range q.Stats().Classes {
		if cs.Name == gateway.ClassTelemetry {
			d.TelemetryNext = cs.NextSeq
		}
	}
	return d
}
