// Package serial is the serial-line transport of the gateway, built on
// go.bug.st/serial.
//
// A Port is one serial line, opened by the daemon from its [[bus]] entry and
// handed to the devices on it as their Spec.Bus. It hides the life of a USB
// adapter: the configured path (usually a /dev/serial/by-id/... link) is
// resolved again on every open, so an adapter that is unplugged and comes
// back under another ttyUSB name is found again; a lost line (EIO, ENXIO,
// a PortClosed error, the node gone) is closed and reopened with capped,
// jittered backoff while callers see ErrOffline; and a read that times out
// returns n == 0 with a nil error, never an error.
//
// Two ways to use a line:
//   - Receivers that talk on their own (rtl_433 printing JSON lines) are read
//     with a LineReader, whose memory is bounded by its maximum line length.
//   - Request/response devices go through Exchange, which queues the
//     transaction on the Port's bus.Scheduler so that one line carries one
//     transaction at a time, with the scheduler's timeout, retries and
//     quarantine.
//
// The Port owns its scheduler: the daemon runs Port.Run in its errgroup and
// calls Close after Run has returned.
package serial
