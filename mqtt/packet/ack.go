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
