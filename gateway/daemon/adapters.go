package daemon

import (
	"context"
	"iter"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// brokerPort adapts the broker's in-process API to gateway.Publisher and
// gateway.Subscriber.
type brokerPort struct{ s *broker.Server }

var (
	_ gateway.Publisher  = brokerPort{}
	_ gateway.Subscriber = brokerPort{}
	_ gateway.Spool      = (*buffer.Queue)(nil)
)

func (b brokerPort) Publish(ctx context.Context, r gateway.Record) error {
	return b.s.Publish(ctx, toMessage(r))
}

func (b brokerPort) Subscribe(filter string, qos byte, fn func(gateway.Record)) (func(), error) {
	return b.s.Subscribe(filter, qos, func(m broker.Message) { fn(fromMessage(m)) })
}

// toMessage and fromMessage are the one conversion between gateway.Record
// and broker.Message; Expiry is the MQTT 5 message expiry interval in both.
func toMessage(r gateway.Record) broker.Message {
	return broker.Message{
		Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		ResponseTopic: r.ResponseTopic, CorrelationData: r.CorrelationData, Expiry: r.Expiry,
	}
}

func fromMessage(m broker.Message) gateway.Record {
	return gateway.Record{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, Expiry: m.Expiry,
	}
}

// backlog is gateway.Deps.Backlog of q: the telemetry records from queue
// number from on, read with Scan, which leaves the consumer's position
// alone. Records the uplink has acknowledged but the queue has not deleted
// yet are read too: they raise a number as well as unacknowledged ones.
// With flush it flushes q first, so that on a reload every record the
// previous field put is seen (a device may have spooled one after the old
// gateway saved its numbers for the last time); at start there is nothing
// to flush.
func backlog(q *buffer.Queue, flush bool) func(from uint64) iter.Seq2[uint64, []byte] {
	return func(from uint64) iter.Seq2[uint64, []byte] {
		return func(yield func(uint64, []byte) bool) {
			if flush {
				q.Flush()
			}
			q.Scan(gateway.ClassTelemetry, from, yield)
		}
	}
}
