package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testOptions are small, fast options for tests.
func testOptions() Options {
	return Options{Fsync: FsyncNever, SegmentSize: 4096}
}

func mustOpen(t testing.TB, dir string, o Options) *Queue {
	t.Helper()
	q, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return q
}

func mustPut(t testing.TB, q *Queue, class string, data string) uint64 {
	t.Helper()
	seq, err := q.Put(class, []byte(data))
	if err != nil {
		t.Fatalf("Put(%s, %q) = %v", class, data, err)
	}
	return seq
}

// drain returns every record TryNext hands out, as "class/seq:data".
func drain(t testing.TB, q *Queue) []string {
	t.Helper()
	if err := q.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	var out []string
	for range 1 << 20 {
		rec, ok, err := q.TryNext()
		if err != nil {
			t.Fatalf("TryNext() = %v", err)
		}
		if !ok {
			return out
		}
		out = append(out, fmt.Sprintf("%s/%d:%s", rec.Class, rec.Seq, rec.Data))
	}
	t.Fatal("drain did not end")
	return nil
}

func TestPutNextAck(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, testOptions())
	defer q.Close()
	for i := range 3 {
		if got, want := mustPut(t, q, "telemetry", fmt.Sprint("t", i)), uint64(i+1); got != want {
			t.Errorf("Put seq = %d, want %d", got, want)
		}
	}
	mustPut(t, q, "alarm", "a0")
	got := drain(t, q)
	want := []string{"alarm/1:a0", "telemetry/1:t0", "telemetry/2:t1", "telemetry/3:t2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("drain (-want +got):\n%s", diff)
	}
	if n := q.Len(); n != 4 {
		t.Errorf("Len() = %d, want 4", n)
	}
	// Out of order acknowledgement; then Rewind hands out only what is left.
	for _, a := range []struct {
		class string
		seq   uint64
	}{{"telemetry", 2}, {"alarm", 1}} {
		if err := q.Ack(a.class, a.seq); err != nil {
			t.Fatalf("Ack(%s, %d) = %v", a.class, a.seq, err)
		}
	}
	q.Rewind()
	got = drain(t, q)
	want = []string{"telemetry/1:t0", "telemetry/3:t2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after Rewind (-want +got):\n%s", diff)
	}
	if err := q.Ack("telemetry", 9); !errors.Is(err, ErrUnknownSeq) {
		t.Errorf("Ack(telemetry, 9) = %v, want ErrUnknownSeq", err)
	}
	if err := q.Ack("nope", 1); !errors.Is(err, ErrUnknownClass) {
		t.Errorf("Ack(nope, 1) = %v, want ErrUnknownClass", err)
	}
	if _, err := q.Put("nope", nil); !errors.Is(err, ErrUnknownClass) {
		t.Errorf("Put(nope) = %v, want ErrUnknownClass", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	// Reopen: the cursor holds only contiguous acknowledgements, so
	// telemetry 2 (acknowledged out of order) is delivered again.
	q = mustOpen(t, dir, testOptions())
	defer q.Close()
	got = drain(t, q)
	want = []string{"telemetry/1:t0", "telemetry/2:t1", "telemetry/3:t2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if s := mustPut(t, q, "telemetry", "t3"); s != 4 {
		t.Errorf("Put after reopen seq = %d, want 4", s)
	}
}

func TestNextBlocks(t *testing.T) {
	q := mustOpen(t, t.TempDir(), testOptions())
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := q.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next(empty) = %v, want DeadlineExceeded", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var rec Record
	var err error
	go func() {
		defer wg.Done()
		rec, err = q.Next(context.Background())
	}()
	mustPut(t, q, "telemetry", "x")
	wg.Wait()
	if err != nil || rec.Seq != 1 || string(rec.Data) != "x" {
		t.Fatalf("Next() = %+v, %v; want telemetry/1:x", rec, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err = q.Next(context.Background())
	}()
	q.Close()
	wg.Wait()
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Next() after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Put("alarm", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
}

func TestSegmentsRotateAndDelete(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	q := mustOpen(t, dir, o)
	payload := make([]byte, 500)
	const n = 100
	for range n {
		if _, err := q.Put("telemetry", payload); err != nil {
			t.Fatal(err)
		}
	}
	q.Flush()
	st := q.Stats().Classes[1]
	if st.Segments < 10 {
		t.Fatalf("Segments = %d, want ≥ 10 at 4 KiB segments", st.Segments)
	}
	for i := range n - 1 {
		rec, ok, err := q.TryNext()
		if !ok || err != nil || rec.Seq != uint64(i+1) {
			t.Fatalf("TryNext() = %v, %v, %v; want seq %d", rec.Seq, ok, err, i+1)
		}
		if err := q.Ack("telemetry", rec.Seq); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	ents, _ := filepath.Glob(filepath.Join(dir, "telemetry", "*.seg"))
	if len(ents) != 1 {
		t.Errorf("segments left = %v, want only the one holding seq %d", ents, n)
	}
	q = mustOpen(t, dir, o)
	defer q.Close()
	got := drain(t, q)
	if len(got) != 1 || got[0] != fmt.Sprintf("telemetry/%d:%s", n, payload) {
		t.Errorf("after reopen got %d records, want only seq %d", len(got), n)
	}
}

func TestConcurrentProducers(t *testing.T) {
	for _, pol := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			o := testOptions()
			o.Fsync = pol
			o.SegmentSize = 64 << 10
			q := mustOpen(t, t.TempDir(), o)
			defer q.Close()
			const producers, each = 8, 200
			var wg sync.WaitGroup
			errs := make(chan error, producers)
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					last := uint64(0)
					for i := range each {
						seq, err := q.Put("telemetry", fmt.Appendf(nil, "%d-%d", p, i))
						if err != nil {
							errs <- err
							return
						}
						if seq <= last {
							errs <- fmt.Errorf("producer %d: seq %d after %d", p, seq, last)
							return
						}
						last = seq
					}
				}()
			}
			// A consumer runs concurrently and sees per-producer order.
			seen := map[int]int{}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for n := 0; n < producers*each; n++ {
				rec, err := q.Next(ctx)
				if err != nil {
					t.Fatalf("Next() = %v after %d", err, n)
				}
				if rec.Seq != uint64(n+1) {
					t.Fatalf("Next() seq = %d, want %d", rec.Seq, n+1)
				}
				var p, i int
				fmt.Sscanf(string(rec.Data), "%d-%d", &p, &i)
				if prev, ok := seen[p]; ok && i != prev+1 || !ok && i != 0 {
					t.Fatalf("producer %d: record %d after %d", p, i, prev)
				}
				seen[p] = i
				if err := q.Ack(rec.Class, rec.Seq); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, testOptions())
	if _, err := Open(dir, testOptions()); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	q.Close()
	for _, o := range []Options{
		{Classes: []ClassOptions{{Name: "Alarm"}}},
		{Classes: []ClassOptions{{Name: "a"}, {Name: "a"}}},
		{Fsync: 7},
		{Classes: []ClassOptions{{Name: "a", MaxBytes: -1}}},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) = nil error", o)
		}
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Open(f, testOptions()); err == nil {
		t.Errorf("Open(a file) = nil error")
	}
}

// An alarm put while the consumer is in the middle of a telemetry backlog
// is the next record it gets; telemetry then continues where it was.
func TestAlarmJumpsBacklog(t *testing.T) {
	q := mustOpen(t, t.TempDir(), testOptions())
	defer q.Close()
	for i := range 100 {
		mustPut(t, q, "telemetry", fmt.Sprint("t", i))
	}
	q.Flush()
	for i := range 10 {
		if r, ok, _ := q.TryNext(); !ok || r.Class != "telemetry" || r.Seq != uint64(i+1) {
			t.Fatalf("TryNext = %s/%d, want telemetry/%d", r.Class, r.Seq, i+1)
		}
	}
	mustPut(t, q, "alarm", "low pressure")
	q.Flush()
	got := drain(t, q)
	if len(got) != 91 || got[0] != "alarm/1:low pressure" || got[1] != "telemetry/11:t10" {
		t.Fatalf("drained %d: %q...; want the alarm, then telemetry from 11", len(got), got[:2])
	}
	// A Rewind after acknowledging the alarm and telemetry 1..5 starts
	// telemetry at 6 and does not repeat the alarm.
	q.Ack("alarm", 1)
	for s := uint64(1); s <= 5; s++ {
		q.Ack("telemetry", s)
	}
	q.Rewind()
	got = drain(t, q)
	if len(got) != 95 || got[0] != "telemetry/6:t5" {
		t.Fatalf("after Rewind drained %d starting %q; want 95 from telemetry/6", len(got), got[0])
	}
}
