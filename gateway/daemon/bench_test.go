package daemon

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
)

// BenchmarkStartRecovery measures what a start costs after a long outage:
// gateway.New reading a backlog of 100,000 telemetry records (about 25 MB)
// to recover sequence numbers.
func BenchmarkStartRecovery(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	q, err := buffer.Open(dir+"/queue", buffer.Options{Fsync: buffer.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		dev := fmt.Sprintf("dev%d", i%10)
		r := gateway.Record{Topic: "vehicles/B/telemetry/" + dev, QoS: 1, Retain: true, Time: time.Now(),
			Payload: fmt.Appendf(nil, `{"seq":%d,"ts":"2026-01-01T00:00:00Z","points":{"temperature":{"v":21.5,"u":"°C","q":"good"},"humidity":{"v":45.1,"u":"%%RH","q":"good"}}}`, i/10+1)}
		rb, _ := r.MarshalBinary()
		if _, err := q.Put(gateway.ClassTelemetry, rb); err != nil {
			b.Fatal(err)
		}
	}
	q.Close()
	b.ResetTimer()
	for range b.N {
		q, err := buffer.Open(dir+"/queue", buffer.Options{Fsync: buffer.FsyncNever})
		if err != nil {
			b.Fatal(err)
		}
		g, err := gateway.New(gateway.Deps{Prefix: "vehicles/B", StateDir: dir, Backlog: backlog(q)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = g
		q.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
