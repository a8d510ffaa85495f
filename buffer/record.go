package buffer

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Record framing, little-endian:
//
//	offset size field
//	0      4    payload length n
//	4      4    CRC-32C (Castagnoli) over bytes 0..3, 8..15 and the payload
//	8      8    sequence number (≥ 1, consecutive within a class)
//	16     n    payload
//
// The checksum covers the length and the sequence number, so a flipped length
// or sequence number is caught like a flipped payload byte. Consecutive
// sequence numbers confirm the framing, and a reader that lost it resyncs by
// looking for the next position where a record with a plausible sequence
// number and a matching checksum starts.
const recordHeaderSize = 16

// hardMaxRecord bounds the length a decoder accepts whatever the options say,
// so damaged bytes never make it allocate more.
const hardMaxRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoding errors. They never leave the package: a reader treats them as
// damage to skip or truncate.
var (
	errShort    = errors.New("buffer: short record")
	errLength   = errors.New("buffer: record length out of range")
	errChecksum = errors.New("buffer: record checksum mismatch")
	errSeq      = errors.New("buffer: record sequence number out of range")
)

// recordSize is the framed size of a payload of n bytes.
func recordSize(n int) int { return recordHeaderSize + n }

// appendRecord appends the framed record to dst.
func appendRecord(dst []byte, seq uint64, payload []byte) []byte {
	var h [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// recordHeader is a decoded, not yet verified record header.
type recordHeader struct {
	n   int
	crc uint32
	seq uint64
}

// parseHeader decodes a header from b (at least recordHeaderSize bytes) and
// checks what it can without the payload: the length against maxLen and the
// sequence number against [minSeq, maxSeq].
func parseHeader(b []byte, maxLen int, minSeq, maxSeq uint64) (recordHeader, error) {
	if len(b) < recordHeaderSize {
		return recordHeader{}, errShort
	}
	h := recordHeader{
		n:   int(binary.LittleEndian.Uint32(b[0:4])),
		crc: binary.LittleEndian.Uint32(b[4:8]),
		seq: binary.LittleEndian.Uint64(b[8:16]),
	}
	if h.n < 0 || h.n > maxLen || h.n > hardMaxRecord {
		return h, errLength
	}
	if h.seq == 0 || h.seq < minSeq || h.seq > maxSeq {
		return h, errSeq
	}
	return h, nil
}

// verify checks the checksum of a record whose header is hb and payload p.
func (h recordHeader) verify(hb, p []byte) error {
	crc := crc32.Update(0, castagnoli, hb[0:4])
	crc = crc32.Update(crc, castagnoli, hb[8:16])
	crc = crc32.Update(crc, castagnoli, p)
	if crc != h.crc {
		return errChecksum
	}
	return nil
}

// decodeRecord decodes the record at the start of b. maxLen bounds the
// payload length; the sequence number must lie in [minSeq, maxSeq]. The
// payload aliases b. It is the decoder of outside bytes that the fuzz target
// exercises; readers use parseHeader and verify on their own buffers.
func decodeRecord(b []byte, maxLen int, minSeq, maxSeq uint64) (seq uint64, payload []byte, size int, err error) {
	h, err := parseHeader(b, maxLen, minSeq, maxSeq)
	if err != nil {
		return 0, nil, 0, err
	}
	if len(b)-recordHeaderSize < h.n {
		return 0, nil, 0, errShort
	}
	p := b[recordHeaderSize : recordHeaderSize+h.n]
	if err := h.verify(b, p); err != nil {
		return 0, nil, 0, err
	}
	return h.seq, p, recordSize(h.n), nil
}

// resync returns the offset of the first position at or after from in b
// where a complete, valid record with a sequence number in [minSeq, maxSeq]
// starts, or -1.
func resync(b []byte, from int, maxLen int, minSeq, maxSeq uint64) int {
	for i := from; i+recordHeaderSize <= len(b); i++ {
		if _, _, _, err := decodeRecord(b[i:], maxLen, minSeq, maxSeq); err == nil {
			return i
		}
	}
	return -1
}
