package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrRecord is returned by (*Record).UnmarshalBinary for bytes that are not a
// record of a known version.
var ErrRecord = errors.New("gateway: malformed record")

// RecordVersion is the encoding version written by Record.AppendBinary.
const RecordVersion = 1

// MaxRecordField bounds each variable-length field of a decoded record (the
// MQTT limit for a payload is 256 MiB; a topic or correlation data far less).
const MaxRecordField = 256 << 20

// Record is one message in the outbound queue: what the uplink publishes to
// the cloud. The gateway encodes it with AppendBinary and spools the bytes;
// the uplink decodes them with UnmarshalBinary.
type Record struct {
	Topic   string // local topic name, e.g. vehicles/VIN/telemetry/cabin
	Payload []byte
	QoS     byte // 0, 1 or 2: the QoS the record asks for
	Retain  bool
	// Time is when the gateway accepted the message (UTC, nanoseconds).
	Time time.Time
	// Expiry is the MQTT 5 message expiry interval counted from Time, kept
	// to the millisecond (rounded up); zero means the message never expires. Use Remaining to compute what is
	// left when it is finally sent.
	Expiry          time.Duration
	ResponseTopic   string // MQTT 5 response topic, empty if none
	CorrelationData []byte // MQTT 5 correlation data, nil if none
}

// Record encoding, version 1 (all integers big-endian, lengths uvarint):
//
//	version   byte (1)
//	flags     byte: bits 0-1 QoS, bit 2 retain, bit 3 has expiry,
//	          bit 4 has time; other bits must be 0
//	time      int64 Unix nanoseconds (if flag 4)
//	expiry    uvarint milliseconds (if flag 3)
//	topic     uvarint length + UTF-8 bytes
//	payload   uvarint length + bytes
//	response  uvarint length + UTF-8 bytes
//	corrdata  uvarint length + bytes; a nil and an empty slice are both
//	          encoded as length 0 and decoded as nil
//
// The queue frames and checksums each record; this format carries no
// checksum of its own. Trailing bytes are an error.
const (
	flagQoS    = 0x03
	flagRetain = 0x04
	flagExpiry = 0x08
	flagTime   = 0x10
)

// AppendBinary appends the encoding of r to dst.
func (r Record) AppendBinary(dst []byte) ([]byte, error) {
	if r.QoS > 2 {
		return dst, fmt.Errorf("gateway: record QoS %d", r.QoS)
	}
	if r.Expiry < 0 {
		return dst, fmt.Errorf("gateway: record expiry %v is negative", r.Expiry)
	}
	flags := r.QoS
	if r.Retain {
		flags |= flagRetain
	}
	if r.Expiry > 0 {
		flags |= flagExpiry
	}
	if !r.Time.IsZero() {
		flags |= flagTime
	}
	dst = append(dst, RecordVersion, flags)
	if !r.Time.IsZero() {
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	}
	if r.Expiry > 0 {
		// Whole milliseconds, rounded up so that a tiny expiry stays one.
		dst = binary.AppendUvarint(dst, uint64((r.Expiry+time.Millisecond-1)/time.Millisecond))
	}
	dst = appendBytes(dst, []byte(r.Topic))
	dst = appendBytes(dst, r.Payload)
	dst = appendBytes(dst, []byte(r.ResponseTopic))
	dst = appendBytes(dst, r.CorrelationData)
	return dst, nil
}

// MarshalBinary returns the encoding of r.
func (r Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, 16+len(r.Topic)+len(r.Payload)+len(r.ResponseTopic)+len(r.CorrelationData)))
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// UnmarshalBinary decodes b into r. The decoded Payload and CorrelationData
// are copies; r does not keep b.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("%w: %d bytes", ErrRecord, len(b))
	}
	if b[0] != RecordVersion {
		return fmt.Errorf("%w: version %d", ErrRecord, b[0])
	}
	flags := b[1]
	if flags&^(flagQoS|flagRetain|flagExpiry|flagTime) != 0 || flags&flagQoS == 3 {
		return fmt.Errorf("%w: flags %#x", ErrRecord, flags)
	}
	b = b[2:]
	var out Record
	out.QoS = flags & flagQoS
	out.Retain = flags&flagRetain != 0
	if flags&flagTime != 0 {
		if len(b) < 8 {
			return fmt.Errorf("%w: short time", ErrRecord)
		}
		out.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
		b = b[8:]
	}
	if flags&flagExpiry != 0 {
		ms, n := binary.Uvarint(b)
		if n <= 0 || ms == 0 || ms > uint64(1<<62)/uint64(time.Millisecond) {
			return fmt.Errorf("%w: bad expiry", ErrRecord)
		}
		out.Expiry = time.Duration(ms) * time.Millisecond
		b = b[n:]
	}
	var topic, resp []byte
	var err error
	if topic, b, err = readBytes(b, "topic"); err != nil {
		return err
	}
	if out.Payload, b, err = readBytes(b, "payload"); err != nil {
		return err
	}
	if resp, b, err = readBytes(b, "response topic"); err != nil {
		return err
	}
	if out.CorrelationData, b, err = readBytes(b, "correlation data"); err != nil {
		return err
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrRecord, len(b))
	}
	if !utf8.Valid(topic) || !utf8.Valid(resp) {
		return fmt.Errorf("%w: topic not UTF-8", ErrRecord)
	}
	out.Topic, out.ResponseTopic = string(topic), string(resp)
	*r = out
	return nil
}

// readBytes reads one length-prefixed field; an empty field is nil.
func readBytes(b []byte, what string) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: %s length", ErrRecord, what)
	}
	b = b[k:]
	if n > MaxRecordField || n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s length %d, %d bytes left", ErrRecord, what, n, len(b))
	}
	if n == 0 {
		return nil, b, nil
	}
	return append([]byte(nil), b[:n]...), b[n:], nil
}

// Remaining returns the message expiry left at now, for the MQTT 5 Message
// Expiry Interval of the publish, and whether the record is still alive. A
// record without Expiry is always alive with zero Remaining. Expiry counts
// whole seconds on the wire; a fraction left is rounded up.
func (r Record) Remaining(now time.Time) (time.Duration, bool) {
	if r.Expiry <= 0 {
		return 0, true
	}
	if r.Time.IsZero() {
		return r.Expiry, true
	}
	left := r.Expiry - now.Sub(r.Time)
	if left <= 0 {
		return 0, false
	}
	return left, true
}
