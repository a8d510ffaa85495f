package serial

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
)

// ErrLineTooLong is returned once for each line longer than a LineReader's
// maximum; the line is discarded up to its end.
var ErrLineTooLong = errors.New("serial: line too long")

// DefaultMaxLine is the maximum line length of a LineReader made with max 0.
const DefaultMaxLine = 4096

// LineReader reads newline-terminated lines from a Port in a buffer of fixed
// size. It is for one goroutine.
type LineReader struct {
	p       *Port
	buf     []byte // len(buf) is the maximum line length
	r, w    int    // pending bytes are buf[r:w]
	discard bool   // inside an over-long line, dropping up to its end
	tooLong atomic.Int64
}

// NewLineReader returns a LineReader for lines of at most max bytes,
// "\n" excluded, a "\r" before it included (DefaultMaxLine if max <= 0).
func NewLineReader(p *Port, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{p: p, buf: make([]byte, max+1)}
}

// TooLong returns how many over-long lines were discarded.
func (r *LineReader) TooLong() int64 { return r.tooLong.Load() }

// ReadLine returns the next line without its "\n" or "\r\n". The slice is
// valid until the next call. When no complete line arrived within the
// Port's read timeout it returns (nil, nil), so the caller can do periodic
// work. An over-long line gives ErrLineTooLong once and is skipped; when
// the line goes down, the partial line is dropped and the Port's
// ErrOffline error is returned.
func (r *LineReader) ReadLine(ctx context.Context) ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
			line := r.buf[r.r : r.r+i]
			r.r += i + 1
			if r.discard {
				r.discard = false
				continue
			}
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if r.r > 0 { // move the partial line to the front
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		if r.w == len(r.buf) { // no end within the maximum
			r.w = 0
			if !r.discard {
				r.discard = true
				r.tooLong.Add(1)
				return nil, ErrLineTooLong
			}
		}
		n, err := r.p.Read(ctx, r.buf[r.w:])
		if err != nil {
			r.r, r.w, r.discard = 0, 0, false
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		r.w += n
	}
}
