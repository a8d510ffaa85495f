package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// oneProp returns Properties holding only property id, with a valid value.
func oneProp(id PropID) Properties {
	var p Properties
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 1
	case PropMessageExpiry:
		p.MessageExpiry, p.HasMessageExpiry = 9, true
	case PropContentType:
		p.ContentType = "text/plain"
	case PropResponseTopic:
		p.ResponseTopic = "r/t"
	case PropCorrelationData:
		p.CorrelationData = []byte{0, 1}
	case PropSubscriptionID:
		p.SubscriptionIDs = []uint32{300}
	case PropSessionExpiry:
		p.SessionExpiry, p.HasSessionExpiry = 0xFFFFFFFF, true
	case PropAssignedClientID:
		p.AssignedClientID = "auto-1"
	case PropServerKeepAlive:
		p.ServerKeepAlive, p.HasServerKeepAlive = 0, true
	case PropAuthMethod:
		p.AuthMethod = "SCRAM-SHA-1"
	case PropAuthData:
		p.AuthData = []byte{9}
		p.AuthMethod = "m" // required with it
	case PropRequestProblemInfo:
		p.RequestProblemInfo, p.HasRequestProblemInfo = 0, true
	case PropWillDelay:
		p.WillDelay = 30
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 1
	case PropResponseInfo:
		p.ResponseInfo = "resp/"
	case PropServerReference:
		p.ServerReference = "other:1883"
	case PropReasonString:
		p.ReasonString = "because"
	case PropReceiveMaximum:
		p.ReceiveMaximum = 20
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 10
	case PropTopicAlias:
		p.TopicAlias = 3
	case PropMaximumQoS:
		p.MaximumQoS, p.HasMaximumQoS = 1, true
	case PropRetainAvailable:
		p.RetainAvailable, p.HasRetainAvailable = 0, true
	case PropUser:
		p.User = []UserProperty{{"k", "v"}}
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 1024
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable, p.HasWildcardSubAvailable = 0, true
	case PropSubIDAvailable:
		p.SubIDAvailable, p.HasSubIDAvailable = 1, true
	case PropSharedSubAvailable:
		p.SharedSubAvailable, p.HasSharedSubAvailable = 0, true
	default:
		panic(fmt.Sprintf("oneProp(%v)", id))
	}
	return p
}

// withProps returns a valid 5.0 packet of type t (willProps: a CONNECT
// with a will) carrying p.
func withProps(t Type, p Properties) Packet {
	switch t {
	case willProps:
		return &Connect{Version: V5, ClientID: "c", Will: &Will{Topic: "w", Props: p}}
	case TypeConnect:
		return &Connect{Version: V5, ClientID: "c", Props: p}
	case TypeConnack:
		return &Connack{Props: p}
	case TypePublish:
		return &Publish{Topic: "a/b", QoS: 1, PacketID: 1, Props: p}
	case TypePuback:
		return &Puback{PacketID: 1, Props: p}
	case TypePubrec:
		return &Pubrec{PacketID: 1, Props: p}
	case TypePubrel:
		return &Pubrel{PacketID: 1, Props: p}
	case TypePubcomp:
		return &Pubcomp{PacketID: 1, Props: p}
	case TypeSubscribe:
		return &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/#"}}, Props: p}
	case TypeSuback:
		return &Suback{PacketID: 1, Codes: []ReasonCode{GrantedQoS1}, Props: p}
	case TypeUnsubscribe:
		return &Unsubscribe{PacketID: 1, Filters: []string{"a/#"}, Props: p}
	case TypeUnsuback:
		return &Unsuback{PacketID: 1, Codes: []ReasonCode{Success}, Props: p}
	case TypeDisconnect:
		return &Disconnect{Props: p}
	case TypeAuth:
		return &Auth{Code: ContinueAuthentication, Props: p}
	}
	return nil
}

// rawWithProps builds the bytes of withProps(t, nil) with the encoded
// property bytes pb spliced in, bypassing the encoder's checks.
func rawWithProps(t *testing.T, typ Type, pb []byte) []byte {
	t.Helper()
	// Encode with a User Property as a marker, then replace it.
	marker := Properties{User: []UserProperty{{"\x01mark", "\x01"}}}
	raw, err := Append(nil, withProps(typ, marker), V5)
	if err != nil {
		t.Fatalf("%v: %v", typ, err)
	}
	mb := marker.appendTo(nil, 11)[1:] // without the length byte
	i := bytes.Index(raw, mb)
	if i < 0 || raw[i-1] != byte(len(mb)) {
		t.Fatalf("%v: marker not found in %x", typ, raw)
	}
	body := append(append(append([]byte(nil), raw[2:i-1]...), appendVBI(nil, uint32(len(pb)))...), pb...)
	body = append(body, raw[i+len(mb):]...)
	return append(appendVBI([]byte{raw[0]}, uint32(len(body))), body...)
}

var propPackets = []Type{willProps, TypeConnect, TypeConnack, TypePublish, TypePuback, TypePubrec,
	TypePubrel, TypePubcomp, TypeSubscribe, TypeSuback, TypeUnsubscribe, TypeUnsuback, TypeDisconnect, TypeAuth}

func typeName(t Type) string {
	if t == willProps {
		return "will"
	}
	return t.String()
}

// TestPropertyPlacement checks every property in every packet, on encode
// and decode, against the table of [MQTT-2.2.2.2], and that a property
// that may appear once is refused twice.
func TestPropertyPlacement(t *testing.T) {
	for id := PropID(1); id <= maxPropID; id++ {
		if props[id].kind == 0 {
			continue
		}
		p := oneProp(id)
		if p.Empty() || !p.Present(id) || p.mask() != 1<<id && id != PropAuthData {
			t.Errorf("oneProp(%v): Empty %v, mask %#x", id, p.Empty(), p.mask())
		}
		n := mustSize(t, &p)
		pb := p.appendTo(nil, n)[vbiLen(uint32(n)):] // the properties without their length
		for _, typ := range propPackets {
			t.Run(fmt.Sprintf("%v/%s", id, typeName(typ)), func(t *testing.T) {
				allowed := id.AllowedIn(typ)
				pkt := withProps(typ, p)
				raw, err := Append(nil, pkt, V5)
				if allowed != (err == nil) {
					t.Fatalf("Append(%v in %s) error = %v, allowed %v", id, typeName(typ), err, allowed)
				}
				raw = rawWithProps(t, typ, pb)
				got, err := Read(bufio.NewReader(bytes.NewReader(raw)), versionFor(typ), 0)
				if !allowed {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("Read(%x) = %v, want a protocol error", raw, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Read(%x): %v", raw, err)
				}
				if diff := cmp.Diff(pkt, got, cmpOpts); diff != "" {
					t.Errorf("Read(%x) (-want +got):\n%s", raw, diff)
				}
				// Twice.
				raw = rawWithProps(t, typ, append(append([]byte(nil), pb...), pb...))
				_, err = Read(bufio.NewReader(bytes.NewReader(raw)), versionFor(typ), 0)
				multi := id == PropUser || id == PropSubscriptionID && typ == TypePublish
				if multi && err != nil {
					t.Errorf("Read(%v twice in %s) = %v, want success", id, typeName(typ), err)
				}
				if !multi && !errors.Is(err, ErrProtocol) {
					t.Errorf("Read(%v twice in %s) = %v, want a protocol error", id, typeName(typ), err)
				}
			})
		}
	}
}

func mustSize(t *testing.T, p *Properties) int {
	t.Helper()
	for _, typ := range propPackets {
		if n, err := p.size(typ); err == nil {
			return n
		}
	}
	t.Fatalf("no packet allows %+v", p)
	return 0
}

func versionFor(t Type) Version {
	if t == willProps || t == TypeConnect {
		return 0
	}
	return V5
}

func TestUserPropertyOrder(t *testing.T) {
	want := &Publish{Topic: "t", Props: Properties{User: []UserProperty{
		{"z", "1"}, {"a", "2"}, {"z", "3"}, {"", ""}, {"a", "2"}}}} // [MQTT-3.3.2-18]
	raw, err := Append(nil, want, V5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(bufio.NewReader(bytes.NewReader(raw)), V5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Packet(want), got, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReasonCodeNames(t *testing.T) {
	for c := 0; c < 256; c++ {
		rc := ReasonCode(c)
		valid := false
		for typ := Type(0); typ < 16; typ++ {
			valid = valid || rc.ValidFor(typ)
		}
		if _, named := reasonNames[rc]; named != valid && c != 0x04 && c != 0x01 && c != 0x02 {
			// Every code valid in some packet has a name and vice versa.
			t.Errorf("%#02x: named %v, valid in some packet %v", c, named, valid)
		}
	}
	if got := PacketTooLarge.String(); got != "packet too large" {
		t.Errorf("PacketTooLarge.String() = %q", got)
	}
	err := error(&ReasonError{Code: MalformedPacket, Type: TypePublish, Detail: "x"})
	if got := err.Error(); got != "packet: malformed packet: PUBLISH: x" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocol) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
}

func TestPropertiesOf(t *testing.T) {
	for _, p := range []Packet{&Connect{}, &Connack{}, &Publish{}, &Puback{}, &Pubrec{}, &Pubrel{}, &Pubcomp{},
		&Subscribe{}, &Suback{}, &Unsubscribe{}, &Unsuback{}, &Disconnect{}, &Auth{}} {
		pr := PropertiesOf(p)
		if pr == nil {
			t.Errorf("PropertiesOf(%v) = nil", p.Type())
			continue
		}
		pr.ReasonString = "r"
		if got := PropertiesOf(p).ReasonString; got != "r" {
			t.Errorf("PropertiesOf(%v) is not the packet's own properties", p.Type())
		}
	}
	for _, p := range []Packet{&Pingreq{}, &Pingresp{}} {
		if pr := PropertiesOf(p); pr != nil {
			t.Errorf("PropertiesOf(%v) = %v, want nil", p.Type(), pr)
		}
	}
}
