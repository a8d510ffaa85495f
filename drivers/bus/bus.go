// Package bus serialises the transactions of one physical bus (an RS-485
// line, a serial port, an I2C bus) in one owner goroutine.
//
// Every device on the bus goes through the bus's Scheduler: it keeps the
// inter-frame gap, bounds each attempt with a timeout, retries, lets commands
// go ahead of queued polls, and quarantines a device that keeps failing so
// that one dead slave cannot stall the others on the line.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Priority orders queued transactions: every queued Command runs before any
// queued Poll.
type Priority int

// Priorities of a transaction.
const (
	Poll Priority = iota
	Command
)

var (
	// ErrQuarantined is returned for a device that failed too often in a
	// row and is waiting out its backoff.
	ErrQuarantined = errors.New("bus: device quarantined")
	// ErrClosed is returned once the scheduler's Run has returned.
	ErrClosed = errors.New("bus: scheduler stopped")
)

// Options configure a Scheduler. Zero values take the defaults noted.
type Options struct {
	Name    string        // for logs
	Gap     time.Duration // idle time between two transactions (default 0)
	Timeout time.Duration // per attempt (default 1s)
	Retries int           // extra attempts after a failure (default 0)
	// QuarantineAfter consecutive failed transactions put a device in
	// quarantine (default 3).
	QuarantineAfter int
	// BackoffMin and BackoffMax bound the quarantine time, which doubles
	// on each failed probe and is jittered by ±20 % (defaults 1s and 60s).
	BackoffMin, BackoffMax time.Duration
	// OnChange, if set, is called from the owner goroutine when a device
	// goes offline (quarantined) or back online. It must not block.
	OnChange func(device string, online bool)
	Log      *slog.Logger
}

// Scheduler owns one bus. Do is safe for concurrent use; Run must be running
// for Do to make progress.
type Scheduler struct {
	o     Options
	log   *slog.Logger
	queue [2]chan *txn // indexed by Priority
	done  chan struct{}

	// mu guards devs.
	mu   sync.Mutex
	devs map[string]*devState
}

type devState struct {
	fails   int
	backoff time.Duration
	until   time.Time // quarantined until
	offline bool
}

type txn struct {
	ctx    context.Context
	device string
	fn     func(context.Context) error
	res    chan error
}

// New returns a Scheduler; start it with Run.
func New(o Options) *Scheduler {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.QuarantineAfter <= 0 {
		o.QuarantineAfter = 3
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(60*time.Second, o.BackoffMin)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		o:     o,
		log:   log,
		queue: [2]chan *txn{make(chan *txn, 64), make(chan *txn, 16)},
		done:  make(chan struct{}),
		devs:  make(map[string]*devState),
	}
}

// Run serves transactions until ctx is done, then fails the queued ones with
// ErrClosed and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	defer close(s.done)
	var last time.Time
	for {
		var t *txn
		select {
		case t = <-s.queue[Command]:
		default:
			select {
			case <-ctx.Done():
				s.drain()
				return nil
			case t = <-s.queue[Command]:
			case t = <-s.queue[Poll]:
			}
		}
		if s.o.Gap > 0 && !last.IsZero() {
			if wait := s.o.Gap - time.Since(last); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					t.res <- ErrClosed
					s.drain()
					return nil
				case <-timer.C:
				}
			}
		}
		t.res <- s.exec(t)
		last = time.Now()
	}
}

func (s *Scheduler) drain() {
	for _, q := range s.queue {
		for {
			select {
			case t := <-q:
				t.res <- ErrClosed
				continue
			default:
			}
			break
		}
	}
}

// exec runs t with retries, in the owner goroutine.
func (s *Scheduler) exec(t *txn) error {
	if err := t.ctx.Err(); err != nil {
		return err // the caller gave up while queued: the line stays free
	}
	var err error
	for attempt := 0; attempt <= s.o.Retries; attempt++ {
		ctx, cancel := context.WithTimeout(t.ctx, s.o.Timeout)
		err = t.fn(ctx)
		cancel()
		if err == nil || t.ctx.Err() != nil {
			break
		}
	}
	s.record(t.device, err)
	return err
}

// record updates the device's failure count and quarantine.
func (s *Scheduler) record(device string, err error) {
	if device == "" {
		return
	}
	s.mu.Lock()
	d := s.dev(device)
	var changed, online bool
	if err == nil {
		changed, online = d.offline, true
		*d = devState{}
	} else {
		d.fails++
		if d.fails >= s.o.QuarantineAfter {
			if d.backoff == 0 {
				d.backoff = s.o.BackoffMin
			} else {
				d.backoff = min(2*d.backoff, s.o.BackoffMax)
			}
			jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(d.backoff))
			d.until = time.Now().Add(d.backoff + jitter)
			changed, online = !d.offline, false
			d.offline = true
		}
	}
	backoff := d.backoff
	s.mu.Unlock()
	if !changed {
		return
	}
	if online {
		s.log.Info("device online", "bus", s.o.Name, "device", device)
	} else {
		s.log.Warn("device offline", "bus", s.o.Name, "device", device, "backoff", backoff, "err", err)
	}
	if s.o.OnChange != nil {
		s.o.OnChange(device, online)
	}
}

func (s *Scheduler) dev(name string) *devState {
	d := s.devs[name]
	if d == nil {
		d = &devState{}
		s.devs[name] = d
	}
	return d
}

// Do queues fn for the bus and waits for its result. fn runs in the owner
// goroutine with a context bounded by the per-attempt timeout; it must honour
// that context or bound its own I/O by the same time. device names the
// device for quarantine ("" for none). A quarantined device's transactions
// fail at once with ErrQuarantined, except one probe per backoff period; a
// Command is always tried.
func (s *Scheduler) Do(ctx context.Context, device string, pri Priority, fn func(context.Context) error) error {
	if pri != Command && device != "" && !s.admit(device) {
		return fmt.Errorf("%w: %s", ErrQuarantined, device)
	}
	t := &txn{ctx: ctx, device: device, fn: fn, res: make(chan error, 1)}
	select {
	case s.queue[pri] <- t:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	select {
	case err := <-t.res:
		return err
	case <-s.done:
		// Run may have answered just before it returned.
		select {
		case err := <-t.res:
			return err
		default:
			return ErrClosed
		}
	}
}

// admit reports whether a poll of device may go on the bus now. Once a
// quarantine period is over, one probe is let through and the next period is
// armed at once, so concurrent callers do not all probe.
func (s *Scheduler) admit(device string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dev(device)
	if !d.offline {
		return true
	}
	now := time.Now()
	if now.Before(d.until) {
		return false
	}
	d.until = now.Add(d.backoff)
	return true
}

// Online reports whether device is not quarantined.
func (s *Scheduler) Online(device string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devs[device]
	return !ok || !d.offline
}
