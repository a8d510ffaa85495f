package daemon

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// TestCommandAbuseEndToEnd runs the built gateway on the demo
// configuration and attacks its command path the way row 9 of issue 13
// did, through the local broker (as ops, the role the demo's ACL lets send
// commands) and the cloud, watching the simulated seat heater relay in the
// seat's telemetry:
//   - a retained command in the cloud before the gateway starts is not
//     applied;
//   - a command captured and replayed after 1,100 commands with fresh ids
//     (refused ones: an empty seat, an unknown device) is answered with its
//     first result and not applied again;
//   - the same id to another device runs there or is refused, never
//     answered "done" without running;
//   - a retained local command is refused when it arrives live and cleared
//     from the broker, so that neither a SIGHUP nor a restart delivers it
//     again.
//
// Once the heater is switched off, the relay must stay off to the end.
func TestCommandAbuseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway with Mosquitto")
	}
	cloud := mqtttest.StartMosquitto(t)
	bin := buildGateway(t)
	dir := t.TempDir()
	brokerAddr, health := freePort(t), freePort(t)
	env := []string{
		"VIN=ABUSE", "EDGEGW_STATE=" + filepath.Join(dir, "state"), "EDGEGW_SIMDIR=" + filepath.Join(dir, "sim"),
		"EDGEGW_BROKER=" + brokerAddr, "EDGEGW_HEALTH=" + health, "EDGEGW_SEAT=" + freePort(t),
		"EDGEGW_UPLINK=mqtt://" + cloud.Addr, "EDGEGW_PASSWD=" + cheapPasswords(t, "ops"),
		"EDGEGW_INTERVAL=500ms", "EDGEGW_SEAT_INTERVAL=100ms", "EDGEGW_TPMS_PERIOD=1s",
	}
	const p = "vehicles/ABUSE/"
	const heater, heaterRes = p + "cmd/seat_driver/heater", p + "cmd/seat_driver/heater/result"
	seat := p + "telemetry/seat_driver"
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	cmd := func(id string, v any) string {
		return fmt.Sprintf(`{"id":%q,"value":%v,"expires_at":%q}`, id, v, in(time.Hour))
	}

	// A retained command waits in the cloud.
	cw := watch(t, cloud.Addr, "vehicles/#")
	if tok := cw.c.Publish(heater, 1, true, cmd("cloud-retained", true)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	gw := startChild(t, bin, env)
	// ops sends commands and reads their results; obs, anonymous, reads
	// the seat's telemetry.
	ops := watchAs(t, brokerAddr, p+"cmd/+/+/result", "ops", "pw")
	obs := watch(t, brokerAddr, p+"telemetry/#")
	obs.wait(t, 30*time.Second, "seat telemetry", hasPayload(seat, `"heater":{"v":false`))
	cw.wait(t, 30*time.Second, "the cloud's retained command refused", hasPayload(heaterRes, `"id":"cloud-retained","status":"rejected","error":"retained command not applied"`))

	// heaterSince returns whether the seat's telemetry from message n on
	// shows the heater on, and how many messages there are.
	heaterSince := func(n int) (on bool, total int) {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		msgs := obs.msgs[seat]
		for _, m := range msgs[min(n, len(msgs)):] {
			if strings.Contains(m, `"heater":{"v":true`) {
				on = true
			}
		}
		return on, len(msgs)
	}
	if on, _ := heaterSince(0); on {
		t.Fatal("the heater went on before any local command")
	}
	step := func(id, payload string, retain bool, want string) {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // the heater's rate limit
		if tok := ops.c.Publish(heater, 1, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", id, tok.Error())
		}
		ops.wait(t, 10*time.Second, id+" "+want, hasPayload(heaterRes, `"id":"`+id+`","status":"`+want+`"`))
	}
	waitHeater := func(v bool) {
		t.Helper()
		obs.wait(t, 10*time.Second, fmt.Sprintf("heater %v in telemetry", v), func(m map[string][]string) bool {
			msgs := m[seat]
			return len(msgs) > 0 && strings.Contains(msgs[len(msgs)-1], fmt.Sprintf(`"heater":{"v":%v`, v))
		})
	}
	step("ret-1", cmd("ret-1", true), true, "rejected") // retained: refused even live
	ops.wait(t, 10*time.Second, "ret-1 refused and cleared", hasPayload(heaterRes, `"id":"ret-1","status":"rejected","error":"retained command not applied; cleared"`))
	if on, _ := heaterSince(0); on {
		t.Fatal("the heater went on for a retained command")
	}
	step("off-1", cmd("off-1", false), false, "done")
	waitHeater(false)
	captured := cmd("cap-1", true)
	step("cap-1", captured, false, "done")
	waitHeater(true)
	step("off-2", cmd("off-2", false), false, "done")
	waitHeater(false)
	_, mark := heaterSince(0) // from here on the relay must stay off

	// The flood: commands with fresh ids that every check refuses.
	const flood = 1100
	refused := commandsRefused(t, health)
	for i := range flood {
		topic := p + "cmd/seat_passenger/heater" // an empty seat
		if i%2 == 1 {
			topic = p + "cmd/no_such_device/heater"
		}
		if tok := ops.c.Publish(topic, 1, false, cmd(fmt.Sprintf("junk-%04d", i), true)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("junk %d: %v", i, tok.Error())
		}
	}
	for deadline := time.Now().Add(60 * time.Second); commandsRefused(t, health) < refused+flood; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d junk commands refused", commandsRefused(t, health)-refused, flood)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The captured command replayed: its first result, not applied.
	step("cap-1", captured, false, "done")
	// The same id elsewhere: refused on the empty seat, run on another
	// command of the same device.
	time.Sleep(200 * time.Millisecond)
	ops.c.Publish(p+"cmd/seat_passenger/heater", 1, false, captured)
	ops.wait(t, 10*time.Second, "cap-1 on the empty seat refused", hasPayload(p+"cmd/seat_passenger/heater/result", `"id":"cap-1","status":"rejected","error":"interlock`))
	if on, total := heaterSince(mark); on {
		t.Errorf("the heater went on during the flood or the replay (seat telemetry %d..%d)", mark, total)
	}
	// The seat module's heater follows its level: the same id on
	// heater_level really runs, and the relay goes on, then off again.
	ops.c.Publish(p+"cmd/seat_driver/heater_level", 1, false, cmd("cap-1", 2))
	ops.wait(t, 10*time.Second, "cap-1 on heater_level run", hasPayload(p+"cmd/seat_driver/heater_level/result", `"id":"cap-1","status":"done"`))
	obs.wait(t, 10*time.Second, "heater level 2 in telemetry", hasPayload(seat, `"heater_level":{"v":2`))
	time.Sleep(1100 * time.Millisecond) // heater_level's rate limit
	ops.c.Publish(p+"cmd/seat_driver/heater_level", 1, false, cmd("level-0", 0))
	ops.wait(t, 10*time.Second, "level-0 run", hasPayload(p+"cmd/seat_driver/heater_level/result", `"id":"level-0","status":"done"`))
	waitHeater(false)
	_, mark = heaterSince(0)

	// SIGHUP: the new subscription gets no retained command (it was
	// cleared when it arrived).
	gw.cmd.Process.Signal(syscall.SIGHUP)
	_, n := heaterSince(0)
	obs.wait(t, 10*time.Second, "telemetry after the reload", func(m map[string][]string) bool { return len(m[seat]) > n+3 })

	// A restart: the retained command was cleared, nothing comes again.
	gw.signal(t, syscall.SIGTERM)
	first := gw.log.String()
	gw = startChild(t, bin, env)
	_, n = heaterSince(0)
	obs.wait(t, 30*time.Second, "telemetry after the restart", func(m map[string][]string) bool { return len(m[seat]) > n+5 })
	gw.signal(t, syscall.SIGTERM)
	second := gw.log.String()

	if on, total := heaterSince(mark); on {
		obs.mu.Lock()
		t.Errorf("the heater went on again after it was switched off (seat telemetry %d..%d):\n%s", mark, total, strings.Join(obs.msgs[seat][mark:], "\n"))
		obs.mu.Unlock()
	}
	applied := regexp.MustCompile(`msg="command applied" device=seat_driver command=heater id=(\S+)`)
	var ids []string
	for _, m := range applied.FindAllStringSubmatch(first+second, -1) {
		ids = append(ids, m[1])
	}
	if got, want := strings.Join(ids, " "), "off-1 cap-1 off-2"; got != want {
		t.Errorf("heater commands applied: %s, want %s", got, want)
	}
	if n := len(regexp.MustCompile(`msg="retained command not applied".* id=ret-1 `).FindAllString(first, -1)); n != 1 {
		t.Errorf("the retained command ret-1 was logged %d times before the restart, want once (live):\n%s", n, first)
	}
	if strings.Count(second, "retained command not applied") != 0 {
		t.Errorf("the retained command came back after the restart:\n%s", second)
	}
	ops.mu.Lock()
	defer ops.mu.Unlock()
	for _, r := range ops.msgs[p+"cmd/seat_passenger/heater/result"] {
		if strings.Contains(r, `"status":"done"`) {
			t.Errorf("the empty seat reported done: %s", r)
		}
	}
}

// commandsRefused reads the gateway's count of refused commands from its
// /metrics.
func commandsRefused(t *testing.T, health string) int {
	t.Helper()
	resp, err := http.Get("http://" + health + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^edgegw_commands_total\{outcome="rejected"\} (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no rejected count in /metrics:\n%s", b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
