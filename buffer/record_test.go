package buffer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// recordTests is the byte-level framing table shared with the fuzz seeds.
var recordTests = []struct {
	name    string
	raw     string // hex
	maxLen  int
	minSeq  uint64
	maxSeq  uint64
	seq     uint64
	payload string
	err     error
}{
	{
		name: "empty payload", maxLen: 16, minSeq: 1, maxSeq: 10, seq: 1,
		raw: "00000000" + "7ac85c62" + "0100000000000000",
	},
	{
		name: "hello", maxLen: 16, minSeq: 1, maxSeq: 10, seq: 2, payload: "hello",
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c6c6f",
	},
	{
		name: "length above max", maxLen: 4, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c6c6f", err: errLength,
	},
	{
		name: "seq below range", maxLen: 16, minSeq: 3, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c6c6f", err: errSeq,
	},
	{
		name: "seq above range", maxLen: 16, minSeq: 1, maxSeq: 1,
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c6c6f", err: errSeq,
	},
	{
		name: "flipped payload bit", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c6c6e", err: errChecksum,
	},
	{
		name: "flipped length bit", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "04000000" + "88c5d141" + "0200000000000000" + "68656c6c6f", err: errChecksum,
	},
	{
		name: "flipped seq bit", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0300000000000000" + "68656c6c6f", err: errChecksum,
	},
	{
		name: "flipped crc bit", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d140" + "0200000000000000" + "68656c6c6f", err: errChecksum,
	},
	{
		name: "torn payload", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0200000000000000" + "68656c", err: errShort,
	},
	{
		name: "torn header", maxLen: 16, minSeq: 1, maxSeq: 10,
		raw: "05000000" + "88c5d141" + "0200", err: errShort,
	},
	{
		name: "zeros", maxLen: 16, minSeq: 0, maxSeq: 10,
		raw: "00000000" + "00000000" + "0000000000000000", err: errSeq,
	},
}

func TestDecodeRecord(t *testing.T) {
	for _, tt := range recordTests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := hex.DecodeString(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			seq, p, n, err := decodeRecord(raw, tt.maxLen, tt.minSeq, tt.maxSeq)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decodeRecord(%x) err = %v, want %v", raw, err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if seq != tt.seq || string(p) != tt.payload || n != len(raw) {
				t.Errorf("decodeRecord(%x) = %d, %q, %d; want %d, %q, %d", raw, seq, p, n, tt.seq, tt.payload, len(raw))
			}
			if enc := appendRecord(nil, tt.seq, []byte(tt.payload)); !bytes.Equal(enc, raw) {
				t.Errorf("appendRecord(%d, %q) = %x, want %x", tt.seq, tt.payload, enc, raw)
			}
		})
	}
}

func TestResync(t *testing.T) {
	var b []byte
	for i := range 5 {
		b = appendRecord(b, uint64(i+1), bytes.Repeat([]byte{byte(i)}, 10+i))
	}
	second := recordSize(10)
	third := second + recordSize(11)
	b[second+20] ^= 1 // damage record 2's payload
	if got := resync(b, 1, 100, 2, 5); got != third {
		t.Errorf("resync = %d, want %d (record 3)", got, third)
	}
	if got := resync(b, third+1, 100, 6, 9); got != -1 {
		t.Errorf("resync past the end = %d, want -1", got)
	}
}

// FuzzDecodeRecord: no panic, and whatever decodes re-encodes to the same
// bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, tt := range recordTests {
		raw, _ := hex.DecodeString(tt.raw)
		f.Add(raw, uint64(1), uint64(100))
	}
	f.Fuzz(func(t *testing.T, raw []byte, minSeq, maxSeq uint64) {
		seq, p, n, err := decodeRecord(raw, 1<<16, minSeq, maxSeq)
		if err != nil {
			return
		}
		if enc := appendRecord(nil, seq, p); !bytes.Equal(enc, raw[:n]) {
			t.Fatalf("re-encode = %x, want %x", enc, raw[:n])
		}
		resync(raw, 0, 1<<16, minSeq, maxSeq)
	})
}

func TestSegHeader(t *testing.T) {
	h := appendSegHeader(nil, 42, testTime)
	if first, err := parseSegHeader(h); err != nil || first != 42 {
		t.Fatalf("parseSegHeader(%x) = %d, %v; want 42", h, first, err)
	}
	for i := range len(h) * 8 {
		d := bytes.Clone(h)
		d[i/8] ^= 1 << (i % 8)
		if _, err := parseSegHeader(d); err == nil && i/8 < 28 {
			t.Errorf("parseSegHeader with bit %d flipped = nil error", i)
		}
	}
	for _, tt := range []struct {
		name  string
		first uint64
		ok    bool
	}{
		{"00000000000000000001.seg", 1, true},
		{"18446744073709551615.seg", 1<<64 - 1, true},
		{"00000000000000000000.seg", 0, false},
		{"1.seg", 0, false},
		{"0000000000000000000x.seg", 0, false},
		{"00000000000000000001.seg.bad", 0, false},
	} {
		if first, ok := parseSegName(tt.name); first != tt.first || ok != tt.ok {
			t.Errorf("parseSegName(%q) = %d, %v; want %d, %v", tt.name, first, ok, tt.first, tt.ok)
		}
	}
	if got := segName(7); got != "00000000000000000007.seg" {
		t.Errorf("segName(7) = %q", got)
	}
}
