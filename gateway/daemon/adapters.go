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

func toMessage(r gateway.Record) broker.Message {
	return broker.Message{
		Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		ResponseTopic: r.ResponseTopic, CorrelationData: r.CorrelationData, MessageExpiry: r.Expiry,
	}
}

func fromMessage(m broker.Message) gateway.Record {
	return gateway.Record{
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, Expiry: m.MessageExpiry,
	}
}

// backlog yields the telemetry records the queue holds unacknowledged,
// then rewinds the queue's reader so that the uplink starts from the
// beginning. It must run before the uplink consumes the queue.
func backlog(q *buffer.Queue) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		defer q.Rewind()
		for {
			rec, ok, err := q.TryNext()
			if !ok || err != nil {
				return
			}
			if rec.Class != gateway.ClassTelemetry {
				continue
			}
			if !yield(rec.Data) {
				return
			}
		}
	}
}
