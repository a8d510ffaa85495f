package packet

import (
	"bufio"
	"fmt"
)

// Type is the MQTT control packet type, the high nibble of the first byte.
type Type byte

// Control packet types [MQTT-2.1.2].
const (
	TypeConnect     Type = 1
	TypeConnack     Type = 2
	TypePublish     Type = 3
	TypePuback      Type = 4
	TypePubrec      Type = 5
	TypePubrel      Type = 6
	TypePubcomp     Type = 7
	TypeSubscribe   Type = 8
	TypeSuback      Type = 9
	TypeUnsubscribe Type = 10
	TypeUnsuback    Type = 11
	TypePingreq     Type = 12
	TypePingresp    Type = 13
	TypeDisconnect  Type = 14
	TypeAuth        Type = 15 // MQTT 5.0 only
)

var typeNames = [...]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Version is the protocol level of a connection, as carried in CONNECT.
type Version byte

// Protocol levels. V31 is accepted on decode; its packets use the 3.1.1
// layouts. The zero Version means "no connection yet": Read then accepts
// only CONNECT.
const (
	V31  Version = 3
	V311 Version = 4
	V5   Version = 5
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("Version(%d)", byte(v))
}

// Packet is an MQTT control packet: one of *Connect, *Connack, *Publish,
// *Puback, *Pubrec, *Pubrel, *Pubcomp, *Subscribe, *Suback, *Unsubscribe,
// *Unsuback, *Pingreq, *Pingresp, *Disconnect or *Auth.
type Packet interface {
	Type() Type
}

// MaxRemaining is the largest remaining length a variable byte integer can
// hold [MQTT-1.5.5]; with the fixed header a packet is at most
// MaxRemaining+5 bytes.
const MaxRemaining = 268_435_455

// FixedHeader is the first part of every packet [MQTT-2.1.1].
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // remaining length: the bytes after the fixed header
}

// Size is the packet's total size in bytes, fixed header included.
func (h FixedHeader) Size() int { return 1 + vbiLen(uint32(h.Remaining)) + h.Remaining }

// ReadFixedHeader reads a fixed header, refusing a remaining length of
// more than 4 bytes or not minimally encoded [MQTT-1.5.5-1], and, with a
// *ReasonError of code PacketTooLarge, a packet whose total size exceeds
// maxSize (maxSize <= 0: no limit but the protocol's); the body is then
// left unread. Type and flags are checked by Decode. A clean end of stream before the first byte is
// io.EOF; one inside the header is io.ErrUnexpectedEOF.
func ReadFixedHeader(r *bufio.Reader, maxSize int) (FixedHeader, error) {
	return readFixedHeader(r, maxSize)
}

// Read reads and decodes one packet of a connection at protocol level v
// (0 before CONNECT: anything but CONNECT is then a protocol error). A
// CONNECT is decoded at its own level whatever v; at a non-zero v it is a
// second CONNECT, which a server treats as a protocol error
// [MQTT-3.1.0-2].
// maxSize bounds the packet's total size; the body is never allocated
// before the size is checked, so a hostile length allocates nothing. The
// returned packet owns its memory: a PUBLISH costs one allocation holding
// the struct, topic and payload.
func Read(r *bufio.Reader, v Version, maxSize int) (Packet, error) {
	return read(r, v, maxSize)
}

// Decode decodes the body (the Remaining bytes after the fixed header) of a
// packet whose header was read with ReadFixedHeader, for a read loop that
// reuses its buffer: the packet keeps copies, never body itself. A PUBLISH
// costs one allocation, as with Read.
func Decode(h FixedHeader, body []byte, v Version) (Packet, error) {
	return decode(h, body, v, false)
}

// Append appends the encoding of p at protocol level v to dst. For CONNECT
// the level written is p.Version when set, else v. Properties and reason
// codes that 3.1.1 cannot carry are left out at levels 3 and 4. It fails on
// a packet that cannot be encoded (QoS above 2, a string over 65,535
// bytes, a packet over the protocol's maximum size, a zero packet
// identifier where one is required, …), leaving dst's content unchanged.
func Append(dst []byte, p Packet, v Version) ([]byte, error) {
	return appendPacket(dst, p, v)
}

// Size returns the size in bytes of p encoded at level v, fixed header
// included; compare it with a peer's Maximum Packet Size [MQTT-3.1.2-24].
func Size(p Packet, v Version) (int, error) {
	n, err := remainingLen(p, v)
	if err != nil {
		return 0, err
	}
	return 1 + vbiLen(uint32(n)) + n, nil
}
