package packet

// Puback, Pubrec, Pubrel and Pubcomp share one layout [MQTT-3.4..3.7]:
// a packet identifier, then in 5.0 a reason code and properties (Reason
// String and User Properties), both omitted on the wire when Code is 0 and
// there are no properties.

// Puback is the PUBACK packet [MQTT-3.4].
type Puback struct {
	PacketID uint16
	Code     ReasonCode
	Props    Properties
}

// Pubrec is the PUBREC packet [MQTT-3.5].
type Pubrec struct {
	PacketID uint16
	Code     ReasonCode
	Props    Properties
}

// Pubrel is the PUBREL packet [MQTT-3.6].
type Pubrel struct {
	PacketID uint16
	Code     ReasonCode
	Props    Properties
}

// Pubcomp is the PUBCOMP packet [MQTT-3.7].
type Pubcomp struct {
	PacketID uint16
	Code     ReasonCode
	Props    Properties
}

// Type returns TypePuback.
func (*Puback) Type() Type { return TypePuback }

// Type returns TypePubrec.
func (*Pubrec) Type() Type { return TypePubrec }

// Type returns TypePubrel.
func (*Pubrel) Type() Type { return TypePubrel }

// Type returns TypePubcomp.
func (*Pubcomp) Type() Type { return TypePubcomp }

// ack is the common layout; the four packet structs convert to it.
type ack struct {
	PacketID uint16
	Code     ReasonCode
	Props    Properties
}

func (a *ack) size(t Type, v Version) (int, error) {
	if v != V5 {
		return 2, nil
	}
	if err := checkCode(t, a.Code); err != nil {
		return 0, err
	}
	pn, err := a.Props.size(t)
	if err != nil {
		return 0, err
	}
	switch {
	case pn != 0:
		return 3 + vbiLen(uint32(pn)) + pn, nil
	case a.Code != Success:
		return 3, nil
	}
	return 2, nil // [MQTT-3.4.2.1]: code 0 and no properties may be left out
}

// appendPacket is Append for an acknowledgement, without interface calls.
func (a *ack) appendPacket(dst []byte, t Type, flags byte, v Version) ([]byte, error) {
	if v != V31 && v != V311 && v != V5 {
		return dst, errVersion
	}
	if v != V5 {
		return appendUint16(append(dst, byte(t)<<4|flags, 2), a.PacketID), nil
	}
	n, err := a.size(t, v)
	if err != nil {
		return dst, err
	}
	return a.appendBody(appendVBI(append(dst, byte(t)<<4|flags), uint32(n)), t, v), nil
}

func (a *ack) appendBody(dst []byte, t Type, v Version) []byte {
	dst = appendUint16(dst, a.PacketID)
	if v != V5 {
		return dst
	}
	pn, _ := a.Props.size(t)
	if pn == 0 && a.Code == Success {
		return dst
	}
	dst = append(dst, byte(a.Code))
	if pn == 0 {
		return dst
	}
	return a.Props.appendTo(dst, pn)
}

func (a *ack) decode(d *decoder, t Type, v Version) error {
	var err error
	if a.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if v != V5 {
		return d.done()
	}
	if len(d.b) == 0 {
		return nil // [MQTT-3.4.2.1]
	}
	c, _ := d.byte("reason code")
	a.Code = ReasonCode(c)
	if err := checkCode(t, a.Code); err != nil {
		return err
	}
	if len(d.b) == 0 {
		return nil // [MQTT-3.4.2.2.1]: no properties
	}
	if err := a.Props.decode(d, t); err != nil {
		return err
	}
	return d.done()
}

func (*Puback) flags() byte                   { return 0 }
func (p *Puback) size(v Version) (int, error) { return (*ack)(p).size(TypePuback, v) }
func (p *Puback) appendBody(dst []byte, v Version) []byte {
	return (*ack)(p).appendBody(dst, TypePuback, v)
}
func (p *Puback) decode(d *decoder, _ FixedHeader, v Version) error {
	return (*ack)(p).decode(d, TypePuback, v)
}

func (*Pubrec) flags() byte                   { return 0 }
func (p *Pubrec) size(v Version) (int, error) { return (*ack)(p).size(TypePubrec, v) }
func (p *Pubrec) appendBody(dst []byte, v Version) []byte {
	return (*ack)(p).appendBody(dst, TypePubrec, v)
}
func (p *Pubrec) decode(d *decoder, _ FixedHeader, v Version) error {
	return (*ack)(p).decode(d, TypePubrec, v)
}

func (*Pubrel) flags() byte                   { return 2 } // [MQTT-3.6.1-1]
func (p *Pubrel) size(v Version) (int, error) { return (*ack)(p).size(TypePubrel, v) }
func (p *Pubrel) appendBody(dst []byte, v Version) []byte {
	return (*ack)(p).appendBody(dst, TypePubrel, v)
}
func (p *Pubrel) decode(d *decoder, _ FixedHeader, v Version) error {
	return (*ack)(p).decode(d, TypePubrel, v)
}

func (*Pubcomp) flags() byte                   { return 0 }
func (p *Pubcomp) size(v Version) (int, error) { return (*ack)(p).size(TypePubcomp, v) }
func (p *Pubcomp) appendBody(dst []byte, v Version) []byte {
	return (*ack)(p).appendBody(dst, TypePubcomp, v)
}
func (p *Pubcomp) decode(d *decoder, _ FixedHeader, v Version) error {
	return (*ack)(p).decode(d, TypePubcomp, v)
}
