package bme280_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/i2c"
	"github.com/edgegw/edgegw/drivers/i2c/i2csim"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// TestRecordTranscript prints the I/O of two Reads (23.4 °C, then 100 °C) against the simulator as
// a Go table, for transcript_test.go (or, with a hardware bus, from a real
// chip). Run with EDGEGW_RECORD=1 go test -run TestRecordTranscript -v.
func TestRecordTranscript(t *testing.T) {
	if os.Getenv("EDGEGW_RECORD") == "" {
		t.Skip("set EDGEGW_RECORD=1 to print a transcript")
	}
	sim := i2csim.NewBus("rec")
	chip := i2csim.NewBME280(i2csim.Env{Temperature: 23.4, Humidity: 51.2, Pressure: 99.87})
	sim.Attach(0x76, chip)
	rec := &i2ctest.Record{Bus: sim}
	b := i2c.New(rec, i2c.Config{})
	runBus(t, b)
	d, err := bme280.New(b, "cabin", bme280.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float64{23.4, 100} {
		chip.SetEnv(i2csim.Env{Temperature: temp, Humidity: 51.2, Pressure: 99.87})
		if _, err := d.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var sb strings.Builder
	for _, io := range rec.Ops {
		fmt.Fprintf(&sb, "\t{Addr: 0x%02x, W: %s, R: %s},\n", io.Addr, goBytes(io.W), goBytes(io.R))
	}
	t.Logf("transcript:\n%s", sb.String())
}

func goBytes(b []byte) string {
	if b == nil {
		return "nil"
	}
	parts := make([]string, len(b))
	for i, v := range b {
		parts[i] = fmt.Sprintf("0x%02x", v)
	}
	return "[]byte{" + strings.Join(parts, ", ") + "}"
}
