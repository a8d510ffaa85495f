package serial

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/drivers/bus"
)

var (
	// ErrNoReply is returned when no complete reply frame arrived before
	// the transaction's deadline.
	ErrNoReply = errors.New("serial: no reply")
	// ErrFrameTooLong is returned for a reply frame longer than its
	// Frame.Max.
	ErrFrameTooLong = errors.New("serial: reply frame too long")
)

// Frame describes the reply of a request/response device: it starts with
// Start and ends with End, both included, and is at most Max bytes long.
// Bytes before Start are line noise and skipped. Check, if set, validates a
// complete frame inside the transaction, so that a corrupt reply fails the
// attempt and the scheduler's retries apply.
type Frame struct {
	Start, End byte
	Max        int
	Check      func(frame []byte) error
}

// Exchange writes req and reads the reply frame f, as one transaction of
// the Port's scheduler for device (the scheduler's timeout is the deadline
// for the reply; its retries and quarantine apply). Input pending before the
// request is discarded, so a late reply to an earlier request cannot be
// taken for this one. The returned frame is a new slice.
func (p *Port) Exchange(ctx context.Context, device string, pri bus.Priority, req []byte, f Frame) ([]byte, error) {
	var reply []byte
	err := p.sched.Do(ctx, device, pri, func(ctx context.Context) error {
		var err error
		reply, err = p.exchange(ctx, req, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	return reply, nil
}

func (p *Port) exchange(ctx context.Context, req []byte, f Frame) ([]byte, error) {
	if f.Max <= 0 {
		return nil, errors.New("serial: Frame.Max must be positive")
	}
	p.readMu.Lock()
	defer p.readMu.Unlock()
	c, err := p.ready(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := c.ResetInputBuffer(); err != nil {
		return nil, p.lost(c, err)
	}
	for w := req; len(w) > 0; {
		n, err := c.Write(w)
		if err != nil {
			return nil, p.lost(c, err)
		}
		w = w[n:]
	}
	frame := make([]byte, 0, min(f.Max, 256))
	var chunk [64]byte
	for {
		n, err := p.read(ctx, chunk[:], false)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrNoReply, err)
			}
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return nil, fmt.Errorf("%w: %w", ErrNoReply, context.DeadlineExceeded)
			}
			continue
		}
		for _, b := range chunk[:n] {
			if b == f.Start {
				// A new start inside a frame means the frame was cut
				// short: keep the newer one.
				frame = frame[:0]
			} else if len(frame) == 0 {
				continue
			}
			if len(frame) == f.Max {
				return nil, fmt.Errorf("%w: over %d bytes", ErrFrameTooLong, f.Max)
			}
			frame = append(frame, b)
			if b == f.End && len(frame) > 1 {
				if f.Check != nil {
					if err := f.Check(frame); err != nil {
						return nil, err
					}
				}
				return frame, nil
			}
		}
	}
}
