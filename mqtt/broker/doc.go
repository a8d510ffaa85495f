// Package broker is an embedded MQTT broker speaking MQTT 3.1.1 (and 3.1)
// and MQTT 5.0 on the same listeners: TCP, TLS (optionally with client
// certificates, the certificate's common name becoming the user name) and
// WebSocket (subprotocol "mqtt", binary frames).
//
// A Server is built with New from Options, serves connections with Serve,
// ServeConn or ListenAndServe and stops with Shutdown, like net/http. The
// gateway publishes into it and subscribes to it in process with Publish and
// Subscribe, without a socket.
//
// # Design
//
// Every connection has one goroutine reading packets through a small
// bufio.Reader taken from a pool when the first byte of a packet arrives
// and given back when the buffered bytes are consumed, so an idle
// connection waits without one; bodies larger than the buffer are
// allocated per packet, bounded by the maximum packet size. The TLS
// handshake and CONNECT run on the accepting goroutine, which then starts
// the read loop on a fresh, minimal stack and exits: their deep calls do
// not leave a grown stack behind, and the idle read path is shallow enough
// for the garbage collector to shrink a stack that a burst of packets grew.
// Outgoing bytes are appended to a per-connection buffer under a mutex; a
// writer goroutine exists only while that buffer is non-empty and writes
// everything queued in one call, so an idle connection costs one goroutine
// with a 2 KiB stack and about 2 KiB of heap (about 5 KB of RSS each for
// the first thousand on a fresh process: BenchmarkIdleConnections), and a
// busy one batches many packets per system call. Session maps are made on
// their first entry. The outgoing buffer is bounded:
// QoS 0 messages beyond the bound are dropped (counted); QoS 1 and 2
// messages wait in the session's bounded queue until the client's receive
// maximum allows them out; a client whose unread acknowledgements pass
// four times the bound is disconnected.
//
// A session keeps its in-flight messages in a map keyed by packet
// identifier and its queued messages in a ring, so acknowledgements and
// delivery never scan. Subscriptions live in a topic.Tree keyed by session;
// a publication is matched once and encoded once per distinct set of bytes
// (protocol level, QoS, retain flag) and the packet identifier patched into
// each copy.
//
// # Persistence
//
// With Options.StateDir set, retained messages and the sessions that
// outlive their connection (their subscriptions, in-flight and queued QoS 1
// and 2 messages, and unreleased incoming QoS 2 packet identifiers) are kept
// in two files: a snapshot (broker.state) and a journal (broker.journal)
// of the changes since, each record framed with its length and CRC-32C.
// Changes are noted in memory as they happen (a message queued, sent,
// released or acknowledged; a session started, changed or ended; a
// retained topic set or cleared) and a background goroutine appends them
// to the journal and fsyncs it once per Options.SyncInterval (default 1 s):
// one write and one fsync per interval for the whole broker, and nothing
// at all while nothing persistent changed. Within an interval a message
// queued and acknowledged is not written, a session's own state is
// written once, and a retained topic once with its latest message, so
// a message queued for an offline session costs its size plus about 17
// bytes, and a retained topic republished every poll costs its size per
// interval instead of the whole state.
//
// When the journal passes both 1 MiB and twice the live state (estimated
// as the last snapshot plus the messages queued since, less those done
// since: a queue that only fills is not compacted), and at Shutdown, the
// state is written as a fresh snapshot (temporary file,
// fsync, rename, fsync of the directory) and an empty journal is started
// the same way; both carry a generation number, so a journal is replayed
// only onto its own snapshot, and a crash between the two steps loses
// nothing.
//
// More than 65,536 changes within one interval are not kept one by one:
// the sync writes a snapshot instead, bounding the memory they take.
//
// A kill -9 or power loss therefore loses at most the changes of the last
// SyncInterval. At start the snapshot is loaded and the journal replayed;
// a torn or damaged journal tail (the records from the first bad one on)
// is dropped with a warning and the rest kept; a damaged snapshot is
// renamed broker.state.bad (its journal broker.journal.bad) and the server
// starts empty. The server always starts. Snapshots of earlier versions
// (one gob-encoded file) are read and rewritten in the current layout.
//
// # Access
//
// Every message that enters the broker from a publisher meets one decision
// (mayPublish) when it is accepted: a client's PUBLISH (and so a retained
// message), a will, and an in-process PublishAs on behalf of a user, such
// as the gateway's uplink delivering the cloud's messages as UplinkUser.
// $SYS is the broker's own; other $-topics follow the ACL, whose rules must
// name them ("#" and "+" do not match them [MQTT-4.7.2-1]). Publish, the
// owner's door, is not checked. A will is checked at CONNECT, as Mosquitto
// does: one the user may not publish refuses the CONNECT with 0x87 (3.1.1:
// 5), so no will can fire later on a topic its client could not use.
//
// A session belongs to the user who started it. A CONNECT from another
// user with its client id, while it is live or persisted, is refused with
// 0x85 (3.1.1: 2, identifier rejected) and the session left alone, not
// taken over, not discarded by a clean start. A resumed session's
// subscriptions are checked against the ACL in force; those it no longer
// allows are dropped, with one log line. The journal records the owner; a
// session from an older journal, without one, is claimed by the first user
// who resumes it. User names beginning with '$' are reserved for in-process
// publishers; client ids and user names with control characters (U+0001..
// U+001F, U+007F..U+009F) are refused, as are topics with them.
//
// WebSocket requests carrying an Origin header (browsers) are refused with
// 403 unless the origin is in Options.WSAllowedOrigins; clients sending none
// are served. Anonymous access defaults to on only when every listener is
// on loopback and none is a WebSocket listener, and a connection over a
// WebSocket is anonymous only with AllowAnonymous set.
//
// Password checks (login.go): an unknown user costs one verification like
// a known one; each source address (loopback excepted) and user has a
// failure score (halved every minute) that, from five failures, admits one
// attempt per 250 ms doubling to one per 5 s, and refuses as busy an
// attempt whose turn is further away; a password that passed since the
// start passes at once; at most NumCPU verifications run at once, attempts
// without recent failures first; failures are logged once a minute as
// counts.
//
// After its last packet to a connected client (a DISCONNECT) the server
// shuts down its writing side (over WebSocket: a close frame first) and
// discards up to 64 KiB of input for up to 1 s before closing, so that a
// client still sending reads the reason code instead of a reset.
//
// Spec clauses are cited inline as [MQTT-x.y.z-n] (MQTT 5.0 numbering
// unless marked 3.1.1).
package broker
