package broker

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mosqRun runs a mosquitto client to its end and returns its output and
// whether it exited with success.
func mosqRun(t *testing.T, prog, addr string, args ...string) (string, bool) {
	t.Helper()
	bin := needProgram(t, prog)
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// TestMosquittoClientsRefused (issue 13 rows 1 and 3) with Debian's
// mosquitto clients: a will on a command topic the user may not publish,
// and another user's client id, are refused at CONNECT, at 3.1.1 and 5.0.
func TestMosquittoClientsRefused(t *testing.T) {
	s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
	addr := serveTCP(t, s)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			out, ok := mosqRun(t, "mosquitto_sub", addr, "-V", v, "-u", "alice", "-i", "alice-"+v,
				"--will-topic", "vehicles/v1/cmd/seat_driver/heater", "--will-payload", `{"id":"w","value":true}`,
				"-t", "vehicles/v1/telemetry/#", "-C", "1", "-W", "5")
			if ok || !strings.Contains(strings.ToLower(out), "not authori") {
				t.Errorf("mosquitto_sub with a denied will: ok %v, output %q; want refused, not authorised", ok, out)
			}
			// ops holds a persistent session; alice may not take its id.
			opsOut, ok := mosqRun(t, "mosquitto_sub", addr, "-V", v, "-u", "ops", "-i", "ops-"+v, "-c",
				"-t", "vehicles/#", "-E")
			if !ok {
				t.Fatalf("ops: %s", opsOut)
			}
			out, ok = mosqRun(t, "mosquitto_sub", addr, "-V", v, "-u", "alice", "-i", "ops-"+v, "-c",
				"-t", "vehicles/#", "-E")
			if low := strings.ToLower(out); ok || !strings.Contains(low, "identifier") {
				t.Errorf("alice on ops's client id: ok %v, output %q; want refused, identifier rejected/not valid", ok, out)
			}
		})
	}
}
