package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
	"unsafe"
)

// bodyPacket is implemented by every packet type of this package.
type bodyPacket interface {
	Packet
	flags() byte
	// size returns the remaining length at level v, checking that the
	// packet can be encoded.
	size(v Version) (int, error)
	// appendBody appends the variable header and payload; size has
	// accepted the packet.
	appendBody(dst []byte, v Version) []byte
	// decode parses the body in d, which holds exactly Remaining bytes.
	decode(d *decoder, h FixedHeader, v Version) error
}

var (
	_ bodyPacket = (*Connect)(nil)
	_ bodyPacket = (*Connack)(nil)
	_ bodyPacket = (*Publish)(nil)
	_ bodyPacket = (*Puback)(nil)
	_ bodyPacket = (*Pubrec)(nil)
	_ bodyPacket = (*Pubrel)(nil)
	_ bodyPacket = (*Pubcomp)(nil)
	_ bodyPacket = (*Subscribe)(nil)
	_ bodyPacket = (*Suback)(nil)
	_ bodyPacket = (*Unsubscribe)(nil)
	_ bodyPacket = (*Unsuback)(nil)
	_ bodyPacket = (*Pingreq)(nil)
	_ bodyPacket = (*Pingresp)(nil)
	_ bodyPacket = (*Disconnect)(nil)
	_ bodyPacket = (*Auth)(nil)
)

// fixedFlags are the required low nibbles of every type but PUBLISH
// [MQTT-2.2.2-1].
var fixedFlags = [16]byte{TypePubrel: 2, TypeSubscribe: 2, TypeUnsubscribe: 2}

// check validates the header's type and flags for a connection at level v.
func (h FixedHeader) check(v Version) error {
	switch {
	case v != 0 && v != V31 && v != V311 && v != V5:
		return errVersion
	case h.Type == 0:
		return malformed(0, "reserved packet type 0 [MQTT-2.1.2]")
	case h.Type == TypeAuth && v != V5 && v != 0:
		return malformed(0, "reserved packet type 15 before MQTT 5.0 [MQTT-2.1.2]")
	case h.Remaining < 0 || h.Remaining > MaxRemaining:
		return malformed(h.Type, "remaining length out of range")
	}
	if v == 0 && h.Type != TypeConnect {
		return protocolErr(h.Type, "first packet must be CONNECT [MQTT-3.1.0-1]")
	}
	if h.Type == TypePublish {
		qos := h.Flags >> 1 & 3
		if qos == 3 {
			return malformed(h.Type, "QoS 3 [MQTT-3.3.1-4]")
		}
		if qos == 0 && h.Flags&8 != 0 {
			return malformed(h.Type, "DUP set with QoS 0 [MQTT-3.3.1-2]")
		}
		return nil
	}
	if h.Flags != fixedFlags[h.Type] {
		return malformed(h.Type, fmt.Sprintf("fixed header flags %#x, want %#x [MQTT-2.2.2-2]", h.Flags, fixedFlags[h.Type]))
	}
	return nil
}

func readFixedHeader(r *bufio.Reader, maxSize int) (FixedHeader, error) {
	b, err := r.ReadByte()
	if err != nil {
		return FixedHeader{}, err
	}
	h := FixedHeader{Type: Type(b >> 4), Flags: b & 0x0f}
	var n uint32
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return FixedHeader{}, noEOF(err)
		}
		n |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return FixedHeader{}, malformed(h.Type, "remaining length not minimally encoded [MQTT-1.5.5-1]")
			}
			break
		}
		if i == 3 {
			return FixedHeader{}, malformed(h.Type, "remaining length longer than 4 bytes [MQTT-1.5.5-1]")
		}
	}
	h.Remaining = int(n)
	if maxSize > 0 && h.Size() > maxSize {
		return h, &ReasonError{Code: PacketTooLarge, Type: h.Type,
			Detail: fmt.Sprintf("%d bytes, maximum %d [MQTT-3.1.2-24]", h.Size(), maxSize)}
	}
	return h, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunk bounds how much Read allocates ahead of the bytes actually
// received for a large body, so that a hostile length without the data
// behind it costs little even without a maximum size.
const chunk = 64 << 10

func readBody(r *bufio.Reader, n int) ([]byte, error) {
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, noEOF(err)
	}
	b := make([]byte, 0, chunk)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), cap(b)))
		}
		m, err := io.ReadFull(r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return b, nil
}

func read(r *bufio.Reader, v Version, maxSize int) (Packet, error) {
	h, err := readFixedHeader(r, maxSize)
	if err != nil {
		return nil, err
	}
	if err := h.check(v); err != nil {
		return nil, err
	}
	if h.Type == TypePublish {
		p, body := newPublish(h.Remaining)
		if body == nil {
			body, err = readBody(r, h.Remaining)
		} else {
			_, err = io.ReadFull(r, body)
		}
		if err != nil {
			return nil, noEOF(err)
		}
		d := decoder{b: body, alias: true, t: TypePublish}
		if err := p.decode(&d, h, v); err != nil {
			return nil, err
		}
		return p, nil
	}
	if h.Remaining <= r.Size() {
		// Decode in place from the reader's buffer, copying what the
		// packet keeps: a PUBACK costs one allocation.
		body, err := r.Peek(h.Remaining)
		if err != nil {
			return nil, noEOF(err)
		}
		p, err := decode(h, body, v, false)
		r.Discard(h.Remaining)
		return p, err
	}
	body, err := readBody(r, h.Remaining)
	if err != nil {
		return nil, err
	}
	return decode(h, body, v, true)
}

func decode(h FixedHeader, body []byte, v Version, alias bool) (Packet, error) {
	if err := h.check(v); err != nil {
		return nil, err
	}
	if len(body) != h.Remaining {
		return nil, malformed(h.Type, fmt.Sprintf("body of %d bytes, remaining length %d", len(body), h.Remaining))
	}
	// Concrete calls keep the decoder on the stack.
	d := decoder{b: body, alias: alias, t: h.Type}
	switch h.Type {
	case TypeConnect:
		p := new(Connect)
		return ret(p, p.decode(&d, h, v))
	case TypeConnack:
		p := new(Connack)
		return ret(p, p.decode(&d, h, v))
	case TypePublish:
		if !alias {
			// One allocation for the struct and a copy of the body, as
			// Read does.
			p, buf := newPublish(len(body))
			if buf == nil {
				buf = make([]byte, len(body))
			}
			copy(buf, body)
			d = decoder{b: buf, alias: true, t: TypePublish}
			return ret(p, p.decode(&d, h, v))
		}
		p := new(Publish)
		return ret(p, p.decode(&d, h, v))
	case TypePuback:
		p := new(Puback)
		return ret(p, p.decode(&d, h, v))
	case TypePubrec:
		p := new(Pubrec)
		return ret(p, p.decode(&d, h, v))
	case TypePubrel:
		p := new(Pubrel)
		return ret(p, p.decode(&d, h, v))
	case TypePubcomp:
		p := new(Pubcomp)
		return ret(p, p.decode(&d, h, v))
	case TypeSubscribe:
		p := new(Subscribe)
		return ret(p, p.decode(&d, h, v))
	case TypeSuback:
		p := new(Suback)
		return ret(p, p.decode(&d, h, v))
	case TypeUnsubscribe:
		p := new(Unsubscribe)
		return ret(p, p.decode(&d, h, v))
	case TypeUnsuback:
		p := new(Unsuback)
		return ret(p, p.decode(&d, h, v))
	case TypePingreq:
		p := new(Pingreq)
		return ret(p, p.decode(&d, h, v))
	case TypePingresp:
		p := new(Pingresp)
		return ret(p, p.decode(&d, h, v))
	case TypeDisconnect:
		p := new(Disconnect)
		return ret(p, p.decode(&d, h, v))
	}
	p := new(Auth)
	return ret(p, p.decode(&d, h, v))
}

func ret(p Packet, err error) (Packet, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}

// publishWith holds a Publish and its body in one allocation.
type publishWith[A any] struct {
	p Publish
	b A
}

func allocPublish[A any](n int) (*Publish, []byte) {
	s := new(publishWith[A])
	return &s.p, unsafe.Slice((*byte)(unsafe.Pointer(&s.b)), n)
}

// newPublish returns a Publish and an n-byte buffer for its body in one
// allocation, or a nil buffer when n is too large for that.
func newPublish(n int) (*Publish, []byte) {
	switch {
	case n <= 32:
		return allocPublish[[32]byte](n)
	case n <= 64:
		return allocPublish[[64]byte](n)
	case n <= 96:
		return allocPublish[[96]byte](n)
	case n <= 128:
		return allocPublish[[128]byte](n)
	case n <= 192:
		return allocPublish[[192]byte](n)
	case n <= 256:
		return allocPublish[[256]byte](n)
	case n <= 384:
		return allocPublish[[384]byte](n)
	case n <= 512:
		return allocPublish[[512]byte](n)
	case n <= 768:
		return allocPublish[[768]byte](n)
	case n <= 1024:
		return allocPublish[[1024]byte](n)
	case n <= 1536:
		return allocPublish[[1536]byte](n)
	case n <= 2048:
		return allocPublish[[2048]byte](n)
	case n <= 3072:
		return allocPublish[[3072]byte](n)
	case n <= 4096:
		return allocPublish[[4096]byte](n)
	}
	return new(Publish), nil
}

var errVersion = errors.New("packet: unknown protocol version")

func appendPacket(dst []byte, p Packet, v Version) ([]byte, error) {
	// The hot path, without an interface assertion.
	if pub, ok := p.(*Publish); ok {
		if v != V31 && v != V311 && v != V5 {
			return dst, errVersion
		}
		n, pn, err := pub.sizes(v)
		if err != nil {
			return dst, err
		}
		if n > MaxRemaining {
			return dst, &ReasonError{Code: PacketTooLarge, Type: TypePublish, Detail: "over the protocol's maximum size"}
		}
		dst = appendVBI(append(dst, byte(TypePublish)<<4|pub.flags()), uint32(n))
		return pub.appendBodyProps(dst, v, pn), nil
	}
	switch a := p.(type) {
	case *Puback:
		return (*ack)(a).appendPacket(dst, TypePuback, 0, v)
	case *Pubrec:
		return (*ack)(a).appendPacket(dst, TypePubrec, 0, v)
	case *Pubrel:
		return (*ack)(a).appendPacket(dst, TypePubrel, 2, v)
	case *Pubcomp:
		return (*ack)(a).appendPacket(dst, TypePubcomp, 0, v)
	}
	bp, ok := p.(bodyPacket)
	if !ok {
		return dst, fmt.Errorf("packet: cannot encode %T", p)
	}
	if c, ok := p.(*Connect); ok && c.Version != 0 {
		v = c.Version
	}
	if v != V31 && v != V311 && v != V5 {
		return dst, errVersion
	}
	n, err := bp.size(v)
	if err != nil {
		return dst, err
	}
	if n > MaxRemaining {
		return dst, &ReasonError{Code: PacketTooLarge, Type: p.Type(), Detail: "over the protocol's maximum size"}
	}
	dst = appendVBI(append(dst, byte(p.Type())<<4|bp.flags()), uint32(n))
	return bp.appendBody(dst, v), nil
}

func remainingLen(p Packet, v Version) (int, error) {
	bp, ok := p.(bodyPacket)
	if !ok {
		return 0, fmt.Errorf("packet: cannot encode %T", p)
	}
	if c, ok := p.(*Connect); ok && c.Version != 0 {
		v = c.Version
	}
	if v != V31 && v != V311 && v != V5 {
		return 0, errVersion
	}
	n, err := bp.size(v)
	if err == nil && n > MaxRemaining {
		err = &ReasonError{Code: PacketTooLarge, Type: p.Type(), Detail: "over the protocol's maximum size"}
	}
	return n, err
}

// Primitive data types [MQTT-1.5].

func vbiLen(n uint32) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	}
	return 4
}

func appendVBI(dst []byte, n uint32) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

func appendUint16(dst []byte, n uint16) []byte { return append(dst, byte(n>>8), byte(n)) }

func appendUint32(dst []byte, n uint32) []byte {
	return append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// ValidString reports whether s may be sent as an MQTT UTF-8 encoded
// string: well-formed UTF-8 without surrogates [MQTT-1.5.4-1], without
// U+0000 [MQTT-1.5.4-2], at most 65,535 bytes. A payload with Payload
// Format Indicator 1 must pass it too, bar the length [MQTT-3.3.2-4].
func ValidString(s string) bool {
	return len(s) <= 0xffff && validUTF8(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// ValidUTF8 reports whether b is well-formed UTF-8 without surrogates and
// without U+0000 [MQTT-1.5.4-1/2], as a Payload Format Indicator of 1
// promises [MQTT-3.3.2-4].
func ValidUTF8(b []byte) bool { return validUTF8(b) }

func validUTF8(b []byte) bool {
	for i, c := range b {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			// utf8.Valid refuses encoded surrogates and overlong forms.
			return utf8.Valid(b[i:]) && bytes.IndexByte(b[i:], 0) < 0
		}
	}
	return true
}

func checkString(t Type, what, s string) error {
	if len(s) > 0xffff {
		return malformed(t, what+" longer than 65,535 bytes [MQTT-1.5.4]")
	}
	if !validUTF8(unsafe.Slice(unsafe.StringData(s), len(s))) {
		return malformed(t, what+" is not valid UTF-8 [MQTT-1.5.4-1]")
	}
	return nil
}

func checkBinary(t Type, what string, b []byte) error {
	if len(b) > 0xffff {
		return malformed(t, what+" longer than 65,535 bytes [MQTT-1.5.6]")
	}
	return nil
}

// decoder consumes a packet body. With alias set, strings and byte slices
// point into the body; otherwise they are copied.
type decoder struct {
	b     []byte
	alias bool
	t     Type
}

func (d *decoder) short(what string) error {
	return malformed(d.t, what+": packet too short")
}

func (d *decoder) done() error {
	if len(d.b) != 0 {
		return malformed(d.t, fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return nil
}

func (d *decoder) byte(what string) (byte, error) {
	if len(d.b) < 1 {
		return 0, d.short(what)
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *decoder) uint16(what string) (uint16, error) {
	if len(d.b) < 2 {
		return 0, d.short(what)
	}
	n := uint16(d.b[0])<<8 | uint16(d.b[1])
	d.b = d.b[2:]
	return n, nil
}

func (d *decoder) uint32(what string) (uint32, error) {
	if len(d.b) < 4 {
		return 0, d.short(what)
	}
	n := uint32(d.b[0])<<24 | uint32(d.b[1])<<16 | uint32(d.b[2])<<8 | uint32(d.b[3])
	d.b = d.b[4:]
	return n, nil
}

// vbi reads a variable byte integer of at most 4 bytes, minimally
// encoded [MQTT-1.5.5-1].
func (d *decoder) vbi(what string) (uint32, error) {
	var n uint32
	for i := 0; i < 4; i++ {
		if i >= len(d.b) {
			return 0, d.short(what)
		}
		c := d.b[i]
		n |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, malformed(d.t, what+": variable byte integer not minimally encoded [MQTT-1.5.5-1]")
			}
			d.b = d.b[i+1:]
			return n, nil
		}
	}
	return 0, malformed(d.t, what+": variable byte integer longer than 4 bytes [MQTT-1.5.5-1]")
}

func (d *decoder) raw(what string) ([]byte, error) {
	n, err := d.uint16(what)
	if err != nil {
		return nil, err
	}
	if int(n) > len(d.b) {
		return nil, d.short(what)
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b, nil
}

// binary reads Binary Data [MQTT-1.5.6]. Empty data decodes as nil.
func (d *decoder) binary(what string) ([]byte, error) {
	b, err := d.raw(what)
	if err != nil || len(b) == 0 {
		return nil, err
	}
	if !d.alias {
		b = bytes.Clone(b)
	}
	return b, nil
}

// string reads a UTF-8 Encoded String [MQTT-1.5.4].
func (d *decoder) string(what string) (string, error) {
	s, err := d.unchecked(what)
	if err == nil && !validUTF8(unsafe.Slice(unsafe.StringData(s), len(s))) {
		return "", malformed(d.t, what+" is not valid UTF-8 [MQTT-1.5.4-1/2]")
	}
	return s, err
}

// unchecked reads a string whose content the caller validates.
func (d *decoder) unchecked(what string) (string, error) {
	b, err := d.raw(what)
	if err != nil || len(b) == 0 {
		return "", err
	}
	if d.alias {
		return unsafe.String(&b[0], len(b)), nil
	}
	return string(b), nil
}

// rest returns the remaining bytes (a payload), nil if none.
func (d *decoder) rest() []byte {
	b := d.b
	d.b = nil
	if len(b) == 0 {
		return nil
	}
	if !d.alias {
		b = bytes.Clone(b)
	}
	return b
}
