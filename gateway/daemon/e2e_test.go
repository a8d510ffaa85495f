package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// buildGateway builds cmd/edgegw into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	bin := filepath.Join(t.TempDir(), "edgegw")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/edgegw").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// child is a gateway process.
type child struct {
	cmd  *exec.Cmd
	log  bytes.Buffer
	done chan struct{}
}

func startChild(t *testing.T, bin string, env []string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, "-config", "../../configs/demo.toml"), done: make(chan struct{})}
	// The demo's password file is relative to the repository root; a
	// test may give its own (the last value of a variable wins).
	c.cmd.Env = append(append(os.Environ(), "EDGEGW_PASSWD=../../configs/demo.passwd"), env...)
	c.cmd.Stdout, c.cmd.Stderr = &c.log, &c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("gateway did not exit on %v:\n%s", sig, c.log.String())
	}
}

// queued returns the number of telemetry records the gateway reports
// queued, or -1 when its health endpoint does not answer.
func queued(addr string) int {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var h struct{ Queue map[string]struct{ Len int } }
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return -1
	}
	return h.Queue["telemetry"].Len
}

// waitQueued waits until the telemetry class holds more than n records.
func waitQueued(t *testing.T, c *child, addr string, n int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if q := queued(addr); q > n {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue did not grow past %d:\n%s", n, c.log.String())
		}
		select {
		case <-c.done:
			t.Fatalf("gateway exited:\n%s", c.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// seqGaps reads every telemetry record of the queue in dir and reports
// devices whose seq does not go 1, 2, 3, … without gap or repeat.
func seqGaps(t *testing.T, dir string) (perDevice map[string]int, problems []string) {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Fsync: buffer.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	last := map[string]uint64{}
	for {
		rec, ok, err := q.TryNext()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if rec.Class != gateway.ClassTelemetry {
			continue
		}
		var r gateway.Record
		if err := r.UnmarshalBinary(rec.Data); err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		var v struct{ Seq uint64 }
		json.Unmarshal(r.Payload, &v)
		dev := r.Topic[strings.LastIndexByte(r.Topic, '/')+1:]
		if v.Seq != last[dev]+1 {
			problems = append(problems, fmt.Sprintf("%s: seq %d after %d", dev, v.Seq, last[dev]))
		}
		last[dev] = v.Seq
	}
	perDevice = map[string]int{}
	for d, n := range last {
		perDevice[d] = int(n)
	}
	return perDevice, problems
}

// TestKilledGatewayKeepsSeq kills the gateway with SIGKILL while it polls
// and spools, restarts it on the same state, and checks that every
// device's telemetry seq in the queue runs without a gap or a repeat.
func TestKilledGatewayKeepsSeq(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("EDGEGW_E2E_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	bin := buildGateway(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	health := freePort(t)
	env := []string{
		"VIN=KILLTEST", "EDGEGW_STATE=" + state, "EDGEGW_SIMDIR=" + filepath.Join(dir, "sim"),
		"EDGEGW_BROKER=" + freePort(t), "EDGEGW_HEALTH=" + health, "EDGEGW_SEAT=" + freePort(t),
		"EDGEGW_UPLINK=mqtt://127.0.0.1:1", // no cloud: everything stays queued
		"EDGEGW_INTERVAL=100ms", "EDGEGW_SEAT_INTERVAL=50ms", "EDGEGW_TPMS_PERIOD=200ms",
	}
	n := 0
	for round := 0; round < rounds; round++ {
		c := startChild(t, bin, env)
		n = waitQueued(t, c, health, n+20)
		c.signal(t, syscall.SIGKILL)
	}
	c := startChild(t, bin, env)
	waitQueued(t, c, health, n+20)
	c.signal(t, syscall.SIGTERM)
	perDevice, problems := seqGaps(t, filepath.Join(state, "queue"))
	for _, p := range problems {
		t.Error(p)
	}
	for _, d := range []string{"tpms", "cabin", "cabin_env", "seat_driver"} {
		if perDevice[d] < 2 {
			t.Errorf("device %s: %d messages queued", d, perDevice[d])
		}
	}
	t.Logf("%d kills; messages per device: %v", rounds, perDevice)
}

// TestEndToEnd runs the built gateway on the demo configuration with a real
// Mosquitto as the cloud: readings of every simulated device arrive in the
// cloud; a command from the cloud moves the simulated heater and its
// result comes back; an expired command and one that breaks an interlock
// are refused; then the cloud is stopped, the gateway is killed with
// SIGKILL and restarted while the cloud is away, the cloud comes back, and
// every device's seq arrives without a gap.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway with Mosquitto")
	}
	cloud := mqtttest.StartMosquitto(t)
	bin := buildGateway(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	health := freePort(t)
	env := []string{
		"VIN=E2E", "EDGEGW_STATE=" + state, "EDGEGW_SIMDIR=" + filepath.Join(dir, "sim"),
		"EDGEGW_BROKER=" + freePort(t), "EDGEGW_HEALTH=" + health, "EDGEGW_SEAT=" + freePort(t),
		"EDGEGW_UPLINK=mqtt://" + cloud.Addr,
		"EDGEGW_INTERVAL=200ms", "EDGEGW_SEAT_INTERVAL=200ms", "EDGEGW_TPMS_PERIOD=300ms",
	}
	const prefix = "vehicles/E2E/"
	gw := startChild(t, bin, env)
	w := watch(t, cloud.Addr, "vehicles/#")
	w.wait(t, 30*time.Second, "telemetry of every device in the cloud", hasAll(prefix+"telemetry/", demoDevices))

	// Commands from the cloud.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	w.publish(t, prefix+"cmd/seat_driver/heater", `{"id":"cloud-1","value":true,"expires_at":"`+future+`"}`)
	w.wait(t, 20*time.Second, "heater result in the cloud", hasPayload(prefix+"cmd/seat_driver/heater/result", `"id":"cloud-1","status":"done"`))
	w.wait(t, 20*time.Second, "heater on in the cloud's telemetry", hasPayload(prefix+"telemetry/seat_driver", `"heater":{"v":true`))
	w.publish(t, prefix+"cmd/seat_driver/heater", `{"id":"cloud-2","value":false,"expires_at":"`+past+`"}`)
	w.wait(t, 20*time.Second, "expired command refused", hasPayload(prefix+"cmd/seat_driver/heater/result", `"id":"cloud-2","status":"expired"`))
	w.publish(t, prefix+"cmd/seat_passenger/heater", `{"id":"cloud-3","value":true,"expires_at":"`+future+`"}`)
	w.wait(t, 20*time.Second, "interlock refusal", hasPayload(prefix+"cmd/seat_passenger/heater/result", `"id":"cloud-3","status":"rejected","error":"interlock`))
	w.publish(t, prefix+"cmd/seat_driver/heater", `{"id":"cloud-4","value":false}`)
	w.wait(t, 20*time.Second, "a cloud command without expires_at refused", hasPayload(prefix+"cmd/seat_driver/heater/result", `"id":"cloud-4","status":"rejected","error":"expires_at required`))

	// The cloud goes away; readings queue up; the gateway is killed and
	// restarted meanwhile.
	maxBefore := maxSeqs(t, w, prefix)
	cloud.Stop()
	n := waitQueued(t, gw, health, 30)
	gw.signal(t, syscall.SIGKILL)
	gw = startChild(t, bin, env)
	waitQueued(t, gw, health, n+20)
	cloud.Start()
	w.wait(t, 60*time.Second, "the backlog in the cloud", func(m map[string][]string) bool {
		for _, d := range demoDevices {
			seqs := seqsOf(m[prefix+"telemetry/"+d])
			if len(seqs) == 0 || seqs[len(seqs)-1] < maxBefore[d]+25 {
				return false
			}
		}
		return true
	})
	gw.signal(t, syscall.SIGTERM)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range demoDevices {
		seqs := seqsOf(w.msgs[prefix+"telemetry/"+d])
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Errorf("%s: seq %d after %d in the cloud", d, seqs[i], seqs[i-1])
			}
		}
		t.Logf("%s: seq %d..%d in the cloud (%d before the outage)", d, seqs[0], seqs[len(seqs)-1], maxBefore[d])
	}
}

// seqsOf returns the distinct seqs of telemetry payloads, sorted.
func seqsOf(payloads []string) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, p := range payloads {
		var v struct{ Seq uint64 }
		if json.Unmarshal([]byte(p), &v) == nil && !seen[v.Seq] {
			seen[v.Seq] = true
			out = append(out, v.Seq)
		}
	}
	slices.Sort(out)
	return out
}

func maxSeqs(t *testing.T, w *watcher, prefix string) map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]uint64{}
	for _, d := range demoDevices {
		if s := seqsOf(w.msgs[prefix+"telemetry/"+d]); len(s) > 0 {
			out[d] = s[len(s)-1]
		}
	}
	return out
}
