package packet

// Publish is the PUBLISH packet [MQTT-3.3].
type Publish struct {
	Topic    string // empty only with Props.TopicAlias set (5.0)
	Payload  []byte
	QoS      byte
	Retain   bool
	Dup      bool
	PacketID uint16 // non-zero when QoS > 0, absent otherwise
	Props    Properties
}

// Type returns TypePublish.
func (*Publish) Type() Type { return TypePublish }
