//go:build hardware

package bme280_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// TestHardware reads a real BME280 and logs the transcript, to refresh
// transcript_test.go from a real chip:
//
//	EDGEGW_I2C_BUS=1 EDGEGW_BME280_ADDR=0x76 go test -tags hardware -run TestHardware -v ./drivers/bme280
func TestHardware(t *testing.T) {
	name := os.Getenv("EDGEGW_I2C_BUS")
	if name == "" {
		t.Fatal("set EDGEGW_I2C_BUS to the bus of the chip (\"1\", \"/dev/i2c-1\")")
	}
	addr := uint64(0x76)
	if s := os.Getenv("EDGEGW_BME280_ADDR"); s != "" {
		var err error
		if addr, err = strconv.ParseUint(s, 0, 16); err != nil {
			t.Fatal(err)
		}
	}
	host, err := i2c.Open(i2c.Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	rec := &i2ctest.Record{Bus: host}
	b := i2c.New(rec, i2c.Config{})
	runBus(t, b)
	runBus(t, host)
	d, err := bme280.New(b, "hw", bme280.Opts{Addr: uint16(addr)})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("readings: %+v", rs)
	for _, io := range rec.Ops {
		t.Logf("{Addr: 0x%02x, W: %s, R: %s},", io.Addr, goBytes(io.W), goBytes(io.R))
	}
}
