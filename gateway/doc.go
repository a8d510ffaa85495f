// Package gateway routes readings from drivers to the local broker and the
// outbound queue, and commands from control topics to actuators. It consumes
// the broker, the queue and the uplink through interfaces it defines, so it
// imports none of them.
package gateway
