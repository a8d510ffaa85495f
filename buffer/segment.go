package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Segment file layout: a 32-byte header, then records back to back.
//
//	offset size field
//	0      8    magic "EGWQSEG1"
//	8      8    first sequence number (also the file name, %020d.seg)
//	16     8    creation time, Unix nanoseconds (informative)
//	24     4    zero
//	28     4    CRC-32C over bytes 0..27
//
// Segments are append-only; a sealed segment is never written again and is
// deleted as a whole once every record in it is acknowledged or dropped.
const (
	segHeaderSize = 32
	segMagic      = "EGWQSEG1"
	segSuffix     = ".seg"
)

var errSegHeader = errors.New("buffer: bad segment header")

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first sequence number encoded in a segment file
// name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

func appendSegHeader(dst []byte, first uint64, created time.Time) []byte {
	var h [segHeaderSize]byte
	copy(h[0:8], segMagic)
	binary.LittleEndian.PutUint64(h[8:16], first)
	binary.LittleEndian.PutUint64(h[16:24], uint64(created.UnixNano()))
	binary.LittleEndian.PutUint32(h[28:32], crc32.Checksum(h[0:28], castagnoli))
	return append(dst, h[:]...)
}

// parseSegHeader checks a segment header and returns its first sequence
// number.
func parseSegHeader(b []byte) (uint64, error) {
	if len(b) < segHeaderSize || string(b[0:8]) != segMagic ||
		binary.LittleEndian.Uint32(b[28:32]) != crc32.Checksum(b[0:28], castagnoli) {
		return 0, errSegHeader
	}
	return binary.LittleEndian.Uint64(b[8:16]), nil
}

// segment is one segment file of a class. Fields are guarded by the class's
// mu, except the immutable first and path.
type segment struct {
	first uint64 // sequence number of the first record, from the name
	path  string
	size  int64 // bytes of valid data: the committed size while active
	// last is the sequence number of the last record written to it, first-1
	// when it holds none. Known exactly for the active segment; for a sealed
	// segment it is the next segment's first-1.
	last      uint64
	lastWrite time.Time // time of the last append, for MaxAge
}

// listSegments returns the segment files in dir sorted by first sequence
// number. Files that are not segments are left alone.
func listSegments(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range ents {
		first, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		segs = append(segs, &segment{
			first:     first,
			path:      filepath.Join(dir, e.Name()),
			size:      info.Size(),
			lastWrite: info.ModTime(),
		})
	}
	slices.SortFunc(segs, func(a, b *segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return segs, nil
}

// syncDir fsyncs a directory so that file creations and deletions in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
