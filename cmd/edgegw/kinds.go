package main

import (
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/gpio/input"
	"github.com/edgegw/edgegw/drivers/gpio/relay"
	"github.com/edgegw/edgegw/drivers/i2creg"
	"github.com/edgegw/edgegw/drivers/modbusdev"
	"github.com/edgegw/edgegw/drivers/tpms"
)

// registry returns every driver kind this binary knows, registered
// explicitly (no init side effects): the list a config's kind keys choose
// from.
func registry() *drivers.Registry {
	var r drivers.Registry
	r.Register("bme280", bme280.Factory)
	r.Register("i2c_register", i2creg.Factory)
	r.Register(modbusdev.Kind, modbusdev.Factory)
	r.Register("tpms_rtl433", tpms.RTL433Factory)
	r.Register("tpms_module", tpms.ModuleFactory)
	r.Register(relay.Kind, relay.Factory)
	r.Register(input.Kind, input.Factory)
	return &r
}
