package buffer

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
)

// The cursor file holds the durable cursor of a class: the highest sequence
// number below which every record is acknowledged (or dropped). It has two
// 512-byte slots written alternately in place, each a whole sector, so a torn
// write damages at most the slot being written and the other still holds the
// previous value. No rename, no new inode, no journalled metadata per write.
//
//	offset size field (per slot)
//	0      8    magic "EGWQCUR1"
//	8      8    generation, +1 per write; the valid slot with the higher one wins
//	16     8    cursor
//	24     4    CRC-32C over bytes 0..23
const (
	cursorSlotSize = 512
	cursorMagic    = "EGWQCUR1"
	cursorName     = "cursor"
)

type cursorFile struct {
	f   file
	gen uint64
}

func encodeCursorSlot(gen, v uint64) []byte {
	b := make([]byte, cursorSlotSize)
	copy(b[0:8], cursorMagic)
	binary.LittleEndian.PutUint64(b[8:16], gen)
	binary.LittleEndian.PutUint64(b[16:24], v)
	binary.LittleEndian.PutUint32(b[24:28], crc32.Checksum(b[0:24], castagnoli))
	return b
}

func decodeCursorSlot(b []byte) (gen, v uint64, ok bool) {
	if len(b) < 28 || string(b[0:8]) != cursorMagic ||
		binary.LittleEndian.Uint32(b[24:28]) != crc32.Checksum(b[0:24], castagnoli) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[8:16]), binary.LittleEndian.Uint64(b[16:24]), true
}

// decodeCursor returns the cursor stored in the contents of a cursor file;
// ok is false when neither slot is valid.
func decodeCursor(b []byte) (gen, v uint64, ok bool) {
	for i := 0; i < 2; i++ {
		lo := i * cursorSlotSize
		if lo >= len(b) {
			break
		}
		g, c, good := decodeCursorSlot(b[lo:min(len(b), lo+cursorSlotSize)])
		if good && (!ok || g > gen) {
			gen, v, ok = g, c, true
		}
	}
	return gen, v, ok
}

// openCursor opens or creates the cursor file at path and returns the stored
// cursor. found is false when the file is new, empty or unreadable in both
// slots; the caller then starts from the oldest segment.
func openCursor(fsys fileSystem, path string) (c *cursorFile, v uint64, found, created bool, err error) {
	_, statErr := os.Stat(path)
	created = os.IsNotExist(statErr)
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, false, false, err
	}
	b := make([]byte, 2*cursorSlotSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		f.Close()
		return nil, 0, false, false, err
	}
	gen, v, found := decodeCursor(b[:n])
	return &cursorFile{f: f, gen: gen}, v, found, created, nil
}

// write stores v durably in the slot not holding the current value.
func (c *cursorFile) write(v uint64) error {
	gen := c.gen + 1
	if _, err := c.f.WriteAt(encodeCursorSlot(gen, v), int64(gen%2)*cursorSlotSize); err != nil {
		return err
	}
	if err := datasync(c.f); err != nil {
		return err
	}
	c.gen = gen
	return nil
}

func (c *cursorFile) close() error { return c.f.Close() }
