package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestConsoleCommandMeetsACL: a console user meets the broker's ACL for
// the command topic before anything else; a user it lets through meets
// the remote policy.
func TestConsoleCommandMeetsACL(t *testing.T) {
	allow := func(user, topic string) bool { return user == "ops" && topic == prefix+"/cmd/seat/heater" }
	tests := []struct {
		name       string
		mayPublish func(user, topic string) bool
		user       string
		payload    func() string
		status     string
		errText    string
		applied    int
		results    int // results sent
	}{
		{name: "no acl", user: "ops", payload: func() string { return expiring("1", true, time.Hour) },
			status: StatusRejected, errText: "not authorized: the broker's ACL does not let ops publish " + prefix + "/cmd/seat/heater"},
		{name: "denied", mayPublish: allow, user: "alice", payload: func() string { return expiring("1", true, time.Hour) },
			status: StatusRejected, errText: "not authorized"},
		{name: "allowed", mayPublish: allow, user: "ops", payload: func() string { return expiring("1", true, time.Hour) },
			status: StatusDone, applied: 1, results: 1},
		{name: "allowed without expiry", mayPublish: allow, user: "ops", payload: func() string { return `{"id":"1","value":true}` },
			status: StatusRejected, errText: "expires_at required", results: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnvPolicy(t, t.TempDir(), nil, nil, CommandPolicy{})
				seated(e)
				c := NewCommands(CommandOptions{Prefix: prefix, Gateway: func() *Gateway { return e.g }, MayPublish: tt.mayPublish})
				res := c.Console(context.Background(), tt.user, "seat", "heater", []byte(tt.payload()))
				if res.Status != tt.status || !strings.Contains(res.Error, tt.errText) {
					t.Errorf("Console = %+v, want %s with %q", res, tt.status, tt.errText)
				}
				if n := len(e.act.applied()); n != tt.applied {
					t.Errorf("applied %d times, want %d", n, tt.applied)
				}
				results := 0
				for _, r := range e.sp.records(t, ClassAlarm) {
					if strings.HasSuffix(r.Topic, "/result") {
						results++
					}
				}
				if n := results; n != tt.results {
					t.Errorf("%d results spooled, want %d", n, tt.results)
				}
				c.Close()
				e.g.cmds.stop()
			})
		})
	}
}

// TestCommandsWaitForSwap: while Commands is held, a command from each
// door waits, and goes to the gateway current once it is released; Hold
// waits for a command being applied, and Close for one being handled.
func TestCommandsWaitForSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old, next := newEnv(t, t.TempDir(), nil), newEnv(t, t.TempDir(), nil)
		seated(old)
		seated(next)
		var mu sync.Mutex
		current := old
		c := NewCommands(CommandOptions{Prefix: prefix, MayPublish: func(string, string) bool { return true },
			Gateway: func() *Gateway {
				mu.Lock()
				defer mu.Unlock()
				return current.g
			}})
		if err := c.Subscribe(old.br); err != nil {
			t.Fatal(err)
		}
		old.act.block = make(chan struct{})
		old.br.subs[0](cmdRecord("seat", "heater", `{"id":"l1","value":true}`))
		synctest.Wait()
		held := make(chan struct{})
		go func() {
			c.Hold()
			close(held)
		}()
		synctest.Wait()
		select {
		case <-held:
			t.Fatal("Hold did not wait for the command being applied")
		default:
		}
		close(old.act.block)
		<-held

		// Held: the doors wait.
		old.br.subs[0](cmdRecord("seat", "level", `{"id":"l2","value":1}`))
		c.Remote(cmdRecord("seat", "mode", `{"id":"r1","value":"eco"}`))
		console := make(chan Result)
		go func() {
			console <- c.Console(context.Background(), "ops", "seat", "level", []byte(expiring("c1", 2, time.Hour)))
		}()
		synctest.Wait()
		if n := len(next.act.applied()); n != 0 {
			t.Fatalf("%d commands applied while held", n)
		}
		mu.Lock()
		current = next
		mu.Unlock()
		c.Release()
		if res := <-console; res.Status != StatusDone {
			t.Errorf("console command: %+v", res)
		}
		c.Close()
		if n := len(old.act.applied()); n != 1 {
			t.Errorf("old gateway applied %d commands, want 1 (the one before the hold)", n)
		}
		if n := len(next.act.applied()); n != 3 {
			t.Errorf("new gateway applied %d commands, want the 3 that waited", n)
		}
		old.g.cmds.stop()
		next.g.cmds.stop()
	})
}

// TestAutoOffOutlivesCommand: the auto-off of a command switches the
// heater off even though the context the command came with is long gone
// (a remote command's, a console request's).
func TestAutoOffOutlivesCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), nil)
		e.run(t)
		seated(e)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if res := e.g.remote(ctx, cmdRecord("seat", "heater", `{"id":"1","value":true}`)); res.Status != StatusDone {
			t.Fatalf("heater on: %+v", res)
		}
		cancel()
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		if got := e.act.applied(); len(got) != 2 || got[1].Value != false {
			t.Errorf("applied %+v, want the heater on, then off", got)
		}
	})
}

// TestRunWaitsForAutoOff: an auto-off that is moving its actuator when the
// gateway stops is waited for, so that the devices are not closed under
// it (the supervisor closes them once Run returns).
func TestRunWaitsForAutoOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, t.TempDir(), nil)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.g.Run(ctx) }()
		seated(e)
		if res := e.g.remote(context.Background(), cmdRecord("seat", "heater", `{"id":"1","value":true}`)); res.Status != StatusDone {
			t.Fatalf("heater on: %+v", res)
		}
		release := make(chan struct{})
		e.act.mu.Lock()
		e.act.block = release
		e.act.mu.Unlock()
		time.Sleep(31 * time.Minute) // the auto-off is in Set
		synctest.Wait()
		stop()
		synctest.Wait()
		select {
		case err := <-done:
			t.Errorf("Run returned (%v) while the auto-off was moving the actuator", err)
			done <- err
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return once the auto-off finished")
		}
	})
}
