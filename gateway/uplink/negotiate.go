package uplink

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// parseURLs returns the host:port of first and each of more (duplicates
// dropped), and whether they use TLS; they must agree on it.
func parseURLs(first string, more []string) (addrs []string, tlsOn bool, err error) {
	var errs []error
	seen := map[string]bool{}
	for i, raw := range append([]string{first}, more...) {
		key := "url"
		if i > 0 {
			key = fmt.Sprintf("urls[%d]", i-1)
		}
		u, perr := url.Parse(raw)
		var on bool
		switch {
		case perr != nil:
			errs = append(errs, fmt.Errorf("%s: %q: %w", key, raw, perr))
			continue
		case u.Scheme == "mqtt" || u.Scheme == "tcp":
		case u.Scheme == "mqtts" || u.Scheme == "ssl" || u.Scheme == "tls":
			on = true
		default:
			errs = append(errs, fmt.Errorf("%s: %q: scheme must be mqtt or mqtts", key, raw))
			continue
		}
		if i == 0 {
			tlsOn = on
		} else if on != tlsOn {
			errs = append(errs, fmt.Errorf("%s: %q: every url must use TLS or none", key, raw))
			continue
		}
		addr := u.Host
		if u.Port() == "" {
			port := "1883"
			if on {
				port = "8883"
			}
			addr = net.JoinHostPort(u.Hostname(), port)
		}
		if !seen[addr] {
			seen[addr] = true
			addrs = append(addrs, addr)
		}
	}
	return addrs, tlsOn, errors.Join(errs...)
}

// qosFor decides a record's QoS when it is sent, not when it was queued:
// the gateway queues its records with QoS 0, which takes the uplink's qos
// of the moment; a record that asks for a QoS (a [[uplink.forward]] rule's,
// or one queued by an earlier version, which stamped the qos of its time)
// gets it. Either way at most what the cloud takes: the client lowers it
// too, for what it learns after this choice.
func (u *Uplink) qosFor(asked byte, cl *client.Client) byte {
	q := asked
	if q == 0 {
		q = u.o.QoS
	}
	return min(q, cl.MaxQoS())
}

// delivered counts a record sent at qos, below the QoS it asked for
// (asked, 0: the uplink's), because the cloud takes less.
func (u *Uplink) delivered(asked, qos byte, err error) {
	if asked == 0 {
		asked = u.o.QoS
	}
	if err == nil && qos < asked {
		u.downgraded.Add(1)
	}
}

// negotiated fills s with what the client negotiated.
func (u *Uplink) negotiated(s *Status, cs client.Status) {
	s.Server = cs.Addr
	switch cs.Version {
	case packet.V5:
		s.Protocol = "5.0"
	case packet.V311:
		s.Protocol = "3.1.1"
	}
	s.ProtocolReason = cs.VersionReason
	s.MaxQoS = min(u.o.QoS, cs.MaxQoS)
	s.QoSReason = cs.QoSReason
	if cs.MaxQoS >= u.o.QoS {
		s.QoSReason = ""
	}
	s.Downgraded += cs.Downgraded
}
