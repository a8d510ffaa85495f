package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// daemon holds what the health endpoint and the watchdog look at.
type daemon struct {
	log *slog.Logger
	q   *buffer.Queue
	srv *broker.Server

	up *uplink.Uplink // nil without [uplink] url

	console consolePart // the web console, if on

	// mu guards f.
	mu sync.Mutex
	f  *field

	// cmds is the one way in for commands (local, remote, console). It
	// lets commands run on the field, or the field be replaced or
	// stopped, not both: a command finishes on the field it started on,
	// with its actuator, and one that arrives meanwhile waits for the
	// next field. Two gateways never write the command log at once.
	cmds *gateway.Commands
}

// newCommands builds the way in for commands to the current field's
// gateway, held until the first field is up, and subscribes it to the
// local broker's commands.
func newCommands(c *config.Config, d *daemon) (*gateway.Commands, error) {
	cmds := gateway.NewCommands(gateway.CommandOptions{
		Prefix:     c.Gateway.Prefix(),
		Gateway:    func() *gateway.Gateway { return d.field().gw },
		MayPublish: d.srv.MayPublish,
		Log:        d.log,
	})
	cmds.Hold()
	if err := cmds.Subscribe(brokerPort{d.srv}); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return cmds, nil
}

func (d *daemon) setField(f *field) {
	d.mu.Lock()
	d.f = f
	d.mu.Unlock()
}

func (d *daemon) field() *field {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.f
}

// alive is the watchdog's check: the queue answers and the broker
// answers and accepts clients on every listener. While the broker cannot
// accept (out of file descriptors, a listener stopped), systemd is no
// longer fed and restarts the unit after WatchdogSec.
func (d *daemon) alive() bool {
	d.q.Stats()
	d.srv.Stats()
	return d.srv.Health() == nil && d.field() != nil
}

func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /metrics", d.metrics)
	d.mountConsole(mux)
	return mux
}

type classHealth struct {
	Len     int    `json:"len"`
	Bytes   int64  `json:"bytes"`
	Dropped uint64 `json:"dropped"`
}

func (d *daemon) healthz(w http.ResponseWriter, r *http.Request) {
	qs := d.q.Stats()
	queue := map[string]classHealth{}
	for _, c := range qs.Classes {
		queue[c.Name] = classHealth{Len: c.Len, Bytes: c.Bytes, Dropped: c.Dropped}
	}
	bs := d.srv.Stats()
	f := d.field()
	devices := f.devices()
	status := "ok"
	for _, s := range devices {
		if s != "online" {
			status = "degraded"
		}
	}
	bh := map[string]any{"clients": bs.Clients, "retained": bs.Retained}
	code := http.StatusOK
	if err := d.srv.Health(); err != nil {
		// Local clients cannot connect: the gateway is not serving.
		status, code = "unavailable", http.StatusServiceUnavailable
		bh["error"] = err.Error()
	}
	body := map[string]any{
		"status":  status,
		"devices": devices,
		"queue":   queue,
		"broker":  bh,
		"uplink":  d.uplinkHealth(),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

// metrics writes the Prometheus text exposition format.
func (d *daemon) metrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	metric := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	f := d.field()
	gs := f.gw.Stats()
	metric("edgegw_readings_total", "Readings routed.", "counter")
	fmt.Fprintf(&b, "edgegw_readings_total %d\n", gs.Readings.Load())
	metric("edgegw_telemetry_messages_total", "Telemetry messages spooled.", "counter")
	fmt.Fprintf(&b, "edgegw_telemetry_messages_total %d\n", gs.Messages.Load())
	metric("edgegw_alarms_total", "Alarm messages sent.", "counter")
	fmt.Fprintf(&b, "edgegw_alarms_total %d\n", gs.Alarms.Load())
	metric("edgegw_spool_errors_total", "Records the queue refused.", "counter")
	fmt.Fprintf(&b, "edgegw_spool_errors_total %d\n", gs.SpoolErrors.Load())
	metric("edgegw_commands_total", "Remote commands by outcome.", "counter")
	for _, o := range []struct {
		name string
		n    int64
	}{{"done", gs.CmdDone.Load()}, {"rejected", gs.CmdRejected.Load()}, {"expired", gs.CmdExpired.Load()}, {"failed", gs.CmdFailed.Load()}} {
		fmt.Fprintf(&b, "edgegw_commands_total{outcome=%q} %d\n", o.name, o.n)
	}
	metric("edgegw_device_up", "1 when the device answers.", "gauge")
	devs := f.devices()
	names := make([]string, 0, len(devs))
	for n := range devs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		up := 0
		if devs[n] == "online" {
			up = 1
		}
		fmt.Fprintf(&b, "edgegw_device_up{device=%q} %d\n", n, up)
	}
	ps := f.sup.PollStats()
	metric("edgegw_polls_total", "Polls of a sensor.", "counter")
	for _, n := range names {
		if c, ok := ps[n]; ok {
			fmt.Fprintf(&b, "edgegw_polls_total{device=%q} %d\n", n, c.Polls)
		}
	}
	metric("edgegw_poll_errors_total", "Polls that failed.", "counter")
	for _, n := range names {
		if c, ok := ps[n]; ok {
			fmt.Fprintf(&b, "edgegw_poll_errors_total{device=%q} %d\n", n, c.Errors)
		}
	}
	qs := d.q.Stats()
	metric("edgegw_queue_records", "Records waiting in the queue.", "gauge")
	for _, c := range qs.Classes {
		fmt.Fprintf(&b, "edgegw_queue_records{class=%q} %d\n", c.Name, c.Len)
	}
	metric("edgegw_queue_bytes", "Bytes of the queue on disk.", "gauge")
	for _, c := range qs.Classes {
		fmt.Fprintf(&b, "edgegw_queue_bytes{class=%q} %d\n", c.Name, c.Bytes)
	}
	metric("edgegw_queue_dropped_total", "Records dropped unacknowledged.", "counter")
	for _, c := range qs.Classes {
		fmt.Fprintf(&b, "edgegw_queue_dropped_total{class=%q} %d\n", c.Name, c.Dropped)
	}
	metric("edgegw_queue_acked_total", "Records acknowledged by the cloud.", "counter")
	for _, c := range qs.Classes {
		fmt.Fprintf(&b, "edgegw_queue_acked_total{class=%q} %d\n", c.Name, c.Acked)
	}
	bs := d.srv.Stats()
	for _, m := range []struct {
		name, help, typ string
		v               int64
	}{
		{"edgegw_broker_clients", "Connected broker clients.", "gauge", int64(bs.Clients)},
		{"edgegw_broker_messages_received_total", "Messages received by the broker.", "counter", bs.MessagesReceived},
		{"edgegw_broker_messages_sent_total", "Messages sent by the broker.", "counter", bs.MessagesSent},
		{"edgegw_broker_dropped_total", "Messages the broker dropped.", "counter", bs.Dropped},
		{"edgegw_broker_retained_refused_total", "Retained messages not stored: max_retained reached.", "counter", bs.RetainedRefused},
		{"edgegw_broker_subscriptions_refused_total", "Subscriptions refused: max_subscriptions reached.", "counter", bs.SubscribeRefused},
		{"edgegw_broker_queued_bytes", "Bytes of the broker sessions' queued and in-flight messages.", "gauge", bs.QueuedBytes},
		{"edgegw_broker_retained_bytes", "Bytes of the clients' retained messages.", "gauge", bs.RetainedBytes},
		{"edgegw_broker_sessions_refused_total", "New persistent sessions refused: max_sessions reached.", "counter", bs.SessionsRefused},
	} {
		metric(m.name, m.help, m.typ)
		fmt.Fprintf(&b, "%s %d\n", m.name, m.v)
	}
	up := 1
	if d.srv.Health() != nil {
		up = 0
	}
	metric("edgegw_broker_up", "1 while every broker listener accepts connections.", "gauge")
	fmt.Fprintf(&b, "edgegw_broker_up %d\n", up)
	d.uplinkMetrics(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, b.String())
}

func (d *daemon) uplinkHealth() map[string]any {
	if d.up == nil {
		return map[string]any{"configured": false}
	}
	st := d.up.Status()
	return map[string]any{
		"configured": true, "connected": st.Connected, "last_error": st.LastError,
		"sent": st.Sent, "acked": st.Acked, "in_flight": st.InFlight, "queue_depth": st.QueueDepth,
		"expired": st.Expired, "rejected": st.Rejected, "commands": st.Commands,
		"server": st.Server, "protocol": st.Protocol, "protocol_reason": st.ProtocolReason,
		"max_qos": st.MaxQoS, "qos_reason": st.QoSReason, "qos_downgraded": st.Downgraded,
		"thinned": st.Thinned,
		"bytes":   uplinkBytes(st.Meter),
		"budget":  uplinkBudget(st),
	}
}

func (d *daemon) uplinkMetrics(b *strings.Builder) {
	if d.up == nil {
		return
	}
	st := d.up.Status()
	up := 0
	if st.Connected {
		up = 1
	}
	for _, m := range []struct {
		name, help, typ string
		v               int64
	}{
		{"edgegw_uplink_connected", "1 while connected to the cloud broker.", "gauge", int64(up)},
		{"edgegw_uplink_sent_total", "Publishes written to the cloud, resends included.", "counter", st.Sent},
		{"edgegw_uplink_acked_total", "Records acknowledged by the cloud.", "counter", st.Acked},
		{"edgegw_uplink_in_flight", "Publishes awaiting acknowledgement.", "gauge", int64(st.InFlight)},
		{"edgegw_uplink_expired_total", "Records whose message expiry passed in the queue.", "counter", st.Expired},
		{"edgegw_uplink_rejected_total", "Records the cloud refused.", "counter", st.Rejected},
		{"edgegw_uplink_commands_total", "Commands received from the cloud.", "counter", st.Commands},
		{"edgegw_uplink_max_qos", "Highest QoS records go out with: the configured qos, lowered to what the cloud takes.", "gauge", int64(st.MaxQoS)},
		{"edgegw_uplink_qos_downgraded_total", "Records asked at QoS 2 and delivered at QoS 1 (at least once): the cloud takes no QoS 2.", "counter", st.Downgraded},
	} {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
	fmt.Fprintf(b, "# HELP edgegw_uplink_info Protocol negotiated with the cloud and why the QoS is lowered.\n# TYPE edgegw_uplink_info gauge\n")
	fmt.Fprintf(b, "edgegw_uplink_info{server=%q,protocol=%q,protocol_reason=%q,qos_reason=%q} 1\n",
		st.Server, st.Protocol, st.ProtocolReason, st.QoSReason)
	meterMetrics(b, st)
}
