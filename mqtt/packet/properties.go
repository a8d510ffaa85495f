package packet

import (
	"fmt"
	"strings"
)

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
	// Strings and binary data, present when non-empty; lists.
	ContentType      string         // 0x03
	ResponseTopic    string         // 0x08: a topic name, no wildcards [MQTT-3.3.2-14]
	CorrelationData  []byte         // 0x09
	SubscriptionIDs  []uint32       // 0x0B: one in SUBSCRIBE, any number in PUBLISH; 1..268,435,455
	AssignedClientID string         // 0x12
	AuthMethod       string         // 0x15
	AuthData         []byte         // 0x16: only with AuthMethod
	ResponseInfo     string         // 0x1A
	ServerReference  string         // 0x1C
	ReasonString     string         // 0x1F
	User             []UserProperty // 0x26, in order

	// Integers; the fields are grouped by size to keep packets small.
	MessageExpiry     uint32 // 0x02: seconds, when HasMessageExpiry
	SessionExpiry     uint32 // 0x11: seconds, when HasSessionExpiry or non-zero
	WillDelay         uint32 // 0x18: seconds; absent means 0
	MaximumPacketSize uint32 // 0x27: absent (0) means no limit; 0 on the wire is a protocol error
	ServerKeepAlive   uint16 // 0x13: seconds, when HasServerKeepAlive
	ReceiveMaximum    uint16 // 0x21: absent (0) means 65,535; 0 on the wire is a protocol error
	TopicAliasMaximum uint16 // 0x22: absent means 0
	TopicAlias        uint16 // 0x23: 0 is absent; 0 on the wire is invalid [MQTT-3.3.2-8]

	PayloadFormat        byte // 0x01: 0 unspecified bytes, 1 UTF-8 [MQTT-3.3.2-4]
	RequestProblemInfo   byte // 0x17: 0 or 1 when HasRequestProblemInfo; default 1
	RequestResponseInfo  byte // 0x19: 0 or 1; absent means 0
	MaximumQoS           byte // 0x24: 0 or 1 when HasMaximumQoS; default 2
	RetainAvailable      byte // 0x25: 0 or 1 when HasRetainAvailable; default 1
	WildcardSubAvailable byte // 0x28: 0 or 1 when HasWildcardSubAvailable; default 1
	SubIDAvailable       byte // 0x29: 0 or 1 when HasSubIDAvailable; default 1
	SharedSubAvailable   byte // 0x2A: 0 or 1 when HasSharedSubAvailable; default 1

	// Presence of the integer properties whose absence differs from 0.
	HasMessageExpiry bool
	// HasSessionExpiry marks an explicit Session Expiry Interval, 0 included:
	// in DISCONNECT an explicit 0 ends the session while absence keeps the
	// CONNECT's interval [MQTT-3.14.2.2.2], and in CONNACK the server may
	// grant 0 [MQTT-3.2.2.3.2]. Decoding sets it whenever the property is present.
	HasSessionExpiry        bool
	HasServerKeepAlive      bool
	HasRequestProblemInfo   bool
	HasMaximumQoS           bool
	HasRetainAvailable      bool
	HasWildcardSubAvailable bool
	HasSubIDAvailable       bool
	HasSharedSubAvailable   bool
}

// allowedMask[t] has bit id set for each property allowed in packet type t.
var allowedMask = func() (m [16]uint64) {
	for id, info := range props {
		for t := range m {
			if info.packets&(1<<t) != 0 {
				m[t] |= 1 << id
			}
		}
	}
	return m
}()

func bit(ok bool, id PropID) uint64 {
	if ok {
		return 1 << id
	}
	return 0
}

// mask returns a bit 1<<id for each property present in p.
func (p *Properties) mask() uint64 {
	return bit(p.PayloadFormat != 0, PropPayloadFormat) |
		bit(p.HasMessageExpiry, PropMessageExpiry) |
		bit(p.ContentType != "", PropContentType) |
		bit(p.ResponseTopic != "", PropResponseTopic) |
		bit(len(p.CorrelationData) != 0, PropCorrelationData) |
		bit(len(p.SubscriptionIDs) != 0, PropSubscriptionID) |
		bit(p.SessionExpiry != 0 || p.HasSessionExpiry, PropSessionExpiry) |
		bit(p.AssignedClientID != "", PropAssignedClientID) |
		bit(p.HasServerKeepAlive, PropServerKeepAlive) |
		bit(p.AuthMethod != "", PropAuthMethod) |
		bit(len(p.AuthData) != 0, PropAuthData) |
		bit(p.HasRequestProblemInfo, PropRequestProblemInfo) |
		bit(p.WillDelay != 0, PropWillDelay) |
		bit(p.RequestResponseInfo != 0, PropRequestResponseInfo) |
		bit(p.ResponseInfo != "", PropResponseInfo) |
		bit(p.ServerReference != "", PropServerReference) |
		bit(p.ReasonString != "", PropReasonString) |
		bit(p.ReceiveMaximum != 0, PropReceiveMaximum) |
		bit(p.TopicAliasMaximum != 0, PropTopicAliasMaximum) |
		bit(p.TopicAlias != 0, PropTopicAlias) |
		bit(p.HasMaximumQoS, PropMaximumQoS) |
		bit(p.HasRetainAvailable, PropRetainAvailable) |
		bit(len(p.User) != 0, PropUser) |
		bit(p.MaximumPacketSize != 0, PropMaximumPacketSize) |
		bit(p.HasWildcardSubAvailable, PropWildcardSubAvailable) |
		bit(p.HasSubIDAvailable, PropSubIDAvailable) |
		bit(p.HasSharedSubAvailable, PropSharedSubAvailable)
}

// Present reports whether property id is set in p.
func (p *Properties) Present(id PropID) bool { return id <= maxPropID && p.mask()&(1<<id) != 0 }

// Empty reports whether p has no property.
func (p *Properties) Empty() bool {
	// ORs instead of mask's 27 tests: this is on every packet's path.
	return len(p.ContentType)|len(p.ResponseTopic)|len(p.CorrelationData)|len(p.SubscriptionIDs)|
		len(p.AssignedClientID)|len(p.AuthMethod)|len(p.AuthData)|len(p.ResponseInfo)|
		len(p.ServerReference)|len(p.ReasonString)|len(p.User) == 0 &&
		p.SessionExpiry|p.WillDelay|p.MaximumPacketSize == 0 &&
		p.ReceiveMaximum|p.TopicAliasMaximum|p.TopicAlias == 0 &&
		p.PayloadFormat|p.RequestResponseInfo == 0 &&
		!(p.HasMessageExpiry || p.HasSessionExpiry || p.HasServerKeepAlive || p.HasRequestProblemInfo || p.HasMaximumQoS ||
			p.HasRetainAvailable || p.HasWildcardSubAvailable || p.HasSubIDAvailable || p.HasSharedSubAvailable)
}

// size returns the length of the encoded properties, without the
// property length field, for a packet of type t (willProps for a will).
// It refuses properties the packet may not carry and values that cannot be
// encoded.
func (p *Properties) size(t Type) (int, error) {
	if p.Empty() {
		return 0, nil
	}
	m := p.mask()
	if bad := m &^ allowedMask[t]; bad != 0 {
		for id := PropID(0); id <= maxPropID; id++ {
			if bad&(1<<id) != 0 {
				return 0, protocolErr(t, fmt.Sprintf("property %v not allowed [MQTT-2.2.2.2]", id))
			}
		}
	}
	if len(p.AuthData) != 0 && p.AuthMethod == "" {
		return 0, protocolErr(t, "Authentication Data without Authentication Method")
	}
	if len(p.SubscriptionIDs) > 1 && t != TypePublish {
		return 0, protocolErr(t, "more than one Subscription Identifier [MQTT-3.8.2.1.2]")
	}
	n := 0
	if p.PayloadFormat != 0 {
		n += 2
	}
	if p.HasMessageExpiry {
		n += 5
	}
	for _, s := range [...]string{p.ContentType, p.ResponseTopic, p.AssignedClientID, p.AuthMethod,
		p.ResponseInfo, p.ServerReference, p.ReasonString} {
		if s != "" {
			if err := checkString(t, "property", s); err != nil {
				return 0, err
			}
			n += 3 + len(s)
		}
	}
	for _, b := range [...][]byte{p.CorrelationData, p.AuthData} {
		if len(b) != 0 {
			if err := checkBinary(t, "property", b); err != nil {
				return 0, err
			}
			n += 3 + len(b)
		}
	}
	for _, id := range p.SubscriptionIDs {
		if id == 0 || id > MaxRemaining {
			return 0, protocolErr(t, "Subscription Identifier out of range 1..268,435,455 [MQTT-3.8.2.1.2]")
		}
		n += 1 + vbiLen(id)
	}
	if p.SessionExpiry != 0 || p.HasSessionExpiry {
		n += 5
	}
	if p.HasServerKeepAlive {
		n += 3
	}
	if p.HasRequestProblemInfo {
		n += 2
	}
	if p.WillDelay != 0 {
		n += 5
	}
	if p.RequestResponseInfo != 0 {
		n += 2
	}
	if p.ReceiveMaximum != 0 {
		n += 3
	}
	if p.TopicAliasMaximum != 0 {
		n += 3
	}
	if p.TopicAlias != 0 {
		n += 3
	}
	if p.HasMaximumQoS {
		n += 2
	}
	if p.HasRetainAvailable {
		n += 2
	}
	for _, u := range p.User {
		if err := checkString(t, "user property", u.Key); err != nil {
			return 0, err
		}
		if err := checkString(t, "user property", u.Value); err != nil {
			return 0, err
		}
		n += 5 + len(u.Key) + len(u.Value)
	}
	if p.MaximumPacketSize != 0 {
		n += 5
	}
	if p.HasWildcardSubAvailable {
		n += 2
	}
	if p.HasSubIDAvailable {
		n += 2
	}
	if p.HasSharedSubAvailable {
		n += 2
	}
	return n, nil
}

// appendProps appends the property length and the properties, n being
// what size returned. Properties go in identifier order.
func (p *Properties) appendTo(dst []byte, n int) []byte {
	dst = appendVBI(dst, uint32(n))
	if n == 0 {
		return dst
	}
	if p.PayloadFormat != 0 {
		dst = append(dst, byte(PropPayloadFormat), p.PayloadFormat)
	}
	if p.HasMessageExpiry {
		dst = appendUint32(append(dst, byte(PropMessageExpiry)), p.MessageExpiry)
	}
	if p.ContentType != "" {
		dst = appendString(append(dst, byte(PropContentType)), p.ContentType)
	}
	if p.ResponseTopic != "" {
		dst = appendString(append(dst, byte(PropResponseTopic)), p.ResponseTopic)
	}
	if len(p.CorrelationData) != 0 {
		dst = appendBinary(append(dst, byte(PropCorrelationData)), p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		dst = appendVBI(append(dst, byte(PropSubscriptionID)), id)
	}
	if p.SessionExpiry != 0 || p.HasSessionExpiry {
		dst = appendUint32(append(dst, byte(PropSessionExpiry)), p.SessionExpiry)
	}
	if p.AssignedClientID != "" {
		dst = appendString(append(dst, byte(PropAssignedClientID)), p.AssignedClientID)
	}
	if p.HasServerKeepAlive {
		dst = appendUint16(append(dst, byte(PropServerKeepAlive)), p.ServerKeepAlive)
	}
	if p.AuthMethod != "" {
		dst = appendString(append(dst, byte(PropAuthMethod)), p.AuthMethod)
	}
	if len(p.AuthData) != 0 {
		dst = appendBinary(append(dst, byte(PropAuthData)), p.AuthData)
	}
	if p.HasRequestProblemInfo {
		dst = append(dst, byte(PropRequestProblemInfo), p.RequestProblemInfo)
	}
	if p.WillDelay != 0 {
		dst = appendUint32(append(dst, byte(PropWillDelay)), p.WillDelay)
	}
	if p.RequestResponseInfo != 0 {
		dst = append(dst, byte(PropRequestResponseInfo), p.RequestResponseInfo)
	}
	if p.ResponseInfo != "" {
		dst = appendString(append(dst, byte(PropResponseInfo)), p.ResponseInfo)
	}
	if p.ServerReference != "" {
		dst = appendString(append(dst, byte(PropServerReference)), p.ServerReference)
	}
	if p.ReasonString != "" {
		dst = appendString(append(dst, byte(PropReasonString)), p.ReasonString)
	}
	if p.ReceiveMaximum != 0 {
		dst = appendUint16(append(dst, byte(PropReceiveMaximum)), p.ReceiveMaximum)
	}
	if p.TopicAliasMaximum != 0 {
		dst = appendUint16(append(dst, byte(PropTopicAliasMaximum)), p.TopicAliasMaximum)
	}
	if p.TopicAlias != 0 {
		dst = appendUint16(append(dst, byte(PropTopicAlias)), p.TopicAlias)
	}
	if p.HasMaximumQoS {
		dst = append(dst, byte(PropMaximumQoS), p.MaximumQoS)
	}
	if p.HasRetainAvailable {
		dst = append(dst, byte(PropRetainAvailable), p.RetainAvailable)
	}
	for _, u := range p.User {
		dst = appendString(appendString(append(dst, byte(PropUser)), u.Key), u.Value)
	}
	if p.MaximumPacketSize != 0 {
		dst = appendUint32(append(dst, byte(PropMaximumPacketSize)), p.MaximumPacketSize)
	}
	if p.HasWildcardSubAvailable {
		dst = append(dst, byte(PropWildcardSubAvailable), p.WildcardSubAvailable)
	}
	if p.HasSubIDAvailable {
		dst = append(dst, byte(PropSubIDAvailable), p.SubIDAvailable)
	}
	if p.HasSharedSubAvailable {
		dst = append(dst, byte(PropSharedSubAvailable), p.SharedSubAvailable)
	}
	return dst
}

// decode reads a property length and the properties of a packet of type
// t (willProps for Will Properties) [MQTT-2.2.2].
func (p *Properties) decode(d *decoder, t Type) error {
	n, err := d.vbi("property length")
	if err != nil {
		return err
	}
	if int(n) > len(d.b) {
		return malformed(d.t, "property length past the end of the packet [MQTT-2.2.2.1]")
	}
	pd := decoder{b: d.b[:n], alias: d.alias, t: d.t}
	d.b = d.b[n:]
	var seen uint64
	for len(pd.b) > 0 {
		// The identifier is a variable byte integer; every defined one
		// fits in one byte [MQTT-2.2.2.2].
		n, err := pd.vbi("property identifier")
		if err != nil {
			return err
		}
		if n > maxPropID || props[n].kind == 0 {
			return malformed(d.t, fmt.Sprintf("unknown property identifier %#x [MQTT-2.2.2.2]", n))
		}
		id := PropID(n)
		if !id.AllowedIn(t) {
			where := ""
			if t == willProps {
				where = " in Will Properties"
			}
			return protocolErr(d.t, fmt.Sprintf("property %v not allowed%s [MQTT-2.2.2.2]", id, where))
		}
		if seen&(1<<id) != 0 && !props[id].multi && (id != PropSubscriptionID || t != TypePublish) {
			return protocolErr(d.t, fmt.Sprintf("property %v more than once [MQTT-2.2.2.2]", id))
		}
		seen |= 1 << id
		if err := p.decodeOne(&pd, id); err != nil {
			return err
		}
	}
	if seen&(1<<PropAuthData) != 0 && seen&(1<<PropAuthMethod) == 0 {
		// [MQTT-3.1.2.11.10], [MQTT-3.2.2.3.18], [MQTT-3.15.2.2.3]
		return protocolErr(d.t, "Authentication Data without Authentication Method")
	}
	return nil
}

func (p *Properties) decodeOne(d *decoder, id PropID) error {
	var err error
	name := props[id].name
	bool01 := func(b byte, err error) (byte, error) {
		if err == nil && b > 1 {
			err = protocolErr(d.t, fmt.Sprintf("%s %d, want 0 or 1", name, b))
		}
		return b, err
	}
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat, err = bool01(d.byte(name))
	case PropMessageExpiry:
		p.MessageExpiry, err = d.uint32(name)
		p.HasMessageExpiry = true
	case PropContentType:
		p.ContentType, err = d.string(name)
	case PropResponseTopic:
		p.ResponseTopic, err = d.string(name)
		if err == nil && strings.ContainsAny(p.ResponseTopic, "+#") {
			// A Topic Name, so no wildcards [MQTT-3.3.2-14].
			err = protocolErr(d.t, "Response Topic contains a wildcard [MQTT-3.3.2-14]")
		}
	case PropCorrelationData:
		p.CorrelationData, err = d.binary(name)
	case PropSubscriptionID:
		var n uint32
		n, err = d.vbi(name)
		if err == nil && n == 0 {
			err = protocolErr(d.t, "Subscription Identifier 0 [MQTT-3.8.2.1.2]")
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, n)
	case PropSessionExpiry:
		p.SessionExpiry, err = d.uint32(name)
		p.HasSessionExpiry = true
	case PropAssignedClientID:
		p.AssignedClientID, err = d.string(name)
	case PropServerKeepAlive:
		p.ServerKeepAlive, err = d.uint16(name)
		p.HasServerKeepAlive = true
	case PropAuthMethod:
		p.AuthMethod, err = d.string(name)
	case PropAuthData:
		p.AuthData, err = d.binary(name)
	case PropRequestProblemInfo:
		p.RequestProblemInfo, err = bool01(d.byte(name))
		p.HasRequestProblemInfo = true
	case PropWillDelay:
		p.WillDelay, err = d.uint32(name)
	case PropRequestResponseInfo:
		p.RequestResponseInfo, err = bool01(d.byte(name))
	case PropResponseInfo:
		p.ResponseInfo, err = d.string(name)
	case PropServerReference:
		p.ServerReference, err = d.string(name)
	case PropReasonString:
		p.ReasonString, err = d.string(name)
	case PropReceiveMaximum:
		p.ReceiveMaximum, err = d.uint16(name)
		if err == nil && p.ReceiveMaximum == 0 {
			err = protocolErr(d.t, "Receive Maximum 0 [MQTT-3.1.2.11.3]")
		}
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum, err = d.uint16(name)
	case PropTopicAlias:
		p.TopicAlias, err = d.uint16(name)
		if err == nil && p.TopicAlias == 0 {
			err = reasonErr(TopicAliasInvalid, d.t, "Topic Alias 0 [MQTT-3.3.2-8]")
		}
	case PropMaximumQoS:
		p.MaximumQoS, err = bool01(d.byte(name))
		p.HasMaximumQoS = true
	case PropRetainAvailable:
		p.RetainAvailable, err = bool01(d.byte(name))
		p.HasRetainAvailable = true
	case PropUser:
		var u UserProperty
		if u.Key, err = d.string(name); err == nil {
			u.Value, err = d.string(name)
		}
		p.User = append(p.User, u)
	case PropMaximumPacketSize:
		p.MaximumPacketSize, err = d.uint32(name)
		if err == nil && p.MaximumPacketSize == 0 {
			err = protocolErr(d.t, "Maximum Packet Size 0 [MQTT-3.1.2.11.4]")
		}
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable, err = bool01(d.byte(name))
		p.HasWildcardSubAvailable = true
	case PropSubIDAvailable:
		p.SubIDAvailable, err = bool01(d.byte(name))
		p.HasSubIDAvailable = true
	case PropSharedSubAvailable:
		p.SharedSubAvailable, err = bool01(d.byte(name))
		p.HasSharedSubAvailable = true
	}
	return err
}

// PropertiesOf returns a pointer to p's properties, or nil for PINGREQ and
// PINGRESP, which have none. A CONNECT's Will Properties are in its Will.
func PropertiesOf(p Packet) *Properties {
	switch p := p.(type) {
	case *Connect:
		return &p.Props
	case *Connack:
		return &p.Props
	case *Publish:
		return &p.Props
	case *Puback:
		return &p.Props
	case *Pubrec:
		return &p.Props
	case *Pubrel:
		return &p.Props
	case *Pubcomp:
		return &p.Props
	case *Subscribe:
		return &p.Props
	case *Suback:
		return &p.Props
	case *Unsubscribe:
		return &p.Props
	case *Unsuback:
		return &p.Props
	case *Disconnect:
		return &p.Props
	case *Auth:
		return &p.Props
	}
	return nil
}
