// Package gateway routes readings from drivers to the local broker and the
// outbound queue, and commands from control topics to actuators. It consumes
// the broker, the queue and the uplink through interfaces it defines
// (Publisher, Subscriber, Spool), so it imports none of them.
//
// # Topics (prefix = [gateway] topic_prefix, e.g. vehicles/{VIN})
//
//	{prefix}/telemetry/{device}              retained; queue class "telemetry"
//	    {"seq":N,"ts":"RFC 3339","points":{"pressure":{"v":231.5,"u":"kPa","q":"good"}}}
//	    seq goes up by one per device message and survives restarts and kills
//	{prefix}/alarm/{device}/{point}          retained; class "alarm"
//	    {"v":true,"ts":"…","q":"good"}; point "offline" for a device that stops answering
//	{prefix}/devices/{device}/status         retained; class "alarm"
//	    {"status":"online"|"offline","ts":"…"}
//	{prefix}/cmd/{device}/{command}          commands in (local broker or uplink)
//	    {"id":"…","value":…,"expires_at":"RFC 3339"}
//	{prefix}/cmd/{device}/{command}/result   class "alarm" (and the MQTT 5 response topic)
//	    {"id":"…","status":"done"|"rejected"|"expired"|"failed","error":"…","ts":"…"}
//
// # Contract with the uplink
//
// Every queue record is a Record encoded with AppendBinary; the uplink
// decodes it with UnmarshalBinary and publishes Topic (with the local
// prefix replaced by the remote one when Topic starts with it; a response
// topic of a cloud command is published as is), Payload, QoS, Retain,
// ResponseTopic and CorrelationData, with the MQTT 5 message expiry
// Record.Remaining gives (a record no longer alive is acknowledged and not
// sent). Class ClassAlarm drains before ClassTelemetry.
//
// Commands from the cloud are handed to (*Gateway).Command with the topic as
// received (it must end in cmd/{device}/{command}), Time set to when it
// arrived, Expiry to its remaining MQTT 5 message expiry and Retain to its
// retain flag (a retained command is never applied); Command applies
// or refuses it and spools the result before it returns.
package gateway
