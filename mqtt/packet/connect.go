package packet

import "fmt"

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

func (*Connect) flags() byte { return 0 }

func protocolName(v Version) string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

func (c *Connect) size(v Version) (int, error) {
	t := TypeConnect
	// Protocol name, level, flags, keep alive [MQTT-3.1.2].
	n := 2 + len(protocolName(v)) + 1 + 1 + 2
	if v == V5 {
		pn, err := c.Props.size(t)
		if err != nil {
			return 0, err
		}
		n += vbiLen(uint32(pn)) + pn
	}
	if err := checkString(t, "client identifier", c.ClientID); err != nil {
		return 0, err
	}
	n += 2 + len(c.ClientID)
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return 0, malformed(t, "will QoS 3 [MQTT-3.1.2-12]")
		}
		if w.Topic == "" {
			return 0, protocolErr(t, "empty will topic [MQTT-4.7.3-1]")
		}
		if err := checkString(t, "will topic", w.Topic); err != nil {
			return 0, err
		}
		if err := checkBinary(t, "will payload", w.Payload); err != nil {
			return 0, err
		}
		if v == V5 {
			pn, err := w.Props.size(willProps)
			if err != nil {
				return 0, err
			}
			n += vbiLen(uint32(pn)) + pn
		}
		n += 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if c.UsernameFlag {
		if err := checkString(t, "user name", c.Username); err != nil {
			return 0, err
		}
		n += 2 + len(c.Username)
	} else if c.Username != "" {
		return 0, protocolErr(t, "user name set without UsernameFlag")
	}
	if c.PasswordFlag {
		if !c.UsernameFlag && v != V5 {
			return 0, protocolErr(t, "password without user name [MQTT-3.1.2-22]")
		}
		if err := checkBinary(t, "password", c.Password); err != nil {
			return 0, err
		}
		n += 2 + len(c.Password)
	} else if len(c.Password) != 0 {
		return 0, protocolErr(t, "password set without PasswordFlag")
	}
	return n, nil
}

func (c *Connect) appendBody(dst []byte, v Version) []byte {
	dst = appendString(dst, protocolName(v))
	dst = append(dst, byte(v))
	var f byte
	if c.CleanStart {
		f |= 0x02
	}
	if w := c.Will; w != nil {
		f |= 0x04 | w.QoS<<3
		if w.Retain {
			f |= 0x20
		}
	}
	if c.PasswordFlag {
		f |= 0x40
	}
	if c.UsernameFlag {
		f |= 0x80
	}
	dst = append(dst, f)
	dst = appendUint16(dst, c.KeepAlive)
	if v == V5 {
		n, _ := c.Props.size(TypeConnect)
		dst = c.Props.appendTo(dst, n)
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			n, _ := w.Props.size(willProps)
			dst = w.Props.appendTo(dst, n)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if c.UsernameFlag {
		dst = appendString(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBinary(dst, c.Password)
	}
	return dst
}

func (c *Connect) decode(d *decoder, _ FixedHeader, _ Version) error {
	t := TypeConnect
	name, err := d.raw("protocol name")
	if err != nil {
		return err
	}
	level, err := d.byte("protocol level")
	if err != nil {
		return err
	}
	// A CONNECT carries its own level, whatever the connection's.
	switch {
	case string(name) == "MQTT" && (level == byte(V311) || level == byte(V5)):
	case string(name) == "MQIsdp" && level == byte(V31):
	case string(name) == "MQTT" || string(name) == "MQIsdp":
		// [MQTT-3.1.2-2]: answered with CONNACK 0x84 (0x01 in 3.1.1).
		return reasonErr(UnsupportedProtocolVersion, t, fmt.Sprintf("protocol level %d", level))
	default:
		// Not MQTT at all: a server closes without CONNACK
		// [MQTT-3.1.2-1] [MQTT-3.1.4-1], as Mosquitto does.
		return malformed(t, fmt.Sprintf("protocol name %q [MQTT-3.1.2-1]", name))
	}
	v := Version(level)
	c.Version = v
	f, err := d.byte("connect flags")
	if err != nil {
		return err
	}
	if f&0x01 != 0 {
		return malformed(t, "reserved connect flag set [MQTT-3.1.2-3]")
	}
	c.CleanStart = f&0x02 != 0
	willFlag := f&0x04 != 0
	willQoS := f >> 3 & 3
	willRetain := f&0x20 != 0
	c.PasswordFlag = f&0x40 != 0
	c.UsernameFlag = f&0x80 != 0
	if willQoS == 3 {
		return malformed(t, "will QoS 3 [MQTT-3.1.2-12]")
	}
	if !willFlag && (willQoS != 0 || willRetain) {
		return malformed(t, "will QoS or retain without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")
	}
	if v != V5 && c.PasswordFlag && !c.UsernameFlag {
		return malformed(t, "password flag without user name flag [MQTT-3.1.2-22]")
	}
	if c.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return err
	}
	if v == V5 {
		if err := c.Props.decode(d, t); err != nil {
			return err
		}
	}
	if c.ClientID, err = d.string("client identifier"); err != nil {
		return err
	}
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v == V5 {
			if err := w.Props.decode(d, willProps); err != nil {
				return err
			}
		}
		if w.Topic, err = d.string("will topic"); err != nil {
			return err
		}
		if err := checkTopicName(t, w.Topic); err != nil {
			return err
		}
		if w.Payload, err = d.binary("will payload"); err != nil {
			return err
		}
		c.Will = w
	}
	if c.UsernameFlag {
		if c.Username, err = d.string("user name"); err != nil {
			return err
		}
	}
	if c.PasswordFlag {
		if c.Password, err = d.binary("password"); err != nil {
			return err
		}
	}
	return d.done()
}
