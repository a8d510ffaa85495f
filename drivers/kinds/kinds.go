// Package kinds is the list of driver kinds an edgegw binary knows, in
// one place: cmd/edgegw runs with it, and the daemon's tests build
// gateways from the same list, so the two cannot drift apart.
//
// Kinds are registered explicitly, not by init side effects; a new driver
// model is added here. Like every package under drivers it imports only
// the drivers tree.
package kinds

import (
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/bme280"
	"github.com/edgegw/edgegw/drivers/gpio/input"
	"github.com/edgegw/edgegw/drivers/gpio/relay"
	"github.com/edgegw/edgegw/drivers/i2creg"
	"github.com/edgegw/edgegw/drivers/modbusdev"
	"github.com/edgegw/edgegw/drivers/tpms"
)

// Registry returns a new registry of every driver kind: the list a
// configuration's kind keys choose from.
func Registry() *drivers.Registry {
	var r drivers.Registry
	r.Register(bme280.Kind, bme280.Factory)
	r.Register(i2creg.Kind, i2creg.Factory)
	r.Register(modbusdev.Kind, modbusdev.Factory)
	r.Register(tpms.KindRTL433, tpms.RTL433Factory)
	r.Register(tpms.KindModule, tpms.ModuleFactory)
	r.Register(relay.Kind, relay.Factory)
	r.Register(input.Kind, input.Factory)
	return &r
}
