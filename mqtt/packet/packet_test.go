package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

func TestAppend(t *testing.T) {
	for _, tc := range tpackets {
		if tc.decodeOnly {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			got, err := Append(nil, tc.p, tc.v)
			if err != nil {
				t.Fatalf("Append(%+v, %v) [%s]: %v", tc.p, tc.v, tc.spec, err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Errorf("Append(%+v, %v) [%s]\n got %x\nwant %x", tc.p, tc.v, tc.spec, got, tc.raw)
			}
			n, err := Size(tc.p, tc.v)
			if err != nil || n != len(tc.raw) {
				t.Errorf("Size = %d, %v, want %d", n, err, len(tc.raw))
			}
			// Appending to a non-empty buffer keeps its content.
			pre := []byte("prefix")
			got, err = Append(pre, tc.p, tc.v)
			if err != nil || !bytes.Equal(got, append([]byte("prefix"), tc.raw...)) {
				t.Errorf("Append(prefix) = %x, %v", got, err)
			}
		})
	}
}

func TestRead(t *testing.T) {
	for _, tc := range tpackets {
		if tc.encodeOnly {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			// The default buffer decodes in place; the small one makes Read
			// allocate the body.
			for _, size := range []int{4096, 16} {
				r := bufio.NewReaderSize(bytes.NewReader(tc.raw), size)
				v := tc.v
				if tc.p.Type() == TypeConnect {
					v = 0
				}
				got, err := Read(r, v, 0)
				if err != nil {
					t.Fatalf("Read(%x, %v) [%s]: %v", tc.raw, v, tc.spec, err)
				}
				if diff := cmp.Diff(tc.p, got, cmpOpts); diff != "" {
					t.Errorf("Read(%x, %v) [%s] mismatch (-want +got):\n%s", tc.raw, v, tc.spec, diff)
				}
				if _, err := r.ReadByte(); err != io.EOF {
					t.Errorf("Read(%x) left bytes unread", tc.raw)
				}
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range tpackets {
		if tc.encodeOnly {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tc.raw))
			h, err := ReadFixedHeader(r, len(tc.raw))
			if err != nil {
				t.Fatalf("ReadFixedHeader(%x): %v", tc.raw, err)
			}
			if h.Size() != len(tc.raw) || h.Type != tc.p.Type() {
				t.Fatalf("ReadFixedHeader(%x) = %+v", tc.raw, h)
			}
			body, _ := io.ReadAll(r)
			got, err := Decode(h, body, tc.v)
			if err != nil {
				t.Fatalf("Decode(%x, %v) [%s]: %v", tc.raw, tc.v, tc.spec, err)
			}
			if diff := cmp.Diff(tc.p, got, cmpOpts); diff != "" {
				t.Errorf("Decode(%x, %v) [%s] mismatch (-want +got):\n%s", tc.raw, tc.v, tc.spec, diff)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range tmalformed {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tc.raw))
			p, err := Read(r, tc.v, tc.max)
			var re *ReasonError
			if !errors.As(err, &re) {
				t.Fatalf("Read(%x, %v) = %+v, %v; want reason code %#x [%s]", tc.raw, tc.v, p, err, byte(tc.code), tc.spec)
			}
			if re.Code != tc.code {
				t.Errorf("Read(%x, %v) = %v (code %#x), want code %#x %v [%s]", tc.raw, tc.v, err, byte(re.Code), byte(tc.code), tc.code, tc.spec)
			}
			want := ErrProtocol
			switch tc.code {
			case MalformedPacket:
				want = ErrMalformed
			case PacketTooLarge:
				want = ErrTooLarge
			}
			if !errors.Is(err, want) {
				t.Errorf("Read(%x): errors.Is(%v, %v) = false", tc.raw, err, want)
			}
		})
	}
}

func TestReadTruncated(t *testing.T) {
	for _, tc := range tpackets {
		if tc.encodeOnly {
			continue
		}
		for n := 1; n < len(tc.raw); n++ {
			r := bufio.NewReader(bytes.NewReader(tc.raw[:n]))
			v := tc.v
			if tc.p.Type() == TypeConnect {
				v = 0
			}
			if p, err := Read(r, v, 0); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s: Read(%x) = %+v, %v, want io.ErrUnexpectedEOF", tc.name, tc.raw[:n], p, err)
			}
		}
	}
	if _, err := Read(bufio.NewReader(bytes.NewReader(nil)), V5, 0); err != io.EOF {
		t.Errorf("Read(empty) = %v, want io.EOF", err)
	}
}

func TestAppendErrors(t *testing.T) {
	long := string(bytes.Repeat([]byte{'a'}, 65536))
	tests := []struct {
		name string
		p    Packet
		v    Version
	}{
		{"publish qos 3", &Publish{Topic: "a", QoS: 3, PacketID: 1}, V5},
		{"publish qos 1 packet id 0", &Publish{Topic: "a", QoS: 1}, V311},
		{"publish dup qos 0", &Publish{Topic: "a", Dup: true}, V311},
		{"publish wildcard", &Publish{Topic: "a/#"}, V311},
		{"publish empty topic 3.1.1", &Publish{Props: Properties{TopicAlias: 1}}, V311},
		{"publish topic too long", &Publish{Topic: long}, V311},
		{"publish topic U+0000", &Publish{Topic: "a\x00"}, V311},
		{"publish session expiry", &Publish{Topic: "a", Props: Properties{SessionExpiry: 1}}, V5},
		{"publish subscription id 0", &Publish{Topic: "a", Props: Properties{SubscriptionIDs: []uint32{0}}}, V5},
		{"connect will qos 3", &Connect{Will: &Will{Topic: "a", QoS: 3}}, V311},
		{"connect password without user 3.1.1", &Connect{PasswordFlag: true}, V311},
		{"connect will delay outside will", &Connect{Props: Properties{WillDelay: 1}}, V5},
		{"connect no version", &Connect{}, 0},
		{"connack code not for connack", &Connack{Code: GrantedQoS1}, V5},
		{"puback code not for puback", &Puback{PacketID: 1, Code: PacketIDNotFound}, V5},
		{"subscribe none", &Subscribe{PacketID: 1}, V311},
		{"subscribe packet id 0", &Subscribe{Subscriptions: []Subscription{{Filter: "a"}}}, V311},
		{"subscribe two ids", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}},
			Props: Properties{SubscriptionIDs: []uint32{1, 2}}}, V5},
		{"unsubscribe none", &Unsubscribe{PacketID: 1}, V5},
		{"suback none", &Suback{PacketID: 1}, V5},
		{"auth in 3.1.1", &Auth{}, V311},
		{"user property too long", &Disconnect{Props: Properties{User: []UserProperty{{long, ""}}}}, V5},
		{"nil packet", nil, V5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := Append(dst, tc.p, tc.v)
			if err == nil {
				t.Fatalf("Append(%+v, %v) = %x, want error", tc.p, tc.v, got)
			}
			if string(got) != "keep" {
				t.Errorf("Append(%+v) changed dst to %q", tc.p, got)
			}
			if _, err := Size(tc.p, tc.v); err == nil {
				t.Errorf("Size(%+v) succeeded", tc.p)
			}
		})
	}
}
