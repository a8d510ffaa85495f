package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

var versions = []packet.Version{packet.V311, packet.V5}

func TestConnack(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			c := pipe(t, s, v)
			ack := c.connack(&packet.Connect{ClientID: "a", CleanStart: true, KeepAlive: 30})
			// [MQTT-3.2.2-2]: clean start → session present 0.
			if ack.Code != packet.Success || ack.SessionPresent {
				t.Fatalf("CONNACK = %+v, want success without session", ack)
			}
			if v == packet.V5 && ack.Props.MaximumPacketSize == 0 {
				t.Errorf("5.0 CONNACK lacks Maximum Packet Size")
			}
			c.ping()
		})
	}
}

func TestConnectClientID(t *testing.T) {
	tests := []struct {
		name     string
		v        packet.Version
		clean    bool
		want     packet.ReasonCode
		assigned bool
	}{
		// [MQTT-3.1.3-8] (3.1.1): empty id needs clean session.
		{"3.1.1 empty persistent", packet.V311, false, packet.ClientIDNotValid, false},
		// [MQTT-3.1.3-6] (3.1.1): the server assigns one.
		{"3.1.1 empty clean", packet.V311, true, packet.Success, false},
		// [MQTT-3.1.3-6] [MQTT-3.2.2-16]: assigned and returned in 5.0.
		{"5.0 empty", packet.V5, false, packet.Success, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{})
			c := pipe(t, s, tt.v)
			ack := c.connack(&packet.Connect{CleanStart: tt.clean})
			if ack.Code != tt.want {
				t.Fatalf("CONNACK code %v, want %v", ack.Code, tt.want)
			}
			if got := ack.Props.AssignedClientID != ""; got != tt.assigned {
				t.Errorf("assigned id %q, want assigned %v", ack.Props.AssignedClientID, tt.assigned)
			}
			if tt.want != packet.Success {
				c.closed() // [MQTT-3.2.2-7]
			}
		})
	}
}

func TestFirstPacketMustBeConnect(t *testing.T) {
	// [MQTT-3.1.0-1]
	s := newServer(t, Options{})
	c := pipe(t, s, packet.V311)
	c.send(&packet.Pingreq{})
	if got := c.closed(); len(got) != 0 {
		t.Errorf("got %v before close, want nothing", got)
	}
}

func TestSecondConnect(t *testing.T) {
	// [MQTT-3.1.0-2]
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			c := connect(t, s, v, "a", true)
			c.send(&packet.Connect{ClientID: "a", Version: v})
			got := c.closed()
			if v == packet.V5 {
				if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.ProtocolError {
					t.Errorf("got %v, want DISCONNECT 0x82", got)
				}
			}
		})
	}
}

func TestUnsupportedProtocolVersion(t *testing.T) {
	// [MQTT-3.1.2-2]: CONNACK 0x01 and close.
	s := newServer(t, Options{})
	c := pipe(t, s, packet.V311)
	c.raw([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 9, 2, 0, 60, 0, 0})
	p := c.recv()
	if ack, ok := p.(*packet.Connack); !ok || ack.Code != packet.UnsupportedProtocolVersion {
		t.Fatalf("got %+v, want CONNACK 0x01", p)
	}
	c.closed()
}

func TestTakeover(t *testing.T) {
	// [MQTT-3.1.4-3]: the existing connection is closed, 5.0 with 0x8E.
	s := newServer(t, Options{})
	old := pipe(t, s, packet.V5)
	old.connack(&packet.Connect{ClientID: "dup", KeepAlive: 60, Props: packet.Properties{SessionExpiry: 600}})
	nc := pipe(t, s, packet.V5)
	ack := nc.connack(&packet.Connect{ClientID: "dup", KeepAlive: 60})
	if !ack.SessionPresent {
		t.Errorf("session present = false, want true [MQTT-3.2.2-3]")
	}
	got := old.closed()
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.SessionTakenOver {
		t.Errorf("old connection got %v, want DISCONNECT 0x8E", got)
	}
	nc.ping()
}

func TestQoSFlows(t *testing.T) {
	// Delivered QoS is min(published, granted) [MQTT-3.8.4-8]; the
	// acknowledgement flows of [MQTT-4.3].
	for _, v := range versions {
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			for subQoS := byte(0); subQoS <= 2; subQoS++ {
				t.Run(fmt.Sprintf("%v/pub%d/sub%d", v, pubQoS, subQoS), func(t *testing.T) {
					s := newServer(t, Options{})
					sc := connect(t, s, v, "sub", true)
					if sa := sc.subscribe(1, sub("a/+", subQoS)); sa.Codes[0] != packet.ReasonCode(subQoS) {
						t.Fatalf("SUBACK %v, want %d", sa.Codes, subQoS)
					}
					pc := connect(t, s, v, "pub", true)
					id := uint16(0)
					if pubQoS > 0 {
						id = 7
					}
					pc.publish(&packet.Publish{Topic: "a/b", Payload: []byte("hi"), QoS: pubQoS, PacketID: id})
					got := sc.recvPub()
					want := min(pubQoS, subQoS)
					if got.QoS != want || got.Topic != "a/b" || string(got.Payload) != "hi" || got.Retain {
						t.Fatalf("got %+v, want QoS %d on a/b", got, want)
					}
					sc.ack(got)
					sc.ping()
				})
			}
		}
	}
}

func TestQoS2ExactlyOnce(t *testing.T) {
	// A PUBLISH resent before PUBREL is not delivered again [MQTT-4.3.3-9]
	// (3.1.1 [MQTT-4.3.3-2] method B: deliver once).
	s := newServer(t, Options{})
	sc := connect(t, s, packet.V311, "sub", true)
	sc.subscribe(1, sub("x", 2))
	pc := connect(t, s, packet.V311, "pub", true)
	p := &packet.Publish{Topic: "x", Payload: []byte("1"), QoS: 2, PacketID: 5}
	pc.send(p)
	if r := pc.recv().(*packet.Pubrec); r.PacketID != 5 {
		t.Fatalf("PUBREC %d", r.PacketID)
	}
	p.Dup = true
	pc.send(p)
	if r := pc.recv().(*packet.Pubrec); r.PacketID != 5 {
		t.Fatalf("PUBREC %d", r.PacketID)
	}
	pc.send(&packet.Pubrel{PacketID: 5})
	pc.recv()
	got := sc.recvPub()
	sc.ack(got)
	sc.quiet(100 * time.Millisecond)
}

func TestRetained(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			pc := connect(t, s, v, "pub", true)
			pc.publish(&packet.Publish{Topic: "r/1", Payload: []byte("old"), Retain: true, QoS: 1, PacketID: 1})
			// Replaced [MQTT-3.3.1-5].
			pc.publish(&packet.Publish{Topic: "r/1", Payload: []byte("new"), Retain: true, QoS: 1, PacketID: 2})
			pc.publish(&packet.Publish{Topic: "r/2", Payload: []byte("two"), Retain: true})
			// Cleared by an empty payload [MQTT-3.3.1-6] [MQTT-3.3.1-7].
			pc.publish(&packet.Publish{Topic: "r/2", Retain: true})

			sc := connect(t, s, v, "sub", true)
			sc.subscribe(1, sub("r/#", 1))
			got := sc.recvPub()
			// Sent on subscribe with RETAIN set [MQTT-3.3.1-8].
			if got.Topic != "r/1" || string(got.Payload) != "new" || !got.Retain || got.QoS != 1 {
				t.Fatalf("got %+v, want retained r/1 new", got)
			}
			sc.ack(got)
			sc.quiet(50 * time.Millisecond)
			// A live retained publish goes to existing subscribers with
			// RETAIN 0 [MQTT-3.3.1-9] (3.1.1).
			pc.publish(&packet.Publish{Topic: "r/3", Payload: []byte("live"), Retain: true})
			if got := sc.recvPub(); got.Retain {
				t.Errorf("live retained message delivered with RETAIN 1")
			}
		})
	}
}

func TestWill(t *testing.T) {
	tests := []struct {
		name  string
		v     packet.Version
		end   func(c *tclient)
		wants bool
	}{
		// [MQTT-3.1.2-8]: published when the connection is lost.
		{"lost 3.1.1", packet.V311, func(c *tclient) { c.nc.Close() }, true},
		{"lost 5.0", packet.V5, func(c *tclient) { c.nc.Close() }, true},
		// [MQTT-3.1.2-8]: a protocol error counts as abnormal.
		{"protocol error", packet.V311, func(c *tclient) { c.raw([]byte{0xf0, 0}) }, true},
		// [MQTT-3.1.2-10]: not after DISCONNECT.
		{"disconnect 3.1.1", packet.V311, func(c *tclient) { c.disconnect() }, false},
		{"disconnect 5.0", packet.V5, func(c *tclient) { c.disconnect() }, false},
		// 5.0: only reason 0x00 discards the will [MQTT-3.14.4-3].
		{"disconnect with error", packet.V5, func(c *tclient) {
			c.send(&packet.Disconnect{Code: packet.UnspecifiedError})
			c.closed()
		}, true},
		// 5.0: DISCONNECT 0x04 asks for the will [MQTT-3.14.2.1].
		{"disconnect with will", packet.V5, func(c *tclient) {
			c.send(&packet.Disconnect{Code: packet.DisconnectWithWill})
			c.closed()
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{})
			sc := connect(t, s, packet.V311, "watch", true)
			sc.subscribe(1, sub("will/#", 1))
			wc := pipe(t, s, tt.v)
			ack := wc.connack(&packet.Connect{ClientID: "w", CleanStart: true, KeepAlive: 60,
				Will: &packet.Will{Topic: "will/w", Payload: []byte("gone"), QoS: 1}})
			if ack.Code != packet.Success {
				t.Fatal(ack.Code)
			}
			tt.end(wc)
			if !tt.wants {
				sc.quiet(100 * time.Millisecond)
				return
			}
			got := sc.recvPub()
			if got.Topic != "will/w" || string(got.Payload) != "gone" {
				t.Errorf("got %+v, want the will", got)
			}
		})
	}
}

func TestDollarTopics(t *testing.T) {
	s := newServer(t, Options{})
	sc := connect(t, s, packet.V5, "sub", true)
	sc.subscribe(1, sub("#", 0), sub("+/x", 0))
	// Clients cannot publish to $SYS (5.0: 0x87); other $-topics follow
	// the ACL, here none (acl_test.go).
	pc := connect(t, s, packet.V5, "pub", true)
	if code := pc.publish(&packet.Publish{Topic: "$SYS/x", QoS: 1, PacketID: 1}); code != packet.NotAuthorized {
		t.Errorf("PUBACK code %v, want not authorized", code)
	}
	if code := pc.publish(&packet.Publish{Topic: "$foo/x", QoS: 1, PacketID: 2}); code != packet.NoMatchingSubscribers {
		t.Errorf("PUBACK code %v, want no matching subscribers (not matched by # [MQTT-4.7.2-1])", code)
	}
	// Server-side $-topics are not matched by leading wildcards
	// [MQTT-4.7.2-1].
	s.Publish(context.Background(), Message{Topic: "$SYS/x", Payload: []byte("1")})
	s.Publish(context.Background(), Message{Topic: "ok/x", Payload: []byte("2")})
	got := sc.recvPub()
	if got.Topic != "ok/x" {
		t.Errorf("got %q first, want ok/x", got.Topic)
	}
	sc2 := connect(t, s, packet.V5, "sys", true)
	sc2.subscribe(1, sub("$SYS/#", 0))
	s.Publish(context.Background(), Message{Topic: "$SYS/y", Payload: []byte("3")})
	if got := sc2.recvPub(); got.Topic != "$SYS/y" {
		t.Errorf("got %q, want $SYS/y", got.Topic)
	}
}

func TestUnsubscribe(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			c := connect(t, s, v, "a", true)
			c.subscribe(1, sub("u/+", 0))
			c.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"u/+", "none"}})
			ua := c.recv().(*packet.Unsuback)
			if ua.PacketID != 2 {
				t.Fatalf("UNSUBACK id %d", ua.PacketID)
			}
			if v == packet.V5 && (len(ua.Codes) != 2 || ua.Codes[0] != packet.Success || ua.Codes[1] != packet.NoSubscriptionExisted) {
				t.Errorf("UNSUBACK codes %v", ua.Codes)
			}
			s.Publish(context.Background(), Message{Topic: "u/1"})
			c.quiet(50 * time.Millisecond)
		})
	}
}

func TestOverlappingSubscriptions(t *testing.T) {
	// One copy at the highest QoS [MQTT-3.3.4-2] with every matching
	// subscription identifier [MQTT-3.3.4-3].
	s := newServer(t, Options{})
	c := connect(t, s, packet.V5, "a", true)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{sub("o/#", 0)},
		Props: packet.Properties{SubscriptionIDs: []uint32{11}}})
	c.recv()
	c.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{sub("o/+", 2)},
		Props: packet.Properties{SubscriptionIDs: []uint32{22}}})
	c.recv()
	s.Publish(context.Background(), Message{Topic: "o/x", QoS: 2})
	got := c.recvPub()
	if got.QoS != 2 || len(got.Props.SubscriptionIDs) != 2 {
		t.Fatalf("got QoS %d ids %v, want QoS 2 with ids 11 and 22", got.QoS, got.Props.SubscriptionIDs)
	}
	c.ack(got)
	c.quiet(50 * time.Millisecond)
}

func TestNoLocalAndRetainAsPublished(t *testing.T) {
	s := newServer(t, Options{})
	c := connect(t, s, packet.V5, "a", true)
	c.subscribe(1, packet.Subscription{Filter: "n/l", NoLocal: true},
		packet.Subscription{Filter: "n/r", RetainAsPublished: true})
	// [MQTT-3.8.3-3]: not sent back to the publisher.
	c.publish(&packet.Publish{Topic: "n/l", Payload: []byte("x")})
	c.quiet(50 * time.Millisecond)
	// [MQTT-3.3.1-12]: retain flag kept.
	c.send(&packet.Publish{Topic: "n/r", Payload: []byte("x"), Retain: true})
	if got := c.recvPub(); !got.Retain {
		t.Errorf("retain as published: RETAIN 0")
	}
}

func TestRetainHandling(t *testing.T) {
	// [MQTT-3.3.1-9..11]
	s := newServer(t, Options{})
	s.Publish(context.Background(), Message{Topic: "h", Payload: []byte("r"), Retain: true})
	c := connect(t, s, packet.V5, "a", true)
	c.subscribe(1, packet.Subscription{Filter: "h", RetainHandling: 2})
	c.quiet(50 * time.Millisecond)
	c.subscribe(2, packet.Subscription{Filter: "h", RetainHandling: 1})
	c.quiet(50 * time.Millisecond) // existed already
	c.subscribe(3, packet.Subscription{Filter: "+", RetainHandling: 1})
	if got := c.recvPub(); got.Topic != "h" {
		t.Errorf("got %q", got.Topic)
	}
}

func TestPersistentSession(t *testing.T) {
	// Subscriptions and QoS 1/2 messages of an offline session are kept
	// [MQTT-3.1.2-5] (3.1.1 [MQTT-3.1.2-4]); in-flight ones are resent
	// with DUP [MQTT-4.4.0-1], in order [MQTT-4.6.0-1].
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			cp := &packet.Connect{ClientID: "car", KeepAlive: 60}
			if v == packet.V5 {
				cp.Props.SessionExpiry = 3600
			}
			c := pipe(t, s, v)
			c.connack(cp)
			c.subscribe(1, sub("t/#", 1))
			s.Publish(context.Background(), Message{Topic: "t/1", Payload: []byte("1"), QoS: 1})
			first := c.recvPub() // not acknowledged
			c.nc.Close()
			for i := 2; i <= 4; i++ {
				s.Publish(context.Background(), Message{Topic: "t/1", Payload: []byte{byte('0' + i)}, QoS: 1})
			}
			c = pipe(t, s, v)
			cp.Version = 0
			ack := c.connack(cp)
			if !ack.SessionPresent {
				t.Fatalf("session present = false")
			}
			got := c.recvPub()
			if !got.Dup || got.PacketID != first.PacketID || string(got.Payload) != "1" {
				t.Fatalf("resent %+v, want DUP of %d", got, first.PacketID)
			}
			c.ack(got)
			for i := 2; i <= 4; i++ {
				got := c.recvPub()
				if string(got.Payload) != string(rune('0'+i)) {
					t.Fatalf("got %q, want %d", got.Payload, i)
				}
				c.ack(got)
			}
		})
	}
}

// TestMaxRetained: once the store holds MaxRetained messages, a retained
// message on a new topic is delivered but not kept; replacing, clearing
// and the broker's own $SYS topics still work.
func TestMaxRetained(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{MaxRetained: 2, SysInterval: -1})
			live := connect(t, s, v, "live", true)
			live.subscribe(1, sub("r/#", 0))
			pc := connect(t, s, v, "pub", true)
			for _, m := range []struct{ topic, payload string }{
				{"r/1", "one"}, {"r/2", "two"}, {"r/3", "three"}, // r/3 over the limit
				{"r/1", "ONE"}, // replaced
				{"r/2", ""},    // cleared: room for r/4
				{"r/4", "four"},
			} {
				pc.publish(&packet.Publish{Topic: m.topic, Payload: []byte(m.payload), Retain: true, QoS: 1, PacketID: 1})
				if got := live.recvPub(); got.Topic != m.topic {
					t.Fatalf("live subscriber got %q, want %q", got.Topic, m.topic)
				}
			}
			s.Publish(context.Background(), Message{Topic: "$SYS/x", Payload: []byte("sys"), Retain: true})

			sc := connect(t, s, v, "sub", true)
			sc.subscribe(1, sub("r/#", 0), sub("$SYS/x", 0))
			got := map[string]string{}
			for range 3 {
				p := sc.recvPub()
				got[p.Topic] = string(p.Payload)
			}
			sc.quiet(50 * time.Millisecond)
			want := map[string]string{"r/1": "ONE", "r/4": "four", "$SYS/x": "sys"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("retained (-want +got):\n%s", diff)
			}
			if st := s.Stats(); st.RetainedRefused != 1 || st.Retained != 3 {
				t.Errorf("refused %d, held %d; want 1, 3", st.RetainedRefused, st.Retained)
			}
		})
	}
}

// TestMaxSubscriptions: a session's filters beyond MaxSubscriptions are
// refused with 0x97 (0x80 at 3.1.1); subscribing again to a filter it
// has, and a new one after an unsubscribe, are granted.
func TestMaxSubscriptions(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{MaxSubscriptions: 2})
			c := connect(t, s, v, "c", true)
			refused := packet.QuotaExceeded
			if v != packet.V5 {
				refused = 0x80
			}
			check := func(sa *packet.Suback, want ...packet.ReasonCode) {
				t.Helper()
				if diff := cmp.Diff(want, sa.Codes); diff != "" {
					t.Errorf("SUBACK codes (-want +got):\n%s", diff)
				}
			}
			check(c.subscribe(1, sub("a", 1), sub("b", 0), sub("c", 1)), 1, 0, refused)
			check(c.subscribe(2, sub("a", 0), sub("d", 0)), 0, refused)
			c.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"b"}})
			c.recv()
			check(c.subscribe(4, sub("d", 1)), 1)
			// The refused filter gets nothing.
			s.Publish(context.Background(), Message{Topic: "c", Payload: []byte("x")})
			s.Publish(context.Background(), Message{Topic: "d", Payload: []byte("y")})
			if p := c.recvPub(); p.Topic != "d" {
				t.Errorf("got %q, want d", p.Topic)
			}
			if st := s.Stats(); st.SubscribeRefused != 2 {
				t.Errorf("refused %d, want 2", st.SubscribeRefused)
			}
		})
	}
}

// awayCar connects client "car" with a persistent 5.0 session subscribed
// to t/# at QoS 1, disconnects it and returns its CONNECT, to come back
// with.
func awayCar(t *testing.T, s *Server) *packet.Connect {
	t.Helper()
	cp := &packet.Connect{ClientID: "car", KeepAlive: 60, Props: packet.Properties{SessionExpiry: 3600}}
	c := pipe(t, s, packet.V5)
	c.connack(cp)
	c.subscribe(1, sub("t/#", 1))
	c.nc.Close()
	waitOffline(t, s, "car")
	return cp
}

// TestQueueQoS0: with QueueQoS0, QoS 0 messages for an offline persistent
// session are kept in order with the QoS 1 ones, across a restart of the
// broker; without it only the QoS 1 one is.
func TestQueueQoS0(t *testing.T) {
	ctx := context.Background()
	for _, queue := range []bool{false, true} {
		t.Run(fmt.Sprint("queue_qos0=", queue), func(t *testing.T) {
			dir := t.TempDir()
			s := newServer(t, Options{StateDir: dir, QueueQoS0: queue})
			cp := awayCar(t, s)
			for i, qos := range []byte{0, 1, 0} {
				s.Publish(ctx, Message{Topic: "t/x", Payload: []byte{byte('a' + i)}, QoS: qos})
			}
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			s = newServer(t, Options{StateDir: dir, QueueQoS0: queue})
			c := pipe(t, s, packet.V5)
			if ack := c.connack(cp); !ack.SessionPresent {
				t.Fatal("session not resumed")
			}
			want := "b"
			if queue {
				want = "abc"
			}
			var got []byte
			for range len(want) {
				p := c.recvPub()
				got = append(got, p.Payload...)
				if p.QoS > 0 {
					c.ack(p)
				}
			}
			c.quiet(50 * time.Millisecond)
			if string(got) != want {
				t.Errorf("delivered %q, want %q", got, want)
			}
		})
	}
}

// TestQueueQoS0Order: with QueueQoS0, a QoS 0 message published after a
// reconnect does not overtake the ones still queued behind a full window.
func TestQueueQoS0Order(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, Options{QueueQoS0: true, MaxInflight: 1})
	cp := awayCar(t, s)
	s.Publish(ctx, Message{Topic: "t/x", Payload: []byte("a"), QoS: 1})
	s.Publish(ctx, Message{Topic: "t/x", Payload: []byte("b")})
	c := pipe(t, s, packet.V5)
	c.connack(cp)
	first := c.recvPub() // a, filling the window of 1
	s.Publish(ctx, Message{Topic: "t/x", Payload: []byte("c")})
	c.ack(first)
	got := string(first.Payload)
	for range 2 {
		got += string(c.recvPub().Payload)
	}
	if got != "abc" {
		t.Errorf("delivered %q, want abc", got)
	}
}

func TestQueueBound(t *testing.T) {
	s := newServer(t, Options{MaxQueued: 2})
	c := pipe(t, s, packet.V311)
	c.connack(&packet.Connect{ClientID: "q"})
	c.subscribe(1, sub("q", 1))
	c.disconnect()
	for i := 0; i < 5; i++ {
		s.Publish(context.Background(), Message{Topic: "q", QoS: 1, Payload: []byte{byte(i)}})
	}
	if d := s.Stats().Dropped; d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
}

func TestReceiveMaximumToClient(t *testing.T) {
	// At most the client's Receive Maximum unacknowledged [MQTT-4.9.0-2].
	s := newServer(t, Options{})
	c := pipe(t, s, packet.V5)
	c.connack(&packet.Connect{ClientID: "r", CleanStart: true, Props: packet.Properties{ReceiveMaximum: 2}})
	c.subscribe(1, sub("r", 1))
	for i := 0; i < 4; i++ {
		s.Publish(context.Background(), Message{Topic: "r", QoS: 1, Payload: []byte{byte(i)}})
	}
	a, b := c.recvPub(), c.recvPub()
	c.quiet(50 * time.Millisecond)
	c.ack(a)
	c.ack(b)
	if p := c.recvPub(); p.Payload[0] != 2 {
		t.Errorf("got %v", p.Payload)
	}
	c.recvPub()
}

func TestTopicAliasFromClient(t *testing.T) {
	s := newServer(t, Options{})
	sc := connect(t, s, packet.V5, "sub", true)
	sc.subscribe(1, sub("al/#", 0))
	c := connect(t, s, packet.V5, "pub", true)
	c.send(&packet.Publish{Topic: "al/x", Payload: []byte("1"), Props: packet.Properties{TopicAlias: 1}})
	c.send(&packet.Publish{Payload: []byte("2"), Props: packet.Properties{TopicAlias: 1}})
	for _, want := range []string{"1", "2"} {
		if got := sc.recvPub(); got.Topic != "al/x" || string(got.Payload) != want {
			t.Fatalf("got %+v", got)
		}
	}
	// Out of range: DISCONNECT 0x94 [MQTT-3.3.2-9].
	c.send(&packet.Publish{Topic: "al/y", Props: packet.Properties{TopicAlias: 1000}})
	got := c.closed()
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.TopicAliasInvalid {
		t.Errorf("got %v, want DISCONNECT 0x94", got)
	}
}

func TestTopicAliasToClient(t *testing.T) {
	// The server assigns aliases to a client that accepts them.
	s := newServer(t, Options{})
	c := pipe(t, s, packet.V5)
	c.connack(&packet.Connect{ClientID: "a", CleanStart: true, Props: packet.Properties{TopicAliasMaximum: 4}})
	c.subscribe(1, sub("ta", 0))
	s.Publish(context.Background(), Message{Topic: "ta", Payload: []byte("1")})
	s.Publish(context.Background(), Message{Topic: "ta", Payload: []byte("2")})
	p1, p2 := c.recvPub(), c.recvPub()
	if p1.Topic != "ta" || p1.Props.TopicAlias == 0 {
		t.Errorf("first %+v, want topic and alias", p1)
	}
	if p2.Topic != "" || p2.Props.TopicAlias != p1.Props.TopicAlias {
		t.Errorf("second %+v, want alias only", p2)
	}
}

func TestMaxPacketSize(t *testing.T) {
	s := newServer(t, Options{MaxPacketSize: 100})
	c := connect(t, s, packet.V5, "a", true)
	c.send(&packet.Publish{Topic: "big", Payload: make([]byte, 200)})
	got := c.closed()
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.PacketTooLarge {
		t.Errorf("got %v, want DISCONNECT 0x95", got)
	}
	// Toward a client: larger packets are discarded [MQTT-3.1.2-25].
	s2 := newServer(t, Options{})
	c2 := pipe(t, s2, packet.V5)
	c2.connack(&packet.Connect{ClientID: "b", CleanStart: true, Props: packet.Properties{MaximumPacketSize: 64}})
	c2.subscribe(1, sub("m", 1))
	s2.Publish(context.Background(), Message{Topic: "m", QoS: 1, Payload: make([]byte, 100)})
	s2.Publish(context.Background(), Message{Topic: "m", QoS: 1, Payload: []byte("small")})
	if got := c2.recvPub(); string(got.Payload) != "small" {
		t.Errorf("got %d bytes, want the small one", len(got.Payload))
	}
}

func TestMalformedDoesNotDisturbOthers(t *testing.T) {
	s := newServer(t, Options{})
	good := connect(t, s, packet.V311, "good", true)
	good.subscribe(1, sub("g", 0))
	for _, raw := range [][]byte{
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, // remaining length of 5 bytes
		{0x82, 0x03, 0x00, 0x01, 0x00},       // SUBSCRIBE without topic filter
		{0x36, 0x05, 0x00, 0x01, 'a', 0, 1},  // QoS 3
		{0x62, 0x02, 0x00},                   // truncated PUBREL in a longer stream
		{0x00, 0x00},                         // reserved type 0
		{0x30, 0x04, 0x00, 0x02, 'a', '#'},   // wildcard in topic name
		{0x30, 0x03, 0x00, 0x01, 0xc0},       // invalid UTF-8
	} {
		bad := connect(t, s, packet.V311, "bad", true)
		bad.raw(raw)
		bad.nc.Close()
	}
	s.Publish(context.Background(), Message{Topic: "g", Payload: []byte("still here")})
	if got := good.recvPub(); !bytes.Equal(got.Payload, []byte("still here")) {
		t.Errorf("got %q", got.Payload)
	}
}

func TestInProcess(t *testing.T) {
	s := newServer(t, Options{})
	s.Publish(context.Background(), Message{Topic: "ip/r", Payload: []byte("ret"), Retain: true})
	got := make(chan Message, 10)
	cancel, err := s.Subscribe("ip/#", 1, func(m Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Topic != "ip/r" || !m.Retain {
		t.Errorf("got %+v, want the retained message", m)
	}
	c := connect(t, s, packet.V5, "c", true)
	c.publish(&packet.Publish{Topic: "ip/x", Payload: []byte("p"), QoS: 1, PacketID: 1,
		Props: packet.Properties{ResponseTopic: "resp", CorrelationData: []byte{1}}})
	m := <-got
	if m.Topic != "ip/x" || m.QoS != 1 || m.ResponseTopic != "resp" || len(m.CorrelationData) != 1 || m.Retain {
		t.Errorf("got %+v", m)
	}
	// A retained message published live keeps its RETAIN flag (Retain As
	// Published), so that the gateway can refuse a retained command that
	// arrives while it is running.
	c.publish(&packet.Publish{Topic: "ip/live", Payload: []byte("l"), QoS: 1, PacketID: 3, Retain: true})
	if m := <-got; m.Topic != "ip/live" || !m.Retain {
		t.Errorf("got %+v, want RETAIN 1 as published", m)
	}
	cancel()
	c.publish(&packet.Publish{Topic: "ip/x", Payload: []byte("p"), QoS: 1, PacketID: 4})
	select {
	case m := <-got:
		t.Errorf("got %+v after cancel", m)
	default:
	}
}

func TestShutdown(t *testing.T) {
	s := newServer(t, Options{})
	c := connect(t, s, packet.V5, "a", true)
	errc := make(chan error)
	go func() { errc <- s.Shutdown(context.Background()) }()
	got := c.closed()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.ServerShuttingDown {
		t.Errorf("got %v, want DISCONNECT 0x8B", got)
	}
	if err := s.Publish(context.Background(), Message{Topic: "x"}); err != ErrServerClosed {
		t.Errorf("Publish after Shutdown = %v", err)
	}
}

func TestSharedSubscription(t *testing.T) {
	// [MQTT-4.8.2]: each message goes to one member of the group;
	// retained messages are not sent on a shared subscription.
	s := newServer(t, Options{})
	s.Publish(context.Background(), Message{Topic: "sh/x", Payload: []byte("r"), Retain: true})
	a := connect(t, s, packet.V5, "a", true)
	b := connect(t, s, packet.V5, "b", true)
	a.subscribe(1, sub("$share/g/sh/+", 1))
	b.subscribe(1, sub("$share/g/sh/+", 1))
	a.quiet(20 * time.Millisecond)
	for i := 0; i < 4; i++ {
		s.Publish(context.Background(), Message{Topic: "sh/x", QoS: 1, Payload: []byte{byte(i)}})
	}
	for _, c := range []*tclient{a, b} {
		for i := 0; i < 2; i++ {
			c.ack(c.recvPub())
		}
		c.quiet(20 * time.Millisecond)
	}
	// An invalid share name is refused [MQTT-4.8.2-1].
	if sa := a.subscribe(2, sub("$share/g+/x", 0)); sa.Codes[0] != packet.TopicFilterInvalid {
		t.Errorf("SUBACK %v, want 0x8F", sa.Codes)
	}
}

func TestReceiveMaximumFromClient(t *testing.T) {
	// More unacknowledged QoS 2 PUBLISHes than our Receive Maximum:
	// DISCONNECT 0x93 [MQTT-3.3.4-9].
	s := newServer(t, Options{ReceiveMaximum: 2})
	c := connect(t, s, packet.V5, "a", true)
	for id := uint16(1); id <= 3; id++ {
		c.send(&packet.Publish{Topic: "q", QoS: 2, PacketID: id})
	}
	got := c.closed()
	if n := len(got); n == 0 || got[n-1].(*packet.Disconnect).Code != packet.ReceiveMaximumExceeded {
		t.Errorf("got %v, want two PUBRECs and DISCONNECT 0x93", got)
	}
}

func TestMaxConnections(t *testing.T) {
	s := newServer(t, Options{MaxConnections: 1})
	connect(t, s, packet.V5, "a", true)
	c := pipe(t, s, packet.V5)
	if ack := c.connack(&packet.Connect{ClientID: "b", CleanStart: true}); ack.Code != packet.ServerBusy {
		t.Errorf("CONNACK %v, want server busy", ack.Code)
	}
}

func TestPayloadFormatInvalid(t *testing.T) {
	// [MQTT-3.3.2-4]: a payload announced as UTF-8 must be UTF-8.
	s := newServer(t, Options{})
	c := connect(t, s, packet.V5, "a", true)
	code := c.publish(&packet.Publish{Topic: "pf", QoS: 1, PacketID: 1, Payload: []byte{0xff},
		Props: packet.Properties{PayloadFormat: 1}})
	if code != packet.PayloadFormatInvalid {
		t.Errorf("PUBACK %v, want 0x99", code)
	}
}

func TestPropertiesForwarded(t *testing.T) {
	// [MQTT-3.3.2-15..20]: payload format, content type, response topic,
	// correlation data and user properties (in order) reach subscribers
	// unaltered.
	s := newServer(t, Options{})
	sc := connect(t, s, packet.V5, "sub", true)
	sc.subscribe(1, sub("pr", 1))
	pc := connect(t, s, packet.V5, "pub", true)
	user := []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}}
	pc.publish(&packet.Publish{Topic: "pr", QoS: 1, PacketID: 1, Payload: []byte("{}"), Props: packet.Properties{
		PayloadFormat: 1, ContentType: "application/json", ResponseTopic: "pr/resp",
		CorrelationData: []byte{9, 9}, User: user}})
	got := sc.recvPub()
	p := got.Props
	if p.PayloadFormat != 1 || p.ContentType != "application/json" || p.ResponseTopic != "pr/resp" ||
		!bytes.Equal(p.CorrelationData, []byte{9, 9}) || fmt.Sprint(p.User) != fmt.Sprint(user) {
		t.Errorf("properties %+v", p)
	}
	// A 3.1.1 subscriber gets the same message without properties.
	s3 := connect(t, s, packet.V311, "old", true)
	s3.subscribe(1, sub("pr", 0))
	pc.publish(&packet.Publish{Topic: "pr", Payload: []byte("x"), Props: packet.Properties{ContentType: "t"}})
	if got := s3.recvPub(); string(got.Payload) != "x" {
		t.Errorf("3.1.1 got %q", got.Payload)
	}
}

func TestSubscriptionIDToClientNotAllowed(t *testing.T) {
	// [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a
	// Subscription Identifier.
	s := newServer(t, Options{})
	c := connect(t, s, packet.V5, "a", true)
	c.raw([]byte{0x30, 0x06, 0x00, 0x01, 'x', 0x02, 0x0b, 0x01})
	got := c.closed()
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.ProtocolError {
		t.Errorf("got %v, want DISCONNECT 0x82", got)
	}
}

func TestSharedSubscriptionPrefersOnline(t *testing.T) {
	// A member whose client is offline does not take messages while
	// another member is connected [MQTT-4.8.2].
	s := newServer(t, Options{})
	off := pipe(t, s, packet.V5)
	off.connack(&packet.Connect{ClientID: "off", Props: packet.Properties{SessionExpiry: 600}})
	off.subscribe(1, sub("$share/g/so", 1))
	off.disconnect()
	on := connect(t, s, packet.V5, "on", true)
	on.subscribe(1, sub("$share/g/so", 1))
	for i := 0; i < 4; i++ {
		s.Publish(context.Background(), Message{Topic: "so", QoS: 1, Payload: []byte{byte(i)}})
	}
	for i := 0; i < 4; i++ {
		on.ack(on.recvPub())
	}
}

func TestServerKeepAlive(t *testing.T) {
	// 5.0: a keep alive above the maximum is lowered and announced as
	// Server Keep Alive [MQTT-3.2.2-21]; 3.1.1 cannot be told, and keeps
	// its own value.
	s := newServer(t, Options{MaxKeepAlive: time.Minute})
	c := pipe(t, s, packet.V5)
	ack := c.connack(&packet.Connect{ClientID: "a", CleanStart: true, KeepAlive: 3600})
	if ack.Code != packet.Success || !ack.Props.HasServerKeepAlive || ack.Props.ServerKeepAlive != 60 {
		t.Errorf("CONNACK %+v, want Server Keep Alive 60", ack)
	}
	c3 := pipe(t, s, packet.V311)
	if ack := c3.connack(&packet.Connect{ClientID: "b", CleanStart: true, KeepAlive: 3600}); ack.Code != packet.Success {
		t.Errorf("3.1.1 CONNACK %v, want success", ack.Code)
	}
}

func TestReceiveMaximumOnRedelivery(t *testing.T) {
	// Re-sent messages respect the new connection's Receive Maximum
	// [MQTT-3.3.4-9] and keep their identifiers [MQTT-4.4.0-1].
	s := newServer(t, Options{})
	cp := &packet.Connect{ClientID: "r", Props: packet.Properties{SessionExpiry: 600}}
	c := pipe(t, s, packet.V5)
	c.connack(cp)
	c.subscribe(1, sub("rr", 1))
	ids := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		s.Publish(context.Background(), Message{Topic: "rr", QoS: 1, Payload: []byte{byte(i)}})
		ids[c.recvPub().PacketID] = true
	}
	c.nc.Close()
	c = pipe(t, s, packet.V5)
	cp.Version, cp.Props.ReceiveMaximum = 0, 2
	c.connack(cp)
	a, b := c.recvPub(), c.recvPub()
	c.quiet(50 * time.Millisecond)
	c.ack(a)
	p3 := c.recvPub()
	c.ack(b)
	p4 := c.recvPub()
	for i, p := range []*packet.Publish{a, b, p3, p4} {
		if !p.Dup || !ids[p.PacketID] || p.Payload[0] != byte(i) {
			t.Errorf("re-send %d: %+v", i, p)
		}
	}
}

func TestDisconnectSessionExpiryZero(t *testing.T) {
	// [MQTT-3.14.2.2.2]: Session Expiry 0 on DISCONNECT ends the session.
	s := newServer(t, Options{})
	cp := &packet.Connect{ClientID: "z", Props: packet.Properties{SessionExpiry: 600}}
	c := pipe(t, s, packet.V5)
	c.connack(cp)
	c.send(&packet.Disconnect{Props: packet.Properties{HasSessionExpiry: true}})
	c.closed()
	c = pipe(t, s, packet.V5)
	cp.Version = 0
	if ack := c.connack(cp); ack.SessionPresent {
		t.Error("session present after DISCONNECT with Session Expiry 0")
	}
}

func TestReconnectRightAfterDisconnect(t *testing.T) {
	// [MQTT-3.1.2-23]: a session with expiry 0 ends with the DISCONNECT,
	// even when the next CONNECT arrives before the close is seen.
	for _, v := range versions {
		s := newServer(t, Options{})
		c := connect(t, s, v, "x", true)
		c.send(&packet.Disconnect{})
		c2 := pipe(t, s, v)
		if ack := c2.connack(&packet.Connect{ClientID: "x"}); ack.SessionPresent || (v != packet.V5 && ack.Code != 0) {
			t.Errorf("%v: CONNACK %+v, want no session", v, ack)
		}
	}
}
