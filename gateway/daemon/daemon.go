// Package daemon builds the gateway from its configuration and runs it:
// simulators, buses, devices and pollers, the embedded broker, the outbound
// queue, the uplink and the health endpoint, with systemd notification,
// SIGHUP reload and an ordered shutdown. It is the only package that
// imports concretes from every tree.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// ShutdownTimeout bounds the broker's shutdown.
const ShutdownTimeout = 3 * time.Second

// Run runs the gateway configured by c until ctx is done. An invalid c
// (Check) or an unusable queue directory or broker listener is an error at
// once; a device missing at run time is reported offline and retried.
// SIGHUP reloads the configuration file: a bad one is logged and the old
// one kept; the broker, the queue and their clients stay.
func Run(ctx context.Context, c *config.Config, reg *drivers.Registry, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := Check(c, reg); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Gateway.StateDir, 0o750); err != nil {
		return fmt.Errorf("daemon: state dir: %w", err)
	}
	q, err := openQueue(c, log)
	if err != nil {
		return err
	}
	queueClosed := false
	defer func() {
		if !queueClosed {
			q.Close()
		}
	}()
	srv, err := broker.New(brokerOptions(c, log))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := srv.Listen(); err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("daemon: %w", err)
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, broker.ErrServerClosed) {
			log.Error("broker stopped", "err", err)
		}
	})
	for _, kind := range []string{"tcp", "tls", "ws", "wss"} {
		if a := srv.Addr(kind); a != nil {
			log.Info("broker listening", "addr", a.String(), "kind", kind)
		}
	}

	d := &daemon{log: log, q: q, srv: srv}
	// Commands wait until the first field is up.
	if d.cmds, err = newCommands(c, d); err != nil {
		srv.Shutdown(context.Background())
		bg.Wait()
		return err
	}
	deps := gateway.Deps{Publisher: brokerPort{srv}, Spool: q, Backlog: backlog(q, false)}
	for _, cs := range q.Stats().Classes {
		if cs.Name == gateway.ClassTelemetry {
			deps.TelemetryNext = cs.NextSeq
		}
	}
	f, err := newField(c, reg, log, deps)
	if err != nil {
		srv.Shutdown(context.Background())
		bg.Wait()
		return err
	}
	d.setField(f)
	if c.Uplink.URL != "" {
		if d.up, err = newUplink(c, q, d, srv, log); err != nil {
			srv.Shutdown(context.Background())
			bg.Wait()
			return err
		}
	}

	hctx, stopHealth := context.WithCancel(context.Background())
	if d.console.c, err = newConsole(c, d); err != nil {
		stopHealth()
		srv.Shutdown(context.Background())
		bg.Wait()
		return err
	}
	d.runConsole(hctx, &bg)
	if c.Health.Listen != "" {
		ln, err := net.Listen("tcp", c.Health.Listen)
		if err == nil {
			ln, err = consoleListener(c, ln)
		}
		if err != nil {
			stopHealth()
			srv.Shutdown(context.Background())
			bg.Wait()
			return fmt.Errorf("daemon: health: %w", err)
		}
		hs := newHealthServer(d.handler(), defaultHealthLimits)
		bg.Go(func() { hs.Serve(limitListener(ln, defaultHealthLimits.maxConns)) })
		bg.Go(func() {
			<-hctx.Done()
			hs.Close()
		})
		log.Info("health listening", "addr", ln.Addr().String())
	}
	bg.Go(func() {
		watchdog(hctx, log, c.Health.WatchdogInterval.D(), d.alive)
	})
	// The uplink is the queue's only consumer; the field's recovery reads
	// the backlog's tail with Scan, which does not disturb it.
	uctx, stopUplink := context.WithCancel(context.Background())
	var upWG sync.WaitGroup
	if up := d.up; up != nil {
		upWG.Go(func() {
			if err := up.Run(uctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("uplink stopped", "err", err)
			}
		})
	}
	stopForward := func() {}
	if len(c.Uplink.Forward) > 0 {
		var rules []uplink.Rule
		for _, r := range c.Uplink.Forward {
			rules = append(rules, uplink.Rule{Filter: r.Filter, Prefix: r.Prefix, QoS: byte(r.QoS)})
		}
		if stopForward, err = uplink.Forward(brokerPort{srv}, q, rules, log.With("component", "forward")); err != nil {
			stopUplink()
			upWG.Wait()
			stopHealth()
			srv.Shutdown(context.Background())
			bg.Wait()
			return fmt.Errorf("daemon: %w", err)
		}
	}

	// The broker listens and the queue is open.
	notify(log, sd.SdNotifyReady)
	log.Info("gateway started", "id", c.Gateway.ID, "prefix", c.Gateway.Prefix(), "devices", len(c.Devices))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var runErr error
	// A reloaded field's gateway reads the tail written since the last
	// save too (cheap: only past the saved point), but the queue's next
	// number at open no longer says what was written.
	deps.Backlog, deps.TelemetryNext = backlog(q, true), 0
	r, _ := d.swap(nil, func([]drivers.Reading) (*field, error) { return f, nil })
	d.cmds.Release()
loop:
	for {
		select {
		case <-ctx.Done():
			// Pollers stop, devices close, the gateway saves its state;
			// the field's run returns only then.
			notify(log, sd.SdNotifyStopping)
			d.replace(r, nil)
			break loop
		case err := <-r.done:
			r.stop()
			runErr = err
			if runErr == nil {
				runErr = errors.New("daemon: devices stopped")
			}
			notify(log, sd.SdNotifyStopping)
			break loop
		case <-hup:
			nc, err := reload(c, reg, log)
			if err != nil {
				log.Error("reload refused, old configuration kept", "err", err)
				continue
			}
			notify(log, sd.SdNotifyReloading)
			r, err = d.replace(r, func(latest []drivers.Reading) (*field, error) {
				deps.Latest = latest
				nf, err := newField(nc, reg, log, deps)
				if err == nil {
					c = nc
					log.Info("configuration reloaded", "devices", len(c.Devices))
					return nf, nil
				}
				return newField(c, reg, log, deps)
			})
			if err != nil {
				runErr = err
				break loop
			}
			notify(log, sd.SdNotifyReady)
		}
	}
	// Commands still being applied finish (their results are spooled),
	// then the uplink sends what it can, publishes "offline" and
	// disconnects.
	d.cmds.Close()
	stopForward()
	stopUplink()
	upWG.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("broker shutdown", "err", err)
	}
	cancel()
	stopHealth()
	bg.Wait()
	queueClosed = true
	if err := q.Close(); err != nil {
		log.Error("queue close", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	log.Info("gateway stopped")
	return runErr
}

// running is a field being run.
type running struct {
	stop context.CancelFunc
	done chan error // run's result
}

// start sets f as the field commands go to, and runs it until stopped.
func (d *daemon) start(f *field) *running {
	d.setField(f)
	ctx, stop := context.WithCancel(context.Background())
	r := &running{stop: stop, done: make(chan error, 1)}
	go func() { r.done <- f.run(ctx) }()
	return r
}

// replace waits for the commands running on r's field to finish,
// stops it and, unless next is nil, starts the field next builds. Commands
// that arrive meanwhile wait, and go to the new field. next gets the
// stopped gateway's last readings, so that interlocks pass before the
// devices are read again.
func (d *daemon) replace(r *running, next func(latest []drivers.Reading) (*field, error)) (*running, error) {
	d.cmds.Hold()
	defer d.cmds.Release()
	return d.swap(r, next)
}

// swap is replace with the commands held by the caller; r may be nil. The
// new field runs once each of its devices was tried once: a command let
// through then finds the actuators that could be built.
func (d *daemon) swap(r *running, next func(latest []drivers.Reading) (*field, error)) (*running, error) {
	var latest []drivers.Reading
	if r != nil {
		r.stop()
		<-r.done
		latest = d.field().gw.Latest()
	}
	if next == nil {
		return nil, nil
	}
	f, err := next(latest)
	if err != nil {
		return nil, err
	}
	nr := d.start(f)
	<-f.sup.Up()
	return nr, nil
}

// reload loads and checks the configuration file again.
func reload(old *config.Config, reg *drivers.Registry, log *slog.Logger) (*config.Config, error) {
	nc, err := config.Load(old.File())
	if err != nil {
		return nil, err
	}
	if err := Check(nc, reg); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(nc.Broker, old.Broker) {
		log.Warn("[broker] changes take effect at the next restart")
	}
	if !reflect.DeepEqual(nc.Queue, old.Queue) {
		log.Warn("[queue] changes take effect at the next restart")
	}
	if !reflect.DeepEqual(nc.Uplink, old.Uplink) {
		log.Warn("[uplink] changes take effect at the next restart")
	}
	if nc.Gateway != old.Gateway {
		log.Warn("[gateway] changes take effect at the next restart")
		nc.Gateway = old.Gateway
	}
	return nc, nil
}

// newUplink builds the uplink of c on q; remote commands go to the
// current field's gateway.
func newUplink(c *config.Config, q *buffer.Queue, d *daemon, srv *broker.Server, log *slog.Logger) (*uplink.Uplink, error) {
	u := c.Uplink
	var password []byte
	if u.Password != "" {
		password = []byte(u.Password)
	}
	var receive []uplink.Rule
	for _, r := range u.Receive {
		receive = append(receive, uplink.Rule{Filter: r.Filter, Prefix: r.Prefix, QoS: byte(r.QoS)})
	}
	ulog := log.With("component", "uplink")
	var denied atomic.Int64
	var batch *uplink.BatchOptions
	if b := u.Batch; b != nil {
		batch = &uplink.BatchOptions{MaxRecords: b.MaxRecords, MaxBytes: int(b.MaxBytes), MaxDelay: b.MaxDelay.D(),
			Compression: b.Compression}
	}
	up, err := uplink.New(uplink.Options{
		URL: u.URL, URLs: u.URLs, ClientID: u.ClientID, Username: u.Username, Password: password, PasswordFile: u.PasswordFile,
		CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile, ServerName: u.ServerName, ALPN: u.ALPN,
		QoS: byte(u.QoS), Protocol: u.Protocol, Keepalive: u.Keepalive.D(),
		ReconnectMin: u.ReconnectMin.D(), ReconnectMax: u.ReconnectMax.D(), ReconnectSpread: u.ReconnectSpread.D(), SessionExpiry: u.SessionExpiry.D(),
		LocalPrefix: c.Gateway.Prefix(), TopicPrefix: u.TopicPrefix, Receive: receive,
		Queue: q, StateDir: c.Gateway.StateDir, Batch: batch,
		Budget: uplink.Budget{Monthly: int64(u.Budget.Monthly), MonthStartDay: u.Budget.MonthStartDay,
			ThinInterval: u.Budget.ThinInterval.D()},
		OnCommand: d.cmds.Remote,
		Deliver: func(r gateway.Record) {
			// The cloud's messages meet the broker's ACL as UplinkUser,
			// like a local client's.
			err := srv.PublishAs(context.Background(), broker.UplinkUser, toMessage(r))
			switch {
			case errors.Is(err, broker.ErrNotAuthorized):
				if denied.Add(1) == 1 {
					ulog.Warn("receive: the broker's acl denies "+broker.UplinkUser+" this topic; dropped (logged once)", "topic", r.Topic)
				}
			case err != nil:
				ulog.Warn("receive: local publish failed", "topic", r.Topic, "err", err)
			}
		},
		Log: ulog,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return up, nil
}

func openQueue(c *config.Config, log *slog.Logger) (*buffer.Queue, error) {
	var fs buffer.FsyncPolicy
	if err := fs.UnmarshalText([]byte(c.Queue.Fsync)); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	class := func(name string, cl config.Class) (buffer.ClassOptions, error) {
		var p buffer.FullPolicy
		err := p.UnmarshalText([]byte(cl.Policy))
		return buffer.ClassOptions{Name: name, MaxBytes: int64(cl.MaxBytes), Policy: p, MaxAge: cl.MaxAge.D()}, err
	}
	alarm, err1 := class(gateway.ClassAlarm, c.Queue.Alarm)
	tele, err2 := class(gateway.ClassTelemetry, c.Queue.Telemetry)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	q, err := buffer.Open(filepath.Clean(c.Queue.Dir), buffer.Options{
		Classes:       []buffer.ClassOptions{alarm, tele},
		Fsync:         fs,
		FsyncInterval: c.Queue.FsyncInterval.D(),
		SegmentSize:   int64(c.Queue.SegmentSize),
		MinFreeBytes:  uint64(c.Queue.MinFree),
		Log:           log.With("component", "queue"),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: queue: %w", err)
	}
	return q, nil
}

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
		MaxSessions: b.MaxSessions,
		Log:         log.With("component", "broker"),
	}
	if b.Dir != "-" {
		o.StateDir = b.Dir
	}
	o.WSAllowedOrigins = b.WSAllowedOrigins
	for _, r := range b.ACL {
		o.ACL = append(o.ACL, broker.ACLRule{User: r.User, Permission: r.Permission, Action: r.Action, Topic: r.Topic})
	}
	return o
}
