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

// natsStartTimeout bounds how long a NATS node (a cluster: its JetStream
// meta leader elected) takes to take an MQTT CONNECT.
const natsStartTimeout = 60 * time.Second

// NATS is a nats-server (Debian's, 2.9) run by a test with its MQTT
// listener on, which needs JetStream and a server_name. It keeps its
// ports and store directory across Kill and Start. Methods must be called
// from the test's goroutine.
type NATS struct {
	Addr string // host:port of the MQTT listener
	Name string // server_name
	Dir  string // config, JetStream store, log

	t testing.TB
	p *proc
}

// NATSPath returns the nats-server binary's path; see LookPath.
func NATSPath(t testing.TB) string { return LookPath(t, "nats-server") }

// StartNATS starts one NATS node with MQTT on a free loopback port and
// waits until it takes MQTT connections. It is killed when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSCluster(t, 1)[0]
}

// StartNATSCluster starts n NATS nodes routed into one cluster with
// JetStream (its MQTT streams replicated on min(n, 3) nodes), each with
// its own ports and store, and waits until every node takes MQTT
// connections. They are killed when the test ends.
func StartNATSCluster(t testing.TB, n int) []*NATS {
	t.Helper()
	bin := NATSPath(t)
	if testing.Short() {
		t.Skip("nats-server: skipped in -short")
	}
	ports := freePorts(t, 3*n) // client, cluster route, MQTT per node
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1]))
	}
	nodes := make([]*NATS, n)
	for i := range n {
		dir := t.TempDir()
		nd := &NATS{Addr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]), Name: fmt.Sprintf("edgegw-test-%d", i+1), Dir: dir, t: t}
		conf := []string{
			fmt.Sprintf("server_name: %q", nd.Name),
			fmt.Sprintf("listen: \"127.0.0.1:%d\"", ports[3*i]),
			fmt.Sprintf("jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }", filepath.Join(dir, "js")),
			fmt.Sprintf("mqtt { listen: %q }", nd.Addr),
		}
		if n > 1 {
			conf = append(conf, fmt.Sprintf("cluster { name: edgegw-test, listen: \"127.0.0.1:%d\", routes: [%s] }",
				ports[3*i+1], strings.Join(routes, ", ")))
		}
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
		nd.p = &proc{name: "nats-server " + nd.Name, argv: []string{bin, "-c", path}, log: filepath.Join(dir, "nats.log")}
		nodes[i] = nd
		t.Cleanup(func() {
			nd.p.signal(syscall.SIGKILL)
			if t.Failed() {
				t.Logf("%s log (end):\n%s", nd.Name, nd.p.logTail())
			}
		})
	}
	// A node of a cluster takes MQTT only once the cluster has elected
	// its JetStream meta leader: start them all, then wait.
	errs := make(chan error, n)
	for _, nd := range nodes {
		go func() { errs <- nd.p.start(natsStartTimeout, func() error { return mqttReady(nd.Addr) }) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
	}
	return nodes
}

// Kill kills the node with SIGKILL and waits for it to exit.
func (n *NATS) Kill() { n.p.signal(syscall.SIGKILL) }

// Start starts the node again after Kill, with the same ports and store.
func (n *NATS) Start() {
	n.t.Helper()
	if err := n.p.start(natsStartTimeout, func() error { return mqttReady(n.Addr) }); err != nil {
		n.t.Fatalf("mqtttest: %v", err)
	}
}

// Running reports whether the node's process is running.
func (n *NATS) Running() bool { return n.p.running() }
