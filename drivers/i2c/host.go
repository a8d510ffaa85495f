package i2c

import (
	"errors"
	"strings"

	pi2c "periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// ErrNoBus is returned by Open when the host has no such I²C bus.
var ErrNoBus = errors.New("i2c: no such bus")

// openHost initialises periph's host drivers (once per process; later calls
// are cheap) and opens the named bus. periph registers each Linux bus as
// "/dev/i2c-N" with the alias "I2CN" and the number N, so all three
// spellings work.
func openHost(name string) (pi2c.BusCloser, error) {
	if _, err := host.Init(); err != nil {
		return nil, err
	}
	pb, err := i2creg.Open(strings.TrimSpace(name))
	if err != nil {
		return nil, errors.Join(ErrNoBus, err)
	}
	return pb, nil
}
