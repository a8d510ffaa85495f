package buffer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fillQueue appends n records "r<i>-<padding>" to telemetry and closes the
// queue; it returns the records' data by sequence number (index 0 unused).
func fillQueue(t *testing.T, dir string, o Options, n int, size func(i int) int) []string {
	t.Helper()
	q := mustOpen(t, dir, o)
	recs := []string{""}
	for i := 1; i <= n; i++ {
		d := fmt.Sprintf("r%d-%s", i, strings.Repeat("x", size(i)))
		if seq := mustPut(t, q, "telemetry", d); seq != uint64(i) {
			t.Fatalf("Put seq = %d, want %d", seq, i)
		}
		recs = append(recs, d)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func segFiles(t *testing.T, dir, class string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, class, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// copyDir copies a queue directory (one level of class subdirectories).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// seqs returns the sequence numbers of drained "class/seq:data" strings,
// checking each record's data against recs.
func checkDrained(t *testing.T, got []string, recs []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, g := range got {
		var seq uint64
		cls, rest, _ := strings.Cut(g, "/")
		num, data, _ := strings.Cut(rest, ":")
		fmt.Sscan(num, &seq)
		if cls != "telemetry" || seq == 0 || seq >= uint64(len(recs)) || recs[seq] != data {
			t.Fatalf("drained %.40q: not a record that was put", g)
		}
		if len(out) > 0 && seq <= out[len(out)-1] {
			t.Fatalf("drained seq %d after %d", seq, out[len(out)-1])
		}
		out = append(out, seq)
	}
	return out
}

func TestTruncateTailEveryOffset(t *testing.T) {
	src := t.TempDir()
	o := testOptions()
	o.SegmentSize = 1 << 20
	recs := fillQueue(t, src, o, 8, func(i int) int { return 3 * i })
	seg := segFiles(t, src, "telemetry")[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// ends[i] is the offset just past record i.
	ends := []int{segHeaderSize}
	for i := 1; i < len(recs); i++ {
		ends = append(ends, ends[i-1]+recordSize(len(recs[i])))
	}
	if ends[len(ends)-1] != len(data) {
		t.Fatalf("segment size %d, want %d", len(data), ends[len(ends)-1])
	}
	for cut := ends[5]; cut <= len(data); cut++ {
		dir := filepath.Join(t.TempDir(), "q")
		copyDir(t, src, dir)
		if err := os.Truncate(filepath.Join(dir, "telemetry", filepath.Base(seg)), int64(cut)); err != nil {
			t.Fatal(err)
		}
		whole := 0
		for whole+1 < len(ends) && ends[whole+1] <= cut {
			whole++
		}
		q := mustOpen(t, dir, o)
		got := checkDrained(t, drain(t, q), recs)
		if len(got) != whole {
			t.Fatalf("cut %d: drained %v, want records 1..%d", cut, got, whole)
		}
		if seq := mustPut(t, q, "telemetry", "new"); seq != uint64(whole+1) {
			t.Fatalf("cut %d: Put seq = %d, want %d", cut, seq, whole+1)
		}
		q.Close()
		q = mustOpen(t, dir, o)
		all := drain(t, q)
		if len(all) != whole+1 || all[whole] != fmt.Sprintf("telemetry/%d:new", whole+1) {
			t.Fatalf("cut %d: after append and reopen drained %d records, last %q", cut, len(all), all[len(all)-1])
		}
		if st := q.Stats(); st.CorruptSkipped != 0 {
			t.Errorf("cut %d: CorruptSkipped = %d, want 0", cut, st.CorruptSkipped)
		}
		q.Close()
	}
}

func TestDamage(t *testing.T) {
	o := testOptions() // 4 KiB segments
	src := t.TempDir()
	// 300-byte records: 13 per segment.
	recs := fillQueue(t, src, o, 60, func(int) int { return 290 })
	segs := segFiles(t, src, "telemetry")
	if len(segs) < 4 {
		t.Fatalf("got %d segments, want ≥ 4", len(segs))
	}
	rec := func(i int) int { return segHeaderSize + (i-1)*recordSize(len(recs[1])) } // offset of record i in the first segment
	perSeg := (int(o.SegmentSize)-segHeaderSize)/recordSize(len(recs[1])) + 1
	first := func(seg int) int { return seg*perSeg + 1 } // first record in segment number seg
	_ = first
	type flip struct {
		seg int // index in segs; -1 is the active one
		off int
	}
	tests := []struct {
		name    string
		flips   []flip
		zero    int // segment index to zero out, or -1
		empty   int // segment index to truncate to 0 bytes, or -1
		lost    int // records not delivered
		corrupt uint64
	}{
		{name: "segment header", flips: []flip{{0, 3}}, zero: -1, empty: -1},
		{name: "first segment number in header", flips: []flip{{1, 9}}, zero: -1, empty: -1},
		{name: "record length", flips: []flip{{0, rec(2)}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "record length high bit", flips: []flip{{0, rec(2) + 3}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "record checksum", flips: []flip{{0, rec(3) + 5}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "record seq", flips: []flip{{0, rec(4) + 8}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "payload", flips: []flip{{0, rec(5) + 100}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "first record of a segment", flips: []flip{{2, segHeaderSize + 20}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "last record of a segment", flips: []flip{{1, rec(perSeg) + 20}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "two records", flips: []flip{{0, rec(2) + 20}, {0, rec(3) + 20}}, zero: -1, empty: -1, lost: 2, corrupt: 2},
		{name: "active segment middle", flips: []flip{{-1, rec(2) + 20}}, zero: -1, empty: -1, lost: 1, corrupt: 1},
		{name: "all-zero sealed segment", zero: 1, empty: -1, lost: perSeg, corrupt: uint64(perSeg)},
		{name: "empty sealed segment", zero: -1, empty: 2, lost: perSeg, corrupt: uint64(perSeg)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			copyDir(t, src, dir)
			segs := segFiles(t, dir, "telemetry")
			for _, f := range tt.flips {
				p := segs[(f.seg+len(segs))%len(segs)]
				b, _ := os.ReadFile(p)
				b[f.off] ^= 0x04
				os.WriteFile(p, b, 0o644)
			}
			if tt.zero >= 0 {
				b, _ := os.ReadFile(segs[tt.zero])
				os.WriteFile(segs[tt.zero], make([]byte, len(b)), 0o644)
			}
			if tt.empty >= 0 {
				os.Truncate(segs[tt.empty], 0)
			}
			q := mustOpen(t, dir, o)
			got := checkDrained(t, drain(t, q), recs)
			if want := len(recs) - 1 - tt.lost; len(got) != want {
				t.Errorf("drained %d records, want %d: %v", len(got), want, got)
			}
			if st := q.Stats(); st.CorruptSkipped != tt.corrupt {
				t.Errorf("CorruptSkipped = %d, want %d", st.CorruptSkipped, tt.corrupt)
			}
			// Appends continue after the last record, and acknowledging
			// everything delivered moves the cursor over the damage.
			if seq := mustPut(t, q, "telemetry", "new"); seq != uint64(len(recs)) {
				t.Errorf("Put seq = %d, want %d", seq, len(recs))
			}
			for _, s := range append(got, uint64(len(recs))) {
				q.Ack("telemetry", s)
			}
			if n := q.Len(); n != 0 {
				t.Errorf("Len() after acknowledging all = %d, want 0", n)
			}
			q.Close()
			q = mustOpen(t, dir, o)
			if rest := drain(t, q); len(rest) != 0 {
				t.Errorf("after acknowledging all and reopening: %d records left", len(rest))
			}
			q.Close()
		})
	}
}

func TestCursorLoss(t *testing.T) {
	o := testOptions()
	for _, tt := range []struct {
		name   string
		damage func(path string)
	}{
		{"deleted", func(p string) { os.Remove(p) }},
		{"zeroed", func(p string) { os.WriteFile(p, make([]byte, 2*cursorSlotSize), 0o644) }},
		{"garbage", func(p string) { os.WriteFile(p, bytes.Repeat([]byte("garbage!"), 200), 0o644) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			recs := fillQueue(t, dir, o, 40, func(int) int { return 290 })
			q := mustOpen(t, dir, o)
			// Acknowledge 1..20: segments before 20 go away.
			for i := uint64(1); i <= 20; i++ {
				q.Ack("telemetry", i)
			}
			q.Close()
			oldest := segFiles(t, dir, "telemetry")[0]
			from, _ := parseSegName(filepath.Base(oldest))
			tt.damage(filepath.Join(dir, "telemetry", cursorName))
			q = mustOpen(t, dir, o)
			defer q.Close()
			got := checkDrained(t, drain(t, q), recs)
			if len(got) == 0 || got[0] != from || got[len(got)-1] != 40 || len(got) != int(40-from+1) {
				t.Errorf("drained %v, want %d..40 (the oldest segment on)", got, from)
			}
		})
	}
}

func TestReopenKeepsDurableCursor(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	recs := fillQueue(t, dir, o, 10, func(int) int { return 10 })
	q := mustOpen(t, dir, o)
	for i := uint64(1); i <= 4; i++ {
		q.Ack("telemetry", i)
	}
	q.Ack("telemetry", 6)
	q.Close()
	q = mustOpen(t, dir, o)
	defer q.Close()
	got := checkDrained(t, drain(t, q), recs)
	if diff := slices.Compare(got, []uint64{5, 6, 7, 8, 9, 10}); diff != 0 {
		t.Errorf("drained %v, want 5..10", got)
	}
	if c := q.Stats().Classes[1].Cursor; c != 4 {
		t.Errorf("Cursor = %d, want 4", c)
	}
}

// A segment deleted behind the queue's back costs its records, not the
// reader: it skips them, counts them and goes on.
func TestSegmentDeletedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	q := mustOpen(t, dir, o)
	defer q.Close()
	for range 60 {
		mustPut(t, q, "telemetry", strings.Repeat("s", 290))
	}
	q.Flush()
	segs := segFiles(t, dir, "telemetry")
	os.Remove(segs[1])
	got := drain(t, q)
	lost := q.Stats().CorruptSkipped
	if lost == 0 || len(got)+int(lost) != 60 || !strings.HasPrefix(got[len(got)-1], "telemetry/60:") {
		t.Fatalf("drained %d, CorruptSkipped %d; want 60 together, ending with seq 60", len(got), lost)
	}
	os.Remove(segs[len(segs)-1]) // the active one
	mustPut(t, q, "telemetry", "x")
	q.Flush()
	// The reader may still hold the unlinked file open and see "x"; either
	// way TryNext returns and the queue goes on.
	q.TryNext()
	q.Rewind()
	for range 3 {
		if _, _, err := q.TryNext(); err != nil {
			t.Fatalf("TryNext with the active segment gone = %v", err)
		}
	}
	mustPut(t, q, "telemetry", "y")
}
