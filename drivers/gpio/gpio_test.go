package gpio_test

import (
	"context"
	"errors"
	"testing"

	"github.com/edgegw/edgegw/drivers/gpio"
	pgpio "periph.io/x/conn/v3/gpio"
)

// fakePin is a pin that fails every operation but has a name.
type fakePin struct {
	pgpio.PinIO
	name string
}

func (p *fakePin) Name() string { return p.name }

// fakePins provides pins by name.
type fakePins map[string]pgpio.PinIO

func (f fakePins) Pin(name string) (pgpio.PinIO, error) {
	if p, ok := f[name]; ok {
		return p, nil
	}
	return nil, gpio.ErrNoPin
}

func TestNew(t *testing.T) {
	p17 := &fakePin{PinIO: pgpio.INVALID, name: "GPIO17"}
	b := gpio.New(fakePins{"GPIO17": p17}, gpio.Config{Name: "header"})
	got, err := b.Pin(" GPIO17 ")
	if err != nil || got != p17 {
		t.Fatalf("Pin(GPIO17) = %v, %v; want the pin", got, err)
	}
	if _, err := b.Pin("GPIO99"); !errors.Is(err, gpio.ErrNoPin) {
		t.Errorf("Pin(GPIO99) = %v, want ErrNoPin", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if b.String() != "gpio:header" {
		t.Errorf("String() = %q", b.String())
	}
}

// TestOpenHost opens the host's pins. This machine may have no GPIO at all;
// then an unknown pin must be ErrNoPin, not a crash.
func TestOpenHost(t *testing.T) {
	b, err := gpio.Open(gpio.Config{Name: "host"})
	if err != nil {
		t.Skipf("no periph host here: %v", err)
	}
	if _, err := b.Pin("NO_SUCH_PIN"); !errors.Is(err, gpio.ErrNoPin) {
		t.Errorf("Pin(NO_SUCH_PIN) = %v, want ErrNoPin", err)
	}
}
