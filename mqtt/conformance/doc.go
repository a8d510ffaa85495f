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
// Cases that fail against edgegw's broker are open broker defects: they are
// listed by name in pendingEdgegw (harness_test.go) and run only with
// EDGEGW_CONFORMANCE_PENDING=1, so that CI stays green while they are fixed.
// Cases where Mosquitto 2.0.11 deviates from the spec run against edgegw only.
package conformance
