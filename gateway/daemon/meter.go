package daemon

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/uplink"
)

// usageJSON is an uplink.Usage in /healthz: bytes written and read, data
// by class and overhead.
func usageJSON(u uplink.Usage) map[string]any {
	data := map[string]int64{}
	for k, v := range u.Data {
		data[k] = v
	}
	return map[string]any{
		"sent": u.Sent(), "received": u.Received(), "total": u.Total(),
		"data": data, "overhead": u.Overhead, "data_in": u.DataIn, "overhead_in": u.OverheadIn,
	}
}

// uplinkBytes is the meter's part of /healthz.
func uplinkBytes(m uplink.MeterStatus) map[string]any {
	day := usageJSON(m.DayUsage)
	day["date"] = m.Day
	month := usageJSON(m.MonthUsage)
	month["start"] = m.MonthStart.UTC().Format(time.RFC3339)
	return map[string]any{"since_start": usageJSON(m.Process), "day": day, "month": month}
}

// uplinkBudget is the budget's part of /healthz.
func uplinkBudget(st uplink.Status) map[string]any {
	b := st.Budget
	if b.Monthly == 0 {
		return map[string]any{"configured": false, "thinned_month": st.Meter.MonthThinned}
	}
	return map[string]any{
		"configured": true, "monthly": b.Monthly, "used": b.Used, "projected": b.Projected,
		"thinning": b.Thinning, "thinned_month": st.Meter.MonthThinned,
	}
}

// meterMetrics writes the uplink's byte counters: since the process
// started as counters, the day's and month's totals and the budget as
// gauges.
func meterMetrics(b *strings.Builder, st uplink.Status) {
	metric := func(name, help, typ string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	usage := func(name string, u uplink.Usage) {
		classes := make([]string, 0, len(u.Data))
		for k := range u.Data {
			classes = append(classes, k)
		}
		sort.Strings(classes)
		for _, c := range classes {
			fmt.Fprintf(b, "%s{direction=\"out\",kind=\"data\",class=%q} %d\n", name, c, u.Data[c])
		}
		fmt.Fprintf(b, "%s{direction=\"out\",kind=\"overhead\"} %d\n", name, u.Overhead)
		fmt.Fprintf(b, "%s{direction=\"in\",kind=\"data\"} %d\n", name, u.DataIn)
		fmt.Fprintf(b, "%s{direction=\"in\",kind=\"overhead\"} %d\n", name, u.OverheadIn)
	}
	m := st.Meter
	metric("edgegw_uplink_bytes_total", "Bytes at the uplink's socket since start: PUBLISH data by class, and overhead (all else, TLS included).", "counter")
	usage("edgegw_uplink_bytes_total", m.Process)
	metric("edgegw_uplink_day_bytes", "Bytes at the uplink's socket this UTC day.", "gauge")
	usage("edgegw_uplink_day_bytes", m.DayUsage)
	metric("edgegw_uplink_month_bytes", "Bytes at the uplink's socket this month (from [uplink.budget] month_start_day).", "gauge")
	usage("edgegw_uplink_month_bytes", m.MonthUsage)
	metric("edgegw_uplink_thinned_total", "Telemetry records the data budget kept back since start.", "counter")
	fmt.Fprintf(b, "edgegw_uplink_thinned_total %d\n", st.Thinned)
	if st.Budget.Monthly == 0 {
		return
	}
	thinning := 0
	if st.Budget.Thinning {
		thinning = 1
	}
	metric("edgegw_uplink_budget_bytes", "The monthly data budget.", "gauge")
	fmt.Fprintf(b, "edgegw_uplink_budget_bytes %d\n", st.Budget.Monthly)
	metric("edgegw_uplink_budget_projected_bytes", "The month's use projected at its pace so far.", "gauge")
	fmt.Fprintf(b, "edgegw_uplink_budget_projected_bytes %d\n", st.Budget.Projected)
	metric("edgegw_uplink_budget_thinning", "1 while telemetry is thinned to keep to the budget.", "gauge")
	fmt.Fprintf(b, "edgegw_uplink_budget_thinning %d\n", thinning)
}
