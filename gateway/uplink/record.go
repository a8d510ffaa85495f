package uplink

import (
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
)

// recordOf is the one conversion of a message received from the cloud into
// a gateway.Record, stamped now: topic is its local name and qos the QoS
// the record asks for. Expiry is the MQTT 5 message expiry interval in
// both, so it carries over as it came.
func recordOf(m client.Message, topic string, qos byte) gateway.Record {
	return gateway.Record{Topic: topic, Payload: m.Payload, QoS: qos, Retain: m.Retain,
		Time: time.Now().UTC(), Expiry: m.Expiry, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
}
