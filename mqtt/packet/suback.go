package packet

// Suback is the SUBACK packet [MQTT-3.9]: one reason code per subscription,
// in order. At 3.1.1 every failure code is sent as 0x80.
type Suback struct {
	PacketID uint16
	Codes    []ReasonCode
	Props    Properties
}

// Type returns TypeSuback.
func (*Suback) Type() Type { return TypeSuback }
