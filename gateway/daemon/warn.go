package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// Warnings returns what in a valid configuration c is allowed but unsafe
// or cannot work as configured, each with its file:line and key path:
// the settings the chosen cloud profile refuses, a listener beyond
// loopback open to anonymous clients, a broker without an ACL, an ACL that
// lets anonymous clients or every account publish commands or on the
// gateway's own topics, an ACL naming a user who cannot be told apart from
// anyone else (no password file), an [[uplink.receive]] rule that brings
// cloud messages onto the command topics (past the checks of remote
// commands), and a retained budget too small for the gateway's own
// retained topics. `edgegw -check` prints them; the daemon logs them at
// start.
func Warnings(c *config.Config, reg *drivers.Registry) []error {
	var ws []error
	for _, p := range c.ProfileWarnings() { // settings the chosen cloud refuses
		ws = append(ws, p)
	}
	for _, w := range consoleWarnings(c) {
		ws = append(ws, errors.New(w))
	}
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
		if anonymous && l.addr != "" && !l.certOnly && !config.LoopbackAddr(l.addr) {
			ws = append(ws, c.Problemf(l.key, "%q is not loopback and allow_anonymous = true: anyone who reaches it may connect without an account", l.addr))
		}
	}
	if len(b.ACL) == 0 && b.ACLFile == "" {
		ws = append(ws, c.Problemf("broker", "no ACL ([[broker.acl]] or acl_file): every client may publish commands and on the gateway's own topics"))
	}
	// Anonymous clients may connect: allowed, or by default (as the broker
	// decides it).
	mayBeAnonymous := broker.AnonymousAllowed(brokerOptions(c, slog.New(slog.DiscardHandler)))
	ws = append(ws, aclOpenings(c, mayBeAnonymous)...)
	anyName := b.PasswordFile == "" && mayBeAnonymous
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
	buses, closeBuses := inertBuses(c)
	defer closeBuses()
	for _, d := range c.Devices {
		f, ok := reg.Lookup(d.Kind)
		if !ok {
			continue
		}
		spec := drivers.Spec{Name: d.Name, Decode: d.Decode, Log: slog.New(slog.DiscardHandler)}
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

// aclOpenings warns when the ACL lets a client named in no rule (an
// anonymous one, when anonymous clients may connect, or any account)
// publish on a command topic or one of the gateway's own. It reads the
// rules as the broker does: in order, the first that matches decides,
// anything unmatched is denied. No rules at all is warned about apart.
func aclOpenings(c *config.Config, anonymous bool) []error {
	b := c.Broker
	var rules []config.ACLRule
	rules = append(rules, b.ACL...)
	if b.ACLFile != "" {
		if f, err := os.Open(b.ACLFile); err == nil {
			fr, err := broker.ParseACL(f)
			f.Close()
			if err != nil {
				return nil // the broker refuses to start, with the reason
			}
			for _, r := range fr {
				rules = append(rules, config.ACLRule{User: r.User, Permission: r.Permission, Action: r.Action, Topic: r.Topic})
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	p := c.Gateway.Prefix()
	dev := "device"
	if len(c.Devices) > 0 {
		dev = c.Devices[0].Name
	}
	var samples []string
	for _, d := range c.Devices {
		for _, cm := range d.Commands {
			samples = append(samples, p+"/cmd/"+d.Name+"/"+cm.Name)
		}
	}
	if len(samples) == 0 {
		samples = append(samples, p+"/cmd/"+dev+"/command")
	}
	samples = append(samples, p+"/telemetry/"+dev, p+"/alarm/"+dev+"/offline", p+"/devices/"+dev+"/status", samples[0]+"/result")
	var ws []error
	for _, u := range []struct{ name, who string }{{"", "anonymous clients"}, {"edgegw-check-nobody", "every account"}} {
		if u.name == "" && !anonymous {
			continue
		}
		var open []string
		for _, s := range samples {
			if aclAllowsPublish(rules, u.name, s) {
				open = append(open, s)
			}
		}
		if len(open) > 0 {
			ws = append(ws, c.Problemf("broker.acl[0]", "%s may publish on %s: name the roles that may (e.g. ops) and deny the rest", u.who, strings.Join(open, ", ")))
		}
	}
	return ws
}

// aclAllowsPublish applies rules to a publish by user ("" anonymous) to name.
func aclAllowsPublish(rules []config.ACLRule, user, name string) bool {
	for _, r := range rules {
		switch {
		case r.User == "*" && user == "", r.User != "*" && r.User != user:
			continue
		case r.Action != "publish" && r.Action != "all":
			continue
		}
		f := r.Topic
		if strings.Contains(f, "%u") {
			if user == "" {
				continue
			}
			f = strings.ReplaceAll(f, "%u", user)
		}
		f = strings.ReplaceAll(f, "%c", "edgegw-check")
		if topic.Match(f, name) {
			return r.Permission == "allow"
		}
	}
	return false
}

// receivedFilter is the filter of the local topics an [[uplink.receive]]
// rule publishes to: the rule's own filter, mapped as the uplink maps a
// name.
func receivedFilter(r config.BridgeRule) string {
	return uplink.Rule{Filter: r.Filter, Prefix: r.Prefix}.Map(r.Filter)
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
