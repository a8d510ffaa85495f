package modbus

import (
	"errors"
	"fmt"
)

var (
	// ErrTimeout is returned when a slave does not answer within the
	// call's deadline.
	ErrTimeout = errors.New("modbus: no answer within the deadline")
	// ErrFrame is returned for an answer that is not a valid frame (bad
	// CRC, wrong length, wrong slave or function).
	ErrFrame = errors.New("modbus: invalid answer")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("modbus: bus closed")
)

// Exception codes, Modbus Application Protocol V1.1b3 §7.
const (
	IllegalFunction                    = 0x01
	IllegalDataAddress                 = 0x02
	IllegalDataValue                   = 0x03
	ServerDeviceFailure                = 0x04
	Acknowledge                        = 0x05
	ServerDeviceBusy                   = 0x06
	MemoryParityError                  = 0x08
	GatewayPathUnavailable             = 0x0A
	GatewayTargetDeviceFailedToRespond = 0x0B
)

var exceptionNames = map[byte]string{
	IllegalFunction:                    "illegal function",
	IllegalDataAddress:                 "illegal data address",
	IllegalDataValue:                   "illegal data value",
	ServerDeviceFailure:                "server device failure",
	Acknowledge:                        "acknowledge",
	ServerDeviceBusy:                   "slave device busy",
	MemoryParityError:                  "memory parity error",
	GatewayPathUnavailable:             "gateway path unavailable",
	GatewayTargetDeviceFailedToRespond: "gateway target device failed to respond",
}

// ExceptionError is a slave's exception reply: the slave is alive and
// refused the request. Use errors.As to get it.
type ExceptionError struct {
	Function byte // function code of the request (without the 0x80 bit)
	Code     byte // exception code
}

// Name returns the exception's name from the specification.
func (e *ExceptionError) Name() string {
	if n, ok := exceptionNames[e.Code]; ok {
		return n
	}
	return "unknown exception"
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus: exception %d (%s) to function %d", e.Code, e.Name(), e.Function)
}

// Answered reports true: an exception is the slave's answer, so the bus
// scheduler neither retries it nor counts it as a failure of the device.
func (e *ExceptionError) Answered() bool { return true }
