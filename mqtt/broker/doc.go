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
// written once, and a retained topic once with its latest message; a
// message held by many sessions is written once and referred to by id
// from each session's records (in the snapshot too, and restored as one
// shared copy), so a message queued for n offline sessions costs its size
// plus about 20 bytes per session, and a retained topic republished
// every poll costs its size per interval instead of the whole state.
// Files written before the references are read as before.
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
// # Limits and the memory ceiling
//
// A local client may be hostile, so every resource a client can make the
// broker hold has a bound, in bytes as well as in count:
//
//   - connections: MaxConnections logged-in clients (default 100), and
//     MaxPendingConnections (default 64) not logged in yet, each with
//     ConnectTimeout (5 s) to send CONNECT; when the pending budget is
//     full the silent one waiting longest is closed, so silent sockets
//     never keep a real client out, then one whose CONNECT waits for its
//     login turn, then the oldest. A failing Accept (out of file
//     descriptors) is retried with back-off and reported by Health;
//   - one packet: MaxPacketSize (512 KiB), read in chunks as it arrives;
//   - one client's write buffer: MaxWriteBuffer (64 KiB) for QoS 0, and a
//     client whose acknowledgements pass four times it is disconnected;
//   - queued and in-flight messages: MaxQueued (1000) and MaxInflight
//     (64) per session, MaxSessionBytes (1 MiB) per session and
//     MaxQueuedBytes (32 MiB) for all sessions together, a message
//     counted once per session holding it;
//   - sessions that outlive their connection: MaxSessions (256), a new
//     one beyond it refused;
//   - retained messages of clients: MaxRetained (10,000),
//     MaxRetainedBytes (8 MiB) and MaxRetainedMessageBytes (64 KiB) each;
//     the gateway's own (published in process) have a budget of the same
//     size of their own, so clients cannot crowd them out, and $SYS is
//     not limited;
//   - an in-process subscriber: 1024 messages and 4 MiB waiting.
//
// The memory the broker can be made to hold is therefore at most about
//
//	(C + P) × (2 S + 4 W) + 2 Q + 2 R + L × 4 MiB + X
//
// with C = MaxConnections, P = MaxPendingConnections, S = MaxPacketSize
// (a packet being read, and one QoS 0 message over the write buffer),
// W = MaxWriteBuffer, Q = MaxQueuedBytes (the messages, and their encoded
// copies waiting to be written while in flight), R = MaxRetainedBytes
// (the clients' and the gateway's), L the gateway's in-process subscriptions
// (one for commands plus one per forward rule) and X the sessions and
// subscriptions themselves (about 1 KiB per session plus 100 bytes per
// subscription, at most MaxSubscriptions each). With the defaults:
// 164 × 1.25 MiB + 64 MiB + 16 MiB = 285 MiB, plus L × 4 MiB and X (a
// few MiB for an in-vehicle configuration): about 300 MiB of a 512 MB
// Raspberry Pi in the worst case, against 5.9 MB idle.
//
// Access control and the limits meet in a few places:
//
//   - a CONNECT waiting for its login turn has been heard, so it is never
//     taken for a silent socket; it stays pending for at most its turn
//     (5 s ahead at most, or it is refused as busy) and ConnectTimeout
//     for a check slot, and a full pending budget closes it after the
//     silent sockets but before any other connection;
//   - a client id refused for being another user's is refused before
//     MaxSessions is consulted: it takes no place and does not count as a
//     session refused. MaxSessions is one budget for every user, so held
//     sessions keep their place whoever asks, and an account with the
//     right to persistent sessions can use the places not yet taken;
//   - the drain after the server's DISCONNECT happens only on logged-in
//     connections, never on pending ones, and holds the socket (a file
//     descriptor, no buffer of its own) at most 1 s more, counted against
//     MaxConnections until the read loop ends; a refused CONNECT is
//     closed at once;
//   - a will refused at CONNECT is never held; the messages queued for a
//     resumed session under a subscription the ACL dropped are dropped
//     too, their bytes given back;
//   - the cloud's messages, which come in through PublishAs as UplinkUser
//     and meet the ACL, count with the gateway's own against its retained
//     budget, not the clients'; the login scores (at most 4096 sources and
//     4096 users) are part of X.
//
// Spec clauses are cited inline as [MQTT-x.y.z-n] (MQTT 5.0 numbering
// unless marked 3.1.1).
package broker
