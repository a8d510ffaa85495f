//go:build linux

package buffer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks report records/s and, where the block device's counters are
// readable, amp: bytes the device wrote (sectors written × 512, from
// /sys/dev/block/M:m/stat, so the file system journal counts) per payload
// byte. Other processes writing to the same device inflate amp; quote
// medians of -count=5. Run: scripts/bench-buffer.sh.

const benchRecord = 200

// sectorsWritten returns a function reading the sectors-written counter of
// the block device holding dir, or nil when there is none (tmpfs, overlay).
func sectorsWritten(dir string) func() uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil
	}
	// Linux's encoding of dev_t, as in glibc's gnu_dev_major/minor.
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	path := fmt.Sprintf("/sys/dev/block/%d:%d/stat", major, minor)
	read := func() (uint64, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) < 7 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[6], 10, 64)
		return n, err == nil
	}
	if _, ok := read(); !ok {
		return nil
	}
	return func() uint64 { n, _ := read(); return n }
}

// mountOf names the file system of dir for the log, from mountinfo.
func mountOf(dir string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	best, desc := "", "?"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		mp := fl[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			i := 6
			for i < len(fl) && fl[i] != "-" {
				i++
			}
			if i+2 < len(fl) {
				best, desc = mp, fmt.Sprintf("%s %s on %s (%s)", fl[i+1], fl[i+2], mp, fl[2])
			}
		}
	}
	return desc
}

type ampMeter struct {
	b     *testing.B
	read  func() uint64
	start uint64
}

func newAmpMeter(b *testing.B, dir string) *ampMeter {
	m := &ampMeter{b: b, read: sectorsWritten(dir)}
	if m.read == nil {
		b.Logf("no block device counters for %s: amp not reported", mountOf(dir))
	}
	return m
}

func (m *ampMeter) begin() {
	if m.read != nil {
		m.start = m.read()
	}
}

func (m *ampMeter) report(payload int64) {
	if m.read == nil || payload == 0 {
		return
	}
	m.b.ReportMetric(float64((m.read()-m.start)*512)/float64(payload), "amp")
}

func benchOptions(pol FsyncPolicy) Options {
	return Options{Fsync: pol, Classes: []ClassOptions{{Name: "telemetry"}}}
}

// benchAppend appends b.N 200-byte records from producers goroutines.
func benchAppend(b *testing.B, pol FsyncPolicy, producers int) {
	dir := b.TempDir()
	q, err := Open(dir, benchOptions(pol))
	if err != nil {
		b.Fatal(err)
	}
	meter := newAmpMeter(b, dir)
	rec := make([]byte, benchRecord)
	syscall.Sync()
	meter.begin()
	b.SetBytes(benchRecord)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N / producers
	for p := range producers {
		n := per
		if p == 0 {
			n += b.N % producers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := q.Put("telemetry", rec); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := q.Close(); err != nil { // the final fdatasync is part of the cost
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	meter.report(int64(b.N) * benchRecord)
}

func BenchmarkAppend(b *testing.B) {
	b.Run("interval/producers=1", func(b *testing.B) { benchAppend(b, FsyncInterval, 1) })
	b.Run("interval/producers=16", func(b *testing.B) { benchAppend(b, FsyncInterval, 16) })
	b.Run("always/producers=16", func(b *testing.B) { benchAppend(b, FsyncAlways, 16) })
	b.Run("always/ceiling=16", benchSyncCeiling)
}

// benchSyncCeiling measures the device's bound for FsyncAlways with 16
// producers: one pwrite of 16 framed records plus one fdatasync per batch,
// with no queue at all. records/s of always/producers=16 divided by this is
// the efficiency of the group commit, independent of the device's load.
func benchSyncCeiling(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "ceiling"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var batch []byte
	for i := range 16 {
		batch = appendRecord(batch, uint64(i+1), make([]byte, benchRecord))
	}
	b.ResetTimer()
	start := time.Now()
	var off int64
	for range b.N {
		if _, err := f.WriteAt(batch, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(batch))
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(16*float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkDrain builds a backlog of b.N records outside the timer, then
// takes and acknowledges every record as the uplink does.
func BenchmarkDrain(b *testing.B) {
	dir := b.TempDir()
	q, err := Open(dir, benchOptions(FsyncInterval))
	if err != nil {
		b.Fatal(err)
	}
	fill(b, q, b.N)
	q.Close()
	q, err = Open(dir, benchOptions(FsyncInterval))
	if err != nil {
		b.Fatal(err)
	}
	meter := newAmpMeter(b, dir)
	syscall.Sync()
	meter.begin()
	b.SetBytes(benchRecord)
	b.ResetTimer()
	start := time.Now()
	ctx := context.Background()
	for range b.N {
		rec, err := q.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ack(rec.Class, rec.Seq); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	syscall.Sync() // deletions and cursor writes reach the device
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	meter.report(int64(b.N) * benchRecord)
}

// fill appends n 200-byte records quickly (FsyncNever-like large batches
// from 16 producers).
func fill(b *testing.B, q *Queue, n int) {
	var wg sync.WaitGroup
	rec := make([]byte, benchRecord)
	const producers = 16
	for p := range producers {
		k := n / producers
		if p == 0 {
			k += n % producers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range k {
				if _, err := q.Put("telemetry", rec); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRecovery opens a queue holding a 1 GiB backlog (built once per
// run, outside the timer, and deleted afterwards) and takes its first record.
// Set EDGEGW_BENCH_BACKLOG (bytes) to change the size.
func BenchmarkRecovery(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("EDGEGW_BENCH_BACKLOG"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	dir, err := os.MkdirTemp("", "edgegw-bench-recovery-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && st.Bavail*uint64(st.Bsize) < uint64(size)*2 {
		b.Skipf("%d bytes free, want %d", st.Bavail*uint64(st.Bsize), 2*size)
	}
	o := benchOptions(FsyncNever)
	q, err := Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	n := int(size / int64(recordSize(benchRecord)))
	fill(b, q, n)
	// Leave a torn tail in the active segment, as after a power cut.
	act := q.byName["telemetry"].segs[len(q.byName["telemetry"].segs)-1].path
	q.Close()
	f, err := os.OpenFile(act, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		f.Write(appendRecord(nil, 1<<40, rec100)[:50])
		f.Close()
	}
	syscall.Sync()
	segs, _ := filepath.Glob(filepath.Join(dir, "telemetry", "*.seg"))
	b.Run(fmt.Sprintf("backlog=%dMiB", size>>20), func(b *testing.B) {
		b.Logf("%d records in %d segments", n, len(segs))
		for b.Loop() {
			q, err := Open(dir, o)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok, err := q.TryNext(); !ok || err != nil {
				b.Fatalf("TryNext = %v, %v", ok, err)
			}
			b.StopTimer()
			if q.Len() != n {
				b.Fatalf("Len() = %d, want %d", q.Len(), n)
			}
			q.Rewind()
			q.Close()
			b.StartTimer()
		}
	})
}

var rec100 = make([]byte, 100)
