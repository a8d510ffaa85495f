package buffer

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countFS counts fdatasyncs of segment files.
type countFS struct{ syncs atomic.Int64 }

func (fs *countFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, segSuffix) {
		return f, err
	}
	return &countFile{File: f, fs: fs}, nil
}

type countFile struct {
	*os.File
	fs *countFS
}

func (f *countFile) Sync() error {
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func TestFsyncInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &countFS{}
		o := testOptions()
		o.Fsync = FsyncInterval
		o.FsyncInterval = 200 * time.Millisecond
		o.fs = fs
		q := mustOpen(t, t.TempDir(), o)
		defer q.Close()
		fs.syncs.Store(0)
		mustPut(t, q, "telemetry", "a")
		mustPut(t, q, "telemetry", "b")
		synctest.Wait()
		if n := fs.syncs.Load(); n != 0 {
			t.Fatalf("syncs right after Put = %d, want 0", n)
		}
		time.Sleep(o.FsyncInterval)
		synctest.Wait()
		if n := fs.syncs.Load(); n != 1 {
			t.Fatalf("syncs after one interval = %d, want 1 (both records in one sync)", n)
		}
		time.Sleep(3 * o.FsyncInterval)
		synctest.Wait()
		if n := fs.syncs.Load(); n != 1 {
			t.Fatalf("syncs after idle intervals = %d, want still 1", n)
		}
	})
}

func TestCursorInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		o := testOptions()
		o.CursorInterval = 2 * time.Second
		q := mustOpen(t, dir, o)
		defer q.Close()
		for range 3 {
			mustPut(t, q, "telemetry", "x")
		}
		q.Ack("telemetry", 1)
		q.Ack("telemetry", 2)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if c := q.Stats().Classes[1].Cursor; c != 0 {
			t.Fatalf("Cursor after 1.5 s = %d, want 0 (not due)", c)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if c := q.Stats().Classes[1].Cursor; c != 2 {
			t.Fatalf("Cursor after 2.5 s = %d, want 2", c)
		}
		q.Ack("telemetry", 3)
		q.Close()
		if c := q.Stats().Classes[1].Cursor; c != 3 {
			t.Fatalf("Cursor after Close = %d, want 3", c)
		}
	})
}

func TestMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.Classes = []ClassOptions{{Name: "alarm"}, {Name: "telemetry", MaxAge: 10 * time.Second}}
		q := mustOpen(t, t.TempDir(), o)
		defer q.Close()
		rec := strings.Repeat("m", 500)
		for range 30 {
			mustPut(t, q, "telemetry", rec)
			mustPut(t, q, "alarm", rec)
		}
		time.Sleep(5 * time.Second)
		for range 5 {
			mustPut(t, q, "telemetry", rec)
		}
		time.Sleep(7 * time.Second) // t = 12 s
		synctest.Wait()
		st := q.Stats()
		tel := st.Classes[1]
		if tel.Dropped == 0 || tel.Dropped >= 30 || tel.Len != 35-int(tel.Dropped) {
			t.Fatalf("at 12 s: telemetry %+v; want the segments last written at 0 s dropped, not those written at 5 s", tel)
		}
		if st.Classes[0].Dropped != 0 {
			t.Errorf("alarm Dropped = %d, want 0 (no MaxAge)", st.Classes[0].Dropped)
		}
		time.Sleep(5 * time.Second) // t = 17 s
		synctest.Wait()
		if tel := q.Stats().Classes[1]; tel.Dropped != 35 || tel.Len != 0 {
			t.Fatalf("at 17 s: telemetry %+v; want all 35 dropped", tel)
		}
		if got := drain(t, q); len(got) != 30 || !strings.HasPrefix(got[0], "alarm/1:") {
			t.Errorf("drained %d records, want the 30 alarms", len(got))
		}
	})
}

// Under FsyncInterval a record reaches the consumer only once it is synced.
func TestIntervalDeliversSynced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.Fsync = FsyncInterval
		o.FsyncInterval = 200 * time.Millisecond
		q := mustOpen(t, t.TempDir(), o)
		defer q.Close()
		mustPut(t, q, "alarm", "a")
		synctest.Wait()
		if _, ok, _ := q.TryNext(); ok {
			t.Fatal("TryNext handed out an unsynced record")
		}
		start := time.Now()
		rec, err := q.Next(context.Background())
		if err != nil || string(rec.Data) != "a" {
			t.Fatalf("Next() = %q, %v", rec.Data, err)
		}
		if waited := time.Since(start); waited > o.FsyncInterval {
			t.Errorf("Next waited %v, want at most one interval %v", waited, o.FsyncInterval)
		}
	})
}
