package broker

import (
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Password guessing is slowed down in three ways (issue: login hardening):
//
//   - Every source address and every user name has a failure score: one
//     per failed password check, halved every failHalfLife. From
//     freeFailures on, the key admits one attempt per backoff (failBase
//     doubled per further failure, up to failMaxWait): an attempt is
//     scheduled after the ones already admitted, waits for its turn, and
//     is refused with "server busy" (0x89, 3.1.1: 3) when its turn is
//     more than failMaxWait away, so parallel connections do not multiply
//     the guessing rate. All unknown user names share one score, so the
//     wait tells nothing about which names exist. Loopback addresses are
//     no source key: every local client shares them, and one local
//     guesser would hold up every local login; the user key still counts.
//     A user's password that passed since the broker started passes at
//     once, before any wait (auth.go), so guessers at a user's name do
//     not lock its owner out.
//   - An unknown user name costs one password verification as a known one
//     does (against another user's hash), so the time of the answer does
//     not tell whether the name exists.
//   - At most checkSlots verifications run at once (bcrypt and argon2id
//     take tens of milliseconds of CPU each); attempts wait for a slot in
//     order, those from a source and for a user without recent failures
//     first, so guessers queue behind real logins instead of starving
//     them.
//
// Failures are logged once per failLogInterval, as counts.
const (
	freeFailures    = 5
	failBase        = 250 * time.Millisecond
	failMaxWait     = 5 * time.Second
	failHalfLife    = time.Minute
	failLogInterval = time.Minute
	// maxScores bounds the scores kept; beyond it the faded ones are
	// dropped, then all (a flood of sources cannot grow memory).
	maxScores = 4096
	// maxSummaryKeys bounds the sources and the user names the failure
	// summary counts, maxSummaryName the bytes of each name kept.
	maxSummaryKeys = 100
	maxSummaryName = 64
	// unknownUser keys the score of every user name not in the password
	// file.
	unknownUser = "\x00unknown"
)

// score is a decaying failure count and the key's next free turn.
type score struct {
	n    float64
	at   time.Time
	next time.Time
}

func (sc score) value(now time.Time) float64 {
	dt := now.Sub(sc.at)
	if dt <= 0 {
		return sc.n
	}
	return sc.n * math.Exp2(-float64(dt)/float64(failHalfLife))
}

// loginGuard holds the failure scores, the check slots and the failure
// summary. Safe for concurrent use.
type loginGuard struct {
	now   func() time.Time
	sleep func(time.Duration)
	slots *slots

	// mu guards the fields below.
	mu      sync.Mutex
	sources map[string]score
	users   map[string]score
	// The failures since the last summary.
	failed       int
	failSources  map[string]int
	failUsers    map[string]int
	waited       int // attempts that waited for their turn
	refused      int // attempts refused: their turn too far away
	summaryStart time.Time
}

func newLoginGuard(n int) *loginGuard {
	if n <= 0 {
		n = max(runtime.NumCPU(), 1)
	}
	return &loginGuard{
		now: time.Now, sleep: time.Sleep, slots: newSlots(n),
		sources: map[string]score{}, users: map[string]score{},
		failSources: map[string]int{}, failUsers: map[string]int{},
		summaryStart: time.Now(),
	}
}

// backoff returns the turn interval of a key with score n (0 below
// freeFailures), and whether it has recent failures.
func backoff(n float64) (time.Duration, bool) {
	// Rounded: the fifth failure a moment ago counts as five.
	n = math.Round(n)
	hot := n >= 1
	if n < freeFailures {
		return 0, hot
	}
	steps := int(n) - freeFailures
	if steps >= 8 {
		return failMaxWait, hot
	}
	return min(failBase<<steps, failMaxWait), hot
}

// before schedules an attempt from source for user: it returns how long
// the attempt waits for its turn, whether it goes behind attempts without
// recent failures, and false when its turn is too far away (refused).
func (g *loginGuard) before(source, user string) (time.Duration, bool, bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	src, usr := g.sources[source], g.users[user]
	lb := loopback(source)
	if lb {
		src = score{}
	}
	ds, hotS := backoff(src.value(now))
	du, hotU := backoff(usr.value(now))
	start := now
	if ds > 0 && src.next.After(start) {
		start = src.next
	}
	if du > 0 && usr.next.After(start) {
		start = usr.next
	}
	d := start.Sub(now)
	if d > failMaxWait {
		g.refused++
		return 0, true, false
	}
	if ds > 0 && !lb {
		src.next = start.Add(ds)
		g.sources[source] = src
	}
	if du > 0 {
		usr.next = start.Add(du)
		g.users[user] = usr
	}
	if d > 0 {
		g.waited++
	}
	return d, hotS || hotU, true
}

// loopback reports whether source is a loopback address.
func loopback(source string) bool {
	ip := net.ParseIP(source)
	return ip != nil && ip.IsLoopback()
}

// fail notes a failed check from source for the user keyed user (name
// as given, for the summary).
func (g *loginGuard) fail(source, user, name string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	bump := func(m map[string]score, k string) {
		if len(m) >= maxScores {
			for k, sc := range m {
				if sc.value(now) < 1 {
					delete(m, k)
				}
			}
			if len(m) >= maxScores {
				clear(m)
			}
		}
		sc := m[k]
		n := sc.value(now) + 1
		next := sc.next
		// The next attempt waits its backoff from this failure.
		if d, _ := backoff(n); d > 0 && now.Add(d).After(next) {
			next = now.Add(d)
		}
		m[k] = score{n: n, at: now, next: next}
	}
	if !loopback(source) {
		bump(g.sources, source)
	}
	bump(g.users, user)
	g.failed++
	if len(g.failSources) < maxSummaryKeys {
		g.failSources[source]++
	}
	if len(g.failUsers) < maxSummaryKeys {
		g.failUsers[summaryName(name)]++
	}
}

// summaryName is name as the failure summary keeps it: at most
// maxSummaryName bytes, cut at a rune boundary. A user name may be 64 KiB
// long, and any name is taken.
func summaryName(name string) string {
	if len(name) <= maxSummaryName {
		return name
	}
	return strings.ToValidUTF8(name[:maxSummaryName], "")
}

// summary logs the failures since the last call, in one line, if any.
func (g *loginGuard) summary(log *slog.Logger) {
	now := g.now()
	g.mu.Lock()
	failed, waited, refused, start := g.failed, g.waited, g.refused, g.summaryStart
	src, users := g.failSources, g.failUsers
	g.failed, g.waited, g.refused, g.summaryStart = 0, 0, 0, now
	g.failSources, g.failUsers = map[string]int{}, map[string]int{}
	g.mu.Unlock()
	if failed == 0 && refused == 0 {
		return
	}
	log.Warn("login failures", "failures", failed, "sources", len(src), "users", len(users),
		"top_source", top(src), "top_user", top(users), "slowed", waited, "refused", refused,
		"since", start.UTC().Format(time.RFC3339))
}

// top returns the key with the highest count ("" for none).
func top(m map[string]int) string {
	best, n := "", 0
	for k, v := range m {
		if v > n || (v == n && k < best) {
			best, n = k, v
		}
	}
	return best
}

// summaryLoop logs the failure summary every failLogInterval until the
// server is shut down.
func (s *Server) summaryLoop() {
	defer s.bg.Done()
	t := time.NewTicker(failLogInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			s.auth.guard.summary(s.log)
			return
		case <-t.C:
			s.auth.guard.summary(s.log)
		}
	}
}

// sourceOf is the score key of a connection's remote address: its IP.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// slots is a counting semaphore whose waiters are served in order, those
// without recent failures (clean) before the others.
type slots struct {
	// mu guards the fields below.
	mu         sync.Mutex
	free       int
	clean, hot []chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot, at most limit; false means none came in time.
func (q *slots) acquire(hot bool, limit time.Duration) bool {
	q.mu.Lock()
	if q.free > 0 {
		q.free--
		q.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if hot {
		q.hot = append(q.hot, ch)
	} else {
		q.clean = append(q.clean, ch)
	}
	q.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range []*[]chan struct{}{&q.clean, &q.hot} {
		for i, c := range *l {
			if c == ch {
				*l = append((*l)[:i], (*l)[i+1:]...)
				return false
			}
		}
	}
	// Granted meanwhile: pass the slot on.
	q.releaseLocked()
	return false
}

func (q *slots) release() {
	q.mu.Lock()
	q.releaseLocked()
	q.mu.Unlock()
}

func (q *slots) releaseLocked() {
	switch {
	case len(q.clean) > 0:
		close(q.clean[0])
		q.clean = q.clean[1:]
	case len(q.hot) > 0:
		close(q.hot[0])
		q.hot = q.hot[1:]
	default:
		q.free++
	}
}

// waiting returns the number of waiters, for tests.
func (q *slots) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.clean) + len(q.hot)
}
