package uplink

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway"
)

// Budget is the [uplink.budget] table: a monthly data budget (opt-in).
type Budget struct {
	// Monthly is the bytes per month, both ways, as the meter counts
	// them (see Usage); 0 disables the budget.
	Monthly int64
	// MonthStartDay is the day of the month (1..28) at whose 00:00 UTC the
	// month starts, for the meter's month total too; default 1.
	MonthStartDay int
	// ThinInterval is how far apart, by their timestamps, the telemetry
	// records of one topic that go out while thinning are; default 5 min.
	ThinInterval time.Duration
}

// minElapsed floors the elapsed part of the month in the projection, so
// that the first hours do not extrapolate a burst (the backlog of a night
// in a car park) over the whole month: a day's share of the budget may go
// at once at the start of a month before thinning starts.
const minElapsed = 24 * time.Hour

// offBelow is where thinning stops once on, as a fraction of the budget:
// the projection moves with every message, and thinning that flipped on
// and off around the line would log each flip.
const offBelow = 0.9

// maxThinTopics and maxThinTopicBytes bound the topics the thinner
// remembers, in count and in the bytes of their names (a forward rule
// takes local topics of up to 64 KiB); past either, it forgets them all
// (the next record of each goes out).
const (
	maxThinTopics     = 4096
	maxThinTopicBytes = 256 << 10
)

// budget decides which telemetry records to keep back when the month's
// projection exceeds the budget.
//
// The projection is used / elapsed × month length, with elapsed at least a
// day (minElapsed). Thinning while it is over the budget is a pacing rule:
// it is over exactly when more than the budget's linear share of the month
// has been used, so thinning holds the month's use near the budget when
// the thinned rate fits in it, and stops as soon as use is back under the
// line, with no memory of how it got there: a backlog drained on the 2nd
// costs thinning for as long as it takes the month to catch up, not the
// rest of the month. A recent-rate estimator would turn thinning off as
// soon as it worked, and on again the next day.
type budget struct {
	b   Budget
	m   *meter
	now func() time.Time
	log *slog.Logger

	// mu guards the fields below.
	mu        sync.Mutex
	on        bool
	last      map[string]time.Time // per topic: timestamp of the last record sent while thinning
	lastBytes int                  // the bytes of last's topics
}

func newBudget(b Budget, m *meter, now func() time.Time, log *slog.Logger) *budget {
	if b.ThinInterval <= 0 {
		b.ThinInterval = 5 * time.Minute
	}
	return &budget{b: b, m: m, now: now, log: log, last: make(map[string]time.Time)}
}

// BudgetStatus is the budget's part of Status.
type BudgetStatus struct {
	Monthly   int64 // 0: no budget
	Used      int64 // this month, both ways
	Projected int64 // at the end of the month, at this month's pace
	Thinning  bool
}

// project returns the month's use so far and its projection.
func (bg *budget) project() (used, projected int64) {
	used, start, end := bg.m.month()
	elapsed := max(bg.now().Sub(start), minElapsed)
	length := end.Sub(start)
	return used, int64(math.Round(float64(used) / elapsed.Seconds() * length.Seconds()))
}

// thinning updates and returns whether telemetry is being thinned.
func (bg *budget) thinning() bool {
	if bg.b.Monthly <= 0 {
		return false
	}
	used, p := bg.project()
	bg.mu.Lock()
	defer bg.mu.Unlock()
	switch {
	case !bg.on && p > bg.b.Monthly:
		bg.on = true
		bg.log.Warn("data budget: thinning telemetry", "used", used, "projected", p, "budget", bg.b.Monthly,
			"thin_interval", bg.b.ThinInterval)
	case bg.on && float64(p) < offBelow*float64(bg.b.Monthly):
		bg.on = false
		bg.forget()
		bg.log.Info("data budget: thinning off", "used", used, "projected", p, "budget", bg.b.Monthly)
	}
	return bg.on
}

// thin reports whether the telemetry record of topic stamped ts is to be
// kept back: while thinning, one record per topic goes out per
// ThinInterval of timestamps, the first; the queue hands records out
// oldest first, and holding them back to find the newest of each
// interval would need a look ahead. A record without a timestamp, or
// older than the last one sent (a clock set back), goes out; so does one
// stamped exactly as the last one sent, which is that record offered again
// after the window was full.
func (bg *budget) thin(topic string, ts time.Time) bool {
	if !bg.thinning() || ts.IsZero() {
		return false
	}
	bg.mu.Lock()
	defer bg.mu.Unlock()
	last, ok := bg.last[topic]
	if ok && ts.After(last) && ts.Sub(last) < bg.b.ThinInterval {
		return true
	}
	if !ok {
		if len(bg.last) >= maxThinTopics || bg.lastBytes+len(topic) > maxThinTopicBytes {
			bg.forget()
		}
		bg.lastBytes += len(topic)
	}
	bg.last[topic] = ts
	return false
}

// forget clears the topics remembered. mu held.
func (bg *budget) forget() {
	clear(bg.last)
	bg.lastBytes = 0
}

func (bg *budget) status() BudgetStatus {
	if bg.b.Monthly <= 0 {
		return BudgetStatus{}
	}
	on := bg.thinning()
	used, p := bg.project()
	return BudgetStatus{Monthly: bg.b.Monthly, Used: used, Projected: p, Thinning: on}
}

// thin reports whether the data budget keeps r back: telemetry only, one
// reading per topic per thin interval while the month's projection is
// over the budget. A record kept back is counted; the caller acknowledges
// it in the queue. Both drains, batched or not, ask it.
func (u *Uplink) thin(class string, r *gateway.Record) bool {
	if class != gateway.ClassTelemetry || !u.budget.thin(r.Topic, r.Time) {
		return false
	}
	u.thinned.Add(1)
	u.meter.thinned()
	return true
}
