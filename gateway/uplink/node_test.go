package uplink

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// nodeModules returns a node_modules directory holding the npm mqtt
// package, installing it with npm when absent into EDGEGW_NODE_MODULES or
// the user's cache directory. Without node, npm or the registry the test
// is skipped, or failed with CI=true.
func nodeModules(t *testing.T) (node, modules string) {
	t.Helper()
	node = mqtttest.LookPath(t, "node")
	dir := os.Getenv("EDGEGW_NODE_MODULES")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "edgegw-test", "npm")
	}
	modules = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "mqtt", "package.json")); err == nil {
		return node, modules
	}
	npm := mqtttest.LookPath(t, "npm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir, "mqtt@5").CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm install mqtt (CI=true): %v\n%s", err, out)
		}
		t.Skipf("npm install mqtt: %v\n%s", err, out)
	}
	return node, modules
}

// TestNodeConsumer: a consumer written as a cloud user would, in Node with
// the npm mqtt package and Node's zlib (testdata/consumer.js), decodes every
// batch the uplink sends to Mosquitto into exactly the readings the gateway
// queued, in order.
func TestNodeConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	node, modules := nodeModules(t)
	b := mqtttest.StartMosquitto(t, brokerConf...)
	for _, compression := range []string{CompressDeflate, CompressNone} {
		t.Run(compression, func(t *testing.T) {
			const n = 1200
			demo := loadDemo(t)
			cmd := exec.Command(node, "testdata/consumer.js", "mqtt://"+b.Addr, remotePrefix+"/"+BatchTopicSuffix, strconv.Itoa(n))
			cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
			defer timer.Stop()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatalf("consumer did not subscribe: %q %v", sc.Text(), sc.Err())
			}
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fillDemo(t, q, demo, 0, n, 1)
			_, stop := startUplink(t, Options{URL: "mqtt://" + b.Addr, ClientID: "gw-node-" + compression, LocalPrefix: localPrefix,
				TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(),
				Batch: &BatchOptions{MaxRecords: 100, MaxDelay: 100 * time.Millisecond, Compression: compression}})
			defer stop()
			type msg struct {
				Topic  string
				Retain bool
				P      any
				B      []byte
			}
			var got []msg
			for sc.Scan() {
				var m struct {
					Topic  string          `json:"topic"`
					Retain bool            `json:"retain"`
					P      json.RawMessage `json:"p"`
					B      *string         `json:"b"`
				}
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("consumer line %q: %v", sc.Text(), err)
				}
				g := msg{Topic: m.Topic, Retain: m.Retain}
				if m.B != nil {
					g.B, _ = base64.StdEncoding.DecodeString(*m.B)
				} else if err := json.Unmarshal(m.P, &g.P); err != nil {
					t.Fatal(err)
				}
				got = append(got, g)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("consumer: %v", err)
			}
			var want []msg
			for i := range n {
				dev, p := demo.reading(i)
				w := msg{Topic: remotePrefix + "/telemetry/" + dev, Retain: true}
				if err := json.Unmarshal(p, &w.P); err != nil {
					t.Fatal(err)
				}
				want = append(want, w)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the Node consumer decoded (-want +got):\n%s", diff)
			}
		})
	}
}
