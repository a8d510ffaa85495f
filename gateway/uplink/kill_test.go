package uplink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// The kill test runs the uplink in a child process (this test binary,
// re-executed) that drains a queue to Mosquitto, kills it with SIGKILL at
// random points and starts it again, then lets a last child finish the
// drain. Nothing may be lost; at QoS 2 nothing may arrive twice, at QoS 1
// at most the in-flight window per kill.
//
// EDGEGW_UPLINK_KILL_ROUNDS sets the number of kills (default 4).

const (
	childQueueEnv = "EDGEGW_UPLINK_CHILD_QUEUE"
	childStateEnv = "EDGEGW_UPLINK_CHILD_STATE"
	childAddrEnv  = "EDGEGW_UPLINK_CHILD_ADDR"
	childBatchEnv = "EDGEGW_UPLINK_CHILD_BATCH" // "1": batches of childBatch records
	childBatch    = 50
)

// TestKillChild is the child process of TestKill; it does nothing in a
// normal run.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(childQueueEnv)
	if dir == "" {
		t.Skip("child process of TestKill only")
	}
	q := openQueue(t, dir)
	defer q.Close()
	o := Options{URL: "mqtt://" + os.Getenv(childAddrEnv), ClientID: "gw", LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: os.Getenv(childStateEnv),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	if os.Getenv(childBatchEnv) == "1" {
		o.Batch = &BatchOptions{MaxRecords: childBatch, MaxDelay: 50 * time.Millisecond}
	}
	drainChild(t, o, 5*time.Millisecond)
}

// drainChild runs an uplink with o in a child process until its queue is
// empty, looking every poll, then stops it.
func drainChild(t *testing.T, o Options, poll time.Duration) *Uplink {
	t.Helper()
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for o.Queue.Len() > 0 {
		<-tick.C
	}
	cancel()
	<-done
	return u
}

func TestKill(t *testing.T) {
	if os.Getenv(childQueueEnv) != "" {
		t.Skip("in the child")
	}
	rounds := 4
	if s := os.Getenv("EDGEGW_UPLINK_KILL_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	for _, tt := range []struct {
		qos     byte
		batched bool
	}{{1, false}, {2, false}, {1, true}, {2, true}} {
		qos := tt.qos
		t.Run(fmt.Sprintf("qos%d/batched=%v", qos, tt.batched), func(t *testing.T) {
			b := mqtttestStart(t)
			const n = 8000
			col := newCollector(t, b.Addr, "col")
			qdir, state := t.TempDir(), t.TempDir()
			q := openQueue(t, qdir)
			fill(t, q, 4, n, 200, qos)
			q.Close()
			child := func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
				cmd.Env = append(os.Environ(), childQueueEnv+"="+qdir, childStateEnv+"="+state, childAddrEnv+"="+b.Addr)
				if tt.batched {
					cmd.Env = append(cmd.Env, childBatchEnv+"=1")
				}
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd
			}
			kills := 0
			for range rounds {
				at := col.count() + 200 + rand.IntN(1500)
				if at >= n {
					break
				}
				cmd := child()
				col.waitFor(t, at, 60*time.Second)
				cmd.Process.Kill()
				cmd.Wait()
				kills++
			}
			cmd := child()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			col.waitFor(t, n, 120*time.Second)
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("last child: %v", err)
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatal("last child did not finish")
			}
			maxDups := 0
			if qos == 1 {
				maxDups = 20 * kills // Mosquitto's receive maximum per kill
				if tt.batched {
					maxDups *= childBatch
				}
			}
			col.check(t, n, maxDups)
			col.mu.Lock()
			t.Logf("qos %d: %d kills, %d duplicates, %d batches", qos, kills, col.dups, col.batches)
			col.mu.Unlock()
		})
	}
}
