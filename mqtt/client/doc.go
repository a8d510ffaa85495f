// Package client is an MQTT 5.0 and 3.1.1 client built on mqtt/packet, for
// links that drop: it reconnects by itself with capped, jittered backoff,
// keeps its session (clean start off) and redelivers what the server has not
// acknowledged.
//
// # Model
//
// New builds a Client from Options; Run(ctx) owns the connection: it dials,
// sends CONNECT, serves the connection until it is lost, waits a backoff and
// dials again, one attempt at a time, until ctx is done. Each connection runs
// exactly three goroutines (reader, writer, keepalive) that have all exited
// before the next attempt starts, so thousands of failed attempts leave no
// goroutine behind. Dial is New plus Run in the background plus waiting for
// the first connection; Close then stops it.
//
// MQTT 5.0 is the default. With Options.Version zero the client falls back
// to 3.1.1 when the server refuses 5.0: CONNACK 0x84, or any CONNACK in
// 3.1.1's shape (remaining length 2; NATS answers 20 02 00 01), decoded as
// 3.1.1 before it is judged. 3.1.1 is then kept for an hour and 5.0 tried
// again at the next connect. A connection closed before CONNACK is not a
// refusal (a NAT or a load balancer does that): 5.0 is tried again at the
// next attempt, and only at a second close in a row is 3.1.1 tried in the
// same attempt, and kept if accepted (RabbitMQ 3.10). A reset does not
// count. Status reports the version and why.
//
// # Negotiation
//
// The CONNACK's Maximum QoS [MQTT-3.2.2-11], Retain Available
// [MQTT-3.3.1-11], Maximum Packet Size, Receive Maximum and Topic Alias
// Maximum are honoured. A server that cannot do QoS 2 without saying so is
// detected (a SUBACK granting 1 to a QoS 2 subscription, a PUBACK to a QoS
// 2 PUBLISH, DISCONNECT 0x9B, the connection closed within 2 s of a QoS 2
// PUBLISH before any PUBREC twice in a row with the same packet): QoS 2
// messages then go out at QoS 1, with one warning, and count in
// Status.Downgraded; a PUBACK to a QoS 2 PUBLISH completes the flow as
// delivered at least once. Status.MaxQoS and QoSReason say what is in
// effect and why.
//
// # Reconnecting
//
// The backoff doubles from ReconnectMin to ReconnectMax at each failed
// attempt and each connection lost before it lived StableAfter (60 s), so
// that a server that accepts and drops the link is not hammered and does
// not fire the will at each attempt. With Addrs, a failed attempt moves on
// to the next address, at once while some address of the round is
// untried; the dialer gets the host name at each attempt, so DNS is asked
// again. The session and what is pending carry over.
//
// # Publishing
//
// PublishAsync queues a message and calls done when the flow completes:
// at once for QoS 0, on PUBACK for QoS 1, on PUBCOMP for QoS 2. It blocks
// while the in-flight window (the smaller of Options.MaxInflight and the
// server's Receive Maximum) is full. Publish is its synchronous form.
// Messages may be queued while disconnected; they are sent, in order, once
// connected. Unacknowledged messages are sent again after a reconnect: with
// DUP set when the server resumed the session, PUBREL for those the server
// had already received at QoS 2, and as new messages when the session was
// lost (so QoS 2 is exactly once only while the server keeps the session).
// Packet identifiers come from a free list: taking and freeing one is O(1).
//
// TryPublishFlow does not wait: it reports a full window instead. A
// producer that keeps the window full calls it from the done hook of each
// acknowledged message, on the reader goroutine; the reader writes what it
// and the hooks sent before it reads again, with a non-blocking write on the
// socket (the writer goroutine takes what a full socket leaves, and all
// writing over TLS). One wake of the reader then carries an acknowledgement
// in and the next message out. While at least half the window is in
// flight the reader pauses 200 µs before it reads again, so that a wake
// carries a batch of acknowledgements in and their refills out in one
// write (see coalesce.go).
//
// # Metering
//
// Traffic counts the bytes read and written at the socket, under TLS, and
// the bytes of the PUBLISH packets sent, by Message.Class, and received.
//
// # Receiving
//
// Options.OnMessage is called for every inbound PUBLISH, from the
// connection's reader goroutine, before the acknowledgement is sent; it must
// not block for long. At QoS 2 the identifiers of messages delivered and
// awaiting PUBREL are kept across reconnects, and in Options.StateFile
// across restarts of the process, so a message the server sends again with
// DUP is not delivered twice.
//
// # Concurrency
//
// All methods are safe for concurrent use. Callbacks (OnMessage, OnConnect,
// the done funcs of PublishAsync) run on the client's goroutines and must
// not call blocking client methods except from OnConnect; TryPublishFlow
// does not block.
package client
