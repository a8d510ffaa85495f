package packet

// Unsubscribe is the UNSUBSCRIBE packet [MQTT-3.10].
type Unsubscribe struct {
	PacketID uint16
	Filters  []string // at least one [MQTT-3.10.3-2]
	Props    Properties
}

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }
