package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// The outbox remembers, across a kill of the process, which queue records
// are on the wire under which packet identifier and which have completed,
// so that a restarted uplink resumes its flows with the same identifiers
// (the server drops a QoS 2 message it already has) and does not send again
// what the cloud acknowledged after the queue's durable cursor was last
// written.
//
// The file is mapped shared into memory (on Linux): every update is a plain
// memory store that the kernel keeps when the process dies. A power loss
// may lose the latest updates, and so bring back duplicates, never a loss:
// the queue's cursor alone decides what is deleted.
//
// Layout, little-endian:
//
//	header  4096 bytes: magic "edgegwU1", ring size u32, class count u32,
//	        class names (64 bytes each, NUL-padded) from offset 64
//	slots   65536 × 16 bytes, one per packet identifier:
//	        state u8 (0 free, 1 PUBLISH sent, 2 PUBREC received),
//	        class u8, qos u8, 1 reserved, span u32, seq u64;
//	        span 0: the flow carries the record seq alone; span n > 0:
//	        it carries a batch (batch.go) of the class's records in
//	        [seq, seq+n) that were still to be sent when it was made
//	rings   one per class: ringSize × u32, the low 32 bits of each
//	        completed sequence number at index seq mod ringSize
//
// A slot is written seq first and state last, so a kill between stores
// leaves a free slot or a whole one.
const (
	outboxMagic   = "edgegwU1"
	headerSize    = 4096
	slotSize      = 16
	slotsSize     = 65536 * slotSize
	ringSize      = 1 << 18
	maxClasses    = 62
	classNameSize = 64
)

const (
	slotFree     = 0
	slotSent     = 1
	slotReceived = 2
)

type slot struct {
	id    uint16
	state byte
	class int
	qos   byte
	seq   uint64
	span  uint32 // 0: one record; n: a batch of [seq, seq+n)
}

type outbox struct {
	mem     []byte
	f       *os.File
	unmap   func([]byte) error
	classes int
}

func outboxLen(classes int) int { return headerSize + slotsSize + classes*ringSize*4 }

// openOutbox maps path, creating or resetting it when it is missing, short
// or made for other classes (its state is then lost: duplicates are
// possible, nothing else). path "" keeps the outbox in memory.
func openOutbox(path string, classes []string) (*outbox, error) {
	if len(classes) > maxClasses {
		return nil, fmt.Errorf("uplink: %d queue classes, at most %d", len(classes), maxClasses)
	}
	n := outboxLen(len(classes))
	hdr := make([]byte, headerSize)
	copy(hdr, outboxMagic)
	binary.LittleEndian.PutUint32(hdr[8:], ringSize)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(classes)))
	for i, c := range classes {
		copy(hdr[64+i*classNameSize:64+(i+1)*classNameSize-1], c)
	}
	if path == "" {
		mem := make([]byte, n)
		copy(mem, hdr)
		return &outbox{mem: mem, classes: len(classes)}, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("uplink: outbox: %w", err)
	}
	cur := make([]byte, headerSize)
	if _, err := f.ReadAt(cur, 0); err != nil || string(cur) != string(hdr) {
		// New, or for another layout: start empty.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("uplink: outbox: %w", err)
		}
		if _, err := f.WriteAt(hdr, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("uplink: outbox: %w", err)
		}
	}
	if err := f.Truncate(int64(n)); err != nil {
		f.Close()
		return nil, fmt.Errorf("uplink: outbox: %w", err)
	}
	mem, unmap, err := mapFile(f, n)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uplink: outbox: %w", err)
	}
	return &outbox{mem: mem, f: f, unmap: unmap, classes: len(classes)}, nil
}

func (o *outbox) close() error {
	var err error
	if o.unmap != nil {
		err = o.unmap(o.mem)
	}
	if o.f != nil {
		err = errors.Join(err, o.f.Close())
	}
	o.mem = nil
	return err
}

func (o *outbox) slotBytes(id uint16) []byte {
	off := headerSize + int(id)*slotSize
	return o.mem[off : off+slotSize]
}

// start records that the PUBLISH of (class, seq) goes out as id.
func (o *outbox) start(id uint16, class int, qos byte, seq uint64) {
	o.startBatch(id, class, qos, seq, 0)
}

// startBatch records that a batch of the records [seq, seq+span) of
// class goes out as id.
func (o *outbox) startBatch(id uint16, class int, qos byte, seq uint64, span uint32) {
	b := o.slotBytes(id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[4:], span)
	b[1], b[2], b[3] = byte(class), qos, 0
	b[0] = slotSent
}

// freeBatch frees id's slot if it still holds the batch starting at seq.
func (o *outbox) freeBatch(id uint16, class int, seq uint64) {
	if id == 0 {
		return
	}
	b := o.slotBytes(id)
	if b[0] != slotFree && int(b[1]) == class && binary.LittleEndian.Uint64(b[8:]) == seq {
		b[0] = slotFree
	}
}

// received records the PUBREC of id.
func (o *outbox) received(id uint16) { o.slotBytes(id)[0] = slotReceived }

// complete records that (class, seq) is acknowledged and frees id's slot
// if it still holds that record.
func (o *outbox) complete(id uint16, class int, seq uint64) {
	off := headerSize + slotsSize + (class*ringSize+int(seq%ringSize))*4
	binary.LittleEndian.PutUint32(o.mem[off:], uint32(seq))
	if id == 0 {
		return
	}
	b := o.slotBytes(id)
	if b[0] != slotFree && int(b[1]) == class && binary.LittleEndian.Uint64(b[8:]) == seq {
		b[0] = slotFree
	}
}

// completed reports whether (class, seq) was acknowledged recently (within
// the last ringSize records of its class).
func (o *outbox) completed(class int, seq uint64) bool {
	off := headerSize + slotsSize + (class*ringSize+int(seq%ringSize))*4
	return binary.LittleEndian.Uint32(o.mem[off:]) == uint32(seq) && seq != 0
}

func (o *outbox) free(id uint16) { o.slotBytes(id)[0] = slotFree }

// slots returns the slots in use.
func (o *outbox) slots() []slot {
	var out []slot
	for id := 1; id < 65536; id++ {
		b := o.slotBytes(uint16(id))
		if b[0] == slotFree {
			continue
		}
		s := slot{id: uint16(id), state: b[0], class: int(b[1]), qos: b[2], seq: binary.LittleEndian.Uint64(b[8:]),
			span: binary.LittleEndian.Uint32(b[4:])}
		if (s.state != slotSent && s.state != slotReceived) || s.class >= o.classes || s.qos < 1 || s.qos > 2 {
			b[0] = slotFree // damage: forget it
			continue
		}
		out = append(out, s)
	}
	return out
}
