package conformance

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestRobust(t *testing.T) { runCases(t, robustCases) }

var robustCases = []tcase{
	{
		// A client need not wait for CONNACK: CONNECT, SUBSCRIBE and
		// PUBLISH in one write are processed in order.
		name: "pipelined-after-connect", clause: "3.1.4 (3.1.1: 3.1.4 \"Clients are not required to wait for a CONNACK\")",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := dial(t, tg, v)
			b := encode(t, &packet.Connect{Version: v, ClientID: id(t), CleanStart: true, KeepAlive: 60}, v)
			b = append(b, encode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}}, v)...)
			b = append(b, encode(t, &packet.Publish{Topic: topic, QoS: 1, PacketID: 2, Payload: []byte("self")}, v)...)
			c.raw(b)
			if ack := expect[*packet.Connack](c); ack.Code != packet.Success {
				t.Fatalf("CONNACK %v", ack.Code)
			}
			await[*packet.Suback](c)
			await[*packet.Puback](c)
			if p := c.recv(); string(p.Payload) != "self" {
				t.Errorf("got %q, want self", p.Payload)
			}
		},
	},
	{
		// Packets split across many TCP segments are reassembled.
		name: "fragmented-packets", clause: "4.2 (ordered, lossless byte stream)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := dial(t, tg, v)
			b := encode(t, &packet.Connect{Version: v, ClientID: id(t), CleanStart: true, KeepAlive: 60}, v)
			b = append(b, encode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 0}}}, v)...)
			for i := range b {
				c.raw(b[i : i+1])
			}
			expect[*packet.Connack](c)
			await[*packet.Suback](c)
			c.ping()
		},
	},
	{
		name: "many-filters", clause: "[MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.11.3-1] (3.1.1: [MQTT-3.8.4-5])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			var filters []string
			for i := range 100 {
				filters = append(filters, fmt.Sprintf("%s/%d", topic, i))
			}
			c.subscribe(1, filters...)
			c.send(&packet.Unsubscribe{PacketID: 9, Filters: filters})
			ack := await[*packet.Unsuback](c)
			if v == packet.V5 && len(ack.Codes) != len(filters) {
				t.Errorf("UNSUBACK has %d codes, want %d", len(ack.Codes), len(filters))
			}
			for i, code := range ack.Codes {
				if code != packet.Success {
					t.Errorf("UNSUBACK code[%d] %v, want success", i, code)
				}
			}
		},
	},
	{
		// Deep and long topics within the protocol's limits.
		name: "deep-and-long-topics", clause: "1.5.4 4.7.3 (no limit on levels; strings up to 65,535 bytes)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			deep := topic + strings.Repeat("/l", 150)
			long := topic + "/" + strings.Repeat("x", 65535-len(topic)-1)
			s := conn(t, tg, v)
			s.subscribe(1, topic+"/#")
			pub := conn(t, tg, v)
			pub.pub(deep, "deep", 1, false)
			pub.pub(long, "long", 1, false)
			if p := s.recv(); p.Topic != deep {
				t.Errorf("deep topic arrived as %.40q…", p.Topic)
			}
			if p := s.recv(); p.Topic != long {
				t.Errorf("long topic arrived with %d bytes, want %d", len(p.Topic), len(long))
			}
		},
	},
	{
		// Any control packet resets the keep alive timer, not only
		// PINGREQ.
		name: "keep-alive-kept-by-publish", clause: "[MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-23] [MQTT-3.1.2-24])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 2})
			topic := topicOf(t)
			for range 4 {
				c.quiet(time.Second)
				c.pub(topic, "x", 1, false)
			}
		},
	},
	{
		// A message published through a topic alias is stored and
		// forwarded under its topic name, to 3.1.1 subscribers too.
		name: "topic-alias-cross-version", clause: "[MQTT-3.3.2-12] 3.3.2.3.4", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			s3 := conn(t, tg, packet.V311)
			s3.subscribe(1, topic)
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if ack.Props.TopicAliasMaximum < 1 {
				t.Skip("no topic alias")
			}
			c.publish(aliased(topic, 1, "a"))
			p := aliased("", 1, "b")
			p.Retain = true
			c.publish(p)
			for _, want := range []string{"a", "b"} {
				if p := s3.recv(); p.Topic != topic || string(p.Payload) != want {
					t.Errorf("3.1.1 subscriber got %q on %q, want %q on %s", p.Payload, p.Topic, want, topic)
				}
			}
			got := retainedFor(t, tg, packet.V311, conn(t, tg, packet.V311), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 1 || got[0].Topic != topic || string(got[0].Payload) != "b" {
				t.Errorf("retained via alias: got %q, want b on %s", payloads(got), topic)
			}
			c.pub(topic, "", 1, true)
		},
	},
	{
		// 5.0 allows a password without a user name: the server answers
		// with a CONNACK (accepted or refused by its auth), never treats it
		// as malformed.
		name: "password-without-user-name-5", clause: "3.1.2.9 (5.0 allows a Password without a User Name)", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", 5, 0x02|0x40, 60, id(t), str("secret")))
			ack := expect[*packet.Connack](c)
			if ack.Code != packet.Success && ack.Code != packet.BadUsernameOrPassword && ack.Code != packet.NotAuthorized {
				t.Errorf("CONNACK %v, want success, 0x86 or 0x87", ack.Code)
			}
		},
	},
	{
		name: "connect-bad-fields", clause: "[MQTT-4.7.3-1] 3.1.2.11.10 2.2.2.2 3.1.3 [MQTT-3.1.0-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cases := map[string][]byte{
				"empty will topic":  rawConnect("MQTT", byte(v), 0x02|0x04, 60, id(t), willPropsMarker, str(""), str("x")),
				"will topic absent": rawConnect("MQTT", byte(v), 0x02|0x04, 60, id(t)),
			}
			// "trailing bytes": the remaining length covers one byte
			// after the client identifier.
			tb := rawConnect("MQTT", byte(v), 0x02, 60, id(t))
			tb = append(tb, 0)
			tb[1]++
			cases["trailing bytes"] = tb
			if v == packet.V5 {
				body := append(str("MQTT"), 5, 0x02, 0, 60)
				body = append(body, props(0x16, 0, 1, 'x')...) // Authentication Data without Method
				cases["auth data without method"] = frame(0x10, append(body, str(id(t))...))
				body = append(str("MQTT"), 5, 0x02|0x04, 0, 60, 0)
				body = append(body, str(id(t))...)
				body = append(body, props(0x11, 0, 0, 0, 1)...) // Session Expiry in Will Properties
				body = append(append(body, str("w")...), str("x")...)
				cases["session expiry in will properties"] = frame(0x10, body)
			}
			for name, b := range cases {
				t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
					if name == "auth data without method" && tg.name == "mosquitto" {
						t.Skip("Mosquitto 2.0.11 accepts Authentication Data without an Authentication Method")
					}
					c := dial(t, tg, v)
					c.raw(b)
					refused(t, c)
				})
			}
		},
	},
	{
		// Invalid shared subscription filters are refused (SUBACK
		// failure, or the connection closed).
		name: "invalid-shared-filter", clause: "[MQTT-4.8.2-1] [MQTT-4.8.2-2]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 grants $share//t, $share/g and $share/g/",
		run: func(t *testing.T, tg *target, v packet.Version) {
			for _, f := range []string{"$share//t", "$share/g", "$share/g/"} {
				c := conn(t, tg, v)
				c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: f, QoS: 0}}})
				p, err := c.read(waitTimeout)
				if err != nil {
					continue // closed
				}
				switch p := p.(type) {
				case *packet.Suback:
					if p.Codes[0] < 0x80 {
						t.Errorf("filter %q granted %v", f, p.Codes)
					}
				case *packet.Disconnect:
				default:
					t.Errorf("filter %q: got %v", f, p.Type())
				}
			}
		},
	},
	{
		// Retained messages are not session state.
		name: "retained-outlives-session", clause: "[MQTT-3.1.2-7] (3.1.1: [MQTT-3.1.2-7])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			c.pub(topic, "kept", 1, true)
			c.disconnect()
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 1 || string(got[0].Payload) != "kept" {
				t.Errorf("got %q after the publisher's session ended, want the retained message", payloads(got))
			}
			conn(t, tg, v).pub(topic, "", 1, true)
		},
	},
	{
		name: "client-id-23-characters", clause: "[MQTT-3.1.3-5]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := "Az09" + id(t)
			cid = (cid + "xxxxxxxxxxxxxxxxxxxxxxx")[:23]
			cid = strings.Map(func(r rune) rune {
				if r == '-' {
					return 'Q'
				}
				return r
			}, cid)
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, CleanStart: true, KeepAlive: 60})
			c.ping()
		},
	},
	{
		// Nothing after a refused CONNECT is processed: the PUBLISH
		// sent with it stores no retained message.
		name: "no-processing-after-refused-connect", clause: "[MQTT-3.1.4-6] (3.1.1: [MQTT-3.2.2-5])", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := dial(t, tg, v)
			b := encode(t, &packet.Connect{Version: v, KeepAlive: 60}, v) // empty id, persistent: refused
			b = append(b, encode(t, &packet.Publish{Topic: topic, Retain: true, Payload: []byte("sneaked")}, v)...)
			c.raw(b)
			c.closed()
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 0 {
				t.Errorf("PUBLISH after a refused CONNECT was processed: retained %q", payloads(got))
			}
		},
	},
	{
		// Any keep alive up to 65,535 s is a valid CONNECT. 3.1.1 has no
		// way to lower it (0x02 is for a client identifier the server
		// does not allow); 5.0 may lower it with Server Keep Alive.
		name: "keep-alive-maximum", clause: "3.1.2.10 [MQTT-3.1.2-21] (3.1.1: 3.1.2.10, 3.2.2.3 return code 0x02 is for the client identifier)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 65535})
			if ack.Props.HasServerKeepAlive && ack.Props.ServerKeepAlive == 0 {
				t.Errorf("Server Keep Alive 0 for a client asking 65535")
			}
			c.ping()
		},
	},
	{
		// A client sending packets back to back for longer than 1.5 ×
		// its keep alive is active: every packet received restarts the
		// keep alive timer.
		name: "keep-alive-busy-client", clause: "[MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 2})
			topic := topicOf(t)
			one := encode(t, &packet.Publish{Topic: topic, Payload: make([]byte, 97-len(topic))}, v)
			var batch []byte
			for len(batch) < 32<<10 {
				batch = append(batch, one...)
			}
			start := time.Now()
			for time.Since(start) < 3500*time.Millisecond {
				c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := c.nc.Write(batch); err != nil {
					t.Fatalf("disconnected after %v of continuous sending: %v", time.Since(start), err)
				}
			}
			c.ping()
		},
	},
	{
		// Once the server has found a malformed packet it closes the
		// connection: a PUBLISH behind it in the same write is not acted
		// on.
		name: "no-processing-after-malformed", clause: "[MQTT-4.13.1-1] (3.1.1: 4.8)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			c := conn(t, tg, v)
			b := rawPublish(v, 0x06, topic, 1, nil, "qos3") // QoS 3
			b = append(b, encode(t, &packet.Publish{Topic: topic, Retain: true, Payload: []byte("after")}, v)...)
			c.raw(b)
			c.closed()
			got := retainedFor(t, tg, v, conn(t, tg, v), packet.Subscription{Filter: topic, QoS: 1}, topic)
			if len(got) != 0 {
				t.Errorf("PUBLISH after a malformed packet was processed: retained %q", payloads(got))
			}
		},
	},
	{
		// A complete PUBLISH every 200 ms keeps the connection alive
		// even when each write ends with the first byte of the next
		// packet: the keep alive timer restarts on each packet received,
		// not only when the server's input is drained.
		name: "keep-alive-partial-packets", clause: "[MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 2})
			one := encode(t, &packet.Publish{Topic: topicOf(t), Payload: []byte("x")}, v)
			c.raw(one[:1])
			start := time.Now()
			for time.Since(start) < 4*time.Second {
				c.raw(append(one[1:len(one):len(one)], one[0]))
				if p, err := c.read(200 * time.Millisecond); err == nil {
					t.Fatalf("got %s %+v after %v while sending a PUBLISH every 200 ms", p.Type(), p, time.Since(start))
				} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					t.Fatalf("disconnected after %v while sending a PUBLISH every 200 ms: %v", time.Since(start), err)
				}
			}
			c.raw(one[1:])
			c.ping()
		},
	},
}
