package conformance

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestV5(t *testing.T) { runCases(t, v5Cases) }

func TestWill(t *testing.T) { runCases(t, willCases) }

// aliased is a QoS 1 PUBLISH using a Topic Alias.
func aliased(topic string, alias uint16, payload string) *packet.Publish {
	p := &packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte(payload)}
	p.Props.TopicAlias = alias
	return p
}

var v5Cases = []tcase{
	{
		// Client → server aliases: set with a topic, used with an empty
		// one, re-mapped; the server sends no alias to a client that
		// allowed none.
		name: "topic-alias", clause: "[MQTT-3.3.2-10] [MQTT-3.3.2-11] [MQTT-3.3.2-12] 3.3.2.3.4", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s := conn(t, tg, v)
			s.subscribe(1, topic+"/+")
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if ack.Props.TopicAliasMaximum < 1 {
				t.Skip("server allows no topic alias")
			}
			c.publish(aliased(topic+"/a", 1, "1"))
			c.publish(aliased("", 1, "2"))
			c.publish(aliased(topic+"/b", 1, "3"))
			c.publish(aliased("", 1, "4"))
			top := ack.Props.TopicAliasMaximum // the largest alias allowed
			c.publish(aliased(topic+"/c", top, "5"))
			c.publish(aliased("", top, "6"))
			for _, want := range []string{"a 1", "a 2", "b 3", "b 4", "c 5", "c 6"} {
				p := s.recv()
				if got := strings.TrimPrefix(p.Topic, topic+"/") + " " + string(p.Payload); got != want || p.Props.TopicAlias != 0 {
					t.Errorf("got %q (alias %d), want %q without alias", got, p.Props.TopicAlias, want)
				}
			}
		},
	},
	{
		name: "topic-alias-above-maximum", clause: "[MQTT-3.3.2-10] 3.3.2.3.4 (DISCONNECT 0x94)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			c.send(aliased(topicOf(t), ack.Props.TopicAliasMaximum+1, "x"))
			closedWith(t, tg, c, packet.TopicAliasInvalid)
		},
	},
	{
		name: "topic-alias-zero", clause: "[MQTT-3.3.2-8] 3.3.2.3.4 (DISCONNECT 0x94)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			b := encode(t, aliased(topicOf(t), 1, "x"), v)
			// The alias property is the last two bytes before the
			// payload "x": set its value to 0.
			b[len(b)-3], b[len(b)-2] = 0, 0
			c.raw(b)
			// 0x94 is defined for an alias above the maximum; an alias of
			// 0 is equally invalid, and a receiver may see it as a
			// malformed property value.
			closedWith(t, tg, c, packet.TopicAliasInvalid, packet.ProtocolError, packet.MalformedPacket)
		},
	},
	{
		// An alias never set on this connection is a protocol error;
		// mappings do not survive the connection [MQTT-3.3.2-7].
		name: "topic-alias-not-carried-forward", clause: "[MQTT-3.3.2-7] 3.3.4", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			c, ack := connectWith(t, tg, v, persistent(cid, v))
			if ack.Props.TopicAliasMaximum < 1 {
				t.Skip("server allows no topic alias")
			}
			c.publish(aliased(topicOf(t), 1, "x"))
			c.drop()
			c, _ = connectWith(t, tg, v, persistent(cid, v))
			c.send(aliased("", 1, "y"))
			closedWith(t, tg, c, packet.ProtocolError, packet.TopicAliasInvalid)
		},
	},
	{
		// More unacknowledged QoS 2 PUBLISHes than the server's Receive
		// Maximum: DISCONNECT 0x93.
		name: "receive-maximum-exceeded", clause: "3.3.4 [MQTT-3.3.4-7] (DISCONNECT 0x93)", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 answers more unacknowledged QoS 2 PUBLISHes than its Receive Maximum with PUBREC",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			rm := int(ack.Props.ReceiveMaximum)
			if rm == 0 || rm > 1000 {
				t.Skipf("receive maximum %d", rm)
			}
			topic := topicOf(t)
			var batch []byte
			for i := 1; i <= rm+1; i++ {
				batch = append(batch, encode(t, &packet.Publish{Topic: topic, QoS: 2, PacketID: uint16(i)}, v)...)
			}
			c.raw(batch)
			got := c.closed()
			recs := 0
			for _, p := range got {
				switch p := p.(type) {
				case *packet.Pubrec:
					recs++
				case *packet.Disconnect:
					if p.Code != packet.ReceiveMaximumExceeded {
						t.Errorf("DISCONNECT %v, want 0x93", p.Code)
					}
					return
				default:
					t.Fatalf("got %v", p.Type())
				}
			}
			t.Errorf("closed after %d PUBRECs without DISCONNECT 0x93", recs)
		},
	},
	{
		// The server keeps at most the client's Receive Maximum of QoS
		// 1 and 2 PUBLISHes unacknowledged.
		name: "client-receive-maximum", clause: "[MQTT-3.3.4-9]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 sends a third QoS 1 PUBLISH to a client with Receive Maximum 2 after the first PUBACK, while two are unacknowledged",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.ReceiveMaximum = 2
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			for i := range 6 {
				pub.pub(topic, strconv.Itoa(i), 1, false)
			}
			var held []*packet.Publish
			for next := 0; next < 6; {
				for len(held) < 2 && next+len(held) < 6 {
					held = append(held, await[*packet.Publish](s))
				}
				// All six are routed (PUBACKed to the publisher): a
				// server ignoring the window would have sent a third.
				s.ping()
				if n := len(s.queue); n > 0 {
					t.Fatalf("%d more PUBLISH beyond receive maximum 2 (after %d acknowledged; held %q, extra %q)", n, next, payloads(held), s.queue[0].(*packet.Publish).Payload)
				}
				if string(held[0].Payload) != strconv.Itoa(next) {
					t.Fatalf("got %q, want %d", held[0].Payload, next)
				}
				s.ack(held[0])
				held = held[1:]
				next++
			}
		},
	},
	{
		// A message larger than the client's Maximum Packet Size is
		// discarded for that client, as if sent [MQTT-3.1.2-25].
		name: "maximum-packet-size-to-client", clause: "[MQTT-3.1.2-24] [MQTT-3.1.2-25]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.MaximumPacketSize = 200
			s, _ := connectWith(t, tg, v, cp)
			s.subscribe(1, topic)
			pub := conn(t, tg, v)
			// Delivered at QoS 1 with no property added, a PUBLISH is as
			// large as the one published: one of exactly 200 bytes
			// arrives, one of 201 does not.
			exact := &packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: []byte(strings.Repeat("e", 200))}
			for n, _ := packet.Size(exact, v); n > 200; n, _ = packet.Size(exact, v) {
				exact.Payload = exact.Payload[:len(exact.Payload)-1]
			}
			pub.pub(topic, "small", 1, false)
			pub.pub(topic, strings.Repeat("x", 500), 1, false)
			if tg.strict {
				// Mosquitto 2.0.11 sends this 201-byte PUBLISH to a
				// client whose maximum is 200.
				pub.pub(topic, string(exact.Payload)+"y", 1, false)
			}
			pub.pub(topic, string(exact.Payload), 1, false)
			pub.pub(topic, "marker", 1, false)
			got := payloads(s.until("marker"))
			if len(got) != 2 || got[0] != "small" || got[1] != string(exact.Payload) {
				t.Errorf("got %d messages %.20q, want the small one and the one of exactly 200 bytes", len(got), got)
			}
		},
	},
	{
		name: "maximum-packet-size-to-server", clause: "3.2.2.3.6 [MQTT-3.2.2-15] (DISCONNECT 0x95)",
		mosquittoConf: []string{"max_packet_size 2000"},
		brokerOpts:    func(o *broker.Options) { o.MaxPacketSize = 2000 },
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if v == packet.V5 && ack.Props.MaximumPacketSize != 2000 {
				t.Errorf("CONNACK Maximum Packet Size %d, want 2000", ack.Props.MaximumPacketSize)
			}
			// A packet of exactly the maximum is accepted, one byte more
			// is not.
			topic := topicOf(t)
			p := &packet.Publish{Topic: topic, QoS: 1, PacketID: 1, Payload: make([]byte, 2000)}
			for n, _ := packet.Size(p, v); n > 2000; n, _ = packet.Size(p, v) {
				p.Payload = p.Payload[:len(p.Payload)-1]
			}
			c.publish(p)
			p.Payload = append(p.Payload, 0)
			if !tg.strict {
				// Mosquitto 2.0.11 with max_packet_size 2000 accepts a
				// 2001-byte packet: refuse it a clearly larger one.
				p.Payload = make([]byte, 3000)
			}
			c.send(p)
			closedWith(t, tg, c, packet.PacketTooLarge)
		},
	},
	{
		// The forwarded Message Expiry Interval is the remaining time;
		// an expired message is not delivered, live or retained.
		name: "message-expiry", clause: "[MQTT-3.3.2-5] [MQTT-3.3.2-6]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			s, _ := connectWith(t, tg, v, persistent(cid, v))
			s.subscribe(1, topic)
			s.disconnectWait() // offline before the publications: no delivery started
			pub := conn(t, tg, v)
			short := &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("short")}
			short.Props.MessageExpiry, short.Props.HasMessageExpiry = 1, true
			long := &packet.Publish{Topic: topic, QoS: 1, Payload: []byte("long")}
			long.Props.MessageExpiry, long.Props.HasMessageExpiry = 60, true
			pub.publish(short)
			pub.publish(long)
			rshort := &packet.Publish{Topic: topic + "/r", QoS: 1, Retain: true, Payload: []byte("short")}
			rshort.Props.MessageExpiry, rshort.Props.HasMessageExpiry = 1, true
			pub.publish(rshort)
			pub.quiet(3 * time.Second) // let the broker's clock run
			s, _ = connectWith(t, tg, v, persistent(cid, v))
			p := s.recv()
			if string(p.Payload) != "long" {
				t.Fatalf("got %q, want only the unexpired message", p.Payload)
			}
			if !p.Props.HasMessageExpiry || p.Props.MessageExpiry > 58 || p.Props.MessageExpiry < 50 {
				t.Errorf("forwarded expiry %d (present %v) after 3 s, want the remaining 57..58", p.Props.MessageExpiry, p.Props.HasMessageExpiry)
			}
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic + "/r", QoS: 1}, topic+"/r")
			if len(got) != 0 {
				t.Errorf("expired retained message delivered")
			}
		},
	},
	{
		// With Request Problem Information 0 the server sends no Reason
		// String or User Property except on PUBLISH, CONNACK, DISCONNECT.
		name: "request-problem-information", clause: "[MQTT-3.1.2-29]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cp := &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60}
			cp.Props.RequestProblemInfo, cp.Props.HasRequestProblemInfo = 0, true
			c, _ := connectWith(t, tg, v, cp)
			topic := topicOf(t)
			// Answers that often carry a reason: no subscribers, a
			// refused filter, an unknown subscription, unknown ids.
			c.send(&packet.Publish{Topic: topic, QoS: 1, PacketID: 1})
			c.send(&packet.Publish{Topic: topic, QoS: 2, PacketID: 2})
			c.send(&packet.Pubrel{PacketID: 2})
			c.send(&packet.Pubrel{PacketID: 3})
			c.send(&packet.Subscribe{PacketID: 4, Subscriptions: []packet.Subscription{{Filter: "$share/g/" + topic + "/+", QoS: 1}}})
			c.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{topic + "/none"}})
			for range 6 {
				p := c.next()
				var pr *packet.Properties
				switch p.(type) {
				case *packet.Puback, *packet.Pubrec, *packet.Pubcomp, *packet.Suback, *packet.Unsuback:
					pr = packet.PropertiesOf(p)
				default:
					t.Fatalf("got %v", p.Type())
				}
				if pr.ReasonString != "" || len(pr.User) != 0 {
					t.Errorf("%v carries reason string %q / user properties %v", p.Type(), pr.ReasonString, pr.User)
				}
			}
		},
	},
	{
		// A server that lowers the keep alive says so in CONNACK.
		name: "server-keep-alive", clause: "3.2.2.3.14 [MQTT-3.1.2-21]", vs: only5,
		mosquittoConf: []string{"max_keepalive 10"},
		brokerOpts:    func(o *broker.Options) { o.MaxKeepAlive = 10 * time.Second },
		run: func(t *testing.T, tg *target, v packet.Version) {
			_, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if !ack.Props.HasServerKeepAlive || ack.Props.ServerKeepAlive != 10 {
				t.Errorf("CONNACK Server Keep Alive %d (present %v), want 10", ack.Props.ServerKeepAlive, ack.Props.HasServerKeepAlive)
			}
		},
	},
}

// willConnect is a CONNECT with a QoS 1 will on topic.
func willConnect(t *testing.T, v packet.Version, topic string, retain bool) *packet.Connect {
	return &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60,
		Will: &packet.Will{Topic: topic, Payload: []byte("will"), QoS: 1, Retain: retain}}
}

var willCases = []tcase{
	{
		name: "will-on-abnormal-close", clause: "[MQTT-3.1.2-8]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, false))
			c.drop()
			if p := w.recv(); string(p.Payload) != "will" || p.QoS != 1 {
				t.Errorf("got %q at QoS %d, want the will at QoS 1", p.Payload, p.QoS)
			}
		},
	},
	{
		name: "will-on-protocol-error", clause: "[MQTT-3.1.2-8]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, false))
			c.raw([]byte{0x32, 0x03, 0x00, 0x05, 'a'}) // topic length beyond the packet
			c.closed()
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will", p.Payload)
			}
		},
	},
	{
		name: "no-will-on-disconnect", clause: "[MQTT-3.1.2-10] [MQTT-3.14.4-3]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, false))
			// The will would have been published when the server
			// closed the connection: wait for that, then a marker.
			c.disconnectWait()
			conn(t, tg, v).pub(topic, "marker", 1, false)
			if got := w.until("marker"); len(got) != 0 {
				t.Errorf("got %q after a normal DISCONNECT", payloads(got))
			}
		},
	},
	{
		name: "will-on-disconnect-with-will", clause: "3.14.2.1 (0x04) [MQTT-3.14.4-3]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, false))
			c.send(&packet.Disconnect{Code: packet.DisconnectWithWill})
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will", p.Payload)
			}
		},
	},
	{
		name: "will-retain", clause: "[MQTT-3.1.2-15] (3.1.1: [MQTT-3.1.2-17])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, true))
			c.drop()
			w.recv()
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 1 || string(got[0].Payload) != "will" || !got[0].Retain {
				t.Errorf("new subscriber got %q, want the retained will", payloads(got))
			}
			conn(t, tg, v).pub(topic, "", 1, true)
		},
	},
	{
		name: "will-delay", clause: "3.1.3.2.2 [MQTT-3.1.3-9]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.Props.SessionExpiry = 60
			cp.Will.Props.WillDelay = 2
			c, _ := connectWith(t, tg, v, cp)
			start := time.Now()
			c.drop()
			w.recv()
			if d := time.Since(start); d < 1500*time.Millisecond {
				t.Errorf("will after %v, want after the 2 s delay", d)
			}
		},
	},
	{
		name: "will-delay-reconnect", clause: "[MQTT-3.1.3-9]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.CleanStart = false
			cp.Props.SessionExpiry = 60
			cp.Will.Props.WillDelay = 2
			c, _ := connectWith(t, tg, v, cp)
			c.drop()
			connectWith(t, tg, v, &packet.Connect{ClientID: cp.ClientID, KeepAlive: 60})
			w.quiet(3500 * time.Millisecond)
		},
	},
	{
		// DISCONNECT 0x04 publishes the will after its delay, not at
		// once.
		name: "will-delay-on-disconnect-with-will", clause: "3.14.2.1 (0x04) 3.1.3.2.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.Props.SessionExpiry = 60
			cp.Will.Props.WillDelay = 2
			c, _ := connectWith(t, tg, v, cp)
			start := time.Now()
			c.send(&packet.Disconnect{Code: packet.DisconnectWithWill})
			w.recv()
			if d := time.Since(start); d < 1500*time.Millisecond {
				t.Errorf("will after %v, want after the 2 s delay", d)
			}
		},
	},
	{
		// A take-over resuming the session within the will delay: the
		// old connection's will is not published.
		name: "will-delay-takeover", clause: "[MQTT-3.1.3-9] [MQTT-3.1.4-3]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			cp := willConnect(t, v, topic, false)
			cp.CleanStart = false
			cp.Props.SessionExpiry = 60
			cp.Will.Props.WillDelay = 2
			a, _ := connectWith(t, tg, v, cp)
			connectWith(t, tg, v, &packet.Connect{ClientID: cp.ClientID, KeepAlive: 60})
			a.closed()
			w.quiet(3500 * time.Millisecond)
		},
	},
	{
		// Only DISCONNECT with 0x00 deletes the will: a client
		// disconnecting with an error code gets its will published.
		name: "will-on-disconnect-with-error", clause: "[MQTT-3.1.2-8] [MQTT-3.14.4-3]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 discards the will on a DISCONNECT with reason 0x80",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c, _ := connectWith(t, tg, v, willConnect(t, v, topic, false))
			c.send(&packet.Disconnect{Code: packet.UnspecifiedError})
			if p := w.recv(); string(p.Payload) != "will" {
				t.Errorf("got %q, want the will after DISCONNECT 0x80", p.Payload)
			}
		},
	},
}
