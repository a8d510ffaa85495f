package bme280_test

import (
	"context"
	"testing"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/google/go-cmp/cmp"
)

// TestPoller runs the device under the shared poll loop against the
// simulator: an absent chip takes the device offline with comm_error
// readings, a value outside the configured range is reported out_of_range,
// and the device comes back online when the chip answers again.
func TestPoller(t *testing.T) {
	sim := i2csim.NewBus("t")
	chip := i2csim.NewBME280(i2csim.Env{Temperature: 21.5, Humidity: 40, Pressure: 101.3})
	sim.Attach(0x76, chip)
	b := i2c.New(sim, i2c.Config{})
	runBus(t, b)
	hi := 40.0
	d, err := bme280.New(b, "cabin", bme280.Opts{Points: []bme280.Point{
		{Name: "temperature", Rule: poll.Rule{Max: &hi}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	emit := func(rs []drivers.Reading) {
		for _, r := range rs {
			got = append(got, r.Point+" "+string(r.Quality))
		}
	}
	status := func(dev string, online bool) {
		got = append(got, dev+map[bool]string{true: " online", false: " offline"}[online])
	}
	p := poll.New(d, poll.Options{Emit: emit, OnStatus: status})
	ctx := context.Background()
	p.Poll(ctx)
	sim.Detach(0x76)
	p.Poll(ctx)
	sim.Attach(0x76, chip)
	chip.SetEnv(i2csim.Env{Temperature: 45, Humidity: 40, Pressure: 101.3}) // hot, but within the chip's range
	p.Poll(ctx)
	want := []string{
		"cabin online", "temperature good",
		"cabin offline", "temperature comm_error",
		"cabin online", "temperature out_of_range",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("poll events (-want +got):\n%s", diff)
	}
}
