// Package mqtttest provides test helpers for MQTT code: a real Mosquitto
// broker on a free loopback port, connection pairs, and a small packet-level
// client for scripting exchanges with a peer.
package mqtttest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for Mosquitto to accept
// connections.
const startTimeout = 10 * time.Second

// Broker is a Mosquitto process run by a test. It keeps its port, config
// and persistence directory across Stop/Kill and Start, so tests can
// restart it with its persisted state. Methods must be called from the
// test's goroutine.
type Broker struct {
	Addr string // host:port of the listener, fixed for the Broker's life
	Dir  string // persistence directory (and config, log)

	t    testing.TB
	conf string
	p    *proc
}

// MosquittoPath returns the mosquitto binary's path. When it is missing
// the test is skipped, or failed when CI=true.
func MosquittoPath(t testing.TB) string {
	return LookPath(t, "mosquitto")
}

// LookPath finds a program in PATH or /usr/sbin. When it is missing the
// test is skipped, or failed when the environment variable CI is "true".
func LookPath(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); isExec(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found in PATH or /usr/sbin (CI=true)", name)
		return ""
	}
	t.Skipf("%s not found in PATH or /usr/sbin", name)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Mosquitto starts Mosquitto on a free loopback port with anonymous
// access, persistence in a temporary directory and the extra config
// lines conf, waits until it accepts connections and returns its
// address. It is stopped when the test ends.
func Mosquitto(t testing.TB, conf ...string) (addr string) {
	t.Helper()
	return StartMosquitto(t, conf...).Addr
}

// StartMosquitto is Mosquitto returning the *Broker, to stop, kill and
// restart it.
func StartMosquitto(t testing.TB, conf ...string) *Broker {
	t.Helper()
	b := &Broker{t: t, Dir: t.TempDir()}
	b.conf = filepath.Join(b.Dir, "mosquitto.conf")
	b.p = &proc{name: "mosquitto", argv: []string{MosquittoPath(t), "-c", b.conf},
		log: filepath.Join(b.Dir, "mosquitto.out"), poll: 10 * time.Millisecond}
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(b.Dir, "mosquitto.log")); err == nil {
				t.Logf("mosquitto log:\n%s", log)
			}
			if out := b.p.logTail(); out != "" {
				t.Logf("mosquitto output:\n%s", out)
			}
		}
	})
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = b.configure(conf); err != nil {
			break
		}
		if err = b.start(); err == nil {
			return b
		}
		// Another process may have taken the port between our probe
		// and Mosquitto's bind: pick another one.
	}
	t.Fatalf("mqtttest: mosquitto: %v", err)
	return nil
}

func (b *Broker) configure(extra []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.Addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(b.Addr)
	lines := []string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + b.Dir + "/",
		"log_dest file " + filepath.Join(b.Dir, "mosquitto.log"),
		"log_type all",
	}
	if os.Geteuid() == 0 {
		// Stay root: the temporary directory is not writable by the
		// mosquitto user Mosquitto would otherwise switch to.
		lines = append(lines, "user root")
	}
	lines = append(lines, extra...)
	return os.WriteFile(b.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// Start starts Mosquitto again after Stop or Kill, on the same address
// with the same config and persistence directory, and waits until it
// accepts connections.
func (b *Broker) Start() {
	b.t.Helper()
	if err := b.start(); err != nil {
		b.t.Fatalf("mqtttest: mosquitto: %v", err)
	}
}

func (b *Broker) start() error {
	return b.p.start(startTimeout, func() error { return tcpReady(b.Addr) })
}

// Stop stops Mosquitto with SIGTERM, so that it writes its persistence
// file, and waits for it to exit. It does nothing when it is not running.
func (b *Broker) Stop() { b.p.signal(syscall.SIGTERM) }

// Kill kills Mosquitto with SIGKILL, losing what it had not yet written
// (see autosave_interval and autosave_on_changes), and waits for it to
// exit. It does nothing when it is not running.
func (b *Broker) Kill() { b.p.signal(syscall.SIGKILL) }

// Running reports whether the Mosquitto process is running.
func (b *Broker) Running() bool { return b.p.running() }
