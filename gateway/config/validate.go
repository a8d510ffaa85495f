package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/mqtt/topic"
)

var snakeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Validate checks c without any I/O and returns every problem joined, each
// with its file:line (when c came from Load) and key path. It does not
// check driver options: the daemon hands those to each driver.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.gateway()
	v.broker()
	v.queue()
	v.uplink()
	v.profile()
	if c.Health.Listen != "" {
		v.addr("health.listen", c.Health.Listen)
	}
	if c.Health.WatchdogInterval < 0 {
		v.add("health.watchdog_interval", "must not be negative")
	}
	v.commands()
	v.console()
	v.buses()
	v.devices()
	v.simulators()
	slices.SortStableFunc(v.probs, func(a, b *Problem) int {
		if a.Line == 0 || b.Line == 0 {
			return 0
		}
		return a.Line - b.Line
	})
	return join(v.probs)
}

type validator struct {
	c     *Config
	probs []*Problem
}

// add records a problem at the indexed key path (device[2].interval).
func (v *validator) add(path, format string, args ...any) {
	ps := v.c.pos
	p := &Problem{Line: ps.line(path), Msg: fmt.Sprintf(format, args...)}
	if ps != nil {
		p.File = ps.file
		p.Subject, p.Path = ps.subject(path)
	} else {
		p.Path = path
	}
	if p.Subject == "" || strings.HasSuffix(p.Subject, "]") {
		// Built in code or unnamed: name the element from the struct.
		if m := elemRE.FindStringSubmatch(path); m != nil {
			p.Subject, p.Path = v.name(m[1], m[2]), m[3]
		}
	}
	v.probs = append(v.probs, p)
}

func (v *validator) name(kind, idx string) string {
	i, _ := strconv.Atoi(idx)
	var n string
	switch kind {
	case "device":
		n = v.c.Devices[i].Name
	case "bus":
		n = v.c.Buses[i].Name
	case "simulator":
		n = v.c.Simulators[i].Name
	}
	if n == "" {
		return fmt.Sprintf("%s[%d]", kind, i)
	}
	return fmt.Sprintf("%s %q", kind, n)
}

func (v *validator) addr(path, a string) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		v.add(path, "%q is not host:port", a)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(path, "%q: bad port", a)
	}
	_ = host
}

func (v *validator) gateway() {
	g := v.c.Gateway
	switch {
	case g.ID == "":
		v.add("gateway.id", "must be set (e.g. id = \"${VIN}\")")
	case strings.ContainsAny(g.ID, "/+#\x00") || len(g.ID) > 128:
		v.add("gateway.id", "%q must be one topic level (no / + #), at most 128 bytes", g.ID)
	}
	if !strings.Contains(g.TopicPrefix, "{id}") && g.TopicPrefix == "" {
		v.add("gateway.topic_prefix", "must not be empty")
	} else if err := topic.ValidName(g.Prefix()); err != nil || strings.HasSuffix(g.TopicPrefix, "/") {
		v.add("gateway.topic_prefix", "%q is not a valid topic name without a trailing /", g.TopicPrefix)
	}
	if g.StateDir == "" {
		v.add("gateway.state_dir", "must not be empty")
	}
}

func (v *validator) broker() {
	b := v.c.Broker
	for _, l := range []struct{ key, val string }{{"listen", b.Listen}, {"tls_listen", b.TLSListen}, {"ws_listen", b.WSListen}, {"wss_listen", b.WSSListen}} {
		if l.val != "" {
			v.addr("broker."+l.key, l.val)
		}
	}
	if b.TLSListen != "" && (b.TLSCert == "" || b.TLSKey == "") {
		v.add("broker.tls_listen", "needs tls_cert and tls_key")
	}
	if b.WSSListen != "" && (b.TLSCert == "" || b.TLSKey == "") {
		v.add("broker.wss_listen", "needs tls_cert and tls_key")
	}
	if b.TLSClientCA != "" && b.TLSListen == "" && b.WSSListen == "" {
		v.add("broker.tls_client_ca", "needs tls_listen or wss_listen")
	}
	if b.MaxPacketSize < 64 || b.MaxPacketSize > 268435455 {
		v.add("broker.max_packet_size", "%d outside 64..268435455", b.MaxPacketSize)
	}
	if b.MaxKeepalive < 0 || b.MaxKeepalive.D().Seconds() > 65535 {
		v.add("broker.max_keepalive", "outside 0..65535s")
	}
	if b.ReceiveMaximum < 1 || b.ReceiveMaximum > 65535 {
		v.add("broker.receive_maximum", "%d outside 1..65535", b.ReceiveMaximum)
	}
	if b.MaxInflight < 1 || b.MaxInflight > 65535 {
		v.add("broker.max_inflight", "%d outside 1..65535", b.MaxInflight)
	}
	if b.MaxQueued < 0 {
		v.add("broker.max_queued", "must not be negative")
	}
	if b.MaxConnections < 1 {
		v.add("broker.max_connections", "must be at least 1")
	}
	if b.MaxSessionExpiry < 0 {
		v.add("broker.max_session_expiry", "must not be negative")
	}
	if b.MaxRetained < -1 {
		v.add("broker.max_retained", "%d: want at least 1, or -1 for no limit", b.MaxRetained)
	}
	if b.MaxSubscriptions < -1 {
		v.add("broker.max_subscriptions", "%d: want at least 1, or -1 for no limit", b.MaxSubscriptions)
	}
	if b.DenySubscribeCode != 0x80 && b.DenySubscribeCode != 0x87 {
		v.add("broker.deny_subscribe_code", "%d must be 128 (0x80) or 135 (0x87)", b.DenySubscribeCode)
	}
	if b.SysInterval < 0 {
		v.add("broker.sys_interval", "must not be negative")
	}
	if b.SyncInterval < 0 {
		v.add("broker.sync_interval", "must not be negative")
	}
	if b.TopicAliasMaximum < -1 || b.TopicAliasMaximum > 65535 {
		v.add("broker.topic_alias_maximum", "%d outside -1..65535", b.TopicAliasMaximum)
	}
	if b.MaxWriteBuffer < 4096 {
		v.add("broker.max_write_buffer", "%d below 4096", b.MaxWriteBuffer)
	}
	for i, o := range b.WSAllowedOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			v.add(fmt.Sprintf("broker.ws_allowed_origins[%d]", i), "%q: want scheme://host[:port] or *", o)
		}
	}
	v.brokerLimits()
	for i, r := range b.ACL {
		p := fmt.Sprintf("broker.acl[%d]", i)
		if r.Permission != "allow" && r.Permission != "deny" {
			v.add(p+".permission", "%q must be allow or deny", r.Permission)
		}
		if r.Action != "publish" && r.Action != "subscribe" && r.Action != "all" {
			v.add(p+".action", "%q must be publish, subscribe or all", r.Action)
		}
		f := strings.NewReplacer("%u", "u", "%c", "c").Replace(r.Topic)
		if err := topic.ValidFilter(f); err != nil || r.Topic == "" {
			v.add(p+".topic", "%q is not a valid topic filter", r.Topic)
		}
	}
}

func (v *validator) queue() {
	q := v.c.Queue
	if q.Dir == "" {
		v.add("queue.dir", "must not be empty")
	}
	switch q.Fsync {
	case "always", "interval", "never":
	default:
		v.add("queue.fsync", "%q must be always, interval or never", q.Fsync)
	}
	if q.FsyncInterval <= 0 {
		v.add("queue.fsync_interval", "must be positive")
	}
	if q.SegmentSize < 4096 {
		v.add("queue.segment_size", "%d below 4096", q.SegmentSize)
	}
	for _, cl := range []struct {
		name string
		c    Class
	}{{"alarm", q.Alarm}, {"telemetry", q.Telemetry}} {
		p := "queue." + cl.name
		if cl.c.MaxBytes < q.SegmentSize {
			v.add(p+".max_bytes", "%d below segment_size %d", cl.c.MaxBytes, q.SegmentSize)
		}
		if cl.c.Policy != "drop_oldest" && cl.c.Policy != "reject" {
			v.add(p+".policy", "%q must be drop_oldest or reject", cl.c.Policy)
		}
		if cl.c.MaxAge < 0 {
			v.add(p+".max_age", "must not be negative")
		}
	}
}

func (v *validator) uplink() {
	u := v.c.Uplink
	if u.URL == "" {
		return
	}
	v.uplinkURLs()
	if u.ClientID == "" || len(u.ClientID) > 65535 {
		v.add("uplink.client_id", "must be set")
	}
	if u.Password != "" && u.PasswordFile != "" {
		v.add("uplink.password", "set password or password_file, not both")
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		v.add("uplink.cert_file", "cert_file and key_file go together")
	}
	if u.QoS != 1 && u.QoS != 2 {
		v.add("uplink.qos", "%d must be 1 or 2", u.QoS)
	}
	if u.Protocol != "5" && u.Protocol != "3.1.1" {
		v.add("uplink.protocol", "%q must be \"5\" or \"3.1.1\"", u.Protocol)
	}
	if u.Keepalive < 0 || u.Keepalive.D().Seconds() > 65535 {
		v.add("uplink.keepalive", "outside 0..65535s")
	}
	if u.ReconnectMin <= 0 {
		v.add("uplink.reconnect_min", "must be positive")
	}
	if u.ReconnectMax < u.ReconnectMin {
		v.add("uplink.reconnect_max", "%v below reconnect_min %v", u.ReconnectMax.D(), u.ReconnectMin.D())
	}
	if u.ReconnectSpread < 0 {
		v.add("uplink.reconnect_spread", "must not be negative")
	}
	if u.SessionExpiry < 0 {
		v.add("uplink.session_expiry", "must not be negative")
	}
	if u.TopicPrefix == v.c.Gateway.Prefix() {
		// the default, checked as gateway.topic_prefix
	} else if err := topic.ValidName(u.TopicPrefix); err != nil || strings.HasSuffix(u.TopicPrefix, "/") {
		v.add("uplink.topic_prefix", "%q is not a valid topic name without a trailing /", u.TopicPrefix)
	}
	v.uplinkBudget()
	v.uplinkBatch()
	v.uplinkRules()
}

// uplinkURLs checks url and urls: MQTT URLs with a host and a port, one
// scheme for all.
func (v *validator) uplinkURLs() {
	u := v.c.Uplink
	scheme := ""
	for i, raw := range append([]string{u.URL}, u.URLs...) {
		key := "uplink.url"
		if i > 0 && raw == u.URL {
			continue // url defaults to urls[0]
		}
		if i > 0 {
			key = fmt.Sprintf("uplink.urls[%d]", i-1)
		}
		pu, err := url.Parse(raw)
		switch {
		case err != nil:
			v.add(key, "%q: %v", raw, err)
		case pu.Scheme != "mqtt" && pu.Scheme != "mqtts":
			v.add(key, "%q: scheme must be mqtt or mqtts", raw)
		case pu.Host == "" || pu.Port() == "":
			v.add(key, "%q: want scheme://host:port", raw)
		case scheme != "" && pu.Scheme != scheme:
			v.add(key, "%q: every url of the cloud must use %s", raw, scheme)
		default:
			scheme = pu.Scheme
		}
	}
}

func (v *validator) uplinkBudget() {
	b := v.c.Uplink.Budget
	if b.Monthly < 0 {
		v.add("uplink.budget.monthly", "must not be negative")
	}
	if d := b.MonthStartDay; d < 1 || d > 28 {
		v.add("uplink.budget.month_start_day", "%d outside 1..28 (every month has it)", d)
	}
	if b.ThinInterval <= 0 {
		v.add("uplink.budget.thin_interval", "must be positive")
	}
}

// uplinkBatch checks the bounds of gateway/uplink.BatchOptions.
func (v *validator) uplinkBatch() {
	b := v.c.Uplink.Batch
	if b == nil {
		return
	}
	if b.MaxRecords < 1 || b.MaxRecords > 65535 {
		v.add("uplink.batch.max_records", "%d outside 1..65535", b.MaxRecords)
	}
	if b.MaxBytes < 1024 || b.MaxBytes > 16<<20 {
		v.add("uplink.batch.max_bytes", "%d outside 1KiB..16MiB", b.MaxBytes)
	}
	if b.MaxDelay < 0 {
		v.add("uplink.batch.max_delay", "must not be negative")
	}
	if b.Compression != "deflate" && b.Compression != "none" {
		v.add("uplink.batch.compression", "%q must be \"deflate\" or \"none\"", b.Compression)
	}
}

// uplinkRules checks the forward and receive rules.
func (v *validator) uplinkRules() {
	u := v.c.Uplink
	for _, rs := range []struct {
		key   string
		rules []BridgeRule
	}{{"forward", u.Forward}, {"receive", u.Receive}} {
		for i, r := range rs.rules {
			p := fmt.Sprintf("uplink.%s[%d]", rs.key, i)
			if err := topic.ValidFilter(r.Filter); err != nil || r.Filter == "" {
				v.add(p+".filter", "%q is not a valid topic filter", r.Filter)
			}
			if r.Prefix != "" && topic.ValidName(r.Prefix) != nil {
				v.add(p+".prefix", "%q is not a valid topic name", r.Prefix)
			}
			if r.QoS < 0 || r.QoS > 2 {
				v.add(p+".qos", "%d outside 0..2", r.QoS)
			}
		}
	}
}

var busTypes = []string{"modbus_rtu", "modbus_tcp", "serial", "i2c", "gpio"}

func (v *validator) buses() {
	seen := map[string]bool{}
	for i, b := range v.c.Buses {
		p := fmt.Sprintf("bus[%d]", i)
		v.snake(p+".name", b.Name, seen)
		if !slices.Contains(busTypes, b.Type) {
			v.add(p+".type", "%q must be one of %s", b.Type, strings.Join(busTypes, ", "))
		}
		if b.Device == "" {
			v.add(p+".device", "must be set")
		} else if sim, ok := strings.CutPrefix(b.Device, "simulator:"); ok {
			if !slices.ContainsFunc(v.c.Simulators, func(s Simulator) bool { return s.Name == sim }) {
				v.add(p+".device", "no [[simulator]] named %q", sim)
			}
		} else if b.Type == "modbus_tcp" {
			v.addr(p+".device", b.Device)
		}
		if b.Type == "modbus_rtu" || b.Type == "serial" {
			if b.Baud < 50 || b.Baud > 4000000 {
				v.add(p+".baud", "%d outside 50..4000000", b.Baud)
			}
			if b.Parity != "N" && b.Parity != "E" && b.Parity != "O" {
				v.add(p+".parity", "%q must be N, E or O", b.Parity)
			}
			if b.DataBits < 5 || b.DataBits > 8 {
				v.add(p+".data_bits", "%d outside 5..8", b.DataBits)
			}
			if b.StopBits != 1 && b.StopBits != 2 {
				v.add(p+".stop_bits", "%d must be 1 or 2", b.StopBits)
			}
		}
		if b.Timeout <= 0 {
			v.add(p+".timeout", "must be positive")
		}
		if b.Gap < 0 {
			v.add(p+".gap", "must not be negative")
		}
		if b.Retries < 0 || b.Retries > 10 {
			v.add(p+".retries", "%d outside 0..10", b.Retries)
		}
	}
}

func (v *validator) snake(path, name string, seen map[string]bool) {
	switch {
	case name == "":
		v.add(path, "must be set")
	case !snakeRE.MatchString(name) || len(name) > 64:
		v.add(path, "%q must be lower_snake_case (a-z, 0-9, _), at most 64 bytes", name)
	case seen[name]:
		v.add(path, "%q used twice", name)
	}
	seen[name] = true
}

func (v *validator) devices() {
	seen := map[string]bool{}
	buses := map[string]bool{}
	for _, b := range v.c.Buses {
		buses[b.Name] = true
	}
	devs := map[string]bool{}
	for _, d := range v.c.Devices {
		devs[d.Name] = true
	}
	for i, d := range v.c.Devices {
		p := fmt.Sprintf("device[%d]", i)
		v.snake(p+".name", d.Name, seen)
		if d.Kind == "" {
			v.add(p+".kind", "must be set")
		}
		if d.Bus != "" && !buses[d.Bus] {
			v.add(p+".bus", "no [[bus]] named %q", d.Bus)
		}
		if d.Interval <= 0 {
			v.add(p+".interval", "must be positive")
		}
		cmds := map[string]bool{}
		for j, c := range d.Commands {
			cp := fmt.Sprintf("%s.command[%d]", p, j)
			v.snake(cp+".name", c.Name, cmds)
			switch c.Type {
			case "bool", "number", "string":
			default:
				v.add(cp+".type", "%q must be bool, number or string", c.Type)
			}
			if (c.Min != nil || c.Max != nil) && c.Type != "number" {
				v.add(cp+".min", "min and max only apply to type = \"number\"")
			}
			if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
				v.add(cp+".max", "%v below min %v", *c.Max, *c.Min)
			}
			if len(c.Values) > 0 && c.Type != "string" {
				v.add(cp+".values", "values only apply to type = \"string\"")
			}
			for k, r := range c.Require {
				dev, point, ok := strings.Cut(r, ".")
				switch {
				case !ok || dev == "" || point == "":
					v.add(fmt.Sprintf("%s.require[%d]", cp, k), "%q must be device.point", r)
				case !devs[dev]:
					v.add(fmt.Sprintf("%s.require[%d]", cp, k), "no [[device]] named %q", dev)
				}
			}
			if c.AutoOff < 0 {
				v.add(cp+".auto_off", "must not be negative")
			} else if c.AutoOff > 0 && c.Type != "bool" {
				v.add(cp+".auto_off", "only applies to type = \"bool\"")
			}
			if c.RateLimit < 0 {
				v.add(cp+".rate_limit", "must not be negative")
			}
			if c.Timeout <= 0 {
				v.add(cp+".timeout", "must be positive")
			}
		}
	}
}

func (v *validator) simulators() {
	seen := map[string]bool{}
	for i, s := range v.c.Simulators {
		p := fmt.Sprintf("simulator[%d]", i)
		v.snake(p+".name", s.Name, seen)
		if s.Kind == "" {
			v.add(p+".kind", "must be set")
		}
		if s.Listen != "" {
			v.addr(p+".listen", s.Listen)
		}
	}
}
