package conformance

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestSubscribe(t *testing.T) { runCases(t, subscribeCases) }

// retainedFor subscribes a new client to filter with o and returns the
// retained messages it gets before a marker published on markerTopic.
func retainedFor(t *testing.T, tg *target, v packet.Version, s *client, o packet.Subscription, markerTopic string) []*packet.Publish {
	t.Helper()
	s.sub(&packet.Subscribe{Subscriptions: []packet.Subscription{o}})
	conn(t, tg, v).pub(markerTopic, "marker", 0, false)
	return s.until("marker")
}

var subscribeCases = []tcase{
	{
		name: "retained-set-replace-clear",
		clause: "[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-8] [MQTT-3.3.1-12] " +
			"(3.1.1: [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.3.1-12])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			pub := conn(t, tg, v)
			live := conn(t, tg, v)
			live.subscribe(1, topic)
			pub.pub(topic, "v1", 1, true)
			pub.pub(topic, "v2", 1, true)  // replaces v1
			pub.pub(topic, "v3", 1, false) // not retained: keeps v2
			for _, want := range []string{"v1", "v2", "v3"} {
				// An established subscription gets RETAIN 0.
				if p := live.recv(); string(p.Payload) != want || p.Retain {
					t.Errorf("live subscriber got %q retain %v, want %q retain false", p.Payload, p.Retain, want)
				}
			}
			s := conn(t, tg, v)
			got := retainedFor(t, tg, v, s, packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 1 || string(got[0].Payload) != "v2" || !got[0].Retain {
				t.Fatalf("new subscriber got %q, want the retained v2 with RETAIN 1", payloads(got))
			}
			live.until("marker")
			// An empty retained payload is delivered normally and
			// clears the retained message.
			pub.pub(topic, "", 1, true)
			if p := live.recv(); len(p.Payload) != 0 || p.Retain {
				t.Errorf("live subscriber got %q retain %v, want the empty message, retain false", p.Payload, p.Retain)
			}
			got = retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 0 {
				t.Errorf("subscriber after clear got %q, want nothing retained", payloads(got))
			}
		},
	},
	{
		// Retained messages matching a wildcard subscription are all
		// sent, at the minimum of their QoS and the granted QoS.
		name: "retained-wildcard", clause: "[MQTT-3.3.1-9] [MQTT-3.8.4-8] (3.1.1: [MQTT-3.3.1-6] [MQTT-3.8.4-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			pub := conn(t, tg, v)
			pub.pub(topic+"/a", "a", 2, true)
			pub.pub(topic+"/b", "b", 0, true)
			pub.ping() // the QoS 0 PUBLISH before it is processed
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic + "/+", QoS: 1}, topic+"/m")
			qos := map[string]byte{}
			for _, p := range got {
				qos[string(p.Payload)] = p.QoS
			}
			if len(got) != 2 || qos["a"] != 1 || qos["b"] != 0 {
				t.Errorf("got %q with QoS %v, want a at 1 and b at 0", payloads(got), qos)
			}
		},
	},
	{
		name: "retain-handling", clause: "[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			conn(t, tg, v).pub(topic, "r", 1, true)
			for _, tt := range []struct {
				rh          byte
				first, then int // retained messages on the first and a repeated SUBSCRIBE
			}{
				{0, 1, 1},
				{1, 1, 0},
				{2, 0, 0},
			} {
				s := conn(t, tg, v)
				o := packet.Subscription{Filter: topic, QoS: 1, RetainHandling: tt.rh}
				if got := retainedFor(t, tg, v, s, o, topic); len(got) != tt.first {
					t.Errorf("retain handling %d, new subscription: got %d retained, want %d", tt.rh, len(got), tt.first)
				}
				if got := retainedFor(t, tg, v, s, o, topic); len(got) != tt.then {
					t.Errorf("retain handling %d, existing subscription: got %d retained, want %d", tt.rh, len(got), tt.then)
				}
			}
		},
	},
	{
		name: "retain-as-published", clause: "[MQTT-3.3.1-12] [MQTT-3.3.1-13]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			rap := conn(t, tg, v)
			rap.sub(&packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1, RetainAsPublished: true}}})
			plain := conn(t, tg, v)
			plain.subscribe(1, topic)
			pub := conn(t, tg, v)
			pub.pub(topic, "r", 1, true)
			pub.pub(topic, "n", 1, false)
			if p := rap.recv(); !p.Retain {
				t.Errorf("retain as published: retained message delivered with RETAIN 0, want 1")
			}
			if p := rap.recv(); p.Retain || string(p.Payload) != "n" {
				t.Errorf("retain as published: second message %q with RETAIN %v, want n with RETAIN 0", p.Payload, p.Retain)
			}
			if p := plain.recv(); p.Retain {
				t.Errorf("without retain as published: RETAIN 1, want 0")
			}
			pub.pub(topic, "", 1, true)
		},
	},
	{
		name: "no-local", clause: "[MQTT-3.8.3-3]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			c.sub(&packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1, NoLocal: true}}})
			c.pub(topic, "own", 1, false)
			conn(t, tg, v).pub(topic, "marker", 1, false)
			if got := c.until("marker"); len(got) != 0 {
				t.Errorf("got own messages %q with no local", payloads(got))
			}
		},
	},
	{
		// Each message to a shared subscription goes to one session of
		// the group.
		name: "shared-subscription", clause: "4.8.2 [MQTT-4.8.2-1] [MQTT-4.8.2-2]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			filter := "$share/g" + strings.ReplaceAll(topic, "/", "") + "/" + topic
			a, b := conn(t, tg, v), conn(t, tg, v)
			a.subscribe(1, filter)
			b.subscribe(1, filter)
			pub := conn(t, tg, v)
			const n = 20
			for i := range n {
				pub.pub(topic, string(rune('a'+i)), 1, false)
			}
			seen := map[string]int{}
			total := 0
			for _, c := range []*client{a, b} {
				c.subscribe(0, topic+"/end")
			}
			pub.pub(topic+"/end", "marker", 0, false)
			for _, c := range []*client{a, b} {
				for _, p := range c.until("marker") {
					seen[string(p.Payload)]++
					total++
				}
			}
			if total != n || len(seen) != n {
				t.Errorf("group got %d messages, %d distinct, want each of %d once", total, len(seen), n)
			}
		},
	},
	{
		// $-topics are not matched by filters starting with a wildcard.
		// $SYS/broker/version is retained by both brokers.
		name: "dollar-topics", clause: "[MQTT-4.7.2-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(0, "+/broker/version", "+/+/version", "#")
			ctl := conn(t, tg, v)
			ctl.subscribe(0, "$SYS/broker/version")
			if p := ctl.recv(); p.Topic != "$SYS/broker/version" {
				t.Fatalf("control subscriber got %s, want $SYS/broker/version", p.Topic)
			}
			ctl.pub(topic, "marker", 0, false)
			for _, p := range s.until("marker") {
				if strings.HasPrefix(p.Topic, "$") {
					t.Errorf("wildcard subscription got %s", p.Topic)
				}
			}
		},
	},
	{
		name: "wildcards", clause: "[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.1-3] 4.7.1.2 4.7.1.3",
		run: func(t *testing.T, tg *target, v packet.Version) {
			base := topicOf(t)
			pub := conn(t, tg, v)
			names := []string{"s", "s/p", "s/p/r", "s/q", "s//p", "x/p"}
			for _, tt := range []struct {
				filter string
				want   []string
			}{
				{"s/#", []string{"s", "s/p", "s/p/r", "s/q", "s//p"}}, // # matches the parent too
				{"s/+", []string{"s/p", "s/q"}},
				{"s/+/r", []string{"s/p/r"}},
				{"+/p", []string{"s/p", "x/p"}},
				{"s/+/p", []string{"s//p"}}, // + matches an empty level
				{"s", []string{"s"}},
			} {
				s := conn(t, tg, v)
				s.subscribe(0, base+"/"+tt.filter, base+"/end")
				for _, n := range names {
					pub.pub(base+"/"+n, n, 0, false)
				}
				pub.pub(base+"/end", "marker", 0, false)
				got := payloads(s.until("marker"))
				if !slices.Equal(got, tt.want) {
					t.Errorf("filter %s matched %q, want %q", tt.filter, got, tt.want)
				}
			}
		},
	},
	{
		// An invalid filter is refused: 5.0 SUBACK 0x8F, or the
		// connection closed (3.1.1 has no failure code for it besides
		// 0x80).
		name: "invalid-topic-filter", clause: "[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			for _, f := range []string{"a/#/b", "a/b#", "a+/b", "#/"} {
				c := conn(t, tg, v)
				c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: f, QoS: 0}}})
				p, err := c.read(waitTimeout)
				if err != nil {
					continue // closed
				}
				switch p := p.(type) {
				case *packet.Suback:
					if len(p.Codes) != 1 || p.Codes[0] < 0x80 {
						t.Errorf("filter %q: SUBACK %v, want a failure", f, p.Codes)
					}
				case *packet.Disconnect:
					if p.Code < 0x80 {
						t.Errorf("filter %q: DISCONNECT %v", f, p.Code)
					}
				default:
					t.Errorf("filter %q: got %v", f, p.Type())
				}
			}
		},
	},
	{
		name: "suback-codes", clause: "[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-6] [MQTT-3.9.3-1] (3.1.1: [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			ack := c.sub(&packet.Subscribe{PacketID: 0xbeef, Subscriptions: []packet.Subscription{
				{Filter: topic + "/2", QoS: 2}, {Filter: topic + "/0", QoS: 0}, {Filter: topic + "/1", QoS: 1},
			}})
			if want := []packet.ReasonCode{2, 0, 1}; !slices.Equal(ack.Codes, want) {
				t.Errorf("SUBACK codes %v, want %v (one per filter, in order)", ack.Codes, want)
			}
		},
	},
	{
		name: "unsubscribe", clause: "[MQTT-3.10.4-1] [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.11.3-1] (3.1.1: [MQTT-3.10.4-1] [MQTT-3.10.4-4] [MQTT-3.10.4-5])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			c.subscribe(1, topic+"/a", topic+"/m")
			c.send(&packet.Unsubscribe{PacketID: 0x0102, Filters: []string{topic + "/a", topic + "/none"}})
			ack := await[*packet.Unsuback](c)
			if ack.PacketID != 0x0102 {
				t.Errorf("UNSUBACK id %#x, want 0x0102", ack.PacketID)
			}
			if v == packet.V5 {
				if want := []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted}; !slices.Equal(ack.Codes, want) {
					t.Errorf("UNSUBACK codes %v, want %v", ack.Codes, want)
				}
			}
			pub := conn(t, tg, v)
			pub.pub(topic+"/a", "gone", 1, false)
			pub.pub(topic+"/m", "marker", 1, false)
			if got := c.until("marker"); len(got) != 0 {
				t.Errorf("got %q after UNSUBSCRIBE", payloads(got))
			}
		},
	},
}
