package client

import "time"

// ackCoalesce is how long the reader waits before it reads again while at
// least half the in-flight window is out: the server has that half to
// work through meanwhile, so the wait costs no throughput, and the
// acknowledgements it sends in the meantime are read, handled and answered
// (the refilled publishes, PUBRELs) with one read and one write instead of
// a wake of the reader each. Mosquitto answers each PUBLISH as it reads
// it; without the wait the reader woke once per PUBACK. It is far below a
// cellular round trip (50-300 ms), where the acknowledgements of a window
// arrive together anyway, and it adds nothing while the window is mostly
// empty (a command, an alarm after a quiet spell).
const ackCoalesce = 200 * time.Microsecond

// coalesce waits ackCoalesce when at least half the window (and at least
// two messages) is in flight. It is called by the reader before it reads,
// after it wrote out what it sent.
func (cn *conn) coalesce() {
	if cn.c != nil && cn.c.windowBusy() {
		cn.rd.quiet()
		pause(ackCoalesce)
	}
}

// windowBusy reports whether at least half the window, and at least two
// messages, are in flight.
func (c *Client) windowBusy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight >= 2 && 2*c.inflight >= c.limit
}
