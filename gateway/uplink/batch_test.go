package uplink

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// batchTests are encoded by batchWriter and decoded by DecodeBatch; the
// raw ones are decoded only. They seed FuzzDecodeBatch.
var batchTests = []struct {
	name   string
	prefix string
	msgs   []BatchMessage
}{
	{"one reading", "cloud/V1", []BatchMessage{
		{Topic: "cloud/V1/telemetry/cabin", Payload: []byte(`{"seq":3,"ts":"2026-12-07T09:01:30.899594765Z","points":{"humidity":{"v":49.2,"u":"%RH","q":"good"}}}`), Retain: true},
	}},
	{"several", "cloud/V1", []BatchMessage{
		{Topic: "cloud/V1/telemetry/a", Payload: []byte(`{"seq":1}`)},
		{Topic: "cloud/V1/telemetry/b", Payload: []byte(`{"seq":1, "x" : [1, 2.50, "°C"]}`)},
		{Topic: "cloud/V1/telemetry/a", Payload: []byte(`{"seq":2}`), Retain: true},
	}},
	{"not json", "cloud/V1", []BatchMessage{
		{Topic: "cloud/V1/raw", Payload: []byte{0, 1, 2, 0xff}},
		{Topic: "cloud/V1/text", Payload: []byte("1 2 x")},
		{Topic: "cloud/V1/spaced", Payload: []byte(" {}")},
		{Topic: "cloud/V1/empty", Payload: []byte{}},
		{Topic: "cloud/V1/bad-utf8", Payload: []byte("\"\xc3\x28\"")},
	}},
	{"outside the prefix", "cloud/V1", []BatchMessage{
		{Topic: "elsewhere/x", Payload: []byte("null")},
		{Topic: "cloud/V1", Payload: []byte("7")},
		{Topic: "cloud/V1x/y", Payload: []byte(`"s"`)},
	}},
	{"no prefix", "", []BatchMessage{
		{Topic: "a/b", Payload: []byte(`{}`)},
		{Topic: "/lead", Payload: []byte(`[]`)},
	}},
	{"escapes", "p", []BatchMessage{
		{Topic: "p/\"q\"/<&>/ü", Payload: []byte(`"\u00fc\n"`)},
	}},
	{"empty", "p", []BatchMessage{}},
}

func encodeBatch(t testing.TB, prefix string, msgs []BatchMessage, compress bool) []byte {
	t.Helper()
	w := newBatchWriter(prefix, compress)
	for _, m := range msgs {
		w.add(m.Topic, m.Payload, m.Retain)
	}
	p, ct, err := w.finish()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: BatchContentType, false: BatchContentTypeJSON}[compress]; ct != want {
		t.Errorf("content type %q, want %q", ct, want)
	}
	return append([]byte(nil), p...)
}

func TestBatchRoundtrip(t *testing.T) {
	for _, tt := range batchTests {
		for _, compress := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/compress=%v", tt.name, compress), func(t *testing.T) {
				p := encodeBatch(t, tt.prefix, tt.msgs, compress)
				got, err := DecodeBatch(p, BatchDecodeLimit)
				if err != nil {
					t.Fatalf("DecodeBatch(%q) = %v", p, err)
				}
				if diff := cmp.Diff(tt.msgs, got); diff != "" {
					t.Errorf("DecodeBatch(%x) (-want +got):\n%s", p, diff)
				}
			})
		}
	}
}

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

var badBatches = []struct {
	name    string
	payload []byte
}{
	{"empty", nil},
	{"not json", []byte("hello")},
	{"version 2", []byte(`{"v":2,"records":[]}`)},
	{"no version", []byte(`{"records":[]}`)},
	{"both topics", []byte(`{"v":1,"records":[{"t":"a","topic":"b","p":1}]}`)},
	{"no topic", []byte(`{"v":1,"records":[{"p":1}]}`)},
	{"no payload", []byte(`{"v":1,"records":[{"t":"a"}]}`)},
	{"both payloads", []byte(`{"v":1,"records":[{"t":"a","p":1,"b":""}]}`)},
	{"bad base64", []byte(`{"v":1,"records":[{"t":"a","b":"!!"}]}`)},
	{"truncated zlib", zlibOf([]byte(`{"v":1,"records":[]}`))[:8]},
	{"bad checksum", func() []byte {
		b := zlibOf([]byte(`{"v":1,"records":[]}`))
		b[len(b)-1] ^= 1
		return b
	}()},
	{"trailing data", append(zlibOf([]byte(`{"v":1,"records":[]}`)), 0)},
	{"bomb", zlibOf(bytes.Repeat([]byte(" "), 1<<20))},
}

func TestDecodeBatchErrors(t *testing.T) {
	for _, tt := range badBatches {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBatch(tt.payload, 64<<10)
			if !errors.Is(err, ErrBatch) {
				t.Errorf("DecodeBatch(%x) = %v, %v; want ErrBatch", tt.payload, got, err)
			}
		})
	}
}

// FuzzDecodeBatch: no panic, nothing above the limit, and what decodes
// encodes and decodes again to the same messages.
func FuzzDecodeBatch(f *testing.F) {
	for _, tt := range batchTests {
		f.Add(encodeBatch(f, tt.prefix, tt.msgs, true))
		f.Add(encodeBatch(f, tt.prefix, tt.msgs, false))
	}
	for _, tt := range badBatches {
		f.Add(tt.payload)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		const limit = 64 << 10
		msgs, err := DecodeBatch(p, limit)
		if err != nil {
			if !errors.Is(err, ErrBatch) {
				t.Fatalf("DecodeBatch(%x) = %v, not ErrBatch", p, err)
			}
			return
		}
		n := 0
		for _, m := range msgs {
			n += len(m.Payload)
		}
		if n > limit {
			t.Fatalf("DecodeBatch(%x): %d payload bytes above the limit %d", p, n, limit)
		}
		again, err := DecodeBatch(encodeBatch(t, "", msgs, true), 1<<30)
		if err != nil {
			t.Fatalf("decode(encode(DecodeBatch(%x))) = %v", p, err)
		}
		if len(msgs) == 0 {
			msgs = []BatchMessage{}
		}
		if diff := cmp.Diff(msgs, again); diff != "" {
			t.Fatalf("decode(encode(DecodeBatch(%x))) (-want +got):\n%s", p, diff)
		}
	})
}

// demoTemplates are the readings of the demo (configs/demo.toml), captured
// from its broker, by device.
type demoTemplates struct {
	devices []string
	byDev   map[string][][]byte
}

var (
	seqRE = regexp.MustCompile(`"seq":\d+`)
	tsRE  = regexp.MustCompile(`"ts":"[^"]*"`)
)

func loadDemo(t testing.TB) *demoTemplates {
	t.Helper()
	f, err := os.Open("testdata/demo-telemetry.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := &demoTemplates{byDev: map[string][][]byte{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		topic, payload, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		dev := topic[strings.LastIndexByte(topic, '/')+1:]
		if d.byDev[dev] == nil {
			d.devices = append(d.devices, dev)
		}
		d.byDev[dev] = append(d.byDev[dev], []byte(payload))
	}
	return d
}

var demoEpoch = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// reading returns the i-th reading of a backlog that cycles through the
// demo's devices: its device and its payload, with the device's sequence
// number i/len(devices) and a timestamp one second after the previous.
func (d *demoTemplates) reading(i int) (dev string, payload []byte) {
	dev = d.devices[i%len(d.devices)]
	k := i / len(d.devices)
	tpl := d.byDev[dev]
	p := tpl[k%len(tpl)]
	p = seqRE.ReplaceAll(p, fmt.Appendf(nil, `"seq":%d`, k))
	p = tsRE.ReplaceAll(p, fmt.Appendf(nil, `"ts":%q`, demoEpoch.Add(time.Duration(k)*time.Second).Format(time.RFC3339Nano)))
	return dev, p
}

// TestOutboxBatchSlot: a batch's slot keeps its span across a reopen; a
// single record's flow started in the same slot afterwards has none; the
// batch's slot is freed only by its own first record.
func TestOutboxBatchSlot(t *testing.T) {
	path := t.TempDir() + "/ob"
	classes := []string{"alarm", "telemetry"}
	ob, err := openOutbox(path, classes)
	if err != nil {
		t.Fatal(err)
	}
	ob.startBatch(7, 1, 2, 1000, 40)
	ob.received(7)
	ob.close()
	if ob, err = openOutbox(path, classes); err != nil {
		t.Fatal(err)
	}
	defer ob.close()
	want := []slot{{id: 7, state: slotReceived, class: 1, qos: 2, seq: 1000, span: 40}}
	if diff := cmp.Diff(want, ob.slots(), cmp.AllowUnexported(slot{})); diff != "" {
		t.Errorf("slots after reopen (-want +got):\n%s", diff)
	}
	ob.freeBatch(7, 1, 1001)
	if len(ob.slots()) != 1 {
		t.Errorf("freeBatch of another first record freed the slot")
	}
	ob.freeBatch(7, 1, 1000)
	if s := ob.slots(); len(s) != 0 {
		t.Errorf("slots after freeBatch: %+v", s)
	}
	ob.start(7, 1, 1, 5)
	if s := ob.slots(); len(s) != 1 || s[0].span != 0 {
		t.Errorf("single flow in a batch's old slot: %+v", s)
	}
}

// TestRecordSizeBounds: what add appends for a record, and the batch's
// header, never exceed the sizes the batcher counts against max_bytes,
// whatever the topic holds (characters JSON escapes to six bytes,
// invalid UTF-8, line separators) and whatever the payload.
func TestRecordSizeBounds(t *testing.T) {
	topics := []string{
		"vehicles/V1/telemetry/cabin",
		"vehicles/V1/telemetry/<&>",
		strings.Repeat("<", 300),
		"a\x01\x1f\"\\\n\r\t",
		"bad\xff\xfeutf8",
		"sep\u2028\u2029é€😀",
		"",
	}
	payloads := [][]byte{nil, []byte(`{"seq":1}`), []byte("not json <&>"), {0, 1, 2, 0xff}}
	for _, prefix := range []string{"vehicles/V1", "<&>\u2028", ""} {
		w := newBatchWriter(prefix, false)
		if got, max := w.len(), 64+jsonStringLen(prefix); got > max {
			t.Errorf("prefix %q: header %d bytes, counted %d", prefix, got, max)
		}
		for _, tp := range topics {
			if got, want := jsonStringLen(tp), len(appendJSONString(nil, tp)); got != want {
				t.Errorf("jsonStringLen(%q) = %d, encoded %d", tp, got, want)
			}
			for _, pl := range payloads {
				for _, full := range []string{tp, prefix + "/" + tp} {
					before := len(w.body)
					w.add(full, pl, true)
					if got, max := len(w.body)-before, recordSize(full, pl); got > max {
						t.Errorf("add(%q, %q) appended %d bytes, recordSize %d", full, pl, got, max)
					}
				}
			}
		}
	}
}
