package packet

// Pingreq is the PINGREQ packet [MQTT-3.12]; it has no body.
type Pingreq struct{}

// Pingresp is the PINGRESP packet [MQTT-3.13]; it has no body.
type Pingresp struct{}

// Type returns TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Type returns TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }

func (*Pingreq) flags() byte                             { return 0 }
func (*Pingreq) size(Version) (int, error)               { return 0, nil }
func (*Pingreq) appendBody(dst []byte, _ Version) []byte { return dst }
func (*Pingreq) decode(d *decoder, _ FixedHeader, _ Version) error {
	return d.done() // [MQTT-3.12]: no variable header, no payload
}

func (*Pingresp) flags() byte                             { return 0 }
func (*Pingresp) size(Version) (int, error)               { return 0, nil }
func (*Pingresp) appendBody(dst []byte, _ Version) []byte { return dst }
func (*Pingresp) decode(d *decoder, _ FixedHeader, _ Version) error {
	return d.done() // [MQTT-3.13]
}
