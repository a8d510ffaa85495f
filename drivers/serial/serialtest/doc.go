// Package serialtest provides the far end of a serial line for tests and for
// the demo's simulators: a pseudo-terminal pair whose slave side the real
// serial driver opens like any /dev/ttyUSB device.
package serialtest
