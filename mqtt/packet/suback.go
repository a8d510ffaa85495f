package packet

import "fmt"

// Suback is the SUBACK packet [MQTT-3.9]: one reason code per subscription,
// in order. At 3.1.1 every failure code is sent as 0x80.
type Suback struct {
	PacketID uint16
	Codes    []ReasonCode
	Props    Properties
}

// Type returns TypeSuback.
func (*Suback) Type() Type { return TypeSuback }

func (*Suback) flags() byte { return 0 }

func (s *Suback) size(v Version) (int, error) {
	t := TypeSuback
	if len(s.Codes) == 0 {
		return 0, protocolErr(t, "no reason code [MQTT-3.9.3]")
	}
	n := 2 + len(s.Codes)
	if v != V5 {
		return n, nil
	}
	for _, c := range s.Codes {
		if err := checkCode(t, c); err != nil {
			return 0, err
		}
	}
	pn, err := s.Props.size(t)
	if err != nil {
		return 0, err
	}
	return n + vbiLen(uint32(pn)) + pn, nil
}

func (s *Suback) appendBody(dst []byte, v Version) []byte {
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		pn, _ := s.Props.size(TypeSuback)
		dst = s.Props.appendTo(dst, pn)
		for _, c := range s.Codes {
			dst = append(dst, byte(c))
		}
		return dst
	}
	for _, c := range s.Codes {
		if c.IsError() {
			c = UnspecifiedError // the one 3.1.1 failure code [MQTT-3.9.3]
		}
		dst = append(dst, byte(c))
	}
	return dst
}

func (s *Suback) decode(d *decoder, _ FixedHeader, v Version) error {
	t := TypeSuback
	var err error
	if s.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if v == V5 {
		if err := s.Props.decode(d, t); err != nil {
			return err
		}
	}
	if len(d.b) == 0 {
		return protocolErr(t, "no reason code [MQTT-3.9.3]")
	}
	s.Codes = make([]ReasonCode, len(d.b))
	for i, c := range d.b {
		s.Codes[i] = ReasonCode(c)
		if v == V5 {
			if err := checkCode(t, s.Codes[i]); err != nil {
				return err
			}
		} else if c > 2 && c != 0x80 {
			// [MQTT-3.9.3-2] (3.1.1)
			return malformed(t, fmt.Sprintf("return code %#02x [MQTT-3.9.3-2]", c))
		}
	}
	d.b = nil
	return nil
}
