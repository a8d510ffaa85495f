package config

import (
	"path/filepath"
	"time"
)

// Defaults of the keys configs/README.md documents; SetDefaults is the one
// place they are applied.
const (
	DefaultTopicPrefix   = "vehicles/{id}"
	DefaultStateDir      = "/var/lib/edgegw"
	DefaultBrokerListen  = "127.0.0.1:1883"
	DefaultPollInterval  = 5 * time.Second
	DefaultCommandTimout = 5 * time.Second
)

// SetDefaults fills every key left unset with its default. Load calls it;
// a Config built in code calls it before Validate.
func (c *Config) SetDefaults() {
	g := &c.Gateway
	def(&g.TopicPrefix, DefaultTopicPrefix)
	def(&g.StateDir, DefaultStateDir)

	b := &c.Broker
	if c.pos == nil || !c.pos.has("broker.listen") {
		def(&b.Listen, DefaultBrokerListen)
	}
	def(&b.MaxPacketSize, 512<<10)
	def(&b.MaxKeepalive, Duration(10*time.Minute))
	def(&b.ReceiveMaximum, 64)
	def(&b.MaxInflight, 64)
	def(&b.MaxQueued, 1000)
	def(&b.MaxConnections, 100)
	def(&b.MaxSessionExpiry, Duration(24*time.Hour))
	def(&b.MaxRetained, 10000)
	def(&b.MaxSubscriptions, 1000)
	def(&b.DenySubscribeCode, 0x80)
	def(&b.Dir, filepath.Join(g.StateDir, "broker"))
	def(&b.SysInterval, Duration(10*time.Second))
	def(&b.SyncInterval, Duration(time.Second))
	def(&b.TopicAliasMaximum, 16)
	def(&b.MaxWriteBuffer, 64<<10)
	def(&b.MaxPendingConnections, 64)
	def(&b.ConnectTimeout, Duration(5*time.Second))
	def(&b.MaxSessionBytes, 1<<20)
	def(&b.MaxQueuedBytes, 32<<20)
	def(&b.MaxRetainedBytes, 8<<20)
	def(&b.MaxRetainedMessageBytes, 64<<10)
	def(&b.MaxSessions, 256)

	q := &c.Queue
	def(&q.Dir, filepath.Join(g.StateDir, "queue"))
	def(&q.Fsync, "interval")
	def(&q.FsyncInterval, Duration(200*time.Millisecond))
	def(&q.SegmentSize, 4<<20)
	def(&q.MinFree, 64<<20)
	def(&q.Alarm.MaxBytes, 16<<20)
	def(&q.Alarm.Policy, "drop_oldest")
	def(&q.Telemetry.MaxBytes, 256<<20)
	def(&q.Telemetry.Policy, "drop_oldest")

	u := &c.Uplink
	if u.URL == "" && len(u.URLs) > 0 {
		u.URL = u.URLs[0]
	}
	def(&u.ClientID, g.ID)
	def(&u.QoS, 1)
	def(&u.Protocol, "5")
	// Cellular carriers' NATs drop a TCP flow idle for 30 to 120 s; a
	// PINGREQ after 25 s of silence keeps the shortest of them open, and
	// costs nothing while telemetry flows (a ping goes only on a quiet
	// link). A dead link is then found within 1.5 × 25 s + 1 s.
	def(&u.Keepalive, Duration(25*time.Second))
	def(&u.ReconnectMin, Duration(time.Second))
	def(&u.ReconnectMax, Duration(2*time.Minute))
	def(&u.ReconnectSpread, Duration(20*time.Second))
	def(&u.SessionExpiry, Duration(24*time.Hour))
	def(&u.TopicPrefix, g.Prefix())
	def(&u.Budget.MonthStartDay, 1)
	def(&u.Budget.ThinInterval, Duration(5*time.Minute))
	for i := range u.Forward {
		def(&u.Forward[i].QoS, u.QoS)
	}
	for i := range u.Receive {
		def(&u.Receive[i].QoS, u.QoS)
	}
	if b := u.Batch; b != nil {
		def(&b.MaxRecords, 500)
		def(&b.MaxBytes, 256<<10)
		def(&b.MaxDelay, Duration(5*time.Second))
		def(&b.Compression, "deflate")
	}

	c.Commands.setDefaults()
	cn := &c.Console
	def(&cn.History, Duration(time.Hour))
	def(&cn.MaxPoints, 720)
	def(&cn.MaxSeries, 256)
	def(&cn.Interval, Duration(time.Second))

	for i := range c.Buses {
		bs := &c.Buses[i]
		switch bs.Type {
		case "modbus_rtu", "serial":
			def(&bs.Baud, 9600)
			def(&bs.Parity, "N")
			def(&bs.DataBits, 8)
			def(&bs.StopBits, 1)
		}
		if bs.Type == "modbus_rtu" {
			// 3.5 character times at 9600 baud is 4 ms.
			def(&bs.Gap, Duration(5*time.Millisecond))
		}
		def(&bs.Timeout, Duration(time.Second))
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		def(&d.Interval, Duration(DefaultPollInterval))
		for j := range d.Commands {
			cm := &d.Commands[j]
			def(&cm.RateLimit, Duration(time.Second))
			def(&cm.Timeout, Duration(DefaultCommandTimout))
		}
	}
}

// def sets *p to v when *p is the zero value.
func def[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
