// Package drivers is the contract between the gateway and the code that talks
// to sensors and actuators. It does no I/O itself.
//
// A driver kind (a device model or a generic register device) provides a
// Factory. The daemon builds each configured device by handing its Factory a
// Spec: the device name, the bus it sits on (a transport owned by the daemon,
// never closed by the device) and a Decode function for the driver's own
// options. Devices implement Device and, by capability, Sensor and Actuator;
// further capabilities are separate optional interfaces found by type
// assertion, like periph's conn.
package drivers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Quality tells how far a Reading can be trusted.
type Quality string

// Qualities of a Reading.
const (
	Good       Quality = "good"         // fresh value from the device
	Stale      Quality = "stale"        // last value, not refreshed within its limit
	CommError  Quality = "comm_error"   // the device did not answer; Value is absent
	OutOfRange Quality = "out_of_range" // the device answered with an implausible value
)

// Reading is one value of one point of one device.
//
// Value holds a float64, a bool or a string. Unit is an SI unit symbol
// ("kPa", "°C", "%RH", "V"), empty for dimensionless values. Time is when the
// value was read, in UTC.
type Reading struct {
	Device  string
	Point   string
	Value   any
	Unit    string
	Time    time.Time
	Quality Quality
	// Alarm marks a point that is an alarm condition (tire pressure low,
	// fast leak): Value is true when raised and false when cleared. The
	// gateway routes such readings to the alarm topic and queue class.
	Alarm bool
}

// Command asks an actuator to change state. Value holds a float64, a bool or
// a string. The command's deadline is the deadline of the context given to
// Set, and nowhere else: a command whose context is done (see CheckDeadline)
// must not be applied.
type Command struct {
	Device  string
	Command string
	Value   any
	// Verify asks a StateReader to read the state back once it is set and
	// to fail when it differs: the read-back belongs to the driver, which
	// knows its registers (a device profile may have it verify a point on
	// its own as well, reading it back only once).
	Verify bool
}

// CheckDeadline returns ctx.Err(), or context.DeadlineExceeded when ctx's
// deadline has passed and its timer has not fired yet. An Actuator calls it
// just before it moves anything.
func CheckDeadline(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// Device is what every driver returns. Close releases what the device holds
// (never the bus it was given) and leaves actuators in their safe state.
type Device interface {
	Name() string
	Close() error
}

// Sensor is a Device that can be polled.
type Sensor interface {
	Device
	// Read polls the device once and returns its readings. A device that
	// does not answer returns an error; the caller reports it offline.
	Read(ctx context.Context) ([]Reading, error)
}

// Actuator is a Device that takes commands.
type Actuator interface {
	Device
	// Set applies c and returns once the device has taken it.
	Set(ctx context.Context, c Command) error
}

// StateReader is an Actuator that can read back the state a command set:
// its Set verifies it when Command.Verify asks, and State reports it.
type StateReader interface {
	Actuator
	State(ctx context.Context, command string) (any, error)
}

// Streamer is a Device that pushes readings as they arrive instead of being
// polled (a TPMS receiver that hears wheels when they transmit). Stream runs
// until ctx is done or the device fails, calling emit from its own goroutine;
// the caller restarts it with backoff after an error.
type Streamer interface {
	Device
	Stream(ctx context.Context, emit func([]Reading)) error
}

// Spec is what a Factory gets to build one device.
type Spec struct {
	// Name is the device name from the configuration.
	Name string
	// Bus is the transport the device sits on, owned by the caller. A
	// factory type-asserts the kind it needs and reports a clear error
	// otherwise.
	Bus any
	// Decode decodes the driver's own options into v, a pointer to the
	// driver's options struct. Unknown keys are an error.
	Decode func(v any) error
	// Log is the device's logger; nil means discard.
	Log *slog.Logger
}

// DecodeOptions decodes the driver's options into v, a pointer to the
// driver's options struct; with no Decode (no options given) v keeps its
// zero value or defaults.
func (s Spec) DecodeOptions(v any) error {
	if s.Decode == nil {
		return nil
	}
	return s.Decode(v)
}

// Logger returns s.Log, or a logger that discards everything when it is nil.
func (s Spec) Logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Factory builds a device from its Spec.
type Factory func(Spec) (Device, error)

// Registry maps driver kinds to factories. The zero value is empty and ready
// to use; it is safe for concurrent use.
type Registry struct {
	// mu guards kinds.
	mu    sync.RWMutex
	kinds map[string]Factory
}

// Register adds a driver kind. It panics on an empty kind, a nil factory or a
// kind registered twice: those are programming errors found at start-up.
func (r *Registry) Register(kind string, f Factory) {
	if kind == "" || f == nil {
		panic("drivers: Register with empty kind or nil factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[kind]; dup {
		panic(fmt.Sprintf("drivers: kind %q registered twice", kind))
	}
	if r.kinds == nil {
		r.kinds = make(map[string]Factory)
	}
	r.kinds[kind] = f
}

// Lookup returns the factory of kind.
func (r *Registry) Lookup(kind string) (Factory, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.kinds[kind]
	return f, ok
}

// Kinds returns the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ks := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
