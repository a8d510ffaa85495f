package gpiosim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/drivers/gpio/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

func TestPinLevels(t *testing.T) {
	p := gpiosim.NewPin("GPIO27", 27)
	steps := []struct {
		name string
		do   func() error
		want gpio.Level
	}{
		{"floating no pull", func() error { return p.In(gpio.Float, gpio.NoEdge) }, gpio.Low},
		{"pull up", func() error { return p.In(gpio.PullUp, gpio.NoEdge) }, gpio.High},
		{"driven low", func() error { p.Drive(gpio.Low); return nil }, gpio.Low},
		{"released", func() error { p.Release(); return nil }, gpio.High},
		{"pull kept", func() error { return p.In(gpio.PullNoChange, gpio.NoEdge) }, gpio.High},
		{"output low", func() error { return p.Out(gpio.Low) }, gpio.Low},
		{"output ignores drive", func() error { p.Drive(gpio.High); return p.Out(gpio.Low) }, gpio.Low},
		{"back to input", func() error { return p.In(gpio.PullDown, gpio.NoEdge) }, gpio.High},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := p.Read(); got != s.want {
			t.Errorf("%s: Read() = %v, want %v", s.name, got, s.want)
		}
	}
	if p.Pull() != gpio.PullDown || p.IsOutput() || p.Outs() != 2 {
		t.Errorf("Pull, IsOutput, Outs = %v, %v, %d; want PullDown, false, 2", p.Pull(), p.IsOutput(), p.Outs())
	}
	if err := p.PWM(gpio.DutyHalf, 0); err == nil {
		t.Error("PWM = nil, want an error")
	}
}

func TestEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := gpiosim.NewPin("GPIO27", 27)
		if err := p.In(gpio.PullDown, gpio.RisingEdge); err != nil {
			t.Fatal(err)
		}
		if p.WaitForEdge(time.Second) {
			t.Error("WaitForEdge with no edge = true")
		}
		p.Drive(gpio.High)
		if !p.WaitForEdge(time.Second) {
			t.Error("WaitForEdge after a rising edge = false")
		}
		p.Drive(gpio.Low) // falling: not detected
		if p.WaitForEdge(time.Second) {
			t.Error("WaitForEdge after a falling edge with RisingEdge = true")
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			p.Drive(gpio.High)
		}()
		if !p.WaitForEdge(-1) {
			t.Error("WaitForEdge(-1) = false")
		}
	})
}

func TestStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := gpiosim.Start(context.Background(), gpiosim.Opts{Pins: []gpiosim.PinOpts{
			{Name: "GPIO17"},
			{Name: "GPIO27", Drive: "low", Toggle: 45 * time.Second},
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Pins().Pin("GPIO99"); !errors.Is(err, gpiosim.ErrNoPin) {
			t.Errorf("Pin(GPIO99) = %v, want ErrNoPin", err)
		}
		pin, err := s.Pins().Pin("GPIO27")
		if err != nil || pin != s.Pin("GPIO27") {
			t.Fatalf("Pins().Pin(GPIO27) = %v, %v", pin, err)
		}
		var levels []gpio.Level
		for range 3 {
			levels = append(levels, pin.Read())
			time.Sleep(45 * time.Second)
			synctest.Wait()
		}
		if want := []gpio.Level{gpio.Low, gpio.High, gpio.Low}; !equal(levels, want) {
			t.Errorf("levels every 45s = %v, want %v", levels, want)
		}
	})
}

func equal(a, b []gpio.Level) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidate(t *testing.T) {
	err := gpiosim.Opts{Pins: []gpiosim.PinOpts{
		{Name: "A"}, {Name: "A", Drive: "up"}, {Toggle: time.Second},
	}}.Validate()
	for _, want := range []string{
		`pins[1].name: "A" already used by pins[0]`,
		`pins[1].drive: "up" is not high, low or empty`,
		"pins[2].name: must be set",
		"pins[2].toggle: needs a positive period and drive set",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
}
