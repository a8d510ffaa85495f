// Package console is the gateway's local web page: what the gateway sees
// (devices and their points, active alarms, a chart per numeric point,
// the queue, the uplink, the broker, the recent commands), updated live
// with server-sent events, and, when configured, a form that sends a
// command through the gateway's command gate.
//
// The page is three embedded static files and a hand-written script that
// draws the charts as SVG; there is no build step. The console learns the
// readings, alarms and command results from the local broker (the
// gateway publishes them there), and everything else from Options.Status,
// which the daemon fills from the queue, the uplink and the broker. It
// owns none of those facts: it keeps only a bounded history of numeric
// points for the charts and the last few commands.
//
// The console sends a client what changed since the last update, once per
// Options.Interval at most, so the page stays usable over a slow link: a
// new client gets one snapshot, then deltas.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway"
)

// Status is what the console shows besides the readings, read from its
// owners once per update while a page is open.
type Status struct {
	Devices []DeviceState `json:"devices"`
	Queue   []QueueClass  `json:"queue"`
	Uplink  *UplinkState  `json:"uplink"` // nil: no uplink configured
	Broker  BrokerState   `json:"broker"`
}

// DeviceState is a configured device and its state: "starting", "online"
// or "offline".
type DeviceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// QueueClass is one class of the outbound queue.
type QueueClass struct {
	Name    string  `json:"name"`
	Records int     `json:"records"`
	Bytes   int64   `json:"bytes"`
	Dropped uint64  `json:"dropped"`
	Oldest  float64 `json:"oldest_s"` // age of the oldest waiting record, seconds; 0 when empty
}

// UplinkState is the cloud connection. Fields the uplink does not report
// are left zero or nil and shown as unknown.
type UplinkState struct {
	Connected  bool   `json:"connected"`
	Protocol   string `json:"protocol,omitempty"` // MQTT version
	QoS        int    `json:"qos,omitempty"`
	Acked      int64  `json:"acked"`
	InFlight   int    `json:"in_flight"`
	BytesToday *int64 `json:"bytes_today,omitempty"`
	BytesMonth *int64 `json:"bytes_month,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// BrokerState is the embedded broker.
type BrokerState struct {
	Clients          int   `json:"clients"`
	MessagesReceived int64 `json:"messages_received"`
	MessagesSent     int64 `json:"messages_sent"`
}

// CommandRule is a command the page offers, as configured.
type CommandRule struct {
	Device  string   `json:"device"`
	Name    string   `json:"name"`
	Type    string   `json:"type"` // bool | number | string
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Values  []string `json:"values,omitempty"`
	Require []string `json:"require,omitempty"`
}

// Options configure a Console.
type Options struct {
	// Prefix is the gateway's expanded topic prefix.
	Prefix string
	// Subscriber is the local broker, where the gateway publishes
	// telemetry, alarms and command results. Required.
	Subscriber gateway.Subscriber
	// Status returns the devices, queue, uplink and broker, read while
	// a page is open. Required.
	Status func() Status
	// Devices returns the configured devices' names, read once per
	// Interval: the console keeps readings of these only. Required.
	Devices func() []string
	// Command applies a command through the gateway's command gate (the
	// one every command passes: gateway.Commands.Console) and returns its
	// result. payload is the
	// command JSON ({"id","value","expires_at"}), user the account logged
	// in, whom the broker's ACL must let publish the command. Nil: the
	// page cannot send commands.
	Command func(ctx context.Context, user, device, name string, payload []byte) gateway.Result
	// Verify checks a user's password (the broker's password file) for a
	// login from source, the client's address.
	// Required with Command.
	Verify func(source, user string, password []byte) bool
	// Commands returns the commands the page offers (with Command).
	Commands func() []CommandRule
	// History is how far back a chart reaches (default 1h); MaxPoints
	// bounds its samples (default 720) and MaxSeries the charts (default
	// 256): 16 bytes a sample.
	History   time.Duration
	MaxPoints int
	MaxSeries int
	// Interval is the shortest time between two updates sent to a page
	// (default 1s).
	Interval time.Duration
	// Secure marks the session cookie Secure: set it when the page is
	// served over TLS.
	Secure bool
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Bounds on what hostile or runaway publishers and clients can make the
// console hold.
const (
	maxPayload     = 64 << 10 // telemetry, alarm or result payload decoded
	maxPointsPer   = 256      // points kept per device
	maxValueBytes  = 128      // JSON of a shown value
	maxNameBytes   = 128      // a point name or a command id
	maxLog         = 50       // commands in the log
	maxClients     = 16       // open event streams
	maxSessions    = 16       // logged-in sessions
	maxBodyBytes   = 4 << 10  // login or command request body
	clientBacklog  = 16       // updates waiting for a slow client before it is dropped
	sessionTTL     = 8 * time.Hour
	keepalivePause = 15 * time.Second
	writeTimeout   = 30 * time.Second // one event to a page
)

// Console serves the page. Its methods are safe for concurrent use.
type Console struct {
	o      Options
	log    *slog.Logger
	mux    *http.ServeMux
	assets map[string]*asset
	st     *state
	auth   *auth

	// mu guards clients and lastStatus.
	mu         sync.Mutex
	clients    map[*client]struct{}
	lastStatus []byte
}

// New checks o and builds a Console; Run feeds it.
func New(o Options) (*Console, error) {
	var errs []error
	if o.Subscriber == nil {
		errs = append(errs, errors.New("console: no subscriber"))
	}
	if o.Status == nil || o.Devices == nil {
		errs = append(errs, errors.New("console: no status"))
	}
	if o.Command != nil && (o.Verify == nil || o.Commands == nil) {
		errs = append(errs, errors.New("console: commands need a password check"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.History <= 0 {
		o.History = time.Hour
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = 720
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 256
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{
		o: o, log: o.Log, assets: assets,
		st:      newState(o),
		auth:    newAuth(o),
		clients: map[*client]struct{}{},
	}
	c.routes()
	return c, nil
}

// Run subscribes to the local broker and sends updates to open pages
// until ctx is done.
func (c *Console) Run(ctx context.Context) error {
	c.st.setKnown(c.o.Devices())
	// One subscription to the whole prefix (the broker gives each its
	// own 1024-message buffer), dispatched by topic.
	cancel, err := c.o.Subscriber.Subscribe(c.o.Prefix+"/#", 0, c.st.dispatch)
	if err != nil {
		return fmt.Errorf("console: subscribe %s/#: %w", c.o.Prefix, err)
	}
	defer cancel()
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.closeClients()
			return nil
		case <-t.C:
			c.tick()
		}
	}
}

// ServeHTTP serves the page under /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }
