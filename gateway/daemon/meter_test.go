package daemon

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/uplink"
)

// TestUplinkBytesShown: /healthz and /metrics show the meter's day and
// month totals and the budget.
func TestUplinkBytesShown(t *testing.T) {
	q, err := buffer.Open(t.TempDir(), buffer.Options{Fsync: buffer.FsyncNever,
		Classes: []buffer.ClassOptions{{Name: gateway.ClassAlarm}, {Name: gateway.ClassTelemetry}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	up, err := uplink.New(uplink.Options{URL: "mqtt://127.0.0.1:1", ClientID: "gw", LocalPrefix: "v/1", Queue: q,
		StateDir: t.TempDir(), Budget: uplink.Budget{Monthly: 50_000_000, MonthStartDay: 3}})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{up: up}
	b, err := json.Marshal(d.uplinkHealth())
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Bytes struct {
			Day   struct{ Date string }
			Month struct {
				Start string
				Total *int64
			}
		}
		Budget struct {
			Configured bool
			Monthly    int64
			Used       *int64
			Projected  *int64
			Thinning   *bool
		}
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.Bytes.Day.Date == "" || !strings.HasSuffix(h.Bytes.Month.Start, "-03T00:00:00Z") || h.Bytes.Month.Total == nil ||
		!h.Budget.Configured || h.Budget.Monthly != 50_000_000 || h.Budget.Used == nil || h.Budget.Projected == nil || h.Budget.Thinning == nil {
		t.Errorf("healthz uplink = %s", b)
	}
	var m strings.Builder
	d.uplinkMetrics(&m)
	for _, want := range []string{
		`edgegw_uplink_bytes_total{direction="out",kind="overhead"} 0`,
		`edgegw_uplink_month_bytes{direction="in",kind="data"} 0`,
		"edgegw_uplink_budget_bytes 50000000",
		"edgegw_uplink_budget_thinning 0",
		"edgegw_uplink_thinned_total 0",
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
}
