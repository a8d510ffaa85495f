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
