package buffer

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMaxBytesDropOldest(t *testing.T) {
	o := testOptions()
	o.Classes = []ClassOptions{{Name: "alarm"}, {Name: "telemetry", MaxBytes: 32 << 10}}
	q := mustOpen(t, t.TempDir(), o)
	defer q.Close()
	rec := []byte(strings.Repeat("d", 500))
	for range 20 {
		mustPut(t, q, "telemetry", string(rec))
	}
	// The consumer is in the middle of the oldest segment when it goes.
	q.Flush()
	for i := range 3 {
		if r, ok, _ := q.TryNext(); !ok || r.Seq != uint64(i+1) {
			t.Fatalf("TryNext = %d, %v; want %d", r.Seq, ok, i+1)
		}
	}
	for range 180 {
		mustPut(t, q, "telemetry", string(rec))
	}
	q.Flush()
	st := q.Stats().Classes[1]
	if st.Bytes > 32<<10 || st.Dropped == 0 || st.Appended != 200 {
		t.Fatalf("Stats = %+v; want Bytes ≤ 32 KiB, Dropped > 0, Appended 200", st)
	}
	if err := q.Ack("telemetry", 1); err != nil {
		t.Errorf("Ack of a dropped record = %v, want nil", err)
	}
	got := drain(t, q)
	if uint64(len(got)) != 200-st.Dropped || !strings.HasPrefix(got[len(got)-1], "telemetry/200:") {
		t.Fatalf("drained %d records ending %.20q; want %d ending with seq 200", len(got), got[len(got)-1], 200-st.Dropped)
	}
	if q.Len() != len(got) {
		t.Errorf("Len() = %d, want %d", q.Len(), len(got))
	}
}

func TestMaxBytesReject(t *testing.T) {
	o := testOptions()
	o.Classes = []ClassOptions{{Name: "alarm", MaxBytes: 32 << 10, Policy: Reject}, {Name: "telemetry"}}
	q := mustOpen(t, t.TempDir(), o)
	defer q.Close()
	rec := []byte(strings.Repeat("d", 500))
	n := 0
	for ; n < 1000; n++ {
		if _, err := q.Put("alarm", rec); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Put = %v, want ErrFull", err)
			}
			break
		}
	}
	if n == 0 || n == 1000 {
		t.Fatalf("%d Puts succeeded before ErrFull", n)
	}
	q.Flush()
	if st := q.Stats().Classes[0]; st.Dropped != 0 || st.Appended != uint64(n) || st.Bytes > 32<<10 {
		t.Fatalf("Stats = %+v", st)
	}
	for s := uint64(1); s <= uint64(n); s++ {
		q.Ack("alarm", s)
	}
	q.byName["alarm"].collect(time.Now(), true)
	if _, err := q.Put("alarm", rec); err != nil {
		t.Fatalf("Put after acknowledging everything = %v", err)
	}
}

// faultFS wraps the real file system; its segment files fail writes (after
// writing half) or syncs on demand.
type faultFS struct {
	mu                           sync.Mutex
	failWrite, failSync, failCut bool
}

func (fs *faultFS) set(write, sync, cut bool) {
	fs.mu.Lock()
	fs.failWrite, fs.failSync, fs.failCut = write, sync, cut
	fs.mu.Unlock()
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(name, segSuffix) {
		return f, nil
	}
	return &faultFile{File: f, fs: fs}, nil
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	fail := f.fs.failWrite
	f.fs.mu.Unlock()
	if fail {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, syscall.EIO
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	fail := f.fs.failSync
	f.fs.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(n int64) error {
	f.fs.mu.Lock()
	fail := f.fs.failCut
	f.fs.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.File.Truncate(n)
}

func TestWriteErrors(t *testing.T) {
	for _, tt := range []struct {
		name             string
		write, sync, cut bool
		wantNewSegment   bool
	}{
		{name: "write fails", write: true},
		{name: "sync fails", sync: true},
		{name: "write and truncate fail", write: true, cut: true, wantNewSegment: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{}
			o := testOptions()
			o.Fsync = FsyncAlways
			o.SegmentSize = 1 << 20
			o.fs = fs
			q := mustOpen(t, dir, o)
			for i := range 5 {
				mustPut(t, q, "telemetry", strings.Repeat("a", i*10))
			}
			size := q.Stats().Classes[1].Bytes
			fs.set(tt.write, tt.sync, tt.cut)
			for range 3 {
				if _, err := q.Put("telemetry", []byte("doomed record")); !errors.Is(err, syscall.EIO) {
					t.Fatalf("Put with a failing disk = %v, want EIO", err)
				}
			}
			fs.set(false, false, false)
			if got := q.Stats().Classes[1].Bytes; got != size {
				t.Errorf("Bytes after failed appends = %d, want %d", got, size)
			}
			if seq := mustPut(t, q, "telemetry", "after"); seq != 6 {
				t.Errorf("Put after recovery seq = %d, want 6", seq)
			}
			if segs := q.Stats().Classes[1].Segments; (segs == 2) != tt.wantNewSegment {
				t.Errorf("Segments = %d, new segment wanted: %v", segs, tt.wantNewSegment)
			}
			if got := drain(t, q); len(got) != 6 || got[5] != "telemetry/6:after" {
				t.Errorf("drained %q", got)
			}
			q.Close()
			q = mustOpen(t, dir, o)
			defer q.Close()
			if got := drain(t, q); len(got) != 6 || got[5] != "telemetry/6:after" {
				t.Errorf("after reopen drained %q", got)
			}
			if st := q.Stats(); st.CorruptSkipped != 0 {
				t.Errorf("CorruptSkipped = %d, want 0", st.CorruptSkipped)
			}
		})
	}
}

// With FsyncInterval the writer owns failed records: Puts fail while the
// disk does, and the records are written once it recovers.
func TestWriteErrorsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		fs := &faultFS{}
		o := testOptions()
		o.Fsync = FsyncInterval
		o.FsyncInterval = 100 * time.Millisecond
		o.fs = fs
		q := mustOpen(t, dir, o)
		defer q.Close()
		for range 5 {
			mustPut(t, q, "telemetry", "ok")
		}
		if err := q.Flush(); err != nil {
			t.Fatal(err)
		}
		fs.set(true, false, false)
		mustPut(t, q, "telemetry", "held") // accepted, not yet written
		if err := q.Flush(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Flush with a failing disk = %v, want EIO", err)
		}
		if _, err := q.Put("telemetry", []byte("refused")); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Put with a failing disk = %v, want EIO", err)
		}
		fs.set(false, false, false)
		time.Sleep(o.FsyncInterval)
		synctest.Wait()
		if err := q.Flush(); err != nil {
			t.Fatalf("Flush after the disk recovered = %v", err)
		}
		mustPut(t, q, "telemetry", "after")
		got := drain(t, q)
		want := []string{"telemetry/1:ok", "telemetry/2:ok", "telemetry/3:ok", "telemetry/4:ok", "telemetry/5:ok", "telemetry/6:held", "telemetry/7:after"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("drained (-want +got):\n%s", diff)
		}
	})
}
