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
// and 2 messages, and unreleased incoming QoS 2 packet identifiers) are
// written as one checksummed snapshot file, replaced atomically (write to a
// temporary file, fsync, rename, fsync the directory) at most once per
// Options.SyncInterval (default 1 s) while anything changed, and at
// Shutdown. A kill -9 therefore loses at most the changes of the last
// interval. A damaged or unreadable snapshot is logged and ignored: the
// server always starts.
//
// Spec clauses are cited inline as [MQTT-x.y.z-n] (MQTT 5.0 numbering
// unless marked 3.1.1).
package broker
