package conformance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestEdge(t *testing.T) { runCases(t, edgeCases) }

var edgeCases = []tcase{
	{
		// The DUP flag of an incoming PUBLISH is not propagated.
		name: "dup-not-propagated", clause: "[MQTT-3.3.1-3]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic)
			conn(t, tg, v).publish(&packet.Publish{Topic: topic, QoS: 1, Dup: true, Payload: []byte("x")})
			if p := s.recv(); p.Dup {
				t.Errorf("DUP propagated to the subscriber")
			}
		},
	},
	{
		// No Local on one subscription does not stop delivery through
		// another matching subscription without it.
		name: "no-local-overlapping", clause: "[MQTT-3.8.3-3] [MQTT-3.3.4-2]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			c.sub(&packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1, NoLocal: true}}})
			c.subscribe(1, topic+"/#")
			c.pub(topic, "own", 1, false)
			conn(t, tg, v).pub(topic, "marker", 1, false)
			got := c.until("marker")
			if len(got) == 0 {
				t.Errorf("own message not delivered through the subscription without No Local")
			}
		},
	},
	{
		// Re-subscribing without a Subscription Identifier replaces
		// the subscription: its identifier is gone.
		name: "subscription-identifier-replaced", clause: "[MQTT-3.8.4-3] 3.8.2.1.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			sp := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}}
			sp.Props.SubscriptionIDs = []uint32{3}
			s.sub(sp)
			s.subscribe(1, topic)
			conn(t, tg, v).pub(topic, "x", 1, false)
			if p := s.recv(); len(p.Props.SubscriptionIDs) != 0 {
				t.Errorf("ids %v after replacing the subscription without one", p.Props.SubscriptionIDs)
			}
		},
	},
	{
		// Topic alias mappings do not survive the connection: after a
		// reconnect the server names the topic again before using an
		// alias.
		name: "server-topic-alias-reset-on-reconnect", clause: "[MQTT-3.3.2-7]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			cp := persistent(cid, v)
			cp.Props.TopicAliasMaximum = 4
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "1", 1, false)
			pub.pub(topic, "2", 1, false)
			s.recv()
			s.recv()
			s.drop()
			s, _ = connectWith(t, tg, v, cp)
			pub.pub(topic, "3", 1, false)
			if p := s.recv(); p.Topic != topic {
				t.Errorf("first message after reconnect: topic %q alias %d, want the topic name", p.Topic, p.Props.TopicAlias)
			}
		},
	},
	{
		// The will message carries its Will Properties.
		name: "will-properties-forwarded", clause: "3.1.3.2 (Will Properties go with the will) [MQTT-3.3.2-17]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.Will.Props.ContentType = "text/plain"
			cp.Will.Props.PayloadFormat = 1
			cp.Will.Props.ResponseTopic = topic + "/r"
			cp.Will.Props.CorrelationData = []byte{7}
			cp.Will.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
			c, _ := connectWith(t, tg, v, cp)
			c.drop()
			p := w.recv()
			if p.Props.ContentType != "text/plain" || p.Props.PayloadFormat != 1 || p.Props.ResponseTopic != topic+"/r" ||
				string(p.Props.CorrelationData) != "\x07" || !slices.Equal(p.Props.User, cp.Will.Props.User) {
				t.Errorf("will delivered with properties %+v, want the Will Properties", p.Props)
			}
		},
	},
	{
		// A take-over with a persistent session resumes it: the unacked
		// message is re-sent on the new connection with DUP.
		name: "takeover-resumes-session", clause: "[MQTT-3.1.4-3] [MQTT-4.4.0-1] [MQTT-3.2.2-2]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			a, _ := connectWith(t, tg, v, persistent(cid, v))
			a.subscribe(1, topic)
			conn(t, tg, v).pub(topic, "x", 1, false)
			first := await[*packet.Publish](a)
			b, ack := connectWith(t, tg, v, persistent(cid, v))
			if !ack.SessionPresent {
				t.Errorf("take-over of a persistent session: session present 0")
			}
			a.closed()
			p := await[*packet.Publish](b)
			if p.PacketID != first.PacketID || !p.Dup || string(p.Payload) != "x" {
				t.Errorf("re-sent id %d dup %v %q, want id %d dup true x", p.PacketID, p.Dup, p.Payload, first.PacketID)
			}
			b.ack(p)
		},
	},
	{
		// The client's Maximum Packet Size bounds the packet as sent,
		// with the properties the server adds (a Subscription
		// Identifier here).
		name: "maximum-packet-size-with-server-properties", clause: "[MQTT-3.1.2-24] [MQTT-3.1.2-25]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			payload := strings.Repeat("p", 100)
			n, err := packet.Size(&packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte(payload)}, v)
			if err != nil {
				t.Fatal(err)
			}
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.MaximumPacketSize = uint32(n) // fits without the identifier only
			s, _ := connectWith(t, tg, v, cp)
			sp := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}}
			sp.Props.SubscriptionIDs = []uint32{268435455}
			s.sub(sp)
			pub := conn(t, tg, v)
			pub.pub(topic, payload, 1, false)
			pub.pub(topic, "marker", 1, false)
			if got := s.until("marker"); len(got) != 0 {
				t.Errorf("got a %d-byte message, beyond the client's maximum %d with its identifier", len(got[0].Payload), n)
			}
		},
	},
	{
		// A PUBREC with a failure code ends the QoS 2 flow: no PUBREL.
		name: "pubrec-failure-ends-flow", clause: "4.3.3 [MQTT-4.3.3-4] (PUBREC reason >= 0x80)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			conn(t, tg, v).pub(topic, "x", 2, false)
			p := await[*packet.Publish](s)
			s.send(&packet.Pubrec{PacketID: p.PacketID, Code: packet.UnspecifiedError})
			s.ping()
			for _, q := range s.queue {
				t.Errorf("got %v after a failed PUBREC", q.Type())
			}
		},
	},
	{
		name: "unsubscribe-shared", clause: "[MQTT-3.10.4-1] [MQTT-3.10.4-4] 4.8.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			filter := "$share/g" + strings.ReplaceAll(topic, "/", "") + "/" + topic
			c := conn(t, tg, v)
			c.subscribe(1, filter, topic+"/m")
			c.send(&packet.Unsubscribe{PacketID: 7, Filters: []string{filter}})
			if ack := await[*packet.Unsuback](c); !slices.Equal(ack.Codes, []packet.ReasonCode{packet.Success}) {
				t.Errorf("UNSUBACK %v, want [0]", ack.Codes)
			}
			pub := conn(t, tg, v)
			pub.pub(topic, "x", 1, false)
			pub.pub(topic+"/m", "marker", 1, false)
			if got := c.until("marker"); len(got) != 0 {
				t.Errorf("got %q after unsubscribing the shared subscription", payloads(got))
			}
		},
	},
	{
		// The Server Keep Alive the server returned is the one it
		// enforces.
		name: "server-keep-alive-enforced", clause: "3.2.2.3.14 [MQTT-3.1.2-22]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 checks keep alives only when its main loop wakes (see keep-alive-timeout)",
		brokerOpts: func(o *broker.Options) { o.MaxKeepAlive = 2 * time.Second },
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if ack.Props.ServerKeepAlive != 2 {
				t.Fatalf("Server Keep Alive %d, want 2", ack.Props.ServerKeepAlive)
			}
			start := time.Now()
			closedWith(t, tg, c, packet.KeepAliveTimeout)
			if d := time.Since(start); d < 2*time.Second || d > 6*time.Second {
				t.Errorf("closed after %v, want about 3 s", d)
			}
		},
	},
	{
		// After PUBCOMP, a PUBLISH reusing the identifier is a new
		// message and is delivered again.
		name: "qos2-identifier-reuse", clause: "[MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(2, topic)
			pub := conn(t, tg, v)
			pub.publish(&packet.Publish{Topic: topic, QoS: 2, PacketID: 5, Payload: []byte("a")})
			pub.publish(&packet.Publish{Topic: topic, QoS: 2, PacketID: 5, Payload: []byte("b")})
			pub.pub(topic, "marker", 0, false)
			if got := payloads(s.until("marker")); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("got %q, want [a b]", got)
			}
		},
	},
	{
		// A released QoS 2 identifier frees its slot in the server's
		// Receive Maximum.
		name: "receive-maximum-slot-freed", clause: "3.3.4 [MQTT-3.3.4-7]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			rm := int(ack.Props.ReceiveMaximum)
			if rm == 0 || rm > 1000 {
				t.Skipf("receive maximum %d", rm)
			}
			topic := topicOf(t)
			var batch []byte
			for i := 1; i <= rm; i++ {
				batch = append(batch, encode(t, &packet.Publish{Topic: topic, QoS: 2, PacketID: uint16(i)}, v)...)
			}
			c.raw(batch)
			for range rm {
				expect[*packet.Pubrec](c)
			}
			c.send(&packet.Pubrel{PacketID: 1})
			expect[*packet.Pubcomp](c)
			c.send(&packet.Publish{Topic: topic, QoS: 2, PacketID: uint16(rm + 1)})
			if r := expect[*packet.Pubrec](c); r.PacketID != uint16(rm+1) {
				t.Errorf("PUBREC id %d, want %d", r.PacketID, rm+1)
			}
		},
	},
	{
		// A shared and a non-shared subscription of the same client
		// are separate deliveries: it gets one copy through each.
		name: "shared-and-non-shared-subscription", clause: "4.8.2 (copy via the non-shared subscription and via the group)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			c.subscribe(1, topic, "$share/g"+strings.ReplaceAll(topic, "/", "")+"/"+topic, topic+"/m")
			pub := conn(t, tg, v)
			pub.pub(topic, "x", 1, false)
			pub.pub(topic+"/m", "marker", 1, false)
			if got := c.until("marker"); len(got) != 2 {
				t.Errorf("got %d copies, want 2 (one per subscription)", len(got))
			}
		},
	},
	{
		// A subscription excluded by No Local does not lend its QoS (or
		// identifier) to the copy delivered through another one.
		name: "no-local-overlapping-qos", clause: "[MQTT-3.8.3-3] [MQTT-3.3.4-2] [MQTT-3.3.4-3]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			nl := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 2, NoLocal: true}}}
			nl.Props.SubscriptionIDs = []uint32{1}
			c.sub(nl)
			c.subscribe(0, topic+"/#")
			c.pub(topic, "own", 2, false)
			conn(t, tg, v).pub(topic+"/m", "marker", 0, false)
			got := c.until("marker")
			if len(got) != 1 || got[0].QoS != 0 || len(got[0].Props.SubscriptionIDs) != 0 {
				for _, p := range got {
					t.Errorf("own message delivered at QoS %d with ids %v, want once at QoS 0 without ids", p.QoS, p.Props.SubscriptionIDs)
				}
				if len(got) == 0 {
					t.Errorf("own message not delivered through the subscription without No Local")
				}
			}
		},
	},
	{
		// Messages re-sent on a new connection name their topic again:
		// aliases of the old connection mean nothing there.
		name: "server-topic-alias-on-redelivery", clause: "[MQTT-3.3.2-7] [MQTT-4.4.0-1]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			cp := persistent(cid, v)
			cp.Props.TopicAliasMaximum = 4
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			for range 3 {
				pub.pub(topic, "x", 1, false)
			}
			for range 3 {
				await[*packet.Publish](s)
			}
			s.drop()
			s, _ = connectWith(t, tg, v, cp)
			aliases := map[uint16]string{}
			for i := range 3 {
				p := await[*packet.Publish](s)
				name := p.Topic
				if name != "" && p.Props.TopicAlias != 0 {
					aliases[p.Props.TopicAlias] = name
				}
				if name == "" {
					name = aliases[p.Props.TopicAlias]
				}
				if name != topic {
					t.Errorf("re-sent %d: topic %q alias %d, want %s named on this connection", i, p.Topic, p.Props.TopicAlias, topic)
				}
				s.ack(p)
			}
		},
	},
	{
		// Every packet the server sends respects the client's Maximum
		// Packet Size, a DISCONNECT with a reason string included: the
		// reason string is left out rather than the limit exceeded.
		name: "maximum-packet-size-disconnect", clause: "[MQTT-3.1.2-24] [MQTT-3.14.2-3]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.MaximumPacketSize = 32
			c, _ := connectWith(t, tg, v, cp)
			c.send(&packet.Connect{Version: v, ClientID: id(t), CleanStart: true, KeepAlive: 60})
			closedWith(t, tg, c, protocolErr)
		},
	},
	{
		name: "maximum-packet-size-acks", clause: "[MQTT-3.1.2-24] [MQTT-3.4.2-2] [MQTT-3.5.2-2] [MQTT-3.9.2-1] [MQTT-3.11.2-1]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.MaximumPacketSize = 32
			c, _ := connectWith(t, tg, v, cp)
			// Answers likely to carry a reason: refused $-topic
			// publications, an unknown PUBREL, an unknown subscription.
			c.send(&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 1})
			c.send(&packet.Publish{Topic: "$SYS/x", QoS: 2, PacketID: 2})
			c.send(&packet.Pubrel{PacketID: 3})
			c.send(&packet.Subscribe{PacketID: 4, Subscriptions: []packet.Subscription{{Filter: topicOf(t), QoS: 1}}})
			c.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{"none"}})
			for range 5 {
				c.next() // read with the client's maximum: a larger packet fails the test
			}
		},
	},
}
