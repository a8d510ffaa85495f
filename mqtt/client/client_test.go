package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/google/go-cmp/cmp"
)

// pipeDialer hands the client one end of a net.Pipe per dial and the test
// the other on conns.
type pipeDialer struct {
	conns chan net.Conn
	fail  error
}

func newPipeDialer() *pipeDialer { return &pipeDialer{conns: make(chan net.Conn, 16)} }

func (d *pipeDialer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if d.fail != nil {
		return nil, d.fail
	}
	c, s := net.Pipe()
	d.conns <- s
	return c, nil
}

// accept takes the next dialled connection, reads CONNECT and answers ack.
func (d *pipeDialer) accept(t *testing.T, v packet.Version, ack *packet.Connack) (*mqtttest.Conn, *packet.Connect) {
	t.Helper()
	s := <-d.conns
	t.Cleanup(func() { s.Close() })
	sc := mqtttest.NewConn(t, s, 0)
	cp, ok := sc.Recv().(*packet.Connect)
	if !ok {
		t.Fatalf("first packet is not CONNECT")
	}
	sc.Version = cp.Version
	if ack != nil {
		if cp.Version != v {
			t.Fatalf("CONNECT version %v, want %v", cp.Version, v)
		}
		sc.Send(ack)
	}
	return sc, cp
}

// pipeClient builds a client on o (Addr, ClientID and Dialer filled in)
// that dials d, closes it when the test ends and starts connecting.
func pipeClient(t *testing.T, o Options) (*Client, *pipeDialer) {
	t.Helper()
	d := newPipeDialer()
	o.Addr, o.ClientID, o.Dialer = "cloud:1883", "car", d.dial
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go c.Connect(t.Context())
	return c, d
}

type inbox struct {
	mu   sync.Mutex
	msgs []Message
	ch   chan Message
}

func newInbox() *inbox { return &inbox{ch: make(chan Message, 1024)} }

func (b *inbox) add(m Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	b.ch <- m
}

func (b *inbox) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
		return Message{}
	}
}

func TestMosquittoPubSub(t *testing.T) {
	addr := mqtttest.Mosquitto(t)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("%v/qos%d", v, qos), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				in := newInbox()
				sub, err := Dial(ctx, Options{Addr: addr, Version: v, ClientID: fmt.Sprintf("sub-%v-%d", v, qos),
					CleanStart: true, OnMessage: in.add})
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				filter := fmt.Sprintf("t/%v/%d/#", v, qos)
				if _, err := sub.Subscribe(ctx, Subscription{Filter: filter, QoS: qos}); err != nil {
					t.Fatal(err)
				}
				pub, err := Dial(ctx, Options{Addr: addr, Version: v, ClientID: fmt.Sprintf("pub-%v-%d", v, qos),
					TopicAliases: true})
				if err != nil {
					t.Fatal(err)
				}
				defer pub.Close()
				const n = 200
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := range n {
					m := Message{Topic: fmt.Sprintf("t/%v/%d/x", v, qos), Payload: []byte(fmt.Sprint(i)), QoS: qos,
						User: []packet.UserProperty{{Key: "k", Value: "v"}}}
					wg.Add(1)
					if err := pub.PublishAsync(ctx, m, func(err error) { errs <- err; wg.Done() }); err != nil {
						t.Fatal(err)
					}
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				for i := range n {
					m := in.next(t)
					if string(m.Payload) != fmt.Sprint(i) {
						t.Fatalf("message %d payload %q: out of order", i, m.Payload)
					}
					if v == packet.V5 && !cmp.Equal(m.User, []packet.UserProperty{{Key: "k", Value: "v"}}) {
						t.Fatalf("user properties %v", m.User)
					}
				}
				if st := pub.Status(); qos > 0 && (st.Acked != n || st.Inflight != 0) {
					t.Errorf("status %+v, want %d acked, none in flight", st, n)
				}
			})
		}
	}
}

func TestFallbackTo311(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(sc *mqtttest.Conn)
		reason string
	}{
		{"connack 0x84", func(sc *mqtttest.Conn) { sc.Send(&packet.Connack{Code: packet.UnsupportedProtocolVersion}) },
			"server refused 5.0: CONNACK 0x84"},
		{"3.1.1 connack", func(sc *mqtttest.Conn) { sc.SendRaw([]byte{0x20, 2, 0, 1}) },
			"server answered 5.0 with a 3.1.1 CONNACK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, d := pipeClient(t, Options{})
				sc, cp := d.accept(t, packet.V5, nil)
				if cp.Version != packet.V5 {
					t.Fatalf("first CONNECT %v, want 5.0", cp.Version)
				}
				tt.refuse(sc)
				sc2, cp2 := d.accept(t, packet.V311, &packet.Connack{})
				_ = sc2
				if cp2.Version != packet.V311 {
					t.Fatalf("second CONNECT %v, want 3.1.1", cp2.Version)
				}
				if err := c.WaitConnected(t.Context()); err != nil {
					t.Fatal(err)
				}
				if st := c.Status(); st.Version != packet.V311 || st.VersionReason != tt.reason {
					t.Errorf("version %v reason %q, want 3.1.1 %q", st.Version, st.VersionReason, tt.reason)
				}
			})
		})
	}
}

// TestResendAfterReconnect checks DUP redelivery with a resumed session:
// an unacknowledged QoS 1 PUBLISH again with DUP, a QoS 2 message whose
// PUBREC arrived as PUBREL, and the window honouring Receive Maximum.
func TestResendAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{ReconnectMin: time.Second})
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 2
		sc, _ := d.accept(t, packet.V5, ack)
		results := make(chan string, 8)
		for i, qos := range []byte{1, 2, 1} {
			m := Message{Topic: "a/b", Payload: []byte{byte(i)}, QoS: qos}
			go c.PublishAsync(t.Context(), m, func(err error) { results <- fmt.Sprint(i, err) })
			synctest.Wait()
		}
		p1 := sc.Recv().(*packet.Publish)
		p2 := sc.Recv().(*packet.Publish)
		if p1.Payload[0] != 0 || p2.Payload[0] != 1 || p2.QoS != 2 {
			t.Fatalf("got %v %v", p1, p2)
		}
		// The third waits for a slot: receive maximum 2.
		synctest.Wait()
		if st := c.Status(); st.Inflight != 2 {
			t.Fatalf("in flight %d, want 2", st.Inflight)
		}
		sc.Send(&packet.Pubrec{PacketID: p2.PacketID})
		if rel := sc.Recv().(*packet.Pubrel); rel.PacketID != p2.PacketID {
			t.Fatalf("PUBREL %d, want %d", rel.PacketID, p2.PacketID)
		}
		sc.C.Close()

		sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
		r1 := sc.Recv().(*packet.Publish)
		if !r1.Dup || r1.PacketID != p1.PacketID {
			t.Fatalf("resent %+v, want DUP id %d", r1, p1.PacketID)
		}
		if rel := sc.Recv().(*packet.Pubrel); rel.PacketID != p2.PacketID {
			t.Fatalf("resent PUBREL %d, want %d", rel.PacketID, p2.PacketID)
		}
		sc.Send(&packet.Puback{PacketID: p1.PacketID})
		sc.Send(&packet.Pubcomp{PacketID: p2.PacketID})
		p3 := sc.Recv().(*packet.Publish)
		if p3.Dup || p3.Payload[0] != 2 {
			t.Fatalf("third %+v", p3)
		}
		sc.Send(&packet.Puback{PacketID: p3.PacketID})
		got := map[string]bool{}
		for range 3 {
			got[<-results] = true
		}
		want := map[string]bool{"0 <nil>": true, "1 <nil>": true, "2 <nil>": true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
	})
}

// TestTooLarge: a publish above the server's Maximum Packet Size fails
// with ErrTooLarge, at once when connected, and on the reconnect's resend
// when it was queued while disconnected, freeing its window slot; the
// messages around it go out.
func TestTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		results := make(chan string, 8)
		for i, size := range []int{10, 500, 10} {
			m := Message{Topic: "a/b", Payload: make([]byte, size), QoS: 1}
			m.Payload[0] = byte(i)
			if err := c.PublishAsync(t.Context(), m, func(err error) { results <- fmt.Sprint(i, " ", errors.Is(err, ErrTooLarge)) }); err != nil {
				t.Fatal(err)
			}
		}
		ack := &packet.Connack{}
		ack.Props.MaximumPacketSize = 100
		sc, _ := d.accept(t, packet.V5, ack)
		if got := <-results; got != "1 true" {
			t.Fatalf("result %q, want the large one failed", got)
		}
		for _, want := range []byte{0, 2} {
			p := sc.Recv().(*packet.Publish)
			if p.Payload[0] != want {
				t.Fatalf("got payload %d, want %d", p.Payload[0], want)
			}
			sc.Send(&packet.Puback{PacketID: p.PacketID})
		}
		for _, want := range []string{"0 false", "2 false"} {
			if got := <-results; got != want {
				t.Fatalf("result %q, want %q", got, want)
			}
		}
		err := c.PublishAsync(t.Context(), Message{Topic: "a/b", Payload: make([]byte, 500), QoS: 1}, nil)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("connected: %v, want ErrTooLarge", err)
		}
		synctest.Wait()
		if st := c.Status(); st.Inflight != 0 {
			t.Errorf("in flight %d, want 0", st.Inflight)
		}
	})
}

// TestGetCredentials: each attempt asks for the credentials; a failure
// fails the attempt, which is retried, and the password returned goes in
// CONNECT.
func TestGetCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		get := func() (Credentials, error) {
			if calls.Add(1) == 1 {
				return Credentials{}, errors.New("key file half-written")
			}
			return Credentials{Password: []byte("p2")}, nil
		}
		c, d := pipeClient(t, Options{Username: "gw", Password: []byte("p1"), GetCredentials: get, ReconnectMin: time.Second})
		_, cp := d.accept(t, packet.V5, &packet.Connack{})
		if string(cp.Password) != "p2" || calls.Load() != 2 {
			t.Errorf("CONNECT password %q after %d calls, want p2 after 2", cp.Password, calls.Load())
		}
		synctest.Wait()
		if !c.Status().Connected {
			t.Error("not connected")
		}
	})
}

// TestQoS2ExactlyOnce: a QoS 2 message resent with DUP after a reconnect,
// and after a restart of the client with its state file, is delivered once.
func TestQoS2ExactlyOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "rx")
	synctest.Test(t, func(t *testing.T) {
		in := newInbox()
		d := newPipeDialer()
		o := Options{Addr: "cloud:1883", ClientID: "car", Dialer: d.dial, StateFile: state, OnMessage: in.add}
		c, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		go c.Connect(t.Context())
		sc, _ := d.accept(t, packet.V5, &packet.Connack{})
		cmd := &packet.Publish{Topic: "cmd/heater", Payload: []byte("on"), QoS: 2, PacketID: 7}
		sc.Send(cmd)
		if rec := sc.Recv().(*packet.Pubrec); rec.PacketID != 7 {
			t.Fatalf("PUBREC %d", rec.PacketID)
		}
		sc.C.Close()
		sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
		dup := *cmd
		dup.Dup = true
		sc.Send(&dup)
		if rec := sc.Recv().(*packet.Pubrec); rec.PacketID != 7 {
			t.Fatalf("PUBREC %d", rec.PacketID)
		}
		c.Close()

		// A new process: the state file remembers id 7.
		c, err = New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Connect(t.Context())
		sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
		sc.Send(&dup)
		sc.Recv()
		sc.Send(&packet.Pubrel{PacketID: 7})
		if comp := sc.Recv().(*packet.Pubcomp); comp.PacketID != 7 {
			t.Fatalf("PUBCOMP %d", comp.PacketID)
		}
		// After PUBREL the id is free: a new message with it is delivered.
		cmd2 := *cmd
		cmd2.Payload = []byte("off")
		sc.Send(&cmd2)
		sc.Recv()
		synctest.Wait()
		in.mu.Lock()
		defer in.mu.Unlock()
		var got []string
		for _, m := range in.msgs {
			got = append(got, string(m.Payload))
		}
		if diff := cmp.Diff([]string{"on", "off"}, got); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
	})
}

// TestQoS2PublishBehindConnack: a QoS 2 PUBLISH the reader takes before
// the client has finished setting up a connection without a session is
// remembered, so its resend after a reconnect that resumes the session is
// not delivered again. The "connected" log line holds the set-up until
// the PUBLISH has been acknowledged.
func TestQoS2PublishBehindConnack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := make(chan struct{})
		log := slog.New(&holdHandler{msg: "connected", hold: hold})
		in := newInbox()
		_, d := pipeClient(t, Options{OnMessage: in.add, Log: log})
		cmd := &packet.Publish{Topic: "cmd/heater", Payload: []byte("on"), QoS: 2, PacketID: 7}
		sc, _ := d.accept(t, packet.V5, &packet.Connack{})
		sc.Send(cmd)
		if rec := sc.Recv().(*packet.Pubrec); rec.PacketID != 7 {
			t.Fatalf("PUBREC %d", rec.PacketID)
		}
		close(hold)
		synctest.Wait()
		sc.C.Close()
		sc, _ = d.accept(t, packet.V5, &packet.Connack{SessionPresent: true})
		dup := *cmd
		dup.Dup = true
		sc.Send(&dup)
		sc.Recv()
		synctest.Wait()
		if n := len(in.ch); n != 1 {
			t.Fatalf("delivered %d times, want once", n)
		}
	})
}

// holdHandler is a slog handler that blocks the first record with message
// msg until hold is closed, and drops every record.
type holdHandler struct {
	msg  string
	hold chan struct{}
	once sync.Once
}

func (h *holdHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *holdHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *holdHandler) WithGroup(string) slog.Handler            { return h }
func (h *holdHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { <-h.hold })
	}
	return nil
}

// TestReconnectNoGoroutineGrowth fails thousands of connection attempts
// and checks that goroutines do not pile up and attempts follow the
// backoff, one at a time.
func TestReconnectNoGoroutineGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var attempts []time.Time
		dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
			mu.Lock()
			attempts = append(attempts, time.Now())
			mu.Unlock()
			return nil, errors.New("network unreachable")
		}
		c, err := New(Options{Addr: "cloud:1883", ClientID: "car", Dialer: dial,
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 40 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		base := runtime.NumGoroutine()
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if n := runtime.NumGoroutine(); n > base {
			t.Errorf("goroutines %d after the attempts, %d before", n, base)
		}
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) < 3000 {
			t.Fatalf("%d attempts in 3 min, want ≥ 3000 at a 20-40 ms backoff", len(attempts))
		}
		for i := 1; i < len(attempts); i++ {
			gap := attempts[i].Sub(attempts[i-1])
			if gap < 5*time.Millisecond || gap > 40*time.Millisecond {
				t.Fatalf("attempt %d after %v, want within the backoff", i, gap)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	c, err := New(Options{Addr: "x:1", ClientID: "c", ReconnectMin: time.Second, ReconnectMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{{0, 500 * time.Millisecond, time.Second}, {1, time.Second, 2 * time.Second},
		{3, 4 * time.Second, 8 * time.Second}, {10, 30 * time.Second, time.Minute}, {1000, 30 * time.Second, time.Minute}} {
		for range 100 {
			if d := c.backoff(tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want %v..%v", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

// TestBackoffSpread: below ReconnectSpread a retry is drawn from the whole
// window, so that a fleet cut off at once comes back spread over it; above
// it the exponential backoff takes over.
func TestBackoffSpread(t *testing.T) {
	c, err := New(Options{Addr: "x:1", ClientID: "c", ReconnectMin: time.Second, ReconnectMax: time.Minute,
		ReconnectSpread: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{{0, 500 * time.Millisecond, 15 * time.Second}, {3, 500 * time.Millisecond, 15 * time.Second},
		{4, 8 * time.Second, 16 * time.Second}, {10, 30 * time.Second, time.Minute}} {
		// 1,000 clients' first retries: inside the window, and no second
		// of it takes more than 10 % of them.
		perSecond := map[time.Duration]int{}
		for range 1000 {
			d := c.backoff(tt.attempt)
			if d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want %v..%v", tt.attempt, d, tt.min, tt.max)
			}
			perSecond[d.Truncate(time.Second)]++
		}
		if tt.attempt == 0 {
			for s, n := range perSecond {
				if n > 100 {
					t.Errorf("backoff(0): %d of 1000 retries in second %v, want at most 100", n, s)
				}
			}
		}
	}
}

// TestKeepAlive: PINGREQ after the keep alive; no answer declares the link
// dead and the client reconnects.
func TestKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d := pipeClient(t, Options{KeepAlive: 10 * time.Second, PingTimeout: 5 * time.Second, ReconnectMin: time.Second})
		sc, cp := d.accept(t, packet.V5, &packet.Connack{})
		if cp.KeepAlive != 10 {
			t.Fatalf("keep alive %d", cp.KeepAlive)
		}
		start := time.Now()
		if _, ok := sc.Recv().(*packet.Pingreq); !ok {
			t.Fatal("want PINGREQ")
		}
		if el := time.Since(start); el < 7*time.Second || el > 10*time.Second {
			t.Errorf("PINGREQ after %v, want about 10s", el)
		}
		sc.Send(&packet.Pingresp{})
		if _, ok := sc.Recv().(*packet.Pingreq); !ok {
			t.Fatal("want second PINGREQ")
		}
		// No answer now: the client gives up on the link and dials again.
		lost := time.Now()
		go func() {
			for {
				if _, err := sc.TryRecv(); err != nil {
					return
				}
			}
		}()
		d.accept(t, packet.V5, &packet.Connack{})
		if el := time.Since(lost); el < 5*time.Second || el > 8*time.Second {
			t.Errorf("reconnected %v after the unanswered PINGREQ, want 5s timeout + ≤1s backoff", el)
		}
	})
}

func TestTopicAlias(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{TopicAliases: true})
		ack := &packet.Connack{}
		ack.Props.TopicAliasMaximum = 1
		sc, _ := d.accept(t, packet.V5, ack)
		c.WaitConnected(t.Context())
		for _, tp := range []string{"a/long/topic", "a/long/topic", "other"} {
			if err := c.PublishAsync(t.Context(), Message{Topic: tp, QoS: 0}, nil); err != nil {
				t.Fatal(err)
			}
		}
		type seen struct {
			Topic string
			Alias uint16
		}
		var got []seen
		for range 3 {
			p := sc.Recv().(*packet.Publish)
			got = append(got, seen{p.Topic, p.Props.TopicAlias})
		}
		want := []seen{{"a/long/topic", 1}, {"", 1}, {"other", 0}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("publishes (-want +got):\n%s", diff)
		}
	})
}

func TestIDPool(t *testing.T) {
	var p idPool
	seen := map[uint16]bool{}
	for range 65535 {
		id, ok := p.get()
		if !ok || id == 0 || seen[id] {
			t.Fatalf("get() = %d, %v", id, ok)
		}
		seen[id] = true
	}
	if _, ok := p.get(); ok {
		t.Fatal("66536th id handed out")
	}
	p.put(42)
	if id, _ := p.get(); id != 42 {
		t.Fatalf("get() = %d after put(42)", id)
	}

	// Identifiers taken by number are skipped by get.
	var q idPool
	if !q.take(2) || q.take(2) || q.take(0) {
		t.Fatal("take(2) twice succeeded, or take(0)")
	}
	for _, want := range []uint16{1, 3} {
		if id, _ := q.get(); id != want {
			t.Fatalf("get() = %d, want %d", id, want)
		}
	}
	q.put(1)
	q.take(1)
	if id, _ := q.get(); id != 4 {
		t.Fatalf("get() = %d after take of the freed 1, want 4", id)
	}
}

func TestRxStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rx")
	s, err := openRxState(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint16{1, 8, 65535} {
		s.add(id)
	}
	s.release(8)
	s.close()
	s, err = openRxState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for id, want := range map[uint16]bool{1: true, 8: false, 65535: true, 2: false} {
		if s.has(id) != want {
			t.Errorf("has(%d) = %v after reopen, want %v", id, !want, want)
		}
	}
}

// TestTryPublishFlowRefill: TryPublishFlow reports a full window without
// queueing, and a Done hook refilling the window from the reader has its
// PUBLISH written out with nothing else sent.
func TestTryPublishFlowRefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, d := pipeClient(t, Options{})
		ack := &packet.Connack{}
		ack.Props.ReceiveMaximum = 2
		sc, _ := d.accept(t, packet.V5, ack)
		synctest.Wait()
		msg := func(i byte) Message { return Message{Topic: "a/b", Payload: []byte{i}, QoS: 1} }
		refilled := make(chan bool, 1)
		first := Flow{Done: func(err error) {
			ok, err := c.TryPublishFlow(msg(2), Flow{})
			if err != nil {
				t.Error(err)
			}
			refilled <- ok
		}}
		for i, f := range []Flow{first, {}} {
			if ok, err := c.TryPublishFlow(msg(byte(i)), f); !ok || err != nil {
				t.Fatalf("publish %d: %v %v, want true", i, ok, err)
			}
		}
		if ok, err := c.TryPublishFlow(msg(9), Flow{}); ok || err != nil {
			t.Fatalf("publish into a full window: %v %v, want false", ok, err)
		}
		p0 := sc.Recv().(*packet.Publish)
		if p1 := sc.Recv().(*packet.Publish); p0.Payload[0] != 0 || p1.Payload[0] != 1 {
			t.Fatalf("got %v %v", p0.Payload, p1.Payload)
		}
		synctest.Wait() // the writer is idle
		sc.Send(&packet.Puback{PacketID: p0.PacketID})
		if !<-refilled {
			t.Fatal("refill from Done found the window full")
		}
		if p2 := sc.Recv().(*packet.Publish); p2.Payload[0] != 2 {
			t.Fatalf("refill: got %v, want 2", p2.Payload)
		}
		if st := c.Status(); st.Inflight != 2 || st.Sent != 3 {
			t.Fatalf("status %+v, want 2 in flight, 3 sent", st)
		}
	})
}
