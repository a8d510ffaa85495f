package packet

import "bytes"

// bs builds bytes from ints (one byte each), strings and byte slices, so
// that the table reads like the wire.
func bs(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = append(b, byte(p))
		case rune:
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("bs: bad part")
		}
	}
	return b
}

var payload200 = bytes.Repeat([]byte{'x'}, 200)

// tcase is one byte-level case: raw bytes ↔ packet at a protocol level.
// It drives the encode tests, the decode tests and the fuzz seeds.
type tcase struct {
	name string
	v    Version
	raw  []byte
	p    Packet
	spec string
	// decodeOnly: raw is a valid but non-canonical form; Append writes
	// another. encodeOnly: p holds what the level cannot carry, so raw
	// decodes to something else.
	decodeOnly, encodeOnly bool
}

var tpackets = []tcase{
	// CONNECT [MQTT-3.1]
	{name: "connect 3.1.1 minimal", v: V311, spec: "MQTT-3.1.2",
		raw: bs(0x10, 14, 0, 4, "MQTT", 4, 0x02, 0, 60, 0, 2, "c1"),
		p:   &Connect{Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "c1"}},
	{name: "connect 3.1.1 will user password", v: V311, spec: "MQTT-3.1.2.3",
		raw: bs(0x10, 35, 0, 4, "MQTT", 4, 0xEE, 0, 30, 0, 3, "cid", 0, 3, "w/t", 0, 3, "bye",
			0, 4, "user", 0, 2, "pw"),
		p: &Connect{Version: V311, CleanStart: true, KeepAlive: 30, ClientID: "cid",
			Will:         &Will{Topic: "w/t", Payload: []byte("bye"), QoS: 1, Retain: true},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("pw")}},
	{name: "connect 3.1.1 empty client id", v: V311, spec: "MQTT-3.1.3-6",
		raw: bs(0x10, 12, 0, 4, "MQTT", 4, 0x02, 0, 0, 0, 0),
		p:   &Connect{Version: V311, CleanStart: true}},
	{name: "connect 3.1 MQIsdp", v: V31, spec: "MQTT 3.1 §3.1",
		raw: bs(0x10, 16, 0, 6, "MQIsdp", 3, 0x02, 0, 60, 0, 2, "c1"),
		p:   &Connect{Version: V31, CleanStart: true, KeepAlive: 60, ClientID: "c1"}},
	{name: "connect 5.0 properties", v: V5, spec: "MQTT-3.1.2.11",
		raw: bs(0x10, 23, 0, 4, "MQTT", 5, 0x02, 0, 30, 8, 0x11, 0, 0, 0x0E, 0x10, 0x21, 0, 10, 0, 2, "gw"),
		p: &Connect{Version: V5, CleanStart: true, KeepAlive: 30, ClientID: "gw",
			Props: Properties{SessionExpiry: 3600, HasSessionExpiry: true, ReceiveMaximum: 10}}},
	{name: "connect 5.0 will properties, password without user name", v: V5, spec: "MQTT-3.1.3.2",
		raw: bs(0x10, 31, 0, 4, "MQTT", 5, 0x44, 0, 0, 0, 0, 0,
			7, 0x01, 1, 0x18, 0, 0, 0, 5, 0, 1, "t", 0, 2, "hi", 0, 1, "x"),
		p: &Connect{Version: V5, Will: &Will{Topic: "t", Payload: []byte("hi"),
			Props: Properties{PayloadFormat: 1, WillDelay: 5}}, PasswordFlag: true, Password: []byte("x")}},
	{name: "connect 5.0 every connect property", v: V5, spec: "MQTT-3.1.2.11",
		raw: bs(0x10, 56, 0, 4, "MQTT", 5, 0x80, 0, 10,
			39,
			0x11, 0, 0, 0, 0, // an explicit session expiry 0 is kept [MQTT-3.1.2-23]
			0x15, 0, 5, "SCRAM", 0x16, 0, 2, 1, 2, 0x17, 0, 0x19, 1,
			0x21, 0xFF, 0xFF, 0x22, 0, 5, 0x26, 0, 1, "a", 0, 0, 0x27, 0, 0, 0x10, 0,
			0, 1, "c", 0, 1, "u"),
		p: &Connect{Version: V5, KeepAlive: 10, ClientID: "c", UsernameFlag: true, Username: "u",
			Props: Properties{HasSessionExpiry: true, AuthMethod: "SCRAM", AuthData: []byte{1, 2},
				RequestProblemInfo: 0, HasRequestProblemInfo: true, RequestResponseInfo: 1,
				ReceiveMaximum: 65535, TopicAliasMaximum: 5, User: []UserProperty{{"a", ""}},
				MaximumPacketSize: 4096}}},
	{name: "connect 5.0 every connect property canonical", v: V5, spec: "MQTT-3.1.2.11",
		raw: bs(0x10, 51, 0, 4, "MQTT", 5, 0x80, 0, 10,
			34,
			0x15, 0, 5, "SCRAM", 0x16, 0, 2, 1, 2, 0x17, 0, 0x19, 1,
			0x21, 0xFF, 0xFF, 0x22, 0, 5, 0x26, 0, 1, "a", 0, 0, 0x27, 0, 0, 0x10, 0,
			0, 1, "c", 0, 1, "u"),
		p: &Connect{Version: V5, KeepAlive: 10, ClientID: "c", UsernameFlag: true, Username: "u",
			Props: Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2},
				RequestProblemInfo: 0, HasRequestProblemInfo: true, RequestResponseInfo: 1,
				ReceiveMaximum: 65535, TopicAliasMaximum: 5, User: []UserProperty{{"a", ""}},
				MaximumPacketSize: 4096}}},

	// CONNACK [MQTT-3.2]
	{name: "connack 3.1.1 session present", v: V311, spec: "MQTT-3.2.2.2",
		raw: bs(0x20, 2, 1, 0), p: &Connack{SessionPresent: true}},
	{name: "connack 3.1.1 not authorized", v: V311, spec: "MQTT-3.2.2.3",
		raw: bs(0x20, 2, 0, 5), p: &Connack{Code: NotAuthorized}},
	{name: "connack 3.1.1 server busy sent as unavailable", v: V311, spec: "MQTT-3.2.2.3",
		raw: bs(0x20, 2, 0, 3), p: &Connack{Code: ServerBusy}, encodeOnly: true},
	{name: "connack 5.0 properties", v: V5, spec: "MQTT-3.2.2.3",
		raw: bs(0x20, 19, 0, 0, 16, 0x12, 0, 3, "abc", 0x13, 0, 60, 0x22, 0, 10, 0x24, 1, 0x25, 0),
		p: &Connack{Props: Properties{AssignedClientID: "abc", ServerKeepAlive: 60, HasServerKeepAlive: true,
			TopicAliasMaximum: 10, MaximumQoS: 1, HasMaximumQoS: true, RetainAvailable: 0, HasRetainAvailable: true}}},
	{name: "connack 5.0 every other property", v: V5, spec: "MQTT-3.2.2.3",
		raw: bs(0x20, 45, 0, 0x9C, 42,
			0x11, 0, 0, 0, 9, 0x15, 0, 1, "m", 0x16, 0, 1, 7, 0x1A, 0, 2, "ri", 0x1C, 0, 2, "sr",
			0x1F, 0, 2, "rs", 0x21, 0, 9, 0x27, 0, 1, 0, 0, 0x28, 0, 0x29, 1, 0x2A, 0),
		p: &Connack{Code: UseAnotherServer, Props: Properties{SessionExpiry: 9, HasSessionExpiry: true, AuthMethod: "m", AuthData: []byte{7},
			ResponseInfo: "ri", ServerReference: "sr", ReasonString: "rs", ReceiveMaximum: 9,
			MaximumPacketSize: 65536, HasWildcardSubAvailable: true, SubIDAvailable: 1, HasSubIDAvailable: true,
			HasSharedSubAvailable: true}}},
	{name: "connack 5.0 bad user name or password", v: V5, spec: "MQTT-3.2.2.2",
		raw: bs(0x20, 3, 0, 0x86, 0), p: &Connack{Code: BadUsernameOrPassword}},

	// PUBLISH [MQTT-3.3]
	{name: "publish 3.1.1 qos 0", v: V311, spec: "MQTT-3.3.1",
		raw: bs(0x30, 10, 0, 3, "a/b", "hello"), p: &Publish{Topic: "a/b", Payload: []byte("hello")}},
	{name: "publish 3.1.1 qos 1 dup retain", v: V311, spec: "MQTT-3.3.1.1",
		raw: bs(0x3B, 8, 0, 3, "a/b", 0, 7, "x"),
		p:   &Publish{Topic: "a/b", Payload: []byte("x"), QoS: 1, Dup: true, Retain: true, PacketID: 7}},
	{name: "publish 3.1.1 qos 2 empty payload", v: V311, spec: "MQTT-3.3.3",
		raw: bs(0x34, 7, 0, 3, "a/b", 0xFF, 0xFF),
		p:   &Publish{Topic: "a/b", QoS: 2, PacketID: 65535}},
	{name: "publish 3.1 qos 1", v: V31, spec: "MQTT 3.1 §3.3",
		raw: bs(0x32, 8, 0, 3, "a/b", 0, 1, "x"),
		p:   &Publish{Topic: "a/b", Payload: []byte("x"), QoS: 1, PacketID: 1}},
	{name: "publish 3.1.1 two-byte remaining length", v: V311, spec: "MQTT-1.5.5",
		raw: bs(0x30, 0xCD, 0x01, 0, 3, "a/b", payload200), p: &Publish{Topic: "a/b", Payload: payload200}},
	{name: "publish 3.1.1 UTF-8 topic", v: V311, spec: "MQTT-1.5.4",
		raw: bs(0x30, 8, 0, 6, "ä/€"), p: &Publish{Topic: "ä/€"}},
	{name: "publish 5.0 no properties", v: V5, spec: "MQTT-3.3.2.3",
		raw: bs(0x30, 7, 0, 3, "a/b", 0, "h"), p: &Publish{Topic: "a/b", Payload: []byte("h")}},
	{name: "publish 5.0 every publish property", v: V5, spec: "MQTT-3.3.2.3",
		raw: bs(0x32, 57, 0, 3, "t/1", 0, 1, 47,
			0x01, 1, 0x02, 0, 0, 0, 60, 0x03, 0, 4, "json", 0x08, 0, 3, "r/1", 0x09, 0, 2, "cd",
			0x0B, 5, 0x0B, 0x80, 0x01, 0x23, 0, 2, 0x26, 0, 1, "k", 0, 1, "v", 0x26, 0, 1, "k", 0, 1, "w",
			"{}"),
		p: &Publish{Topic: "t/1", Payload: []byte("{}"), QoS: 1, PacketID: 1, Props: Properties{
			PayloadFormat: 1, MessageExpiry: 60, HasMessageExpiry: true, ContentType: "json",
			ResponseTopic: "r/1", CorrelationData: []byte("cd"), SubscriptionIDs: []uint32{5, 128},
			TopicAlias: 2, User: []UserProperty{{"k", "v"}, {"k", "w"}}}}},
	{name: "publish 5.0 topic alias only", v: V5, spec: "MQTT-3.3.2-12",
		raw: bs(0x30, 7, 0, 0, 3, 0x23, 0, 2, "x"),
		p:   &Publish{Payload: []byte("x"), Props: Properties{TopicAlias: 2}}},
	{name: "publish 5.0 message expiry 0", v: V5, spec: "MQTT-3.3.2-5",
		raw: bs(0x31, 11, 0, 3, "a/b", 5, 0x02, 0, 0, 0, 0),
		p:   &Publish{Topic: "a/b", Retain: true, Props: Properties{HasMessageExpiry: true}}},

	// PUBACK, PUBREC, PUBREL, PUBCOMP [MQTT-3.4..3.7]
	{name: "puback 3.1.1", v: V311, spec: "MQTT-3.4.2", raw: bs(0x40, 2, 0, 7), p: &Puback{PacketID: 7}},
	{name: "puback 3.1.1 drops the reason code", v: V311, spec: "MQTT-3.4.2",
		raw: bs(0x40, 2, 0, 7), p: &Puback{PacketID: 7, Code: NoMatchingSubscribers}, encodeOnly: true},
	{name: "puback 5.0 success short form", v: V5, spec: "MQTT-3.4.2.1", raw: bs(0x40, 2, 0, 7), p: &Puback{PacketID: 7}},
	{name: "puback 5.0 reason code", v: V5, spec: "MQTT-3.4.2.1",
		raw: bs(0x40, 3, 0, 7, 0x10), p: &Puback{PacketID: 7, Code: NoMatchingSubscribers}},
	{name: "puback 5.0 reason string", v: V5, spec: "MQTT-3.4.2.2",
		raw: bs(0x40, 11, 0, 7, 0x87, 7, 0x1F, 0, 4, "deny"),
		p:   &Puback{PacketID: 7, Code: NotAuthorized, Props: Properties{ReasonString: "deny"}}},
	{name: "puback 5.0 explicit success, empty properties", v: V5, spec: "MQTT-3.4.2.2.1",
		raw: bs(0x40, 4, 0, 7, 0, 0), p: &Puback{PacketID: 7}, decodeOnly: true},
	{name: "pubrec 3.1.1", v: V311, spec: "MQTT-3.5.2", raw: bs(0x50, 2, 0, 8), p: &Pubrec{PacketID: 8}},
	{name: "pubrec 5.0 error", v: V5, spec: "MQTT-3.5.2.1",
		raw: bs(0x50, 3, 0, 8, 0x80), p: &Pubrec{PacketID: 8, Code: UnspecifiedError}},
	{name: "pubrel 3.1.1", v: V311, spec: "MQTT-3.6.1-1", raw: bs(0x62, 2, 0, 9), p: &Pubrel{PacketID: 9}},
	{name: "pubrel 5.0 not found", v: V5, spec: "MQTT-3.6.2.1",
		raw: bs(0x62, 3, 0, 9, 0x92), p: &Pubrel{PacketID: 9, Code: PacketIDNotFound}},
	{name: "pubcomp 3.1.1", v: V311, spec: "MQTT-3.7.2", raw: bs(0x70, 2, 0, 10), p: &Pubcomp{PacketID: 10}},
	{name: "pubcomp 5.0 user property", v: V5, spec: "MQTT-3.7.2.2",
		raw: bs(0x70, 11, 0, 10, 0, 7, 0x26, 0, 1, "a", 0, 1, "b"),
		p:   &Pubcomp{PacketID: 10, Props: Properties{User: []UserProperty{{"a", "b"}}}}},

	// SUBSCRIBE, SUBACK [MQTT-3.8, 3.9]
	{name: "subscribe 3.1.1", v: V311, spec: "MQTT-3.8.3",
		raw: bs(0x82, 14, 0, 1, 0, 3, "a/b", 1, 0, 3, "c/#", 2),
		p:   &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/#", QoS: 2}}}},
	{name: "subscribe 5.0 options and identifier", v: V5, spec: "MQTT-3.8.3.1",
		raw: bs(0x82, 26, 0, 2, 2, 0x0B, 7, 0, 3, "a/+", 0x2D, 0, 12, "$share/g/x/y", 0),
		p: &Subscribe{PacketID: 2, Props: Properties{SubscriptionIDs: []uint32{7}}, Subscriptions: []Subscription{
			{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g/x/y"}}}},
	{name: "suback 3.1.1", v: V311, spec: "MQTT-3.9.3",
		raw: bs(0x90, 5, 0, 1, 1, 2, 0x80), p: &Suback{PacketID: 1, Codes: []ReasonCode{1, 2, 0x80}}},
	{name: "suback 3.1.1 sends every failure as 0x80", v: V311, spec: "MQTT-3.9.3",
		raw: bs(0x90, 3, 0, 1, 0x80), p: &Suback{PacketID: 1, Codes: []ReasonCode{NotAuthorized}}, encodeOnly: true},
	{name: "suback 5.0", v: V5, spec: "MQTT-3.9.3",
		raw: bs(0x90, 8, 0, 2, 0, 0, 1, 2, 0x87, 0xA2),
		p:   &Suback{PacketID: 2, Codes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, NotAuthorized, WildcardSubscriptionsNotSupported}}},

	// UNSUBSCRIBE, UNSUBACK [MQTT-3.10, 3.11]
	{name: "unsubscribe 3.1.1", v: V311, spec: "MQTT-3.10.3",
		raw: bs(0xA2, 10, 0, 3, 0, 3, "a/b", 0, 1, "#"), p: &Unsubscribe{PacketID: 3, Filters: []string{"a/b", "#"}}},
	{name: "unsubscribe 5.0", v: V5, spec: "MQTT-3.10.2.1",
		raw: bs(0xA2, 8, 0, 4, 0, 0, 3, "a/b"), p: &Unsubscribe{PacketID: 4, Filters: []string{"a/b"}}},
	{name: "unsuback 3.1.1", v: V311, spec: "MQTT-3.11.2", raw: bs(0xB0, 2, 0, 3), p: &Unsuback{PacketID: 3}},
	{name: "unsuback 5.0", v: V5, spec: "MQTT-3.11.3",
		raw: bs(0xB0, 5, 0, 4, 0, 0, 0x11), p: &Unsuback{PacketID: 4, Codes: []ReasonCode{Success, NoSubscriptionExisted}}},

	// PINGREQ, PINGRESP [MQTT-3.12, 3.13]
	{name: "pingreq 3.1.1", v: V311, spec: "MQTT-3.12", raw: bs(0xC0, 0), p: &Pingreq{}},
	{name: "pingreq 5.0", v: V5, spec: "MQTT-3.12", raw: bs(0xC0, 0), p: &Pingreq{}},
	{name: "pingresp 3.1.1", v: V311, spec: "MQTT-3.13", raw: bs(0xD0, 0), p: &Pingresp{}},
	{name: "pingresp 5.0", v: V5, spec: "MQTT-3.13", raw: bs(0xD0, 0), p: &Pingresp{}},

	// DISCONNECT [MQTT-3.14]
	{name: "disconnect 3.1.1", v: V311, spec: "MQTT-3.14", raw: bs(0xE0, 0), p: &Disconnect{}},
	{name: "disconnect 5.0 normal", v: V5, spec: "MQTT-3.14.2.1", raw: bs(0xE0, 0), p: &Disconnect{}},
	{name: "disconnect 5.0 with will", v: V5, spec: "MQTT-3.14.2.1",
		raw: bs(0xE0, 1, 4), p: &Disconnect{Code: DisconnectWithWill}},
	{name: "disconnect 5.0 properties", v: V5, spec: "MQTT-3.14.2.2",
		raw: bs(0xE0, 12, 4, 10, 0x11, 0, 0, 0, 10, 0x1F, 0, 2, "by"),
		p:   &Disconnect{Code: DisconnectWithWill, Props: Properties{SessionExpiry: 10, HasSessionExpiry: true, ReasonString: "by"}}},
	{name: "disconnect 5.0 session expiry 0 ends the session", v: V5, spec: "MQTT-3.14.2.2.2",
		raw: bs(0xE0, 7, 0, 5, 0x11, 0, 0, 0, 0),
		p:   &Disconnect{Props: Properties{HasSessionExpiry: true}}},
	{name: "connack 5.0 session expiry granted as 0", v: V5, spec: "MQTT-3.2.2.3.2",
		raw: bs(0x20, 8, 0, 0, 5, 0x11, 0, 0, 0, 0),
		p:   &Connack{Props: Properties{HasSessionExpiry: true}}},
	{name: "disconnect 5.0 server moved", v: V5, spec: "MQTT-3.14.2.2.5",
		raw: bs(0xE0, 6, 0x9D, 4, 0x1C, 0, 1, "s"),
		p:   &Disconnect{Code: ServerMoved, Props: Properties{ServerReference: "s"}}},
	{name: "disconnect 5.0 explicit code and empty properties", v: V5, spec: "MQTT-3.14.2.2.1",
		raw: bs(0xE0, 2, 0, 0), p: &Disconnect{}, decodeOnly: true},

	// AUTH [MQTT-3.15]
	{name: "auth 5.0 success", v: V5, spec: "MQTT-3.15.2.1", raw: bs(0xF0, 0), p: &Auth{}},
	{name: "auth 5.0 continue", v: V5, spec: "MQTT-3.15.2.2",
		raw: bs(0xF0, 15, 0x18, 13, 0x15, 0, 5, "SCRAM", 0x16, 0, 2, 1, 2),
		p:   &Auth{Code: ContinueAuthentication, Props: Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2}}}},
}

// badcase is malformed or forbidden input and the reason code a receiver
// sends back.
type badcase struct {
	name string
	v    Version
	raw  []byte
	max  int // maximum packet size, 0 for none
	code ReasonCode
	spec string
}

var tmalformed = []badcase{
	// Fixed header [MQTT-2.1, 2.2, 1.5.5]
	{"reserved type 0", V311, bs(0x00, 0), 0, MalformedPacket, "MQTT-2.1.2"},
	{"auth in 3.1.1", V311, bs(0xF0, 0), 0, MalformedPacket, "MQTT-2.1.2"},
	{"pubrel flags 0", V311, bs(0x60, 2, 0, 1), 0, MalformedPacket, "MQTT-2.2.2-2"},
	{"subscribe flags 0", V5, bs(0x80, 7, 0, 1, 0, 0, 1, "a", 0), 0, MalformedPacket, "MQTT-2.2.2-2"},
	{"unsubscribe flags 3", V311, bs(0xA3, 5, 0, 1, 0, 1, "a"), 0, MalformedPacket, "MQTT-2.2.2-2"},
	{"pingreq flags 1", V5, bs(0xC1, 0), 0, MalformedPacket, "MQTT-2.2.2-2"},
	{"connect flags 1", 0, bs(0x11, 12, 0, 4, "MQTT", 4, 2, 0, 0, 0, 0), 0, MalformedPacket, "MQTT-2.2.2-2"},
	{"publish qos 3", V311, bs(0x36, 7, 0, 3, "a/b", 0, 1), 0, MalformedPacket, "MQTT-3.3.1-4"},
	{"publish dup with qos 0", V311, bs(0x38, 5, 0, 3, "a/b"), 0, MalformedPacket, "MQTT-3.3.1-2"},
	{"remaining length 5 bytes", V311, bs(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), 0, MalformedPacket, "MQTT-1.5.5-1"},
	{"remaining length not minimal", V311, bs(0x30, 0x85, 0x00, 0, 3, "a/b"), 0, MalformedPacket, "MQTT-1.5.5-1"},
	{"over maximum packet size", V5, bs(0x30, 10, 0, 3, "a/b", "hello"), 11, PacketTooLarge, "MQTT-3.1.2-24"},
	{"hostile length over maximum", V5, bs(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 1 << 20, PacketTooLarge, "MQTT-3.1.2-24"},
	{"first packet not connect", 0, bs(0xC0, 0), 0, ProtocolError, "MQTT-3.1.0-1"},

	// UTF-8 strings [MQTT-1.5.4]
	{"topic invalid utf-8", V311, bs(0x30, 5, 0, 3, 'a', 0xFF, 'b'), 0, MalformedPacket, "MQTT-1.5.4-1"},
	{"topic utf-16 surrogate", V311, bs(0x30, 5, 0, 3, 0xED, 0xA0, 0x80), 0, MalformedPacket, "MQTT-1.5.4-1"},
	{"topic overlong encoding", V311, bs(0x30, 4, 0, 2, 0xC0, 0xAF), 0, MalformedPacket, "MQTT-1.5.4-1"},
	{"topic U+0000", V5, bs(0x30, 6, 0, 3, 'a', 0, 'b', 0), 0, MalformedPacket, "MQTT-1.5.4-2"},
	{"string past end", V311, bs(0x30, 3, 0, 5, 'a'), 0, MalformedPacket, "MQTT-1.5.4"},
	{"user property invalid utf-8", V5, bs(0x30, 11, 0, 1, "a", 7, 0x26, 0, 1, 0xFF, 0, 1, "v"), 0, MalformedPacket, "MQTT-1.5.4-1"},

	// CONNECT [MQTT-3.1]
	{"connect reserved flag", 0, bs(0x10, 14, 0, 4, "MQTT", 4, 0x03, 0, 60, 0, 2, "c1"), 0, MalformedPacket, "MQTT-3.1.2-3"},
	{"connect will qos without will", 0, bs(0x10, 14, 0, 4, "MQTT", 4, 0x0A, 0, 60, 0, 2, "c1"), 0, MalformedPacket, "MQTT-3.1.2-11"},
	{"connect will retain without will", 0, bs(0x10, 14, 0, 4, "MQTT", 4, 0x22, 0, 60, 0, 2, "c1"), 0, MalformedPacket, "MQTT-3.1.2-13"},
	{"connect will qos 3", 0, bs(0x10, 14, 0, 4, "MQTT", 4, 0x1E, 0, 60, 0, 2, "c1"), 0, MalformedPacket, "MQTT-3.1.2-12"},
	{"connect 3.1.1 password without user name", 0, bs(0x10, 17, 0, 4, "MQTT", 4, 0x42, 0, 60, 0, 2, "c1", 0, 1, "p"), 0, MalformedPacket, "MQTT-3.1.2-22"},
	{"connect protocol level 6", 0, bs(0x10, 14, 0, 4, "MQTT", 6, 0x02, 0, 60, 0, 2, "c1"), 0, UnsupportedProtocolVersion, "MQTT-3.1.2-2"},
	{"connect protocol name", 0, bs(0x10, 14, 0, 4, "MQTX", 4, 0x02, 0, 60, 0, 2, "c1"), 0, MalformedPacket, "MQTT-3.1.2-1"},
	{"connect MQIsdp level 4", 0, bs(0x10, 16, 0, 6, "MQIsdp", 4, 0x02, 0, 60, 0, 2, "c1"), 0, UnsupportedProtocolVersion, "MQTT-3.1.2-1"},
	{"connect trailing bytes", 0, bs(0x10, 15, 0, 4, "MQTT", 4, 0x02, 0, 60, 0, 2, "c1", 0), 0, MalformedPacket, "MQTT-3.1.3"},
	{"connect truncated", 0, bs(0x10, 11, 0, 4, "MQTT", 4, 0x02, 0, 60, 0), 0, MalformedPacket, "MQTT-3.1.3"},
	{"connect will topic wildcard", 0, bs(0x10, 17, 0, 4, "MQTT", 4, 0x06, 0, 60, 0, 0, 0, 1, "#", 0, 0), 0, TopicNameInvalid, "MQTT-3.1.3-?"},
	{"connect 5.0 receive maximum 0", 0, bs(0x10, 16, 0, 4, "MQTT", 5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 0), 0, ProtocolError, "MQTT-3.1.2.11.3"},
	{"connect 5.0 maximum packet size 0", 0, bs(0x10, 18, 0, 4, "MQTT", 5, 0x02, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 0), 0, ProtocolError, "MQTT-3.1.2.11.4"},
	{"connect 5.0 request problem info 2", 0, bs(0x10, 15, 0, 4, "MQTT", 5, 0x02, 0, 60, 2, 0x17, 2, 0, 0), 0, ProtocolError, "MQTT-3.1.2.11.7"},
	{"connect 5.0 topic alias not allowed", 0, bs(0x10, 16, 0, 4, "MQTT", 5, 0x02, 0, 60, 3, 0x23, 0, 1, 0, 0), 0, ProtocolError, "MQTT-2.2.2.2"},
	{"connect 5.0 session expiry twice", 0, bs(0x10, 23, 0, 4, "MQTT", 5, 0x02, 0, 60, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1, 0, 0), 0, ProtocolError, "MQTT-3.1.2.11.2"},
	{"connect 5.0 session expiry in will properties", 0, bs(0x10, 24, 0, 4, "MQTT", 5, 0x06, 0, 60, 0, 0, 0, 5, 0x11, 0, 0, 0, 1, 0, 1, "t", 0, 0), 0, ProtocolError, "MQTT-3.1.3.2"},

	// CONNACK [MQTT-3.2]
	{"connack reserved flags", V311, bs(0x20, 2, 2, 0), 0, MalformedPacket, "MQTT-3.2.2-1"},
	{"connack 3.1.1 return code 6", V311, bs(0x20, 2, 0, 6), 0, MalformedPacket, "MQTT-3.2.2.3"},
	{"connack session present with refusal", V311, bs(0x20, 2, 1, 5), 0, ProtocolError, "MQTT-3.2.2-6"},
	{"connack 5.0 code not for connack", V5, bs(0x20, 3, 0, 0x10, 0), 0, ProtocolError, "MQTT-3.2.2.2"},
	{"connack 5.0 maximum qos 2", V5, bs(0x20, 5, 0, 0, 2, 0x24, 2), 0, ProtocolError, "MQTT-3.2.2.3.4"},

	// PUBLISH [MQTT-3.3]
	{"publish packet id 0", V311, bs(0x32, 7, 0, 3, "a/b", 0, 0), 0, ProtocolError, "MQTT-2.2.1-3"},
	{"publish no packet id", V311, bs(0x32, 5, 0, 3, "a/b"), 0, MalformedPacket, "MQTT-3.3.2.2"},
	{"publish wildcard +", V311, bs(0x30, 5, 0, 3, "a/+"), 0, TopicNameInvalid, "MQTT-3.3.2-2"},
	{"publish wildcard #", V5, bs(0x30, 4, 0, 1, "#", 0), 0, TopicNameInvalid, "MQTT-3.3.2-2"},
	{"publish 3.1.1 empty topic", V311, bs(0x30, 2, 0, 0), 0, TopicNameInvalid, "MQTT-4.7.3-1"},
	{"publish 5.0 empty topic without alias", V5, bs(0x30, 3, 0, 0, 0), 0, ProtocolError, "MQTT-3.3.4"},
	{"publish 5.0 property not allowed", V5, bs(0x30, 11, 0, 3, "a/b", 5, 0x11, 0, 0, 0, 1), 0, ProtocolError, "MQTT-2.2.2.2"},
	{"publish 5.0 duplicate property", V5, bs(0x30, 10, 0, 3, "a/b", 4, 0x01, 1, 0x01, 1), 0, ProtocolError, "MQTT-2.2.2.2"},
	{"publish 5.0 unknown property", V5, bs(0x30, 8, 0, 3, "a/b", 2, 0x05, 0), 0, MalformedPacket, "MQTT-2.2.2.2"},
	{"publish 5.0 property length past end", V5, bs(0x30, 7, 0, 3, "a/b", 9, 0), 0, MalformedPacket, "MQTT-2.2.2.1"},
	{"publish 5.0 property value truncated", V5, bs(0x30, 8, 0, 3, "a/b", 2, 0x02, 0), 0, MalformedPacket, "MQTT-2.2.2.2"},
	{"publish 5.0 topic alias 0", V5, bs(0x30, 9, 0, 3, "a/b", 3, 0x23, 0, 0), 0, TopicAliasInvalid, "MQTT-3.3.2-8"},
	{"publish 5.0 payload format 2", V5, bs(0x30, 8, 0, 3, "a/b", 2, 0x01, 2), 0, ProtocolError, "MQTT-3.3.2.3.2"},
	{"publish 5.0 subscription id 0", V5, bs(0x30, 8, 0, 3, "a/b", 2, 0x0B, 0), 0, ProtocolError, "MQTT-3.3.2.3.8"},
	{"publish 5.0 response topic wildcard", V5, bs(0x30, 12, 0, 3, "a/b", 6, 0x08, 0, 3, "a/#"), 0, ProtocolError, "MQTT-3.3.2-14"},
	{"publish 5.0 missing property length", V5, bs(0x30, 5, 0, 3, "a/b"), 0, MalformedPacket, "MQTT-2.2.2.1"},

	// Acknowledgements [MQTT-3.4..3.7]
	{"puback 3.1.1 long", V311, bs(0x40, 3, 0, 1, 0), 0, MalformedPacket, "MQTT-3.4.2"},
	{"puback short", V311, bs(0x40, 1, 0), 0, MalformedPacket, "MQTT-3.4.2"},
	{"puback 5.0 code not for puback", V5, bs(0x40, 3, 0, 1, 0x81), 0, ProtocolError, "MQTT-3.4.2.1"},
	{"pubrel 5.0 code not for pubrel", V5, bs(0x62, 3, 0, 1, 0x10), 0, ProtocolError, "MQTT-3.6.2.1"},
	{"pubcomp 5.0 session expiry", V5, bs(0x70, 9, 0, 1, 0, 5, 0x11, 0, 0, 0, 1), 0, ProtocolError, "MQTT-2.2.2.2"},

	// SUBSCRIBE [MQTT-3.8]
	{"subscribe no filter", V311, bs(0x82, 2, 0, 1), 0, ProtocolError, "MQTT-3.8.3-3"},
	{"subscribe 5.0 no filter", V5, bs(0x82, 3, 0, 1, 0), 0, ProtocolError, "MQTT-3.8.3-2"},
	{"subscribe packet id 0", V311, bs(0x82, 8, 0, 0, 0, 3, "a/b", 0), 0, ProtocolError, "MQTT-2.2.1-3"},
	{"subscribe empty filter", V311, bs(0x82, 5, 0, 1, 0, 0, 0), 0, ProtocolError, "MQTT-4.7.3-1"},
	{"subscribe 3.1.1 reserved option bits", V311, bs(0x82, 8, 0, 1, 0, 3, "a/b", 4), 0, MalformedPacket, "MQTT-3-8.3-4"},
	{"subscribe qos 3", V311, bs(0x82, 8, 0, 1, 0, 3, "a/b", 3), 0, MalformedPacket, "MQTT-3-8.3-4"},
	{"subscribe missing options", V311, bs(0x82, 7, 0, 1, 0, 3, "a/b"), 0, MalformedPacket, "MQTT-3.8.3"},
	{"subscribe 5.0 reserved option bits", V5, bs(0x82, 9, 0, 1, 0, 0, 3, "a/b", 0x40), 0, MalformedPacket, "MQTT-3.8.3-5"},
	{"subscribe 5.0 retain handling 3", V5, bs(0x82, 9, 0, 1, 0, 0, 3, "a/b", 0x30), 0, ProtocolError, "MQTT-3.8.3.1"},
	{"subscribe 5.0 no local on shared", V5, bs(0x82, 16, 0, 1, 0, 0, 10, "$share/g/a", 0x04), 0, ProtocolError, "MQTT-3.8.3-4"},
	{"subscribe 5.0 two subscription ids", V5, bs(0x82, 13, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 3, "a/b", 0), 0, ProtocolError, "MQTT-3.8.2.1.2"},
	{"subscribe 5.0 subscription id 5 bytes", V5, bs(0x82, 15, 0, 1, 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 3, "a/b", 0), 0, MalformedPacket, "MQTT-1.5.5-1"},

	// SUBACK, UNSUBSCRIBE, UNSUBACK [MQTT-3.9..3.11]
	{"suback 3.1.1 code 3", V311, bs(0x90, 3, 0, 1, 3), 0, MalformedPacket, "MQTT-3.9.3-2"},
	{"suback no code", V311, bs(0x90, 2, 0, 1), 0, ProtocolError, "MQTT-3.9.3"},
	{"suback 5.0 code not for suback", V5, bs(0x90, 4, 0, 1, 0, 0x10), 0, ProtocolError, "MQTT-3.9.3"},
	{"unsubscribe no filter", V311, bs(0xA2, 2, 0, 1), 0, ProtocolError, "MQTT-3.10.3-2"},
	{"unsubscribe packet id 0", V311, bs(0xA2, 5, 0, 0, 0, 1, "a"), 0, ProtocolError, "MQTT-2.2.1-3"},
	{"unsuback 3.1.1 long", V311, bs(0xB0, 3, 0, 1, 0), 0, MalformedPacket, "MQTT-3.11.2"},
	{"unsuback 5.0 no code", V5, bs(0xB0, 3, 0, 1, 0), 0, ProtocolError, "MQTT-3.11.3"},

	// PINGREQ, PINGRESP, DISCONNECT, AUTH [MQTT-3.12..3.15]
	{"pingreq with body", V311, bs(0xC0, 1, 0), 0, MalformedPacket, "MQTT-3.12"},
	{"pingresp with body", V5, bs(0xD0, 1, 0), 0, MalformedPacket, "MQTT-3.13"},
	{"disconnect 3.1.1 with body", V311, bs(0xE0, 1, 0), 0, MalformedPacket, "MQTT-3.14"},
	{"disconnect 5.0 code not for disconnect", V5, bs(0xE0, 1, 0x01), 0, ProtocolError, "MQTT-3.14.2.1"},
	{"disconnect 5.0 topic alias", V5, bs(0xE0, 5, 0, 3, 0x23, 0, 1), 0, ProtocolError, "MQTT-2.2.2.2"},
	{"auth 5.0 code not for auth", V5, bs(0xF0, 1, 0x80), 0, ProtocolError, "MQTT-3.15.2.1"},
	{"auth 5.0 trailing bytes", V5, bs(0xF0, 3, 0x18, 0, 0), 0, MalformedPacket, "MQTT-3.15.2"},
}
