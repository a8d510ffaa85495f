package packet

// Subscribe is the SUBSCRIBE packet [MQTT-3.8].
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription // at least one [MQTT-3.8.3-2]
	Props         Properties     // Subscription Identifier and User Properties
}

// Subscription is a topic filter with its subscription options
// [MQTT-3.8.3.1]. NoLocal, RetainAsPublished and RetainHandling are 5.0
// only.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only on new subscription, 2 never
}

// Type returns TypeSubscribe.
func (*Subscribe) Type() Type { return TypeSubscribe }
