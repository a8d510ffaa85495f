package broker

import (
	"strconv"
	"time"
)

// Version is reported on $SYS/broker/version.
const Version = "edgegw broker"

// sysLoop publishes the statistics as retained messages under
// $SYS/broker/, like Mosquitto, every SysInterval.
func (s *Server) sysLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.SysInterval)
	defer t.Stop()
	s.publishSys()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.publishSys()
		}
	}
}

func (s *Server) publishSys() {
	st := s.Stats()
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, kv := range [...][2]string{
		{"version", Version},
		{"uptime", i(int64(st.Uptime/time.Second)) + " seconds"},
		{"clients/connected", i(int64(st.Clients))},
		{"clients/total", i(int64(st.Sessions))},
		{"clients/disconnected", i(int64(max(st.Sessions-st.Clients, 0)))},
		{"clients/maximum", i(int64(st.MaxClients))},
		{"messages/received", i(st.MessagesReceived)},
		{"messages/sent", i(st.MessagesSent)},
		{"publish/messages/received", i(st.MessagesReceived)},
		{"publish/messages/sent", i(st.MessagesSent)},
		{"publish/messages/dropped", i(st.Dropped)},
		{"bytes/received", i(st.BytesReceived)},
		{"bytes/sent", i(st.BytesSent)},
		{"retained messages/count", i(int64(st.Retained))},
		{"retained messages/refused", i(st.RetainedRefused)},
		{"subscriptions/count", i(int64(st.Subscriptions))},
		{"subscriptions/refused", i(st.SubscribeRefused)},
	} {
		s.publish(&msg{topic: "$SYS/broker/" + kv[0], payload: []byte(kv[1]), retain: true, local: true}, nil)
	}
}
