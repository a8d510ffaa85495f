package conformance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestMore(t *testing.T) { runCases(t, moreCases) }

var moreCases = []tcase{
	{
		// PINGREQs within the keep alive keep the connection open past
		// 1.5 × keep alive.
		name: "keep-alive-kept-by-pingreq", clause: "[MQTT-3.1.2-22] [MQTT-3.12.4-1] (3.1.1: [MQTT-3.1.2-23] [MQTT-3.1.2-24])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 2})
			for range 4 {
				c.quiet(time.Second)
				c.ping()
			}
		},
	},
	{
		// The application message's properties reach the subscriber
		// unchanged, user properties in order.
		name: "message-properties-forwarded", clause: "[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic)
			p := &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("{}")}
			p.Props.PayloadFormat = 1
			p.Props.ContentType = "application/json"
			p.Props.ResponseTopic = topic + "/reply"
			p.Props.CorrelationData = []byte{0, 1, 2, 0xff}
			p.Props.User = []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}}
			conn(t, tg, v).publish(p)
			got := s.recv().Props
			if got.PayloadFormat != 1 || got.ContentType != p.Props.ContentType || got.ResponseTopic != p.Props.ResponseTopic ||
				string(got.CorrelationData) != string(p.Props.CorrelationData) || !slices.Equal(got.User, p.Props.User) {
				t.Errorf("forwarded properties %+v, want those published %+v", got, p.Props)
			}
		},
	},
	{
		// Server → client topic aliases never exceed the client's Topic
		// Alias Maximum and an empty topic only uses a mapped alias.
		name: "server-topic-alias", clause: "[MQTT-3.1.2-26] [MQTT-3.3.2-9] [MQTT-3.3.2-12]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.TopicAliasMaximum = 2
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(1, topic+"/#")
			pub := conn(t, tg, v)
			var want []string
			for i := range 12 {
				n := fmt.Sprintf("%s/%d", topic, i%4)
				want = append(want, n)
				pub.pub(n, "x", 1, false)
			}
			aliases := map[uint16]string{}
			for i := range want {
				p := s.recv()
				a := p.Props.TopicAlias
				if a > 2 {
					t.Fatalf("alias %d above the client's maximum 2", a)
				}
				name := p.Topic
				switch {
				case name != "" && a != 0:
					aliases[a] = name
				case name == "" && a == 0:
					t.Fatalf("PUBLISH without topic or alias")
				case name == "":
					var ok bool
					if name, ok = aliases[a]; !ok {
						t.Fatalf("empty topic with unmapped alias %d", a)
					}
				}
				if name != want[i] {
					t.Errorf("message %d on %s, want %s", i, name, want[i])
				}
			}
		},
	},
	{
		// The will is published when the session ends, if that is
		// before the will delay.
		name: "will-delay-beyond-session-expiry", clause: "3.1.3.2.2 3.1.2.5", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.Props.SessionExpiry = 1
			cp.Will.Props.WillDelay = 30
			c, _ := connectWith(t, tg, v, cp)
			c.drop()
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will at session end", p.Payload)
			}
		},
	},
	{
		// The server answers a PUBREL with PUBCOMP even for an unknown
		// identifier (5.0: reason 0x92 allowed).
		name: "pubrel-unknown-id", clause: "[MQTT-4.3.3-11] (3.1.1: [MQTT-4.3.3-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			c.send(&packet.Pubrel{PacketID: 99})
			p := expect[*packet.Pubcomp](c)
			if p.PacketID != 99 || (p.Code != packet.Success && p.Code != packet.PacketIDNotFound) {
				t.Errorf("PUBCOMP id %d code %v, want id 99, 0x00 or 0x92", p.PacketID, p.Code)
			}
		},
	},
	{
		// Retained messages sent on subscribe carry the subscription's
		// identifier.
		name: "retained-subscription-identifier", clause: "[MQTT-3.3.4-3] 3.8.2.1.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			conn(t, tg, v).pub(topic, "r", 1, true)
			s := conn(t, tg, v)
			sp := &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}}
			sp.Props.SubscriptionIDs = []uint32{5}
			s.sub(sp)
			if p := s.recv(); !p.Retain || !slices.Equal(p.Props.SubscriptionIDs, []uint32{5}) {
				t.Errorf("retained message: retain %v ids %v, want retain with [5]", p.Retain, p.Props.SubscriptionIDs)
			}
			conn(t, tg, v).pub(topic, "", 1, true)
		},
	},
	{
		// Retained messages are not sent to a new shared subscription.
		name: "shared-subscription-no-retained", clause: "4.8.2 (retained messages not sent on a shared subscribe)", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 sends retained messages to a new shared subscription",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			conn(t, tg, v).pub(topic, "r", 1, true)
			s := conn(t, tg, v)
			group := "g" + strings.ReplaceAll(topic, "/", "")
			got := retainedFor(t, tg, v, s, packet.Subscription{Filter: "$share/" + group + "/" + topic, QoS: 1}, topic)
			if len(got) != 0 {
				t.Errorf("shared subscription got retained %q", payloads(got))
			}
			conn(t, tg, v).pub(topic, "", 1, true)
		},
	},
	{
		// One SUBSCRIBE with a good and a bad filter: a code per filter,
		// the bad one refused (5.0: 0x8F or 0x9E), the good one granted.
		name: "subscribe-partial-failure", clause: "[MQTT-3.8.4-6] [MQTT-3.9.3-1] 3.9.3", vs: only5,
		// Closing is allowed for a malformed share name [MQTT-4.8.2-2];
		// edgegw answers per filter, which this checks.
		edgegwOnly: "Mosquitto 2.0.11 closes the connection on a share name with '+' instead of refusing that filter alone",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			ack := c.sub(&packet.Subscribe{Subscriptions: []packet.Subscription{
				{Filter: topic, QoS: 1}, {Filter: "$share/" + "g+x/" + topic, QoS: 1},
			}})
			if ack.Codes[0] != 1 || ack.Codes[1] < 0x80 {
				t.Errorf("SUBACK %v, want [1, failure]", ack.Codes)
			}
		},
	},
	{
		// A CONNECT with an authentication method the server does not
		// support is refused and the connection closed.
		name: "unsupported-auth-method", clause: "[MQTT-4.12.0-1]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.AuthMethod = "X-UNKNOWN-METHOD"
			cp.Version = v
			c.send(cp)
			refused(t, c)
		},
	},
	{
		// AUTH on a connection that did not authenticate with a method
		// is a protocol error.
		name: "auth-without-method", clause: "4.12 3.15 (no AUTH without an Authentication Method in CONNECT)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			c.send(&packet.Auth{Code: packet.ReAuthenticate, Props: packet.Properties{AuthMethod: "X"}})
			closedWith(t, tg, c, protocolErr)
		},
	},
	{
		// Taking over a connected client's session with Clean Start
		// publishes the old connection's will.
		name: "will-on-takeover", clause: "[MQTT-3.1.4-3] [MQTT-3.1.2-8] 3.1.3.2.2 (3.1.1: [MQTT-3.1.4-2] [MQTT-3.1.2-8])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			a, _ := connectWith(t, tg, v, cp)
			connectWith(t, tg, v, &packet.Connect{ClientID: cp.ClientID, CleanStart: true, KeepAlive: 60})
			a.closed()
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will", p.Payload)
			}
		},
	},
}
