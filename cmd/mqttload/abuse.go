package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// The abuse mode repeats the resource attacks of issue 13 against a broker
// (the gateway's, started by scripts/abuse.sh) and reports, for each, the
// broker's peak resident memory and how long a real account (ops) takes to
// log in meanwhile:
//
//	mqttload abuse -addr 127.0.0.1:1883 -health 127.0.0.1:9883 -pid 1234 \
//	    -user ops -password secret -attacker alice -attacker-password pw
//
// Attacks (-attacks, in order):
//
//	4   file descriptors: -conns raw sockets to the MQTT port and as many
//	    idle HTTP keep-alives to the health port
//	5   -silent sockets that never send CONNECT, reopened as the broker
//	    closes them
//	6   -sessions offline persistent sessions, then -msgs QoS 1 messages
//	    of -size bytes for them
//	7   -retained retained messages of -big bytes on distinct topics, and a
//	    subscriber that never reads fed QoS 1 messages of -big bytes
//	10  -guessers clients sending wrong passwords as fast as they can
//
// Each attack lasts at most -d; everything it opened is closed before the
// next one. Output: one line of key=value pairs per attack on stdout.
type abuseConfig struct {
	addr, health     string
	pid              int
	user, password   string
	attacker, attPwd string
	d                time.Duration
	probeEvery       time.Duration
	conns, silent    int
	sessions, msgs   int
	size, big        int
	retained         int
	guessers         int
}

func runAbuse(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttload abuse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c abuseConfig
	fs.StringVar(&c.addr, "addr", "127.0.0.1:1883", "broker `host:port`")
	fs.StringVar(&c.health, "health", "", "health endpoint `host:port` (attack 4)")
	fs.IntVar(&c.pid, "pid", 0, "broker process `id`, for its resident memory")
	fs.StringVar(&c.user, "user", "ops", "the real account whose login is timed")
	fs.StringVar(&c.password, "password", "", "its password")
	fs.StringVar(&c.attacker, "attacker", "alice", "the hostile client's account (attacks 6, 7, 10)")
	fs.StringVar(&c.attPwd, "attacker-password", "", "its password")
	fs.DurationVar(&c.d, "d", 10*time.Second, "length of each attack")
	fs.DurationVar(&c.probeEvery, "probe", 250*time.Millisecond, "time between two logins of -user")
	fs.IntVar(&c.conns, "conns", 4200, "attack 4: sockets to each port")
	fs.IntVar(&c.silent, "silent", 1050, "attack 5: silent sockets")
	fs.IntVar(&c.sessions, "sessions", 300, "attack 6: offline sessions")
	fs.IntVar(&c.msgs, "msgs", 100, "attack 6: messages")
	fs.IntVar(&c.size, "size", 10_000, "attack 6: payload bytes")
	fs.IntVar(&c.retained, "retained", 300, "attack 7: retained topics")
	fs.IntVar(&c.big, "big", 500_000, "attack 7: payload bytes")
	fs.IntVar(&c.guessers, "guessers", 8, "attack 10: concurrent guessers")
	attacks := fs.String("attacks", "4,5,6,7,10", "attacks to run, in order")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	run := map[string]func(context.Context, *abuseConfig, *attackStats){
		"4": attackFDs, "5": attackSilent, "6": attackSessions, "7": attackRetained, "10": attackGuess,
	}
	failed := false
	for _, a := range strings.Split(*attacks, ",") {
		fn := run[strings.TrimSpace(a)]
		if fn == nil {
			fmt.Fprintf(stderr, "mqttload abuse: unknown attack %q\n", a)
			return 2
		}
		r := c.attack(fn)
		fmt.Fprintf(stdout, "abuse row=%s %s\n", a, r.line())
		fmt.Fprintf(stderr, "row %s: %s\n", a, r.summary())
		if r.okLogins == 0 {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// attackStats are what an attack reports of itself.
type attackStats struct {
	note atomic.Value // string
	n    atomic.Int64 // attack-specific count (sockets held, guesses…)
}

type attackResult struct {
	peakRSS, hwm     int64
	logins, okLogins int
	median, worst    time.Duration
	health           map[int]int // /healthz status → count
	n                int64
	note             string
	lastErr          string
	brokerDead       bool
	elapsed          time.Duration
	loginsAfter      int
	loginsAfterOK    int
	medianAfter      time.Duration
	healthAfter      int           // /healthz status after the attack
	healthAfterIn    time.Duration // since the attack's end
}

func (r *attackResult) line() string {
	var hs []string
	for code, n := range r.health {
		hs = append(hs, fmt.Sprintf("%d:%d", code, n))
	}
	slices.Sort(hs)
	return fmt.Sprintf("peak_rss_bytes=%d vm_hwm_bytes=%d logins=%d logins_ok=%d login_p50_ms=%.1f login_max_ms=%.1f healthz=%s count=%d note=%s after_ok=%d/%d after_p50_ms=%.1f healthz_after=%d healthz_after_s=%.1f",
		r.peakRSS, r.hwm, r.logins, r.okLogins, ms(r.median), ms(r.worst), quote(strings.Join(hs, ",")), r.n, quote(r.note),
		r.loginsAfterOK, r.loginsAfter, ms(r.medianAfter), r.healthAfter, r.healthAfterIn.Seconds())
}

func (r *attackResult) summary() string {
	s := fmt.Sprintf("peak RSS %.1f MB; ops logged in %d of %d times, p50 %.1f ms, max %.1f ms; %s (%d)",
		float64(r.peakRSS)/1e6, r.okLogins, r.logins, ms(r.median), ms(r.worst), r.note, r.n)
	if len(r.health) > 0 {
		s += fmt.Sprintf("; /healthz %v", r.health)
	}
	if r.lastErr != "" {
		s += "; last login error: " + r.lastErr
	}
	s += fmt.Sprintf("; after: %d of %d logins", r.loginsAfterOK, r.loginsAfter)
	if r.healthAfter != 0 {
		s += fmt.Sprintf(", /healthz %d within %.1f s", r.healthAfter, r.healthAfterIn.Seconds())
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// attack runs fn for c.d while timing logins of the real account and
// sampling the broker's memory, then lets the broker settle and times a
// few logins more.
func (c *abuseConfig) attack(fn func(context.Context, *abuseConfig, *attackStats)) *attackResult {
	ctx, cancel := context.WithTimeout(context.Background(), c.d)
	defer cancel()
	r := &attackResult{health: map[int]int{}}
	var st attackStats
	st.note.Store("")
	var wg sync.WaitGroup
	wg.Go(func() { fn(ctx, c, &st) })
	var mu sync.Mutex
	var lat []time.Duration
	wg.Go(func() { // memory
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := procRSS(c.pid); err == nil {
				mu.Lock()
				r.peakRSS = max(r.peakRSS, rss)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	// The first probe waits for the attack to be under way.
	t := time.NewTicker(c.probeEvery)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		d, err := c.login(ctx)
		if err != nil && ctx.Err() != nil {
			break // cut short by the attack's end: not a failure
		}
		r.logins++
		if err == nil {
			r.okLogins++
			lat = append(lat, d)
		} else {
			r.lastErr = err.Error()
		}
		if c.health != "" {
			r.health[healthStatus(c.health)]++
		}
	}
	t.Stop()
	wg.Wait()
	r.elapsed = time.Since(start)
	r.n = st.n.Load()
	r.note, _ = st.note.Load().(string)
	r.median, r.worst = percentiles(lat)
	r.hwm, _ = procHWM(c.pid)
	// After the attack: the broker serves again.
	var after []time.Duration
	for range 5 {
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := c.login(actx)
		acancel()
		r.loginsAfter++
		if err == nil {
			r.loginsAfterOK++
			after = append(after, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.medianAfter, _ = percentiles(after)
	if c.health != "" {
		// Idle keep-alives of attack 4 hold the health server's slots
		// until its idle timeout.
		deadline := time.Now().Add(time.Minute)
		for r.healthAfter = healthStatus(c.health); r.healthAfter == 0 && time.Now().Before(deadline); r.healthAfter = healthStatus(c.health) {
			time.Sleep(100 * time.Millisecond)
		}
		r.healthAfterIn = time.Since(start) - r.elapsed
	}
	return r
}

func percentiles(d []time.Duration) (p50, worst time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)-1]
}

// login connects as the real account and returns the time to its
// CONNACK 0.
func (c *abuseConfig) login(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	nc, ack, err := dialConnect(ctx, c.addr, &packet.Connect{ClientID: "abuse-" + c.user, CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: c.user, PasswordFlag: true, Password: []byte(c.password)}, 5*time.Second)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	nc.Write([]byte{0xe0, 0}) // DISCONNECT
	nc.Close()
	if ack.Code != packet.Success {
		return 0, fmt.Errorf("CONNACK %v", ack.Code)
	}
	return d, nil
}

// dialConnect dials addr, sends cp and reads the CONNACK.
func dialConnect(ctx context.Context, addr string, cp *packet.Connect, timeout time.Duration) (net.Conn, *packet.Connack, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	nc.SetDeadline(time.Now().Add(timeout))
	b, err := packet.Append(nil, cp, packet.V311)
	if err == nil {
		_, err = nc.Write(b)
	}
	var p packet.Packet
	r := bufio.NewReader(nc)
	if err == nil {
		p, err = packet.Read(r, packet.V311, 1<<20)
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		nc.Close()
		return nil, nil, fmt.Errorf("got %v, want CONNACK", p.Type())
	}
	nc.SetDeadline(time.Time{})
	return &bufConn{Conn: nc, r: r}, ack, nil
}

// bufConn reads through the reader that read the CONNACK.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func healthStatus(addr string) int {
	cl := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// closer holds what an attack opened, to close it at its end.
type closer struct {
	mu sync.Mutex
	cs []io.Closer
}

func (c *closer) add(x io.Closer) {
	c.mu.Lock()
	c.cs = append(c.cs, x)
	c.mu.Unlock()
}

func (c *closer) closeAll() {
	c.mu.Lock()
	for _, x := range c.cs {
		x.Close()
	}
	c.cs = nil
	c.mu.Unlock()
}

// attackFDs opens c.conns sockets to the MQTT port and as many idle
// keep-alives to the health port, and holds them.
func attackFDs(ctx context.Context, c *abuseConfig, st *attackStats) {
	var held closer
	defer held.closeAll()
	var failed atomic.Int64
	var wg sync.WaitGroup
	open := func(addr string, hello []byte) {
		for i := 0; i < c.conns && ctx.Err() == nil; i++ {
			d := net.Dialer{Timeout: time.Second}
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				failed.Add(1)
				continue
			}
			held.add(nc)
			st.n.Add(1)
			if hello != nil {
				nc.Write(hello)
			}
		}
	}
	wg.Go(func() { open(c.addr, nil) })
	if c.health != "" {
		wg.Go(func() { open(c.health, []byte("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")) })
	}
	wg.Wait()
	st.note.Store(fmt.Sprintf("sockets opened (%d failed)", failed.Load()))
	<-ctx.Done()
}

// attackSilent keeps c.silent sockets open that never send CONNECT,
// reopening those the broker closes.
func attackSilent(ctx context.Context, c *abuseConfig, st *attackStats) {
	var held closer
	defer held.closeAll()
	var wg sync.WaitGroup
	var closedByBroker atomic.Int64
	for range c.silent {
		wg.Go(func() {
			for ctx.Err() == nil {
				d := net.Dialer{Timeout: time.Second}
				nc, err := d.DialContext(ctx, "tcp", c.addr)
				if err != nil {
					continue
				}
				held.add(nc)
				st.n.Add(1)
				// Read returns once the broker closes it, or at the end.
				io.Copy(io.Discard, nc)
				if ctx.Err() == nil {
					closedByBroker.Add(1)
				}
			}
		})
	}
	<-ctx.Done()
	held.closeAll()
	wg.Wait()
	st.note.Store(fmt.Sprintf("silent sockets opened, %d closed by the broker", closedByBroker.Load()))
}

// attackSessions makes c.sessions offline persistent sessions of the
// attacker subscribed at QoS 1, then publishes c.msgs messages of c.size
// bytes for them.
func attackSessions(ctx context.Context, c *abuseConfig, st *attackStats) {
	refused := 0
	for i := 0; i < c.sessions && ctx.Err() == nil; i++ {
		cp := c.attackerConnect(fmt.Sprintf("abuse-away-%d", i), false)
		nc, ack, err := dialConnect(ctx, c.addr, cp, 5*time.Second)
		if err != nil {
			continue
		}
		if ack.Code != packet.Success {
			refused++
			nc.Close()
			continue
		}
		b, _ := packet.Append(nil, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "abuse/sessions/#", QoS: 1}}}, packet.V311)
		nc.Write(b)
		packet.Read(nc.(*bufConn).r, packet.V311, 1<<20) // SUBACK
		nc.Close()
	}
	payload := bytes.Repeat([]byte{'s'}, c.size)
	sent := c.publishQoS1(ctx, "abuse-sessions-pub", "abuse/sessions/x", payload, c.msgs, false)
	st.n.Store(int64(sent))
	st.note.Store(fmt.Sprintf("messages published to %d sessions (%d refused)", c.sessions-refused, refused))
	<-ctx.Done()
	// Clean the sessions up: a clean start ends each.
	for i := 0; i < c.sessions; i++ {
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if nc, _, err := dialConnect(actx, c.addr, c.attackerConnect(fmt.Sprintf("abuse-away-%d", i), true), 5*time.Second); err == nil {
			nc.Write([]byte{0xe0, 0})
			nc.Close()
		}
		cancel()
	}
}

// attackRetained publishes c.retained retained messages of c.big bytes,
// then feeds a subscriber that never reads with QoS 1 messages of c.big
// bytes.
func attackRetained(ctx context.Context, c *abuseConfig, st *attackStats) {
	payload := bytes.Repeat([]byte{'r'}, c.big)
	var stored int
	for i := 0; i < c.retained && ctx.Err() == nil; i++ {
		stored += c.publishQoS1(ctx, "abuse-retain", fmt.Sprintf("abuse/retained/%d", i), payload, 1, true)
	}
	sink, ack, err := dialConnect(ctx, c.addr, c.attackerConnect("abuse-sink", true), 5*time.Second)
	if err == nil && ack.Code == packet.Success {
		defer sink.Close()
		b, _ := packet.Append(nil, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "abuse/sink", QoS: 1}}}, packet.V311)
		sink.Write(b) // and never reads again
	}
	n := c.publishQoS1(ctx, "abuse-feed", "abuse/sink", payload, 1<<30, false)
	st.n.Store(int64(stored + n))
	st.note.Store(fmt.Sprintf("%d retained published, then messages to a subscriber that never reads", stored))
	// Clear the retained topics.
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < c.retained; i++ {
		c.publishQoS1(actx, "abuse-retain", fmt.Sprintf("abuse/retained/%d", i), nil, 1, true)
	}
}

// attackGuess runs c.guessers clients sending wrong passwords for the
// attacker's account as fast as they can.
func attackGuess(ctx context.Context, c *abuseConfig, st *attackStats) {
	var wg sync.WaitGroup
	for g := range c.guessers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				cp := &packet.Connect{ClientID: fmt.Sprintf("guess-%d", g), CleanStart: true, UsernameFlag: true,
					Username: c.attacker, PasswordFlag: true, Password: fmt.Appendf(nil, "wrong-%d-%d", g, i)}
				nc, _, err := dialConnect(ctx, c.addr, cp, 5*time.Second)
				if err == nil {
					nc.Close()
					st.n.Add(1) // answered
				}
			}
		})
	}
	wg.Wait()
	st.note.Store(fmt.Sprintf("wrong passwords answered, %d guessers", c.guessers))
}

func (c *abuseConfig) attackerConnect(id string, clean bool) *packet.Connect {
	return &packet.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60,
		UsernameFlag: true, Username: c.attacker, PasswordFlag: true, Password: []byte(c.attPwd)}
}

// publishQoS1 connects as the attacker and publishes n QoS 1 messages,
// each after the previous one's PUBACK; it returns those acknowledged.
func (c *abuseConfig) publishQoS1(ctx context.Context, id, topic string, payload []byte, n int, retain bool) int {
	nc, ack, err := dialConnect(ctx, c.addr, c.attackerConnect(id, true), 5*time.Second)
	if err != nil || ack.Code != packet.Success {
		return 0
	}
	defer nc.Close()
	r := nc.(*bufConn).r
	done := 0
	for i := 0; i < n && ctx.Err() == nil; i++ {
		b, err := packet.Append(nil, &packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i%65535 + 1), Payload: payload, Retain: retain}, packet.V311)
		if err != nil {
			return done
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(b); err != nil {
			return done
		}
		if _, err := packet.Read(r, packet.V311, 1<<20); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return done
		}
		done++
	}
	nc.Write([]byte{0xe0, 0})
	return done
}

// procHWM returns the peak resident set size of process pid in bytes
// [proc(5), /proc/pid/status VmHWM].
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseRSS(bytes.Replace(b, []byte("VmHWM:"), []byte("VmRSS:"), 1))
}

// freePort prints a free loopback port, for scripts.
func freePort(stdout io.Writer) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return 0
}
