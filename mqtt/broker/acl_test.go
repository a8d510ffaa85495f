package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// pi.toml's shape: alice may read the vehicle's topics but not command it;
// ops may do both; the uplink may deliver the cloud's messages under
// from_cloud only.
var accessACL = []ACLRule{
	{User: "ops", Permission: "allow", Action: "all", Topic: "vehicles/#"},
	{User: "ops", Permission: "allow", Action: "subscribe", Topic: "$aws/#"},
	{User: "*", Permission: "deny", Action: "publish", Topic: "vehicles/+/cmd/#"},
	{User: "*", Permission: "allow", Action: "all", Topic: "vehicles/#"},
	{User: "alice", Permission: "allow", Action: "publish", Topic: "$aws/things/alice/#"},
	{User: UplinkUser, Permission: "allow", Action: "publish", Topic: "from_cloud/#"},
}

func userConnect(user, id string, clean bool) *packet.Connect {
	return &packet.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60, UsernameFlag: true, Username: user}
}

func connectAs(t *testing.T, s *Server, v packet.Version, user, id string, clean bool) *tclient {
	t.Helper()
	c := pipe(t, s, v)
	if ack := c.connack(userConnect(user, id, clean)); ack.Code != packet.Success {
		t.Fatalf("CONNACK %v for %s", ack.Code, user)
	}
	return c
}

// TestWillACL (issue row 1): a will the publisher may not publish refuses
// the CONNECT with 0x87 (3.1.1: 5), as Mosquitto does, so it can never
// fire; a will on $SYS likewise, with or without an ACL.
func TestWillACL(t *testing.T) {
	tests := []struct {
		name  string
		acl   []ACLRule
		user  string
		topic string
		want  packet.ReasonCode
	}{
		{"command denied", accessACL, "alice", "vehicles/v1/cmd/seat_driver/heater", packet.NotAuthorized},
		{"$SYS", accessACL, "ops", "$SYS/broker/version", packet.NotAuthorized},
		{"$SYS without acl", nil, "alice", "$SYS/broker/clients/connected", packet.NotAuthorized},
		{"allowed", accessACL, "alice", "vehicles/v1/status/alice", packet.Success},
		{"operator command", accessACL, "ops", "vehicles/v1/cmd/seat_driver/heater", packet.Success},
	}
	for _, v := range versions {
		for _, tt := range tests {
			t.Run(v.String()+"/"+tt.name, func(t *testing.T) {
				s := newServer(t, Options{ACL: tt.acl, AllowAnonymous: ptr(true)})
				watch := connectAs(t, s, v, "ops", "watch", true)
				watch.subscribe(1, sub("vehicles/#", 1), sub("$SYS/#", 1))
				c := pipe(t, s, v)
				cp := userConnect(tt.user, "car", true)
				cp.Will = &packet.Will{Topic: tt.topic, Payload: []byte(`{"id":"w","value":true}`), QoS: 1}
				ack := c.connack(cp)
				if ack.Code != tt.want {
					t.Fatalf("CONNACK %v, want %v", ack.Code, tt.want)
				}
				c.nc.Close() // an abnormal end: a will would fire now
				if tt.want == packet.Success {
					if p := watch.recvPub(); p.Topic != tt.topic {
						t.Fatalf("will on %q, want %q", p.Topic, tt.topic)
					}
					return
				}
				watch.quiet(100 * time.Millisecond)
			})
		}
	}
}

// TestPublishACL (issue row 1, issue 15): $SYS is refused to every client;
// other $-topics follow the ACL (AWS IoT's shadow topics can be published
// and forwarded); a denied retained message is not stored; leading
// wildcards still do not match $-topics [MQTT-4.7.2-1].
func TestPublishACL(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
			all := connectAs(t, s, v, "ops", "all", true)
			all.subscribe(1, sub("vehicles/#", 1))
			aws := pipe(t, s, v)
			aws.connack(&packet.Connect{ClientID: "aws", CleanStart: true, KeepAlive: 60}) // no ACL rule: sees nothing
			shadow := connectAs(t, s, v, "ops", "shadow", true)
			shadow.subscribe(1, sub("#", 1))
			alice := connectAs(t, s, v, "alice", "alice", true)
			denied := packet.ReasonCode(packet.NotAuthorized)
			if v != packet.V5 {
				denied = packet.Success // 3.1.1 cannot refuse: acknowledged and dropped
			}
			for _, tc := range []struct {
				topic  string
				retain bool
				want   packet.ReasonCode
			}{
				{"$SYS/broker/version", false, denied},
				{"vehicles/v1/cmd/seat_driver/heater", true, denied},
				{"$aws/things/bob/shadow/update", false, denied},
				{"$aws/things/alice/shadow/update", false, packet.NoMatchingSubscribers},
			} {
				want := tc.want
				if v != packet.V5 && want == packet.NoMatchingSubscribers {
					want = packet.Success
				}
				if got := alice.publish(&packet.Publish{Topic: tc.topic, Payload: []byte("x"), QoS: 1, PacketID: 1, Retain: tc.retain}); got != want {
					t.Errorf("publish %s: PUBACK %v, want %v", tc.topic, got, want)
				}
			}
			all.quiet(50 * time.Millisecond)
			shadow.quiet(50 * time.Millisecond) // "#" does not match $aws/…
			late := connectAs(t, s, v, "ops", "late", true)
			late.subscribe(1, sub("vehicles/#", 1))
			late.quiet(50 * time.Millisecond) // the denied retained command was not stored

			// A subscriber naming the $aws tree gets it.
			aw := connectAs(t, s, v, "ops", "aw", true)
			aw.subscribe(1, sub("$aws/things/+/shadow/#", 1))
			alice.publish(&packet.Publish{Topic: "$aws/things/alice/shadow/update", Payload: []byte("y"), QoS: 1, PacketID: 2})
			if p := aw.recvPub(); p.Topic != "$aws/things/alice/shadow/update" {
				t.Errorf("got %q", p.Topic)
			}
		})
	}
}

// TestPublishAs (issue row 1): an in-process publisher acting for a user
// (the uplink's messages from the cloud) meets the same ACL decision.
func TestPublishAs(t *testing.T) {
	s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
	got := make(chan string, 10)
	cancel, err := s.Subscribe("#", 1, func(m Message) { got <- m.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	ctx := context.Background()
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"vehicles/v1/cmd/seat_driver/heater", false},
		{"$SYS/broker/uptime", false},
		{"from_cloud/ota", true},
	} {
		err := s.PublishAs(ctx, UplinkUser, Message{Topic: tc.topic, Payload: []byte("1"), QoS: 1, Retain: true})
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrNotAuthorized)) {
			t.Errorf("PublishAs(%s) = %v, want ok %v", tc.topic, err, tc.ok)
		}
	}
	// A topic with a control character is refused, as from a client.
	if err := s.PublishAs(ctx, UplinkUser, Message{Topic: "from_cloud/o\x01ta", Payload: []byte("1"), QoS: 1, Retain: true}); err == nil {
		t.Error("PublishAs with a control character in the topic accepted")
	}
	// In-process deliveries come in order: the first is the allowed one.
	select {
	case topic := <-got:
		if topic != "from_cloud/ota" {
			t.Errorf("delivered %s, want from_cloud/ota", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered")
	}
	if n := s.retained.Len(); n != 1 {
		t.Errorf("%d retained, want 1", n)
	}
}

// TestReservedUserNames: no client may log in as an in-process identity,
// or with control characters in its user name or client id (as
// Mosquitto).
func TestReservedUserNames(t *testing.T) {
	for _, v := range versions {
		s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
		for _, tc := range []struct {
			user, id string
			want     packet.ReasonCode
		}{
			{UplinkUser, "u", packet.BadUsernameOrPassword},
			{"al\x01ice", "u", packet.BadUsernameOrPassword},
			{"alice", "car\x1b", packet.ClientIDNotValid},
			{"alice", "car\u0085", packet.ClientIDNotValid},
		} {
			c := pipe(t, s, v)
			if ack := c.connack(userConnect(tc.user, tc.id, true)); ack.Code != tc.want {
				t.Errorf("%v %q/%q: CONNACK %v, want %v", v, tc.user, tc.id, ack.Code, tc.want)
			}
			c.closed()
		}
	}
}

// TestSessionOwner (issue row 3): a client id held by another user, live
// or offline, is refused with 0x85 (3.1.1: 2); the owner's session, its
// queued messages and its live connection are left alone.
func TestSessionOwner(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
			persistent := func(user string, clean bool) *packet.Connect {
				cp := userConnect(user, "ops-console", clean)
				if v == packet.V5 {
					cp.Props.SessionExpiry = 3600
				}
				return cp
			}
			ops := pipe(t, s, v)
			ops.connack(persistent("ops", false))
			ops.subscribe(1, sub("vehicles/#", 1))

			// Live: alice is refused, ops stays connected.
			for _, clean := range []bool{false, true} {
				a := pipe(t, s, v)
				if ack := a.connack(persistent("alice", clean)); ack.Code != packet.ClientIDNotValid || ack.SessionPresent {
					t.Fatalf("alice on ops's live id (clean %v): CONNACK %+v, want 0x85", clean, ack)
				}
				a.closed()
			}
			ops.ping()
			ops.disconnect()

			// Offline: alice is refused and ops's queued message waits.
			s.Publish(context.Background(), Message{Topic: "vehicles/v1/alarm", Payload: []byte("leak"), QoS: 1})
			a := pipe(t, s, v)
			if ack := a.connack(persistent("alice", false)); ack.Code != packet.ClientIDNotValid {
				t.Fatalf("alice on ops's offline id: CONNACK %v, want 0x85", ack.Code)
			}
			a.closed()
			ops = pipe(t, s, v)
			if ack := ops.connack(persistent("ops", false)); ack.Code != packet.Success || !ack.SessionPresent {
				t.Fatalf("ops resumes: CONNACK %+v", ack)
			}
			if p := ops.recvPub(); string(p.Payload) != "leak" {
				t.Fatalf("got %q, want the queued message", p.Payload)
			}
		})
	}
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestResumeRechecksACL (issue row 3): a persisted session keeps its owner
// across a restart, and a resumed session's subscriptions are checked
// against the ACL in force now: those it no longer allows are dropped,
// with one log line.
func TestResumeRechecksACL(t *testing.T) {
	dir := t.TempDir()
	s1 := newServer(t, Options{StateDir: dir, ACL: accessACL, AllowAnonymous: ptr(true)})
	c := pipe(t, s1, packet.V311)
	c.connack(userConnect("alice", "tablet", false))
	c.subscribe(1, sub("vehicles/#", 1), sub("vehicles/+/telemetry/#", 1))
	c.disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Now alice may read telemetry only.
	narrow := []ACLRule{
		{User: "alice", Permission: "allow", Action: "subscribe", Topic: "vehicles/+/telemetry/#"},
		{User: "ops", Permission: "allow", Action: "all", Topic: "#"},
	}
	var logs logBuffer
	s2 := newServer(t, Options{StateDir: dir, ACL: narrow, AllowAnonymous: ptr(true),
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	m := pipe(t, s2, packet.V311)
	if ack := m.connack(userConnect("ops", "tablet", false)); ack.Code != packet.ClientIDNotValid {
		t.Fatalf("ops on alice's restored id: CONNACK %v, want 2", ack.Code)
	}
	m.closed()
	c = pipe(t, s2, packet.V311)
	if ack := c.connack(userConnect("alice", "tablet", false)); !ack.SessionPresent {
		t.Fatalf("alice resumes: CONNACK %+v", ack)
	}
	s2.Publish(context.Background(), Message{Topic: "vehicles/v1/cmd/x/result", Payload: []byte("no"), QoS: 1})
	s2.Publish(context.Background(), Message{Topic: "vehicles/v1/telemetry/seat", Payload: []byte("yes"), QoS: 1})
	if p := c.recvPub(); string(p.Payload) != "yes" {
		t.Errorf("got %s %q, want only the telemetry", p.Topic, p.Payload)
	}
	// Logged once CONNACK is on its way: wait for it.
	n := 0
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n = strings.Count(logs.String(), "subscriptions the acl no longer allows dropped")
	}
	if n != 1 {
		t.Errorf("%d log lines about dropped subscriptions, want 1:\n%s", n, logs.String())
	}
}

// TestMayPublish: the web console's door meets the decision a client's
// PUBLISH meets: a valid topic without control characters, not $SYS, and
// the ACL.
func TestMayPublish(t *testing.T) {
	s := newServer(t, Options{ACL: accessACL, AllowAnonymous: ptr(true)})
	tests := []struct {
		name, user, topic string
		want              bool
	}{
		{"allowed", UplinkUser, "from_cloud/ota", true},
		{"denied by the acl", UplinkUser, "vehicles/v1/cmd/seat_driver/heater", false},
		{"sys", UplinkUser, "$SYS/broker/uptime", false},
		{"control character", UplinkUser, "from_cloud/\x01", false},
		{"wildcard", UplinkUser, "from_cloud/#", false},
		{"empty", UplinkUser, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.MayPublish(tt.user, tt.topic); got != tt.want {
				t.Errorf("MayPublish(%q, %q) = %v, want %v", tt.user, tt.topic, got, tt.want)
			}
		})
	}
}
