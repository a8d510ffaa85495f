// Package gateway routes readings from drivers to the local broker and the
// outbound queue, and commands from control topics to actuators. It consumes
// the broker, the queue and the uplink through interfaces it defines
// (Publisher, Subscriber, Spool), so it imports none of them.
//
// # The map: one reading's walk and one command's walk
//
// These two walks pass each package once; read them before changing
// where something happens.
//
// One reading's walk, from a tyre to the cloud. drivers/serial (Port, a
// bus scheduler of its own from drivers/bus) hands lines from the TPMS
// receiver to drivers/tpms (RTL433.Stream), which decodes a wheel into
// readings in kPa and °C and emits them. gateway/supervisor, which built
// the device and runs the stream, passes them through the device's
// drivers/poll Filter (plausible range, deadband and longest silence: a
// reading is reported by exception) and on to Gateway.Emit (this package, route.go), which
// groups them per device into one telemetry message with the device's
// next seq, publishes it on the local broker through Publisher
// (gateway/daemon's brokerPort over mqtt/broker, retained, for
// in-vehicle clients) and puts it in the queue through Spool (buffer,
// class telemetry, a Record encoded with AppendBinary). gateway/uplink
// (drain.run, or runBatched with [uplink.batch]) reads it with the
// queue's Next, maps the topic to the remote prefix and publishes it
// through mqtt/client at the QoS it decides then; the queue record is
// acknowledged (buffer Ack) only when the cloud's PUBACK or PUBCOMP
// arrives. A sensor that is polled instead of streamed differs only at
// the start: a poll.Poller calls its Read at each interval (only the
// points whose own interval is due) and hands the readings to the same
// Filter.
//
// One command's walk, from the cloud to the demo's seat relay, is at the
// end of "One way in for commands" below.
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
// Commands from the cloud are handed to (*Commands).Remote with the topic as
// received (it must end in cmd/{device}/{command}), Time set to when it
// arrived, Expiry to its remaining MQTT 5 message expiry and Retain to its
// retain flag (a retained command is never applied). Remote returns at
// once; Commands.Close waits until every command taken is applied or
// refused and its result spooled.
//
// # One way in for commands
//
// Every command, whichever door it came by, goes in through Commands and
// meets the same steps, in one place (Commands.handle, then
// Gateway.command):
//
//	local client ─ broker ACL (upstream)   ─ Commands.Subscribe ─┐
//	cloud        ─ uplink                  ─ Commands.Remote    ─┼─ swap lock ─ Gateway.command ─ Actuator.Set
//	console user ─ broker ACL (MayPublish) ─ Commands.Console   ─┘
//
// The swap lock keeps a command on the gateway (and actuators) it got in
// on: a reload (Hold, swap the gateway, Release) waits for the commands
// running, and the ones arriving meanwhile wait for the new gateway.
// Gateway.command then checks, in order: retained (refused), payload bytes
// and id, device and command, a replayed id (answered with its first
// result), expires_at (required for remote and console commands unless
// [commands] allow_no_expiry) and the MQTT 5 message expiry, value,
// interlocks, rate limit, and claims the id in the command log. Only then
// does the actuator move: Set gets the deadline (expires_at or the rule's
// timeout, whichever comes first) in its context, the only place a driver
// finds it, and reads the state back itself when the rule says verify.
// The result goes to the result topic (and the response topic), the
// counters and the log.
//
// The command's walk, from the cloud to the demo's seat relay: the uplink
// (gateway/uplink, onMessage) receives {remote}/cmd/seat_driver/heater at
// QoS 2 and hands it, topic mapped to the local prefix, to
// Commands.Remote; under the swap lock Gateway.command decides (check,
// claim) and run calls apply, which hands Actuator.Set (drivers/modbusdev
// Dev.Set) the value and a context with the deadline; Set writes the coil
// through the bus scheduler at Command priority (drivers/bus, ahead of
// polls), reads it back once, and returns. The result is published on
// the local broker and spooled (buffer, class alarm), which the uplink
// drains first to {remote}/cmd/seat_driver/heater/result.
package gateway
