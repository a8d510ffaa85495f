package uplink

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// TestBudgetProjection: the projection is the month's pace, with the first
// day floored; thinning starts above the budget and stops below 90 % of
// it; while on, one record per topic per thin interval goes out.
func TestBudgetProjection(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)} // 30-day month
	m, err := openMeter("", 1, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTraffic{}
	m.attach(f)
	const monthly = 30_000_000 // 1 MB a day
	bg := newBudget(Budget{Monthly: monthly, MonthStartDay: 1, ThinInterval: time.Minute}, m, clk.now, testLog(t))

	// 6 hours in, 0.5 MB used: elapsed counts as a day, 15 MB projected.
	f.send("telemetry", 500_000-4)
	m.sample()
	st := bg.status()
	if st.Used != 500_000 || st.Projected != 15_000_000 || st.Thinning {
		t.Fatalf("6 h: %+v, want used 500000, projected 15000000, not thinning", st)
	}
	// 1.1 MB on day 1: over the pace.
	f.send("telemetry", 600_000-4)
	m.sample()
	if st := bg.status(); st.Projected != 33_000_000 || !st.Thinning {
		t.Fatalf("1.1 MB: %+v, want projected 33000000, thinning", st)
	}

	// Thinning: per topic, the first record of each minute of timestamps.
	t0 := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	var sent []string
	for i := range 10 {
		for _, topic := range []string{"a", "b"} {
			ts := t0.Add(time.Duration(i) * 20 * time.Second)
			if !bg.thin(topic, ts) {
				sent = append(sent, fmt.Sprintf("%s@%ds", topic, i*20))
			}
		}
	}
	want := "a@0s b@0s a@60s b@60s a@120s b@120s a@180s b@180s"
	if got := strings.Join(sent, " "); got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
	if bg.thin("a", time.Time{}) || bg.thin("a", t0) {
		t.Error("a record without a timestamp, or from a clock set back, was thinned")
	}

	// Day 2 12:00 (36 h): 1.1 MB projects 22 MB, under 90 %: off.
	clk.advance(30 * time.Hour)
	if st := bg.status(); st.Projected != 22_000_000 || st.Thinning {
		t.Errorf("36 h: %+v, want projected 22000000, not thinning", st)
	}
	if bg.thin("a", t0.Add(time.Second)) {
		t.Error("thinned with the budget on pace")
	}
	// Back over it, and between 90 % and 100 % on the way down it
	// stays on.
	f.send("telemetry", 800_000-4) // 1.9 MB at 36 h: 38 MB
	m.sample()
	if !bg.status().Thinning {
		t.Error("not thinning at 38 MB projected")
	}
	clk.advance(27 * time.Hour) // 63 h: 1.9 MB projects 21.7 MB
	if st := bg.status(); st.Thinning {
		t.Errorf("63 h: %+v, want thinning off", st)
	}
	f.send("telemetry", 1_000_000-4) // 2.9 MB at 63 h: 33.1 MB
	m.sample()
	bg.status()
	clk.advance(6 * time.Hour) // 69 h: 30.26 MB, still over
	if !bg.status().Thinning {
		t.Error("off above the budget")
	}
	clk.advance(5 * time.Hour) // 74 h: 28.2 MB: between 90 % and 100 %
	if !bg.status().Thinning {
		t.Error("off above 90 % of the budget")
	}
	clk.advance(4 * time.Hour) // 78 h: 26.8 MB: below 90 %
	if bg.status().Thinning {
		t.Error("still on below 90 % of the budget")
	}

	// A new month starts from zero.
	clk.t = time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC)
	if st := bg.status(); st.Used != 0 || st.Thinning {
		t.Errorf("new month: %+v", st)
	}
	// No budget: never thinning.
	off := newBudget(Budget{}, m, clk.now, testLog(t))
	if off.thin("a", t0) || off.status() != (BudgetStatus{}) {
		t.Error("thinning without a budget")
	}
}

// TestBudgetDrain drains a backlog to Mosquitto with the month's budget
// already spent (a meter file from an earlier run): telemetry goes out one
// reading per device per thin interval, every alarm goes, and every
// record is either delivered or counted as thinned; batched or not.
func TestBudgetDrain(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) { budgetDrain(t, batched) })
	}
}

func budgetDrain(t *testing.T, batched bool) {
	b := mqtttest.StartMosquitto(t, brokerConf...)
	col := newCollector(t, b.Addr, "col")
	q := openQueue(t, t.TempDir())
	defer q.Close()
	const devs, per = 5, 60
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i := range per {
		for d := range devs {
			p := fmt.Appendf(nil, "%d %d ", d, i)
			r := gateway.Record{Topic: fmt.Sprintf("%s/telemetry/d%d", localPrefix, d), Payload: p, QoS: 1,
				Time: t0.Add(time.Duration(i) * 10 * time.Second)}
			data, _ := r.MarshalBinary()
			if _, err := q.Put(gateway.ClassTelemetry, data); err != nil {
				t.Fatal(err)
			}
		}
		if i%10 == 0 {
			a := gateway.Record{Topic: fmt.Sprintf("%s/alarm/d0/p", localPrefix), Payload: []byte("A"), QoS: 1}
			data, _ := a.MarshalBinary()
			if _, err := q.Put(gateway.ClassAlarm, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := t.TempDir()
	now := time.Now().UTC()
	st := meterState{Day: now.Format(time.DateOnly), MonthStart: monthStart(now, 1),
		MonthUsage: Usage{Data: map[string]int64{"telemetry": 10_000_000}}}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(state, meterFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{URL: "mqtt://" + b.Addr, ClientID: "gw-budget", LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: state, Log: testLog(t),
		Budget: Budget{Monthly: 1_000_000, ThinInterval: time.Minute}}
	if batched {
		o.Batch = &BatchOptions{MaxRecords: 40, MaxDelay: 50 * time.Millisecond}
	}
	u, stop := startUplink(t, o)
	// 60 readings 10 s apart per device: one a minute goes, 10 each.
	const sent = devs * per / 6
	waitDrained(t, q, 30*time.Second)
	// The collector expects consecutive sequence numbers and notes each
	// gap as an error: count what came.
	arrived := func() int {
		col.mu.Lock()
		defer col.mu.Unlock()
		return col.total + len(col.errs)
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for arrived() < sent {
		select {
		case <-col.signal:
		case <-deadline.C:
			t.Fatalf("%d of %d readings arrived; status %+v; errs %v", arrived(), sent, u.Status(), col.errs)
		}
	}
	s := u.Status()
	stop()
	if s.Thinned != devs*per-sent || s.Meter.MonthThinned != s.Thinned || !s.Budget.Thinning || s.Budget.Monthly != 1_000_000 {
		t.Errorf("status: thinned %d (month %d), budget %+v; want %d thinned", s.Thinned, s.Meter.MonthThinned, s.Budget, devs*per-sent)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.alarms != per/10 {
		t.Errorf("%d alarms arrived, want %d", col.alarms, per/10)
	}
	if got := col.total + len(col.errs); got != sent {
		t.Errorf("%d readings arrived, want %d", got, sent)
	}
}

// TestBudgetThinTopicsBound: while thinning, the topics remembered stay
// within maxThinTopicBytes however long the names (a forward rule passes
// local topics of up to 64 KiB), and within maxThinTopics however many.
func TestBudgetThinTopicsBound(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)}
	m, err := openMeter("", 1, time.Minute, clk.now, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTraffic{}
	m.attach(f)
	bg := newBudget(Budget{Monthly: 1000, MonthStartDay: 1}, m, clk.now, testLog(t))
	f.send("telemetry", 10_000)
	m.sample()
	if !bg.status().Thinning {
		t.Fatal("not thinning")
	}
	ts := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	check := func(what string) {
		t.Helper()
		n := 0
		for k := range bg.last {
			n += len(k)
		}
		if n > maxThinTopicBytes || len(bg.last) > maxThinTopics || n != bg.lastBytes {
			t.Fatalf("%s: %d topics of %d bytes (counted %d), want at most %d of %d bytes",
				what, len(bg.last), n, bg.lastBytes, maxThinTopics, maxThinTopicBytes)
		}
	}
	long := strings.Repeat("x", 60<<10)
	for i := range 64 {
		bg.thin(fmt.Sprintf("%s/%d", long, i), ts)
		check("long topics")
	}
	for i := range 2 * maxThinTopics {
		bg.thin(fmt.Sprintf("t/%d", i), ts)
		check("many topics")
	}
}
