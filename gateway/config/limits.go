package config

// brokerLimits checks the broker's resource limits: each must be set (a
// broker without bounds can be run out of memory by one local client) and
// consistent with the others.
func (v *validator) brokerLimits() {
	b := v.c.Broker
	if b.MaxPendingConnections < 1 {
		v.add("broker.max_pending_connections", "must be at least 1")
	}
	if b.ConnectTimeout <= 0 {
		v.add("broker.connect_timeout", "must be positive")
	}
	if b.MaxSessions < 1 {
		v.add("broker.max_sessions", "must be at least 1")
	}
	for _, l := range []struct {
		key string
		val Size
	}{
		{"max_session_bytes", b.MaxSessionBytes}, {"max_queued_bytes", b.MaxQueuedBytes},
		{"max_retained_bytes", b.MaxRetainedBytes}, {"max_retained_message_bytes", b.MaxRetainedMessageBytes},
	} {
		if l.val < 1024 {
			v.add("broker."+l.key, "%d below 1024", l.val)
		}
	}
	if b.MaxSessionBytes > b.MaxQueuedBytes {
		v.add("broker.max_session_bytes", "%d above max_queued_bytes %d", b.MaxSessionBytes, b.MaxQueuedBytes)
	}
	if b.MaxRetainedMessageBytes > b.MaxRetainedBytes {
		v.add("broker.max_retained_message_bytes", "%d above max_retained_bytes %d", b.MaxRetainedMessageBytes, b.MaxRetainedBytes)
	}
}
