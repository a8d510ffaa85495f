package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// TestRun runs a small fleet through the whole scenario against a real
// Mosquitto: every record must arrive, in order, across the restart.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Mosquitto and 20 uplinks")
	}
	bin := mqtttest.MosquittoPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Gateways: 20, Backlog: 30, Devices: 3, Mosquitto: bin, Dir: t.TempDir(),
		Down: 300 * time.Millisecond, StartRate: 1000, ReconnectMin: 200 * time.Millisecond,
		ReconnectMax: time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Line(), "connects", res.Connects)
	if !res.Drain || res.Gaps != 0 || res.Lost != 0 {
		t.Errorf("drained %v, gaps %d (gateways %v), lost %d (gateways %v); want every record, gap-free",
			res.Drain, res.Gaps, res.GapGateways, res.Lost, res.LostGateways)
	}
	if res.Records != 600 {
		t.Errorf("records %d, want 600", res.Records)
	}
	total, boot := 0, 0
	for _, c := range res.Connects {
		total += c
	}
	for _, c := range res.BootConnects {
		boot += c
	}
	if boot < 20 {
		t.Errorf("boot connects %v, want at least 20 in all", res.BootConnects)
	}
	// Every gateway reconnected; one whose attempt met the cloud still
	// starting may have needed a second CONNECT.
	if total < 20 || res.Peak < 1 || res.Peak > total {
		t.Errorf("connects %v (total %d, peak %d), want at least 20", res.Connects, total, res.Peak)
	}
	if res.HeapPerGateway <= 0 {
		t.Errorf("heap per gateway %v, want > 0", res.HeapPerGateway)
	}
	if !strings.HasPrefix(res.Line(), "fleet: 20 gateways, peak connects/s ") {
		t.Errorf("Line() = %q", res.Line())
	}
}

func TestCountConnects(t *testing.T) {
	log := `1700000000: mosquitto version 2.0.11 starting
1700000000: New client connected from 127.0.0.1:40000 as gw00001 (p5, c0, k30).
1700000009: New connection from 127.0.0.1:40001 on port 1883.
1700000010: New client connected from 127.0.0.1:40001 as gw00001 (p5, c0, k30).
1700000010: New client connected from 127.0.0.1:40002 as fleet-check (p5, c0, k30).
1700000012: New client connected from 127.0.0.1:40003 as gw00002 (p5, c0, k30).
1700000012: New client connected from 127.0.0.1:40004 as gw00003 (p2, c0, k30).
garbage line
x: New client connected from 127.0.0.1:40005 as gw00004 (p5, c0, k30).
`
	tests := []struct {
		name  string
		since int64
		until int64
		want  []int
	}{
		{"after restart", 1700000010, 1 << 62, []int{1, 0, 2}},
		{"all", 1700000000, 1 << 62, []int{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2}},
		{"boot", 1700000000, 1700000010, []int{1}},
		{"none", 1700000013, 1 << 62, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := countConnects(strings.NewReader(log), tt.since, tt.until, map[string]bool{checkerID: true})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("countConnects(since %d) (-want +got):\n%s", tt.since, diff)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"plain", "42 (mosquitto) S 1 42 42 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 1 0", 1750 * time.Millisecond, true},
		{"spaces in name", "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 1 0", 70 * time.Millisecond, true},
		{"short", "42 (x) S 1", 0, false},
		{"no name", "42 x S", 0, false},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: parseStat(%q) = %v, %v; want %v, ok %v", tt.name, tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestChecker(t *testing.T) {
	type msg struct {
		topic string
		seq   string
	}
	tests := []struct {
		name                  string
		msgs                  []msg
		sent                  map[string]uint64
		gaps, lost, dups, bad int
		unique                int
	}{
		{"in order", []msg{{"a", "1"}, {"a", "2"}, {"b", "1"}}, map[string]uint64{"a": 2, "b": 1}, 0, 0, 0, 0, 3},
		{"duplicate", []msg{{"a", "1"}, {"a", "1"}, {"a", "2"}}, map[string]uint64{"a": 2}, 0, 0, 1, 0, 2},
		{"hole filled late", []msg{{"a", "1"}, {"a", "3"}, {"a", "2"}}, map[string]uint64{"a": 3}, 1, 0, 0, 0, 3},
		{"lost tail", []msg{{"a", "1"}}, map[string]uint64{"a": 3, "b": 1}, 0, 3, 0, 0, 1},
		{"bad payload", []msg{{"a", "x"}}, map[string]uint64{}, 0, 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker()
			for _, m := range tt.msgs {
				c.receive(m.topic, []byte(`{"seq":`+m.seq+`,"ts":"2026-01-01T00:00:00Z"}`), time.Now())
			}
			if c.gaps != tt.gaps || c.dups != tt.dups || c.bad != tt.bad || c.unique != tt.unique {
				t.Errorf("gaps %d dups %d bad %d unique %d; want %d %d %d %d",
					c.gaps, c.dups, c.bad, c.unique, tt.gaps, tt.dups, tt.bad, tt.unique)
			}
			if got, by := c.lost(tt.sent); got != tt.lost || len(by) > len(tt.sent) {
				t.Errorf("lost(%v) = %d, %v; want %d", tt.sent, got, by, tt.lost)
			}
		})
	}
}

func TestGatewaysOf(t *testing.T) {
	got := gatewaysOf(map[string]int{"fleet/gw2/telemetry/d0": 1, "fleet/gw1/telemetry/d1": 2,
		"fleet/gw1/telemetry/d0": 1, "fleet/gw3/telemetry/d0": 0})
	if diff := cmp.Diff([]string{"gw1", "gw2"}, got); diff != "" {
		t.Errorf("gatewaysOf (-want +got):\n%s", diff)
	}
}

func TestCheckerDone(t *testing.T) {
	c := newChecker()
	c.expect(2)
	c.receive("a", []byte(`{"seq":1,}`), time.Now())
	select {
	case <-c.done:
		t.Fatal("done after 1 of 2")
	default:
	}
	c.receive("a", []byte(`{"seq":2,}`), time.Now())
	select {
	case <-c.done:
	default:
		t.Fatal("not done after 2 of 2")
	}
}
