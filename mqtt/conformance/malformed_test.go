package conformance

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestMalformed sends packets that break the encoding or a protocol rule
// on an established connection. The server closes that connection (5.0:
// after a DISCONNECT with the reason code, which edgegw promises
// [MQTT-4.13.1-1]) and other clients are not disturbed.
func TestMalformed(t *testing.T) { runCases(t, malformedCases) }

const (
	malformedPkt = packet.MalformedPacket
	protocolErr  = packet.ProtocolError
)

// props is a 5.0 property block: its length, then the properties.
func props(b ...byte) []byte { return append(vbi(len(b)), b...) }

func vbi(n int) []byte {
	var out []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			return out
		}
	}
}

// rawPublish builds a PUBLISH field by field. id < 0 leaves the packet
// identifier out; prop is the 5.0 property block (nil: an empty one).
func rawPublish(v packet.Version, flags byte, topic string, id int, prop []byte, payload string) []byte {
	body := str(topic)
	if id >= 0 {
		body = binary.BigEndian.AppendUint16(body, uint16(id))
	}
	if v == packet.V5 {
		if prop == nil {
			prop = props()
		}
		body = append(body, prop...)
	}
	return frame(0x30|flags, append(body, payload...))
}

// rawSubscribe builds a SUBSCRIBE with first byte b0, one filter with
// options opts (none if filter is empty) and the 5.0 property block prop.
func rawSubscribe(v packet.Version, b0 byte, id uint16, prop []byte, filter string, opts byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if v == packet.V5 {
		if prop == nil {
			prop = props()
		}
		body = append(body, prop...)
	}
	if filter != "" {
		body = append(append(body, str(filter)...), opts)
	}
	return frame(b0, body)
}

func rawUnsubscribe(v packet.Version, b0 byte, id uint16, filter string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if v == packet.V5 {
		body = append(body, 0)
	}
	if filter != "" {
		body = append(body, str(filter)...)
	}
	return frame(b0, body)
}

// bad is a malformed-packet case: build returns the bytes sent after a
// successful CONNECT; codes are the acceptable 5.0 DISCONNECT reasons.
func bad(name, clause string, vs []packet.Version, build func(v packet.Version, topic string) []byte, codes ...packet.ReasonCode) tcase {
	return tcase{
		name: name, clause: clause, vs: vs,
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			by := conn(t, tg, v)
			by.subscribe(1, topic+"/#")
			c := conn(t, tg, v)
			c.raw(build(v, topic+"/x"))
			closedWith(t, tg, c, codes...)
			// The bystander is undisturbed, and the bad packet's
			// message, if any, was not delivered.
			by.pub(topic+"/by", "marker", 1, false)
			if got := by.until("marker"); len(got) != 0 {
				t.Errorf("bystander got %q from the bad packet", payloads(got))
			}
		},
	}
}

// mosquittoDeviates marks a case Mosquitto 2.0.11 fails: it runs against
// edgegw only.
func mosquittoDeviates(tc tcase, how string) tcase {
	tc.edgegwOnly = how
	return tc
}

var malformedCases = []tcase{
	bad("remaining-length-5-bytes", "1.5.5 [MQTT-1.5.5-1] (3.1.1: 2.2.3)", both, func(v packet.Version, _ string) []byte {
		return []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}
	}, malformedPkt),
	mosquittoDeviates(bad("remaining-length-not-minimal", "1.5.5 [MQTT-1.5.5-1]", both, func(v packet.Version, _ string) []byte {
		// PINGREQ with its length 0 encoded in two bytes: "The encoded
		// value MUST use the minimum number of bytes necessary".
		return []byte{0xc0, 0x80, 0x00}
	}, malformedPkt), "Mosquitto 2.0.11 accepts a remaining length not minimally encoded"),
	bad("truncated-packet-id", "2.2.1 3.3.2.2 (3.1.1: 2.3.1)", both, func(v packet.Version, topic string) []byte {
		return frame(0x32, append(str(topic), 0x00)) // one byte of the packet identifier
	}, malformedPkt),
	bad("string-beyond-packet", "1.5.4 (3.1.1: 1.5.3)", both, func(v packet.Version, topic string) []byte {
		return frame(0x30, []byte{0x00, 0x40, 'a', 'b'}) // topic length 64, 2 bytes follow
	}, malformedPkt),
	bad("reserved-flags-pubrel", "[MQTT-3.6.1-1]", both, func(v packet.Version, _ string) []byte {
		return []byte{0x60, 0x02, 0x00, 0x01}
	}, malformedPkt),
	bad("reserved-flags-subscribe", "[MQTT-3.8.1-1]", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x80, 1, nil, topic, 0)
	}, malformedPkt),
	bad("reserved-flags-unsubscribe", "[MQTT-3.10.1-1]", both, func(v packet.Version, topic string) []byte {
		return rawUnsubscribe(v, 0xa0, 1, topic)
	}, malformedPkt),
	mosquittoDeviates(bad("reserved-flags-pingreq", "[MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-2])", both, func(v packet.Version, _ string) []byte {
		return []byte{0xc1, 0x00}
	}, malformedPkt), "Mosquitto 2.0.11 ignores the reserved flags of PINGREQ"),
	bad("reserved-packet-type-0", "2.1.2", both, func(v packet.Version, _ string) []byte {
		return []byte{0x00, 0x00}
	}, malformedPkt, protocolErr),
	bad("auth-in-3.1.1", "2.2.1 (3.1.1: type 15 reserved)", only3, func(v packet.Version, _ string) []byte {
		return []byte{0xf0, 0x00}
	}),
	bad("server-packet-from-client", "2.1.2 4.13 (CONNACK is server to client only)", both, func(v packet.Version, _ string) []byte {
		return []byte{0x20, 0x02, 0x00, 0x00}
	}, malformedPkt, protocolErr),
	bad("publish-qos-3", "[MQTT-3.3.1-4]", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x06, topic, 1, nil, "x")
	}, malformedPkt),
	mosquittoDeviates(bad("publish-dup-qos-0", "[MQTT-3.3.1-2]", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x08, topic, -1, nil, "x")
	}, malformedPkt, protocolErr), "Mosquitto 2.0.11 accepts DUP 1 on a QoS 0 PUBLISH"),
	bad("topic-invalid-utf8", "[MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1])", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic+"\xff", 1, nil, "x")
	}, malformedPkt),
	bad("topic-utf16-surrogate", "[MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1])", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic+"\xed\xa0\x80", 1, nil, "x")
	}, malformedPkt),
	bad("topic-nul", "[MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2])", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic+"\x00", 1, nil, "x")
	}, malformedPkt),
	bad("topic-wildcard-plus", "[MQTT-3.3.2-2]", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic+"/+", 1, nil, "x")
	}, malformedPkt, protocolErr, packet.TopicNameInvalid),
	bad("topic-wildcard-hash", "[MQTT-3.3.2-2]", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic+"/#", 1, nil, "x")
	}, malformedPkt, protocolErr, packet.TopicNameInvalid),
	bad("topic-empty", "[MQTT-4.7.3-1] 3.3.4 (5.0: empty without Topic Alias)", both, func(v packet.Version, _ string) []byte {
		return rawPublish(v, 0x02, "", 1, nil, "x")
	}, malformedPkt, protocolErr, packet.TopicNameInvalid),
	bad("packet-id-zero-publish", "[MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])", both, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic, 0, nil, "x")
	}, malformedPkt, protocolErr),
	bad("packet-id-zero-subscribe", "[MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 0, nil, topic, 0)
	}, malformedPkt, protocolErr),
	bad("packet-id-zero-unsubscribe", "[MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1])", both, func(v packet.Version, topic string) []byte {
		return rawUnsubscribe(v, 0xa2, 0, topic)
	}, malformedPkt, protocolErr),
	bad("subscribe-no-filter", "[MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])", both, func(v packet.Version, _ string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, "", 0)
	}, malformedPkt, protocolErr),
	bad("unsubscribe-no-filter", "[MQTT-3.10.3-2]", both, func(v packet.Version, _ string) []byte {
		return rawUnsubscribe(v, 0xa2, 1, "")
	}, malformedPkt, protocolErr),
	bad("subscribe-qos-3", "3.8.3.1 (3.1.1: [MQTT-3.8.3-4])", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, topic, 0x03)
	}, malformedPkt, protocolErr),
	bad("subscribe-reserved-option-bits", "[MQTT-3.8.3-5] (3.1.1: [MQTT-3.8.3-4])", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, topic, 0xc1)
	}, malformedPkt, protocolErr),
	bad("subscribe-retain-handling-3", "3.8.3.1", only5, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, topic, 0x31)
	}, malformedPkt, protocolErr),
	mosquittoDeviates(bad("no-local-on-shared-subscription", "[MQTT-3.8.3-4]", only5, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, "$share/g/"+topic, 0x05)
	}, malformedPkt, protocolErr), "Mosquitto 2.0.11 grants No Local on a shared subscription"),
	bad("subscription-identifier-zero", "3.8.2.1.2", only5, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, props(0x0b, 0x00), topic, 0x01)
	}, malformedPkt, protocolErr),
	bad("property-duplicated", "2.2.2.2 3.3.2.3.3", only5, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic, 1, props(0x02, 0, 0, 0, 9, 0x02, 0, 0, 0, 9), "x")
	}, malformedPkt, protocolErr),
	bad("property-not-allowed", "2.2.2.2 (Session Expiry in PUBLISH)", only5, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic, 1, props(0x11, 0, 0, 0, 9), "x")
	}, malformedPkt, protocolErr),
	bad("property-unknown", "2.2.2.2", only5, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic, 1, props(0x7f, 0), "x")
	}, malformedPkt, protocolErr),
	bad("property-length-beyond-packet", "2.2.2.1", only5, func(v packet.Version, topic string) []byte {
		return rawPublish(v, 0x02, topic, 1, []byte{0x20, 0x02, 0, 0, 0, 9}, "")
	}, malformedPkt),
	bad("subscribe-filter-invalid-utf8", "[MQTT-3.8.3-1] [MQTT-1.5.4-1] (3.1.1: [MQTT-3.8.3-1])", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, topic+"/\xc3", 0x01)
	}, malformedPkt),
	bad("subscribe-filter-nul", "[MQTT-4.7.3-2] [MQTT-1.5.4-2]", both, func(v packet.Version, topic string) []byte {
		return rawSubscribe(v, 0x82, 1, nil, topic+"/\x00", 0x01)
	}, malformedPkt),
	bad("unsubscribe-filter-invalid-utf8", "[MQTT-3.10.3-1] [MQTT-1.5.4-1]", both, func(v packet.Version, topic string) []byte {
		return rawUnsubscribe(v, 0xa2, 1, topic+"/\xff")
	}, malformedPkt),
	bad("puback-too-short", "3.4.2 (3.1.1: 3.4.2)", both, func(v packet.Version, _ string) []byte {
		return []byte{0x40, 0x01, 0x00}
	}, malformedPkt),
	mosquittoDeviates(bad("pingreq-with-body", "3.12 (3.1.1: 3.12)", both, func(v packet.Version, _ string) []byte {
		return []byte{0xc0, 0x01, 0x00}
	}, malformedPkt), "Mosquitto 2.0.11 answers a PINGREQ with a body"),
	bad("disconnect-reserved-flags", "[MQTT-2.1.3-1] (3.1.1: [MQTT-3.14.1-1])", both, func(v packet.Version, _ string) []byte {
		return []byte{0xe1, 0x00}
	}, malformedPkt),
	{
		// The stream ends inside a packet: the server closes the
		// connection; others go on.
		name: "truncated-stream", clause: "4.13 [MQTT-4.13.1-1] (3.1.1: 4.8)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			by := conn(t, tg, v)
			by.subscribe(1, topic)
			c := conn(t, tg, v)
			c.raw(frame(0x32, make([]byte, 100))[:20])
			c.nc.(*net.TCPConn).CloseWrite()
			c.closed()
			by.pub(topic, "marker", 1, false)
			by.until("marker")
		},
	},
	{
		name: "connect-property-duplicated", clause: "2.2.2.2 3.1.2.11", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			body := append(str("MQTT"), 5, 0x02, 0, 60)
			body = append(body, props(0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2)...)
			body = append(body, str(id(t))...)
			c.raw(frame(0x10, body))
			refused(t, c)
		},
	},
	{
		name: "connect-will-topic-wildcard", clause: "[MQTT-3.1.3-11] [MQTT-3.3.2-2] (3.1.1: [MQTT-3.1.3-10])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x04, 60, id(t), willPropsMarker, str("a/#"), str("x")))
			refused(t, c)
		},
	},
	{
		name: "connect-client-id-invalid-utf8", clause: "[MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02, 60, "a\xffb"))
			refused(t, c)
		},
	},
}
