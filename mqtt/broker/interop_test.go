package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// needProgram finds a program for an interop test: skipped when missing,
// except in CI where the test script installs it.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("interop test in -short mode")
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// serveTCP serves s on a loopback port and returns it.
func serveTCP(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	return l.Addr().String()
}

// mosqSub is a running mosquitto_sub printing "MSG topic payload rR qQ".
type mosqSub struct {
	cmd   *exec.Cmd
	lines chan string
}

func startSub(t *testing.T, addr string, args ...string) *mosqSub {
	t.Helper()
	bin := needProgram(t, "mosquitto_sub")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	all := append([]string{"-h", host, "-p", port, "-d", "-F", "MSG %t %p r%r q%q"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		// Line-buffered, so that debug lines (SUBACK) arrive at once.
		cmd = exec.CommandContext(ctx, sb, append([]string{"-oL", bin}, all...)...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &mosqSub{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
		close(m.lines)
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	return m
}

// expect waits for a line with prefix and returns it.
func (m *mosqSub) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				t.Fatalf("mosquitto_sub exited waiting for %q; output:\n%s", prefix, strings.Join(seen, "\n"))
			}
			if strings.HasPrefix(l, prefix) || strings.Contains(l, prefix) && !strings.HasPrefix(prefix, "MSG") {
				return l
			}
			seen = append(seen, l)
		case <-timeout:
			t.Fatalf("timeout waiting for %q; output:\n%s", prefix, strings.Join(seen, "\n"))
		}
	}
}

func mosqPub(t *testing.T, addr string, args ...string) {
	t.Helper()
	bin := needProgram(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

func TestMosquittoClients(t *testing.T) {
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			s := newServer(t, Options{})
			addr := serveTCP(t, s)
			mosqPub(t, addr, "-V", v, "-t", "ret/1", "-m", "kept", "-r", "-q", "1")
			sub := startSub(t, addr, "-V", v, "-t", "ret/#", "-t", "q/#", "-q", "2")
			// Retained message on subscribe, with the retain flag.
			sub.expect(t, "MSG ret/1 kept r1 q1")
			for q := 0; q <= 2; q++ {
				mosqPub(t, addr, "-V", v, "-q", fmt.Sprint(q), "-t", "q/x", "-m", fmt.Sprintf("m%d", q))
				sub.expect(t, fmt.Sprintf("MSG q/x m%d r0 q%d", q, q))
			}
			// Clearing the retained message.
			mosqPub(t, addr, "-V", v, "-t", "ret/1", "-r", "-n", "-q", "1") // PUBACK: processed
			if s.Stats().Retained != 0 {
				t.Errorf("retained message not cleared")
			}
		})
	}
}

func TestMosquittoWill(t *testing.T) {
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			s := newServer(t, Options{})
			addr := serveTCP(t, s)
			watch := startSub(t, addr, "-V", v, "-t", "will/#", "-q", "1")
			watch.expect(t, "received SUBACK")
			dying := startSub(t, addr, "-V", v, "-t", "x", "--will-topic", "will/a", "--will-payload", "bye", "--will-qos", "1")
			dying.expect(t, "received SUBACK")
			dying.cmd.Process.Signal(syscall.SIGKILL)
			watch.expect(t, "MSG will/a bye r0 q1")
		})
	}
}

func TestMosquittoPersistentSession(t *testing.T) {
	// Queued QoS 1 messages reach a persistent session after a client
	// reconnect and after a broker restart on the same state dir.
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			s1, err := New(Options{StateDir: dir, SysInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTCP(t, s1)
			extra := []string{"-c", "-i", "car-" + v, "-q", "1", "-t", "ps/#", "-V", v}
			if v == "mqttv5" {
				extra = append(extra, "-x", "3600")
			}
			sub := startSub(t, addr, append(extra, "-C", "1")...)
			sub.expect(t, "received SUBACK")
			mosqPub(t, addr, "-V", v, "-q", "1", "-t", "ps/a", "-m", "online")
			sub.expect(t, "MSG ps/a online")
			sub.cmd.Wait()
			mosqPub(t, addr, "-V", v, "-q", "1", "-t", "ps/a", "-m", "offline")
			sub = startSub(t, addr, append(extra, "-C", "1")...)
			sub.expect(t, "MSG ps/a offline") // across a client reconnect
			sub.cmd.Wait()
			mosqPub(t, addr, "-V", v, "-q", "1", "-t", "ps/a", "-m", "restart")
			if err := s1.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			s2 := newServer(t, Options{StateDir: dir})
			addr = serveTCP(t, s2)
			sub = startSub(t, addr, append(extra, "-C", "1")...)
			sub.expect(t, "MSG ps/a restart") // across a broker restart
		})
	}
}

func TestPaho(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("interop test in -short mode")
	}
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir})
	addr := serveTCP(t, s)
	opts := func(id string, clean bool) *paho.ClientOptions {
		return paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
			SetProtocolVersion(4)
	}
	wait := func(tok paho.Token) {
		t.Helper()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("paho: %v", tok.Error())
		}
	}
	got := make(chan paho.Message, 10)
	sub := paho.NewClient(opts("paho-sub", false))
	wait(sub.Connect())
	wait(sub.Subscribe("pa/#", 2, func(_ paho.Client, m paho.Message) { got <- m }))
	pub := paho.NewClient(opts("paho-pub", true))
	wait(pub.Connect())
	defer pub.Disconnect(100)
	for q := byte(0); q <= 2; q++ {
		wait(pub.Publish("pa/x", q, false, fmt.Sprintf("q%d", q)))
		select {
		case m := <-got:
			if m.Qos() != q || string(m.Payload()) != fmt.Sprintf("q%d", q) {
				t.Errorf("got QoS %d %q, want QoS %d", m.Qos(), m.Payload(), q)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("QoS %d message not received", q)
		}
	}
	// Retained.
	wait(pub.Publish("pa/ret", 1, true, "kept"))
	<-got
	// Persistent session across a reconnect.
	sub.Disconnect(100)
	wait(pub.Publish("pa/off", 1, false, "while offline"))
	sub = paho.NewClient(opts("paho-sub", false).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m }))
	wait(sub.Connect())
	defer sub.Disconnect(100)
	// paho acknowledges after the handler returns, so the PUBACK of
	// pa/ret may not have left before the DISCONNECT: then the broker
	// resends it first, with DUP [MQTT-4.4.0-1].
	for offline := false; !offline; {
		select {
		case m := <-got:
			switch {
			case m.Topic() == "pa/off":
				offline = true
			case m.Topic() == "pa/ret" && m.Duplicate():
			default:
				t.Fatalf("got %q (dup %v), want pa/off", m.Topic(), m.Duplicate())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("queued message not received after reconnect")
		}
	}
	r := paho.NewClient(opts("paho-ret", true))
	wait(r.Connect())
	defer r.Disconnect(100)
	retained := make(chan paho.Message, 1)
	wait(r.Subscribe("pa/ret", 1, func(_ paho.Client, m paho.Message) { retained <- m }))
	select {
	case m := <-retained:
		if !m.Retained() || string(m.Payload()) != "kept" {
			t.Errorf("retained %v %q", m.Retained(), m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retained message not received")
	}
}
