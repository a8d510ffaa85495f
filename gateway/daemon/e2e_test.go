package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
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
	c.cmd.Env = append(os.Environ(), env...)
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
	health := freeAddr(t)
	env := []string{
		"VIN=KILLTEST", "EDGEGW_STATE=" + state, "EDGEGW_SIMDIR=" + filepath.Join(dir, "sim"),
		"EDGEGW_BROKER=" + freeAddr(t), "EDGEGW_HEALTH=" + health, "EDGEGW_SEAT=" + freeAddr(t),
		"EDGEGW_UPLINK=", // no cloud: everything stays queued
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
