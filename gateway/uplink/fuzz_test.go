package uplink

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOutbox opens an outbox whose slots and rings hold arbitrary bytes
// (after a valid header, or instead of it): no panic, and every slot it
// reports is one a restart can act on.
func FuzzOutbox(f *testing.F) {
	classes := []string{"alarm", "telemetry"}
	dir := f.TempDir()
	ob, err := openOutbox(filepath.Join(dir, "seed"), classes)
	if err != nil {
		f.Fatal(err)
	}
	ob.start(1, 1, 2, 1000)
	ob.start(2, 0, 1, 5)
	ob.received(1)
	ob.complete(2, 0, 5)
	ob.startBatch(3, 1, 2, 2000, 40)
	f.Add(true, append([]byte(nil), ob.mem[headerSize:headerSize+64]...))
	ob.close()
	f.Add(true, []byte{1, 9, 1, 0, 0, 0, 0, 0, 1})
	f.Add(false, []byte("edgegwU1 junk"))
	f.Fuzz(func(t *testing.T, keepHeader bool, data []byte) {
		path := filepath.Join(t.TempDir(), "ob")
		ob, err := openOutbox(path, classes)
		if err != nil {
			t.Fatal(err)
		}
		ob.close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		if keepHeader {
			off = headerSize
		}
		copy(b[off:], data)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ob, err = openOutbox(path, classes)
		if err != nil {
			t.Fatal(err)
		}
		defer ob.close()
		for _, s := range ob.slots() {
			if s.id == 0 || s.class >= len(classes) || s.qos < 1 || s.qos > 2 ||
				(s.state != slotSent && s.state != slotReceived) {
				t.Fatalf("slot %+v", s)
			}
		}
		for seq := range uint64(8) {
			ob.completed(1, seq)
		}
	})
}
