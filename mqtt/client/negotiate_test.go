package client

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestV311ShapedConnack: NATS answers a 5.0 CONNECT with a 3.1.1 CONNACK,
// return code 1 (20 02 00 01). The client decodes it as 3.1.1, falls
// back at once and says why.
func TestV311ShapedConnack(t *testing.T) {
	for _, raw := range [][]byte{{0x20, 2, 0, 1}, {0x20, 2, 0, 5}, {0x20, 2, 0, 0}} {
		t.Run(hexBytes(raw), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, d := pipeClient(t, Options{})
				sc, cp := d.accept(t, packet.V5, nil)
				if cp.Version != packet.V5 {
					t.Fatalf("first CONNECT %v, want 5.0", cp.Version)
				}
				sc.SendRaw(raw)
				d.accept(t, packet.V311, &packet.Connack{})
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				st := c.Status()
				if st.Version != packet.V311 || !strings.Contains(st.VersionReason, "3.1.1 CONNACK") {
					t.Errorf("version %v reason %q, want 3.1.1 for a 3.1.1 CONNACK", st.Version, st.VersionReason)
				}
			})
		})
	}
}

func hexBytes(b []byte) string {
	const digits = "0123456789abcdef"
	var s []byte
	for _, x := range b {
		s = append(s, digits[x>>4], digits[x&15])
	}
	return string(s)
}

// TestCloseBeforeConnackNotARefusal: one connection closed before CONNACK
// (a NAT, a load balancer) does not switch to 3.1.1: 5.0 is tried again
// and kept.
func TestCloseBeforeConnackNotARefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		sc, _ := d.accept(t, packet.V5, nil)
		sc.C.Close()
		sc, _ = d.accept(t, packet.V5, &packet.Connack{})
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.Version != packet.V5 || st.VersionReason != "" {
			t.Fatalf("version %v reason %q after one close, want 5.0", st.Version, st.VersionReason)
		}
		// The next connection starts at 5.0 too.
		sc.C.Close()
		d.accept(t, packet.V5, &packet.Connack{})
	})
}

// TestClosedTwiceThenV311: a server that closes every 5.0 connection and
// takes 3.1.1 (RabbitMQ 3.10) gets 3.1.1 in the same attempt, kept for
// reprobeAfter, then 5.0 is tried again.
func TestClosedTwiceThenV311(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No keep alive within the hour: the link stays up meanwhile.
		c, d := pipeClient(t, Options{ReconnectMin: time.Second, KeepAlive: 65535 * time.Second})
		for range 2 {
			sc, _ := d.accept(t, packet.V5, nil)
			sc.C.Close()
		}
		sc, _ := d.accept(t, packet.V311, &packet.Connack{})
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.Version != packet.V311 || !strings.Contains(st.VersionReason, "closed 5.0 CONNECT twice") {
			t.Fatalf("version %v reason %q", st.Version, st.VersionReason)
		}
		// Kept on the next connect.
		sc.C.Close()
		sc, _ = d.accept(t, packet.V311, &packet.Connack{})
		// After reprobeAfter, 5.0 again.
		time.Sleep(reprobeAfter)
		sc.C.Close()
		d.accept(t, packet.V5, &packet.Connack{})
		synctest.Wait()
		if st := c.Status(); st.Version != packet.V5 || st.VersionReason != "" {
			t.Fatalf("after the re-probe: version %v reason %q, want 5.0", st.Version, st.VersionReason)
		}
	})
}

// qosCase connects with ack, publishes one QoS 2 message and returns the
// PUBLISH as the server got it and the channel of the outcome.
func qosCase(t *testing.T, c *Client, d *pipeDialer, ack *packet.Connack, m Message) (*mqtttest.Conn, *packet.Publish, chan error) {
	t.Helper()
	sc, _ := d.accept(t, packet.V5, ack)
	if err := c.WaitConnected(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if err := c.PublishAsync(t.Context(), m, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	p, ok := sc.Recv().(*packet.Publish)
	if !ok {
		t.Fatal("want PUBLISH")
	}
	return sc, p, done
}

// TestMaximumQoS: a CONNACK's Maximum QoS 1 caps publishes [MQTT-3.2.2-11]
// (Mosquitto max_qos 1 disconnects with 0x9B otherwise), and Retain
// Available 0 clears the retain flag [MQTT-3.3.1-11].
func TestMaximumQoS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		ack := &packet.Connack{}
		ack.Props.HasMaximumQoS, ack.Props.MaximumQoS = true, 1
		ack.Props.HasRetainAvailable, ack.Props.RetainAvailable = true, 0
		sc, p, done := qosCase(t, c, d, ack, Message{Topic: "a/b", QoS: 2, Retain: true})
		if p.QoS != 1 || p.Retain {
			t.Fatalf("PUBLISH qos %d retain %v, want qos 1 without retain", p.QoS, p.Retain)
		}
		sc.Send(&packet.Puback{PacketID: p.PacketID})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st := c.Status()
		if st.MaxQoS != 1 || st.QoSReason != "server maximum_qos 1" || st.Downgraded != 1 {
			t.Errorf("status max qos %d reason %q downgraded %d", st.MaxQoS, st.QoSReason, st.Downgraded)
		}
		// A later connection without the limit lifts it.
		sc.C.Close()
		sc, p, _ = qosCase(t, c, d, &packet.Connack{SessionPresent: true}, Message{Topic: "a/b", QoS: 2})
		if p.QoS != 2 || c.MaxQoS() != 2 {
			t.Errorf("qos %d, client max %d without a limit, want 2", p.QoS, c.MaxQoS())
		}
	})
}

// TestSubscribeCappedToMaximumQoS: with Maximum QoS 1 in the CONNACK a
// QoS 2 subscription asks for QoS 1 (AWS IoT Core leaves a QoS 2
// SUBSCRIBE unanswered), and asks for 2 again from a server without the
// limit.
func TestSubscribeCappedToMaximumQoS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		ack := &packet.Connack{}
		ack.Props.HasMaximumQoS, ack.Props.MaximumQoS = true, 1
		sc, _ := d.accept(t, packet.V5, ack)
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Subscribe(t.Context(), Subscription{Filter: "car/cmd/#", QoS: 2})
			done <- err
		}()
		sp, ok := sc.Recv().(*packet.Subscribe)
		if !ok || len(sp.Subscriptions) != 1 || sp.Subscriptions[0].QoS != 1 {
			t.Fatalf("SUBSCRIBE %+v, want the filter at QoS 1", sp)
		}
		sc.Send(&packet.Suback{PacketID: sp.PacketID, Codes: []packet.ReasonCode{packet.GrantedQoS1}})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// A new session at a server without the limit: resubscribed at 2.
		sc.C.Close()
		sc, _ = d.accept(t, packet.V5, &packet.Connack{})
		sp, ok = sc.Recv().(*packet.Subscribe)
		if !ok || len(sp.Subscriptions) != 1 || sp.Subscriptions[0].QoS != 2 {
			t.Fatalf("resubscribe %+v, want the filter at QoS 2", sp)
		}
	})
}

// TestQoS2Refused covers the servers that take no QoS 2 and do not say
// so in CONNACK: each case downgrades to QoS 1 with one warning and the
// message is delivered at least once.
func TestQoS2Refused(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		// answer is the server's answer to the first QoS 2 PUBLISH; it
		// returns the connection that then gets the resent message.
		answer func(t *testing.T, d *pipeDialer, sc *mqtttest.Conn, p *packet.Publish) *mqtttest.Conn
	}{
		{"puback (RabbitMQ)", "server answered PUBACK to QoS 2",
			func(t *testing.T, d *pipeDialer, sc *mqtttest.Conn, p *packet.Publish) *mqtttest.Conn {
				sc.Send(&packet.Puback{PacketID: p.PacketID})
				return nil
			}},
		{"disconnect 0x9b", "server sent DISCONNECT 0x9b (QoS not supported)",
			func(t *testing.T, d *pipeDialer, sc *mqtttest.Conn, p *packet.Publish) *mqtttest.Conn {
				sc.Send(&packet.Disconnect{Code: packet.QoSNotSupported})
				sc.C.Close()
				sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
				return sc
			}},
		{"closed twice (NATS)", "server closed the connection after a QoS 2 PUBLISH, twice in a row",
			func(t *testing.T, d *pipeDialer, sc *mqtttest.Conn, p *packet.Publish) *mqtttest.Conn {
				sc.C.Close()
				// Once is a lost link, not an answer: QoS 2 again.
				sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
				if p2 := sc.Recv().(*packet.Publish); p2.QoS != 2 || p2.PacketID != p.PacketID {
					t.Fatalf("after one close: qos %d id %d, want QoS 2 id %d", p2.QoS, p2.PacketID, p.PacketID)
				}
				sc.C.Close()
				sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
				return sc
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs logCount
				c, d := pipeClient(t, Options{ReconnectMin: time.Second, Log: logs.logger()})
				sc, p, done := qosCase(t, c, d, &packet.Connack{}, Message{Topic: "a/b", QoS: 2})
				if p.QoS != 2 {
					t.Fatalf("first PUBLISH qos %d, want 2", p.QoS)
				}
				if sc2 := tt.answer(t, d, sc, p); sc2 != nil {
					sc = sc2
					r := sc.Recv().(*packet.Publish)
					if r.QoS != 1 || r.PacketID != p.PacketID {
						t.Fatalf("resent qos %d id %d, want QoS 1 id %d", r.QoS, r.PacketID, p.PacketID)
					}
					sc.Send(&packet.Puback{PacketID: r.PacketID})
				}
				if err := <-done; err != nil {
					t.Fatalf("outcome %v, want delivered", err)
				}
				// The next QoS 2 message goes out at QoS 1.
				done2 := make(chan error, 1)
				c.PublishAsync(t.Context(), Message{Topic: "a/b", QoS: 2}, func(err error) { done2 <- err })
				r := sc.Recv().(*packet.Publish)
				if r.QoS != 1 {
					t.Fatalf("next PUBLISH qos %d, want 1", r.QoS)
				}
				sc.Send(&packet.Puback{PacketID: r.PacketID})
				<-done2
				st := c.Status()
				if st.MaxQoS != 1 || st.QoSReason != tt.reason || st.Downgraded != 2 {
					t.Errorf("max qos %d reason %q downgraded %d, want 1 %q 2", st.MaxQoS, st.QoSReason, st.Downgraded, tt.reason)
				}
				if n := logs.count("server cannot do QoS 2"); n != 1 {
					t.Errorf("%d warnings, want one", n)
				}
			})
		})
	}
}

// TestQoS2FlakyLinkKeepsQoS2: a server that has answered a QoS 2 PUBLISH
// with PUBREC can do QoS 2; closes after later QoS 2 PUBLISHes are a
// flaky link's, and QoS 2 stays.
func TestQoS2FlakyLinkKeepsQoS2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs logCount
		c, d := pipeClient(t, Options{ReconnectMin: time.Second, Log: logs.logger()})
		sc, p, done := qosCase(t, c, d, &packet.Connack{}, Message{Topic: "a/b", QoS: 2})
		sc.Send(&packet.Pubrec{PacketID: p.PacketID})
		if rel, ok := sc.Recv().(*packet.Pubrel); !ok || rel.PacketID != p.PacketID {
			t.Fatalf("want PUBREL %d", p.PacketID)
		}
		sc.Send(&packet.Pubcomp{PacketID: p.PacketID})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Now the link cuts right after each QoS 2 PUBLISH, three times.
		done2 := make(chan error, 1)
		c.PublishAsync(t.Context(), Message{Topic: "a/b", QoS: 2}, func(err error) { done2 <- err })
		for i := range 3 {
			p2 := sc.Recv().(*packet.Publish)
			if p2.QoS != 2 {
				t.Fatalf("after %d cuts: qos %d, want 2", i, p2.QoS)
			}
			sc.C.Close()
			sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
		}
		p2 := sc.Recv().(*packet.Publish)
		if p2.QoS != 2 {
			t.Fatalf("after the cuts: qos %d, want 2", p2.QoS)
		}
		sc.Send(&packet.Pubrec{PacketID: p2.PacketID})
		sc.Recv()
		sc.Send(&packet.Pubcomp{PacketID: p2.PacketID})
		if err := <-done2; err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.MaxQoS != 2 || st.Downgraded != 0 {
			t.Errorf("max qos %d downgraded %d, want 2 and 0", st.MaxQoS, st.Downgraded)
		}
		if n := logs.count("server cannot do QoS 2"); n != 0 {
			t.Errorf("%d warnings, want none", n)
		}
	})
}

// TestSubackGrantsQoS1: a SUBACK granting 1 to a QoS 2 subscription
// lowers the publishing QoS too.
func TestSubackGrantsQoS1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		sc, _ := d.accept(t, packet.V5, &packet.Connack{})
		c.WaitConnected(t.Context())
		go func() {
			s := sc.Recv().(*packet.Subscribe)
			sc.Send(&packet.Suback{PacketID: s.PacketID, Codes: []packet.ReasonCode{packet.GrantedQoS1}})
		}()
		if _, err := c.Subscribe(t.Context(), Subscription{Filter: "cmd/#", QoS: 2}); err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.MaxQoS != 1 || st.QoSReason != "server granted QoS 1 to a QoS 2 subscription" {
			t.Fatalf("max qos %d reason %q", st.MaxQoS, st.QoSReason)
		}
	})
}

// TestBackoffGrowsOnShortConnections: a server that accepts and drops the
// connection at once does not reset the backoff: the gaps double up to
// ReconnectMax; a connection that lived StableAfter resets it.
func TestBackoffGrowsOnShortConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newPipeDialer()
		c, err := New(Options{Addr: "cloud:1883", ClientID: "car", Dialer: d.dial,
			ReconnectMin: time.Second, ReconnectMax: 16 * time.Second, StableAfter: time.Minute,
			KeepAlive: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.o.rand = func(n int64) int64 { return n - 1 } // no jitter: the upper bound
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		var gaps []time.Duration
		last := time.Now()
		for range 7 {
			sc, _ := d.accept(t, packet.V5, &packet.Connack{})
			gaps = append(gaps, time.Since(last).Round(time.Second))
			last = time.Now()
			sc.C.Close()
		}
		want := []time.Duration{0, 1, 2, 4, 8, 16, 16}
		for i := range want {
			want[i] *= time.Second
		}
		if !equalDurations(gaps, want) {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
		// A connection that lives a minute starts the backoff again.
		sc, _ := d.accept(t, packet.V5, &packet.Connack{})
		time.Sleep(time.Minute)
		last = time.Now()
		sc.C.Close()
		d.accept(t, packet.V5, &packet.Connack{})
		if gap := time.Since(last); gap != time.Second {
			t.Fatalf("gap after a stable connection %v, want 1s", gap)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFailover: with several addresses, a failed one is followed at once
// by the next; the dialer gets the host name at each attempt (no cached
// address); the pending message carries over to the other node.
func TestFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var dialled []string
		down := map[string]bool{"node1.cloud:1883": true}
		conns := make(chan net.Conn, 4)
		var sc *mqtttest.Conn
		dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			dialled = append(dialled, addr)
			if down[addr] {
				return nil, errors.New("connection refused")
			}
			a, b := net.Pipe()
			conns <- b
			return a, nil
		}
		c, err := New(Options{Addr: "node1.cloud:1883", Addrs: []string{"node2.cloud:1883", "node3.cloud:1883"},
			ClientID: "car", Dialer: dial, ReconnectMin: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		run := make(chan error)
		go func() { run <- c.Run(ctx) }()
		defer func() { cancel(); sc.C.Close(); <-run }()
		start := time.Now()
		sc = mqtttest.NewConn(t, <-conns, 0)
		sc.Recv()
		sc.Version = packet.V5
		sc.Send(&packet.Connack{})
		if el := time.Since(start); el != 0 {
			t.Errorf("node2 tried after %v, want at once", el)
		}
		if err := c.WaitConnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		if a := c.Status().Addr; a != "node2.cloud:1883" {
			t.Errorf("status addr %q", a)
		}
		done := make(chan error, 1)
		c.PublishAsync(t.Context(), Message{Topic: "a/b", QoS: 1}, func(err error) { done <- err })
		p := sc.Recv().(*packet.Publish)
		// node2 dies: after the backoff it is tried, then node3 at once.
		mu.Lock()
		down["node2.cloud:1883"] = true
		mu.Unlock()
		sc.C.Close()
		sc = mqtttest.NewConn(t, <-conns, packet.V5)
		sc.Recv()
		sc.Send(&packet.Connack{SessionPresent: true})
		r := sc.Recv().(*packet.Publish)
		if !r.Dup || r.PacketID != p.PacketID {
			t.Fatalf("resent on node3: %+v, want DUP id %d", r, p.PacketID)
		}
		sc.Send(&packet.Puback{PacketID: r.PacketID})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{"node1.cloud:1883", "node2.cloud:1883", "node2.cloud:1883", "node3.cloud:1883"}
		if strings.Join(dialled, " ") != strings.Join(want, " ") {
			t.Errorf("dialled %v, want %v", dialled, want)
		}
	})
}

// logCount counts log records by message.
type logCount struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCount) logger() *slog.Logger { return slog.New(l) }

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCount) WithGroup(string) slog.Handler      { return l }

func (l *logCount) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// FuzzConnack answers the CONNECT with arbitrary bytes: the client decides
// between 5.0 and 3.1.1 from the CONNACK's shape and reads its limits, and
// must not panic whatever arrives.
func FuzzConnack(f *testing.F) {
	f.Add([]byte{0x20, 2, 0, 1})
	f.Add([]byte{0x20, 2, 0, 0})
	f.Add([]byte{0x20, 2, 1, 9})
	f.Add([]byte{0x20, 3, 0, 0x84, 0})
	f.Add([]byte{0x20, 2})
	ack := &packet.Connack{}
	ack.Props.HasMaximumQoS, ack.Props.MaximumQoS = true, 0
	ack.Props.HasRetainAvailable = true
	ack.Props.MaximumPacketSize = 1
	b, err := packet.Append(nil, ack, packet.V5)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		conns := make(chan net.Conn, 4)
		up := make(chan struct{}, 4)
		c, err := New(Options{Addr: "x:1", ClientID: "c", ReconnectMin: time.Hour, ConnectTimeout: time.Second,
			OnConnect: func(context.Context, bool) { up <- struct{}{} },
			Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
				a, b := net.Pipe()
				conns <- b
				return a, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		go c.Connect(ctx)
		for i := 0; i < 2; i++ { // 5.0, then maybe 3.1.1 in the same attempt
			var s net.Conn
			for s == nil {
				select {
				case s = <-conns:
				case <-up:
					c.Close()
					return
				case <-time.After(time.Millisecond):
					if i > 0 && c.Status().LastError != nil {
						c.Close() // refused: waiting for the backoff
						return
					}
				}
			}
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := s.Read(buf); err != nil {
						return
					}
				}
			}()
			s.SetWriteDeadline(time.Now().Add(time.Second))
			s.Write(data)
			s.Close()
		}
		c.Close()
		c.Status()
	})
}

// TestWillRefused: a CONNACK refusing the will's retain (0x9A) or QoS
// (0x9B) is answered by a CONNECT whose will the server takes.
func TestWillRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d := pipeClient(t, Options{ReconnectMin: time.Second,
			Will: &Will{Topic: "gw/status", Payload: []byte("offline"), QoS: 2, Retain: true}})
		_, cp := d.accept(t, packet.V5, &packet.Connack{Code: packet.RetainNotSupported})
		if !cp.Will.Retain || cp.Will.QoS != 2 {
			t.Fatalf("first will %+v", cp.Will)
		}
		_, cp = d.accept(t, packet.V5, &packet.Connack{Code: packet.QoSNotSupported})
		if cp.Will.Retain || cp.Will.QoS != 2 {
			t.Fatalf("after 0x9a: will retain %v qos %d, want no retain", cp.Will.Retain, cp.Will.QoS)
		}
		_, cp = d.accept(t, packet.V5, &packet.Connack{})
		if cp.Will.Retain || cp.Will.QoS != 1 {
			t.Fatalf("after 0x9b: will retain %v qos %d, want qos 1", cp.Will.Retain, cp.Will.QoS)
		}
	})
}
