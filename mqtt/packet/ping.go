package packet

// Pingreq is the PINGREQ packet [MQTT-3.12]; it has no body.
type Pingreq struct{}

// Pingresp is the PINGRESP packet [MQTT-3.13]; it has no body.
type Pingresp struct{}

// Type returns TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Type returns TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }
