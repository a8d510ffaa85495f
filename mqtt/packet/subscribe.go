package packet

import "strings"

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

func (*Subscribe) flags() byte { return 2 } // [MQTT-3.8.1-1]

func (s *Subscribe) size(v Version) (int, error) {
	t := TypeSubscribe
	if s.PacketID == 0 {
		return 0, protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if len(s.Subscriptions) == 0 {
		return 0, protocolErr(t, "no topic filter [MQTT-3.8.3-2]")
	}
	n := 2
	if v == V5 {
		pn, err := s.Props.size(t)
		if err != nil {
			return 0, err
		}
		n += vbiLen(uint32(pn)) + pn
	}
	for _, sub := range s.Subscriptions {
		if sub.Filter == "" {
			return 0, protocolErr(t, "empty topic filter [MQTT-4.7.3-1]")
		}
		if err := checkString(t, "topic filter", sub.Filter); err != nil {
			return 0, err
		}
		if sub.QoS > 2 || sub.RetainHandling > 2 {
			return 0, malformed(t, "QoS or retain handling 3 [MQTT-3.8.3-4]")
		}
		if v == V5 && sub.NoLocal && strings.HasPrefix(sub.Filter, "$share/") {
			return 0, protocolErr(t, "no local on a shared subscription [MQTT-3.8.3-4]")
		}
		n += 3 + len(sub.Filter)
	}
	return n, nil
}

func (s *Subscribe) appendBody(dst []byte, v Version) []byte {
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		pn, _ := s.Props.size(TypeSubscribe)
		dst = s.Props.appendTo(dst, pn)
	}
	for _, sub := range s.Subscriptions {
		dst = appendString(dst, sub.Filter)
		o := sub.QoS
		if v == V5 {
			if sub.NoLocal {
				o |= 0x04
			}
			if sub.RetainAsPublished {
				o |= 0x08
			}
			o |= sub.RetainHandling << 4
		}
		dst = append(dst, o)
	}
	return dst
}

func (s *Subscribe) decode(d *decoder, _ FixedHeader, v Version) error {
	t := TypeSubscribe
	var err error
	if s.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if s.PacketID == 0 {
		return protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if v == V5 {
		if err := s.Props.decode(d, t); err != nil {
			return err
		}
	}
	if len(d.b) == 0 {
		// [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])
		return protocolErr(t, "no topic filter [MQTT-3.8.3-2]")
	}
	for len(d.b) > 0 {
		var sub Subscription
		if sub.Filter, err = d.string("topic filter"); err != nil {
			return err
		}
		if sub.Filter == "" {
			return protocolErr(t, "empty topic filter [MQTT-4.7.3-1]")
		}
		o, err := d.byte("subscription options")
		if err != nil {
			return err
		}
		sub.QoS = o & 3
		if sub.QoS == 3 {
			return malformed(t, "QoS 3 [MQTT-3.8.3-4]")
		}
		if v != V5 {
			if o&^3 != 0 {
				return malformed(t, "reserved subscription option bits set [MQTT-3-8.3-4] (3.1.1)")
			}
		} else {
			if o&0xc0 != 0 {
				return malformed(t, "reserved subscription option bits set [MQTT-3.8.3-5]")
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 3
			if sub.RetainHandling == 3 {
				return protocolErr(t, "retain handling 3 [MQTT-3.8.3.1]")
			}
			if sub.NoLocal && strings.HasPrefix(sub.Filter, "$share/") {
				return protocolErr(t, "no local on a shared subscription [MQTT-3.8.3-4]")
			}
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return nil
}
