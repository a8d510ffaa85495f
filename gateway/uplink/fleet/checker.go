package fleet

import (
	"bytes"
	"strconv"
	"sync"
	"time"
)

// checker is the cloud side's consumer: it takes every device's telemetry
// and checks that each device's seq arrives in order and complete.
type checker struct {
	// mu guards the fields below.
	mu      sync.Mutex
	devices map[string]*device
	unique  int            // distinct records received
	want    int            // distinct records expected; done closes when reached
	last    time.Time      // arrival of the latest new record
	gaps    int            // arrivals past a hole in their device's seq
	gapsBy  map[string]int // gaps by topic
	dups    int            // records received again (QoS 1 redelivery)
	bad     int            // messages without a readable seq
	done    chan struct{}
}

// device is one device's arrivals.
type device struct {
	high uint64 // highest seq received
	got  []bool // got[seq]: received
}

func newChecker() *checker {
	return &checker{devices: map[string]*device{}, gapsBy: map[string]int{}, done: make(chan struct{})}
}

// expect adds n records to what the checker waits for.
func (c *checker) expect(n int) {
	c.mu.Lock()
	c.want += n
	c.mu.Unlock()
}

// receive takes one message on a device's telemetry topic.
func (c *checker) receive(topic string, payload []byte, now time.Time) {
	seq, ok := payloadSeq(payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.bad++
		return
	}
	d := c.devices[topic]
	if d == nil {
		d = &device{}
		c.devices[topic] = d
	}
	for uint64(len(d.got)) <= seq {
		d.got = append(d.got, false)
	}
	if d.got[seq] {
		c.dups++
		return
	}
	d.got[seq] = true
	if seq > d.high+1 {
		c.gaps++
		c.gapsBy[topic]++
	}
	d.high = max(d.high, seq)
	c.unique++
	c.last = now
	if c.unique == c.want && c.want > 0 {
		close(c.done)
	}
}

// lost counts the seqs from 1 to sent[topic] that never arrived, in all
// and by topic.
func (c *checker) lost(sent map[string]uint64) (n int, by map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	by = map[string]int{}
	for topic, high := range sent {
		d := c.devices[topic]
		for s := uint64(1); s <= high; s++ {
			if d == nil || s >= uint64(len(d.got)) || !d.got[s] {
				n++
				by[topic]++
			}
		}
	}
	return n, by
}

// payloadSeq reads N from a payload starting {"seq":N, (the gateway's
// telemetry format).
func payloadSeq(p []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(p, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return n, err == nil
}
