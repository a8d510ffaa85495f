package packet

// Disconnect is the DISCONNECT packet [MQTT-3.14]. Code and Props are 5.0
// only; a 3.1.1 DISCONNECT has no body.
type Disconnect struct {
	Code  ReasonCode
	Props Properties
}

// Type returns TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }

// codeProps is the layout shared by DISCONNECT and AUTH in 5.0: a reason
// code and properties, both left out when the code is 0 and there are no
// properties [MQTT-3.14.2.1] [MQTT-3.15.2.1].
func codePropsSize(t Type, c ReasonCode, p *Properties) (int, error) {
	if err := checkCode(t, c); err != nil {
		return 0, err
	}
	pn, err := p.size(t)
	switch {
	case err != nil:
		return 0, err
	case pn != 0:
		return 1 + vbiLen(uint32(pn)) + pn, nil
	case c != Success:
		return 1, nil
	}
	return 0, nil
}

func appendCodeProps(dst []byte, t Type, c ReasonCode, p *Properties) []byte {
	pn, _ := p.size(t)
	if pn == 0 && c == Success {
		return dst
	}
	dst = append(dst, byte(c))
	if pn == 0 {
		return dst
	}
	return p.appendTo(dst, pn)
}

func decodeCodeProps(d *decoder, t Type, c *ReasonCode, p *Properties) error {
	if len(d.b) == 0 {
		return nil
	}
	b, _ := d.byte("reason code")
	*c = ReasonCode(b)
	if err := checkCode(t, *c); err != nil {
		return err
	}
	if len(d.b) == 0 {
		return nil
	}
	if err := p.decode(d, t); err != nil {
		return err
	}
	return d.done()
}

func (*Disconnect) flags() byte { return 0 }

func (p *Disconnect) size(v Version) (int, error) {
	if v != V5 {
		return 0, nil
	}
	return codePropsSize(TypeDisconnect, p.Code, &p.Props)
}

func (p *Disconnect) appendBody(dst []byte, v Version) []byte {
	if v != V5 {
		return dst
	}
	return appendCodeProps(dst, TypeDisconnect, p.Code, &p.Props)
}

func (p *Disconnect) decode(d *decoder, _ FixedHeader, v Version) error {
	if v != V5 {
		return d.done() // [MQTT-3.14] (3.1.1): no body
	}
	return decodeCodeProps(d, TypeDisconnect, &p.Code, &p.Props)
}
