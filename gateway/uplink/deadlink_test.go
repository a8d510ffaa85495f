package uplink

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// blackhole forwards loopback connections to a broker; its first
// connection, after some bytes each way, stops forwarding without a reset:
// it keeps reading both sides and drops what it reads, as a cellular link
// that lost its radio does. Later connections are forwarded whole.
type blackhole struct {
	tcpProxy
	after int64 // bytes forwarded client → broker before the hole

	holed time.Time // when the hole opened; guarded by mu
}

func newBlackhole(t *testing.T, upstream string, after int64) *blackhole {
	t.Helper()
	p := &blackhole{after: after}
	p.start(t, upstream, p.serve)
	return p
}

func (p *blackhole) serve(i uint64, c, s net.Conn) {
	if i > 0 {
		p.wg.Go(func() { io.Copy(s, c); s.(*net.TCPConn).CloseWrite() })
		p.wg.Go(func() { io.Copy(c, s); c.(*net.TCPConn).CloseWrite() })
		return
	}
	hole := make(chan struct{})
	p.wg.Go(func() {
		io.CopyN(s, c, p.after)
		p.mu.Lock()
		p.holed = time.Now()
		p.mu.Unlock()
		close(hole)
		io.Copy(io.Discard, c)
	})
	p.wg.Go(func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			select {
			case <-hole:
			default:
				c.Write(buf[:n])
			}
		}
	})
}

// TestDeadLink drains through a link that goes dead mid-drain without a
// reset: the uplink finds it dead by its keepalive (1 s here: within
// 1.5 × 1 s + the keeper's 250 ms tick), connects again and delivers
// everything.
func TestDeadLink(t *testing.T) {
	b := mqtttest.StartMosquitto(t, brokerConf...)
	const n = 3000
	hole := newBlackhole(t, b.Addr, 64<<10)
	col := newCollector(t, b.Addr, "col")
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 4, n, 200, 1)
	u, stop := startUplink(t, Options{URL: "mqtt://" + hole.addr(), ClientID: "gw", LocalPrefix: localPrefix,
		TopicPrefix: remotePrefix, Queue: q, StateDir: t.TempDir(), Keepalive: time.Second,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, Log: testLog(t)})
	defer stop()
	col.waitFor(t, n, 60*time.Second)
	waitDrained(t, q, 10*time.Second)
	col.check(t, n, 20)
	hole.mu.Lock()
	holed, conns := hole.holed, len(hole.conns)/2
	hole.mu.Unlock()
	if holed.IsZero() || conns < 2 {
		t.Fatalf("the link never went dead (%d connections)", conns)
	}
	t.Logf("hole opened at %v; drained over %d connections; %d duplicates; status %+v",
		holed.Format(time.RFC3339Nano), conns, col.dups, u.Status().LastError)
}
