//go:build linux

package buffer

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallFS mounts a tmpfs of size bytes, or skips when mounting is not
// allowed here (not root, no CAP_SYS_ADMIN).
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v); the injected write errors of TestWriteErrors cover this", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return filepath.Join(dir, "q")
}

func TestDiskFull(t *testing.T) {
	dir := smallFS(t, "256k")
	o := testOptions()
	o.Fsync = FsyncAlways
	q := mustOpen(t, dir, o)
	rec := []byte(strings.Repeat("f", 1000))
	n := 0
	var err error
	for ; n < 1000; n++ {
		if _, err = q.Put("telemetry", rec); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d Puts: %v, want ENOSPC", n, err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close on a full disk = %v", err)
	}
	q = mustOpen(t, dir, o)
	defer q.Close()
	got := drain(t, q)
	if len(got) != n {
		t.Fatalf("after reopen drained %d records, want %d", len(got), n)
	}
	if st := q.Stats(); st.CorruptSkipped != 0 {
		t.Errorf("CorruptSkipped = %d, want 0", st.CorruptSkipped)
	}
	for s := uint64(1); s <= uint64(n); s++ {
		q.Ack("telemetry", s)
	}
	q.byName["telemetry"].collect(time.Now(), true)
	if seq, err := q.Put("telemetry", rec); err != nil || seq != uint64(n+1) {
		t.Fatalf("Put after freeing space = %d, %v; want %d", seq, err, n+1)
	}
}

func TestFreeSpaceFloor(t *testing.T) {
	dir := smallFS(t, "1m")
	o := testOptions()
	o.MinFreeBytes = 256 << 10
	o.Classes = []ClassOptions{{Name: "alarm", Policy: Reject}, {Name: "telemetry"}}
	q := mustOpen(t, dir, o)
	defer q.Close()
	rec := []byte(strings.Repeat("f", 1000))
	for i := range 3000 {
		if _, err := q.Put("telemetry", rec); err != nil {
			t.Fatalf("telemetry Put %d = %v, want drops instead", i, err)
		}
	}
	q.Flush()
	if free, _ := freeSpace(dir); free < o.MinFreeBytes-8<<10 {
		t.Errorf("free space %d, floor %d", free, o.MinFreeBytes)
	}
	if st := q.Stats().Classes[1]; st.Dropped == 0 {
		t.Errorf("telemetry Dropped = 0, want drops")
	}
	// Alarms take room from telemetry, then fail with ErrFull, never ENOSPC.
	var err error
	n := 0
	for ; n < 3000; n++ {
		if _, err = q.Put("alarm", rec); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || n < 100 {
		t.Fatalf("after %d alarm Puts: %v, want ErrFull after ≥ 100", n, err)
	}
	q.Flush()
	if st := q.Stats().Classes[1]; st.Segments != 1 {
		t.Errorf("telemetry Segments = %d, want 1 (all sealed ones dropped for alarms)", st.Segments)
	}
}
