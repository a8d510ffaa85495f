package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// offlineSessions connects n persistent sessions subscribed to filter at
// QoS 1 and drops them; it returns their CONNECTs, to resume them.
func offlineSessions(t *testing.T, s *Server, n int, filter string) []*packet.Connect {
	t.Helper()
	var cps []*packet.Connect
	for i := range n {
		cp := &packet.Connect{ClientID: fmt.Sprintf("away%d", i), KeepAlive: 60, Props: packet.Properties{SessionExpiry: 3600}}
		c := pipe(t, s, packet.V5)
		if ack := c.connack(cp); ack.Code != packet.Success {
			t.Fatalf("session %d: CONNACK %v", i, ack.Code)
		}
		c.subscribe(1, sub(filter, 1))
		c.nc.Close()
		waitOffline(t, s, cp.ClientID)
		cp.Version = 0
		cps = append(cps, cp)
	}
	return cps
}

func TestMaxSessions(t *testing.T) {
	// Row 6 of issue 13: nothing bounded the persistent sessions. Beyond
	// MaxSessions a new one is refused; held ones resume, and clean
	// sessions are not counted.
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{MaxSessions: 3})
			cps := offlineSessions(t, s, 3, "x")
			c := pipe(t, s, v)
			cp := &packet.Connect{ClientID: "one-too-many", KeepAlive: 60, Props: packet.Properties{SessionExpiry: 3600}}
			if v == packet.V311 {
				cp.Props = packet.Properties{}
			}
			want := packet.QuotaExceeded
			if v == packet.V311 {
				want = packet.ServerUnavailable
			}
			if ack := c.connack(cp); ack.Code != want {
				t.Errorf("4th persistent session: CONNACK %v, want quota exceeded (3.1.1: server unavailable)", ack.Code)
			}
			connect(t, s, v, "clean", true) // a clean session always fits
			c = pipe(t, s, packet.V5)
			if ack := c.connack(cps[0]); ack.Code != packet.Success || !ack.SessionPresent {
				t.Errorf("resuming a held session: %+v", ack)
			}
			if got := s.Stats().SessionsRefused; got != 1 {
				t.Errorf("SessionsRefused = %d, want 1", got)
			}
		})
	}
}

func TestSessionByteBudgets(t *testing.T) {
	// Row 6 of issue 13: 300 offline sessions and 100 × 10 kB QoS 1
	// messages took 2.4 GB, the bounds counting messages only. Each
	// session now holds at most MaxSessionBytes and all of them
	// MaxQueuedBytes, whatever a publisher sends.
	const (
		perSession = 64 << 10
		all        = 256 << 10
		sessions   = 10
	)
	s := newServer(t, Options{MaxSessionBytes: perSession, MaxQueuedBytes: all, MaxQueued: 100000})
	cps := offlineSessions(t, s, sessions, "big/#")
	pub := connect(t, s, packet.V5, "hostile", true)
	payload := bytes.Repeat([]byte{'x'}, 10_000)
	for i := range 100 {
		pub.publish(&packet.Publish{Topic: "big/x", QoS: 1, PacketID: uint16(i + 1), Payload: payload})
	}
	st := s.Stats()
	if st.QueuedBytes > all {
		t.Errorf("QueuedBytes = %d after the flood, want at most %d", st.QueuedBytes, all)
	}
	if st.Dropped == 0 {
		t.Error("nothing dropped")
	}
	s.mu.Lock()
	for id, ss := range s.sessions {
		ss.mu.Lock()
		if ss.bytes > perSession {
			t.Errorf("session %s holds %d bytes, want at most %d", id, ss.bytes, perSession)
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	// A resumed session gets what it held, and its budget frees as it
	// acknowledges.
	c := pipe(t, s, packet.V5)
	c.connack(cps[0])
	n := 0
	for {
		c.nc.SetReadDeadline(timeNowPlus(100))
		p, err := packet.Read(c.r, c.v, 0)
		if err != nil {
			break
		}
		c.ack(p.(*packet.Publish))
		n++
	}
	if n == 0 || int64(n)*msgBytes(&msg{topic: "big/x", payload: payload}) > perSession {
		t.Errorf("resumed session got %d messages of 10 kB, want 1..%d", n, perSession/10_000)
	}
	pub.ping()
	s.mu.Lock()
	ss := s.sessions[cps[0].ClientID]
	s.mu.Unlock()
	ss.mu.Lock()
	left := ss.bytes
	ss.mu.Unlock()
	if left != 0 {
		t.Errorf("session holds %d bytes after acknowledging everything, want 0", left)
	}
}

func TestNeverReadingSubscriber(t *testing.T) {
	// Row 7 of issue 13: a subscriber that never reads, at QoS 1 with
	// 900 kB messages, grew the broker by 2.2 GB in 15 s. Its queued
	// and in-flight messages stay within MaxSessionBytes.
	const perSession = 256 << 10
	s := newServer(t, Options{MaxSessionBytes: perSession, MaxQueued: 100000, MaxPacketSize: 1 << 20})
	addr := serveTCP(t, s)
	sc := tcpClient(t, addr, packet.V5)
	sc.connack(&packet.Connect{ClientID: "sink", CleanStart: true, KeepAlive: 60})
	sc.subscribe(1, sub("flood", 1)) // and never reads again
	pub := connect(t, s, packet.V5, "hostile", true)
	payload := bytes.Repeat([]byte{'x'}, 100_000)
	for i := range 100 {
		pub.publish(&packet.Publish{Topic: "flood", QoS: 1, PacketID: uint16(i + 1), Payload: payload})
	}
	if got := s.Stats().QueuedBytes; got > perSession {
		t.Errorf("QueuedBytes = %d, want at most %d", got, perSession)
	}
}

func TestRetainedByteBudgets(t *testing.T) {
	// Row 7 of issue 13: 300 retained × 1 MB took 1.46 GB. A client's
	// retained message over MaxRetainedMessageBytes is not stored, and
	// all of them together stay within MaxRetainedBytes.
	s := newServer(t, Options{MaxRetainedBytes: 64 << 10, MaxRetainedMessageBytes: 16 << 10})
	c := connect(t, s, packet.V5, "hostile", true)
	big := bytes.Repeat([]byte{'x'}, 20_000)
	c.publish(&packet.Publish{Topic: "r/big", QoS: 1, PacketID: 1, Retain: true, Payload: big})
	if _, ok := s.retained.Get("r/big"); ok {
		t.Error("retained message over max_retained_message_bytes stored")
	}
	small := bytes.Repeat([]byte{'x'}, 10_000)
	for i := range 20 {
		c.publish(&packet.Publish{Topic: fmt.Sprintf("r/%d", i), QoS: 1, PacketID: uint16(i + 2), Retain: true, Payload: small})
	}
	st := s.Stats()
	if st.RetainedBytes > 64<<10 || st.Retained == 0 {
		t.Errorf("RetainedBytes = %d (%d messages), want 1..%d", st.RetainedBytes, st.Retained, 64<<10)
	}
	// Replacing a stored topic with a message over the budget clears it:
	// no stale value stays.
	c.publish(&packet.Publish{Topic: "r/0", QoS: 1, PacketID: 100, Retain: true, Payload: big})
	if _, ok := s.retained.Get("r/0"); ok {
		t.Error("r/0 still holds its old value after a refused replacement")
	}
	// Clearing gives the bytes back.
	for i := range 20 {
		c.publish(&packet.Publish{Topic: fmt.Sprintf("r/%d", i), QoS: 1, PacketID: uint16(i + 200), Retain: true})
	}
	if st := s.Stats(); st.RetainedBytes != 0 || st.Retained != 0 {
		t.Errorf("after clearing: %d retained, %d bytes, want none", st.Retained, st.RetainedBytes)
	}
}

func TestGatewayRetainedOutsideClientBudget(t *testing.T) {
	// Row 8 of issue 13: once clients held max_retained topics, the
	// gateway's own new retained topics were refused too.
	ctx := context.Background()
	s := newServer(t, Options{MaxRetained: 50, MaxRetainedBytes: 32 << 10})
	c := connect(t, s, packet.V311, "hostile", true)
	for i := range 60 {
		c.publish(&packet.Publish{Topic: fmt.Sprintf("junk/%d", i), Retain: true, Payload: []byte("0123456789")})
	}
	st := s.Stats()
	if st.Retained > 50 || st.RetainedRefused == 0 {
		t.Fatalf("client stored %d retained (refused %d), want at most 50", st.Retained, st.RetainedRefused)
	}
	for i := range 50 {
		topic := fmt.Sprintf("vehicles/v1/devices/d%d/status", i)
		if err := s.Publish(ctx, Message{Topic: topic, Payload: bytes.Repeat([]byte{'o'}, 200), Retain: true, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.retained.Get(topic); !ok {
			t.Fatalf("gateway's retained %s refused with the clients' budget full", topic)
		}
	}
	if got := s.Stats().LocalRetained; got != 50 {
		t.Errorf("LocalRetained = %d, want 50", got)
	}
	// The gateway's budget is bounded too (a bridge from the cloud
	// publishes in process), apart from the clients'.
	s.Publish(ctx, Message{Topic: "vehicles/v1/one_too_many", Payload: []byte("x"), Retain: true})
	if _, ok := s.retained.Get("vehicles/v1/one_too_many"); ok {
		t.Error("gateway's retained stored beyond its own max_retained")
	}
	// $SYS is never refused.
	s.publishSys()
	if _, ok := s.retained.Get("$SYS/broker/version"); !ok {
		t.Error("$SYS refused")
	}
}

// TestDollarRetainedInClientBudget: a client's retained messages on '$'
// topics other than $SYS (which only the broker publishes) count against
// the clients' budget like any other; before, they skipped every bound.
func TestDollarRetainedInClientBudget(t *testing.T) {
	s := newServer(t, Options{MaxRetained: 10, MaxRetainedBytes: 8 << 10, MaxRetainedMessageBytes: 1 << 10})
	c := connect(t, s, packet.V311, "hostile", true)
	for i := range 40 {
		c.publish(&packet.Publish{Topic: fmt.Sprintf("$x/%d", i), Retain: true, Payload: bytes.Repeat([]byte{'x'}, 500)})
	}
	c.publish(&packet.Publish{Topic: "$x/big", Retain: true, Payload: bytes.Repeat([]byte{'x'}, 2<<10)})
	st := s.Stats()
	if st.Retained > 10 || st.RetainedBytes > 8<<10 || st.RetainedRefused == 0 || st.LocalRetained != 0 {
		t.Errorf("%d retained, %d bytes, %d refused, %d counted as the gateway's: want the clients' bounds",
			st.Retained, st.RetainedBytes, st.RetainedRefused, st.LocalRetained)
	}
	if _, ok := s.retained.Get("$x/big"); ok {
		t.Error("a '$' retained message over max_retained_message_bytes stored")
	}
}

func TestRetainedBudgetSurvivesRestart(t *testing.T) {
	// The owner of a retained message is kept in the state: after a
	// restart the clients' budget is as full as before, and the
	// gateway's topics still count apart.
	ctx := context.Background()
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir, MaxRetained: 5})
	c := connect(t, s, packet.V311, "hostile", true)
	for i := range 5 {
		c.publish(&packet.Publish{Topic: fmt.Sprintf("junk/%d", i), Retain: true, Payload: []byte("x")})
	}
	s.Publish(ctx, Message{Topic: "gw/status", Payload: []byte("online"), Retain: true})
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s = newServer(t, Options{StateDir: dir, MaxRetained: 5})
	c = connect(t, s, packet.V311, "hostile", true)
	c.publish(&packet.Publish{Topic: "junk/new", Retain: true, Payload: []byte("x")})
	if _, ok := s.retained.Get("junk/new"); ok {
		t.Error("client's retained budget empty after a restart")
	}
	s.Publish(ctx, Message{Topic: "gw/other", Payload: []byte("x"), Retain: true})
	if _, ok := s.retained.Get("gw/other"); !ok {
		t.Error("gateway's retained refused after a restart")
	}
}

// timeNowPlus is now plus ms milliseconds.
func timeNowPlus(ms int) time.Time { return time.Now().Add(time.Duration(ms) * time.Millisecond) }

func TestByteBudgetsBalance(t *testing.T) {
	// Whatever path a message takes — sent at once, queued, resent after
	// a reconnect, PUBREC'd, refused with an error PUBREC, expired, or
	// its session ended — what it counted is given back: a leak would
	// shut every session out for good.
	ctx := context.Background()
	s := newServer(t, Options{MaxInflight: 2})
	cps := offlineSessions(t, s, 3, "b/#")
	for i := range 6 {
		s.Publish(ctx, Message{Topic: "b/x", Payload: []byte{byte(i)}, QoS: byte(1 + i%2)})
	}
	s.Publish(ctx, Message{Topic: "b/x", Payload: []byte("expires"), QoS: 1, Expiry: time.Nanosecond})
	if s.Stats().QueuedBytes == 0 {
		t.Fatal("nothing counted for the queued messages")
	}
	// Session 0 takes two in flight, drops the connection, resumes and
	// completes everything, one QoS 2 refused with an error PUBREC.
	c := pipe(t, s, packet.V5)
	c.connack(cps[0])
	c.recvPub()
	c.recvPub()
	c.nc.Close()
	waitOffline(t, s, cps[0].ClientID)
	c = pipe(t, s, packet.V5)
	c.connack(cps[0])
	refused := false
	for {
		c.nc.SetReadDeadline(timeNowPlus(200))
		p, err := packet.Read(c.r, c.v, 0)
		if err != nil {
			break
		}
		switch p := p.(type) {
		case *packet.Publish:
			if p.QoS == 2 && !refused {
				refused = true
				c.send(&packet.Pubrec{PacketID: p.PacketID, Code: packet.UnspecifiedError})
				continue
			}
			if p.QoS == 2 {
				c.send(&packet.Pubrec{PacketID: p.PacketID})
				continue
			}
			c.send(&packet.Puback{PacketID: p.PacketID})
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
	}
	// Session 1 resumes and leaves its messages in flight; session 2 is
	// ended by a clean start.
	c1 := pipe(t, s, packet.V5)
	c1.connack(cps[1])
	c2 := pipe(t, s, packet.V5)
	c2.connack(&packet.Connect{ClientID: cps[2].ClientID, CleanStart: true})
	c1.nc.Close()
	waitOffline(t, s, cps[1].ClientID)
	c1 = pipe(t, s, packet.V5)
	c1.connack(&packet.Connect{ClientID: cps[1].ClientID, CleanStart: true})
	c.ping()
	c1.ping()
	if got := s.Stats().QueuedBytes; got != 0 {
		t.Errorf("QueuedBytes = %d with every message delivered or its session ended, want 0", got)
	}
}

func TestByteBudgetsAfterRestart(t *testing.T) {
	// Restored messages count again, and are given back as they go.
	ctx := context.Background()
	dir := t.TempDir()
	s := newServer(t, Options{StateDir: dir})
	cps := offlineSessions(t, s, 2, "b/#")
	for i := range 3 {
		s.Publish(ctx, Message{Topic: "b/x", Payload: bytes.Repeat([]byte{'x'}, 1000), QoS: 1 + byte(i%2)})
	}
	before := s.Stats().QueuedBytes
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s = newServer(t, Options{StateDir: dir})
	if got := s.Stats().QueuedBytes; got != before {
		t.Errorf("QueuedBytes = %d after a restart, want %d as before", got, before)
	}
	for _, cp := range cps {
		c := pipe(t, s, packet.V5)
		c.connack(cp)
		for range 3 {
			c.ack(c.recvPub())
		}
		c.ping()
	}
	if got := s.Stats().QueuedBytes; got != 0 {
		t.Errorf("QueuedBytes = %d with everything acknowledged, want 0", got)
	}
}

func TestRow8AtScale(t *testing.T) {
	// Row 8 of issue 13 as reported, with the default limits: a client
	// sets 12,000 small retained topics; the gateway's own new retained
	// topics are still stored.
	if testing.Short() {
		t.Skip("12,000 publications")
	}
	s := newServer(t, Options{})
	c := connect(t, s, packet.V311, "alice", true)
	var b []byte
	for i := range 12_000 {
		var err error
		b, err = packet.Append(b, &packet.Publish{Topic: fmt.Sprintf("junk/%d", i), Retain: true, Payload: []byte("0123456789")}, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
	}
	c.raw(b)
	c.ping()
	if st := s.Stats(); st.Retained != 10_000 || st.RetainedRefused != 2_000 {
		t.Fatalf("client: %d retained, %d refused; want 10,000 and 2,000", st.Retained, st.RetainedRefused)
	}
	topic := "vehicles/v1/devices/new_sensor/status"
	if err := s.Publish(context.Background(), Message{Topic: topic, Payload: []byte("online"), Retain: true, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.retained.Get(topic); !ok {
		t.Error("the gateway's new retained topic was refused")
	}
}

// TestLocalSubscriberBytes: the messages waiting for an in-process
// subscriber that does not keep up stay within localMaxBytes, counted as
// a session's are: user properties and content type as much as payload.
func TestLocalSubscriberBytes(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 100<<10)
	tests := []struct {
		name string
		m    Message
	}{
		{"payload", Message{Topic: "gw/in", Payload: big}},
		{"user properties", Message{Topic: "gw/in", Payload: []byte("1"),
			User: []packet.UserProperty{{Key: "k", Value: string(big)}}}},
		{"content type", Message{Topic: "gw/in", Payload: []byte("1"), ContentType: string(big)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{})
			release := make(chan struct{})
			cancel, err := s.Subscribe("gw/in", 0, func(Message) { <-release })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { close(release); cancel() })
			const n = 100 // 10 MiB, in far fewer than the 1024 messages of the channel
			for range n {
				if err := s.Publish(context.Background(), tt.m); err != nil {
					t.Fatal(err)
				}
			}
			// Each counts over 100 KiB: at most 40 wait, one is with the
			// blocked callback.
			const want = n - localMaxBytes/(100<<10) - 1
			if got := s.Stats().Dropped; got < want {
				t.Errorf("Dropped = %d, want at least %d", got, want)
			}
		})
	}
}
