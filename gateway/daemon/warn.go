package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/edgegw/edgegw/gateway/config"
)

// Warnings returns what in a valid configuration c is allowed but unsafe
// or cannot work as configured, each with its file:line and key path:
// a listener beyond loopback open to anonymous clients, a broker without
// an ACL, an ACL naming a user who cannot be told apart from anyone else
// (no password file), an [[uplink.receive]] rule that brings cloud
// messages onto the command topics (past the checks of remote commands),
// and a retained budget too small for the gateway's own retained topics. `edgegw -check` prints them; the daemon logs them
// at start.
func Warnings(c *config.Config, reg *drivers.Registry) []error {
	var ws []error
	b := c.Broker
	anonymous := b.AllowAnonymous != nil && *b.AllowAnonymous // nil: only when every listener is loopback
	listeners := []struct {
		key, addr string
		certOnly  bool // a client certificate is required: nobody is anonymous
	}{
		{"broker.listen", b.Listen, false},
		{"broker.ws_listen", b.WSListen, false},
		{"broker.tls_listen", b.TLSListen, b.TLSClientCA != ""},
		{"broker.wss_listen", b.WSSListen, b.TLSClientCA != ""},
	}
	for _, l := range listeners {
		if anonymous && l.addr != "" && !l.certOnly && !loopback(l.addr) {
			ws = append(ws, c.Problemf(l.key, "%q is not loopback and allow_anonymous = true: anyone who reaches it may connect without an account", l.addr))
		}
	}
	if len(b.ACL) == 0 && b.ACLFile == "" {
		ws = append(ws, c.Problemf("broker", "no ACL ([[broker.acl]] or acl_file): every client may publish commands and on the gateway's own topics"))
	}
	anyName := b.PasswordFile == "" && (anonymous || b.AllowAnonymous == nil && loopbackOnly(b))
	for i, r := range b.ACL {
		if anyName && r.User != "" && r.User != "*" {
			ws = append(ws, c.Problemf(fmt.Sprintf("broker.acl[%d].user", i), "%q is named but there is no password_file: any client may log in under that name", r.User))
		}
	}
	cmdTopics := c.Gateway.Prefix() + "/cmd/+/+"
	for i, r := range c.Uplink.Receive {
		if intersects(receivedFilter(r), cmdTopics) {
			ws = append(ws, c.Problemf(fmt.Sprintf("uplink.receive[%d].filter", i), "%q brings cloud messages onto the command topics %s, where they count as local commands (expires_at optional); commands from the cloud need no receive rule", r.Filter, cmdTopics))
		}
	}
	if b.MaxRetained > 0 {
		if need := ownRetained(c, reg); need > b.MaxRetained {
			ws = append(ws, c.Problemf("broker.max_retained", "%d: the gateway alone may keep up to %d retained topics (%d devices: telemetry, status and an alarm per point)", b.MaxRetained, need, len(c.Devices)))
		}
	}
	return ws
}

// ownRetained bounds the retained topics the gateway itself keeps: per
// device its telemetry, its status and its offline alarm, and an alarm
// for each point the driver declares rules for (any may raise one).
func ownRetained(c *config.Config, reg *drivers.Registry) int {
	points := devicePoints(c, reg)
	n := 0
	for _, d := range c.Devices {
		n += 3 + points[d.Name]
	}
	return n
}

// devicePoints builds each device on an inert bus, as Check does, and
// counts the points it declares rules for; a device that cannot be built
// counts none (Check reports it).
func devicePoints(c *config.Config, reg *drivers.Registry) map[string]int {
	out := map[string]int{}
	buses := map[string]*openBus{}
	quiet := slog.New(slog.DiscardHandler)
	for _, b := range c.Buses {
		if ob, err := openBusFor(b, nil, true, nil, quiet); err == nil {
			buses[b.Name] = ob
		}
	}
	defer func() {
		for _, ob := range buses {
			ob.close()
		}
	}()
	for _, d := range c.Devices {
		f, ok := reg.Lookup(d.Kind)
		if !ok {
			continue
		}
		spec := drivers.Spec{Name: d.Name, Decode: d.Decode, Log: quiet}
		if ob := buses[d.Bus]; ob != nil {
			spec.Bus = ob.value
		}
		dev, err := f(spec)
		if err != nil {
			continue
		}
		if r, ok := dev.(poll.Ruler); ok {
			out[d.Name] = len(r.Rules())
		}
		dev.Close()
	}
	return out
}

// receivedFilter is the filter of the local topics an [[uplink.receive]]
// rule publishes to, mapped as uplink.Rule.Map maps a name.
func receivedFilter(r config.BridgeRule) string {
	if r.Prefix == "" {
		return r.Filter
	}
	base := r.Filter
	if i := strings.IndexAny(base, "+#"); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimSuffix(base, "/")
	prefix := strings.TrimSuffix(r.Prefix, "/")
	if base == "" {
		return prefix + "/" + r.Filter
	}
	return prefix + strings.TrimPrefix(r.Filter, base)
}

// intersects reports whether some topic name matches both filters.
func intersects(a, b string) bool {
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		switch {
		case al == "#" || bl == "#":
			return true
		case al != bl && al != "+" && bl != "+":
			return false
		}
		if !amore || !bmore {
			// "a/#" matches its parent level "a" too.
			return amore == bmore || amore && arest == "#" || bmore && brest == "#"
		}
		a, b = arest, brest
	}
}

// loopbackOnly reports whether every listener of b is on loopback, which
// is when the broker allows anonymous clients by default.
func loopbackOnly(b config.Broker) bool {
	for _, a := range []string{b.Listen, b.TLSListen, b.WSListen, b.WSSListen} {
		if a != "" && !loopback(a) {
			return false
		}
	}
	return true
}

// loopback reports whether addr (host:port) listens on loopback only, as
// the broker decides it.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
