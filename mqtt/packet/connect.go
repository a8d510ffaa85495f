package packet

// Connect is the CONNECT packet [MQTT-3.1].
type Connect struct {
	// Version is the protocol level: set on decode; on encode it wins over
	// Append's version argument when non-zero.
	Version      Version
	CleanStart   bool // Clean Session in 3.1.1
	KeepAlive    uint16
	ClientID     string
	Will         *Will // nil: no will message
	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
	Props        Properties
}

// Will is the will message of a CONNECT [MQTT-3.1.2.5].
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   Properties // Will Properties (5.0)
}

// Type returns TypeConnect.
func (*Connect) Type() Type { return TypeConnect }
