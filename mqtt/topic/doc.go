// Package topic implements MQTT topic names and topic filters (MQTT 3.1.1
// section 4.7, MQTT 5.0 sections 4.7 and 4.8): validation, matching, shared
// subscriptions, a subscription tree for a broker or client, and an index of
// topic names searchable by filter for retained messages.
//
// ValidName and ValidFilter check names and filters as they arrive from the
// network; ParseShared also splits "$share/{group}/{filter}". Match matches
// one filter against one name without allocating.
//
// Tree maps a topic name to every subscription whose filter matches it, each
// with the subscriber's key and options; Match appends into a caller's slice
// so that a broker reusing the slice matches without allocating. Names holds
// topic names (retained messages) and finds those a new filter matches
// without scanning them all. Both are safe for concurrent use, and matches
// run in parallel with each other.
//
// The package imports no other package of this module.
package topic
