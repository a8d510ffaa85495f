package uplink

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestWindowTracker feeds the packets of a session, split at every byte
// and in one piece, to the two directions' scanners and checks the window
// the tracker saw.
func TestWindowTracker(t *testing.T) {
	enc := func(v packet.Version, ps ...packet.Packet) []byte {
		var b []byte
		for _, p := range ps {
			var err error
			if b, err = packet.Append(b, p, v); err != nil {
				t.Fatalf("Append(%T): %v", p, err)
			}
		}
		return b
	}
	big := bytes.Repeat([]byte("x"), 300) // a remaining length of two bytes
	tests := []struct {
		name     string
		v        packet.Version
		up, down []packet.Packet // sent in turns: up[i], then down[i]
		wantMax  int64
		wantOpen int
	}{
		{
			name: "qos1 in order",
			v:    packet.V311,
			up: []packet.Packet{
				&packet.Connect{ClientID: "gw", CleanStart: true},
				&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: big},
				&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 2},
				&packet.Publish{Topic: "a/b", QoS: 0, Payload: big},
			},
			down: []packet.Packet{
				&packet.Connack{},
				nil,
				&packet.Puback{PacketID: 1},
				&packet.Puback{PacketID: 2},
			},
			wantMax: 2,
		},
		{
			name: "qos2 open until pubcomp, alias topic, failed pubrec",
			v:    packet.V5,
			up: []packet.Packet{
				&packet.Publish{Topic: "a/b", QoS: 2, PacketID: 7, Props: packet.Properties{TopicAlias: 1}, Payload: big},
				&packet.Publish{QoS: 2, PacketID: 8, Props: packet.Properties{TopicAlias: 1}},
				&packet.Pubrel{PacketID: 7},
				&packet.Publish{QoS: 2, PacketID: 9, Props: packet.Properties{TopicAlias: 1}},
				nil,
			},
			down: []packet.Packet{
				&packet.Pubrec{PacketID: 7},
				&packet.Publish{Topic: "cmd", QoS: 1, PacketID: 7}, // the server's own identifiers
				&packet.Pubcomp{PacketID: 7},
				&packet.Pubrec{PacketID: 8},
				&packet.Pubrec{PacketID: 9, Code: packet.PacketIDInUse},
			},
			wantMax:  2,
			wantOpen: 1, // 8: PUBREC'd, no PUBREL yet
		},
		{
			name: "resent after a reconnect",
			v:    packet.V311,
			up: []packet.Packet{
				&packet.Publish{Topic: "a", QoS: 1, PacketID: 1},
				&packet.Publish{Topic: "a", QoS: 1, PacketID: 2},
				&packet.Connect{ClientID: "gw"},
				&packet.Publish{Topic: "a", QoS: 1, PacketID: 2, Dup: true},
			},
			down:     []packet.Packet{nil, nil, &packet.Connack{SessionPresent: true}, nil},
			wantMax:  2,
			wantOpen: 1,
		},
	}
	for _, tt := range tests {
		for _, split := range []int{0, 1, 2, 5} {
			t.Run(fmt.Sprintf("%s/split%d", tt.name, split), func(t *testing.T) {
				name := fmt.Sprintf("%s-%s-%d", t.Name(), tt.name, split)
				w := trackerFor(name)
				up := &windowToxic{Tracker: name, Up: true}
				down := &windowToxic{Tracker: name}
				su, sd := new(packetScanner), new(packetScanner)
				feed := func(toxic *windowToxic, s *packetScanner, p packet.Packet) {
					if p == nil {
						return
					}
					b := enc(tt.v, p)
					for len(b) > 0 {
						n := len(b)
						if split > 0 {
							n = min(split, n)
						}
						s.feed(b[:n], toxic.on(w))
						b = b[n:]
					}
				}
				for i := range max(len(tt.up), len(tt.down)) {
					if i < len(tt.up) {
						feed(up, su, tt.up[i])
					}
					if i < len(tt.down) {
						feed(down, sd, tt.down[i])
					}
				}
				w.mu.Lock()
				open := len(w.open)
				w.mu.Unlock()
				if diff := cmp.Diff([2]int64{tt.wantMax, int64(tt.wantOpen)}, [2]int64{w.maxOpen(), int64(open)}); diff != "" {
					t.Errorf("[max, open] mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}
