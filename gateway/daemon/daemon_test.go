package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/kinds"
	"github.com/edgegw/edgegw/gateway/config"
)

// testRegistry has the kinds cmd/edgegw runs with.
func testRegistry() *drivers.Registry { return kinds.Registry() }

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// demoEnv points the demo configuration at temporary directories and free
// ports, with short intervals, and returns the broker and health addresses.
func demoEnv(t *testing.T, uplink string) (brokerAddr, healthAddr string) {
	dir := t.TempDir()
	brokerAddr, healthAddr = freePort(t), freePort(t)
	for k, v := range map[string]string{
		"VIN": "TESTVIN", "EDGEGW_STATE": filepath.Join(dir, "state"), "EDGEGW_SIMDIR": filepath.Join(dir, "sim"),
		"EDGEGW_BROKER": brokerAddr, "EDGEGW_HEALTH": healthAddr, "EDGEGW_SEAT": freePort(t),
		"EDGEGW_UPLINK": uplink, "EDGEGW_INTERVAL": "500ms", "EDGEGW_SEAT_INTERVAL": "300ms", "EDGEGW_TPMS_PERIOD": "500ms",
		"EDGEGW_PASSWD": cheapPasswords(t, "ops"),
	} {
		t.Setenv(k, v)
	}
	return brokerAddr, healthAddr
}

// watcher collects messages from a broker.
type watcher struct {
	mu   sync.Mutex
	msgs map[string][]string // topic → payloads
	cond chan struct{}
	c    paho.Client
}

func watch(t *testing.T, addr, filter string) *watcher {
	t.Helper()
	return watchWith(t, addr, filter, nil)
}

// watchAs is watch logged in as user ("" anonymous).
func watchAs(t *testing.T, addr, filter, user, password string) *watcher {
	t.Helper()
	return watchWith(t, addr, filter, func(o *paho.ClientOptions) { o.SetUsername(user).SetPassword(password) })
}

// watchWith is watch with client options set by set (credentials).
func watchWith(t *testing.T, addr, filter string, set func(*paho.ClientOptions)) *watcher {
	t.Helper()
	w := &watcher{msgs: map[string][]string{}, cond: make(chan struct{}, 1)}
	handler := func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		w.msgs[m.Topic()] = append(w.msgs[m.Topic()], string(m.Payload()))
		w.mu.Unlock()
		select {
		case w.cond <- struct{}{}:
		default:
		}
	}
	subscribed := make(chan error, 1)
	// A persistent session, subscribed again at every connect: a broker
	// restarted with its persistence keeps what arrived meanwhile.
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("watch-%d", time.Now().UnixNano())).
		SetCleanSession(false).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(filter, 1, handler)
			tok.WaitTimeout(10 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	if set != nil {
		set(o)
	}
	w.c = paho.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(100) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("subscribe timed out")
	}
	return w
}

// wait waits until ok holds for the messages seen, at most d.
func (w *watcher) wait(t *testing.T, d time.Duration, what string, ok func(map[string][]string) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		done := ok(w.msgs)
		w.mu.Unlock()
		if done {
			return
		}
		select {
		case <-w.cond:
		case <-deadline.C:
			w.mu.Lock()
			defer w.mu.Unlock()
			var topics []string
			for k, v := range w.msgs {
				topics = append(topics, fmt.Sprintf("%s (%d)", k, len(v)))
			}
			t.Fatalf("timed out waiting for %s; seen: %s", what, strings.Join(topics, ", "))
		}
	}
}

func (w *watcher) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := w.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

var demoDevices = []string{"tpms", "cabin", "cabin_env", "seat_driver", "seat_passenger"}

func hasAll(prefix string, names []string) func(map[string][]string) bool {
	return func(m map[string][]string) bool {
		for _, n := range names {
			if len(m[prefix+n]) == 0 {
				return false
			}
		}
		return true
	}
}

func hasPayload(topic, sub string) func(map[string][]string) bool {
	return func(m map[string][]string) bool {
		for _, p := range m[topic] {
			if strings.Contains(p, sub) {
				return true
			}
		}
		return false
	}
}

func TestRunDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for several seconds")
	}
	brokerAddr, healthAddr := demoEnv(t, "mqtt://127.0.0.1:1")
	// A copy of the demo config, so that the test can break it for SIGHUP.
	src, err := os.ReadFile("../../configs/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.toml")
	os.WriteFile(path, src, 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// systemd's notify socket and watchdog.
	sock := filepath.Join(t.TempDir(), "notify")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	notes := make(chan string, 100)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := nconn.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			select {
			case notes <- string(buf[:n]):
			default:
			}
		}
	}()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	go func() { done <- Run(ctx, cfg, testRegistry(), log) }()

	const prefix = "vehicles/TESTVIN/"
	w := watch(t, brokerAddr, "vehicles/#")
	w.wait(t, 30*time.Second, "telemetry from every device", hasAll(prefix+"telemetry/", demoDevices))
	w.wait(t, 10*time.Second, "device status", hasAll(prefix+"devices/", []string{"tpms/status", "cabin/status", "cabin_env/status", "seat_driver/status"}))

	// Health and metrics.
	resp, err := http.Get("http://" + healthAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Devices map[string]string
		Queue   map[string]struct{ Len int }
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Devices["seat_driver"] != "online" || h.Queue["telemetry"].Len == 0 {
		t.Errorf("healthz = %+v", h)
	}
	resp, err = http.Get("http://" + healthAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "edgegw_readings_total ") || !strings.Contains(string(body), `edgegw_device_up{device="cabin"} 1`) || !strings.Contains(string(body), `edgegw_polls_total{device="cabin"} `) {
		t.Errorf("metrics:\n%s", body)
	}

	// A local command (the demo ACL lets the ops account send them).
	res := prefix + "cmd/seat_driver/heater/result"
	ops := watchAs(t, brokerAddr, prefix+"cmd/+/+/result", "ops", "pw")
	ops.publish(t, prefix+"cmd/seat_driver/heater", `{"id":"local-1","value":true}`)
	w.wait(t, 10*time.Second, "heater result", hasPayload(res, `"id":"local-1","status":"done"`))
	w.wait(t, 10*time.Second, "heater on in telemetry", hasPayload(prefix+"telemetry/seat_driver", `"heater":{"v":true`))
	ops.publish(t, prefix+"cmd/seat_driver/heater_level", `{"id":"local-2","value":7}`)
	w.wait(t, 10*time.Second, "range rejection", hasPayload(prefix+"cmd/seat_driver/heater_level/result", `"id":"local-2","status":"rejected"`))

	ops.publish(t, prefix+"cmd/seat_passenger/heater", `{"id":"local-3","value":true}`)
	w.wait(t, 10*time.Second, "interlock rejection", hasPayload(prefix+"cmd/seat_passenger/heater/result", `"id":"local-3","status":"rejected","error":"interlock: seat_passenger.occupied is false"`))

	// SIGHUP with a broken file: logged, old configuration kept.
	os.WriteFile(path, []byte("[gateway\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	w.mu.Lock()
	n := len(w.msgs[prefix+"telemetry/seat_driver"])
	w.mu.Unlock()
	w.wait(t, 10*time.Second, "readings after a refused reload", func(m map[string][]string) bool {
		return len(m[prefix+"telemetry/seat_driver"]) > n+2
	})
	// SIGHUP with a good file: devices restart, seq goes on.
	os.WriteFile(path, src, 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	w.mu.Lock()
	n = len(w.msgs[prefix+"telemetry/cabin"])
	w.mu.Unlock()
	w.wait(t, 15*time.Second, "readings after a reload", func(m map[string][]string) bool {
		return len(m[prefix+"telemetry/cabin"]) > n+2
	})
	w.mu.Lock()
	checkSeq(t, w.msgs[prefix+"telemetry/cabin"])
	w.mu.Unlock()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
	nconn.Close()
	seen := map[string]int{}
	for n := range notes {
		seen[n]++
	}
	for _, want := range []string{"READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"} {
		if seen[want] == 0 {
			t.Errorf("sd_notify %s not sent; got %v", want, seen)
		}
	}
}

// checkSeq checks that seq goes up by one from message to message.
func checkSeq(t *testing.T, payloads []string) {
	t.Helper()
	var last uint64
	for i, p := range payloads {
		var v struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		if i > 0 && v.Seq != last+1 {
			t.Errorf("seq %d after %d", v.Seq, last)
		}
		last = v.Seq
	}
}

func TestRunInvalidConfigNeverStarts(t *testing.T) {
	demoEnv(t, "mqtt://127.0.0.1:1")
	cfg, err := config.Load("../../configs/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices[0].Kind = "nope"
	err = Run(context.Background(), cfg, testRegistry(), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown driver kind "nope"`) {
		t.Errorf("Run = %v", err)
	}
}
