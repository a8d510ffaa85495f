package uplink

import (
	"errors"

	"github.com/edgegw/edgegw/mqtt/client"
)

// flight is what the hooks of one record's flow need (drain.send): Start
// records the packet identifier in the outbox, Done completes the record
// in the outbox and the queue and refills the window. A flight goes back
// to its drain's pool once its flow has ended, or when the flow never
// started, and keeps its hooks bound: the unbatched drain sends a message
// without building closures for it.
type flight struct {
	d      *drain
	id     uint16 // the flow's packet identifier, once known
	ci     int    // index of class in u.classes
	class  string
	seq    uint64
	qos    byte // as published
	asked  byte // as queued
	remote string
	start  func(pid uint16)
	done   func(err error)
}

// newFlight returns a flight of d's pool, its hooks bound.
func (d *drain) newFlight() *flight {
	fl, _ := d.flights.Get().(*flight)
	if fl == nil {
		fl = &flight{d: d}
		fl.start, fl.done = fl.onStart, fl.onDone
	}
	return fl
}

func (fl *flight) onStart(pid uint16) {
	d := fl.d
	fl.id = pid
	d.obMu.Lock()
	d.ob.start(pid, fl.ci, fl.qos, fl.seq)
	d.obMu.Unlock()
}

// onDone is the flow's Done hook. The client calls no hook of the flow
// after it, so the flight returns to the pool as soon as it is read.
func (fl *flight) onDone(err error) {
	d := fl.d
	u := d.u
	id, ci, class, seq, qos, asked, remote := fl.id, fl.ci, fl.class, fl.seq, fl.qos, fl.asked, fl.remote
	*fl = flight{d: d, start: fl.start, done: fl.done}
	d.flights.Put(fl)
	switch {
	case err == nil:
	case errors.Is(err, client.ErrTooLarge):
		u.rejectedByCloud(remote, err)
	default:
		if _, ok := errors.AsType[*client.RefusedError](err); !ok {
			return // closed: the record stays queued for the next run
		}
		u.rejectedByCloud(remote, err)
	}
	d.obMu.Lock()
	if *d.obOpen {
		d.ob.complete(id, ci, seq)
	}
	d.obMu.Unlock()
	u.acked.Add(1)
	u.delivered(asked, qos, err)
	u.o.Queue.Ack(class, seq)
	if qos > 0 { // QoS 0 completes inside TryPublishFlow, under fm
		d.feed()
	}
}

// rejectedByCloud counts a message the cloud refused, logging the first.
func (u *Uplink) rejectedByCloud(topic string, err error) {
	if u.rejected.Add(1) == 1 {
		u.log.Warn("cloud refused a message", "topic", topic, "err", err)
	}
}
