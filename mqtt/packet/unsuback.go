package packet

// Unsuback is the UNSUBACK packet [MQTT-3.11]. Codes and Props are 5.0
// only; a 3.1.1 UNSUBACK carries just the packet identifier.
type Unsuback struct {
	PacketID uint16
	Codes    []ReasonCode
	Props    Properties
}

// Type returns TypeUnsuback.
func (*Unsuback) Type() Type { return TypeUnsuback }

func (*Unsuback) flags() byte { return 0 }

func (u *Unsuback) size(v Version) (int, error) {
	t := TypeUnsuback
	if v != V5 {
		return 2, nil
	}
	if len(u.Codes) == 0 {
		return 0, protocolErr(t, "no reason code [MQTT-3.11.3]")
	}
	for _, c := range u.Codes {
		if err := checkCode(t, c); err != nil {
			return 0, err
		}
	}
	pn, err := u.Props.size(t)
	if err != nil {
		return 0, err
	}
	return 2 + vbiLen(uint32(pn)) + pn + len(u.Codes), nil
}

func (u *Unsuback) appendBody(dst []byte, v Version) []byte {
	dst = appendUint16(dst, u.PacketID)
	if v != V5 {
		return dst
	}
	pn, _ := u.Props.size(TypeUnsuback)
	dst = u.Props.appendTo(dst, pn)
	for _, c := range u.Codes {
		dst = append(dst, byte(c))
	}
	return dst
}

func (u *Unsuback) decode(d *decoder, _ FixedHeader, v Version) error {
	t := TypeUnsuback
	var err error
	if u.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if v != V5 {
		return d.done()
	}
	if err := u.Props.decode(d, t); err != nil {
		return err
	}
	if len(d.b) == 0 {
		return protocolErr(t, "no reason code [MQTT-3.11.3]")
	}
	u.Codes = make([]ReasonCode, len(d.b))
	for i, c := range d.b {
		u.Codes[i] = ReasonCode(c)
		if err := checkCode(t, u.Codes[i]); err != nil {
			return err
		}
	}
	d.b = nil
	return nil
}
