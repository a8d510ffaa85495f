package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/google/go-cmp/cmp"
)

const prefix = "vehicles/V1"

func ptr(f float64) *float64 { return &f }

var testRoutes = []Route{
	{Device: "tpms", Interval: time.Second},
	{Device: "seat", Interval: time.Second, Commands: []CommandRule{
		{Name: "heater", Type: "bool", Require: []string{"seat.occupied"}, AutoOff: 30 * time.Minute,
			Verify: true, RateLimit: time.Second, Timeout: 5 * time.Second},
		{Name: "level", Type: "number", Min: ptr(0), Max: ptr(3), Timeout: time.Second},
		{Name: "mode", Type: "string", Values: []string{"eco", "max"}, Timeout: time.Second},
	}},
}

type env struct {
	g     *Gateway
	br    *fakeBroker
	sp    *fakeSpool
	act   *fakeActuator
	dir   string
	noAct bool
}

// queueOf is a Backlog of the records recs, numbered from 1; each call's
// from is appended to *froms.
func queueOf(recs [][]byte, froms *[]uint64) func(uint64) iter.Seq2[uint64, []byte] {
	return func(from uint64) iter.Seq2[uint64, []byte] {
		if froms != nil {
			*froms = append(*froms, from)
		}
		return func(yield func(uint64, []byte) bool) {
			for i, b := range recs {
				if q := uint64(i + 1); q >= from && !yield(q, b) {
					return
				}
			}
		}
	}
}

func newEnv(t testing.TB, dir string, backlog [][]byte) *env {
	t.Helper()
	return newEnvLatest(t, dir, backlog, nil)
}

// newEnvLatest is newEnv for a gateway that starts knowing latest.
func newEnvLatest(t testing.TB, dir string, backlog [][]byte, latest []drivers.Reading) *env {
	t.Helper()
	// Most tests send remote commands without expires_at; the policy's
	// own tests (command_test.go) use newEnvPolicy.
	return newEnvPolicy(t, dir, backlog, latest, CommandPolicy{AllowNoExpiry: true})
}

func newEnvPolicy(t testing.TB, dir string, backlog [][]byte, latest []drivers.Reading, p CommandPolicy) *env {
	t.Helper()
	e := &env{br: &fakeBroker{}, sp: &fakeSpool{}, act: &fakeActuator{}, dir: dir}
	d := Deps{
		Prefix: prefix, StateDir: dir, Publisher: e.br, Spool: e.sp,
		Actuator: func(dev string) (drivers.Actuator, bool) {
			return e.act, dev == "seat" && !e.noAct
		},
		Latest:   latest,
		Commands: p,
	}
	if backlog != nil {
		d.Backlog = queueOf(backlog, nil)
	}
	g, err := New(d, testRoutes)
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	return e
}

// commands returns the way in for commands to e's gateway, subscribed to
// e's broker, closed when the test ends.
func (e *env) commands(t *testing.T) *Commands {
	t.Helper()
	c := NewCommands(CommandOptions{Prefix: prefix, Gateway: func() *Gateway { return e.g }})
	if err := c.Subscribe(e.br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// run runs the gateway until the test ends.
func (e *env) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestTelemetry(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 500e6, time.UTC)
	e.g.Emit([]drivers.Reading{
		{Device: "tpms", Point: "pressure", Value: 231.5, Unit: "kPa", Time: ts, Quality: drivers.Good},
		{Device: "tpms", Point: "battery", Value: true, Time: ts, Quality: drivers.Good},
		{Device: "tpms", Point: "temp", Unit: "°C", Time: ts, Quality: drivers.CommError},
		{Device: "seat", Point: "occupied", Value: false, Time: ts},
	})
	e.g.Emit([]drivers.Reading{{Device: "tpms", Point: "pressure", Value: 230.0, Unit: "kPa", Time: ts.Add(time.Second), Quality: drivers.OutOfRange}})
	got := e.sp.records(t, ClassTelemetry)
	want := []Record{
		{Topic: prefix + "/telemetry/tpms", QoS: 1, Retain: true,
			Payload: []byte(`{"seq":1,"ts":"2026-03-01T12:00:00.5Z","points":{"battery":{"v":true,"q":"good"},"pressure":{"v":231.5,"u":"kPa","q":"good"},"temp":{"u":"°C","q":"comm_error"}}}`)},
		{Topic: prefix + "/telemetry/seat", QoS: 1, Retain: true,
			Payload: []byte(`{"seq":1,"ts":"2026-03-01T12:00:00.5Z","points":{"occupied":{"v":false,"q":"good"}}}`)},
		{Topic: prefix + "/telemetry/tpms", QoS: 1, Retain: true,
			Payload: []byte(`{"seq":2,"ts":"2026-03-01T12:00:01.5Z","points":{"pressure":{"v":230,"u":"kPa","q":"out_of_range"}}}`)},
	}
	opt := cmp.Transformer("noTime", func(r Record) Record { r.Time = time.Time{}; return r })
	// The queue's copy leaves the QoS to the uplink, decided when sent.
	spooled := make([]Record, len(want))
	for i, r := range want {
		r.QoS = 0
		spooled[i] = r
	}
	if diff := cmp.Diff(spooled, got, opt); diff != "" {
		t.Errorf("spooled telemetry (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.br.published(), opt); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	for _, p := range e.br.published() {
		if !json.Valid(p.Payload) {
			t.Errorf("invalid JSON %s", p.Payload)
		}
	}
}

func TestSeqSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, nil)
	r := drivers.Reading{Device: "tpms", Point: "p", Value: 1.0}
	e.g.Emit([]drivers.Reading{r})
	e.g.Emit([]drivers.Reading{r})
	// Spooled, not saved: the process died between the two.
	spooled := e.sp.recs[ClassTelemetry]
	last := Record{Topic: prefix + "/telemetry/tpms", Payload: []byte(`{"seq":3,"ts":"x","points":{}}`)}
	b, _ := last.MarshalBinary()
	backlog := append(slices.Clone(spooled), b, []byte("garbage"))
	// Restart without Run, like a SIGKILL: state written per message.
	e2 := newEnv(t, dir, backlog)
	e2.g.Emit([]drivers.Reading{r})
	e2.g.Emit([]drivers.Reading{{Device: "new", Point: "p", Value: 1.0}})
	var seqs []uint64
	for _, rec := range e2.sp.records(t, ClassTelemetry) {
		s, _ := payloadSeq(rec.Payload)
		seqs = append(seqs, s)
	}
	if want := []uint64{4, 1}; !cmp.Equal(seqs, want) {
		t.Errorf("seqs after restart = %v, want %v", seqs, want)
	}
	// And again from the seq file alone.
	e3 := newEnv(t, dir, nil)
	e3.g.Emit([]drivers.Reading{r})
	if s, _ := payloadSeq(e3.sp.records(t, ClassTelemetry)[0].Payload); s != 5 {
		t.Errorf("seq from file = %d, want 5", s)
	}
}

func TestSeqOfUnwrittenRecordsReused(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, nil)
	r := drivers.Reading{Device: "tpms", Point: "p", Value: 1.0}
	for range 5 {
		e.g.Emit([]drivers.Reading{r, {Device: "cabin", Point: "t", Value: 2.0}})
	}
	// Queue records 1..10 alternate tpms and cabin; 7..10 were handed to
	// the queue but not written when the process was killed.
	tests := []struct {
		name       string
		next       uint64
		tpms, cabn uint64
	}{
		{"all written", 11, 6, 6},
		{"last two lost", 9, 5, 5},
		{"four lost", 7, 4, 4},
		{"all lost", 1, 1, 1},
	}
	for _, tt := range tests {
		g, err := New(Deps{Prefix: prefix, StateDir: dir, TelemetryNext: tt.next}, testRoutes)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.seqs.get("tpms") + 1; got != tt.tpms {
			t.Errorf("%s: next tpms seq %d, want %d", tt.name, got, tt.tpms)
		}
		if got := g.seqs.get("cabin") + 1; got != tt.cabn {
			t.Errorf("%s: next cabin seq %d, want %d", tt.name, got, tt.cabn)
		}
		g.seqs.close()
		g.cmds.stop()
	}
}

func TestSpoolRefusedKeepsSeq(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	r := drivers.Reading{Device: "tpms", Point: "p", Value: 1.0}
	e.sp.fail = true
	e.g.Emit([]drivers.Reading{r})
	e.sp.fail = false
	e.g.Emit([]drivers.Reading{r})
	if s, _ := payloadSeq(e.sp.records(t, ClassTelemetry)[0].Payload); s != 1 {
		t.Errorf("seq after a refused record = %d, want 1 (no gap)", s)
	}
	if n := e.g.Stats().SpoolErrors.Load(); n != 1 {
		t.Errorf("SpoolErrors = %d", n)
	}
}

func TestAlarmAndStatus(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e.g.Emit([]drivers.Reading{
		{Device: "tpms", Point: "front_left_low", Value: true, Time: ts, Quality: drivers.Good, Alarm: true},
		{Device: "tpms", Point: "front_left", Value: 150.0, Unit: "kPa", Time: ts},
	})
	e.g.DeviceStatus("seat", false)
	e.g.DeviceStatus("seat", false) // no change, nothing sent
	e.g.DeviceStatus("seat", true)
	e.g.DeviceStatus("tpms", true) // first report online: status only
	var topics []string
	for _, r := range e.sp.records(t, ClassAlarm) {
		topics = append(topics, r.Topic)
	}
	want := []string{prefix + "/alarm/tpms/front_left_low", prefix + "/devices/seat/status", prefix + "/alarm/seat/offline",
		prefix + "/devices/seat/status", prefix + "/alarm/seat/offline", prefix + "/devices/tpms/status"}
	if diff := cmp.Diff(want, topics); diff != "" {
		t.Errorf("alarm topics (-want +got):\n%s", diff)
	}
	a := e.sp.records(t, ClassAlarm)[0]
	if string(a.Payload) != `{"v":true,"ts":"2026-03-01T12:00:00Z","q":"good"}` || !a.Retain {
		t.Errorf("alarm = %s retain %v", a.Payload, a.Retain)
	}
	st := e.sp.records(t, ClassAlarm)[1]
	if !strings.HasPrefix(string(st.Payload), `{"status":"offline","ts":"`) || !st.Retain {
		t.Errorf("status = %s retain %v", st.Payload, st.Retain)
	}
	if n := len(e.sp.records(t, ClassTelemetry)); n != 1 {
		t.Errorf("%d telemetry records, want 1", n)
	}
}

// cmdRecord is a command message as the uplink hands it over.
func cmdRecord(dev, cmd, payload string) Record {
	return Record{Topic: prefix + "/cmd/" + dev + "/" + cmd, Payload: []byte(payload), QoS: 2}
}

func TestCommands(t *testing.T) {
	{
		// synctest's clock starts at 2000-01-01 00:00 UTC.
		now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		future := now.Add(time.Hour).UTC().Format(time.RFC3339)
		past := now.Add(-time.Hour).UTC().Format(time.RFC3339)
		occupied := func(e *env, v any, q drivers.Quality) {
			e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: v, Time: time.Now(), Quality: q}})
		}
		tests := []struct {
			name    string
			setup   func(e *env)
			msg     Record
			status  string
			errText string
			applied int
		}{
			{name: "done", setup: func(e *env) { occupied(e, true, drivers.Good) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true,"expires_at":"`+future+`"}`), status: StatusDone, applied: 1},
			{name: "bad json", msg: cmdRecord("seat", "heater", `{"id":`), status: StatusRejected, errText: "payload"},
			{name: "no id", msg: cmdRecord("seat", "heater", `{"value":true}`), status: StatusRejected, errText: "id must be"},
			{name: "unknown device", msg: cmdRecord("boot", "open", `{"id":"1","value":true}`), status: StatusRejected, errText: "unknown device"},
			{name: "unknown command", msg: cmdRecord("seat", "massage", `{"id":"1","value":true}`), status: StatusRejected, errText: "no command"},
			{name: "expired", setup: func(e *env) { occupied(e, true, drivers.Good) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true,"expires_at":"`+past+`"}`), status: StatusExpired, errText: "expired at"},
			{name: "mqtt expiry", setup: func(e *env) { occupied(e, true, drivers.Good) },
				msg:    Record{Topic: prefix + "/cmd/seat/heater", Payload: []byte(`{"id":"1","value":true}`), Time: now.Add(-time.Minute), Expiry: time.Second},
				status: StatusExpired, errText: "message expiry"},
			{name: "wrong type", msg: cmdRecord("seat", "heater", `{"id":"1","value":1}`), status: StatusRejected, errText: "not a bool"},
			{name: "missing value", msg: cmdRecord("seat", "heater", `{"id":"1"}`), status: StatusRejected, errText: "missing"},
			{name: "out of range", msg: cmdRecord("seat", "level", `{"id":"1","value":4}`), status: StatusRejected, errText: "outside 0..3"},
			{name: "number ok", msg: cmdRecord("seat", "level", `{"id":"1","value":2}`), status: StatusDone, applied: 1},
			{name: "string not allowed", msg: cmdRecord("seat", "mode", `{"id":"1","value":"turbo"}`), status: StatusRejected, errText: "not one of"},
			{name: "string not string", msg: cmdRecord("seat", "mode", `{"id":"1","value":1}`), status: StatusRejected, errText: "not a string"},
			{name: "interlock unknown", msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusRejected, errText: "not known"},
			{name: "interlock false", setup: func(e *env) { occupied(e, false, drivers.Good) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusRejected, errText: "seat.occupied is false"},
			{name: "interlock bad quality", setup: func(e *env) { occupied(e, true, drivers.Stale) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusRejected, errText: "is stale"},
			{name: "interlock old", setup: func(e *env) { occupied(e, true, drivers.Good); time.Sleep(time.Minute) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusRejected, errText: "older than"},
			{name: "interlock device offline", setup: func(e *env) { occupied(e, true, drivers.Good); e.g.DeviceStatus("seat", false) },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusRejected, errText: "device seat is offline"},
			{name: "interlock old but online", setup: func(e *env) {
				e.g.DeviceStatus("seat", true)
				occupied(e, true, drivers.Good)
				time.Sleep(time.Hour)
			}, msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusDone, applied: 1},
			{name: "rate limited", setup: func(e *env) {
				occupied(e, true, drivers.Good)
				e.g.remote(context.Background(), cmdRecord("seat", "heater", `{"id":"0","value":true}`))
			}, msg: cmdRecord("seat", "heater", `{"id":"1","value":false}`), status: StatusRejected, errText: "rate limited", applied: 1},
			{name: "offline", setup: func(e *env) { occupied(e, true, drivers.Good); e.noAct = true },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusFailed, errText: "device offline"},
			{name: "set fails", setup: func(e *env) { occupied(e, true, drivers.Good); e.act.setErr = errors.New("bus: timeout") },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusFailed, errText: "bus: timeout"},
			{name: "verify fails", setup: func(e *env) { occupied(e, true, drivers.Good); e.act.liar = true },
				msg: cmdRecord("seat", "heater", `{"id":"1","value":true}`), status: StatusFailed, errText: "verify", applied: 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					e := newEnv(t, t.TempDir(), nil)
					if tt.setup != nil {
						tt.setup(e)
					}
					res := e.g.remote(context.Background(), tt.msg)
					if res.Status != tt.status || !strings.Contains(res.Error, tt.errText) {
						t.Errorf("Command = %+v, want status %s with error containing %q", res, tt.status, tt.errText)
					}
					if n := len(e.act.applied()); n != tt.applied {
						t.Errorf("%d commands applied, want %d", n, tt.applied)
					}
					// The result goes out on the result topic through the alarm class.
					alarms := e.sp.records(t, ClassAlarm)
					if len(alarms) == 0 {
						t.Fatal("no result spooled")
					}
					last := alarms[len(alarms)-1]
					var got Result
					json.Unmarshal(last.Payload, &got)
					wantTopic := strings.TrimSuffix(tt.msg.Topic, "") + "/result"
					if last.Topic != wantTopic || got.Status != tt.status {
						t.Errorf("spooled %s %s, want %s status %s", last.Topic, last.Payload, wantTopic, tt.status)
					}
					e.g.cmds.stop()
				})
			})
		}
	}
}

// TestLatestCarriedOver: a gateway built by a reload starts with the old
// one's readings, so an interlock passes before the devices are read
// again, while the reading is fresh; the old one's Latest gives them.
func TestLatestCarriedOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := newEnv(t, t.TempDir(), nil)
		old.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now(), Quality: drivers.Good}})
		latest := old.g.Latest()
		if len(latest) != 1 || latest[0].Point != "occupied" {
			t.Fatalf("Latest = %+v", latest)
		}
		e := newEnvLatest(t, t.TempDir(), nil, latest)
		if res := e.g.remote(context.Background(), cmdRecord("seat", "heater", `{"id":"1","value":true}`)); res.Status != StatusDone {
			t.Errorf("fresh carried-over reading: %+v, want done", res)
		}
		time.Sleep(time.Minute)
		e = newEnvLatest(t, t.TempDir(), nil, latest)
		res := e.g.remote(context.Background(), cmdRecord("seat", "heater", `{"id":"2","value":true}`))
		if res.Status != StatusRejected || !strings.Contains(res.Error, "older than") {
			t.Errorf("stale carried-over reading: %+v, want rejected as older", res)
		}
	})
}

func TestCommandDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := newEnv(t, dir, nil)
		e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
		msg := cmdRecord("seat", "heater", `{"id":"abc","value":true}`)
		msg.ResponseTopic = "reply/here"
		msg.CorrelationData = []byte{7}
		first := e.g.remote(context.Background(), msg)
		time.Sleep(10 * time.Second) // past the rate limit
		second := e.g.remote(context.Background(), msg)
		if first.Status != StatusDone || second != first {
			t.Errorf("results %+v, %+v", first, second)
		}
		if n := len(e.act.applied()); n != 1 {
			t.Fatalf("applied %d times, want 1", n)
		}
		var resp []Record
		for _, r := range e.sp.records(t, ClassAlarm) {
			if r.Topic == "reply/here" {
				resp = append(resp, r)
			}
		}
		if len(resp) != 2 || string(resp[0].Payload) != string(resp[1].Payload) || !cmp.Equal(resp[1].CorrelationData, []byte{7}) {
			t.Errorf("responses = %+v, want the first result twice with correlation data", resp)
		}
		e.g.cmds.stop()
		// After a restart the id is still known.
		e2 := newEnv(t, dir, nil)
		e2.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
		e2.g.remote(context.Background(), msg)
		if n := len(e2.act.applied()); n != 0 {
			t.Errorf("applied again after restart")
		}
		e2.g.cmds.stop()
	})
}

func TestCommandInterruptedIsNotReapplied(t *testing.T) {
	dir := t.TempDir()
	l, err := openCommandLog(dir, CommandPolicy{}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.claim("seat/heater", "x", time.Now()); err != nil { // crash before done
		t.Fatal(err)
	}
	e := newEnv(t, dir, nil)
	e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
	e.g.remote(context.Background(), cmdRecord("seat", "heater", `{"id":"x","value":true}`))
	if n := len(e.act.applied()); n != 0 {
		t.Errorf("a command interrupted by a restart was applied again")
	}
	alarms := e.sp.records(t, ClassAlarm)
	if !strings.Contains(string(alarms[len(alarms)-1].Payload), "restarted while applying") {
		t.Errorf("result = %s", alarms[len(alarms)-1].Payload)
	}
}

func TestAutoOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := newEnv(t, dir, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- e.g.Run(ctx) }()
		e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
		e.g.remote(ctx, cmdRecord("seat", "heater", `{"id":"1","value":true}`))
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		if n := len(e.act.applied()); n != 1 {
			t.Fatalf("applied %d before auto_off", n)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		got := e.act.applied()
		if len(got) != 2 || got[1].Value != false {
			t.Fatalf("after auto_off applied %+v, want heater false", got)
		}
		// A heater switched on again and the gateway restarted: the
		// deadline is kept.
		e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
		e.g.remote(ctx, cmdRecord("seat", "heater", `{"id":"2","value":true}`))
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		e2 := newEnv(t, dir, nil)
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { done <- e2.g.Run(ctx2) }()
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		got = e2.act.applied()
		if len(got) != 1 || got[0].Value != false {
			t.Errorf("after restart applied %+v, want heater false", got)
		}
		cancel2()
		<-done
	})
}

func TestLocalCommandViaBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- e.g.Run(ctx) }()
		e.commands(t)
		synctest.Wait()
		e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
		m := cmdRecord("seat", "heater", `{"id":"l1","value":true}`)
		m.ResponseTopic = "app/reply"
		e.br.mu.Lock()
		subs := e.br.subs
		e.br.mu.Unlock()
		if len(subs) != 1 {
			t.Fatalf("%d subscriptions", len(subs))
		}
		subs[0](m)
		synctest.Wait()
		var reply *Record
		for _, p := range e.br.published() {
			if p.Topic == "app/reply" {
				reply = &p
			}
		}
		if reply == nil || !strings.Contains(string(reply.Payload), `"status":"done"`) {
			t.Errorf("local reply = %v", reply)
		}
		cancel()
		<-done
	})
}

func TestValueJSON(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{{1.5, "1.5"}, {49.300000000000004, "49.3"}, {1e21, "1e+21"}, {true, "true"}, {"a\"b", `"a\"b"`}, {nan(), "null"}, {float32(2), "2"}, {int64(3), "3"}} {
		if got := string(valueJSON(tt.v)); got != tt.want {
			t.Errorf("valueJSON(%v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

var _ = fmt.Sprint

// FuzzCommand feeds arbitrary command topics and payloads (outside bytes
// from the cloud or a local client): no panic, and every answer carries a
// known status.
func FuzzCommand(f *testing.F) {
	f.Add("seat/heater", `{"id":"1","value":true,"expires_at":"2999-01-01T00:00:00Z"}`)
	f.Add("seat/level", `{"id":"2","value":1e400}`)
	f.Add("seat/mode", `{"id":"3","value":"eco"}`)
	f.Add("seat/heater", `{"id":"","value":null}`)
	f.Add("x/y/z", `[]`)
	f.Add("seat/heater", `{"id":"4","value":true,"expires_at":"not a time"}`)
	dir := f.TempDir()
	e := newEnv(f, dir, nil)
	e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now()}})
	f.Fuzz(func(t *testing.T, dc, payload string) {
		res := e.g.remote(context.Background(), Record{Topic: prefix + "/cmd/" + dc, Payload: []byte(payload)})
		switch res.Status {
		case StatusDone, StatusRejected, StatusExpired, StatusFailed:
		default:
			t.Fatalf("Command(%q, %q) = %+v", dc, payload, res)
		}
	})
}

func TestSeqRecoveryReadsOnlyTail(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, nil)
	for range 50 {
		e.g.Emit([]drivers.Reading{{Device: "tpms", Point: "p", Value: 1.0}, {Device: "seat", Point: "t", Value: 2.0}})
	}
	// Two more records reached the queue (101, 102) but the process died
	// before their numbers were saved.
	recs := slices.Clone(e.sp.recs[ClassTelemetry])
	for _, dev := range []string{"tpms", "seat"} {
		b, _ := Record{Topic: prefix + "/telemetry/" + dev, Payload: []byte(`{"seq":51,"ts":"x","points":{}}`)}.MarshalBinary()
		recs = append(recs, b)
	}
	var froms []uint64
	g, err := New(Deps{Prefix: prefix, StateDir: dir, Backlog: queueOf(recs, &froms), TelemetryNext: 103}, testRoutes)
	if err != nil {
		t.Fatal(err)
	}
	if len(froms) != 1 || froms[0] < 99 || froms[0] > 101 {
		t.Errorf("backlog read from %v, want only the tail (from 99..101)", froms)
	}
	for _, dev := range []string{"tpms", "seat"} {
		if got := g.seqs.get(dev); got != 51 {
			t.Errorf("%s: last seq %d, want 51", dev, got)
		}
	}
	g.seqs.close()
	g.cmds.stop()
	// Everything below TelemetryNext is accounted for: the next start
	// reads nothing old.
	froms = nil
	g, err = New(Deps{Prefix: prefix, StateDir: dir, Backlog: queueOf(recs, &froms), TelemetryNext: 103}, testRoutes)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(froms, []uint64{103}) {
		t.Errorf("second start read the backlog from %v, want [103]", froms)
	}
	g.seqs.close()
	g.cmds.stop()
}

func TestSeqComplete(t *testing.T) {
	dir := t.TempDir()
	s, err := openSeqFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := s.begin() // device a spools, slowly
	b := s.begin()
	s.set("b", 1, 1) // b's record got queue number 1 and was saved
	s.end(b)
	if w := s.complete(); w != 0 {
		t.Errorf("complete() = %d with a spool in progress since 0, want 0", w)
	}
	s.set("a", 1, 2)
	s.end(a)
	if w := s.complete(); w != 2 {
		t.Errorf("complete() = %d, want 2", w)
	}
	c := s.begin()
	s.set("c", 1, 3) // saved while its own spool is in progress: W 2 on disk
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	_ = c
	s, err = openSeqFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.complete(); w != 2 {
		t.Errorf("complete() after reopen = %d, want 2", w)
	}
	for dev, want := range map[string]uint64{"a": 1, "b": 1, "c": 1} {
		if got := s.get(dev); got != want {
			t.Errorf("get(%s) = %d, want %d", dev, got, want)
		}
	}
	s.close()

	// Stale lines after the covered bytes are ignored; a damaged header
	// means: read the whole backlog.
	path := filepath.Join(dir, "seq")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		data  []byte
		w     uint64
		lastA uint64
	}{
		{"trailing stale lines", append(slices.Clone(data), "a 99 1\n"...), 2, 1},
		{"damaged", bytes.Replace(data, []byte("a 1 2"), []byte("a 7 2"), 1), 0, 7},
		{"no header", []byte("a 5 9\n"), 0, 5},
		{"empty", nil, 0, 0},
	} {
		if err := os.WriteFile(path, tt.data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := openSeqFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		if w, a := s.complete(), s.get("a"); w != tt.w || a != tt.lastA {
			t.Errorf("%s: complete() = %d, get(a) = %d; want %d, %d", tt.name, w, a, tt.w, tt.lastA)
		}
		s.close()
	}
}

// FuzzSeqFile: any state file opens without panic, and a file the gateway
// writes reads back the same.
func FuzzSeqFile(f *testing.F) {
	for _, s := range []string{
		"", "a 5 9\n", "#complete 2 12 1a2b3c4d\na 1 2\nb 1 1\n", "#complete 18446744073709551615 0 0\n",
		"#complete 1 999999 0\na 1 1\n", "a\nb x\nc 1 2 3 4\n# x y\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "seq")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := openSeqFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.recover(3)
		w := s.complete()
		s.restart(w)
		want := map[string]uint64{}
		for dev := range s.seqs {
			want[dev] = s.get(dev)
		}
		s.close()
		s, err = openSeqFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if got := s.complete(); got != w {
			t.Errorf("complete() after rewrite = %d, want %d", got, w)
		}
		for dev, n := range want {
			if strings.ContainsAny(dev, " \t\n") {
				continue
			}
			if got := s.get(dev); got != n {
				t.Errorf("get(%q) after rewrite = %d, want %d", dev, got, n)
			}
		}
	})
}
