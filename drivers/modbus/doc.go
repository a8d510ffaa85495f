// Package modbus is the Modbus RTU and TCP transport: one Bus per physical
// line or TCP server, built on github.com/grid-x/modbus, with every request
// serialised by the bus's drivers/bus.Scheduler.
//
// What this package adds to grid-x, after reading its source:
//
//   - RTU: grid-x's serial transporter checks its deadline only between two
//     bytes, never flushes the input before a request (a late answer to a
//     timed-out request, or line noise, is read as the next answer if it
//     starts with the right slave id) and does not resynchronise after a
//     wrong function code. This package brings its own RTU transporter on
//     go.bug.st/serial (grid-x still encodes, checks and decodes the
//     frames): input is discarded before every request, each read is
//     bounded by the call's deadline, and the answer is searched for in
//     what arrives (skipping noise) and accepted only with a good CRC.
//     After a slave timed out, the next request to that slave first
//     discards input for half the timeout (within that call's deadline):
//     RTU answers do not say which address they answer, so a late answer
//     to a read of the same function and size would pass for the new one.
//     A port that fails (unplugged adapter) is closed and reopened by path
//     on the next request.
//   - TCP: grid-x bounds one exchange by its Timeout (dial and I/O) but
//     leaves a timed-out connection open, so the late answer arrives on the
//     next request (grid-x skips it by transaction id only within its
//     recovery window), and its recovery loops may sleep and retry past any
//     caller's deadline. Here the recovery loops are off, the Timeout is set
//     from each call's deadline, and any failure other than an exception
//     reply closes the connection, so the next request dials afresh (link
//     recovery, stale input discarded with the old connection).
//
// Modbus Application Protocol Specification V1.1b3 and Modbus over Serial
// Line Specification and Implementation Guide V1.02 (modbus.org).
package modbus
