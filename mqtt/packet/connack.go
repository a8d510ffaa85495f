package packet

import "fmt"

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

// v3Codes maps 3.1.1 CONNACK return codes to reason codes [MQTT-3.2.2.3].
var v3Codes = [...]ReasonCode{Success, UnsupportedProtocolVersion, ClientIDNotValid,
	ServerUnavailable, BadUsernameOrPassword, NotAuthorized}

// ReturnCodeV3 returns the 3.1.1 CONNACK return code for c: the reason
// code of the same meaning, 3 (server unavailable) for ServerBusy,
// Banned and other refusals without a 3.1.1 counterpart.
func (c ReasonCode) ReturnCodeV3() byte {
	for i, rc := range v3Codes {
		if rc == c {
			return byte(i)
		}
	}
	if c <= 5 {
		return byte(c) // already a 3.1.1 return code
	}
	return 3
}

func (*Connack) flags() byte { return 0 }

func (c *Connack) size(v Version) (int, error) {
	if c.SessionPresent && c.Code != Success {
		return 0, protocolErr(TypeConnack, "session present with a refusal [MQTT-3.2.2-6]")
	}
	if v != V5 {
		return 2, nil
	}
	if err := checkCode(TypeConnack, c.Code); err != nil {
		return 0, err
	}
	pn, err := c.Props.size(TypeConnack)
	if err != nil {
		return 0, err
	}
	return 2 + vbiLen(uint32(pn)) + pn, nil
}

func (c *Connack) appendBody(dst []byte, v Version) []byte {
	var f byte
	if c.SessionPresent {
		f = 1
	}
	if v != V5 {
		return append(dst, f, c.Code.ReturnCodeV3())
	}
	dst = append(dst, f, byte(c.Code))
	pn, _ := c.Props.size(TypeConnack)
	return c.Props.appendTo(dst, pn)
}

func (c *Connack) decode(d *decoder, _ FixedHeader, v Version) error {
	t := TypeConnack
	f, err := d.byte("acknowledge flags")
	if err != nil {
		return err
	}
	if f&^1 != 0 {
		return malformed(t, "reserved acknowledge flags set [MQTT-3.2.2-1]")
	}
	c.SessionPresent = f == 1
	code, err := d.byte("reason code")
	if err != nil {
		return err
	}
	if v != V5 {
		if int(code) >= len(v3Codes) {
			return malformed(t, fmt.Sprintf("return code %d [MQTT-3.2.2.3]", code))
		}
		c.Code = v3Codes[code]
	} else {
		c.Code = ReasonCode(code)
		if err := checkCode(t, c.Code); err != nil {
			return err
		}
	}
	if c.SessionPresent && c.Code != Success {
		// [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4])
		return protocolErr(t, "session present with a refusal [MQTT-3.2.2-6]")
	}
	if v == V5 {
		if err := c.Props.decode(d, t); err != nil {
			return err
		}
	}
	return d.done()
}
