package daemon

import (
	"errors"
	"log/slog"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/console"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// This file turns the configuration into each component's options, one
// function per component, each logging under its component name. They
// only translate: what a component needs from the running daemon (the
// queue, callbacks into the field) is added where it is built.

// brokerOptions are the embedded broker's options from [broker].
func brokerOptions(c *config.Config, log *slog.Logger) broker.Options {
	b := c.Broker
	o := broker.Options{
		Listen: b.Listen, TLSListen: b.TLSListen, TLSCert: b.TLSCert, TLSKey: b.TLSKey,
		TLSClientCA: b.TLSClientCA, WSListen: b.WSListen, WSSListen: b.WSSListen, AllowAnonymous: b.AllowAnonymous,
		PasswordFile: b.PasswordFile, DenySubscribeCode: byte(b.DenySubscribeCode),
		MaxPacketSize: int(b.MaxPacketSize), MaxKeepAlive: b.MaxKeepalive.D(),
		ReceiveMaximum: b.ReceiveMaximum, MaxInflight: b.MaxInflight, MaxQueued: b.MaxQueued, QueueQoS0: b.QueueQoS0,
		MaxConnections: b.MaxConnections, MaxSessionExpiry: b.MaxSessionExpiry.D(),
		MaxRetained: b.MaxRetained, MaxSubscriptions: b.MaxSubscriptions,
		SysInterval: b.SysInterval.D(), SyncInterval: b.SyncInterval.D(), ACLFile: b.ACLFile,
		TopicAliasMaximum: b.TopicAliasMaximum, MaxWriteBuffer: int(b.MaxWriteBuffer),
		MaxPendingConnections: b.MaxPendingConnections, ConnectTimeout: b.ConnectTimeout.D(),
		MaxSessionBytes: int64(b.MaxSessionBytes), MaxQueuedBytes: int64(b.MaxQueuedBytes),
		MaxRetainedBytes: int64(b.MaxRetainedBytes), MaxRetainedMessageBytes: int64(b.MaxRetainedMessageBytes),
		MaxSessions:      b.MaxSessions,
		WSAllowedOrigins: b.WSAllowedOrigins,
		Log:              log.With("component", "broker"),
	}
	if b.Dir != "-" {
		o.StateDir = b.Dir
	}
	for _, r := range b.ACL {
		o.ACL = append(o.ACL, broker.ACLRule{User: r.User, Permission: r.Permission, Action: r.Action, Topic: r.Topic})
	}
	return o
}

// queueOptions are the outbound queue's options from [queue] (its
// directory is queue.dir). A policy the queue does not know is an error.
func queueOptions(c *config.Config, log *slog.Logger) (buffer.Options, error) {
	var fs buffer.FsyncPolicy
	if err := fs.UnmarshalText([]byte(c.Queue.Fsync)); err != nil {
		return buffer.Options{}, err
	}
	class := func(name string, cl config.Class) (buffer.ClassOptions, error) {
		var p buffer.FullPolicy
		err := p.UnmarshalText([]byte(cl.Policy))
		return buffer.ClassOptions{Name: name, MaxBytes: int64(cl.MaxBytes), Policy: p, MaxAge: cl.MaxAge.D()}, err
	}
	alarm, err1 := class(gateway.ClassAlarm, c.Queue.Alarm)
	tele, err2 := class(gateway.ClassTelemetry, c.Queue.Telemetry)
	if err := errors.Join(err1, err2); err != nil {
		return buffer.Options{}, err
	}
	return buffer.Options{
		Classes:       []buffer.ClassOptions{alarm, tele},
		Fsync:         fs,
		FsyncInterval: c.Queue.FsyncInterval.D(),
		SegmentSize:   int64(c.Queue.SegmentSize),
		MinFreeBytes:  uint64(c.Queue.MinFree),
		Log:           log.With("component", "queue"),
	}, nil
}

// uplinkOptions are the uplink's options from [uplink] and [gateway]; the
// queue and the callbacks are left to the caller.
func uplinkOptions(c *config.Config, log *slog.Logger) uplink.Options {
	u := c.Uplink
	var password []byte
	if u.Password != "" {
		password = []byte(u.Password)
	}
	var batch *uplink.BatchOptions
	if b := u.Batch; b != nil {
		batch = &uplink.BatchOptions{MaxRecords: b.MaxRecords, MaxBytes: int(b.MaxBytes), MaxDelay: b.MaxDelay.D(),
			Compression: b.Compression}
	}
	return uplink.Options{
		URL: u.URL, URLs: u.URLs, ClientID: u.ClientID, Username: u.Username, Password: password, PasswordFile: u.PasswordFile,
		CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile, ServerName: u.ServerName, ALPN: u.ALPN,
		QoS: byte(u.QoS), Protocol: u.Protocol, Keepalive: u.Keepalive.D(),
		ReconnectMin: u.ReconnectMin.D(), ReconnectMax: u.ReconnectMax.D(), ReconnectSpread: u.ReconnectSpread.D(), SessionExpiry: u.SessionExpiry.D(),
		LocalPrefix: c.Gateway.Prefix(), TopicPrefix: u.TopicPrefix, Receive: bridgeRules(u.Receive),
		StateDir: c.Gateway.StateDir, Batch: batch,
		Budget: uplink.Budget{Monthly: int64(u.Budget.Monthly), MonthStartDay: u.Budget.MonthStartDay,
			ThinInterval: u.Budget.ThinInterval.D()},
		Log: log.With("component", "uplink"),
	}
}

// bridgeRules are [[uplink.forward]] or [[uplink.receive]] as the
// uplink's rules.
func bridgeRules(rs []config.BridgeRule) []uplink.Rule {
	var rules []uplink.Rule
	for _, r := range rs {
		rules = append(rules, uplink.Rule{Filter: r.Filter, Prefix: r.Prefix, QoS: byte(r.QoS)})
	}
	return rules
}

// consoleOptions are the web console's options from [console] and
// [gateway]; what it reads from the running gateway (Subscriber, Status,
// Devices, the commands) is left to the caller.
func consoleOptions(c *config.Config, log *slog.Logger) console.Options {
	cn := c.Console
	return console.Options{
		Prefix:    c.Gateway.Prefix(),
		History:   cn.History.D(),
		MaxPoints: cn.MaxPoints,
		MaxSeries: cn.MaxSeries,
		Interval:  cn.Interval.D(),
		Secure:    cn.TLSCert != "",
		Log:       log.With("component", "console"),
	}
}
