package packet

// Connack is the CONNACK packet [MQTT-3.2]. At 3.1.1 the return code is
// mapped to and from the 5.0 reason code of the same meaning: 0 Success,
// 1 UnsupportedProtocolVersion, 2 ClientIDNotValid, 3 ServerUnavailable,
// 4 BadUsernameOrPassword, 5 NotAuthorized.
type Connack struct {
	SessionPresent bool
	Code           ReasonCode
	Props          Properties
}

// Type returns TypeConnack.
func (*Connack) Type() Type { return TypeConnack }
