package conformance

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestConnect(t *testing.T) { runCases(t, connectCases) }

// str is an MQTT UTF-8 string or binary field: two-byte length, bytes.
func str(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }

// rawConnect builds a CONNECT field by field, for the ones the codec
// refuses to encode. props is the property block (5.0), payload follows
// the client identifier.
func rawConnect(name string, level, flags byte, keepAlive uint16, clientID string, payload ...[]byte) []byte {
	var body []byte
	body = append(body, str(name)...)
	body = append(body, level, flags)
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, str(clientID)...)
	for _, p := range payload {
		if level == 5 && bytes.Equal(p, willPropsMarker) {
			body = append(body, 0)
			continue
		}
		body = append(body, p...)
	}
	return frame(0x10, body)
}

// willPropsMarker in rawConnect's payload stands for an empty Will
// Properties block at level 5 (nothing at 3.1.1).
var willPropsMarker = []byte{0xff, 0xfe}

// frame prefixes body with a fixed header of first byte b0.
func frame(b0 byte, body []byte) []byte {
	out := []byte{b0}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// refused checks a connection whose CONNECT must be refused: the server
// closes it, having sent at most a refusing CONNACK [MQTT-3.2.2-5]
// (5.0: [MQTT-3.2.2-7]) — never a success.
// The bytes are checked raw: a server that cannot parse the CONNECT may
// answer in either level's CONNACK layout.
func refused(t *testing.T, c *client) {
	t.Helper()
	got := c.rawUntilClose()
	switch {
	case len(got) == 0:
	case len(got) >= 4 && got[0] == 0x20 && got[2] == 0 && got[3] != 0:
	default:
		t.Errorf("got % x before close, want nothing or a refusing CONNACK", got)
	}
}

// closedWith checks that c is closed by the server with, at 5.0, at most
// a DISCONNECT carrying one of codes. Against edgegw, which promises it
// (issue: broker), the DISCONNECT is required [MQTT-4.13.1-1].
func closedWith(t *testing.T, tg *target, c *client, codes ...packet.ReasonCode) {
	t.Helper()
	got := c.closed()
	var sawDisconnect bool
	for _, p := range got {
		d, ok := p.(*packet.Disconnect)
		if !ok || c.v != packet.V5 {
			t.Fatalf("got %v before close, want nothing but a 5.0 DISCONNECT", types(got))
		}
		sawDisconnect = true
		if d.Props.HasSessionExpiry || d.Props.SessionExpiry != 0 {
			t.Errorf("server DISCONNECT carries Session Expiry Interval %d (3.14.2.2.2: not sent by the server)", d.Props.SessionExpiry)
		}
		if len(codes) > 0 && !slices.Contains(codes, d.Code) {
			t.Errorf("DISCONNECT code %v, want one of %v", d.Code, codes)
		}
	}
	if tg.strict && c.v == packet.V5 && len(codes) > 0 && !sawDisconnect {
		t.Errorf("closed without DISCONNECT, want DISCONNECT with one of %v [MQTT-4.13.1-1]", codes)
	}
}

var connectCases = []tcase{
	{
		name: "first-packet-not-connect", clause: "[MQTT-3.1.0-1]", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw([]byte{0xc0, 0x00}) // PINGREQ
			if got := c.closed(); len(got) != 0 {
				t.Errorf("got %v, want the connection closed without an answer", types(got))
			}
		},
	},
	{
		name: "second-connect", clause: "[MQTT-3.1.0-2]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			c.send(&packet.Connect{Version: v, ClientID: id(t), CleanStart: true, KeepAlive: 60})
			closedWith(t, tg, c, packet.ProtocolError)
		},
	},
	{
		name: "protocol-name", clause: "[MQTT-3.1.2-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTX", byte(v), 0x02, 60, id(t)))
			refused(t, c)
		},
	},
	{
		// 3.1.1: "The Server MUST respond to the CONNECT Packet with a
		// CONNACK return code 0x01 (unacceptable protocol level) and then
		// disconnect the Client if the Protocol Level is not supported".
		name: "protocol-level", clause: "[MQTT-3.1.2-2] (3.1.1)", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", 6, 0x02, 60, id(t)))
			if got := c.rawUntilClose(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x01}) {
				t.Errorf("got % x, want CONNACK 0x01 (20 02 00 01) then close", got)
			}
		},
	},
	{
		name: "reserved-connect-flag", clause: "[MQTT-3.1.2-3]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x03, 60, id(t)))
			refused(t, c)
		},
	},
	{
		name: "empty-client-id-persistent", clause: "[MQTT-3.1.3-8] (3.1.1)", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			ack := c.connect(&packet.Connect{KeepAlive: 60})
			if ack.Code != packet.ClientIDNotValid {
				t.Fatalf("CONNACK %v, want 0x02 identifier rejected", ack.Code)
			}
			if got := c.closed(); len(got) != 0 { // [MQTT-3.2.2-5] (3.1.1)
				t.Errorf("got %v after refusal, want close", types(got))
			}
		},
	},
	{
		name: "empty-client-id-clean", clause: "[MQTT-3.1.3-6] [MQTT-3.1.3-7] (3.1.1)", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			a, ackA := connectWith(t, tg, v, &packet.Connect{CleanStart: true, KeepAlive: 60})
			b, ackB := connectWith(t, tg, v, &packet.Connect{CleanStart: true, KeepAlive: 60})
			if ackA.SessionPresent || ackB.SessionPresent {
				t.Errorf("session present with clean session [MQTT-3.2.2-1]")
			}
			// Two clients with empty ids get distinct sessions: neither
			// takes the other over.
			a.ping()
			b.ping()
		},
	},
	{
		name: "assigned-client-id", clause: "[MQTT-3.1.3-6] [MQTT-3.2.2-16]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			a, ackA := connectWith(t, tg, v, &packet.Connect{KeepAlive: 60})
			b, ackB := connectWith(t, tg, v, &packet.Connect{KeepAlive: 60})
			if ackA.Props.AssignedClientID == "" || ackB.Props.AssignedClientID == "" {
				t.Fatalf("assigned ids %q, %q, want both set", ackA.Props.AssignedClientID, ackB.Props.AssignedClientID)
			}
			if ackA.Props.AssignedClientID == ackB.Props.AssignedClientID {
				t.Errorf("both clients assigned %q, want unique ids", ackA.Props.AssignedClientID)
			}
			a.ping()
			b.ping()
		},
	},
	{
		name: "will-qos-3", clause: "[MQTT-3.1.2-12] (3.1.1: [MQTT-3.1.2-14])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x04|0x18, 60, id(t), willPropsMarker, str("w/t"), str("x")))
			refused(t, c)
		},
	},
	{
		name: "will-qos-without-will-flag", clause: "[MQTT-3.1.2-11] (3.1.1: [MQTT-3.1.2-13])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x08, 60, id(t)))
			refused(t, c)
		},
	},
	{
		name: "will-retain-without-will-flag", clause: "[MQTT-3.1.2-13] (3.1.1: [MQTT-3.1.2-15])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x20, 60, id(t)))
			refused(t, c)
		},
	},
	{
		name: "password-without-user-name", clause: "[MQTT-3.1.2-22] (3.1.1)", vs: only3,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x40, 60, id(t), str("secret")))
			refused(t, c)
		},
	},
	{
		name: "user-name-flag-without-user-name", clause: "[MQTT-3.1.2-17] (3.1.1: [MQTT-3.1.2-19])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02|0x80, 60, id(t)))
			refused(t, c)
		},
	},
	{
		name: "pingreq", clause: "[MQTT-3.12.4-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			conn(t, tg, v).ping()
		},
	},
	{
		// A client silent for 1.5 keep alive periods is disconnected
		// and its will published. Keep alive 2 s: Mosquitto computes
		// 1.5 × keep alive in whole seconds.
		name: "keep-alive-timeout", clause: "[MQTT-3.1.2-22] [MQTT-3.1.2-8] (3.1.1: [MQTT-3.1.2-24] [MQTT-3.1.2-8])",
		edgegwOnly: "Mosquitto 2.0.11 checks keep alives only when its main loop wakes: with keep alive 2 s it closed after 5.8 to 8.2 s, not 3 s",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			w := conn(t, tg, v)
			w.subscribe(1, topic)
			c := dial(t, tg, v)
			start := time.Now()
			if ack := c.connect(&packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 2,
				Will: &packet.Will{Topic: topic, Payload: []byte("gone"), QoS: 1}}); ack.Code != packet.Success {
				t.Fatalf("CONNACK %v", ack.Code)
			}
			closedWith(t, tg, c, packet.KeepAliveTimeout)
			if d := time.Since(start); d < 2*time.Second || d > 6*time.Second {
				t.Errorf("closed after %v, want about 3 s (1.5 × keep alive 2 s)", d)
			}
			if p := w.recv(); string(p.Payload) != "gone" {
				t.Errorf("watcher got %q, want the will", p.Payload)
			}
		},
	},
	{
		name: "session-present", clause: "[MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] (3.1.1) [MQTT-3.2.2-2] [MQTT-3.2.2-3] (5.0)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			steps := []struct {
				clean bool
				want  bool
			}{
				{true, false},  // clean: never a session
				{false, false}, // first persistent connect: new session
				{false, true},  // resumed
				{true, false},  // clean discards it [MQTT-3.1.2-6] (3.1.1) / [MQTT-3.1.2-4]
				{false, false}, // and it is gone
				{false, true},
			}
			for i, s := range steps {
				cp := &packet.Connect{ClientID: cid, CleanStart: s.clean, KeepAlive: 60}
				// 5.0: a session outlives its connection by its expiry
				// interval, whatever Clean Start [MQTT-3.1.2-23].
				if v == packet.V5 && !s.clean {
					cp.Props.SessionExpiry = 60
				}
				c, ack := connectWith(t, tg, v, cp)
				if ack.SessionPresent != s.want {
					t.Errorf("step %d (clean %v): session present %v, want %v", i, s.clean, ack.SessionPresent, s.want)
				}
				c.disconnectWait()
			}
		},
	},
	{
		// A session that ends with its connection is gone for a CONNECT
		// sent right after the DISCONNECT, without waiting for the
		// server to close the connection.
		name: "reconnect-right-after-disconnect", clause: "[MQTT-3.1.2-23] 3.1.2.11.2 (3.1.1: [MQTT-3.1.2-6])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			for i := range 20 {
				c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, CleanStart: true, KeepAlive: 60})
				c.disconnect()
				c, ack := connectWith(t, tg, v, persistent(cid, v))
				if ack.SessionPresent {
					t.Fatalf("round %d: session present right after a session that ended with its connection", i)
				}
				c.disconnectWait()
			}
		},
	},
	{
		// 5.0: "If the Session Expiry Interval is absent the value 0 is
		// used. If it is set to 0, or is absent, the Session ends when the
		// Network Connection is closed" (3.1.2.11.2).
		name: "session-expiry-absent", clause: "[MQTT-3.1.2-23] 3.1.2.11.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, KeepAlive: 60})
			c.disconnectWait()
			_, ack := connectWith(t, tg, v, &packet.Connect{ClientID: cid, KeepAlive: 60})
			if ack.SessionPresent {
				t.Errorf("session present after a session with expiry 0 ended")
			}
		},
	},
	{
		name: "session-expiry", clause: "[MQTT-3.1.2-23] 3.1.2.11.2", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			cp := &packet.Connect{ClientID: cid, KeepAlive: 60}
			cp.Props.SessionExpiry = 1
			c, _ := connectWith(t, tg, v, cp)
			c.subscribe(1, topicOf(t))
			c.drop()
			conn(t, tg, v).quiet(3 * time.Second) // let the broker's clock run
			_, ack := connectWith(t, tg, v, &packet.Connect{ClientID: cid, KeepAlive: 60})
			if ack.SessionPresent {
				t.Errorf("session present 3 s after a session with expiry 1 s ended")
			}
		},
	},
	{
		name: "session-taken-over", clause: "[MQTT-3.1.4-3] (3.1.1: [MQTT-3.1.4-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			a, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, CleanStart: true, KeepAlive: 60})
			b, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, CleanStart: true, KeepAlive: 60})
			closedWith(t, tg, a, packet.SessionTakenOver)
			b.ping()
		},
	},
	{
		// An assigned client identifier names a session like any
		// other: reconnecting with it resumes the session.
		name: "assigned-client-id-resume", clause: "[MQTT-3.2.2-16] [MQTT-3.2.2-2]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c, ack := connectWith(t, tg, v, persistent("", v))
			cid := ack.Props.AssignedClientID
			if cid == "" {
				t.Fatalf("no assigned client identifier")
			}
			c.disconnectWait()
			_, ack = connectWith(t, tg, v, persistent(cid, v))
			if !ack.SessionPresent {
				t.Errorf("session of assigned id %q not resumed", cid)
			}
		},
	},
	{
		// CONNACK carries no Response Information unless requested, no
		// authentication properties without an Authentication Method,
		// and no assigned identifier when the client gave one.
		name: "connack-properties", clause: "[MQTT-3.1.2-28] 3.1.2.11.9 4.12 3.2.2.3.7", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			_, ack := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
			if p := ack.Props; p.ResponseInfo != "" || p.AuthMethod != "" || len(p.AuthData) != 0 || p.AssignedClientID != "" {
				t.Errorf("CONNACK properties %+v: want no Response Information, Authentication Method or Data, Assigned Client Identifier", p)
			}
		},
	},
	{
		// Taking over a connection whose session lasts only as long as
		// that connection: the session ends with it, nothing is resumed.
		name: "takeover-of-clean-session", clause: "[MQTT-3.1.2-6] (3.1.1) 3.1.2.11.2 [MQTT-3.1.4-3]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			cid := id(t)
			a, _ := connectWith(t, tg, v, &packet.Connect{ClientID: cid, CleanStart: true, KeepAlive: 60})
			a.subscribe(1, topicOf(t))
			_, ack := connectWith(t, tg, v, persistent(cid, v))
			if ack.SessionPresent {
				t.Errorf("session present: the taken-over connection's session was resumed")
			}
			a.closed()
		},
	},
	{
		// Repeated take-overs of a persistent session: each previous
		// connection is closed, the subscription carries on.
		name: "takeover-repeated", clause: "[MQTT-3.1.4-3] [MQTT-3.2.2-2] (3.1.1: [MQTT-3.1.4-2])",
		run: func(t *testing.T, tg *target, v packet.Version) {
			topic := topicOf(t)
			cid := id(t)
			prev, _ := connectWith(t, tg, v, persistent(cid, v))
			prev.subscribe(1, topic)
			for i := range 10 {
				c, ack := connectWith(t, tg, v, persistent(cid, v))
				if !ack.SessionPresent {
					t.Fatalf("take-over %d: session not present", i)
				}
				closedWith(t, tg, prev, packet.SessionTakenOver)
				prev = c
			}
			conn(t, tg, v).pub(topic, "x", 1, false)
			if p := prev.recv(); string(p.Payload) != "x" {
				t.Errorf("got %q, want x", p.Payload)
			}
		},
	},
}
