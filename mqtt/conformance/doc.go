// Package conformance holds a black-box MQTT 3.1.1 and 5.0 conformance and
// malformed-packet suite. It speaks raw packets over TCP to a broker address
// and runs every case against Debian's Mosquitto (the reference) and against
// edgegw's embedded broker (mqtt/broker) on a loopback listener.
//
// Every case cites the normative statement it checks, [MQTT-x.y.z-n], from
// the OASIS MQTT Version 3.1.1 and MQTT Version 5.0 specifications; a case
// run at both levels cites the 5.0 number unless it is marked 3.1.1.
//
// The package has no API: the suite is its tests (go test ./mqtt/conformance).
package conformance
