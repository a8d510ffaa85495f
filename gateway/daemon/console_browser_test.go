package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/console"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// chromium returns Debian's chromium, skipping the test without it
// outside CI; scripts/test.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (scripts/test.sh installs it)")
	}
	t.Skip("chromium not found")
	return ""
}

// browser starts a headless chromium with a phone-sized window and
// returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// consoleConfig is the demo configuration with the console's commands on,
// accounts "ops" (the demo ACL's command role) and "alice" in the broker's password file, a one-minute chart
// and a tyre losing 4 kPa a second.
func consoleConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	pw := writePasswords(t, [][2]string{{"ops", "s3cret"}, {"alice", "guess"}})
	src, err := os.ReadFile("../../configs/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	for _, r := range [][2]string{
		{"[console]\n", "[console]\nhistory = \"1m\"\nmax_points = 600\ninterval = \"250ms\"\ncommands = true\n"},
		{`password_file = "${EDGEGW_PASSWD:-configs/demo.passwd}"`, "password_file = " + fmt.Sprintf("%q", pw)},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("demo.toml has no %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "demo.toml")
	os.WriteFile(path, []byte(text), 0o644)
	t.Setenv("EDGEGW_TPMS_LEAK", "240")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestConsoleInBrowser runs the demo with the console and checks the page
// in chromium: every device with good readings, the leaking tyre's
// falling chart and its alarm, the backlog growing without a cloud and
// shrinking once Mosquitto is up, and commands sent from the page: one
// applied, one refused by its interlock. It saves a screenshot in
// $EDGEGW_ARTIFACTS (default a temporary directory).
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo and a browser")
	}
	ctx := browser(t)
	cloud := mqtttest.StartMosquitto(t)
	cloud.Stop() // the cloud appears later, at the same address
	_, healthAddr := demoEnv(t, "mqtt://"+cloud.Addr)
	t.Setenv("EDGEGW_TPMS_PERIOD", "300ms")
	cfg := consoleConfig(t)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	go func() { done <- Run(rctx, cfg, testRegistry(), log) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	base := "http://" + healthAddr + "/console/"
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#alarms").innerText + "\\n" + document.querySelector("#cmd-h").parentElement.innerText + "\\n" + document.querySelector("#queue").innerText`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, text)
		}
	}
	start := time.Now()
	// The health listener is up once Run has tried every device.
	var err error
	for i := 0; i < 100; i++ {
		if err = chromedp.Do(ctx, chromedp.Navigate(base)); err == nil {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case err := <-done:
			t.Fatalf("Run: %v", err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}

	poll("every demo device online with good readings", `["tpms","cabin","cabin_env","seat_driver","seat_passenger"].every(d => {
		const c = document.querySelector('[data-device="' + d + '"]');
		return c && c.querySelector(".s-online") && c.querySelectorAll("tr[data-quality]").length > 0 &&
			c.querySelectorAll('tr[data-quality]:not([data-quality="good"])').length == 0;
	})`)
	poll("the rear right tyre's chart falls", `(() => {
		const s = document.querySelector('svg[data-key="tpms.rr_pressure"]');
		return !!s && +s.dataset.n >= 5 && +s.dataset.last < +s.dataset.first;
	})()`)
	poll("the low-pressure alarm", `!!document.querySelector('[data-alarm="tpms/rr_low_pressure"]')`)
	if kpa := evaluate[float64](t, ctx, `parseFloat(document.querySelector('tr[data-point="tpms.rr_pressure"] td').textContent)`); kpa >= 180 {
		t.Errorf("alarm shown at %v kPa, above the 180 kPa threshold", kpa)
	}
	// Basic accessibility: landmarks, a label for every control, a name
	// for every chart, and quality told in words, not colour alone.
	if bad := evaluate[string](t, ctx, `(() => {
		const out = [];
		for (const l of ["header", "main", "footer"]) if (!document.querySelector(l)) out.push("no " + l);
		for (const e of document.querySelectorAll("input, select")) if (!e.labels || !e.labels.length) out.push("unlabelled " + e.name);
		for (const e of document.querySelectorAll("svg.chart")) if (!e.getAttribute("aria-label")) out.push("unnamed chart " + e.dataset.key);
		for (const e of document.querySelectorAll("tr[data-quality] .badge")) if (!/[a-z]/.test(e.textContent)) out.push("quality without words");
		return out.join("; ");
	})()`); bad != "" {
		t.Errorf("accessibility: %s", bad)
	}

	// No cloud: the backlog grows.
	records := `+document.querySelector('tr[data-class="telemetry"]').dataset.records`
	first := evaluate[int](t, ctx, records)
	poll("the backlog grows", fmt.Sprintf(`%s > %d + 10`, records, first))
	later := evaluate[int](t, ctx, records)

	// A command from the page, applied once; one its interlock refuses.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#login input[name="user"]`), "ops"),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="password"]`), "s3cret"),
		chromedp.Click(chromedp.CSS(`#login button`)),
		chromedp.WaitVisible(chromedp.CSS(`#send`)),
	); err != nil {
		t.Fatalf("login: %v", err)
	}
	send := func(option, value, want string) {
		t.Helper()
		idx := evaluate[string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#cmd-select option")].find(o => o.textContent.startsWith(%q)).value`, option))
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(`#cmd-select`), idx),
			chromedp.SetValue(chromedp.CSS(`#cmd-value`), value),
			chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
		); err != nil {
			t.Fatalf("send %s: %v", option, err)
		}
		poll(option+" "+want, fmt.Sprintf(`document.querySelector("#send-msg").dataset.status == %q`, want))
	}
	send("seat_driver/heater ", "true", "done")
	poll("the heater on in the readings", `/true/.test(document.querySelector('tr[data-point="seat_driver.heater"] td').textContent)`)
	send("seat_passenger/heater ", "true", "rejected")
	msg := evaluate[string](t, ctx, `document.querySelector("#send-msg").textContent`)
	if !strings.Contains(msg, "interlock") {
		t.Errorf("refusal reads %q, want the interlock named", msg)
	}
	poll("both commands in the log", `document.querySelectorAll('#log tr[data-status="done"]').length == 1 && document.querySelectorAll('#log tr[data-status="rejected"]').length == 1`)
	if m := metricsText(t, healthAddr); !strings.Contains(m, `edgegw_commands_total{outcome="done"} 1`+"\n") || !strings.Contains(m, `edgegw_commands_total{outcome="rejected"} 1`+"\n") {
		t.Errorf("the gate counted:\n%s", grepLines(m, "edgegw_commands_total"))
	}

	// An account the ACL does not give the command role: its login works,
	// its command is refused before the gate, and the relay stays as it was.
	if res := consoleCommandAs(t, healthAddr, "alice", "guess", "seat_driver", "heater", "false"); res.Status != "rejected" || !strings.Contains(res.Error, "not authorized") {
		t.Errorf("alice's command from the console: %+v, want rejected, not authorized", res)
	}
	if m := metricsText(t, healthAddr); !strings.Contains(m, `edgegw_commands_total{outcome="done"} 1`+"\n") {
		t.Errorf("alice's command reached the gate:\n%s", grepLines(m, "edgegw_commands_total"))
	}
	poll("the heater still on", `/true/.test(document.querySelector('tr[data-point="seat_driver.heater"] td').textContent)`)

	// The cloud appears: the backlog drains.
	cloud.Start()
	poll("the uplink connected", `!!document.querySelector('#uplink dd[data-connected="true"]')`)
	poll("the backlog shrinks", fmt.Sprintf(`%s < %d`, records, later/2))

	dir := os.Getenv("EDGEGW_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "console.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("checked in %v; screenshot %s (%d bytes)", time.Since(start).Round(time.Millisecond), path, len(png))
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// consoleCommandAs logs in to the console's API as user, without a
// browser, and sends one command.
func consoleCommandAs(t *testing.T, addr, user, password, device, command, value string) gateway.Result {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	base := "http://" + addr + "/console/api/"
	post := func(path, body, csrf string, v any) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s as %s: %s %s", path, user, resp.Status, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("POST %s: %v: %s", path, err, b)
		}
	}
	var s struct {
		CSRF string `json:"csrf"`
	}
	post("login", fmt.Sprintf(`{"user":%q,"password":%q}`, user, password), "", &s)
	var res gateway.Result
	post("command", fmt.Sprintf(`{"device":%q,"command":%q,"value":%s}`, device, command, value), s.CSRF, &res)
	return res
}

// oneSubscriber is a local broker with one subscriber, for a console
// without the daemon.
type oneSubscriber struct {
	fn chan func(gateway.Record)
}

func (s oneSubscriber) Subscribe(_ string, _ byte, fn func(gateway.Record)) (func(), error) {
	s.fn <- fn
	return func() {}, nil
}

// TestConsoleStringValue: a point whose value is a string (drivers.Reading
// may hold one) shows as that string, and the rest of the page still
// renders.
func TestConsoleStringValue(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	ctx := browser(t)
	sub := oneSubscriber{fn: make(chan func(gateway.Record), 1)}
	c, err := console.New(console.Options{
		Prefix:     "v/1",
		Subscriber: sub,
		Status: func() console.Status {
			return console.Status{Devices: []console.DeviceState{{Name: "door", State: "online"}},
				Queue: []console.QueueClass{{Name: "telemetry"}}}
		},
		Devices:  func() []string { return []string{"door"} },
		Interval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close) // after Run has ended the event streams
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	publish := <-sub.fn
	publish(gateway.Record{Topic: "v/1/telemetry/door", Payload: []byte(`{"ts":"2026-01-02T03:04:05Z","points":{"mode":{"v":"open","q":"good"},"angle":{"v":12.5,"u":"deg","q":"good"}}}`)})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/console/")); err != nil {
		t.Fatal(err)
	}
	expr := `(() => {
		const td = (k) => document.querySelector('tr[data-point="' + k + '"] td');
		return !!td("door.mode") && td("door.mode").textContent.trim() == "open" &&
			/12\.5/.test(td("door.angle").textContent) && !!document.querySelector('tr[data-class="telemetry"]');
	})()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("string value: %v\npage:\n%s", err, text)
	}
}
