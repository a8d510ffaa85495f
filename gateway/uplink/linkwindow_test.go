package uplink

import (
	"sync"
	"sync/atomic"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// The window a forwarder really keeps is measured on the link, not taken
// from its configuration: Mosquitto 2.0.11's bridge, for one, does not keep
// to its max_inflight_messages while it drains a queue (see BenchmarkLink).
// A windowToxic at each end of the link's gateway side reads the MQTT
// packets crossing it: the PUBLISHes at QoS 1 and 2 the gateway sends, and
// the acknowledgements that end them as the gateway receives them (PUBACK,
// PUBCOMP, or a PUBREC with a failure code), so that the count in between
// is what the gateway has unacknowledged, the quantity MQTT 5's Receive
// Maximum bounds [MQTT-4.9.0-2].

// windowTracker counts the gateway's unacknowledged QoS 1 and 2 PUBLISHes
// on one link and remembers the most there were. Safe for concurrent use.
type windowTracker struct {
	// mu guards open.
	mu   sync.Mutex
	open map[uint16]struct{} // packet identifiers sent, not yet acknowledged
	max  atomic.Int64
}

var windows sync.Map // name → *windowTracker

func trackerFor(name string) *windowTracker {
	v, _ := windows.LoadOrStore(name, &windowTracker{open: make(map[uint16]struct{})})
	return v.(*windowTracker)
}

// maxOpen returns the most PUBLISHes that were unacknowledged at once.
func (w *windowTracker) maxOpen() int64 { return w.max.Load() }

func (w *windowTracker) connect() {
	w.mu.Lock()
	clear(w.open) // a new connection: what it resends is counted again
	w.mu.Unlock()
}

func (w *windowTracker) sent(id uint16) {
	w.mu.Lock()
	w.open[id] = struct{}{} // a resent PUBLISH (DUP) keeps its identifier
	n := int64(len(w.open))
	w.mu.Unlock()
	for {
		m := w.max.Load()
		if n <= m || w.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (w *windowTracker) acked(id uint16) {
	w.mu.Lock()
	delete(w.open, id)
	w.mu.Unlock()
}

// MQTT control packet types [MQTT-2.1.2].
const (
	typeConnect = 1
	typePublish = 3
	typePuback  = 4
	typePubrec  = 5
	typePubcomp = 7
)

// windowToxic passes every chunk on unchanged and feeds it to the tracker
// named Tracker: Up is the gateway's sending direction (put the toxic
// first in the upstream chain), otherwise the receiving one (put it last
// in the downstream chain).
type windowToxic struct {
	Tracker string `json:"tracker"`
	Up      bool   `json:"up"`
}

var _ toxics.StatefulToxic = (*windowToxic)(nil)

// NewState gives every connection and direction its own packet scanner,
// kept across the interruptions toxiproxy makes when toxics change.
func (t *windowToxic) NewState() any { return new(packetScanner) }

func (t *windowToxic) Pipe(stub *toxics.ToxicStub) {
	s, on := stub.State.(*packetScanner), t.on(trackerFor(t.Tracker))
	passEach(stub, func(data []byte) { s.feed(data, on) })
}

// on returns the function the scanner calls for each packet, which tells w
// what it means for the window.
func (t *windowToxic) on(w *windowTracker) func(first byte, body []byte) {
	return func(first byte, body []byte) {
		typ := first >> 4
		switch {
		case t.Up && typ == typeConnect:
			w.connect()
		case t.Up && typ == typePublish:
			if first>>1&3 == 0 || len(body) < 2 {
				return
			}
			n := int(body[0])<<8 | int(body[1])
			if len(body) >= 2+n+2 {
				w.sent(uint16(body[2+n])<<8 | uint16(body[3+n]))
			}
		case !t.Up && (typ == typePuback || typ == typePubcomp) && len(body) >= 2:
			w.acked(uint16(body[0])<<8 | uint16(body[1]))
		case !t.Up && typ == typePubrec && len(body) >= 3 && body[2] >= 0x80:
			// A PUBREC with a failure code ends the exchange
			// [MQTT-4.3.3-10].
			w.acked(uint16(body[0])<<8 | uint16(body[1]))
		}
	}
}

// packetScanner splits a byte stream into MQTT packets without holding
// them: for each it collects the fixed header's first byte and the start
// of the body, enough for a packet identifier (a PUBLISH's topic, its
// identifier; an acknowledgement's identifier and reason code), and skips
// the rest.
type packetScanner struct {
	state int // 0: first byte; 1: remaining length; 2: body
	first byte
	rem   int // remaining length read so far
	shift uint
	left  int    // body bytes still to come
	body  []byte // the start of the body
	done  bool   // on was called for this packet
}

func (s *packetScanner) feed(p []byte, on func(first byte, body []byte)) {
	for len(p) > 0 {
		switch s.state {
		case 0:
			s.first, p = p[0], p[1:]
			s.rem, s.shift, s.state = 0, 0, 1
		case 1:
			b := p[0]
			p = p[1:]
			s.rem |= int(b&0x7f) << s.shift
			s.shift += 7
			if b&0x80 != 0 && s.shift < 28 {
				continue
			}
			s.left, s.body, s.done, s.state = s.rem, s.body[:0], false, 2
			if s.left == 0 {
				on(s.first, nil)
				s.state = 0
			}
		case 2:
			n := min(len(p), s.left)
			chunk := p[:n]
			for !s.done {
				need := s.need()
				if len(s.body) >= need {
					on(s.first, s.body)
					s.done = true
					break
				}
				if len(chunk) == 0 {
					break
				}
				k := min(need-len(s.body), len(chunk))
				s.body = append(s.body, chunk[:k]...)
				chunk = chunk[k:]
			}
			s.left -= n
			p = p[n:]
			if s.left == 0 {
				if !s.done {
					on(s.first, s.body)
				}
				s.state = 0
			}
		}
	}
}

// need returns how many bytes of the body the scanner wants: a PUBLISH's
// topic length, topic and packet identifier; an acknowledgement's
// identifier and reason code; nothing of the rest.
func (s *packetScanner) need() int {
	switch s.first >> 4 {
	case typePublish:
		if s.first>>1&3 == 0 {
			return 0
		}
		if len(s.body) < 2 {
			return 2
		}
		return 2 + (int(s.body[0])<<8 | int(s.body[1])) + 2
	case typePuback, typePubrec, 6, typePubcomp:
		return 3
	}
	return 0
}
