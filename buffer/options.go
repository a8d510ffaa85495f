package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// FsyncPolicy says when appended records are flushed to stable storage.
type FsyncPolicy int

// Fsync policies; see the package documentation.
const (
	FsyncAlways   FsyncPolicy = iota // every batch fdatasync'ed before Put returns
	FsyncInterval                    // fdatasync every Options.FsyncInterval
	FsyncNever                       // only at rotation and Close (tests, tmpfs)
)

func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncPolicy(%d)", int(p))
}

// UnmarshalText accepts "always", "interval" and "never".
func (p *FsyncPolicy) UnmarshalText(b []byte) error {
	for _, v := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		if string(b) == v.String() {
			*p = v
			return nil
		}
	}
	return fmt.Errorf("buffer: fsync policy %q: want always, interval or never", b)
}

// FullPolicy says what a class does when a Put would exceed its bounds.
type FullPolicy int

// Full policies.
const (
	DropOldest FullPolicy = iota // delete the oldest whole segment, counting its records as dropped
	Reject                       // fail the Put with ErrFull
)

func (p FullPolicy) String() string {
	switch p {
	case DropOldest:
		return "drop_oldest"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// UnmarshalText accepts "drop_oldest" and "reject".
func (p *FullPolicy) UnmarshalText(b []byte) error {
	for _, v := range []FullPolicy{DropOldest, Reject} {
		if string(b) == v.String() {
			*p = v
			return nil
		}
	}
	return fmt.Errorf("buffer: full policy %q: want drop_oldest or reject", b)
}

// ClassOptions configures one priority class.
type ClassOptions struct {
	// Name is the class name and its subdirectory: 1 to 64 characters of
	// a-z, 0-9, '_' and '-'.
	Name string
	// MaxBytes bounds the class's bytes on disk (segments including
	// acknowledged records not yet deleted); 0 means unbounded, else at
	// least 16 KiB. A bounded class uses segments of at most MaxBytes/4 so
	// that dropping one frees a useful fraction.
	MaxBytes int64
	// Policy applies when a Put would exceed MaxBytes or the free-space
	// floor.
	Policy FullPolicy
	// MaxAge, when positive, drops records older than it, a whole segment at
	// a time: a segment goes once its newest record is older than MaxAge.
	// Ages of segments written before a restart come from the file's
	// modification time, so a wall clock that jumps forward drops early.
	MaxAge time.Duration
}

// Options configures a Queue. The zero value is usable: classes "alarm" and
// "telemetry", FsyncAlways, 4 MiB segments.
type Options struct {
	// Classes in priority order: Next drains Classes[0] first. Empty means
	// DefaultClasses.
	Classes []ClassOptions
	// Fsync is the durability policy of Put.
	Fsync FsyncPolicy
	// FsyncInterval is the loss window of FsyncInterval; default 200 ms.
	FsyncInterval time.Duration
	// SegmentSize is the size at which the active segment is sealed and a
	// new one started; default 4 MiB, minimum 4 KiB.
	SegmentSize int64
	// MaxRecordSize bounds a record's payload; default 1 MiB, at most 64 MiB.
	MaxRecordSize int
	// MinFreeBytes is the free-space floor of the queue's file system
	// (statfs, Linux only); 0 disables it.
	MinFreeBytes uint64
	// CursorInterval is how often, at most, the durable cursor is written
	// while acknowledgements arrive (segment deletion and Close write it
	// regardless); default 2 s. Records acknowledged within the last
	// interval may be delivered again after a crash.
	CursorInterval time.Duration
	// Log receives state changes: recovery actions, skipped damage, drops.
	// Nil discards.
	Log *slog.Logger

	fs fileSystem // tests inject failing files
}

// DefaultClasses are used when Options.Classes is empty.
var DefaultClasses = []ClassOptions{{Name: "alarm"}, {Name: "telemetry"}}

const (
	defaultSegmentSize    = 4 << 20
	minSegmentSize        = 4 << 10
	minMaxBytes           = 4 * minSegmentSize
	defaultFsyncInterval  = 200 * time.Millisecond
	defaultCursorInterval = 2 * time.Second
	defaultMaxRecord      = 1 << 20
)

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if len(o.Classes) == 0 {
		o.Classes = DefaultClasses
	}
	o.Classes = append([]ClassOptions(nil), o.Classes...)
	seen := map[string]bool{}
	for i, c := range o.Classes {
		if !validClassName(c.Name) {
			errs = append(errs, fmt.Errorf("classes[%d].name: %q: want 1-64 of a-z 0-9 _ -", i, c.Name))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("classes[%d].name: %q: duplicate", i, c.Name))
		}
		seen[c.Name] = true
		if c.MaxBytes < 0 || c.MaxBytes > 0 && c.MaxBytes < minMaxBytes {
			errs = append(errs, fmt.Errorf("classes[%d].max_bytes: %d: want 0 (unbounded) or at least %d", i, c.MaxBytes, minMaxBytes))
		}
		if c.MaxAge < 0 {
			errs = append(errs, fmt.Errorf("classes[%d].max_age: %v: negative", i, c.MaxAge))
		}
		if c.Policy != DropOldest && c.Policy != Reject {
			errs = append(errs, fmt.Errorf("classes[%d].policy: %v: unknown", i, c.Policy))
		}
	}
	switch o.Fsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		errs = append(errs, fmt.Errorf("fsync: %v: unknown", o.Fsync))
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = defaultFsyncInterval
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = defaultSegmentSize
	}
	if o.SegmentSize < minSegmentSize {
		o.SegmentSize = minSegmentSize
	}
	if o.MaxRecordSize <= 0 {
		o.MaxRecordSize = defaultMaxRecord
	}
	if o.MaxRecordSize > hardMaxRecord {
		errs = append(errs, fmt.Errorf("max_record_size: %d: above %d", o.MaxRecordSize, hardMaxRecord))
	}
	if o.CursorInterval <= 0 {
		o.CursorInterval = defaultCursorInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.fs == nil {
		o.fs = osFS{}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("buffer: options: %w", err)
	}
	return o, nil
}

func validClassName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
