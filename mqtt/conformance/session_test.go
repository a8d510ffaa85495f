package conformance

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestSession(t *testing.T) { runCases(t, sessionCases) }

var sessionCases = []tcase{
	{
		// The incoming QoS 2 state is part of the session: a PUBLISH
		// re-sent after a reconnect, before PUBREL, is not delivered
		// twice.
		name: "qos2-exactly-once-across-reconnect", clause: "[MQTT-4.3.3-10] [MQTT-4.4.0-1] (3.1.1: [MQTT-4.3.3-2] [MQTT-4.4.0-1])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			cid := id(t)
			pub, _ := connectWith(t, tg, v, persistent(cid, v))
			p := &packet.Publish{Topic: topic, QoS: 2, PacketID: 9, Payload: []byte("once")}
			pub.send(p)
			expect[*packet.Pubrec](pub)
			pub.drop()
			pub, ack := connectWith(t, tg, v, persistent(cid, v))
			if !ack.SessionPresent {
				t.Fatalf("session not present")
			}
			p.Dup = true
			pub.send(p)
			if r := expect[*packet.Pubrec](pub); r.PacketID != 9 {
				t.Fatalf("PUBREC id %d, want 9", r.PacketID)
			}
			pub.send(&packet.Pubrel{PacketID: 9})
			if c := expect[*packet.Pubcomp](pub); c.PacketID != 9 || c.Code != packet.Success {
				t.Fatalf("PUBCOMP id %d code %v, want 9 success", c.PacketID, c.Code)
			}
			pub.pub(topic, "marker", 0, false)
			if got := payloads(s.until("marker")); len(got) != 1 || got[0] != "once" {
				t.Errorf("subscriber got %q, want [once]", got)
			}
		},
	},
	{
		// Clean Start discards the previous session's subscriptions.
		name: "clean-start-discards-subscriptions", clause: "[MQTT-3.1.2-4] (3.1.1: [MQTT-3.1.2-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			c, _ := connectWith(t, tg, v, persistent(cid, v))
			c.subscribe(1, topic)
			c.disconnectWait()
			cp := persistent(cid, v)
			cp.CleanStart = true
			c, ack := connectWith(t, tg, v, cp)
			if ack.SessionPresent {
				t.Errorf("session present with clean start")
			}
			c.subscribe(1, topic+"/m")
			pub := conn(t, tg, v)
			pub.pub(topic, "old", 1, false)
			pub.pub(topic+"/m", "marker", 1, false)
			if got := c.until("marker"); len(got) != 0 {
				t.Errorf("got %q through a discarded subscription", payloads(got))
			}
		},
	},
	{
		// DISCONNECT with Session Expiry 0 ends a session that had a
		// longer expiry.
		name: "disconnect-session-expiry-zero", clause: "3.14.2.2.2 [MQTT-3.1.2-23]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			c, _ := connectWith(t, tg, v, persistent(cid, v))
			d := &packet.Disconnect{}
			d.Props.HasSessionExpiry = true
			c.send(d)
			c.closed()
			_, ack := connectWith(t, tg, v, persistent(cid, v))
			if ack.SessionPresent {
				t.Errorf("session present after DISCONNECT with Session Expiry 0")
			}
		},
	},
	{
		// A non-zero Session Expiry on DISCONNECT after 0 on CONNECT is
		// a protocol error: the will is published, the session ends.
		name: "disconnect-session-expiry-after-zero", clause: "[MQTT-3.14.2-2] [MQTT-3.1.2-8]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			c, _ := connectWith(t, tg, v, cp)
			d := &packet.Disconnect{}
			d.Props.SessionExpiry = 60
			c.send(d)
			closedWith(t, tg, c, protocolErr)
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will", p.Payload)
			}
			_, ack := connectWith(t, tg, v, &packet.Connect{ClientID: cp.ClientID, KeepAlive: 60})
			if ack.SessionPresent {
				t.Errorf("session present after a protocol error on DISCONNECT")
			}
		},
	},
	{
		// Packet identifiers of the server's in-flight messages are
		// distinct and non-zero.
		name: "server-packet-ids-unique", clause: "[MQTT-2.2.1-2] [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1] [MQTT-2.3.1-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			const n = 10
			for i := range n {
				pub.pub(topic, "x", byte(1+i%2), false)
			}
			seen := map[uint16]bool{}
			var ps []*packet.Publish
			for range n {
				p := await[*packet.Publish](s)
				if p.PacketID == 0 || seen[p.PacketID] {
					t.Fatalf("packet id %d reused or zero among %v", p.PacketID, seen)
				}
				seen[p.PacketID] = true
				ps = append(ps, p)
			}
			for _, p := range ps {
				s.ack(p)
			}
		},
	},
	{
		// A QoS 2 message stays in flight until PUBCOMP: with Receive
		// Maximum 1 the next one waits for it.
		name: "client-receive-maximum-qos2", clause: "[MQTT-3.3.4-9]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 exceeds the client's Receive Maximum (see client-receive-maximum)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.ReceiveMaximum = 1
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "1", 2, false)
			pub.pub(topic, "2", 2, false)
			p := await[*packet.Publish](s)
			s.send(&packet.Pubrec{PacketID: p.PacketID})
			expect[*packet.Pubrel](s)
			s.ping()
			if len(s.queue) != 0 {
				t.Fatalf("second PUBLISH sent before PUBCOMP with Receive Maximum 1")
			}
			s.send(&packet.Pubcomp{PacketID: p.PacketID})
			if p := s.recv(); string(p.Payload) != "2" {
				t.Errorf("got %q, want 2", p.Payload)
			}
		},
	},
	{
		// A retained message larger than the client's Maximum Packet
		// Size is not sent to it on subscribe.
		name: "maximum-packet-size-retained", clause: "[MQTT-3.1.2-24] [MQTT-3.1.2-25]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			pub := conn(t, tg, v)
			pub.pub(topic+"/big", strings.Repeat("x", 600), 1, true)
			pub.pub(topic+"/small", "s", 1, true)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.MaximumPacketSize = 200
			s, _ := connectWith(t, tg, v, cp)
			got := retainedFor(t, tg, v, s, packet.Subscription{Filter: topic + "/+", QoS: 1}, topic+"/m")
			if len(got) != 1 || string(got[0].Payload) != "s" {
				t.Errorf("got %d retained (%.20q), want only the small one", len(got), payloads(got))
			}
			pub.pub(topic+"/big", "", 1, true)
			pub.pub(topic+"/small", "", 1, true)
		},
	},
	{
		name: "retained-message-expiry-forwarded", clause: "[MQTT-3.3.2-6]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			p := &packet.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("r")}
			p.Props.MessageExpiry, p.Props.HasMessageExpiry = 100, true
			conn(t, tg, v).publish(p)
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 1 || !got[0].Props.HasMessageExpiry || got[0].Props.MessageExpiry > 100 || got[0].Props.MessageExpiry < 95 {
				t.Errorf("retained delivery: %d messages, expiry %+v, want one with 95..100", len(got), got)
			}
			conn(t, tg, v).pub(topic, "", 1, true)
		},
	},
	{
		// A payload needing a three-byte remaining length goes through.
		name: "large-payload", clause: "1.5.5 2.1.4 (3.1.1: 2.2.3)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic)
			big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB
			conn(t, tg, v).publish(&packet.Publish{Topic: topic, QoS: 1, Payload: big})
			if p := s.recv(); !bytes.Equal(p.Payload, big) {
				t.Errorf("got %d bytes, want the %d published", len(p.Payload), len(big))
			}
		},
	},
	{
		// Topic names are case sensitive and may hold spaces, empty
		// levels and non-ASCII characters.
		name: "topic-names", clause: "4.7.3 4.7.1.3 (case sensitive, spaces, empty levels, UTF-8)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			u := strings.ReplaceAll(topicOf(t), "/", "-")
			s := conn(t, tg, v)
			s.subscribe(0, "+/"+u, u+"/Ab", u+"/é ü/+", u+"/end")
			pub := conn(t, tg, v)
			for _, n := range []string{"/" + u, u + "/ab", u + "/Ab", u + "/é ü/x", u + "/é ü/x/y"} {
				pub.pub(n, n, 0, false)
			}
			pub.pub(u+"/end", "marker", 0, false)
			got := payloads(s.until("marker"))
			want := []string{"/" + u, u + "/Ab", u + "/é ü/x"}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("got %q, want %q", got, want)
			}
		},
	},
	{
		// Invalid CONNECT property values are protocol errors.
		name: "connect-property-values", clause: "3.1.2.11.3 3.1.2.11.4 3.1.2.11.7", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			for _, pr := range [][]byte{
				{0x21, 0, 0},       // Receive Maximum 0
				{0x27, 0, 0, 0, 0}, // Maximum Packet Size 0
				{0x17, 2},          // Request Problem Information 2
				{0x19, 2},          // Request Response Information 2
			} {
				c := dial(t, tg, v)
				body := append(str("MQTT"), 5, 0x02, 0, 60)
				body = append(body, props(pr...)...)
				body = append(body, str(id(t))...)
				c.raw(frame(0x10, body))
				refused(t, c)
			}
		},
	},
	{
		name: "publish-with-subscription-identifier", clause: "[MQTT-3.3.4-6]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 accepts a Subscription Identifier in a client's PUBLISH",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			c.raw(rawPublish(v, 0x02, topicOf(t), 1, props(0x0b, 0x05), "x"))
			closedWith(t, tg, c, protocolErr, malformedPkt)
		},
	},
	{
		// Messages re-sent on reconnect count against the new
		// connection's Receive Maximum like any other [MQTT-3.3.4-9];
		// the quota is not carried across connections (4.9).
		name: "receive-maximum-on-redelivery", clause: "[MQTT-3.3.4-9] [MQTT-4.4.0-1] 4.9", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 exceeds the client's Receive Maximum (see client-receive-maximum)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			for i := range 5 {
				pub.pub(topic, string(rune('a'+i)), 1, false)
			}
			for range 5 {
				await[*packet.Publish](s)
			}
			s.drop()
			cp := persistent(cid, v)
			cp.Props.ReceiveMaximum = 2
			s, _ = connectWith(t, tg, v, cp)
			var got []*packet.Publish
			for len(got) < 5 {
				p := await[*packet.Publish](s)
				got = append(got, p)
				s.ping()
				inflight := len(got) - acked(got)
				if n := len(s.queue) + inflight; n > 2 {
					t.Fatalf("%d PUBLISH unacknowledged after reconnect with Receive Maximum 2", n)
				}
				if inflight == 2 || len(got) == 5 {
					for _, q := range got {
						if !q.Dup || q.QoS != 1 {
							continue
						}
						s.send(&packet.Puback{PacketID: q.PacketID})
						q.QoS = 0 // acknowledged
					}
				}
			}
		},
	},
	expiryRedelivered,
	{
		// After a reconnect the re-sent in-flight messages come first,
		// then those queued while offline, in publication order.
		name: "redelivery-then-queued-in-order", clause: "[MQTT-4.4.0-1] [MQTT-4.6.0-5] (3.1.1: [MQTT-4.6.0-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "1", 1, false)
			pub.pub(topic, "2", 1, false)
			await[*packet.Publish](s)
			await[*packet.Publish](s)
			s.drop()
			pub.ping()
			pub.pub(topic, "3", 1, false)
			pub.pub(topic, "4", 1, false)
			cp := persistent(cid, v)
			if v == packet.V5 {
				cp.Props.ReceiveMaximum = 1
			}
			s, _ = connectWith(t, tg, v, cp)
			var got []string
			for range 4 {
				got = append(got, string(s.recv().Payload))
			}
			if strings.Join(got, "") != "1234" {
				t.Errorf("got %q, want 1 2 3 4", got)
			}
		},
	},
	{
		// A QoS 2 message waiting for PUBCOMP counts against the new
		// connection's Receive Maximum: with 1, its PUBREL comes alone,
		// then each re-sent PUBLISH after the previous flow completes,
		// in the original order.
		name: "receive-maximum-on-redelivery-qos2", clause: "[MQTT-3.3.4-9] [MQTT-4.4.0-1] [MQTT-4.6.0-1]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 exceeds the client's Receive Maximum (see client-receive-maximum)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "1", 2, false)
			pub.pub(topic, "2", 2, false)
			pub.pub(topic, "3", 1, false)
			first := await[*packet.Publish](s)
			s.send(&packet.Pubrec{PacketID: first.PacketID})
			await[*packet.Pubrel](s)
			await[*packet.Publish](s)
			await[*packet.Publish](s)
			s.drop()
			cp := persistent(cid, v)
			cp.Props.ReceiveMaximum = 1
			s, _ = connectWith(t, tg, v, cp)
			r := expect[*packet.Pubrel](s)
			if r.PacketID != first.PacketID {
				t.Fatalf("PUBREL id %d, want %d", r.PacketID, first.PacketID)
			}
			s.ping()
			if len(s.queue) != 0 {
				t.Fatalf("got %v while the QoS 2 flow holds the only slot", types(s.queue))
			}
			s.send(&packet.Pubcomp{PacketID: r.PacketID})
			for _, want := range []string{"2", "3"} {
				p := await[*packet.Publish](s)
				if string(p.Payload) != want || !p.Dup {
					t.Errorf("got %q dup %v, want %s re-sent", p.Payload, p.Dup, want)
				}
				s.ping()
				if len(s.queue) != 0 {
					t.Fatalf("got %v beyond Receive Maximum 1", types(s.queue))
				}
				s.ack(p)
			}
		},
	},
}

// expiryRedelivered checks that the remaining expiry is recomputed when a
// message is re-sent.
var expiryRedelivered = tcase{
	name: "message-expiry-on-redelivery", clause: "[MQTT-3.3.2-6] [MQTT-4.4.0-1]", vs: only5,
	run: func(t *testing.T, tg *target, v packet.Version) {
		topic := topicOf(t)
		cid := id(t)
		s, _ := connectWith(t, tg, v, persistent(cid, v))
		s.subscribe(1, topic)
		p := &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("x")}
		p.Props.MessageExpiry, p.Props.HasMessageExpiry = 60, true
		pub := conn(t, tg, v)
		pub.publish(p)
		first := await[*packet.Publish](s)
		s.drop()
		pub.quiet(2500 * time.Millisecond) // let the broker's clock run
		s, _ = connectWith(t, tg, v, persistent(cid, v))
		again := s.recv()
		if !again.Dup || !again.Props.HasMessageExpiry || again.Props.MessageExpiry > first.Props.MessageExpiry-2 {
			t.Errorf("re-sent after 2.5 s with expiry %d (dup %v), first sent with %d: want at most %d",
				again.Props.MessageExpiry, again.Dup, first.Props.MessageExpiry, first.Props.MessageExpiry-2)
		}
	},
}

// acked counts the publications the test acknowledged (marked QoS 0).
func acked(ps []*packet.Publish) int {
	n := 0
	for _, p := range ps {
		if p.QoS == 0 {
			n++
		}
	}
	return n
}
