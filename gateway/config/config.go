// Package config reads the gateway's one TOML file into plain structs.
//
// Loading happens in three phases, like Caddy's modules: Load decodes the
// file (unknown keys are errors, ${ENV} expanded, defaults applied by
// SetDefaults), Validate checks it without any I/O and reports every problem
// at once with its file:line and key path, and the daemon provisions (opens
// buses, dials). Per-kind driver and simulator options stay undecoded here:
// Device.Decode and Simulator.Decode hand them to the driver, which decodes
// its own struct, so drivers never import TOML. This is the only package
// that imports TOML.
package config

import (
	"github.com/BurntSushi/toml"

	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Gateway    Gateway     `toml:"gateway"`
	Broker     Broker      `toml:"broker"`
	Queue      Queue       `toml:"queue"`
	Uplink     Uplink      `toml:"uplink"`
	Health     Health      `toml:"health"`
	Commands   Commands    `toml:"commands"`
	Console    Console     `toml:"console"`
	Buses      []Bus       `toml:"bus"`
	Devices    []Device    `toml:"device"`
	Simulators []Simulator `toml:"simulator"`

	// pos maps key paths to where they are in the file; nil for a Config
	// built in code.
	pos *positions
}

// Gateway is the [gateway] table.
type Gateway struct {
	// ID names this vehicle or machine (e.g. "${VIN}"): a single topic
	// level. Required.
	ID string `toml:"id"`
	// TopicPrefix is prepended to every topic; "{id}" is replaced by ID.
	// Default "vehicles/{id}". Prefix returns it expanded.
	TopicPrefix string `toml:"topic_prefix"`
	// StateDir holds the per-device sequence numbers and recent command
	// ids, and is the default parent of the queue and broker directories.
	// Default $STATE_DIRECTORY (set by systemd) or /var/lib/edgegw.
	StateDir string `toml:"state_dir"`
}

// Prefix returns TopicPrefix with {id} replaced.
func (g Gateway) Prefix() string { return strings.ReplaceAll(g.TopicPrefix, "{id}", g.ID) }

// Broker is the [broker] table: the embedded broker's listeners and limits.
type Broker struct {
	Listen      string `toml:"listen"`        // TCP; default 127.0.0.1:1883; "" disables
	TLSListen   string `toml:"tls_listen"`    // TLS listener, needs tls_cert and tls_key
	TLSCert     string `toml:"tls_cert"`      // PEM certificate chain
	TLSKey      string `toml:"tls_key"`       // PEM key
	TLSClientCA string `toml:"tls_client_ca"` // PEM CAs: require client certificates (CN is the username)
	WSListen    string `toml:"ws_listen"`     // MQTT over WebSocket
	WSSListen   string `toml:"wss_listen"`    // MQTT over WebSocket behind TLS, needs tls_cert and tls_key
	// AllowAnonymous defaults to true only when every listener is on a
	// loopback address and none is a WebSocket listener; anonymous
	// clients over WebSocket need it set true.
	AllowAnonymous *bool `toml:"allow_anonymous"`
	// WSAllowedOrigins lists the origins (scheme://host[:port], or "*")
	// whose web pages may open ws_listen and wss_listen; empty refuses
	// every request carrying an Origin header (browsers).
	WSAllowedOrigins []string  `toml:"ws_allowed_origins"`
	PasswordFile     string    `toml:"password_file"` // lines "user:bcrypt-or-argon2id-hash"
	ACL              []ACLRule `toml:"acl"`
	MaxPacketSize    Size      `toml:"max_packet_size"`    // default 512 KiB
	MaxKeepalive     Duration  `toml:"max_keepalive"`      // default 10m
	ReceiveMaximum   int       `toml:"receive_maximum"`    // default 64
	MaxInflight      int       `toml:"max_inflight"`       // per client toward it; default 64
	MaxQueued        int       `toml:"max_queued"`         // per offline session; default 1000
	QueueQoS0        bool      `toml:"queue_qos0"`         // keep QoS 0 for offline sessions too
	MaxConnections   int       `toml:"max_connections"`    // default 100
	MaxSessionExpiry Duration  `toml:"max_session_expiry"` // default 24h
	// MaxRetained bounds the retained messages the broker holds; default
	// 10000, -1 no limit.
	MaxRetained int `toml:"max_retained"`
	// MaxSubscriptions bounds one client's subscriptions; default 1000,
	// -1 no limit.
	MaxSubscriptions int `toml:"max_subscriptions"`
	// DenySubscribeCode is the SUBACK code for a denied subscription:
	// 0x80 (default) or 0x87 (5.0 clients only).
	DenySubscribeCode int `toml:"deny_subscribe_code"`
	// Dir keeps retained messages and persistent sessions. Default
	// {state_dir}/broker; "-" keeps them in memory only.
	Dir string `toml:"dir"`
	// SysInterval is how often $SYS statistics are published; default 10s.
	SysInterval Duration `toml:"sys_interval"`
	// SyncInterval bounds the time between a change of the broker's state
	// and its snapshot on disk (the loss window of a kill); default 1s.
	SyncInterval Duration `toml:"sync_interval"`
	// ACLFile is a Mosquitto-style ACL file, checked after ACL.
	ACLFile string `toml:"acl_file"`
	// TopicAliasMaximum is the number of topic aliases a 5.0 client may
	// use, and the most the broker assigns to one; default 16, -1 none.
	TopicAliasMaximum int `toml:"topic_alias_maximum"`
	// MaxWriteBuffer bounds the bytes waiting to be written to one client;
	// QoS 0 messages beyond it are dropped. Default 64 KiB.
	MaxWriteBuffer Size `toml:"max_write_buffer"`

	// Resource limits against hostile local clients (configs/README.md
	// gives the memory ceiling that follows from them).
	//
	// MaxPendingConnections bounds the connections not logged in yet,
	// apart from max_connections; default 64.
	MaxPendingConnections int `toml:"max_pending_connections"`
	// ConnectTimeout is how long a new connection has to send CONNECT
	// (TLS handshake included); default 5s.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// MaxSessionBytes bounds one session's queued and in-flight
	// messages; default 1 MiB.
	MaxSessionBytes Size `toml:"max_session_bytes"`
	// MaxQueuedBytes bounds them for all sessions together; default 32 MiB.
	MaxQueuedBytes Size `toml:"max_queued_bytes"`
	// MaxRetainedBytes bounds the clients' retained messages in bytes
	// (the gateway's own count apart); default 8 MiB.
	MaxRetainedBytes Size `toml:"max_retained_bytes"`
	// MaxRetainedMessageBytes is the largest retained message of a
	// client that is stored; default 64 KiB.
	MaxRetainedMessageBytes Size `toml:"max_retained_message_bytes"`
	// MaxSessions bounds the persistent sessions; default 256.
	MaxSessions int `toml:"max_sessions"`
}

// ACLRule is one [[broker.acl]] entry. Rules are checked in order; the
// first that matches the user, action and topic decides. With no rule
// matching, access is denied unless the list is empty.
type ACLRule struct {
	// User the rule applies to: a name, "*" for any authenticated user, or
	// "" for anonymous clients. %u and %c in Topic stand for the username
	// and the client id, as in Mosquitto.
	User       string `toml:"user"`
	Permission string `toml:"permission"` // "allow" or "deny"
	Action     string `toml:"action"`     // "publish", "subscribe" or "all"
	Topic      string `toml:"topic"`      // topic filter
}

// Queue is the [queue] table: the disk-backed outbound queue.
type Queue struct {
	Dir           string   `toml:"dir"`            // default {state_dir}/queue
	Fsync         string   `toml:"fsync"`          // always | interval (default) | never
	FsyncInterval Duration `toml:"fsync_interval"` // loss window with fsync = "interval"; default 200ms
	SegmentSize   Size     `toml:"segment_size"`   // default 4 MiB
	MinFree       Size     `toml:"min_free"`       // free-space floor of the file system; default 64 MiB
	Alarm         Class    `toml:"alarm"`          // defaults: 16 MiB, drop_oldest
	Telemetry     Class    `toml:"telemetry"`      // defaults: 256 MiB, drop_oldest
}

// Class bounds one priority class of the queue.
type Class struct {
	MaxBytes Size     `toml:"max_bytes"`
	Policy   string   `toml:"policy"`  // drop_oldest | reject
	MaxAge   Duration `toml:"max_age"` // 0: no limit
}

// Uplink is the [uplink] table: the connection to the cloud broker.
type Uplink struct {
	URL          string   `toml:"url"`           // mqtt:// or mqtts://; "" disables the uplink
	URLs         []string `toml:"urls"`          // nodes of the same cloud, tried in turn after url; url defaults to the first
	ClientID     string   `toml:"client_id"`     // default the gateway id
	Username     string   `toml:"username"`      //
	Password     string   `toml:"password"`      // or PasswordFile
	PasswordFile string   `toml:"password_file"` // first line is the password
	CAFile       string   `toml:"ca_file"`       // PEM CAs for mqtts; default the system pool
	CertFile     string   `toml:"cert_file"`     // client certificate (mTLS)
	KeyFile      string   `toml:"key_file"`      //
	ServerName   string   `toml:"server_name"`   // SNI; default the URL host
	ALPN         []string `toml:"alpn"`          //
	QoS          int      `toml:"qos"`           // 1 (default) or 2
	Protocol     string   `toml:"protocol"`      // "5" (default) or "3.1.1"
	Keepalive    Duration `toml:"keepalive"`     // default 25s: below the shortest cellular NAT idle timeout (30 s)
	ReconnectMin Duration `toml:"reconnect_min"` // default 1s
	ReconnectMax Duration `toml:"reconnect_max"` // default 2m
	// ReconnectSpread is the window a fleet's reconnects are spread over
	// after a cloud restart; default 20s.
	ReconnectSpread Duration `toml:"reconnect_spread"`
	// SessionExpiry is how long the cloud keeps the session (and commands
	// for an offline car); default 24h.
	SessionExpiry Duration `toml:"session_expiry"`
	// TopicPrefix on the remote side replaces the local prefix; default
	// the same as the local one.
	TopicPrefix string       `toml:"topic_prefix"`
	Forward     []BridgeRule `toml:"forward"` // local filter → remote
	Receive     []BridgeRule `toml:"receive"` // remote filter → local
	// Profile names the cloud ("aws-iot", "azure-iot-hub"; "" for any
	// MQTT broker): -check then warns about settings that cloud refuses
	// (see ProfileWarnings).
	Profile string `toml:"profile"`
	// Budget is [uplink.budget]: a monthly data budget, and the day the
	// meter's month starts.
	Budget UplinkBudget `toml:"budget"`
	// Batch is [uplink.batch]; present, it turns batches on.
	Batch *Batch `toml:"batch"`
}

// UplinkBudget is the [uplink.budget] table.
type UplinkBudget struct {
	// Monthly is the bytes per month both ways at the socket ("50MB" is
	// 50,000,000 bytes, "50MiB" 52,428,800); 0 (default) means no budget.
	Monthly Size `toml:"monthly"`
	// MonthStartDay (1..28, default 1) is the day whose 00:00 UTC starts
	// the month, of the budget and of the month total alike.
	MonthStartDay int `toml:"month_start_day"`
	// ThinInterval is the spacing of the telemetry readings of one topic
	// sent while the budget thins; default 5m.
	ThinInterval Duration `toml:"thin_interval"`
}

// Batch is the [uplink.batch] table: telemetry packed into compressed
// batches (format: gateway/uplink/batch.go, README "Batches").
type Batch struct {
	MaxRecords  int      `toml:"max_records"` // default 500
	MaxBytes    Size     `toml:"max_bytes"`   // JSON bytes before compression; default 256KiB
	MaxDelay    Duration `toml:"max_delay"`   // default 5s
	Compression string   `toml:"compression"` // "deflate" (default) or "none"
}

// BridgeRule is one [[uplink.forward]] or [[uplink.receive]] entry. The part
// of a matching topic after the filter's wildcard-free prefix is appended
// to Prefix (default: the topic unchanged).
type BridgeRule struct {
	Filter string `toml:"filter"`
	Prefix string `toml:"prefix"`
	QoS    int    `toml:"qos"` // default the uplink's qos
}

// Health is the [health] table.
type Health struct {
	// Listen is the HTTP address of /healthz and /metrics; "" (default)
	// disables it.
	Listen string `toml:"listen"`
	// WatchdogInterval overrides the systemd watchdog ping period; default
	// half of WATCHDOG_USEC.
	WatchdogInterval Duration `toml:"watchdog_interval"`
}

// Console is the [console] table: the web page served on the [health]
// listener under /console/.
type Console struct {
	// Enabled serves the page; it needs health.listen.
	Enabled bool `toml:"enabled"`
	// History is how far back each numeric point's chart reaches; default 1h.
	History Duration `toml:"history"`
	// MaxPoints bounds the samples kept per chart (at least history /
	// max_points apart); default 720. MaxSeries bounds the charts; default
	// 256. Together they bound the charts' memory (16 bytes a sample).
	MaxPoints int `toml:"max_points"`
	MaxSeries int `toml:"max_series"`
	// Interval is how often the page is sent what changed; default 1s.
	Interval Duration `toml:"interval"`
	// Commands lets users of the broker's password file send commands
	// from the page; default false. Needs broker.password_file.
	Commands bool `toml:"commands"`
	// Users, when set, are the only accounts that may log in.
	Users []string `toml:"users"`
	// TLSCert and TLSKey make the [health] listener (and so the page)
	// speak HTTPS only.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// InsecureRemote allows the page on a non-loopback health.listen
	// without TLS; -check warns about it.
	InsecureRemote bool `toml:"insecure_remote"`
}

// Bus is one [[bus]] entry: one physical bus, opened and owned by the daemon.
type Bus struct {
	Name string `toml:"name"` // lower_snake, unique
	Type string `toml:"type"` // modbus_rtu | modbus_tcp | serial | i2c | gpio
	// Device is a serial path, "host:port" for modbus_tcp, an I2C bus name
	// ("1", "/dev/i2c-1"), a GPIO chip, or "simulator:NAME" for the bus of
	// an in-memory simulator.
	Device   string   `toml:"device"`
	Baud     int      `toml:"baud"`      // serial-like; default 9600
	Parity   string   `toml:"parity"`    // N (default), E, O
	DataBits int      `toml:"data_bits"` // default 8
	StopBits int      `toml:"stop_bits"` // 1 (default) or 2
	Timeout  Duration `toml:"timeout"`   // per attempt; default 1s
	Gap      Duration `toml:"gap"`       // between transactions; default 0 (modbus_rtu: 5ms)
	Retries  int      `toml:"retries"`   // default 0
}

// Device is one [[device]] entry.
type Device struct {
	Name     string   `toml:"name"`     // lower_snake, unique
	Kind     string   `toml:"kind"`     // driver kind registered in drivers/kinds
	Bus      string   `toml:"bus"`      // a [[bus]] name; "" for a device without a bus
	Interval Duration `toml:"interval"` // poll period of a Sensor; default 5s
	// Options are the driver's own, decoded by the driver through Decode.
	Options  toml.Primitive `toml:"options"`
	Commands []Command      `toml:"command"`

	// Decode decodes Options into v (a pointer to the driver's options
	// struct); keys v does not have are errors. Nil for a Config built in
	// code without options.
	Decode func(v any) error `toml:"-"`
}

// Command is one [[device.command]] entry: what a remote command may do.
type Command struct {
	Name string `toml:"name"` // the {command} topic level and the Command.Command
	Type string `toml:"type"` // bool | number | string
	// Min and Max bound a number.
	Min *float64 `toml:"min"`
	Max *float64 `toml:"max"`
	// Values lists the allowed strings of a string command (empty: any).
	Values []string `toml:"values"`
	// Require lists "device.point" readings that must currently be true
	// (or non-zero) for the command to be applied.
	Require []string `toml:"require"`
	// AutoOff sets a bool command back to false this long after a true was
	// applied (the heater turns itself off). 0: never.
	AutoOff Duration `toml:"auto_off"`
	// Verify reads the state back after Set (drivers.StateReader).
	Verify bool `toml:"verify"`
	// RateLimit is the minimum time between two applied commands; default 1s.
	RateLimit Duration `toml:"rate_limit"`
	// Timeout bounds applying the command; default 5s.
	Timeout Duration `toml:"timeout"`
}

// Simulator is one [[simulator]] entry, started by the daemon before the
// buses are opened (demo and tests).
type Simulator struct {
	Name    string         `toml:"name"`
	Kind    string         `toml:"kind"`
	Link    string         `toml:"link"`   // serial-line simulators: pty slave symlinked here
	Listen  string         `toml:"listen"` // TCP simulators
	Options toml.Primitive `toml:"options"`

	// Decode decodes Options like Device.Decode.
	Decode func(v any) error `toml:"-"`
}

// DecodeOptions decodes the simulator's options into v; with no options
// table v keeps its defaults.
func (s Simulator) DecodeOptions(v any) error {
	if s.Decode == nil {
		return nil
	}
	return s.Decode(v)
}

// Duration is a time.Duration written as a string ("5s", "1m30s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit like \"5s\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as an integer or a string with a unit
// ("64MiB", "512KiB", "1GB").
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(str, u.suffix); ok {
			str, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB", b)
	}
	*s = Size(n * mult)
	return nil
}
