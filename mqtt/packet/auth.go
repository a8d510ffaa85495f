package packet

// Auth is the AUTH packet of MQTT 5.0 enhanced authentication [MQTT-3.15].
type Auth struct {
	Code  ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Props Properties
}

// Type returns TypeAuth.
func (*Auth) Type() Type { return TypeAuth }

func (*Auth) flags() byte { return 0 }

func (p *Auth) size(v Version) (int, error) {
	if v != V5 {
		return 0, malformed(TypeAuth, "AUTH before MQTT 5.0 [MQTT-2.1.2]")
	}
	return codePropsSize(TypeAuth, p.Code, &p.Props)
}

func (p *Auth) appendBody(dst []byte, _ Version) []byte {
	return appendCodeProps(dst, TypeAuth, p.Code, &p.Props)
}

func (p *Auth) decode(d *decoder, _ FixedHeader, v Version) error {
	if v != V5 {
		return malformed(TypeAuth, "AUTH before MQTT 5.0 [MQTT-2.1.2]")
	}
	return decodeCodeProps(d, TypeAuth, &p.Code, &p.Props)
}
