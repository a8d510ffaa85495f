package packet

import "strings"

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

func (p *Publish) flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// byteClass sorts topic bytes: 0 plain ASCII, 1 NUL, 2 wildcard, 3 not
// ASCII; one table load per byte keeps the hot path's check cheap.
var byteClass = func() (c [256]byte) {
	c[0], c['+'], c['#'] = 1, 2, 2
	for i := 0x80; i < 256; i++ {
		c[i] = 3
	}
	return c
}()

// checkTopicName checks what the codec can see of a Topic Name: not
// empty [MQTT-4.7.3-1], at most 65,535 bytes, UTF-8 without NUL or
// surrogates [MQTT-1.5.4-1/2], no wildcard characters [MQTT-3.3.2-2].
// Syntax beyond that is mqtt/topic's.
func checkTopicName(t Type, s string) error {
	if s == "" {
		return reasonErr(TopicNameInvalid, t, "empty topic name [MQTT-4.7.3-1]")
	}
	if len(s) > 0xffff {
		return malformed(t, "topic name longer than 65,535 bytes [MQTT-1.5.4]")
	}
	for i := 0; i < len(s); i++ {
		if byteClass[s[i]] != 0 {
			return checkTopicSlow(t, s[i:])
		}
	}
	return nil
}

func checkTopicSlow(t Type, s string) error {
	if err := checkString(t, "topic name", s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "+#") {
		return reasonErr(TopicNameInvalid, t, "wildcard in topic name [MQTT-3.3.2-2]")
	}
	return nil
}

func (p *Publish) size(v Version) (int, error) {
	n, _, err := p.sizes(v)
	return n, err
}

// sizes returns the remaining length and the properties' length.
func (p *Publish) sizes(v Version) (n, pn int, err error) {
	t := TypePublish
	if p.QoS > 2 {
		return 0, 0, malformed(t, "QoS 3 [MQTT-3.3.1-4]")
	}
	if p.Dup && p.QoS == 0 {
		return 0, 0, malformed(t, "DUP set with QoS 0 [MQTT-3.3.1-2]")
	}
	n = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		if p.PacketID == 0 {
			return 0, 0, protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
		}
		n += 2
	}
	if p.Topic != "" || v != V5 || p.Props.TopicAlias == 0 {
		if err := checkTopicName(t, p.Topic); err != nil {
			return 0, 0, err
		}
	}
	if v == V5 {
		if pn, err = p.Props.size(t); err != nil {
			return 0, 0, err
		}
		n += vbiLen(uint32(pn)) + pn
	}
	return n, pn, nil
}

func (p *Publish) appendBody(dst []byte, v Version) []byte {
	pn := 0
	if v == V5 {
		pn, _ = p.Props.size(TypePublish)
	}
	return p.appendBodyProps(dst, v, pn)
}

// appendBodyProps is appendBody with the properties' length known.
func (p *Publish) appendBodyProps(dst []byte, v Version, pn int) []byte {
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Props.appendTo(dst, pn)
	}
	return append(dst, p.Payload...)
}

func (p *Publish) decode(d *decoder, h FixedHeader, v Version) error {
	t := TypePublish
	p.QoS = h.Flags >> 1 & 3 // QoS 3 and DUP refused by FixedHeader.check
	p.Dup = h.Flags&0x08 != 0
	p.Retain = h.Flags&0x01 != 0
	var err error
	if p.Topic, err = d.unchecked("topic name"); err != nil {
		return err
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.uint16("packet identifier"); err != nil {
			return err
		}
		if p.PacketID == 0 {
			return protocolErr(t, "packet identifier 0 [MQTT-2.2.1-3]")
		}
	}
	if v == V5 {
		if err := p.Props.decode(d, t); err != nil {
			return err
		}
	}
	if p.Topic == "" && v == V5 && p.Props.TopicAlias != 0 {
		// An empty topic with a Topic Alias uses the alias's topic
		// [MQTT-3.3.2-12]; the caller resolves it.
	} else if err := checkTopicName(t, p.Topic); err != nil {
		if p.Topic == "" && v == V5 {
			return protocolErr(t, "empty topic name without Topic Alias [MQTT-3.3.4]")
		}
		return err
	}
	p.Payload = d.rest()
	return nil
}
