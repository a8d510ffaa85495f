// The suite's harness: the two brokers under test, the case table runner and
// a packet-level client that fails the test on any unexpected packet.
//
// Cases that fail against edgegw's broker while the spec (and, where it
// conforms, Mosquitto) says otherwise are open broker defects. They stay in
// the suite but are skipped against edgegw unless EDGEGW_CONFORMANCE_PENDING=1;
// the open ones are listed by name in pendingEdgegw below, each with its
// clause. Cases where Mosquitto 2.0.11 itself deviates from the spec run
// against edgegw only (tcase.edgegwOnly says why). The details of each open
// defect (what was sent, what the spec requires, what the broker did) are
// kept with the broker's issue.

package conformance

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// pendingEdgegw lists the cases (name/version as in the test name) that
// fail against edgegw's broker: open defects, each with its clause. They run
// only with EDGEGW_CONFORMANCE_PENDING=1.
var pendingEdgegw = map[string]string{
	// Seen failing once each in full-suite runs against the broker at
	// c966ce9..b2f8d1e (read loop moved to a fresh goroutine after
	// CONNECT), passing in isolation: flaky. Not reproduced since: 65
	// full-suite -race runs with EDGEGW_CONFORMANCE_PENDING=1 and 3,200
	// isolated runs at 1a55ec9..c9e2133, and no path found in connect/run
	// that drops bytes buffered with the CONNECT. Kept here until the
	// cause is known.
	"pipelined-after-connect/3.1.1": "3.1.4 SUBSCRIBE sent right after CONNECT never answered (flaky)",
	"pipelined-after-connect/5.0":   "3.1.4 SUBSCRIBE sent right after CONNECT never answered (flaky)",
}

// TestMain raises the default parallelism (GOMAXPROCS) to 8 unless
// -test.parallel is given: the cases spend their time waiting on a broker's
// clock or on the network, not on a CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// waitTimeout bounds every wait for a packet or a close.
const waitTimeout = 9 * time.Second

// Protocol levels a case runs at.
var (
	both  = []packet.Version{packet.V311, packet.V5}
	only5 = []packet.Version{packet.V5}
	only3 = []packet.Version{packet.V311}
)

// target is one broker under test.
type target struct {
	name   string // "mosquitto" or "edgegw"
	addr   string
	strict bool // also check the SHOULDs edgegw promises (issue: broker)
}

// tcase is one conformance case, run at each of its protocol levels.
type tcase struct {
	name   string
	clause string // [MQTT-x.y.z-n] it checks
	vs     []packet.Version
	// edgegwOnly, when set, says how Mosquitto 2.0.11 deviates from the
	// spec here; the case then runs against edgegw only.
	edgegwOnly string
	// mosquittoConf and brokerOpts, when set, give the case a broker of
	// its own configured with them.
	mosquittoConf []string
	brokerOpts    func(*broker.Options)
	run           func(t *testing.T, tg *target, v packet.Version)
}

func (c tcase) dedicated() bool { return c.mosquittoConf != nil || c.brokerOpts != nil }

// runCases runs cases against both brokers, in parallel.
func runCases(t *testing.T, cases []tcase) {
	t.Parallel()
	for _, kind := range []string{"mosquitto", "edgegw"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			shared := startTarget(t, kind, nil, nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					if kind == "mosquitto" && tc.edgegwOnly != "" {
						t.Skipf("mosquitto deviates: %s", tc.edgegwOnly)
					}
					tg := shared
					if tc.dedicated() {
						tg = startTarget(t, kind, tc.mosquittoConf, tc.brokerOpts)
					}
					vs := tc.vs
					if vs == nil {
						vs = both
					}
					for _, v := range vs {
						t.Run(v.String(), func(t *testing.T) {
							if len(vs) > 1 {
								t.Parallel()
							}
							key := tc.name + "/" + v.String()
							if why, ok := pendingEdgegw[key]; ok && kind == "edgegw" && os.Getenv("EDGEGW_CONFORMANCE_PENDING") != "1" {
								t.Skipf("open broker defect %s (set EDGEGW_CONFORMANCE_PENDING=1 to run)", why)
							}
							t.Logf("%s %s", tc.clause, v)
							tc.run(t, tg, v)
						})
					}
				})
			}
		})
	}
}

func startTarget(t *testing.T, kind string, conf []string, opts func(*broker.Options)) *target {
	t.Helper()
	if kind == "mosquitto" {
		return &target{name: kind, addr: mqtttest.StartMosquitto(t, conf...).Addr}
	}
	yes := true
	o := broker.Options{AllowAnonymous: &yes}
	if opts != nil {
		opts(&o)
	}
	s, err := broker.New(o)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return &target{name: kind, addr: l.Addr().String(), strict: true}
}

var uniq atomic.Int64

// id returns a client identifier unique to the test, at most 23 bytes
// [MQTT-3.1.3-5].
func id(t testing.TB) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("c%08x-%d", h.Sum32(), uniq.Add(1))
}

// topicOf returns a topic prefix unique to the test.
func topicOf(t testing.TB) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("conf/%08x-%d", h.Sum32(), uniq.Add(1))
}

// client is a packet-level MQTT connection: every helper fails the test on
// an error or an unexpected packet. Not safe for concurrent use.
type client struct {
	t      testing.TB
	nc     net.Conn
	r      *bufio.Reader
	v      packet.Version
	max    int // largest packet accepted (the CONNECT's Maximum Packet Size), 0: any
	w      []byte
	nextID uint16
	queue  []packet.Packet // packets read while waiting for another one
}

func dial(t testing.TB, tg *target, v packet.Version) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", tg.addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", tg.addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc), v: v}
}

// conn dials and connects with a clean session, failing unless accepted.
func conn(t testing.TB, tg *target, v packet.Version) *client {
	t.Helper()
	c, _ := connectWith(t, tg, v, &packet.Connect{ClientID: id(t), CleanStart: true, KeepAlive: 60})
	return c
}

// connectWith dials, sends cp and fails unless the CONNACK is a success.
func connectWith(t testing.TB, tg *target, v packet.Version, cp *packet.Connect) (*client, *packet.Connack) {
	t.Helper()
	c := dial(t, tg, v)
	ack := c.connect(cp)
	if ack.Code != packet.Success {
		t.Fatalf("CONNACK code %v, want success", ack.Code)
	}
	return c, ack
}

func (c *client) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	if cp.Props.MaximumPacketSize != 0 {
		c.max = int(cp.Props.MaximumPacketSize)
	}
	c.send(cp)
	return expect[*packet.Connack](c)
}

func (c *client) send(p packet.Packet) {
	c.t.Helper()
	var err error
	c.w, err = packet.Append(c.w[:0], p, c.v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	c.raw(c.w)
}

func (c *client) raw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// read reads the next packet from the wire within d.
func (c *client) read(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return packet.Read(c.r, c.v, c.max)
}

// next returns the next packet, queued or read.
func (c *client) next() packet.Packet {
	c.t.Helper()
	if len(c.queue) > 0 {
		p := c.queue[0]
		c.queue = c.queue[1:]
		return p
	}
	p, err := c.read(waitTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// expect returns the next packet, failing unless it is a T.
func expect[T packet.Packet](c *client) T {
	c.t.Helper()
	p := c.next()
	q, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s %+v, want %T", p.Type(), p, zero)
	}
	return q
}

// await returns the next T, queueing the packets of other types read
// before it (a PUBLISH arriving while an acknowledgement is awaited).
func await[T packet.Packet](c *client) T {
	c.t.Helper()
	for i, p := range c.queue {
		if q, ok := p.(T); ok {
			c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
			return q
		}
	}
	for {
		p, err := c.read(waitTimeout)
		if err != nil {
			var zero T
			c.t.Fatalf("read while awaiting %T: %v", zero, err)
		}
		if q, ok := p.(T); ok {
			return q
		}
		c.queue = append(c.queue, p)
	}
}

// closed reads until the server closes the connection and returns what it
// sent before; it fails if the connection stays open.
func (c *client) closed() []packet.Packet {
	c.t.Helper()
	got := c.queue
	c.queue = nil
	deadline := time.Now().Add(waitTimeout)
	for {
		c.nc.SetReadDeadline(deadline)
		p, err := packet.Read(c.r, c.v, c.max)
		if err == nil {
			got = append(got, p)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v (got %v)", waitTimeout, types(got))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return got
		}
		c.t.Fatalf("read: %v (got %v)", err, types(got))
	}
}

// rawUntilClose reads raw bytes until the server closes the connection.
func (c *client) rawUntilClose() []byte {
	c.t.Helper()
	var got []byte
	buf := make([]byte, 256)
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		n, err := c.r.Read(buf)
		got = append(got, buf[:n]...)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v (got % x)", waitTimeout, got)
		}
		return got
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && (strings.Contains(oe.Err.Error(), "reset") || strings.Contains(oe.Err.Error(), "broken pipe"))
}

func types(ps []packet.Packet) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Type().String())
	}
	return s
}

// quiet checks that the server sends nothing for d: the way to let a
// broker's own clock run (keep alive, expiry, will delay) without sleeping.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	if len(c.queue) > 0 {
		c.t.Fatalf("unexpected %v", types(c.queue))
	}
	p, err := c.read(d)
	if err == nil {
		c.t.Fatalf("unexpected %s %+v", p.Type(), p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("read: %v", err)
	}
	// The timed-out read consumed nothing; the reader stays usable.
}

// subscribe subscribes to filters at qos and checks the SUBACK grants it.
func (c *client) subscribe(qos byte, filters ...string) {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: c.id()}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, packet.Subscription{Filter: f, QoS: qos})
	}
	ack := c.sub(s)
	for i, code := range ack.Codes {
		if code != packet.ReasonCode(qos) {
			c.t.Fatalf("SUBACK code[%d] %v, want %d", i, code, qos)
		}
	}
}

// sub sends s and returns its SUBACK, checking id and code count
// [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.9.3-1].
func (c *client) sub(s *packet.Subscribe) *packet.Suback {
	c.t.Helper()
	if s.PacketID == 0 {
		s.PacketID = c.id()
	}
	c.send(s)
	ack := await[*packet.Suback](c)
	if ack.PacketID != s.PacketID || len(ack.Codes) != len(s.Subscriptions) {
		c.t.Fatalf("SUBACK id %d with %d codes, want id %d with %d [MQTT-3.8.4-2] [MQTT-3.9.3-1]",
			ack.PacketID, len(ack.Codes), s.PacketID, len(s.Subscriptions))
	}
	return ack
}

// publish publishes p and completes its QoS flow as the sender.
func (c *client) publish(p *packet.Publish) {
	c.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.id()
	}
	c.send(p)
	switch p.QoS {
	case 1:
		a := await[*packet.Puback](c)
		if a.PacketID != p.PacketID || a.Code >= 0x80 {
			c.t.Fatalf("PUBACK id %d code %v, want id %d success", a.PacketID, a.Code, p.PacketID)
		}
	case 2:
		r := await[*packet.Pubrec](c)
		if r.PacketID != p.PacketID || r.Code >= 0x80 {
			c.t.Fatalf("PUBREC id %d code %v, want id %d success", r.PacketID, r.Code, p.PacketID)
		}
		c.send(&packet.Pubrel{PacketID: p.PacketID})
		cp := await[*packet.Pubcomp](c)
		if cp.PacketID != p.PacketID {
			c.t.Fatalf("PUBCOMP id %d, want %d", cp.PacketID, p.PacketID)
		}
	}
}

// pub publishes payload on topic at qos.
func (c *client) pub(topic, payload string, qos byte, retain bool) {
	c.t.Helper()
	c.publish(&packet.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain})
}

// recv returns the next PUBLISH and acknowledges it as the receiver.
func (c *client) recv() *packet.Publish {
	c.t.Helper()
	p := await[*packet.Publish](c)
	c.ack(p)
	return p
}

// ack completes the receiver's side of p's QoS flow.
func (c *client) ack(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		r := await[*packet.Pubrel](c)
		if r.PacketID != p.PacketID {
			c.t.Fatalf("PUBREL id %d, want %d", r.PacketID, p.PacketID)
		}
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// until receives and acknowledges publications until one with payload
// marker and returns those before it.
func (c *client) until(marker string) []*packet.Publish {
	c.t.Helper()
	var got []*packet.Publish
	for {
		p := c.recv()
		if string(p.Payload) == marker {
			return got
		}
		got = append(got, p)
	}
}

// ping is a PINGREQ/PINGRESP round trip [MQTT-3.12.4-1]; publications read
// meanwhile are queued.
func (c *client) ping() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	await[*packet.Pingresp](c)
}

// disconnect sends a normal DISCONNECT and closes the connection.
func (c *client) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	c.nc.Close()
}

// disconnectWait sends a normal DISCONNECT and waits for the server to
// close the connection: the server is done with it.
func (c *client) disconnectWait() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	if got := c.closed(); len(got) != 0 {
		c.t.Fatalf("got %v after DISCONNECT", types(got))
	}
}

// drop closes the connection without DISCONNECT: an abnormal loss.
func (c *client) drop() { c.nc.Close() }

func payloads(ps []*packet.Publish) []string {
	s := []string{}
	for _, p := range ps {
		s = append(s, string(p.Payload))
	}
	return s
}

// encode returns p encoded at v, failing the test on error.
func encode(t testing.TB, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := packet.Append(nil, p, v)
	if err != nil {
		t.Fatalf("encode %v: %v", p.Type(), err)
	}
	return b
}
