package broker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// fuzzSeeds are packet streams sent after a valid CONNECT: well-formed
// traffic and the malformed cases of TestMalformedDoesNotDisturbOthers.
func fuzzSeeds() [][]byte {
	enc := func(v packet.Version, ps ...packet.Packet) []byte {
		var b []byte
		for _, p := range ps {
			b, _ = packet.Append(b, p, v)
		}
		return b
	}
	var seeds [][]byte
	for _, v := range versions {
		seeds = append(seeds, append([]byte{byte(v)}, enc(v,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{sub("a/#", 2), sub("$share/g/b", 1)}},
			&packet.Publish{Topic: "a/b", Payload: []byte("x"), QoS: 2, PacketID: 3},
			&packet.Pubrel{PacketID: 3},
			&packet.Publish{Topic: "a/c", Payload: []byte("y"), QoS: 1, PacketID: 4, Retain: true},
			&packet.Puback{PacketID: 1},
			&packet.Pubrec{PacketID: 2},
			&packet.Unsubscribe{PacketID: 5, Filters: []string{"a/#"}},
			&packet.Pingreq{},
			&packet.Disconnect{},
		)...))
	}
	seeds = append(seeds, append([]byte{5}, enc(packet.V5,
		&packet.Publish{Topic: "t", Props: packet.Properties{TopicAlias: 1}},
		&packet.Publish{Props: packet.Properties{TopicAlias: 1}},
		&packet.Auth{Code: packet.ReAuthenticate, Props: packet.Properties{AuthMethod: "m"}},
	)...))
	for _, raw := range [][]byte{
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0x82, 0x03, 0x00, 0x01, 0x00},
		{0x36, 0x05, 0x00, 0x01, 'a', 0, 1},
		{0x00, 0x00},
		{0x30, 0x04, 0x00, 0x02, 'a', '#'},
		{0x10, 0x00},
	} {
		seeds = append(seeds, append([]byte{4}, raw...), append([]byte{5}, raw...))
	}
	return seeds
}

// FuzzConn feeds arbitrary bytes to a connection after a valid CONNECT
// (the first input byte picks the protocol level): the server must not
// panic, and another client must be undisturbed.
func FuzzConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	s := newServer(f, Options{MaxPacketSize: 64 << 10, MaxQueued: 16})
	good := connect(f, s, packet.V5, "good", true)
	good.subscribe(1, sub("check", 1))
	var n uint16
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		v := packet.V311
		if data[0]&1 == 1 {
			v = packet.V5
		}
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			s.ServeConn(b)
			close(done)
		}()
		go io.Copy(io.Discard, a)
		cp, _ := packet.Append(nil, &packet.Connect{Version: v, ClientID: "fuzz", CleanStart: data[0]&2 == 0,
			KeepAlive: 30, Props: packet.Properties{SessionExpiry: uint32(data[0] & 4)}}, v)
		a.SetWriteDeadline(time.Now().Add(2 * time.Second))
		a.Write(append(cp, data[1:]...))
		a.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed")
		}
		n++
		if n == 0 {
			n = 1
		}
		s.Publish(context.Background(), Message{Topic: "check", QoS: 1, Payload: []byte{byte(n >> 8), byte(n)}})
		good.t = t
		got := good.recvPub()
		if got.Payload[0] != byte(n>>8) || got.Payload[1] != byte(n) {
			t.Fatalf("good client got %v, want %d", got.Payload, n)
		}
		good.ack(got)
	})
}
