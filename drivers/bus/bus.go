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
	"sync"
	"time"

	"github.com/edgegw/edgegw/drivers/backoff"
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
	// goes offline (quarantined) or back online. It must not block. The
	// scheduler does not log these changes: whoever supervises the
	// devices holds their status and logs it, once.
	OnChange func(device string, online bool)
}

// Scheduler owns one bus. Do is safe for concurrent use; Run must be running
// for Do to make progress.
type Scheduler struct {
	o     Options
	wait  backoff.Policy // quarantine periods
	queue [2]chan *txn   // indexed by Priority
	done  chan struct{}

	// mu guards devs.
	mu   sync.Mutex
	devs map[string]*devState
}

// devState is a device's quarantine: scheduling state, not its status,
// which OnChange reports to whoever holds it.
type devState struct {
	fails       int
	period      time.Duration // of the quarantine, before jitter
	until       time.Time     // quarantined until
	quarantined bool
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
	return &Scheduler{
		o:     o,
		wait:  backoff.Policy{Min: o.BackoffMin, Max: o.BackoffMax},
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
		// Keep the gap before choosing the next transaction, so that a
		// command queued meanwhile still goes ahead of queued polls.
		if !s.pause(ctx, last) {
			s.drain()
			return nil
		}
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
		if t.ctx.Err() != nil {
			t.res <- t.ctx.Err() // the caller gave up while queued: the line stays free
			continue
		}
		t.res <- s.exec(ctx, t, &last)
	}
}

// pause waits until the gap after last has passed. It reports false if ctx
// ended first.
func (s *Scheduler) pause(ctx context.Context, last time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	if s.o.Gap <= 0 || last.IsZero() {
		return true
	}
	return backoff.Sleep(ctx, s.o.Gap-time.Since(last))
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

// answered is implemented by errors that carry a reply of the device (a
// Modbus exception): the device is alive, and asking again would get the
// same answer, so such an error is neither retried nor counted towards
// quarantine.
type answered interface{ Answered() bool }

// isAnswer reports whether err is a reply of the device; see answered.
func isAnswer(err error) bool {
	var a answered
	return errors.As(err, &a) && a.Answered()
}

// exec runs t with retries, in the owner goroutine, keeping the gap between
// attempts. *last is when the bus was last used.
func (s *Scheduler) exec(ctx context.Context, t *txn, last *time.Time) error {
	attempts := s.o.Retries + 1
	if t.device != "" && !s.Online(t.device) {
		attempts = 1 // a quarantine probe is one attempt
	}
	var err error
	for attempt := range attempts {
		if attempt > 0 && !s.pause(ctx, *last) {
			break
		}
		actx, cancel := context.WithTimeout(t.ctx, s.o.Timeout)
		err = t.fn(actx)
		cancel()
		*last = time.Now()
		if err == nil || t.ctx.Err() != nil || isAnswer(err) {
			break
		}
	}
	if t.ctx.Err() != nil && err != nil {
		// The caller gave up: that says nothing about the device.
		return err
	}
	if isAnswer(err) {
		s.record(t.device, nil)
	} else {
		s.record(t.device, err)
	}
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
		changed, online = d.quarantined, true
		*d = devState{}
	} else {
		d.fails++
		if d.fails >= s.o.QuarantineAfter {
			d.period = s.wait.Next(d.period)
			d.until = time.Now().Add(s.wait.Spread(d.period))
			changed, online = !d.quarantined, false
			d.quarantined = true
		}
	}
	s.mu.Unlock()
	if changed && s.o.OnChange != nil {
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
// device for quarantine ("" for none). A quarantined device's polls fail at
// once with ErrQuarantined, except one probe per backoff period (a single
// attempt); a Command is always tried. An error with a method Answered()
// bool that returns true (a Modbus exception reply) is the device's answer:
// it is returned without retry and the device counts as alive. If ctx ends
// first, Do returns ctx.Err() at once and the transaction is skipped or its
// result dropped; a caller's cancellation never counts against the device.
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
	case <-ctx.Done():
		// Run skips t when it gets to it, or t is running with a
		// context that is done too; its result is dropped.
		return ctx.Err()
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
	if !d.quarantined {
		return true
	}
	now := time.Now()
	if now.Before(d.until) {
		return false
	}
	d.until = now.Add(s.wait.Spread(d.period))
	return true
}

// Online reports whether device is not quarantined.
func (s *Scheduler) Online(device string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devs[device]
	return !ok || !d.quarantined
}
