package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// rawMQTT is a packet-level client for the attacks below.
type rawMQTT struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
	v  packet.Version
}

func dialRaw(t *testing.T, nc net.Conn, v packet.Version) *rawMQTT {
	t.Cleanup(func() { nc.Close() })
	return &rawMQTT{t: t, nc: nc, r: bufio.NewReader(nc), v: v}
}

func (c *rawMQTT) send(p packet.Packet) {
	c.t.Helper()
	b, err := packet.Append(nil, p, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawMQTT) recv() packet.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	p, err := packet.Read(c.r, c.v, 0)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// TestAccessEndToEnd (issue 13 rows 1 and 2) runs the demo gateway with
// pi.toml's kind of broker section (password file, an ACL that keeps
// commands for ops, a WebSocket listener) and a real Mosquitto as the
// cloud, and tries every door to the seat heater but ops's: a message from
// the cloud that an [[uplink.receive]] rule maps onto its command topic,
// and, as alice and as a web page, a will on the command topic, a PUBLISH
// and a retained PUBLISH there, a WebSocket from a foreign origin, an
// anonymous WebSocket. The relay never moves (the seat's telemetry reads
// its coil); then ops's command moves it, which shows the test would see
// it.
func TestAccessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for several seconds")
	}
	cloud := mqtttest.StartMosquitto(t)
	brokerAddr, _ := demoEnv(t, "mqtt://"+cloud.Addr)
	wsAddr := freePort(t)
	cfg, err := config.Load("../../configs/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	// bcrypt at its lowest cost: the race detector slows the shipped one
	// to seconds.
	var passwd []byte
	for _, u := range []string{"ops", "alice"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-secret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		passwd = fmt.Appendf(passwd, "%s:%s\n", u, h)
	}
	pf := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(pf, passwd, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Broker.PasswordFile = pf
	cfg.Broker.WSListen = wsAddr
	// The demo opts in to anonymous readers; pi.toml's kind of section
	// does not, and with a WebSocket listener the default is no anonymous
	// access at all.
	cfg.Broker.AllowAnonymous = nil
	cfg.Broker.ACL = []config.ACLRule{
		{User: "ops", Permission: "allow", Action: "all", Topic: "vehicles/#"},
		{User: "*", Permission: "deny", Action: "publish", Topic: "vehicles/+/cmd/#"},
		{User: "*", Permission: "allow", Action: "all", Topic: "vehicles/#"},
	}
	// The cloud's messages: a notice may come in, a command may not come
	// by this door (remote commands take the uplink's command path).
	cfg.Broker.ACL = append([]config.ACLRule{
		{User: broker.UplinkUser, Permission: "allow", Action: "publish", Topic: "vehicles/+/notice/#"},
	}, cfg.Broker.ACL...)
	cfg.Uplink.Receive = []config.BridgeRule{
		{Filter: "fleet/notice/#", Prefix: "vehicles/TESTVIN/notice", QoS: 1},
		{Filter: "fleet/broadcast/#", Prefix: "vehicles/TESTVIN/cmd", QoS: 1},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	go func() { done <- Run(ctx, cfg, testRegistry(), log) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	}()

	const prefix = "vehicles/TESTVIN/"
	const heater = prefix + "cmd/seat_driver/heater"
	w := watchWith(t, brokerAddr, "vehicles/#", func(o *paho.ClientOptions) {
		o.SetUsername("ops").SetPassword("ops-secret")
	})
	w.wait(t, 30*time.Second, "seat telemetry", hasAll(prefix+"telemetry/", []string{"seat_driver"}))
	if heaterOn(w, prefix) {
		t.Fatal("heater on before the test")
	}
	cmd := `{"id":"alice-1","value":true}`

	// The cloud, through [[uplink.receive]]: judged as $uplink.
	cw := watch(t, cloud.Addr, "fleet/#")
	for _, m := range [][2]string{{"fleet/broadcast/seat_driver/heater", `{"id":"alice-1","value":true}`}, {"fleet/notice/service", "due"}} {
		if tok := cw.c.Publish(m[0], 1, true, m[1]); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("cloud publish: %v", tok.Error())
		}
	}
	w.wait(t, 30*time.Second, "the cloud's notice", hasPayload(prefix+"notice/service", "due"))
	login := func(cp *packet.Connect) *packet.Connect {
		cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, "alice", true, []byte("alice-secret")
		return cp
	}

	// Row 1: a will on the command topic refuses the CONNECT.
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		nc, err := net.Dial("tcp", brokerAddr)
		if err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, nc, v)
		c.send(login(&packet.Connect{Version: v, ClientID: "alice-will-" + v.String(), CleanStart: true, KeepAlive: 60,
			Will: &packet.Will{Topic: heater, Payload: []byte(cmd), QoS: 1}}))
		if ack, ok := c.recv().(*packet.Connack); !ok || ack.Code != packet.NotAuthorized {
			t.Errorf("%v: CONNACK %+v, want not authorized", v, ack)
		}
		nc.Close() // would fire the will
	}
	// Row 1: PUBLISH and retained PUBLISH on the command topic.
	nc, err := net.Dial("tcp", brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, nc, packet.V5)
	c.send(login(&packet.Connect{Version: packet.V5, ClientID: "alice-pub", CleanStart: true, KeepAlive: 60}))
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.Code != packet.Success {
		t.Fatalf("alice: CONNACK %+v", ack)
	}
	for i, retain := range []bool{false, true} {
		c.send(&packet.Publish{Topic: heater, Payload: []byte(cmd), QoS: 1, PacketID: uint16(i + 1), Retain: retain})
		if a, ok := c.recv().(*packet.Puback); !ok || a.Code != packet.NotAuthorized {
			t.Errorf("alice's PUBLISH (retain %v): %+v, want PUBACK 0x87", retain, a)
		}
	}
	// Row 2: a web page's WebSocket (a foreign Origin) is refused before
	// MQTT; an anonymous one without Origin is refused at CONNECT.
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	if ws, resp, err := d.Dial("ws://"+wsAddr+"/mqtt", http.Header{"Origin": {"http://evil.example"}}); err == nil {
		ws.Close()
		t.Error("WebSocket from http://evil.example upgraded")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket from http://evil.example: %v %v, want 403", resp, err)
	}
	ws, _, err := d.Dial("ws://"+wsAddr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := packet.Append(nil, &packet.Connect{Version: packet.V311, ClientID: "page", CleanStart: true, KeepAlive: 60}, packet.V311)
	b, _ = packet.Append(b, &packet.Publish{Topic: heater, Payload: []byte(cmd)}, packet.V311)
	ws.WriteMessage(websocket.BinaryMessage, b)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || len(msg) != 4 || msg[3] != 5 {
		t.Errorf("anonymous WebSocket CONNECT: % x %v, want CONNACK return code 5", msg, err)
	}
	ws.Close()
	// Row 2 with a real browser: a page from another origin that knows
	// ops's password opens the WebSocket listener and sends a command.
	t.Run("browser", func(t *testing.T) { browserCommand(t, wsAddr, heater) })

	// The relay stays off: three more readings of the coil, no result
	// for alice's command.
	w.mu.Lock()
	n := len(w.msgs[prefix+"telemetry/seat_driver"])
	w.mu.Unlock()
	w.wait(t, 10*time.Second, "three more seat readings", func(m map[string][]string) bool {
		return len(m[prefix+"telemetry/seat_driver"]) >= n+3
	})
	if heaterOn(w, prefix) {
		t.Error("the heater went on")
	}
	w.mu.Lock()
	for _, p := range w.msgs[heater+"/result"] {
		if strings.Contains(p, "alice-1") || strings.Contains(p, "page-1") {
			t.Errorf("a result for a refused command: %s", p)
		}
	}
	w.mu.Unlock()

	// ops may: the heater goes on, and the telemetry shows it.
	w.publish(t, heater, `{"id":"ops-1","value":true}`)
	w.wait(t, 10*time.Second, "ops's command applied", hasPayload(heater+"/result", `"id":"ops-1","status":"done"`))
	w.wait(t, 10*time.Second, "heater on in telemetry", hasPayload(prefix+"telemetry/seat_driver", `"heater":{"v":true`))
}

// heaterOn reports whether any seat_driver reading so far had the heater
// on.
func heaterOn(w *watcher, prefix string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.msgs[prefix+"telemetry/seat_driver"] {
		if strings.Contains(p, `"heater":{"v":true`) {
			return true
		}
	}
	return false
}

// browserCommand loads, in Debian's chromium, a page from a test server
// (another origin) whose script opens ws://wsAddr, logs in as ops and
// publishes a command to topic; the page must be refused before MQTT.
func browserCommand(t *testing.T, wsAddr, topic string) {
	if mqtttest.LookPath(t, "chromium") == "" {
		return
	}
	var b []byte
	b, _ = packet.Append(b, &packet.Connect{Version: packet.V311, ClientID: "page", CleanStart: true, KeepAlive: 60,
		UsernameFlag: true, Username: "ops", PasswordFlag: true, Password: []byte("ops-secret")}, packet.V311)
	b, _ = packet.Append(b, &packet.Publish{Topic: topic, Payload: []byte(`{"id":"page-1","value":true}`)}, packet.V311)
	bytes := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(b)), ","), "[]")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><script>
const ws = new WebSocket("ws://%s/mqtt", "mqtt");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send(new Uint8Array([%s]));
ws.onmessage = (e) => { window.result = "answered"; };
ws.onerror = () => { window.result = window.result || "error"; };
ws.onclose = (e) => { window.result = window.result || ("close:" + e.code); };
</script>`, wsAddr, bytes)
	}))
	defer page.Close()
	bctx, cancel := context.WithTimeout(browser(t), 60*time.Second)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	result, err := chromedp.Run(bctx, chromedp.Poll[string](`window.result`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if result != "error" {
		t.Errorf("the page's WebSocket: %q, want refused (error)", result)
	}
}
