// Package packet encodes and decodes MQTT control packets: MQTT 5.0 (protocol
// level 5), MQTT 3.1.1 (level 4), and MQTT 3.1 (level 3, "MQIsdp", decode of
// CONNECT and the 3.1.1 layouts for everything else).
//
// The codec is shared by the embedded broker and the uplink client, so it
// checks everything a receiver can check from the bytes alone: fixed header
// flags, lengths, UTF-8 strings, which property may appear in which packet,
// duplicate properties, reason codes valid for the packet, packet
// identifiers and the flag rules of CONNECT, PUBLISH and SUBSCRIBE. Rules
// that need connection state (topic alias ranges, receive maximum, ACLs,
// topic filter syntax) are the caller's. Spec clauses are cited inline as
// [MQTT-x.y.z-n]; clause numbers are those of MQTT 5.0 unless marked 3.1.1.
//
// Decoding errors are *ReasonError values carrying the reason code to send
// back (0x81 malformed packet, 0x82 protocol error, 0x95 packet too large,
// …); they wrap ErrMalformed, ErrProtocol or ErrTooLarge for errors.Is.
//
// Encoding appends to a caller's buffer: Append(buf[:0], p, v) does not
// allocate once buf has grown to the packet's size.
//
// Packets are plain values; the package keeps no state and every function
// is safe for concurrent use. A decoded packet's strings and byte slices
// may share one allocation (see Read and Decode): treat them as read-only.
package packet
