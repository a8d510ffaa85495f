package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/console"
	"golang.org/x/sync/errgroup"
)

// consolePart is the daemon's part of the web console.
type consolePart struct {
	c      *console.Console // nil without [console] enabled
	oldest oldestTimes      // the queue ages it shows
}

// newConsole builds the web console of c, or nil when it is off. Its
// commands go in the one way commands go in (gateway.Commands.Console):
// the user meets the broker's ACL, then the gate remote commands pass.
func newConsole(c *config.Config, d *daemon) (*console.Console, error) {
	cn := c.Console
	if !cn.Enabled || c.Health.Listen == "" {
		return nil, nil
	}
	o := consoleOptions(c, d.log)
	o.Subscriber = brokerPort{d.srv}
	o.Status = func() console.Status { return d.consoleStatus(c) }
	o.Devices = func() []string {
		var names []string
		for _, dc := range d.field().cfg.Devices {
			names = append(names, dc.Name)
		}
		return names
	}
	if cn.Commands {
		o.Command = d.cmds.Console
		o.Verify = passwordCheck(d.srv.CheckPassword, cn.Users)
		o.Commands = func() []console.CommandRule {
			// The current field's rules: a reload's new commands show.
			var rules []console.CommandRule
			for _, dev := range d.field().cfg.Devices {
				for _, cm := range dev.Commands {
					rules = append(rules, console.CommandRule{
						Device: dev.Name, Name: cm.Name, Type: cm.Type, Min: cm.Min, Max: cm.Max,
						Values: cm.Values, Require: cm.Require,
					})
				}
			}
			return rules
		}
	}
	cs, err := console.New(o)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return cs, nil
}

// mountConsole serves the console, if on, under /console/ of mux.
func (d *daemon) mountConsole(mux *http.ServeMux) {
	if d.console.c != nil {
		mux.Handle("/console/", d.console.c)
	}
}

// runConsole runs the console, if on, in g until ctx is done. A console
// that fails is logged; the gateway runs on.
func (d *daemon) runConsole(ctx context.Context, g *errgroup.Group) {
	if d.console.c == nil {
		return
	}
	g.Go(func() error {
		if err := d.console.c.Run(ctx); err != nil {
			d.log.Error("console stopped", "err", err)
		}
		return nil
	})
}

// passwordCheck verifies a console login with check, the broker's
// CheckPassword: the same accounts, and the same login guard as a CONNECT
// (backoff for the source and the user, bounded checks). users, when not
// empty, are the only accounts allowed; an unlisted user's password is
// checked all the same (and refused), so that the answer takes as long as
// for a listed one and its time does not tell which accounts may log in.
func passwordCheck(check func(source, user string, password []byte) bool, users []string) func(source, user string, password []byte) bool {
	return func(source, user string, password []byte) bool {
		ok := check(source, user, password)
		return ok && (len(users) == 0 || slices.Contains(users, user))
	}
}

// consoleListener wraps the health listener in TLS when [console] has a
// certificate.
func consoleListener(c *config.Config, ln net.Listener) (net.Listener, error) {
	cn := c.Console
	if !cn.Enabled || cn.TLSCert == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(cn.TLSCert, cn.TLSKey)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: console tls: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// consoleWarnings are the console's part of Warnings.
func consoleWarnings(c *config.Config) []string {
	var w []string
	cn := c.Console
	if cn.Enabled && cn.InsecureRemote && cn.TLSCert == "" && !config.LoopbackAddr(c.Health.Listen) {
		w = append(w, fmt.Sprintf("console.insecure_remote: the console is served on %s without TLS: passwords, session cookies and readings cross the network in clear", c.Health.Listen))
	}
	return w
}

// consoleStatus collects what the console shows besides the readings.
func (d *daemon) consoleStatus(c *config.Config) console.Status {
	var st console.Status
	f := d.field()
	devs := f.devices()
	for _, dc := range f.cfg.Devices {
		st.Devices = append(st.Devices, console.DeviceState{Name: dc.Name, State: devs[dc.Name]})
	}
	now := time.Now()
	for _, cl := range d.q.Stats().Classes {
		qc := console.QueueClass{Name: cl.Name, Records: cl.Len, Bytes: cl.Bytes, Dropped: cl.Dropped}
		if cl.Len > 0 {
			if t := d.console.oldest.get(d.q, cl.Name, cl.Cursor, now); !t.IsZero() {
				qc.Oldest = max(0, now.Sub(t).Seconds())
			}
		}
		st.Queue = append(st.Queue, qc)
	}
	bs := d.srv.Stats()
	st.Broker = console.BrokerState{Clients: bs.Clients, MessagesReceived: bs.MessagesReceived, MessagesSent: bs.MessagesSent}
	if d.up != nil {
		us := d.up.Status()
		// The protocol and QoS in effect, as negotiated with the cloud;
		// the configured ones until the first connection.
		proto, qos := us.Protocol, int(us.MaxQoS)
		if proto == "" {
			proto = c.Uplink.Protocol
		}
		if qos == 0 {
			qos = c.Uplink.QoS
		}
		day, month := us.Meter.DayUsage.Total(), us.Meter.MonthUsage.Total()
		st.Uplink = &console.UplinkState{
			Connected: us.Connected, Protocol: proto, QoS: qos,
			Acked: us.Acked, InFlight: us.InFlight, LastError: us.LastError,
			BytesToday: &day, BytesMonth: &month,
		}
	}
	return st
}

// oldestTimes caches, per queue class, the time of the oldest record
// waiting. Finding it reads its segment from the start (Scan), so it is
// looked up again only when the class's cursor moved, and then at most
// every oldestEvery.
type oldestTimes struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]oldestTime
}

type oldestTime struct {
	cursor uint64
	t      time.Time // the record's time; zero if unknown
	at     time.Time // when it was looked up
}

const oldestEvery = 10 * time.Second

func (o *oldestTimes) get(q *buffer.Queue, class string, cursor uint64, now time.Time) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]oldestTime{}
	}
	c, ok := o.m[class]
	if ok && (c.cursor == cursor || now.Sub(c.at) < oldestEvery) {
		return c.t
	}
	c = oldestTime{cursor: cursor, at: now}
	q.Scan(class, cursor+1, func(_ uint64, b []byte) bool {
		var r gateway.Record
		if r.UnmarshalBinary(b) == nil {
			c.t = r.Time
		}
		return false
	})
	o.m[class] = c
	return c.t
}
