package buffer

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen writes arbitrary bytes as a sealed segment, the active segment
// and the cursor of a class, then opens, drains, appends and reopens: never
// a panic, never a refusal to start, records in order.
func FuzzOpen(f *testing.F) {
	// Seeds: a real queue's files, and the framing table's records.
	src := f.TempDir()
	q, err := Open(src, Options{Fsync: FsyncNever, SegmentSize: 4096})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 30 {
		q.Put("telemetry", make([]byte, 10*i))
	}
	q.Ack("telemetry", 3)
	q.Close()
	m, _ := filepath.Glob(filepath.Join(src, "telemetry", "*.seg"))
	cur, _ := os.ReadFile(filepath.Join(src, "telemetry", cursorName))
	if len(m) >= 2 {
		a, _ := os.ReadFile(m[0])
		b, _ := os.ReadFile(m[1])
		f.Add(a, b, cur)
		f.Add(a, b[:len(b)/2], []byte{})
	}
	hdr := appendSegHeader(nil, 1, testTime)
	for _, tt := range recordTests {
		raw, _ := hex.DecodeString(tt.raw)
		f.Add(append(hdr, raw...), append(hdr, raw...), cur)
	}
	f.Add([]byte{}, make([]byte, 100), []byte("x"))
	f.Fuzz(fuzzOpenOnce)
}

func fuzzOpenOnce(t *testing.T, sealed, active, cursor []byte) {
	{
		dir := t.TempDir()
		cdir := filepath.Join(dir, "telemetry")
		os.MkdirAll(cdir, 0o755)
		os.WriteFile(filepath.Join(cdir, segName(1)), sealed, 0o644)
		os.WriteFile(filepath.Join(cdir, segName(20)), active, 0o644)
		os.WriteFile(filepath.Join(cdir, cursorName), cursor, 0o644)
		o := Options{Fsync: FsyncNever, SegmentSize: 4096, MaxRecordSize: 1 << 16}
		q, err := Open(dir, o)
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		var last uint64
		for range 10000 {
			rec, ok, err := q.TryNext()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if rec.Seq <= last {
				t.Fatalf("seq %d after %d", rec.Seq, last)
			}
			last = rec.Seq
			q.Ack(rec.Class, rec.Seq)
		}
		seq, err := q.Put("telemetry", []byte("new"))
		if err != nil {
			t.Fatalf("Put = %v", err)
		}
		if seq <= last {
			t.Fatalf("Put seq %d not after delivered %d", seq, last)
		}
		q.Close()
		q, err = Open(dir, o)
		if err != nil {
			t.Fatalf("reopen = %v", err)
		}
		rec, ok, err := q.TryNext()
		if err != nil || !ok || rec.Seq != seq || string(rec.Data) != "new" {
			t.Fatalf("after reopen TryNext = %d %q, %v, %v; want %d new", rec.Seq, rec.Data, ok, err, seq)
		}
		q.Close()
	}
}
