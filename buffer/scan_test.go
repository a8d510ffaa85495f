package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scanAll returns the sequence numbers Scan hands out from from, stopping
// after stop records (0: never).
func scanAll(t *testing.T, q *Queue, class string, from uint64, stop int) []uint64 {
	t.Helper()
	var got []uint64
	err := q.Scan(class, from, func(seq uint64, data []byte) bool {
		if want := fmt.Sprintf("r%03d", seq); string(data) != want {
			t.Errorf("Scan: record %d = %q, want %q", seq, data, want)
		}
		got = append(got, seq)
		return stop == 0 || len(got) < stop
	})
	if err != nil {
		t.Fatalf("Scan(%s, %d) = %v", class, from, err)
	}
	return got
}

func seqs(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, testOptions())
	defer q.Close()
	for i := 1; i <= 900; i++ {
		mustPut(t, q, "telemetry", fmt.Sprintf("r%03d", i))
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := q.Stats().Classes[1].Segments; n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	// Acknowledged records still on disk are scanned too.
	for i := uint64(1); i <= 10; i++ {
		if err := q.Ack("telemetry", i); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		from uint64
		stop int
		want []uint64
	}{
		{"all", 0, 0, seqs(1, 900)},
		{"from 1", 1, 0, seqs(1, 900)},
		{"tail", 897, 0, seqs(897, 900)},
		{"middle", 150, 0, seqs(150, 900)},
		{"past the end", 901, 0, nil},
		{"stopped", 100, 3, seqs(100, 102)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, scanAll(t, q, "telemetry", tt.from, tt.stop)); diff != "" {
				t.Errorf("Scan(%d) (-want +got):\n%s", tt.from, diff)
			}
		})
	}
	if got := scanAll(t, q, "alarm", 0, 0); got != nil {
		t.Errorf("Scan(alarm) = %v, want nothing", got)
	}
	if err := q.Scan("nope", 0, func(uint64, []byte) bool { return true }); !errors.Is(err, ErrUnknownClass) {
		t.Errorf("Scan(nope) = %v, want ErrUnknownClass", err)
	}
	// The consumer's position is untouched.
	if got := drain(t, q); len(got) != 890 || !strings.HasPrefix(got[0], "telemetry/11:") {
		t.Errorf("after Scan, Next hands out %d records from %v, want 890 from 11", len(got), got[:1])
	}
}

func TestScanSkipsDamage(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, testOptions())
	for i := 1; i <= 400; i++ {
		mustPut(t, q, "telemetry", fmt.Sprintf("r%03d", i))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(filepath.Join(dir, "telemetry"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	// Flip a payload byte of the first segment's third record.
	b, err := os.ReadFile(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	b[segHeaderSize+2*recordSize(4)+recordHeaderSize] ^= 0xff
	if err := os.WriteFile(segs[0].path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	q = mustOpen(t, dir, testOptions())
	defer q.Close()
	want := append([]uint64{1, 2}, seqs(4, 400)...)
	if diff := cmp.Diff(want, scanAll(t, q, "telemetry", 1, 0)); diff != "" {
		t.Errorf("Scan over damage (-want +got):\n%s", diff)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Scan("telemetry", 1, func(uint64, []byte) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close = %v, want ErrClosed", err)
	}
}
