package packet

import "fmt"

// PropID is an MQTT 5.0 property identifier [MQTT-2.2.2.2].
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01 // byte
	PropMessageExpiry        PropID = 0x02 // four byte integer
	PropContentType          PropID = 0x03 // UTF-8 string
	PropResponseTopic        PropID = 0x08 // UTF-8 string
	PropCorrelationData      PropID = 0x09 // binary data
	PropSubscriptionID       PropID = 0x0B // variable byte integer
	PropSessionExpiry        PropID = 0x11 // four byte integer
	PropAssignedClientID     PropID = 0x12 // UTF-8 string
	PropServerKeepAlive      PropID = 0x13 // two byte integer
	PropAuthMethod           PropID = 0x15 // UTF-8 string
	PropAuthData             PropID = 0x16 // binary data
	PropRequestProblemInfo   PropID = 0x17 // byte
	PropWillDelay            PropID = 0x18 // four byte integer
	PropRequestResponseInfo  PropID = 0x19 // byte
	PropResponseInfo         PropID = 0x1A // UTF-8 string
	PropServerReference      PropID = 0x1C // UTF-8 string
	PropReasonString         PropID = 0x1F // UTF-8 string
	PropReceiveMaximum       PropID = 0x21 // two byte integer
	PropTopicAliasMaximum    PropID = 0x22 // two byte integer
	PropTopicAlias           PropID = 0x23 // two byte integer
	PropMaximumQoS           PropID = 0x24 // byte
	PropRetainAvailable      PropID = 0x25 // byte
	PropUser                 PropID = 0x26 // UTF-8 string pair
	PropMaximumPacketSize    PropID = 0x27 // four byte integer
	PropWildcardSubAvailable PropID = 0x28 // byte
	PropSubIDAvailable       PropID = 0x29 // byte
	PropSharedSubAvailable   PropID = 0x2A // byte
	maxPropID                       = 0x2A
)

// PropKind is the wire type of a property's value [MQTT-2.2.2.2].
type PropKind byte

// Property value kinds.
const (
	KindByte PropKind = iota + 1
	KindUint16
	KindUint32
	KindVarInt
	KindBinary
	KindString
	KindStringPair
)

// willProps is the pseudo packet type of the Will Properties in CONNECT;
// type 0 is reserved, so its bit is free.
const willProps Type = 0

type propInfo struct {
	name    string
	kind    PropKind
	packets uint16 // bit 1<<Type for each packet it may appear in; bit 0: will
	multi   bool   // may appear more than once
}

func bits(ts ...Type) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

var allPackets = bits(willProps, TypeConnect, TypeConnack, TypePublish, TypePuback, TypePubrec,
	TypePubrel, TypePubcomp, TypeSubscribe, TypeSuback, TypeUnsubscribe, TypeUnsuback,
	TypeDisconnect, TypeAuth)

var ackPackets = bits(TypeConnack, TypePuback, TypePubrec, TypePubrel, TypePubcomp, TypeSuback,
	TypeUnsuback, TypeDisconnect, TypeAuth)

// props is the table of [MQTT-2.2.2.2]: kind and the packets each property
// may appear in. Every property but User Property (and Subscription
// Identifier in PUBLISH) may appear at most once.
var props = [maxPropID + 1]propInfo{
	PropPayloadFormat:        {"Payload Format Indicator", KindByte, bits(TypePublish, willProps), false},
	PropMessageExpiry:        {"Message Expiry Interval", KindUint32, bits(TypePublish, willProps), false},
	PropContentType:          {"Content Type", KindString, bits(TypePublish, willProps), false},
	PropResponseTopic:        {"Response Topic", KindString, bits(TypePublish, willProps), false},
	PropCorrelationData:      {"Correlation Data", KindBinary, bits(TypePublish, willProps), false},
	PropSubscriptionID:       {"Subscription Identifier", KindVarInt, bits(TypePublish, TypeSubscribe), false},
	PropSessionExpiry:        {"Session Expiry Interval", KindUint32, bits(TypeConnect, TypeConnack, TypeDisconnect), false},
	PropAssignedClientID:     {"Assigned Client Identifier", KindString, bits(TypeConnack), false},
	PropServerKeepAlive:      {"Server Keep Alive", KindUint16, bits(TypeConnack), false},
	PropAuthMethod:           {"Authentication Method", KindString, bits(TypeConnect, TypeConnack, TypeAuth), false},
	PropAuthData:             {"Authentication Data", KindBinary, bits(TypeConnect, TypeConnack, TypeAuth), false},
	PropRequestProblemInfo:   {"Request Problem Information", KindByte, bits(TypeConnect), false},
	PropWillDelay:            {"Will Delay Interval", KindUint32, bits(willProps), false},
	PropRequestResponseInfo:  {"Request Response Information", KindByte, bits(TypeConnect), false},
	PropResponseInfo:         {"Response Information", KindString, bits(TypeConnack), false},
	PropServerReference:      {"Server Reference", KindString, bits(TypeConnack, TypeDisconnect), false},
	PropReasonString:         {"Reason String", KindString, ackPackets, false},
	PropReceiveMaximum:       {"Receive Maximum", KindUint16, bits(TypeConnect, TypeConnack), false},
	PropTopicAliasMaximum:    {"Topic Alias Maximum", KindUint16, bits(TypeConnect, TypeConnack), false},
	PropTopicAlias:           {"Topic Alias", KindUint16, bits(TypePublish), false},
	PropMaximumQoS:           {"Maximum QoS", KindByte, bits(TypeConnack), false},
	PropRetainAvailable:      {"Retain Available", KindByte, bits(TypeConnack), false},
	PropUser:                 {"User Property", KindStringPair, allPackets, true},
	PropMaximumPacketSize:    {"Maximum Packet Size", KindUint32, bits(TypeConnect, TypeConnack), false},
	PropWildcardSubAvailable: {"Wildcard Subscription Available", KindByte, bits(TypeConnack), false},
	PropSubIDAvailable:       {"Subscription Identifier Available", KindByte, bits(TypeConnack), false},
	PropSharedSubAvailable:   {"Shared Subscription Available", KindByte, bits(TypeConnack), false},
}

func (id PropID) String() string {
	if id <= maxPropID && props[id].name != "" {
		return props[id].name
	}
	return fmt.Sprintf("PropID(0x%02X)", byte(id))
}

// Kind returns the wire type of the property, 0 for an unknown identifier.
func (id PropID) Kind() PropKind {
	if id <= maxPropID {
		return props[id].kind
	}
	return 0
}

// AllowedIn reports whether property id may appear in a packet of type t
// [MQTT-2.2.2.2]. Will Properties are those allowed with t == 0.
func (id PropID) AllowedIn(t Type) bool {
	return id <= maxPropID && props[id].packets&(1<<t) != 0
}

// UserProperty is one User Property, a name/value pair; the order of a
// packet's user properties is kept [MQTT-3.3.2-18].
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5.0 properties of a packet. The zero value has
// none. A string or binary property is present when non-empty; an integer
// property whose absence differs from its zero value has a Has flag
// beside it; for the others zero means absent (their default, or a value
// the spec forbids). Which properties a packet may carry is checked on
// decode and on encode [MQTT-2.2.2.2]. Properties is a plain value with no
// map, so packets stay allocation-free on the hot path.
type Properties struct {
	PayloadFormat    byte   // 0x01: 0 unspecified bytes, 1 UTF-8 [MQTT-3.3.2-4]
	MessageExpiry    uint32 // 0x02: seconds, when HasMessageExpiry
	HasMessageExpiry bool
	ContentType      string   // 0x03
	ResponseTopic    string   // 0x08
	CorrelationData  []byte   // 0x09
	SubscriptionIDs  []uint32 // 0x0B: one in SUBSCRIBE, any number in PUBLISH
	SessionExpiry    uint32   // 0x11: seconds; absent means 0
	AssignedClientID string   // 0x12

	ServerKeepAlive    uint16 // 0x13: seconds, when HasServerKeepAlive
	HasServerKeepAlive bool

	AuthMethod string // 0x15
	AuthData   []byte // 0x16

	RequestProblemInfo    byte // 0x17: 0 or 1 when HasRequestProblemInfo; default 1
	HasRequestProblemInfo bool

	WillDelay           uint32 // 0x18: seconds; absent means 0
	RequestResponseInfo byte   // 0x19: 0 or 1; absent means 0
	ResponseInfo        string // 0x1A
	ServerReference     string // 0x1C
	ReasonString        string // 0x1F
	ReceiveMaximum      uint16 // 0x21: absent (0) means 65,535; 0 on the wire is a protocol error
	TopicAliasMaximum   uint16 // 0x22: absent means 0
	TopicAlias          uint16 // 0x23: 0 is absent; 0 on the wire is invalid [MQTT-3.3.2-8]

	MaximumQoS    byte // 0x24: 0 or 1 when HasMaximumQoS; default 2
	HasMaximumQoS bool

	RetainAvailable    byte // 0x25: 0 or 1 when HasRetainAvailable; default 1
	HasRetainAvailable bool

	User              []UserProperty // 0x26, in order
	MaximumPacketSize uint32         // 0x27: absent (0) means no limit; 0 on the wire is a protocol error

	WildcardSubAvailable    byte // 0x28: 0 or 1 when HasWildcardSubAvailable; default 1
	HasWildcardSubAvailable bool
	SubIDAvailable          byte // 0x29: 0 or 1 when HasSubIDAvailable; default 1
	HasSubIDAvailable       bool
	SharedSubAvailable      byte // 0x2A: 0 or 1 when HasSharedSubAvailable; default 1
	HasSharedSubAvailable   bool
}
