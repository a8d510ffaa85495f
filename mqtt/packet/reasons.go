package packet

import (
	"errors"
	"fmt"
)

// ReasonCode is an MQTT 5.0 reason code [MQTT-2.4]. 3.1.1 CONNACK return
// codes and SUBACK return codes are mapped onto the same values on decode
// and back on encode (see Connack).
type ReasonCode byte

// Reason codes [MQTT-2.4]. Some values have several names depending on
// the packet; the aliases below keep call sites readable.
const (
	Success                           ReasonCode = 0x00
	NormalDisconnection               ReasonCode = 0x00
	GrantedQoS0                       ReasonCode = 0x00
	GrantedQoS1                       ReasonCode = 0x01
	GrantedQoS2                       ReasonCode = 0x02
	DisconnectWithWill                ReasonCode = 0x04
	NoMatchingSubscribers             ReasonCode = 0x10
	NoSubscriptionExisted             ReasonCode = 0x11
	ContinueAuthentication            ReasonCode = 0x18
	ReAuthenticate                    ReasonCode = 0x19
	UnspecifiedError                  ReasonCode = 0x80
	MalformedPacket                   ReasonCode = 0x81
	ProtocolError                     ReasonCode = 0x82
	ImplementationSpecificError       ReasonCode = 0x83
	UnsupportedProtocolVersion        ReasonCode = 0x84
	ClientIDNotValid                  ReasonCode = 0x85
	BadUsernameOrPassword             ReasonCode = 0x86
	NotAuthorized                     ReasonCode = 0x87
	ServerUnavailable                 ReasonCode = 0x88
	ServerBusy                        ReasonCode = 0x89
	Banned                            ReasonCode = 0x8A
	ServerShuttingDown                ReasonCode = 0x8B
	BadAuthenticationMethod           ReasonCode = 0x8C
	KeepAliveTimeout                  ReasonCode = 0x8D
	SessionTakenOver                  ReasonCode = 0x8E
	TopicFilterInvalid                ReasonCode = 0x8F
	TopicNameInvalid                  ReasonCode = 0x90
	PacketIDInUse                     ReasonCode = 0x91
	PacketIDNotFound                  ReasonCode = 0x92
	ReceiveMaximumExceeded            ReasonCode = 0x93
	TopicAliasInvalid                 ReasonCode = 0x94
	PacketTooLarge                    ReasonCode = 0x95
	MessageRateTooHigh                ReasonCode = 0x96
	QuotaExceeded                     ReasonCode = 0x97
	AdministrativeAction              ReasonCode = 0x98
	PayloadFormatInvalid              ReasonCode = 0x99
	RetainNotSupported                ReasonCode = 0x9A
	QoSNotSupported                   ReasonCode = 0x9B
	UseAnotherServer                  ReasonCode = 0x9C
	ServerMoved                       ReasonCode = 0x9D
	SharedSubscriptionsNotSupported   ReasonCode = 0x9E
	ConnectionRateExceeded            ReasonCode = 0x9F
	MaximumConnectTime                ReasonCode = 0xA0
	SubscriptionIDsNotSupported       ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported ReasonCode = 0xA2
)

var reasonNames = map[ReasonCode]string{
	0x00: "success",
	0x01: "granted QoS 1",
	0x02: "granted QoS 2",
	0x04: "disconnect with will message",
	0x10: "no matching subscribers",
	0x11: "no subscription existed",
	0x18: "continue authentication",
	0x19: "re-authenticate",
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8B: "server shutting down",
	0x8C: "bad authentication method",
	0x8D: "keep alive timeout",
	0x8E: "session taken over",
	0x8F: "topic filter invalid",
	0x90: "topic name invalid",
	0x91: "packet identifier in use",
	0x92: "packet identifier not found",
	0x93: "receive maximum exceeded",
	0x94: "topic alias invalid",
	0x95: "packet too large",
	0x96: "message rate too high",
	0x97: "quota exceeded",
	0x98: "administrative action",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded",
	0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String returns the reason code's name in the spec, e.g. "packet too
// large" for 0x95.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ReasonCode(0x%02X)", byte(c))
}

// IsError reports whether c signals a failure (0x80 and above) [MQTT-2.4].
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// Sentinel errors, wrapped by *ReasonError so that errors.Is works.
var (
	ErrMalformed = errors.New("packet: malformed packet")
	ErrProtocol  = errors.New("packet: protocol error")
	ErrTooLarge  = errors.New("packet: packet too large")
)

// ReasonError is a decoding (or encoding) failure with the reason code a
// receiver sends back in MQTT 5.0 (DISCONNECT or CONNACK) before closing
// the connection. It wraps ErrMalformed for 0x81, ErrTooLarge for 0x95 and
// ErrProtocol for every other code.
type ReasonError struct {
	Code   ReasonCode
	Type   Type   // the packet being decoded, 0 if unknown
	Detail string // what was wrong, with the spec clause
}

func (e *ReasonError) Error() string {
	s := e.Unwrap().Error()
	if e.Code != MalformedPacket && e.Code != ProtocolError && e.Code != PacketTooLarge {
		s += " (" + e.Code.String() + ")"
	}
	if e.Type != 0 {
		s += ": " + e.Type.String()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error matching e.Code.
func (e *ReasonError) Unwrap() error {
	switch e.Code {
	case MalformedPacket:
		return ErrMalformed
	case PacketTooLarge:
		return ErrTooLarge
	}
	return ErrProtocol
}

func malformed(t Type, detail string) error {
	return &ReasonError{Code: MalformedPacket, Type: t, Detail: detail}
}

func protocolErr(t Type, detail string) error {
	return &ReasonError{Code: ProtocolError, Type: t, Detail: detail}
}

func reasonErr(c ReasonCode, t Type, detail string) error {
	return &ReasonError{Code: c, Type: t, Detail: detail}
}

// validCodes[t] lists the reason codes a 5.0 packet of type t may carry
// [MQTT-2.4].
var validCodes = func() (m [16][256]bool) {
	set := func(t Type, codes ...ReasonCode) {
		for _, c := range codes {
			m[t][c] = true
		}
	}
	set(TypeConnack, 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
		0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	set(TypePuback, 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	set(TypePubrec, 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	set(TypePubrel, 0x00, 0x92)
	set(TypePubcomp, 0x00, 0x92)
	set(TypeSuback, 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	set(TypeUnsuback, 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	set(TypeDisconnect, 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
		0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
		0xA1, 0xA2)
	set(TypeAuth, 0x00, 0x18, 0x19)
	return m
}()

// ValidFor reports whether c is a reason code a 5.0 packet of type t may
// carry [MQTT-2.4].
func (c ReasonCode) ValidFor(t Type) bool { return t < 16 && validCodes[t][c] }

func checkCode(t Type, c ReasonCode) error {
	if !validCodes[t][c] {
		return protocolErr(t, fmt.Sprintf("reason code %#02x not valid in %v [MQTT-2.4]", byte(c), t))
	}
	return nil
}
