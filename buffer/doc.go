// Package buffer is edgegw's disk-backed outbound queue: readings and alarms
// wait here, across power loss and days without coverage, until the cloud has
// acknowledged them.
//
// # Model
//
// A Queue has priority classes (by default "alarm", then "telemetry"), each
// an independent append-only log in its own subdirectory with its own
// sequence numbers, starting at 1 and consecutive. Producers Put opaque
// records into a class; the consumer takes them with Next, highest-priority
// class first and in order within a class, and acknowledges each with Ack
// once the cloud has it, in any order. Rewind, after a reconnect, makes Next
// start again from the oldest unacknowledged record of every class. Scan
// reads a class from a given sequence number on, opening only the segments
// from the one holding it, without moving the consumer (the gateway reads
// the tail written since its last state save that way at start).
//
// Delivery is at least once: records handed out by Next but not acknowledged
// durably before a crash or a Rewind are handed out again. A consumer that
// must drop duplicates uses Record.Seq, which is unique within a class for the
// life of the queue directory: Next hands out only records that are on stable
// storage (under FsyncInterval it waits for the periodic fdatasync), so a
// power cut never takes back a record the cloud has seen. Only FsyncNever,
// which hands out written records at once, may reuse the numbers of records
// lost unsynced.
//
// # Durability
//
// Put returns once the record is durable under Options.Fsync:
//   - FsyncAlways: written and fdatasync'ed before Put returns; concurrent
//     producers share one write and one fdatasync per batch (group commit).
//     A failed write (disk full, I/O error) is truncated back to the last
//     good offset and the whole batch fails; no half record is left behind.
//   - FsyncInterval: Put hands the record to the class's writer goroutine
//     and returns; the writer appends within microseconds and the file is
//     fdatasync'ed every Options.FsyncInterval. The loss window on power
//     failure is FsyncInterval plus one fdatasync (default 200 ms); a crash
//     of the process loses only records not yet written, the newest ones:
//     at most 256 KiB queued per class plus the write in progress (Put
//     blocks while the writer is that far behind). A failed write is truncated back and kept: Puts fail with the
//     error until a retry (every FsyncInterval) succeeds.
//   - FsyncNever: like FsyncInterval without the periodic fdatasync (tests,
//     tmpfs); segments are synced when sealed and at Close.
//
// Flush waits until everything Put so far is written and synced, whatever
// the policy; Close flushes. Records become visible to Next once synced
// (FsyncAlways, FsyncInterval) or written (FsyncNever).
//
// # On disk
//
//	dir/LOCK                     flock'ed while open
//	dir/<class>/cursor           durable cursor, two checksummed slots written in place
//	dir/<class>/%020d.seg        segments named by their first sequence number
//
// Records carry a length, a CRC-32C over length, sequence number and payload,
// and a 64-bit sequence number. The durable cursor (the highest sequence
// number below which everything is acknowledged) is written at most every
// Options.CursorInterval, always before a segment is deleted, and at Close.
// Whole segments are deleted once fully acknowledged; data is never rewritten.
//
// Open never refuses to start because of damaged data: a missing or damaged
// cursor means "deliver from the oldest segment"; only the active segment is
// scanned and a torn tail is truncated; damaged records anywhere are skipped,
// counted (Stats.CorruptSkipped) and logged. Open fails only when the
// directory is unusable (permissions, I/O errors, another process holds it).
//
// # Bounds
//
// Each class may have MaxBytes and MaxAge; the queue may keep MinFreeBytes
// free on its file system. When a Put would cross a bound the class's
// FullPolicy applies: DropOldest deletes whole oldest segments (counted in
// Stats.Dropped), Reject fails the Put with ErrFull. To keep the free-space
// floor, DropOldest classes lose their oldest segments first, lowest priority
// first, before any Put fails.
//
// # Concurrency
//
// All methods are safe for concurrent use. Any number of producers may Put;
// one consumer goroutine calls Next, TryNext and Rewind (they serialise if
// more do), and Ack and Scan may be called from any goroutine. One background
// goroutine per Queue syncs, writes cursors and deletes segments; Close stops
// it.
package buffer
