package packet

// Auth is the AUTH packet of MQTT 5.0 enhanced authentication [MQTT-3.15].
type Auth struct {
	Code  ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Props Properties
}

// Type returns TypeAuth.
func (*Auth) Type() Type { return TypeAuth }
