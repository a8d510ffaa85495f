package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// TestUplinkHealthNegotiated: /healthz and /metrics say which protocol and
// QoS the uplink uses and why, here against Mosquitto with max_qos 1 and
// the uplink's qos 2.
func TestUplinkHealthNegotiated(t *testing.T) {
	addr := mqtttest.Mosquitto(t, "max_qos 1")
	q, err := buffer.Open(t.TempDir(), buffer.Options{Fsync: buffer.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	up, err := uplink.New(uplink.Options{URL: "mqtt://" + addr, ClientID: "gw", QoS: 2, LocalPrefix: "v/1", Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for !up.Status().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: %+v", up.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := &daemon{up: up}
	h := d.uplinkHealth()
	for k, want := range map[string]any{"protocol": "5.0", "max_qos": byte(1), "qos_reason": "server maximum_qos 1", "server": addr} {
		if h[k] != want {
			t.Errorf("healthz uplink %s = %v, want %v", k, h[k], want)
		}
	}
	var b strings.Builder
	d.uplinkMetrics(&b)
	for _, want := range []string{"edgegw_uplink_max_qos 1\n", "edgegw_uplink_qos_downgraded_total 0\n",
		`edgegw_uplink_info{server="` + addr + `",protocol="5.0",protocol_reason="",qos_reason="server maximum_qos 1"} 1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}
