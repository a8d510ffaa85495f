package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway"
	mtopic "github.com/edgegw/edgegw/mqtt/topic"
)

// fakeBroker is an in-process Subscriber: publish calls the callbacks of
// the matching filters at once.
type fakeBroker struct {
	ready chan struct{} // closed at the first subscription (Console.Run's)
	mu    sync.Mutex
	subs  map[string]func(gateway.Record)
}

func (b *fakeBroker) Subscribe(filter string, qos byte, fn func(gateway.Record)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[string]func(gateway.Record){}
	}
	b.subs[filter] = fn
	if len(b.subs) == 1 {
		close(b.ready)
	}
	return func() {}, nil
}

// publish delivers to the subscriptions whose filter matches topic.
func (b *fakeBroker) publish(topic, payload string) {
	b.mu.Lock()
	var fns []func(gateway.Record)
	for f, fn := range b.subs {
		if mtopic.Match(f, topic) {
			fns = append(fns, fn)
		}
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(gateway.Record{Topic: topic, Payload: []byte(payload)})
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	c      *Console
	b      *fakeBroker
	clk    *clock
	cancel context.CancelFunc
	done   chan struct{}
	// mu guards sent.
	mu   sync.Mutex
	sent []string // payloads given to Command
}

const prefix = "vehicles/T"

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{b: &fakeBroker{ready: make(chan struct{})}, clk: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, done: make(chan struct{})}
	o := Options{
		Prefix: prefix, Subscriber: h.b,
		Status: func() Status {
			return Status{Devices: []DeviceState{{Name: "tpms", State: "online"}, {Name: "seat", State: "online"}}}
		},
		Devices:   func() []string { return []string{"tpms", "seat"} },
		History:   time.Minute,
		MaxPoints: 60,
		MaxSeries: 4,
		Interval:  time.Hour, // tests call tick
		Now:       h.clk.now,
		Commands:  func() []CommandRule { return []CommandRule{{Device: "seat", Name: "heater", Type: "bool"}} },
		Command: func(ctx context.Context, user, device, name string, payload []byte) gateway.Result {
			h.mu.Lock()
			h.sent = append(h.sent, string(payload))
			h.mu.Unlock()
			var m struct{ ID string }
			json.Unmarshal(payload, &m)
			return gateway.Result{ID: m.ID, Status: gateway.StatusDone, TS: h.clk.now().Format(time.RFC3339Nano)}
		},
		Verify: func(_, user string, pw []byte) bool { return user == "tech" && string(pw) == "secret" },
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		c.Run(ctx)
	}()
	<-h.b.ready
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// server serves the console until the test ends; open event streams are
// ended first, as Close waits for them.
func (h *harness) server(t *testing.T) *httptest.Server {
	return h.serverTimeout(t, 0)
}

func (h *harness) serverTimeout(t *testing.T, writeTimeout time.Duration) *httptest.Server {
	srv := httptest.NewUnstartedServer(h.c)
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(func() {
		h.c.closeClients()
		srv.Close()
	})
	return srv
}

func telemetry(ts time.Time, points string) string {
	return fmt.Sprintf(`{"seq":1,"ts":%q,"points":{%s}}`, ts.Format(time.RFC3339Nano), points)
}

func TestStateCharts(t *testing.T) {
	h := newHarness(t, nil)
	// A falling pressure, one reading a second: the chart keeps one
	// sample per History/MaxPoints = 1s.
	for i := 0; i < 90; i++ {
		h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), fmt.Sprintf(`"rr_pressure":{"v":%d,"u":"kPa","q":"good"},"rr_ok":{"v":true,"q":"good"}`, 200-i)))
		h.clk.add(500 * time.Millisecond)
		h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), `"rr_pressure":{"v":1,"u":"kPa","q":"good"}`))
		h.clk.add(500 * time.Millisecond)
	}
	v := h.c.st.snapshot(h.clk.now())
	s := v.Series["tpms.rr_pressure"]
	if len(s) != 60 {
		t.Fatalf("chart has %d samples, want 60 (MaxPoints)", len(s))
	}
	if s[0].V != 200-30 || s[59].V != 200-89 {
		t.Errorf("chart runs %v..%v, want 170..111", s[0].V, s[59].V)
	}
	if _, ok := v.Series["tpms.rr_ok"]; ok {
		t.Error("a bool point has a chart")
	}
	if p := v.Devices["tpms"].Points["rr_pressure"]; string(p.V) != "1" || p.U != "kPa" {
		t.Errorf("rr_pressure = %+v, want the last value 1 kPa", p)
	}
}

// TestSnapshotThinned: a full hour of 720 samples goes to a new page as
// 150, about 16 bytes each, times relative to the snapshot.
func TestSnapshotThinned(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.History, o.MaxPoints = time.Hour, 720 })
	for i := 0; i < 720; i++ {
		h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), fmt.Sprintf(`"rr_pressure":{"v":%d.25,"u":"kPa","q":"good"}`, 1000-i)))
		h.clk.add(5 * time.Second)
	}
	v := h.c.st.snapshot(h.clk.now())
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Hist map[string][][2]float64 }
	json.Unmarshal(b, &got)
	xs := got.Hist["tpms.rr_pressure"]
	if len(xs) != maxSnapshotSamples {
		t.Fatalf("%d samples sent, want %d", len(xs), maxSnapshotSamples)
	}
	if first, last := xs[0], xs[len(xs)-1]; first != [2]float64{-3600, 1000.25} || last != [2]float64{-5, 281.25} {
		t.Errorf("samples run %v..%v, want [-3600 1000.25]..[-5 281.25]", first, last)
	}
	if len(b) > 3000 {
		t.Errorf("snapshot of one hour of one point is %d bytes", len(b))
	}
}

// TestStateBounds: a local client publishing under the gateway's prefix
// cannot make the console grow: unknown devices are ignored, and points,
// charts, values and payloads are bounded.
func TestStateBounds(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clk.now()
	h.b.publish(prefix+"/telemetry/intruder", telemetry(now, `"x":{"v":1,"q":"good"}`))
	var pts []string
	for i := 0; i < maxPointsPer+50; i++ {
		pts = append(pts, fmt.Sprintf(`"p%04d":{"v":%d,"q":"good"}`, i, i))
	}
	h.b.publish(prefix+"/telemetry/tpms", telemetry(now, strings.Join(pts, ",")))
	h.b.publish(prefix+"/telemetry/seat", telemetry(now, `"big":{"v":"`+strings.Repeat("x", 1000)+`","q":"good"}`))
	h.b.publish(prefix+"/telemetry/seat", strings.Repeat(" ", maxPayload)+telemetry(now, `"late":{"v":1,"q":"good"}`))
	h.b.publish(prefix+"/alarm/intruder/x", `{"v":true,"ts":"2026-01-02T03:04:05Z"}`)
	v := h.c.st.snapshot(now)
	if _, ok := v.Devices["intruder"]; ok {
		t.Error("an unknown device is kept")
	}
	if n := len(v.Devices["tpms"].Points); n != maxPointsPer {
		t.Errorf("tpms has %d points, want the bound %d", n, maxPointsPer)
	}
	if n := len(v.Series); n != 4 {
		t.Errorf("%d charts, want MaxSeries 4", n)
	}
	if p := v.Devices["seat"].Points["big"]; p == nil || p.V != nil {
		t.Errorf("an oversized value is kept: %+v", p)
	}
	if _, ok := v.Devices["seat"].Points["late"]; ok {
		t.Error("an oversized payload was decoded")
	}
	if len(v.Alarms) != 0 {
		t.Errorf("alarms = %v", v.Alarms)
	}
	if b := h.c.st.memBytes(); b > 4*60*16 {
		t.Errorf("charts hold %d bytes, want at most %d", b, 4*60*16)
	}
	for i := 0; i < maxLog+10; i++ {
		h.b.publish(prefix+"/cmd/seat/heater/result", fmt.Sprintf(`{"id":"x%d","status":"rejected","error":"interlock: seat.occupied is false","ts":"2026-01-02T03:04:05Z"}`, i))
	}
	if n := len(h.c.st.snapshot(now).Log); n != maxLog {
		t.Errorf("command log has %d entries, want %d", n, maxLog)
	}
}

func TestAlarmsAndLog(t *testing.T) {
	h := newHarness(t, nil)
	h.b.publish(prefix+"/alarm/tpms/rr_low_pressure", `{"v":false,"ts":"2026-01-02T03:04:05Z","q":"good"}`)
	if d := h.c.st.delta(h.clk.now()); len(d.Alarms) != 0 {
		t.Errorf("a cleared alarm never raised is shown: %v", d.Alarms)
	}
	h.b.publish(prefix+"/alarm/tpms/rr_low_pressure", `{"v":true,"ts":"2026-01-02T03:04:05Z","q":"good"}`)
	h.b.publish(prefix+"/cmd/seat/heater", `{"id":"local-1","value":true}`)
	h.b.publish(prefix+"/cmd/seat/heater/result", `{"id":"local-1","status":"done","ts":"2026-01-02T03:04:06Z"}`)
	h.b.publish(prefix+"/cmd/seat/heater/result", `{"id":"local-1","status":"rejected","error":"duplicate","ts":"2026-01-02T03:04:07Z"}`)
	d := h.c.st.delta(h.clk.now())
	if len(d.Alarms) != 1 || !d.Alarms[0].Active || d.Alarms[0].Point != "rr_low_pressure" {
		t.Errorf("alarms = %+v", d.Alarms)
	}
	if len(d.Log) != 1 || d.Log[0].Source != "local" || string(d.Log[0].Value) != "true" || d.Log[0].Status != "done" {
		t.Errorf("log = %+v", d.Log)
	}
	if d := h.c.st.delta(h.clk.now()); d.Alarms != nil || d.Log != nil || d.Devices != nil {
		t.Errorf("second delta not empty: %+v", d)
	}
}

func FuzzParseTelemetry(f *testing.F) {
	f.Add([]byte(`{"seq":1,"ts":"2026-01-02T03:04:05Z","points":{"p":{"v":1.5,"u":"kPa","q":"good"}}}`))
	f.Add([]byte(`{"seq":1,"ts":"2026-01-02T03:04:05Z","points":{"p":{"u":"kPa","q":"comm_error"}}}`))
	f.Add([]byte(`{"ts":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseTelemetry(b)
		if !ok {
			return
		}
		for n, p := range m.Points {
			if len(p.V) > maxValueBytes || len(n) > 128 && p.V != nil {
				t.Errorf("point %q value of %d bytes kept", n, len(p.V))
			}
		}
	})
}

// FuzzDispatch feeds every kind of message the console decodes; the
// state stays within its bounds.
func FuzzDispatch(f *testing.F) {
	f.Add([]byte(`{"seq":1,"ts":"2026-01-02T03:04:05Z","points":{"p":{"v":1.5,"u":"kPa","q":"good"}}}`))
	f.Add([]byte(`{"v":true,"ts":"2026-01-02T03:04:05Z","q":"good"}`))
	f.Add([]byte(`{"id":"a","value":true}`))
	f.Add([]byte(`{"id":"a","status":"done","ts":"2026-01-02T03:04:05Z"}`))
	o := Options{Prefix: prefix, History: time.Minute, MaxPoints: 10, MaxSeries: 4, Now: time.Now}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newState(o)
		s.setKnown([]string{"tpms"})
		for _, topic := range []string{"/telemetry/tpms", "/alarm/tpms/low", "/cmd/tpms/reset", "/cmd/tpms/reset/result", "/telemetry/x/y"} {
			s.dispatch(gateway.Record{Topic: prefix + topic, Payload: b})
		}
		v := s.snapshot(time.Now())
		if len(v.Series) > 4 || len(v.Log) > maxLog || len(v.Alarms) > 4 {
			t.Errorf("state out of bounds: %d charts, %d log entries, %d alarms", len(v.Series), len(v.Log), len(v.Alarms))
		}
	})
}

func TestAssets(t *testing.T) {
	h := newHarness(t, nil)
	srv := h.server(t)
	total := 0
	for _, p := range []string{"/console/", "/console/app.js", "/console/style.css"} {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(resp.Header.Get("Content-Type"), "charset=utf-8") {
			t.Errorf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
		}
		total += len(b)
	}
	t.Logf("page: %d bytes gzipped", total)
	if total > 16<<10 {
		t.Errorf("page is %d bytes gzipped, want under 16 KiB", total)
	}
}

// events reads server-sent events from the console's stream.
type events struct {
	r    *bufio.Reader
	body io.Closer
}

func openEvents(t *testing.T, url string, cookie *http.Cookie) *events {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/console/events", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &events{r: bufio.NewReader(resp.Body), body: resp.Body}
}

func (e *events) next(t *testing.T) (name string, data map[string]any) {
	t.Helper()
	for {
		line, err := e.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[len("data: "):]), &data); err != nil {
				t.Fatalf("event %s: %v", name, err)
			}
		case line == "" && name != "":
			return name, data
		}
	}
}

func TestEventsSnapshotThenDeltas(t *testing.T) {
	h := newHarness(t, nil)
	// A write timeout shorter than any stream, as a health server may
	// have: the event stream sets its own deadline for each write.
	srv := h.serverTimeout(t, time.Nanosecond)
	h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), `"rr_pressure":{"v":200,"u":"kPa","q":"good"}`))
	ev := openEvents(t, srv.URL, nil)
	name, snap := ev.next(t)
	if name != "snapshot" || snap["dev"] == nil || snap["st"] == nil {
		t.Fatalf("first event %s %v", name, snap)
	}
	if _, ok := snap["me"]; ok {
		t.Error("a snapshot without a session has a session")
	}
	h.c.tick() // the status was sent in the snapshot; the delta has the rest
	h.clk.add(2 * time.Second)
	h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), `"rr_pressure":{"v":190,"u":"kPa","q":"good"}`))
	h.c.tick()
	name, d := ev.next(t)
	if name != "delta" {
		t.Fatalf("event %s, want delta", name)
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), `"rr_pressure":{"q":"good","ts":`) || !strings.Contains(string(b), `"hist":{"tpms.rr_pressure":[[`) {
		t.Errorf("delta = %s", b)
	}
}

// do sends a request as a browser on the page's origin would.
func do(t *testing.T, method, url, body string, hdr map[string]string, cookie *http.Cookie) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestCommandsOff(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Command, o.Verify, o.Commands = nil, nil, nil })
	srv := h.server(t)
	for _, p := range []string{"/console/api/login", "/console/api/command"} {
		if resp, _ := do(t, "POST", srv.URL+p, `{"user":"tech","password":"secret"}`, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s with commands off: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestLoginAndCommand(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprint("secure=", secure), func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Secure = secure })
			srv := h.server(t)
			login, cmd := srv.URL+"/console/api/login", srv.URL+"/console/api/command"
			if resp, _ := do(t, "POST", login, `{"user":"tech","password":"wrong"}`, nil, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password: %d", resp.StatusCode)
			}
			resp, me := do(t, "POST", login, `{"user":"tech","password":"secret"}`, nil, nil)
			if resp.StatusCode != 200 || me["csrf"] == "" {
				t.Fatalf("login: %d %v", resp.StatusCode, me)
			}
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == cookieName {
					ck = c
				}
			}
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != secure {
				t.Fatalf("session cookie = %+v", ck)
			}
			csrf := me["csrf"].(string)
			// A token that differs from csrf in its first byte, whatever
			// that byte is.
			wrong := "0" + csrf[1:]
			if csrf[0] == '0' {
				wrong = "1" + csrf[1:]
			}
			body := `{"device":"seat","command":"heater","value":true}`
			tests := []struct {
				name   string
				hdr    map[string]string
				cookie *http.Cookie
				body   string
				want   int
			}{
				{"no session", map[string]string{"X-CSRF-Token": csrf}, nil, body, http.StatusUnauthorized},
				{"no token", nil, ck, body, http.StatusForbidden},
				{"wrong token", map[string]string{"X-CSRF-Token": wrong}, ck, body, http.StatusForbidden},
				{"cross-site", map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, ck, body, http.StatusForbidden},
				{"other origin", map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "", "Origin": "http://evil.example"}, ck, body, http.StatusForbidden},
				{"unknown command", map[string]string{"X-CSRF-Token": csrf}, ck, `{"device":"seat","command":"eject","value":true}`, http.StatusBadRequest},
				{"too large", map[string]string{"X-CSRF-Token": csrf}, ck, `{"device":"seat","command":"heater","value":"` + strings.Repeat("x", maxBodyBytes) + `"}`, http.StatusBadRequest},
				{"ok", map[string]string{"X-CSRF-Token": csrf}, ck, body, http.StatusOK},
			}
			for _, tt := range tests {
				resp, out := do(t, "POST", cmd, tt.body, tt.hdr, tt.cookie)
				if resp.StatusCode != tt.want {
					t.Errorf("%s: %d %v, want %d", tt.name, resp.StatusCode, out, tt.want)
				}
			}
			h.mu.Lock()
			sent := h.sent
			h.mu.Unlock()
			if len(sent) != 1 {
				t.Fatalf("%d commands reached the gate, want 1: %v", len(sent), sent)
			}
			var m struct {
				ID        string
				Value     bool
				ExpiresAt time.Time `json:"expires_at"`
			}
			json.Unmarshal([]byte(sent[0]), &m)
			if !strings.HasPrefix(m.ID, "console-") || !m.Value || !m.ExpiresAt.Equal(h.clk.now().Add(30*time.Second)) {
				t.Errorf("command payload = %s", sent[0])
			}
			l := h.c.st.snapshot(h.clk.now()).Log
			if len(l) != 1 || l[0].User != "tech" || l[0].Source != "console" || l[0].Status != "done" {
				t.Errorf("log = %+v", l)
			}
			// The snapshot of a logged-in page carries its CSRF token.
			ev := openEvents(t, srv.URL, ck)
			if _, snap := ev.next(t); snap["me"] == nil {
				t.Error("snapshot lacks the session")
			}
			if resp, _ := do(t, "POST", srv.URL+"/console/api/logout", `{}`, map[string]string{"X-CSRF-Token": csrf}, ck); resp.StatusCode != 200 {
				t.Errorf("logout: %d", resp.StatusCode)
			}
			if resp, _ := do(t, "POST", cmd, body, map[string]string{"X-CSRF-Token": csrf}, ck); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("command after logout: %d", resp.StatusCode)
			}
		})
	}
}

// TestLoginBudget: guessing passwords is slowed to one try per 10 s after
// 5 failures, whoever asks.
func TestLoginBudget(t *testing.T) {
	h := newHarness(t, nil)
	srv := h.server(t)
	login := srv.URL + "/console/api/login"
	for i := 0; i < loginBurst; i++ {
		if resp, _ := do(t, "POST", login, `{"user":"tech","password":"guess"}`, nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("try %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := do(t, "POST", login, `{"user":"tech","password":"secret"}`, nil, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: %d, want 429", loginBurst, resp.StatusCode)
	}
	h.clk.add(loginRefill)
	if resp, _ := do(t, "POST", login, `{"user":"tech","password":"secret"}`, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("after %v: %d, want 200", loginRefill, resp.StatusCode)
	}
}

// TestConcurrentViews marshals snapshots and deltas while messages
// arrive; run with -race.
func TestConcurrentViews(t *testing.T) {
	h := newHarness(t, nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 200; i++ {
			h.b.publish(prefix+"/cmd/seat/heater", fmt.Sprintf(`{"id":"c%d","value":true}`, i%5))
			h.b.publish(prefix+"/cmd/seat/heater/result", fmt.Sprintf(`{"id":"c%d","status":"done","ts":"2026-01-02T03:04:05Z"}`, i%5))
			h.b.publish(prefix+"/telemetry/tpms", telemetry(h.clk.now(), fmt.Sprintf(`"p":{"v":%d,"q":"good"}`, i)))
			h.b.publish(prefix+"/alarm/tpms/low", fmt.Sprintf(`{"v":%v,"ts":"2026-01-02T03:04:05Z"}`, i%2 == 0))
			h.clk.add(time.Second)
		}
	})
	for i := 0; i < 200; i++ {
		json.Marshal(h.c.st.snapshot(h.clk.now()))
		json.Marshal(h.c.st.delta(h.clk.now()))
	}
	wg.Wait()
}

// TestStateBoundsNames: long point names and command ids, which a local
// client publishing under the prefix chooses, are not kept at their
// length: a device's points and the command log stay within
// maxNameBytes a name.
func TestStateBoundsNames(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clk.now()
	long := strings.Repeat("n", 10000)
	h.b.publish(prefix+"/telemetry/seat", telemetry(now, `"`+long+`":{"v":1,"q":"good"},"ok":{"v":2,"q":"good"}`))
	h.b.publish(prefix+"/cmd/seat/heater", `{"id":"`+long+`","value":true}`)
	v := h.c.st.snapshot(now)
	for n := range v.Devices["seat"].Points {
		if len(n) > maxNameBytes {
			t.Errorf("a point named with %d bytes is kept", len(n))
		}
	}
	if _, ok := v.Devices["seat"].Points["ok"]; !ok {
		t.Error("the point beside a long-named one is lost")
	}
	if len(v.Log) != 1 {
		t.Fatalf("command log has %d entries, want 1", len(v.Log))
	}
	if n := len(v.Log[0].ID); n > maxNameBytes {
		t.Errorf("a command id of %d bytes is kept, want at most %d", n, maxNameBytes)
	}
}
