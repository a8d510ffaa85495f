package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzMax is the maximum packet size FuzzRead decodes with.
const fuzzMax = 4096

func addSeeds(f *testing.F) {
	for _, tc := range tpackets {
		v := tc.v
		if tc.p.Type() == TypeConnect {
			v = 0
		}
		f.Add(byte(v), tc.raw)
	}
	for _, tc := range tmalformed {
		f.Add(byte(tc.v), tc.raw)
	}
}

// FuzzRead checks that Read never panics, that every error is a
// *ReasonError or a short read, and that it never allocates much beyond
// the maximum packet size, whatever the length fields say.
func FuzzRead(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for {
			_, err := Read(r, Version(v%6), fuzzMax)
			if err == nil {
				continue
			}
			var re *ReasonError
			if !errors.As(err, &re) && err != io.EOF && err != io.ErrUnexpectedEOF && err != errVersion {
				t.Fatalf("Read(%x) = %v, want a *ReasonError or EOF", data, err)
			}
			break
		}
		runtime.ReadMemStats(&after)
		// Every packet read is at most fuzzMax bytes, decoded into at most
		// a few times its size; the slack covers the structs.
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*len(data)+4*fuzzMax+64<<10); got > limit {
			t.Fatalf("Read(%x) allocated %d bytes, limit %d", data, got, limit)
		}
	})
}

// FuzzRoundtrip checks decode(encode(p)) == p for every packet that
// decodes, and that encoding is stable.
func FuzzRoundtrip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		ver := Version(v % 6)
		p, err := Read(bufio.NewReader(bytes.NewReader(data)), ver, 0)
		if err != nil {
			return
		}
		if c, ok := p.(*Connect); ok {
			ver = c.Version
		}
		enc, err := Append(nil, p, ver)
		if err != nil {
			t.Fatalf("Append(Read(%x) = %+v): %v", data, p, err)
		}
		rv := ver
		if p.Type() == TypeConnect {
			rv = 0
		}
		q, err := Read(bufio.NewReader(bytes.NewReader(enc)), rv, 0)
		if err != nil {
			t.Fatalf("Read(Append(%+v) = %x): %v", p, enc, err)
		}
		if diff := cmp.Diff(p, q, cmpOpts); diff != "" {
			t.Fatalf("roundtrip of %x via %x (-first +second):\n%s", data, enc, diff)
		}
		enc2, err := Append(nil, q, ver)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("Append not stable: %x then %x, %v", enc, enc2, err)
		}
	})
}

// hugeReader reports an endless stream: a fixed header claiming the
// maximum remaining length, then zeros.
type hugeReader struct{ hdr []byte }

func (h *hugeReader) Read(p []byte) (int, error) {
	n := copy(p, h.hdr)
	h.hdr = h.hdr[n:]
	clear(p[n:])
	return len(p), nil
}

// TestReadHostileLength checks that a length field alone never makes Read
// allocate more than the maximum packet size [MQTT-3.1.2-24].
func TestReadHostileLength(t *testing.T) {
	for _, typ := range []byte{0x30, 0x82, 0x10, 0x40} {
		const max = 1 << 20
		src := &hugeReader{hdr: []byte{typ, 0xFF, 0xFF, 0xFF, 0x7F}}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Read(bufio.NewReaderSize(src, 16), V5, max)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Read(%#x, huge) = %v, want ErrTooLarge", typ, err)
		}
		// The reader's 16-byte buffer and the error, never the body.
		if got := after.TotalAlloc - before.TotalAlloc; got > 4096 {
			t.Errorf("Read(%#x, huge) allocated %d bytes before refusing", typ, got)
		}
	}
	// Without a maximum, a claimed length over the data actually sent
	// costs at most about twice the data.
	data := append([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, make([]byte, 200<<10)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bufio.NewReader(bytes.NewReader(data)), V5, 0)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Errorf("Read(truncated huge) = %v, want io.ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Read(truncated huge) allocated %d bytes for 200 KiB of data", got)
	}
}
