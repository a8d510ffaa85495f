package packet

// Unsubscribe is the UNSUBSCRIBE packet [MQTT-3.10].
type Unsubscribe struct {
	PacketID uint16
	Filters  []string // at least one [MQTT-3.10.3-2]
	Props    Properties
}

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }

func (*Unsubscribe) flags() byte { return 2 } // [MQTT-3.10.1-1]

func (u *Unsubscribe) size(v Version) (int, error) {
	t := TypeUnsubscribe
	if u.PacketID == 0 {
		return 0, protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if len(u.Filters) == 0 {
		return 0, protocolErr(t, "no topic filter [MQTT-3.10.3-2]")
	}
	n := 2
	if v == V5 {
		pn, err := u.Props.size(t)
		if err != nil {
			return 0, err
		}
		n += vbiLen(uint32(pn)) + pn
	}
	for _, f := range u.Filters {
		if f == "" {
			return 0, protocolErr(t, "empty topic filter [MQTT-4.7.3-1]")
		}
		if err := checkString(t, "topic filter", f); err != nil {
			return 0, err
		}
		n += 2 + len(f)
	}
	return n, nil
}

func (u *Unsubscribe) appendBody(dst []byte, v Version) []byte {
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		pn, _ := u.Props.size(TypeUnsubscribe)
		dst = u.Props.appendTo(dst, pn)
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

func (u *Unsubscribe) decode(d *decoder, _ FixedHeader, v Version) error {
	t := TypeUnsubscribe
	var err error
	if u.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if u.PacketID == 0 {
		return protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 {
		if err := u.Props.decode(d, t); err != nil {
			return err
		}
	}
	if len(d.b) == 0 {
		return protocolErr(t, "no topic filter [MQTT-3.10.3-2]")
	}
	for len(d.b) > 0 {
		f, err := d.string("topic filter")
		if err != nil {
			return err
		}
		if f == "" {
			return protocolErr(t, "empty topic filter [MQTT-4.7.3-1]")
		}
		u.Filters = append(u.Filters, f)
	}
	return nil
}
