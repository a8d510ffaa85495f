package buffer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestCursorFile(t *testing.T) {
	slot := func(gen, v uint64) []byte { return encodeCursorSlot(gen, v) }
	damaged := func(b []byte) []byte { b = append([]byte(nil), b...); b[17] ^= 0x10; return b }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	zero := make([]byte, cursorSlotSize)
	tests := []struct {
		name  string
		data  []byte
		v     uint64
		found bool
	}{
		{"empty", nil, 0, false},
		{"slot 1 only", cat(zero, slot(1, 10)), 10, true},
		{"both, newer in slot 0", cat(slot(2, 20), slot(1, 10)), 20, true},
		{"both, newer in slot 1", cat(slot(4, 40), slot(5, 50)), 50, true},
		{"newer damaged", cat(damaged(slot(6, 60)), slot(5, 50)), 50, true},
		{"older damaged", cat(slot(6, 60), damaged(slot(5, 50))), 60, true},
		{"both damaged", cat(damaged(slot(6, 60)), damaged(slot(5, 50))), 0, false},
		{"torn second slot", cat(slot(2, 20), slot(3, 30)[:20]), 20, true},
		{"garbage", []byte("not a cursor file at all"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cursor")
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			c, v, found, _, err := openCursor(osFS{}, path)
			if err != nil {
				t.Fatalf("openCursor = %v", err)
			}
			defer c.close()
			if v != tt.v || found != tt.found {
				t.Fatalf("openCursor = %d, %v; want %d, %v", v, found, tt.v, tt.found)
			}
			// Writes alternate slots; the value survives reopening.
			for _, w := range []uint64{tt.v + 1, tt.v + 2, tt.v + 3} {
				if err := c.write(w); err != nil {
					t.Fatal(err)
				}
				c2, got, found, _, err := openCursor(osFS{}, path)
				if err != nil || !found || got != w {
					t.Fatalf("after write(%d): openCursor = %d, %v, %v", w, got, found, err)
				}
				c2.close()
			}
			if fi, _ := os.Stat(path); fi.Size() != 2*cursorSlotSize {
				t.Errorf("cursor file size = %d, want %d", fi.Size(), 2*cursorSlotSize)
			}
		})
	}
}
