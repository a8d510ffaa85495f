package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestPublish(t *testing.T) { runCases(t, publishCases) }

// persistent is a CONNECT of a session that outlives its connection.
func persistent(cid string, v packet.Version) *packet.Connect {
	cp := &packet.Connect{ClientID: cid, KeepAlive: 60}
	if v == packet.V5 {
		cp.Props.SessionExpiry = 300
	}
	return cp
}

var publishCases = []tcase{
	{
		name: "qos0-delivery", clause: "[MQTT-4.3.1-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(0, topic)
			conn(t, tg, v).pub(topic, "hello", 0, false)
			p := s.recv()
			if p.Topic != topic || string(p.Payload) != "hello" || p.QoS != 0 || p.Dup || p.PacketID != 0 {
				t.Errorf("got %+v, want QoS 0 %q on %s", p, "hello", topic)
			}
		},
	},
	{
		// The server as receiver answers PUBACK with the packet's
		// identifier; as sender it uses a non-zero identifier and DUP 0.
		name: "qos1-flow", clause: "[MQTT-4.3.2-1] [MQTT-4.3.2-4] (3.1.1: [MQTT-4.3.2-1] [MQTT-4.3.2-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			pub.publish(&packet.Publish{Topic: topic, Payload: []byte("one"), QoS: 1, PacketID: 0x1234})
			p := await[*packet.Publish](s)
			if p.QoS != 1 || p.PacketID == 0 || p.Dup || string(p.Payload) != "one" {
				t.Errorf("got %+v, want QoS 1, non-zero id, DUP 0", p)
			}
			s.ack(p)
			s.ping()
		},
	},
	{
		name: "qos2-flow", clause: "[MQTT-4.3.3-1] [MQTT-4.3.3-8] [MQTT-4.3.3-11] (3.1.1: [MQTT-4.3.3-1] [MQTT-4.3.3-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			pub.publish(&packet.Publish{Topic: topic, Payload: []byte("two"), QoS: 2, PacketID: 0x4321})
			p := await[*packet.Publish](s)
			if p.QoS != 2 || p.PacketID == 0 || p.Dup || string(p.Payload) != "two" {
				t.Errorf("got %+v, want QoS 2, non-zero id, DUP 0", p)
			}
			s.send(&packet.Pubrec{PacketID: p.PacketID})
			if r := expect[*packet.Pubrel](s); r.PacketID != p.PacketID {
				t.Fatalf("PUBREL id %d, want %d [MQTT-4.3.3-4]", r.PacketID, p.PacketID)
			}
			s.send(&packet.Pubcomp{PacketID: p.PacketID})
			s.ping()
		},
	},
	{
		// Until PUBREL, a re-sent PUBLISH with the same identifier is
		// acknowledged again but not delivered again.
		name: "qos2-exactly-once", clause: "[MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			p := &packet.Publish{Topic: topic, Payload: []byte("once"), QoS: 2, PacketID: 7}
			pub.send(p)
			if r := expect[*packet.Pubrec](pub); r.PacketID != 7 {
				t.Fatalf("PUBREC id %d, want 7", r.PacketID)
			}
			p.Dup = true
			pub.send(p)
			if r := expect[*packet.Pubrec](pub); r.PacketID != 7 {
				t.Fatalf("PUBREC for the re-sent PUBLISH id %d, want 7", r.PacketID)
			}
			pub.send(&packet.Pubrel{PacketID: 7})
			if c := expect[*packet.Pubcomp](pub); c.PacketID != 7 {
				t.Fatalf("PUBCOMP id %d, want 7", c.PacketID)
			}
			pub.pub(topic, "marker", 0, false)
			got := s.until("marker")
			if want := []string{"once"}; !slices.Equal(payloads(got), want) {
				t.Errorf("subscriber got %q, want %q", payloads(got), want)
			}
		},
	},
	{
		name: "ack-order", clause: "[MQTT-4.6.0-2] [MQTT-4.6.0-3] [MQTT-4.6.0-4]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			const n = 10
			var batch []byte
			for i := 1; i <= n; i++ {
				batch = append(batch, encode(t, &packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i)}, v)...)
			}
			c.raw(batch)
			for i := 1; i <= n; i++ {
				if a := expect[*packet.Puback](c); a.PacketID != uint16(i) {
					t.Fatalf("PUBACK %d has id %d, want %d (in PUBLISH order)", i, a.PacketID, i)
				}
			}
			batch = batch[:0]
			for i := 1; i <= n; i++ {
				batch = append(batch, encode(t, &packet.Publish{Topic: topic, QoS: 2, PacketID: uint16(100 + i)}, v)...)
			}
			c.raw(batch)
			for i := 1; i <= n; i++ {
				if a := expect[*packet.Pubrec](c); a.PacketID != uint16(100+i) {
					t.Fatalf("PUBREC %d has id %d, want %d (in PUBLISH order)", i, a.PacketID, 100+i)
				}
			}
			batch = batch[:0]
			for i := 1; i <= n; i++ {
				batch = append(batch, encode(t, &packet.Pubrel{PacketID: uint16(100 + i)}, v)...)
			}
			c.raw(batch)
			for i := 1; i <= n; i++ {
				if a := expect[*packet.Pubcomp](c); a.PacketID != uint16(100+i) {
					t.Fatalf("PUBCOMP %d has id %d, want %d", i, a.PacketID, 100+i)
				}
			}
		},
	},
	{
		// The server as QoS 2 sender sends PUBRELs in the order of the
		// PUBRECs.
		name: "pubrel-order", clause: "[MQTT-4.6.0-4]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			for i := range 5 {
				pub.pub(topic, strconv.Itoa(i), 2, false)
			}
			var ids []uint16
			for range 5 {
				ids = append(ids, await[*packet.Publish](s).PacketID)
			}
			var batch []byte
			for _, id := range ids {
				batch = append(batch, encode(t, &packet.Pubrec{PacketID: id}, v)...)
			}
			s.raw(batch)
			for _, id := range ids {
				r := expect[*packet.Pubrel](s)
				if r.PacketID != id {
					t.Fatalf("PUBREL id %d, want %d (PUBREC order %v)", r.PacketID, id, ids)
				}
				s.send(&packet.Pubcomp{PacketID: id})
			}
		},
	},
	{
		// Unacknowledged QoS 1 and 2 messages are re-sent on reconnect,
		// with their original identifiers, DUP set, in order.
		name: "redelivery-on-reconnect", clause: "[MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			for i := range 4 {
				pub.pub(topic, strconv.Itoa(i), byte(1+i%2), false)
			}
			var first []*packet.Publish
			for range 4 {
				first = append(first, await[*packet.Publish](s))
			}
			s.drop()
			s, ack := connectWith(t, tg, v, persistent(cid, v))
			if !ack.SessionPresent {
				t.Fatalf("session not present on reconnect")
			}
			for i, want := range first {
				p := await[*packet.Publish](s)
				if p.PacketID != want.PacketID || !p.Dup || p.QoS != want.QoS || string(p.Payload) != string(want.Payload) {
					t.Errorf("re-sent %d: id %d dup %v QoS %d %q, want id %d dup true QoS %d %q",
						i, p.PacketID, p.Dup, p.QoS, p.Payload, want.PacketID, want.QoS, want.Payload)
				}
				s.ack(p)
			}
			s.ping()
		},
	},
	{
		// A PUBREL not answered by PUBCOMP is re-sent on reconnect.
		name: "pubrel-redelivery", clause: "[MQTT-4.4.0-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(2, topic)
			conn(t, tg, v).pub(topic, "x", 2, false)
			p := await[*packet.Publish](s)
			s.send(&packet.Pubrec{PacketID: p.PacketID})
			expect[*packet.Pubrel](s)
			s.drop()
			s, _ = connectWith(t, tg, v, persistent(cid, v))
			if r := expect[*packet.Pubrel](s); r.PacketID != p.PacketID {
				t.Fatalf("re-sent PUBREL id %d, want %d", r.PacketID, p.PacketID)
			}
			s.send(&packet.Pubcomp{PacketID: p.PacketID})
			s.ping()
		},
	},
	{
		// QoS 1 and 2 messages for an offline persistent session are
		// kept and delivered on reconnect, in order.
		name: "offline-queue", clause: "[MQTT-3.1.2-4] [MQTT-4.6.0-5] (3.1.1: [MQTT-3.1.2-5])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(1, topic)
			s.disconnectWait()
			pub := conn(t, tg, v)
			var want []string
			for i := range 5 {
				want = append(want, strconv.Itoa(i))
				pub.pub(topic, strconv.Itoa(i), 1, false)
			}
			s, _ = connectWith(t, tg, v, persistent(cid, v))
			var got []string
			for range want {
				got = append(got, string(s.recv().Payload))
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		},
	},
	{
		name: "ordered-topic", clause: "[MQTT-4.6.0-5] (3.1.1: [MQTT-4.6.0-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			const n = 100
			var batch []byte
			for i := 1; i <= n; i++ {
				batch = append(batch, encode(t, &packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i), Payload: []byte(strconv.Itoa(i))}, v)...)
			}
			pub.raw(batch)
			for i := 1; i <= n; i++ {
				if p := s.recv(); string(p.Payload) != strconv.Itoa(i) {
					t.Fatalf("message %d is %q, want %d", i, p.Payload, i)
				}
			}
		},
	},
	{
		name: "delivered-qos-minimum", clause: "[MQTT-3.8.4-8] (3.1.1: [MQTT-3.8.4-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			pub := conn(t, tg, v)
			for sq := range byte(3) {
				topic := topicOf(t)
				s := conn(t, tg, v)
				s.subscribe(sq, topic)
				for pq := range byte(3) {
					pub.pub(topic, fmt.Sprint(pq), pq, false)
					if p := s.recv(); p.QoS != min(pq, sq) {
						t.Errorf("published at QoS %d, subscribed at %d: delivered at %d, want %d", pq, sq, p.QoS, min(pq, sq))
					}
				}
			}
		},
	},
	{
		// One client's overlapping subscriptions: the message is
		// delivered at the highest granted QoS; edgegw promises a single
		// copy (3.1.1 allows one per subscription).
		name: "overlapping-subscriptions", clause: "[MQTT-3.3.4-2] (3.1.1: [MQTT-3.3.5-1])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(0, topic+"/+")
			s.subscribe(2, topic+"/a")
			s.subscribe(1, topic+"/#")
			pub := conn(t, tg, v)
			pub.pub(topic+"/a", "x", 2, false)
			pub.pub(topic+"/a", "marker", 0, false)
			got := s.until("marker")
			var best byte
			for _, p := range got {
				best = max(best, p.QoS)
			}
			if len(got) == 0 || best != 2 {
				t.Fatalf("got %d copies, best QoS %d; want one at QoS 2", len(got), best)
			}
			if tg.strict && len(got) != 1 {
				t.Errorf("got %d copies, want 1 (issue: broker)", len(got))
			}
		},
	},
	{
		name: "overlapping-subscription-ids", clause: "[MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s1 := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic + "/+", QoS: 1}}}
			s1.Props.SubscriptionIDs = []uint32{11}
			s.sub(s1)
			s2 := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic + "/#", QoS: 1}}}
			s2.Props.SubscriptionIDs = []uint32{22}
			s.sub(s2)
			s.subscribe(1, topic+"/a") // no identifier
			pub := conn(t, tg, v)
			pub.pub(topic+"/a", "x", 1, false)
			pub.pub(topic+"/a", "marker", 0, false)
			got := s.until("marker")
			var ids []uint32
			for _, p := range got {
				ids = append(ids, p.Props.SubscriptionIDs...)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, []uint32{11, 22}) {
				t.Errorf("subscription ids over %d copies: %v, want [11 22]", len(got), ids)
			}
			if tg.strict && len(got) != 1 {
				t.Errorf("got %d copies, want 1 carrying both ids (issue: broker)", len(got))
			}
		},
	},
	{
		name: "subscription-identifier", clause: "[MQTT-3.3.4-3] 3.8.2.1.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			sp := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic + "/a", QoS: 1}}}
			sp.Props.SubscriptionIDs = []uint32{268435455}
			s.sub(sp)
			s.subscribe(1, topic+"/b")
			pub := conn(t, tg, v)
			pub.pub(topic+"/a", "a", 1, false)
			pub.pub(topic+"/b", "b", 1, false)
			if p := s.recv(); !slices.Equal(p.Props.SubscriptionIDs, []uint32{268435455}) {
				t.Errorf("via identified subscription: ids %v, want [268435455]", p.Props.SubscriptionIDs)
			}
			if p := s.recv(); len(p.Props.SubscriptionIDs) != 0 {
				t.Errorf("via subscription without identifier: ids %v, want none", p.Props.SubscriptionIDs)
			}
		},
	},
	{
		name: "subscription-replaced", clause: "[MQTT-3.8.4-3]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			s.subscribe(0, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "x", 2, false)
			pub.pub(topic, "marker", 0, false)
			got := s.until("marker")
			if len(got) != 1 || got[0].QoS != 0 {
				t.Errorf("got %d copies (first QoS %v), want one at QoS 0", len(got), func() any {
					if len(got) > 0 {
						return got[0].QoS
					}
					return "-"
				}())
			}
		},
	},
}
