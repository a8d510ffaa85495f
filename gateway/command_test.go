package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw/drivers"
)

// expiring returns a command payload that expires d after now.
func expiring(id string, value any, d time.Duration) string {
	return fmt.Sprintf(`{"id":%q,"value":%v,"expires_at":%q}`, id, value, time.Now().Add(d).UTC().Format(time.RFC3339Nano))
}

func seated(e *env) {
	e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: true, Time: time.Now(), Quality: drivers.Good}})
	e.g.DeviceStatus("seat", true)
}

// TestCommandPolicy: the bounds of [commands] on payload size, expiry
// horizon and a missing expires_at, for remote and local commands.
func TestCommandPolicy(t *testing.T) {
	big := fmt.Sprintf(`{"id":"big","value":true,"pad":%q}`, strings.Repeat("x", 5000))
	tests := []struct {
		name    string
		policy  CommandPolicy
		local   bool
		payload func() string
		status  string
		errText string
	}{
		{name: "remote with expiry", payload: func() string { return expiring("1", true, time.Hour) }, status: StatusDone},
		{name: "remote without expiry", payload: func() string { return `{"id":"1","value":true}` },
			status: StatusRejected, errText: "expires_at required"},
		{name: "remote without expiry allowed", policy: CommandPolicy{AllowNoExpiry: true},
			payload: func() string { return `{"id":"1","value":true}` }, status: StatusDone},
		{name: "local without expiry", local: true, payload: func() string { return `{"id":"1","value":true}` }, status: StatusDone},
		{name: "year 9999", payload: func() string { return `{"id":"1","value":true,"expires_at":"9999-12-31T23:59:59Z"}` },
			status: StatusRejected, errText: "more than 24h0m0s ahead"},
		{name: "local year 9999", local: true, payload: func() string { return `{"id":"1","value":true,"expires_at":"9999-12-31T23:59:59Z"}` },
			status: StatusRejected, errText: "ahead"},
		{name: "25h ahead", payload: func() string { return expiring("1", true, 25*time.Hour) }, status: StatusRejected, errText: "ahead"},
		{name: "23h ahead", payload: func() string { return expiring("1", true, 23*time.Hour) }, status: StatusDone},
		{name: "shorter horizon", policy: CommandPolicy{MaxExpiry: time.Minute},
			payload: func() string { return expiring("1", true, time.Hour) }, status: StatusRejected, errText: "more than 1m0s ahead"},
		{name: "payload over 4 KiB", payload: func() string { return big }, status: StatusRejected, errText: "over the limit of 4096"},
		{name: "local payload over 4 KiB", local: true, payload: func() string { return big }, status: StatusRejected, errText: "over the limit"},
		{name: "payload limit raised", policy: CommandPolicy{MaxPayload: 8 << 10, AllowNoExpiry: true},
			payload: func() string { return big }, status: StatusDone},
		{name: "control character in id", payload: func() string { return expiring("a\nb", true, time.Hour) },
			status: StatusRejected, errText: "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnvPolicy(t, t.TempDir(), nil, nil, tt.policy)
				seated(e)
				res := e.g.command(context.Background(), cmdRecord("seat", "heater", tt.payload()), tt.local)
				if res.Status != tt.status || !strings.Contains(res.Error, tt.errText) {
					t.Errorf("command = %+v, want %s with %q", res, tt.status, tt.errText)
				}
				want := 0
				if tt.status == StatusDone {
					want = 1
				}
				if n := len(e.act.applied()); n != want {
					t.Errorf("applied %d times, want %d", n, want)
				}
				e.g.cmds.stop()
			})
		})
	}
}

// TestCommandRefusalKeepsID: a command refused by a check (here the
// interlock) does not burn its id: sent again once the check passes, it is
// applied.
func TestCommandRefusalKeepsID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnvPolicy(t, t.TempDir(), nil, nil, CommandPolicy{})
		payload := expiring("retry-me", true, time.Hour)
		e.g.Emit([]drivers.Reading{{Device: "seat", Point: "occupied", Value: false, Time: time.Now(), Quality: drivers.Good}})
		if res := e.g.remote(context.Background(), cmdRecord("seat", "heater", payload)); res.Status != StatusRejected {
			t.Fatalf("empty seat: %+v, want rejected", res)
		}
		seated(e)
		if res := e.g.remote(context.Background(), cmdRecord("seat", "heater", payload)); res.Status != StatusDone {
			t.Errorf("same id once seated: %+v, want done", res)
		}
		if n := len(e.act.applied()); n != 1 {
			t.Errorf("applied %d times, want 1", n)
		}
		e.g.cmds.stop()
	})
}

// twoSeats is a gateway with a heater on two devices, each its own relay.
func twoSeats(t *testing.T, dir string, p CommandPolicy) (*Gateway, map[string]*fakeActuator) {
	t.Helper()
	acts := map[string]*fakeActuator{"left": {}, "right": {}}
	heater := []CommandRule{{Name: "heater", Type: "bool", Verify: true, RateLimit: time.Second, Timeout: time.Second}}
	g, err := New(Deps{
		Prefix: prefix, StateDir: dir, Spool: &fakeSpool{}, Commands: p,
		Actuator: func(dev string) (drivers.Actuator, bool) {
			a, ok := acts[dev]
			return a, ok
		},
	}, []Route{{Device: "left", Commands: heater}, {Device: "right", Commands: heater}, {Device: "dead", Commands: heater}})
	if err != nil {
		t.Fatal(err)
	}
	return g, acts
}

// TestCommandIDPerDevice: an id is remembered per device and command: the
// same id sent to another device really runs there (or is refused), never
// answered with the first device's "done".
func TestCommandIDPerDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, acts := twoSeats(t, t.TempDir(), CommandPolicy{})
		payload := expiring("same", true, time.Hour)
		ctx := context.Background()
		if res := g.remote(ctx, cmdRecord("left", "heater", payload)); res.Status != StatusDone {
			t.Fatalf("left: %+v", res)
		}
		if res := g.remote(ctx, cmdRecord("right", "heater", payload)); res.Status != StatusDone {
			t.Errorf("right, same id: %+v, want done", res)
		}
		if n := len(acts["right"].applied()); n != 1 {
			t.Errorf("right relay set %d times, want 1", n)
		}
		// A device without an actuator fails; it does not report done.
		if res := g.remote(ctx, cmdRecord("dead", "heater", payload)); res.Status != StatusFailed {
			t.Errorf("dead, same id: %+v, want failed", res)
		}
		// The repeat on left is the first result, not applied again.
		time.Sleep(2 * time.Second)
		if res := g.remote(ctx, cmdRecord("left", "heater", payload)); res.Status != StatusDone {
			t.Errorf("left again: %+v", res)
		}
		if n := len(acts["left"].applied()); n != 1 {
			t.Errorf("left relay set %d times, want 1", n)
		}
		g.cmds.stop()
	})
}

// TestCommandReplayAfterFlood: a captured command replayed after a flood
// of commands with fresh ids is answered with its first result, however
// many ids the flood brought: ids are kept for max_expiry, and at the
// bound the flood is refused instead of the captured id being forgotten.
// Past max_expiry the captured command has expired anyway.
func TestCommandReplayAfterFlood(t *testing.T) {
	for _, tt := range []struct {
		name   string
		policy CommandPolicy
		idLen  int
		flood  int
	}{
		{"count bound", CommandPolicy{MaxIDs: 50}, 8, 1200},
		{"byte bound", CommandPolicy{MaxIDBytes: 8 << 10}, 120, 1200},
		// Every command rewrites the whole log: a shorter flood keeps
		// the test fast.
		{"defaults", CommandPolicy{}, 8, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				g, acts := twoSeats(t, dir, tt.policy)
				ctx := context.Background()
				captured := cmdRecord("left", "heater", expiring("captured", true, time.Hour))
				if res := g.remote(ctx, captured); res.Status != StatusDone {
					t.Fatalf("captured: %+v", res)
				}
				var refused int
				for i := range tt.flood {
					time.Sleep(time.Second) // past the rate limit: every one is applied if allowed
					id := fmt.Sprintf("%0*d", tt.idLen, i)
					res := g.remote(ctx, cmdRecord("left", "heater", expiring(id, i%2 == 0, time.Hour)))
					switch {
					case res.Status == StatusDone:
					case strings.Contains(res.Error, "too many recent command ids"):
						refused++
					default:
						t.Fatalf("junk %d: %+v", i, res)
					}
				}
				time.Sleep(time.Second)
				before := len(acts["left"].applied())
				if res := g.remote(ctx, captured); res.Status != StatusDone || res.ID != "captured" {
					t.Errorf("replay: %+v, want the first result", res)
				}
				if n := len(acts["left"].applied()); n != before {
					t.Errorf("replay applied again (%d sets, was %d)", n, before)
				}
				g.l(t).bounds(t, tt.policy.withDefaults())
				t.Logf("%d junk commands refused at the bound", refused)
				g.cmds.stop()

				// After a restart the id is still known.
				g2, acts2 := twoSeats(t, dir, tt.policy)
				if res := g2.remote(ctx, captured); res.Status != StatusDone || len(acts2["left"].applied()) != 0 {
					t.Errorf("replay after restart: %+v, %d sets", res, len(acts2["left"].applied()))
				}
				// Past max_expiry: forgotten, and the command has expired.
				time.Sleep(25 * time.Hour)
				if res := g2.remote(ctx, captured); res.Status != StatusExpired {
					t.Errorf("replay after a day: %+v, want expired", res)
				}
				if res := g2.remote(ctx, cmdRecord("left", "heater", expiring("fresh", false, time.Hour))); res.Status != StatusDone {
					t.Errorf("a new command once the old ids aged out: %+v", res)
				}
				g2.cmds.stop()
			})
		})
	}
}

type logOf struct{ l *commandLog }

func (g *Gateway) l(t *testing.T) logOf { return logOf{g.cmds} }

// bounds checks the log against p's bounds.
func (lo logOf) bounds(t *testing.T, p CommandPolicy) {
	t.Helper()
	l := lo.l
	l.mu.Lock()
	defer l.mu.Unlock()
	sum := 0
	for _, e := range l.state.IDs {
		sum += entrySize(e)
	}
	if sum != l.bytes {
		t.Errorf("bytes counted %d, entries hold %d", l.bytes, sum)
	}
	if len(l.state.IDs) > p.MaxIDs || l.bytes > p.MaxIDBytes || len(l.index) != len(l.state.IDs) {
		t.Errorf("%d ids (index %d), %d bytes; bounds %d, %d", len(l.state.IDs), len(l.index), l.bytes, p.MaxIDs, p.MaxIDBytes)
	}
}

// TestOldCommandLogLoads: a commands.json written before ids had an until
// time is read, its entries kept for max_expiry from when they were
// applied.
func TestOldCommandLogLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
		old := `{"ids":[{"id":"a","key":"seat/heater","at":"` + at + `","result":{"id":"a","status":"done","ts":"` + at + `"}},` +
			`{"id":"b","key":"seat/heater","at":"` + at + `","result":null},` +
			`{"id":"","key":"seat/heater","at":"` + at + `"},null],"auto_off":{}}`
		if err := writeTestFile(dir+"/commands.json", old); err != nil {
			t.Fatal(err)
		}
		l, err := openCommandLog(dir, CommandPolicy{}, discard())
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := l.lookup("seat/heater", "a", time.Now()); !ok || res.Status != StatusDone {
			t.Errorf("a = %+v, %v", res, ok)
		}
		if res, ok := l.lookup("seat/heater", "b", time.Now()); !ok || res.Status != StatusFailed {
			t.Errorf("b (applying at the crash) = %+v, %v", res, ok)
		}
		if _, ok := l.lookup("seat/other", "a", time.Now()); ok {
			t.Error("a found under another command")
		}
		if _, ok := l.lookup("seat/heater", "a", time.Now().Add(24*time.Hour)); ok {
			t.Error("a still remembered 25h after it was applied")
		}
	})
}

// TestRetainedCommand: a retained command, local or remote, is never
// applied; a local one is cleared at the broker with an empty retained
// message; each is logged once.
func TestRetainedCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logBuf bytes.Buffer
		e := newEnvPolicy(t, t.TempDir(), nil, nil, CommandPolicy{})
		e.g.log = slog.New(slog.NewTextHandler(&logBuf, nil))
		seated(e)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- e.g.Run(ctx) }()
		e.commands(t)
		synctest.Wait()
		local := cmdRecord("seat", "heater", expiring("kept", true, time.Hour))
		local.Retain = true
		e.br.mu.Lock()
		deliver := e.br.subs[0]
		e.br.mu.Unlock()
		// As after a reload: the broker hands the retained command to the
		// new subscription, twice.
		deliver(local)
		synctest.Wait()
		deliver(local)
		synctest.Wait()
		remote := local
		remote.Payload = []byte(expiring("cloud-kept", true, time.Hour))
		for range 2 {
			if res := e.g.remote(ctx, remote); res.Status != StatusRejected || !strings.Contains(res.Error, "retained") {
				t.Errorf("remote retained: %+v", res)
			}
		}
		if n := len(e.act.applied()); n != 0 {
			t.Errorf("retained commands applied %d times", n)
		}
		var clears int
		for _, p := range e.br.published() {
			if p.Topic == local.Topic {
				if !p.Retain || len(p.Payload) != 0 {
					t.Errorf("published on the command topic: %+v", p)
				}
				clears++
			}
		}
		if clears != 2 {
			t.Errorf("%d clears of the local retained command, want one per delivery (2)", clears)
		}
		// The clear comes back to the subscription as an empty message:
		// ignored, no result.
		results := len(e.sp.records(t, ClassAlarm))
		deliver(Record{Topic: local.Topic})
		synctest.Wait()
		if n := len(e.sp.records(t, ClassAlarm)); n != results {
			t.Errorf("an empty command produced %d results", n-results)
		}
		if n := strings.Count(logBuf.String(), "retained command not applied"); n != 2 {
			t.Errorf("logged %d times, want once per retained command (2):\n%s", n, logBuf.String())
		}
		var res Result
		json.Unmarshal(e.sp.records(t, ClassAlarm)[results-1].Payload, &res)
		if res.ID != "cloud-kept" || res.Status != StatusRejected {
			t.Errorf("last result %+v", res)
		}
		cancel()
		<-done
	})
}

func writeTestFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// decodeTests is the table of command payloads, shared with
// FuzzDecodeCommand's seeds.
var decodeTests = []struct {
	name    string
	payload string
	id      string
	errText string
}{
	{"full", `{"id":"a-1","value":true,"expires_at":"2000-01-01T01:00:00Z"}`, "a-1", ""},
	{"no expiry", `{"id":"a","value":3.5}`, "a", ""},
	{"unknown fields kept out", `{"id":"a","value":"eco","from":"ops"}`, "a", ""},
	{"not json", `{"id":`, "", "not a command object"},
	{"array", `[1,2]`, "", "not a command object"},
	{"trailing bytes", `{"id":"a","value":1} x`, "", "not a command object"},
	{"bad time", `{"id":"a","value":1,"expires_at":"tomorrow"}`, "", "not a command object"},
	{"no id", `{"value":true}`, "", "id must be"},
	{"id not a string", `{"id":7,"value":true}`, "", "not a command object"},
	{"long id", `{"id":"` + strings.Repeat("i", 129) + `","value":true}`, "", "id must be"},
	{"longest id", `{"id":"` + strings.Repeat("i", 128) + `","value":true}`, strings.Repeat("i", 128), ""},
	{"control in id", `{"id":"a\u0000","value":true}`, "", "control characters"},
	{"C1 control in id", `{"id":"a\u0085","value":true}`, "", "control characters"},
	{"invalid UTF-8", "{\"id\":\"a\xff\",\"value\":true}", "", "not UTF-8"},
	{"too big", `{"id":"a","value":"` + strings.Repeat("v", 4100) + `"}`, "", "over the limit"},
}

func TestDecodeCommand(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := decodeCommand([]byte(tt.payload), DefaultCommandMaxPayload)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("decodeCommand(%q) = %+v, %v, want error with %q", tt.payload, msg, err, tt.errText)
				}
				return
			}
			if err != nil || msg.ID != tt.id {
				t.Errorf("decodeCommand(%q) = %+v, %v, want id %q", tt.payload, msg, err, tt.id)
			}
		})
	}
}

// FuzzDecodeCommand: whatever the bytes, decodeCommand and checkExpiry do
// not panic, and what they accept keeps every bound of the policy.
func FuzzDecodeCommand(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add([]byte(tt.payload), false)
	}
	f.Add([]byte(`{"id":"a","value":1,"expires_at":"9999-12-31T23:59:59Z"}`), true)
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	p := CommandPolicy{}.withDefaults()
	f.Fuzz(func(t *testing.T, payload []byte, remote bool) {
		msg, err := decodeCommand(payload, p.MaxPayload)
		if err != nil {
			return
		}
		if len(payload) > p.MaxPayload || validID(msg.ID) != nil {
			t.Fatalf("accepted %q: %+v", payload, msg)
		}
		status, err := checkExpiry(msg, now, remote, p)
		if (status == "") != (err == nil) {
			t.Fatalf("checkExpiry = %q, %v", status, err)
		}
		if err != nil {
			return
		}
		if remote && msg.ExpiresAt == nil {
			t.Fatalf("remote %q accepted without expires_at", payload)
		}
		if msg.ExpiresAt != nil && (!msg.ExpiresAt.After(now) || msg.ExpiresAt.After(now.Add(p.MaxExpiry))) {
			t.Fatalf("expires_at %v accepted at %v", msg.ExpiresAt, now)
		}
	})
}

// FuzzCommandLog: a damaged journal or commands.json never panics the
// loader, and
// what is loaded keeps the bounds, with no id twice.
func FuzzCommandLog(f *testing.F) {
	at := "2000-01-01T00:00:00Z"
	f.Add([]byte(`{"ids":[{"id":"a","key":"seat/heater","at":"` + at + `","result":{"id":"a","status":"done"}}],"auto_off":{"seat/heater":"` + at + `"}}`))
	f.Add([]byte(`{"ids":[{"id":"a","key":"k","at":"` + at + `"},{"id":"a","key":"k","at":"` + at + `","until":"2000-01-03T00:00:00Z"}]}`))
	f.Add([]byte(`{"ids":[null,{"id":"","key":""}],"auto_off":null}`))
	f.Add([]byte(`{"ids":`))
	f.Add([]byte{})
	now := time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC)
	p := CommandPolicy{MaxIDs: 4, MaxIDBytes: 4096}
	f.Add([]byte(`{"entry":{"id":"a","key":"k","at":"` + at + `"}}` + "\n" + `{"entry":{"id":"a","key":"k","at":"` + at + `","result":{"status":"done"}}}` + "\n"))
	f.Add([]byte(`{"auto_off":{"key":"k","at":"` + at + `"}}` + "\n" + `{"auto_off":{"key":"k"}}` + "\n" + `{"entry":null}` + "\n{\"ent"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// As a commands.json of an earlier version, and as a journal.
		for _, load := range []func(*commandLog){
			func(l *commandLog) { l.load(b, now) },
			func(l *commandLog) { l.replay(b, now) },
		} {
			l := &commandLog{log: discard(), p: p.withDefaults()}
			load(l)
			logOf{l}.bounds(t, l.p)
			if l.state.AutoOff == nil {
				t.Fatal("nil auto-off map")
			}
			for _, e := range l.state.IDs {
				if l.index[idKey{e.Key, e.ID}] != e || e.Result == nil {
					t.Fatalf("entry %+v not indexed or without result", e)
				}
			}
		}
	})
}

// TestCommandJournal: the command log survives a line cut short by a
// crash and a damaged line, keeps a claimed command without a result as
// failed, and stays small however many commands pass: a journal compacted
// at open and when it outgrows twice the live state.
func TestCommandJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalName)
	now := time.Now()
	p := CommandPolicy{MaxExpiry: 3 * time.Hour}
	l, err := openCommandLog(dir, p, discard())
	if err != nil {
		t.Fatal(err)
	}
	l.claim("seat/heater", "a", now)
	l.done("seat/heater", "a", Result{ID: "a", Status: StatusDone})
	l.claim("seat/heater", "b", now) // the crash comes while b is applied
	l.close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n" + `{"entry":{"id":"c","key":"seat/heater"`) // damaged, then torn
	f.Close()

	l, err = openCommandLog(dir, p, discard())
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := l.lookup("seat/heater", "a", now); !ok || res.Status != StatusDone {
		t.Errorf("a = %+v, %v, want done", res, ok)
	}
	if res, ok := l.lookup("seat/heater", "b", now); !ok || res.Status != StatusFailed {
		t.Errorf("b = %+v, %v, want failed", res, ok)
	}
	if _, ok := l.lookup("seat/heater", "c", now); ok {
		t.Error("the torn record c was read")
	}
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte{'\n'}); n != 2 || !bytes.HasSuffix(b, []byte{'\n'}) {
		t.Errorf("journal after open has %d lines:\n%s", n, b)
	}

	// 600 commands an hour apart, ending an hour ago (240 kB of records):
	// each forgets the ones more than 3 hours older.
	for i := range 600 {
		id := fmt.Sprintf("id-%d", i)
		if err := l.claim("seat/heater", id, now.Add(time.Duration(i-600)*time.Hour)); err != nil {
			t.Fatal(err)
		}
		l.done("seat/heater", id, Result{ID: id, Status: StatusDone})
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() > 2*journalMinGap {
		t.Errorf("journal of %v bytes after 600 commands (%v)", fi.Size(), err)
	}
	l.close()
	l, err = openCommandLog(dir, p, discard())
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := l.lookup("seat/heater", "id-599", now); !ok || res.Status != StatusDone {
		t.Errorf("the last id after reopening: %+v, %v", res, ok)
	}
	if len(l.state.IDs) != 4 { // a, b, id-598, id-599
		t.Errorf("%d ids remembered, want 4", len(l.state.IDs))
	}
	l.close()
}

// TestCommandJournalMigrates: a commands.json of an earlier version is read
// when there is no journal, and removed once the journal holds it.
func TestCommandJournalMigrates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	old := fmt.Sprintf(`{"ids":[{"id":"a","key":"seat/heater","at":%q,"result":{"id":"a","status":"done"}}],"auto_off":{"seat/heater":%q}}`,
		now.Format(time.RFC3339Nano), now.Add(time.Minute).Format(time.RFC3339Nano))
	if err := writeTestFile(filepath.Join(dir, oldStateName), old); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l, err := openCommandLog(dir, CommandPolicy{}, discard())
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := l.lookup("seat/heater", "a", now); !ok || res.Status != StatusDone {
			t.Errorf("a = %+v, %v", res, ok)
		}
		if !l.state.AutoOff["seat/heater"].Equal(now.Add(time.Minute)) {
			t.Errorf("auto-off = %v", l.state.AutoOff)
		}
		l.close()
		if _, err := os.Stat(filepath.Join(dir, oldStateName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("commands.json still there: %v", err)
		}
	}
}

// TestVerifyNeedsReadBack: a rule that verifies, on an actuator that
// cannot read its state back, fails the command without moving it.
func TestVerifyNeedsReadBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		act := &fakeActuator{}
		g, err := New(Deps{Prefix: prefix, StateDir: t.TempDir(), Spool: &fakeSpool{}, Commands: CommandPolicy{AllowNoExpiry: true},
			Actuator: func(string) (drivers.Actuator, bool) { return struct{ drivers.Actuator }{act}, true },
		}, []Route{{Device: "seat", Commands: []CommandRule{{Name: "heater", Type: "bool", Verify: true, Timeout: time.Second}}}})
		if err != nil {
			t.Fatal(err)
		}
		res := g.command(context.Background(), cmdRecord("seat", "heater", `{"id":"1","value":true}`), false)
		if res.Status != StatusFailed || res.Error != "verify: device cannot read its state back" {
			t.Errorf("command = %+v, want failed: verify: device cannot read its state back", res)
		}
		if n := len(act.applied()); n != 0 {
			t.Errorf("applied %d times, want 0", n)
		}
		g.cmds.stop()
	})
}

// TestCommandLogLongError: a result whose error is long (a driver's, say)
// stays within the room its claim reserved, so the byte bound holds; the
// copy kept for a replay is cut on a character boundary.
func TestCommandLogLongError(t *testing.T) {
	now := time.Now()
	// Room for exactly one claim with its result.
	one := entrySize(&logEntry{ID: "a", Key: "seat/heater"}) + len("a") + resultRoom
	p := CommandPolicy{MaxIDBytes: one, MaxExpiry: time.Hour}
	l, err := openCommandLog(t.TempDir(), p, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if err := l.claim("seat/heater", "a", now); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("modbus: exception 2 (illegal data address) é ", 200)
	l.done("seat/heater", "a", Result{ID: "a", Status: StatusFailed, Error: long, TS: now.UTC().Format(time.RFC3339Nano)})
	logOf{l}.bounds(t, p.withDefaults())
	res, ok := l.lookup("seat/heater", "a", now)
	if !ok || res.Status != StatusFailed || !strings.HasSuffix(res.Error, "…") || !utf8.ValidString(res.Error) ||
		!strings.HasPrefix(long, strings.TrimSuffix(res.Error, "…")) {
		t.Errorf("replayed result %s, %v, error of %d bytes: want the failure with its error cut short", res.Status, ok, len(res.Error))
	}
	if err := l.claim("seat/heater", "b", now); !errors.Is(err, ErrCommandLogFull) {
		t.Errorf("a second claim past the bound: %v, want ErrCommandLogFull", err)
	}
}
