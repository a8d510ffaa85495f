package gateway

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCommandLogFull measures claiming and finishing one command
// with the remembered ids just under their default bounds (about 5,000
// ids: the byte bound comes first): two synced appends to the journal,
// and once in a few thousand commands a compaction of about 1 MB.
func BenchmarkCommandLogFull(b *testing.B) {
	l, err := openCommandLog(b.TempDir(), CommandPolicy{}, discard())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < DefaultCommandMaxIDs-1 && l.bytes+512 < DefaultCommandMaxIDBytes; i++ {
		e := &logEntry{ID: fmt.Sprintf("id-%08d", i), Key: "seat_driver/heater", At: now, Until: now.Add(time.Hour),
			Result: &Result{ID: fmt.Sprintf("id-%08d", i), Status: StatusDone, TS: now.Format(time.RFC3339Nano)}}
		l.state.IDs = append(l.state.IDs, e)
		l.index[idKey{e.Key, e.ID}] = e
		l.bytes += entrySize(e)
	}
	ids := len(l.state.IDs)
	l.mu.Lock()
	if err := l.compactLocked(); err != nil {
		b.Fatal(err)
	}
	l.mu.Unlock()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("new-%d", i)
		if err := l.claim("seat_driver/heater", id, now); err != nil {
			b.Fatal(err)
		}
		l.done("seat_driver/heater", id, Result{ID: id, Status: StatusDone})
		l.mu.Lock()
		l.removeLocked(l.index[idKey{"seat_driver/heater", id}])
		l.mu.Unlock()
	}
	b.ReportMetric(float64(ids), "ids")
}
