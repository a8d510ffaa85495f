package gpio

import (
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// hostPins are the host's pins as periph's registry knows them.
type hostPins struct{}

func openHost() (hostPins, error) {
	_, err := host.Init()
	return hostPins{}, err
}

// Pin implements Pins.
func (hostPins) Pin(name string) (pgpio.PinIO, error) {
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, ErrNoPin
	}
	return p, nil
}
