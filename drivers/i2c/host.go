package i2c

import (
	"errors"

	pi2c "periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// ErrNoBus is returned by Open when the host has no such I²C bus.
var ErrNoBus = errors.New("i2c: no such bus")

// openHost initialises periph's host drivers (once per process; later calls
// are cheap) and opens the named bus.
func openHost(name string) (pi2c.BusCloser, error) {
	if _, err := host.Init(); err != nil {
		return nil, err
	}
	pb, err := i2creg.Open(hostName(name))
	if err != nil {
		return nil, errors.Join(ErrNoBus, err)
	}
	return pb, nil
}
