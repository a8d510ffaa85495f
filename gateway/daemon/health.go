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
	"github.com/edgegw/edgegw/mqtt/broker"
)

// daemon holds what the health endpoint and the watchdog look at.
type daemon struct {
	log *slog.Logger
	q   *buffer.Queue
	srv *broker.Server

	// mu guards f.
	mu sync.Mutex
	f  *field
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

// alive is the watchdog's check: the queue and the broker answer.
func (d *daemon) alive() bool {
	d.q.Stats()
	d.srv.Stats()
	return d.field() != nil
}

func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /metrics", d.metrics)
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
	body := map[string]any{
		"status":  status,
		"devices": devices,
		"queue":   queue,
		"broker":  map[string]any{"clients": bs.Clients, "retained": bs.Retained},
		"uplink":  map[string]any{"configured": f.cfg.Uplink.URL != "", "connected": false},
	}
	w.Header().Set("Content-Type", "application/json")
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
	metric("edgegw_broker_clients", "Connected broker clients.", "gauge")
	fmt.Fprintf(&b, "edgegw_broker_clients %d\n", bs.Clients)
	metric("edgegw_broker_messages_received_total", "Messages received by the broker.", "counter")
	fmt.Fprintf(&b, "edgegw_broker_messages_received_total %d\n", bs.MessagesReceived)
	metric("edgegw_broker_messages_sent_total", "Messages sent by the broker.", "counter")
	fmt.Fprintf(&b, "edgegw_broker_messages_sent_total %d\n", bs.MessagesSent)
	metric("edgegw_broker_dropped_total", "Messages the broker dropped.", "counter")
	fmt.Fprintf(&b, "edgegw_broker_dropped_total %d\n", bs.Dropped)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, b.String())
}
