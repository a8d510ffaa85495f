package modbustest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mbpollPath finds Debian's mbpoll (libmodbus), an independent Modbus
// master. Outside CI a missing binary skips the test.
func mbpollPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"mbpoll", "/usr/bin/mbpoll"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mbpoll not installed (apt-get install mbpoll)")
	}
	t.Skip("mbpoll not installed")
	return ""
}

var mbpollValue = regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(-?\d+)`)

// mbpoll runs mbpoll once with args and returns the values it printed by
// reference.
func mbpoll(t *testing.T, args ...string) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mbpollPath(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
	}
	got := make(map[int]int)
	for _, m := range mbpollValue.FindAllStringSubmatch(string(out), -1) {
		ref, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		got[ref] = v
	}
	return got
}

func TestMbpoll(t *testing.T) {
	mbpollPath(t)
	bank := NewBank()
	if err := bank.AddModel(1, XYMD02); err != nil {
		t.Fatal(err)
	}
	if err := bank.AddModel(2, SeatModule); err != nil {
		t.Fatal(err)
	}
	bank.SetBit(2, DiscreteInput, 0, true)
	link := t.TempDir() + "/ttyRS485" // like a /dev/serial/by-id/ name
	rtu, err := Start(t.Context(), Opts{Kind: KindRTU, Bank: bank, Static: true, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer rtu.Close()
	tcp, err := Start(t.Context(), Opts{Kind: KindTCP, Bank: bank, Static: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	host, port, _ := net.SplitHostPort(tcp.Addr())
	rtuArgs := []string{"-m", "rtu", "-b", "9600", "-P", "none", "-1", "-o", "2"}
	tcpArgs := []string{"-m", "tcp", "-p", port, "-1", "-o", "2"}

	tests := []struct {
		name string
		args []string
		want map[int]int
	}{
		// XY-MD02: FC04, input registers 1 and 2 (references 2 and 3).
		{"rtu input registers", append(rtuArgs, "-a", "1", "-t", "3", "-r", "2", "-c", "2", link), map[int]int{2: 215, 3: 450}},
		{"tcp input registers", append(tcpArgs, "-a", "1", "-t", "3", "-r", "2", "-c", "2", host), map[int]int{2: 215, 3: 450}},
		{"tcp discrete input", append(tcpArgs, "-a", "2", "-t", "1", "-r", "1", "-c", "1", host), map[int]int{1: 1}},
		{"rtu holding registers", append(rtuArgs, "-a", "1", "-t", "4", "-0", "-r", "257", "-c", "2", rtu.Path()), map[int]int{257: 1, 258: 0}},
	}
	for _, tt := range tests {
		if tt.want == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mbpoll(t, tt.args...)); diff != "" {
				t.Errorf("mbpoll %v (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	// Writes: mbpoll sets the heater level over TCP and a coil over RTU.
	mbpoll(t, append(tcpArgs, "-a", "2", "-t", "4", "-r", "1", host, "2")...)
	if v, _ := bank.Register(2, HoldingRegister, 0); v != 2 {
		t.Errorf("heater level after mbpoll write = %d, want 2", v)
	}
	if on, _ := bank.Bit(2, Coil, 0); !on {
		t.Error("heater coil off after level 2")
	}
	mbpoll(t, append(rtuArgs, "-a", "2", "-t", "0", "-r", "1", rtu.Path(), "0")...)
	if v, _ := bank.Register(2, HoldingRegister, 0); v != 0 {
		t.Errorf("heater level after coil off = %d, want 0", v)
	}
}
