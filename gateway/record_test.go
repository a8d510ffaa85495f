package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var recordTests = []struct {
	name string
	rec  Record
	raw  []byte // nil: only roundtrip
}{
	{name: "empty", rec: Record{}, raw: []byte{1, 0, 0, 0, 0, 0}},
	{name: "qos1 retained", rec: Record{Topic: "a/b", Payload: []byte("hi"), QoS: 1, Retain: true},
		raw: []byte{1, 0x05, 3, 'a', '/', 'b', 2, 'h', 'i', 0, 0}},
	{name: "expiry", rec: Record{Topic: "t", QoS: 2, Expiry: 1500 * time.Millisecond},
		raw: []byte{1, 0x0a, 0xdc, 0x0b, 1, 't', 0, 0, 0}},
	{name: "time", rec: Record{Topic: "t", Time: time.Unix(0, 0x0102030405060708).UTC()},
		raw: []byte{1, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 't', 0, 0, 0}},
	{name: "response", rec: Record{Topic: "c/r", Payload: []byte(`{"id":"1"}`), QoS: 1,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Expiry: time.Hour,
		ResponseTopic: "reply/x", CorrelationData: []byte{0, 1, 2}}},
}

func TestRecordRoundtrip(t *testing.T) {
	for _, tt := range recordTests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary(%+v) = %v", tt.rec, err)
			}
			if tt.raw != nil && !cmp.Equal(b, tt.raw) {
				t.Errorf("MarshalBinary = %x, want %x", b, tt.raw)
			}
			var got Record
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary(%x) = %v", b, err)
			}
			if diff := cmp.Diff(tt.rec, got); diff != "" {
				t.Errorf("roundtrip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordMalformed(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
	}{
		{"nil", nil},
		{"short", []byte{1}},
		{"version", []byte{2, 0, 0, 0, 0, 0}},
		{"qos 3", []byte{1, 3, 0, 0, 0, 0}},
		{"unknown flag", []byte{1, 0x20, 0, 0, 0, 0}},
		{"short time", []byte{1, 0x10, 1, 2}},
		{"zero expiry", []byte{1, 0x08, 0, 0, 0, 0, 0}},
		{"topic too long", []byte{1, 0, 5, 'a'}},
		{"huge length", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"bad varint", []byte{1, 0, 0x80}},
		{"trailing", []byte{1, 0, 0, 0, 0, 0, 9}},
		{"topic not utf8", []byte{1, 0, 1, 0xff, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			if err := r.UnmarshalBinary(tt.raw); !errors.Is(err, ErrRecord) {
				t.Errorf("UnmarshalBinary(%x) = %v, want ErrRecord", tt.raw, err)
			}
		})
	}
}

func TestRecordAppendErrors(t *testing.T) {
	for _, r := range []Record{{QoS: 3}, {Expiry: -time.Second}} {
		if _, err := r.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary(%+v) = nil error", r)
		}
	}
}

func TestRecordRemaining(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		rec   Record
		now   time.Time
		left  time.Duration
		alive bool
	}{
		{"no expiry", Record{Time: t0}, t0.Add(time.Hour), 0, true},
		{"left", Record{Time: t0, Expiry: time.Minute}, t0.Add(20 * time.Second), 40 * time.Second, true},
		{"expired", Record{Time: t0, Expiry: time.Minute}, t0.Add(time.Minute), 0, false},
		{"no time", Record{Expiry: time.Minute}, t0, time.Minute, true},
	}
	for _, tt := range tests {
		left, alive := tt.rec.Remaining(tt.now)
		if left != tt.left || alive != tt.alive {
			t.Errorf("%s: Remaining = %v, %v, want %v, %v", tt.name, left, alive, tt.left, tt.alive)
		}
	}
}

// FuzzRecord checks that decoding never panics and that whatever decodes
// re-encodes to the same bytes and decodes to the same record.
func FuzzRecord(f *testing.F) {
	for _, tt := range recordTests {
		b, _ := tt.rec.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v) = %v", r, err)
		}
		var r2 Record
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("UnmarshalBinary(%x) = %v", enc, err)
		}
		if diff := cmp.Diff(r, r2); diff != "" {
			t.Fatalf("roundtrip (-first +second):\n%s", diff)
		}
	})
}
