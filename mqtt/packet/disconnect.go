package packet

// Disconnect is the DISCONNECT packet [MQTT-3.14]. Code and Props are 5.0
// only; a 3.1.1 DISCONNECT has no body.
type Disconnect struct {
	Code  ReasonCode
	Props Properties
}

// Type returns TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }
