package conformance

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestAccess runs the cases of the broker's trust boundary (issue 13 rows
// 14 and 15, issue 15's $-topics) that have a spec clause or a Mosquitto
// behaviour to compare with.
func TestAccess(t *testing.T) { runCases(t, accessCases) }

var accessCases = []tcase{
	{
		// 3.1.1 and 5.0: "If the Server does not receive a CONNECT packet
		// [that matches the format] ... close the Network Connection
		// without sending a CONNACK"; a protocol name that is not MQTT's
		// is not MQTT at all.
		name: "protocol-name-no-connack", clause: "[MQTT-3.1.2-1] [MQTT-3.1.4-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTX", byte(v), 0x02, 60, id(t)))
			if got := c.rawUntilClose(); len(got) != 0 {
				t.Errorf("got % x, want the connection closed without CONNACK", got)
			}
		},
	},
	{
		// The server must not send a packet larger than the client's
		// Maximum Packet Size; a CONNACK that does not fit leaves only
		// closing the connection.
		name: "connack-larger-than-maximum-packet-size", clause: "[MQTT-3.1.2-24]", vs: only5,
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.send(&packet.Connect{Version: v, ClientID: id(t), CleanStart: true, KeepAlive: 60,
				Props: packet.Properties{MaximumPacketSize: 2}})
			if got := c.rawUntilClose(); len(got) != 0 {
				t.Errorf("got % x, want the connection closed without CONNACK", got)
			}
		},
	},
	{
		// Control characters SHOULD NOT be in a UTF-8 string; a receiver
		// may refuse them, as Mosquitto does in a topic name.
		name: "control-character-in-topic", clause: "[MQTT-1.5.4] (non-normative: U+0001..U+001F, U+007F..U+009F)",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			c.send(&packet.Publish{Topic: topicOf(t) + "/\x07", Payload: []byte("x")})
			closedWith(t, tg, c, packet.TopicNameInvalid, packet.MalformedPacket)
		},
	},
	{
		name: "control-character-in-client-id", clause: "[MQTT-1.5.4] [MQTT-3.1.3-5]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := dial(t, tg, v)
			c.raw(rawConnect("MQTT", byte(v), 0x02, 60, id(t)+"\x1b"))
			refused(t, c)
		},
	},
	{
		// A $-topic other than $SYS can be published (AWS IoT's shadow
		// topics); leading wildcards do not match it.
		name: "dollar-topic-publish", clause: "[MQTT-4.7.2-1]",
		run: func(t *testing.T, tg *target, v packet.Version) {
			name := "$aws/things/" + strings.ReplaceAll(topicOf(t), "/", "-") + "/shadow/update"
			all := conn(t, tg, v)
			all.subscribe(1, "#")
			shadow := conn(t, tg, v)
			shadow.subscribe(1, name)
			pub := conn(t, tg, v)
			pub.pub(name, "reported", 1, false)
			if p := shadow.recv(); p.Topic != name || string(p.Payload) != "reported" {
				t.Errorf("got %s %q, want %s", p.Topic, p.Payload, name)
			}
			marker := topicOf(t)
			pub.pub(marker, "marker", 1, false)
			for _, p := range all.until("marker") {
				if strings.HasPrefix(p.Topic, "$") {
					t.Errorf("# got %s", p.Topic)
				}
			}
		},
	},
	{
		// A server DISCONNECT while the client still sends: the client
		// reads the reason code and then the end of the stream, not a
		// reset (the server shuts down its writing side and drains).
		name: "disconnect-readable-while-sending", clause: "[MQTT-4.13.1-1] [MQTT-3.14.4-1]", vs: only5,
		edgegwOnly: "Mosquitto 2.0.11 closes at once; a client still sending may get a reset before the DISCONNECT",
		run: func(t *testing.T, tg *target, v packet.Version) {
			c := conn(t, tg, v)
			b, _ := packet.Append(nil, &packet.Connect{Version: v, ClientID: id(t)}, v)
			b = append(b, bytes.Repeat([]byte{0xC0, 0x00}, 8<<10)...)
			c.raw(b)
			var got []packet.Packet
			for {
				p, err := c.read(waitTimeout)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Errorf("read after %v: %v, want EOF", types(got), err)
					}
					break
				}
				got = append(got, p)
			}
			if len(got) != 1 || got[0].Type() != packet.TypeDisconnect {
				t.Errorf("got %v, want DISCONNECT", types(got))
			}
		},
	},
}
