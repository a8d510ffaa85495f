package mqtttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rabbitStartTimeout bounds RabbitMQ's start (about 10 s on two busy
// cores).
const rabbitStartTimeout = 90 * time.Second

// RabbitMQ is a rabbitmq-server (Debian's, 3.10) with its MQTT plugin,
// run by a test under a private node name, ports, directories, Erlang
// cookie and epmd: nothing under /etc or /var is read or written.
type RabbitMQ struct {
	Addr string // host:port of the MQTT listener
	Dir  string

	t    testing.TB
	p    *proc
	epmd *proc
}

// CloudsEnv gates the tests against peers too slow to start for every
// run (RabbitMQ: 10-30 s): set to 1 by scripts/test-clouds.sh.
const CloudsEnv = "EDGEGW_TEST_CLOUDS"

// StartRabbitMQ starts RabbitMQ with anonymous MQTT on a free loopback
// port and waits until it takes MQTT connections. It is killed, with its
// epmd, when the test ends. The test is skipped unless CloudsEnv is 1.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	if os.Getenv(CloudsEnv) != "1" {
		t.Skipf("rabbitmq-server takes 10-30 s to start: set %s=1 (scripts/test-clouds.sh)", CloudsEnv)
	}
	LookPath(t, "rabbitmq-server")
	epmdBin := LookPath(t, "epmd")
	const server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if !isExec(server) {
		// The /usr/sbin wrapper switches to the rabbitmq user and its
		// /var directories: the test runs the real script.
		if os.Getenv("CI") == "true" {
			t.Fatalf("mqtttest: %s missing (CI=true)", server)
		}
		t.Skipf("mqtttest: %s missing", server)
	}
	if testing.Short() {
		t.Skip("rabbitmq-server: skipped in -short")
	}
	dir := t.TempDir()
	ports := freePorts(t, 4) // MQTT, AMQP (closed), distribution, epmd
	r := &RabbitMQ{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Dir: dir, t: t}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "mnesia"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
	}
	files := map[string]string{
		"rabbitmq.conf": strings.Join([]string{
			"listeners.tcp = none",
			"mqtt.listeners.tcp.default = " + r.Addr,
			"mqtt.allow_anonymous = true",
			"loopback_users = none",
		}, "\n") + "\n",
		"enabled_plugins":     "[rabbitmq_mqtt].\n",
		"rabbitmq-env.conf":   "",
		"advanced.config":     "[].\n",
		"home/.erlang.cookie": fmt.Sprintf("EDGEGWTEST%d\n", time.Now().UnixNano()),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o400); err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
	}
	epmdPort := fmt.Sprint(ports[3])
	r.epmd = &proc{name: "epmd", argv: []string{epmdBin, "-address", "127.0.0.1", "-port", epmdPort}, log: filepath.Join(dir, "epmd.log")}
	r.p = &proc{name: "rabbitmq-server", argv: []string{server}, log: filepath.Join(dir, "rabbitmq.log"), env: []string{
		"HOME=" + home,
		"ERL_EPMD_PORT=" + epmdPort,
		fmt.Sprintf("RABBITMQ_NODENAME=edgegw%d@localhost", ports[0]),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", ports[1]),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", ports[2]),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_LOGS=-",
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbitmq.pid"),
		// Distribution on loopback only.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}}
	t.Cleanup(func() {
		r.p.signal(syscall.SIGKILL)
		r.epmd.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("rabbitmq log (end):\n%s", r.p.logTail())
		}
	})
	// Our own epmd on a private port, so that the VM neither uses nor
	// starts (and leaves behind) the system's.
	if err := r.epmd.start(10*time.Second, func() error { return tcpReady("127.0.0.1:" + epmdPort) }); err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	if err := r.p.start(rabbitStartTimeout, func() error { return mqttReady(r.Addr) }); err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	return r
}
